#!/usr/bin/env bash
# CI: the bus's AsyncAPI document through the official parser (@asyncapi/parser, the version
# pinned in scripts/ci/asyncapi/package-lock.json): the committed docs/asyncapi.json, and the
# document the built binary writes for another prefix. Any diagnostic of severity error fails.
# The tests check that docs/asyncapi.json is what the code generates, and that the messages the
# service publishes validate against it.
#   CONSOLIDATOR_BIN  the binary to run (default: target/debug/consolidator)
#   ASYNCAPI_URL      also parse a served document (e.g. http://127.0.0.1:8080/asyncapi.json)
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v node >/dev/null || { echo "node (20 or later) is needed for the AsyncAPI parser" >&2; exit 1; }
checker=scripts/ci/asyncapi
if [ ! -d "$checker/node_modules/@asyncapi/parser" ]; then
  # --ignore-scripts: no install script runs (one dependency's only reports download statistics).
  npm ci --prefix "$checker" --ignore-scripts --no-audit --no-fund --silent
fi

bin=${CONSOLIDATOR_BIN:-${CARGO_TARGET_DIR:-target}/debug/consolidator}
[ -x "$bin" ] || cargo build --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" asyncapi --prefix asyncapi_ci --out "$work/asyncapi.json"

sources=(docs/asyncapi.json "$work/asyncapi.json")
[ -n "${ASYNCAPI_URL:-}" ] && sources+=("$ASYNCAPI_URL")
node "$checker/validate.mjs" "${sources[@]}"
