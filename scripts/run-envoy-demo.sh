#!/usr/bin/env bash
# persona-edge in Envoy, on 127.0.0.1, in the foreground (Ctrl-C stops it):
#   - builds the filter (the .wasm, or with --native the dynamic module), the
#     persona-edge command and the demo origin;
#   - starts the demo origin, which prints every request that reaches it;
#   - runs Envoy 1.40 with envoy/envoy.yaml (--native: envoy/envoy-native.yaml), where
#     only the ports, the .wasm path, xff_num_trusted_hops (1, so curl can play a load
#     balancer and name the client in X-Forwarded-For) and the plugin configuration
#     below are changed, as the tests change them (tests/src/bin/envoy-config.rs).
#
#   scripts/run-envoy-demo.sh            # make run: the proxy-wasm filter
#   scripts/run-envoy-demo.sh --native   # make run-native: the native dynamic module
#
# Ports: LISTEN_PORT (8080), ADMIN_PORT (9901), ORIGIN_PORT (8081).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

native=""
case "${1:-}" in
  "") ;;
  --native) native=1 ;;
  *) echo "usage: $0 [--native]" >&2; exit 2 ;;
esac

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

ensure_rust_targets
ensure_envoy

echo "building the filter, the persona-edge command and the demo origin (release)..." >&2
if [ -n "$native" ]; then
  module="$(build_native_module)"
  packaging=(--native)
  # Envoy finds libpersona_edge_filter.so here; the module logs under dynamic_modules.
  ENVOY_DYNAMIC_MODULES_SEARCH_PATH="$(dirname "$module")"
  export ENVOY_DYNAMIC_MODULES_SEARCH_PATH
  logger=dynamic_modules
else
  packaging=(--wasm "$(build_filter)")
  logger=wasm
fi
cargo build --release --bin persona-edge -p persona-edge-core
cargo build --release --bin demo-origin --bin envoy-config -p persona-edge-tests

work="$(mktemp -d "${TMPDIR:-/tmp}/persona-edge-demo.XXXXXX")"
origin_pid=""
cleanup() {
  if [ -n "$origin_pid" ]; then kill "$origin_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

config="$work/envoy.yaml"
printf '%s\n' "$PLUGIN_CONFIG" >"$work/plugin-config.json"
"$target_dir/release/envoy-config" --listen "$LISTEN_PORT" --admin "$ADMIN_PORT" \
  --origin "$ORIGIN_PORT" "${packaging[@]}" --plugin-config "$work/plugin-config.json" >"$config"

"$target_dir/release/demo-origin" --port "$ORIGIN_PORT" &
origin_pid=$!

cli="${target_dir#"$root"/}/release/persona-edge"
event=tests/fixtures/events/inquiry-approved.json
cat <<EOF

persona-edge demo ($([ -n "$native" ] && echo "native dynamic module" || echo "proxy-wasm filter")): Envoy on http://127.0.0.1:$LISTEN_PORT -> demo origin on 127.0.0.1:$ORIGIN_PORT
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

PERSONA_WEBHOOK_SECRET="$SECRET" "$envoy_bin" -c "$config" --concurrency 1 --disable-hot-restart \
  --file-flush-interval-msec 100 -l warning --component-log-level "$logger:info"
