#!/usr/bin/env bash
# persona-edge in Envoy, on 127.0.0.1, in the foreground (Ctrl-C stops it):
#   - builds the filter (.wasm), the persona-edge command and the demo origin;
#   - starts the demo origin, which prints every request that reaches it;
#   - runs Envoy 1.40 with envoy/envoy.yaml, where only the ports, the .wasm path,
#     xff_num_trusted_hops (1, so curl can play a load balancer and name the client
#     in X-Forwarded-For) and the plugin configuration below are changed.
#
# Ports: LISTEN_PORT (8080), ADMIN_PORT (9901), ORIGIN_PORT (8081).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

LISTEN_PORT="${LISTEN_PORT:-8080}"
ADMIN_PORT="${ADMIN_PORT:-9901}"
ORIGIN_PORT="${ORIGIN_PORT:-8081}"
SECRET=wbhsec_demo

# The demo plugin configuration: Persona's addresses, signatures with the demo secret
# (read from Envoy's environment, as in production), every kind of personal data
# stripped (the personal-data preset), every event type forwarded.
# persona-edge: strips personal-data
read -r -d '' PLUGIN_CONFIG <<'JSON' || true
{
  "mode": "enforce",
  "sources": {"allow": ["persona"]},
  "signature": {"secrets_env": ["PERSONA_WEBHOOK_SECRET"], "tolerance_seconds": 300},
  "blocklist_preset": "personal-data",
  "events": {"forward": ["*"]}
}
JSON

envoy="$(scripts/setup-envoy.sh | tail -n 1)"

echo "building the filter, the persona-edge command and the demo origin (release)..." >&2
wasm="$(scripts/build-filter.sh | tail -n 1)"
cargo build --release --bin persona-edge -p persona-edge-core
cargo build --release --bin demo-origin -p persona-edge-tests

target="${CARGO_TARGET_DIR:-$root/target}"
[ -f "$wasm" ] || { echo "run-envoy-demo: $wasm was not built" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/persona-edge-demo.XXXXXX")"
config="$work/envoy.yaml"
PLUGIN_CONFIG="$PLUGIN_CONFIG" python3 - "$root/envoy/envoy.yaml" "$config" "$LISTEN_PORT" "$ADMIN_PORT" "$ORIGIN_PORT" "$wasm" <<'PY'
import os, sys
src, dst, listen, admin, origin, wasm = sys.argv[1:]
text = open(src).read()
def once(text, old, new):
    if text.count(old) != 1:
        sys.exit(f"run-envoy-demo: {src} must contain {old!r} exactly once")
    return text.replace(old, new)
text = once(text, "port_value: 9901 }", f"port_value: {admin} }}")
# The origin first: the listener's new port may be the origin's old one.
text = once(text, "port_value: 8080 }", f"port_value: {origin} }}")
text = once(text, "port_value: 10000 }", f"port_value: {listen} }}")
text = once(text, "xff_num_trusted_hops: 0", "xff_num_trusted_hops: 1")
text = once(text, "filename: target/persona-edge/persona_edge_filter.wasm", f"filename: {wasm}")
# The plugin configuration is the block scalar under the one `value: |` line.
lines = text.split("\n")
starts = [i for i, l in enumerate(lines) if l.rstrip().endswith("value: |")]
if len(starts) != 1:
    sys.exit(f"run-envoy-demo: {src} must have one `value: |` line")
start = starts[0]
indent = len(lines[start]) - len(lines[start].lstrip())
end = start + 1
while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
    end += 1
pad = " " * (indent + 2)
block = [pad + l for l in os.environ["PLUGIN_CONFIG"].strip().split("\n")]
open(dst, "w").write("\n".join(lines[: start + 1] + block + lines[end:]))
PY

origin_pid=""
cleanup() {
  if [ -n "$origin_pid" ]; then kill "$origin_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$target/release/demo-origin" --port "$ORIGIN_PORT" &
origin_pid=$!

cli="${target#"$root"/}/release/persona-edge"
event=tests/fixtures/events/inquiry-approved.json
cat <<EOF

persona-edge demo: Envoy on http://127.0.0.1:$LISTEN_PORT -> demo origin on 127.0.0.1:$ORIGIN_PORT
From another terminal in $root:

  # A signed delivery from a Persona address: forwarded without its personal data
  curl -sS -i http://127.0.0.1:$LISTEN_PORT/webhooks/persona \\
    -H 'Content-Type: application/json; charset=utf-8' \\
    -H "Persona-Signature: \$($cli sign --secret $SECRET $event)" \\
    -H 'X-Forwarded-For: 35.232.44.140' \\
    --data-binary @$event

  # (the signature also comes from: cargo run -q --release --bin persona-edge -- sign --secret $SECRET FILE)

  # Not from a Persona address: 403, nothing reaches the origin
  curl -sS -i http://127.0.0.1:$LISTEN_PORT/webhooks/persona \\
    -H 'Content-Type: application/json' \\
    -H "Persona-Signature: \$($cli sign --secret $SECRET $event)" \\
    -H 'X-Forwarded-For: 198.51.100.7' --data-binary @$event

  # Signed with another secret: 401
  curl -sS -i http://127.0.0.1:$LISTEN_PORT/webhooks/persona \\
    -H 'Content-Type: application/json' \\
    -H "Persona-Signature: \$($cli sign --secret wbhsec_other $event)" \\
    -H 'X-Forwarded-For: 35.232.44.140' --data-binary @$event

  # The counters
  curl -s http://127.0.0.1:$ADMIN_PORT/stats?filter=persona_edge

Envoy's access log (JSON, one line per request, with the routing metadata) and the
filter's log lines follow. Ctrl-C stops Envoy and the demo origin.

EOF

PERSONA_WEBHOOK_SECRET="$SECRET" "$envoy" -c "$config" --concurrency 1 --disable-hot-restart \
  --file-flush-interval-msec 100 -l warning --component-log-level wasm:info
