#!/usr/bin/env bash
# CI: the service against its own OpenAPI document (issue 24 item 9). Starts `consolidator all`
# (the debug binary `cargo test` built) on its own database and subject prefix, seeds a project
# with the demo, and runs schemathesis with every check on /openapi.json; any failure fails.
#   SCHEMATHESIS_EXAMPLES  cases per operation and phase (default 25)
#   SCHEMATHESIS_SEED      generation seed (default 1: the same cases every run)
#   CONSOLIDATOR_BIN       the binary to run (default: target/debug/consolidator)
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${CONSOLIDATOR_BIN:-${CARGO_TARGET_DIR:-target}/debug/consolidator}
[ -x "$bin" ] || cargo build --locked
schemathesis=$(command -v schemathesis || echo "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/schemathesis")
[ -x "$schemathesis" ] || { echo "schemathesis is not installed (pip install schemathesis)" >&2; exit 1; }
config="$PWD/scripts/ci/schemathesis.toml"

port=${SCHEMATHESIS_PORT:-18787}
database_url=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
database=consolidator_schemathesis
work=$(mktemp -d)
export DATABASE_URL="${database_url%/*}/$database"
export NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
export CONSOLIDATION_PREFIX=schemathesis_ci
export HTTP_ADDR="127.0.0.1:$port"
JWT_SECRET=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
export JWT_SECRET

server=
stop() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    psql "$database_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  fi
  rm -rf "$work"
}
trap stop EXIT

# A fresh database each run (migrate creates it, the end drops it); the fixed prefix reuses its
# two streams.
psql "$database_url" -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)"
"$bin" migrate up >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; exit 1; }
"$bin" all >"$work/service.log" 2>&1 &
server=$!
ready() { python3 -c "import urllib.request as u; u.urlopen('http://$HTTP_ADDR/readyz', timeout=2)" 2>/dev/null; }
for _ in $(seq 1 60); do ready && break; sleep 1; done
ready || { echo "the service did not get ready" >&2; cat "$work/service.log" >&2; exit 1; }
"$bin" demo --gateway-url "http://$HTTP_ADDR" >"$work/demo.log" 2>&1 || {
  cat "$work/demo.log" "$work/service.log" >&2
  exit 1
}
token=$("$bin" token --ttl-secs 3600)

started=$SECONDS
status=0
# From the scratch directory, where schemathesis keeps its cache.
cd "$work"
"$schemathesis" --config-file "$config" run "http://$HTTP_ADDR/openapi.json" \
  --checks all \
  --header "Authorization: Bearer $token" \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-25}" \
  --seed "${SCHEMATHESIS_SEED:-1}" \
  --workers 1 \
  --request-timeout 30 \
  --wait-for-schema 30 \
  --no-color || status=$?
echo "schemathesis: exit $status after $((SECONDS - started)) s"
if [ "$status" != 0 ]; then
  echo "--- service log (last 50 lines)" >&2
  tail -n 50 "$work/service.log" >&2
fi
exit "$status"
