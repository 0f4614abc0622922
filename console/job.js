// One job: live progress, then its cost (phase timeline) and its result as before/after — each
// cluster's members beside the merged text — syntheses, archives, promotions and the audit rows.
import { api, followEvents } from './api.js';
import { TERMINAL, canRollBack, cancelButton, isActive, rollbackControl } from './actions.js';
import { badge, errorBox, fill, firstLine, h, memoryLink, notify, progressBar, shortId, when } from './dom.js';

const CHANGES_PAGE = 100;
const MEMORIES_SHOWN = 100;

const fixed = (value, digits = 2) => (value === undefined || value === null ? '—' : Number(value).toFixed(digits));

async function memoryText(id) {
  const detail = await api('GET', `/memories/${id}`);
  return detail;
}

function memoryBlock(memory, id, mark) {
  return h('div', { class: 'member' },
    h('div', { class: 'muted' }, mark ? h('b', { class: 'source-mark' }, `[${mark}] `) : '', memoryLink(id ?? memory.id), ' ', memory.memory_type ?? ''),
    h('p', { class: 'text' }, memory.execution_summary ?? ''));
}

// The merged text unit by unit, each followed by the marks of the sources that state it (the
// one it was taken from first), when the merge recorded them.
function mergedText(text, units, sources) {
  if (!units?.length) return h('p', { class: 'text merged' }, text ?? '');
  const mark = (id) => sources.indexOf(id) + 1;
  return h('p', { class: 'text merged units' }, units.map((unit, i) => [
    i ? ' ' : '',
    h('span', { class: 'unit', title: `stated by ${unit.sources.map((id) => `[${mark(id)}]`).join(' ')}` },
      unit.text, h('sup', { class: 'source-mark' }, unit.sources.map((id) => `[${mark(id)}]`).join(''))),
  ]));
}

/** A cluster, closed until opened; opening it reads the member texts. */
function cluster(merge, index) {
  const sources = (merge.sources ?? []).map((source) => (typeof source === 'string' ? source : source.id));
  const figures = [
    merge.coverage !== undefined ? `coverage ${fixed(merge.coverage)}` : null,
    merge.compression !== undefined ? `compression ${fixed(merge.compression)}` : null,
    merge.length_vs_longest !== undefined ? `length vs longest ${fixed(merge.length_vs_longest)}` : null,
  ].filter(Boolean).join(', ');
  const body = h('div', { class: 'compare' });
  const details = h('details', { class: 'cluster', 'data-cluster': index },
    h('summary', {}, h('b', {}, `Cluster ${index + 1}`), `: ${sources.length} memories → 1`, figures ? h('span', { class: 'muted' }, ` (${figures})`) : ''),
    body);
  let loaded = false;
  details.addEventListener('toggle', async () => {
    if (!details.open || loaded) return;
    loaded = true;
    fill(body, h('p', { class: 'muted' }, 'Loading the texts…'));
    try {
      const members = await Promise.all(sources.map((id) => memoryText(id)));
      const merged = merge.memory?.execution_summary !== undefined
        ? merge.memory
        : await memoryText(merge.memory_id);
      const units = merge.units ?? merged.provenance?.merged_units;
      fill(body,
        h('section', { 'aria-label': 'Before' }, h('h3', {}, `Before: ${members.length} memories`), members.map((m, i) => memoryBlock(m, sources[i], i + 1))),
        h('section', { 'aria-label': 'After' }, h('h3', {}, 'After: the merged memory'),
          merge.memory_id ? h('div', { class: 'muted' }, memoryLink(merge.memory_id)) : h('div', { class: 'muted' }, 'not written (dry run)'),
          mergedText(merged.execution_summary, units, sources),
          figures ? h('p', { class: 'muted' }, `Kept: ${figures}`) : ''));
    } catch (error) {
      fill(body, errorBox(error));
      loaded = false;
    }
  });
  return details;
}

const SECTIONS = { fix: 'Fixes', gotcha: 'Gotchas', decision: 'Decisions', practice: 'Practices', fact: 'Facts' };

// A synthesis lists its topic's facts by kind, each with links to the members that state it.
function synthesis(item) {
  const text = item.memory?.execution_summary;
  const facts = item.facts ?? [];
  const lists = Object.entries(SECTIONS).filter(([kind]) => facts.some((f) => f.kind === kind))
    .map(([kind, title]) => h('div', {}, h('h3', {}, title), h('ul', {}, facts.filter((f) => f.kind === kind)
      .map((f) => h('li', { class: 'fact' }, f.text, ' ', h('span', { class: 'muted' }, f.members.map((m, i) => [i ? ', ' : '', memoryLink(m)])))))));
  const members = item.memory?.synthesized_from ?? [];
  const body = h('div', {}, lists.length ? lists : (text ? h('p', { class: 'text' }, text) : ''));
  const details = h('details', { class: 'cluster' },
    h('summary', {}, `topic of ${members.length || '?'} memories · confidence ${fixed(item.confidence)}`, item.needs_review ? h('b', {}, ' · needs review') : '',
      item.memory_id ? [' · ', memoryLink(item.memory_id)] : ''),
    body);
  if (!lists.length && item.memory_id) {
    details.addEventListener('toggle', async () => {
      if (!details.open || body.dataset.loaded) return;
      body.dataset.loaded = 'yes';
      try { fill(body, h('p', { class: 'text' }, (await memoryText(item.memory_id)).execution_summary)); } catch (error) { fill(body, errorBox(error)); }
    });
  }
  return details;
}

async function memoryList(ids) {
  const shown = ids.slice(0, MEMORIES_SHOWN);
  const memories = await Promise.all(shown.map((id) => memoryText(id).catch(() => ({ id, execution_summary: '' }))));
  return h('ul', { class: 'plain' }, memories.map((m, i) => h('li', {}, memoryLink(shown[i]), ' ', firstLine(m.execution_summary))),
    ids.length > shown.length ? h('li', { class: 'muted' }, `and ${ids.length - shown.length} more`) : '');
}

function auditTable(jobId) {
  const section = h('section', { 'aria-labelledby': 'audit-heading' }, h('h2', { id: 'audit-heading' }, 'Audit rows'));
  const tbody = h('tbody', {});
  const more = h('div', {});
  async function page(cursor) {
    try {
      const answer = await api('GET', `/consolidation/jobs/${jobId}/changes?limit=${CHANGES_PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      for (const change of answer.changes) {
        tbody.append(h('tr', {},
          h('td', {}, change.operation), h('td', {}, memoryLink(change.memory_id)),
          h('td', {}, change.reason ?? ''), h('td', { class: 'num' }, fixed(change.confidence)),
          h('td', {}, when(change.changed_at)), h('td', { class: 'muted' }, change.changed_by)));
      }
      fill(more, answer.next_cursor
        ? h('button', { type: 'button', class: 'secondary', onclick: () => page(answer.next_cursor) }, 'More audit rows')
        : '');
    } catch (error) {
      fill(more, errorBox(error));
    }
  }
  section.append(h('table', { id: 'audit' },
    h('thead', {}, h('tr', {}, ['Operation', 'Memory', 'Reason', 'Confidence', 'When', 'By'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody), more);
  return { section, load: () => page(null) };
}

const SVG = 'http://www.w3.org/2000/svg';
const PHASES = [['Loading', 'loading_ms'], ['Planning', 'planning_ms'], ['Applying', 'applying_ms']];

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;

// The phases as one bar drawn to scale (inline SVG), then the figures of the cost report.
function costReport(cost) {
  const total = Math.max(cost.total_ms, 1);
  const width = 600;
  const described = PHASES.map(([name, key]) => `${name} ${cost[key]} ms`).join(', ');
  const chart = svg('svg', { viewBox: `0 0 ${width} 28`, preserveAspectRatio: 'none', class: 'timeline', role: 'img', 'aria-label': `Phases of ${cost.total_ms} ms: ${described}` });
  let x = 0;
  PHASES.forEach(([name, key], index) => {
    const w = (width * cost[key]) / total;
    const rect = svg('rect', { x: x.toFixed(1), y: 2, width: Math.max(w, 1).toFixed(1), height: 24, class: `phase-${index}` });
    rect.append(svg('title', {}, `${name}: ${cost[key]} ms`));
    chart.append(rect);
    x += w;
  });
  const legend = h('ul', { class: 'legend' }, PHASES.map(([name, key], index) =>
    h('li', {}, h('span', { class: `swatch phase-${index}` }), `${name} ${cost[key]} ms`)));
  const figures = [
    ['Total', `${cost.total_ms} ms`], ['Memories / s', cost.memories_per_second],
    ['Vectors held', `${cost.vectors_mib} MiB`], ['Peak RSS (worker)', cost.peak_rss_mib === undefined ? '—' : `${cost.peak_rss_mib} MiB`],
    ['Read', mib(cost.bytes_read)], ['Written', mib(cost.bytes_written)],
    ['Model calls', cost.model.calls], ['Model tokens', cost.model.tokens],
    ...(cost.model.fallbacks ? [['Model fallbacks', cost.model.fallbacks]] : []),
    ...(cost.model.budget_spent ? [['Model budget', 'spent']] : [])];
  return h('section', { id: 'cost', 'aria-labelledby': 'cost-heading' },
    h('h2', { id: 'cost-heading' }, 'Cost'),
    h('div', { class: 'card' }, chart, legend,
      h('div', { class: 'stats' }, figures.map(([label, value]) => h('div', {}, h('span', { class: 'muted' }, label), h('b', {}, value))))));
}

async function changesOf(jobId, operation) {
  const answer = await api('GET', `/consolidation/jobs/${jobId}/changes?operation=${operation}&limit=1000`);
  return answer.changes;
}

async function result(job, target) {
  const data = job.result ?? {};
  const dry = Boolean(data.dry_run);
  const plan = dry ? data.plan ?? {} : data;
  const merges = plan.merges ?? [];
  const syntheses = plan.syntheses ?? [];
  const archives = dry ? (plan.archives ?? []).map((a) => a.memory_id) : (await changesOf(job.job_id, 'archive')).map((c) => c.memory_id);
  const promotions = dry
    ? (plan.promotions ?? []).map((p) => ({ category: p.category, content: p.content, memory_id: p.memory_id }))
    : (await changesOf(job.job_id, 'promote')).map((c) => ({ ...(c.new_state ?? {}), memory_id: c.memory_id }))
      .filter((p) => !p.followed);
  const audit = auditTable(job.job_id);
  fill(target,
    h('h2', { id: 'clusters-heading' }, `Before / after: ${merges.length} clusters${dry ? ' (planned, nothing written)' : ''}`),
    merges.length ? h('div', { id: 'clusters' }, merges.map(cluster)) : h('p', { class: 'muted' }, 'No cluster merged.'),
    h('h2', {}, `Syntheses: ${syntheses.length}`),
    syntheses.length ? syntheses.map(synthesis) : h('p', { class: 'muted' }, 'None.'),
    h('h2', {}, `Archived: ${archives.length}`),
    archives.length ? await memoryList(archives) : h('p', { class: 'muted' }, 'None.'),
    h('h2', {}, `Promoted to the playbook: ${promotions.length}`),
    promotions.length
      ? h('ul', { class: 'plain' }, promotions.map((p) => h('li', {}, h('b', {}, `[${p.category ?? ''}] `), firstLine(p.content, 200), ' ', p.memory_id ? memoryLink(p.memory_id) : '')))
      : h('p', { class: 'muted' }, 'None.'),
    dry ? h('p', { class: 'muted' }, 'A dry run writes no audit rows.') : audit.section);
  if (!dry) await audit.load();
}

export async function render(page, { id, signal }) {
  const job = await api('GET', `/consolidation/status/${id}`);
  const out = h('div', { id: 'job-actions-result', 'aria-live': 'polite' });
  const rerender = () => {
    if (signal.aborted) return;
    page.replaceChildren();
    render(page, { id, signal }).catch((error) => page.append(errorBox(error)));
  };
  const bar = progressBar(job.progress, `Progress of job ${shortId(id)}`);
  bar.update(job.progress, job.phase);
  const actions = h('div', { class: 'actions' });
  if (isActive(job)) actions.append(cancelButton(job, rerender, out));
  if (canRollBack(job)) actions.append(rollbackControl(job, rerender, out));
  const c = job.counters;
  page.append(
    h('h1', {}, `Job ${shortId(id)}`),
    h('p', {}, badge(job.status), job.dry_run ? ' dry run · ' : ' ', `${job.trigger_type} by ${job.triggered_by} · `,
      h('a', { href: `#/projects/${job.project_id}` }, 'project'), ` · created ${when(job.created_at)}`),
    h('div', { class: 'card', id: 'job-progress' }, bar.element),
    h('div', { class: 'stats card' },
      [['Merged', c.memories_merged], ['Archived', c.memories_archived], ['Promoted', c.memories_promoted], ['Syntheses', c.summaries_created],
      ['Active before', job.memories_before ?? '—'], ['Active after', job.memories_after ?? '—']].map(([label, value]) =>
      h('div', {}, h('span', { class: 'muted' }, label), h('b', {}, value)))),
    job.error ? errorBox({ code: 'job', message: job.error }) : '',
    actions, out,
    job.result?.cost ? costReport(job.result.cost) : '');
  const resultSection = h('section', { id: 'result' });
  page.append(resultSection);
  if (isActive(job)) {
    fill(resultSection, h('p', { class: 'muted' }, 'The result appears when the job ends.'));
    followEvents(id, (kind, event) => {
      bar.update(event.progress, event.phase ? `${kind}: ${event.phase}` : kind);
      if (TERMINAL.has(kind)) notify(`Job ${shortId(id)} ${kind}`);
    }, signal).catch((error) => { if (!signal.aborted) out.append(errorBox(error)); }).finally(rerender);
    return;
  }
  if (job.status === 'completed' || job.status === 'rolled_back') await result(job, resultSection);
}
