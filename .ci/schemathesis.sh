#!/usr/bin/env bash
# Runs schemathesis against a live talos-server (SQLite, the quickstart config) with the committed
# OpenAPI document: no response may be a 5xx, and every response must match its schema.
#   .ci/schemathesis.sh PATH/TO/talos-server [MAX_EXAMPLES]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
server=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
examples=${2:-25}
shared=${TALOS_SHARED_DIR:-$root/../shared}
venv=$root/target/venv
if [ ! -x "$venv/bin/schemathesis" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q schemathesis
fi
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$work" && exec env TALOS_DB_DSN="sqlite://$work/st.db" TALOS_SERVE_HTTP_HOST=127.0.0.1 TALOS_SERVE_HTTP_PORT="$port" \
    TALOS_SERVE_METRICS_HOST=127.0.0.1 TALOS_SERVE_METRICS_PORT="$mport" TALOS_LOG_LEVEL=warn \
    "$server" serve --config "$shared/conformance/quickstart-config.yaml" >"$work/server.log" 2>&1) &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/alive" >/dev/null && break; sleep 0.1; done
"$venv/bin/schemathesis" run "$root/docs/openapi.json" --url "http://127.0.0.1:$port" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance \
    --max-examples "$examples" --request-timeout 10 --no-color || {
    echo "schemathesis failed; server log tail:" >&2
    tail -n 30 "$work/server.log" >&2
    exit 1
}
