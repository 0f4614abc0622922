// Parses AsyncAPI documents with the official parser (@asyncapi/parser, pinned in package.json)
// and fails on any diagnostic of severity error. Each argument is a file or an http(s) URL.
//   node validate.mjs docs/asyncapi.json http://127.0.0.1:8080/asyncapi.json
import { readFile } from 'node:fs/promises';
import { Parser } from '@asyncapi/parser';

// @stoplight/types' DiagnosticSeverity.
const SEVERITY = ['error', 'warning', 'information', 'hint'];
const ERROR = 0;

async function read(source) {
  if (/^https?:\/\//.test(source)) {
    const response = await fetch(source);
    if (!response.ok) throw new Error(`${source}: HTTP ${response.status}`);
    return response.text();
  }
  return readFile(source, 'utf8');
}

const sources = process.argv.slice(2);
if (sources.length === 0) {
  console.error('usage: node validate.mjs <file or URL>...');
  process.exit(2);
}
const parser = new Parser();
let failed = false;
for (const source of sources) {
  const { document, diagnostics } = await parser.parse(await read(source), { source });
  const errors = diagnostics.filter((diagnostic) => diagnostic.severity === ERROR);
  for (const diagnostic of diagnostics) {
    const at = diagnostic.path.length ? diagnostic.path.join('.') : '(document)';
    console.log(`${source}: ${SEVERITY[diagnostic.severity] ?? diagnostic.severity} ${diagnostic.code} at ${at}: ${diagnostic.message}`);
  }
  if (!document || errors.length > 0) {
    console.error(`${source}: ${errors.length} error(s); not a valid AsyncAPI document`);
    failed = true;
    continue;
  }
  console.log(
    `${source}: valid AsyncAPI ${document.version()}: ${document.channels().length} channels, ` +
      `${document.operations().length} operations, ${document.messages().length} messages ` +
      `(${diagnostics.length} diagnostics below error)`,
  );
}
process.exit(failed ? 1 : 0);
