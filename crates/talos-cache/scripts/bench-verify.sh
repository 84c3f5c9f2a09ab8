#!/usr/bin/env bash
# Verify throughput of one release talos-server on PostgreSQL, per cache backend (docs/benchmarks.md,
# "Cache and rate limits"). Needs wrk, psql, a PostgreSQL at $ADMIN and a Redis at 127.0.0.1:6379.
#
#   cargo build --release -p talos-server
#   crates/talos-cache/scripts/bench-verify.sh noop|memory|redis [seconds]
#
# Env: LOCAL=false turns the Redis cache's in-process layer off; RL=memory|redis enables the rate
# limiter with that backend and gives the key a policy it never exhausts.
set -euo pipefail
CACHE=$1
SECS=${2:-10}
RLE=false
[ -n "${RL:-}" ] && RLE=true
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BIN=${BIN:-$ROOT/target/release/talos-server}
ADMIN=${ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-14420}
WORK=$(mktemp -d)
DB=talos_bench_$RANDOM$RANDOM
psql -q "$ADMIN" -c "CREATE DATABASE $DB" >/dev/null
DSN=${ADMIN%/*}/$DB
"$BIN" migrate up --database "$DSN" >/dev/null
cat >"$WORK/talos.yaml" <<YAML
credentials:
  issuer: "http://bench.test"
secrets:
  hmac:
    current: "bench-secret-0123456789abcdefghijklmnopqrstuv"
db:
  dsn: "$DSN"
cache:
  type: $CACHE
  redis:
    addrs: ["127.0.0.1:6379"]
    key_prefix: "talos-bench-$DB"
    local: { enabled: ${LOCAL:-true} }
rate_limit:
  enabled: $RLE
  backend: ${RL:-memory}
log:
  level: warn
YAML
TALOS_SERVE_HTTP_HOST=127.0.0.1 TALOS_SERVE_HTTP_PORT=$PORT TALOS_SERVE_METRICS_HOST=127.0.0.1 \
  TALOS_SERVE_METRICS_PORT=$((PORT + 2)) "$BIN" serve --config "$WORK/talos.yaml" 2>"$WORK/server.log" &
PID=$!
trap 'kill $PID; wait $PID 2>/dev/null; psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null; rm -rf "$WORK"' EXIT
URL=http://127.0.0.1:$PORT
for _ in $(seq 100); do curl -sf "$URL/health/alive" >/dev/null && break; sleep 0.1; done
POLICY=""
[ -n "${RL:-}" ] && POLICY=',"rate_limit_policy":{"quota":"1000000","window":"1s"}'
SECRET=$(curl -sf -XPOST "$URL/v2alpha1/admin/issuedApiKeys" -d "{\"name\":\"b\",\"actor_id\":\"a\",\"ttl\":\"1h\"$POLICY}" |
  python3 -c 'import json,sys;print(json.load(sys.stdin)["secret"])')
cat >"$WORK/verify.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"credential":"$SECRET"}'
wrk.headers["Content-Type"] = "application/json"
LUA
for _ in 1 2; do # the second answer shows whether the cache serves it
  curl -s -D- -XPOST "$URL/v2alpha1/admin/apiKeys:verify" -d "{\"credential\":\"$SECRET\"}" |
    grep -io 'ory-talos-cache: [a-z]*\|"is_valid":[a-z]*\|^ratelimit: .*' | tr '\r\n' '  '
  echo
done
wrk -t1 -c32 -d"${SECS}s" --latency -s "$WORK/verify.lua" "$URL/v2alpha1/admin/apiKeys:verify" |
  grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors"
