#!/usr/bin/env bash
# Runs the persona-edge Worker locally: `wrangler dev` (workerd) on 127.0.0.1 with the
# repository's wrangler.toml, in front of the demo origin, which prints every request
# that gets through. Ctrl-C stops both.
#
#   scripts/run-worker-demo.sh            # Worker on :8787, origin on :8081
#   WORKER_PORT=9787 ORIGIN_PORT=9081 scripts/run-worker-demo.sh
#
# The webhook secret (PERSONA_WEBHOOK_SECRET, named by signature.secrets_env in
# wrangler.toml) is written at run time to a private temporary env file given to
# `wrangler dev --env-file`; nothing secret is written into the checkout.
# Default secret: wbhsec_demo (override with PERSONA_WEBHOOK_SECRET=...).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"
worker_port="${WORKER_PORT:-8787}"
origin_port="${ORIGIN_PORT:-8081}"
secret="${PERSONA_WEBHOOK_SECRET:-wbhsec_demo}"

build_worker
cargo build --release --quiet -p persona-edge-tests --bin demo-origin
cargo build --release --quiet -p persona-edge-core --bin persona-edge

tmp="$(mktemp -d)"
origin_pid=""
cleanup() {
  [ -n "$origin_pid" ] && kill "$origin_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(umask 077 && printf 'PERSONA_WEBHOOK_SECRET=%s\n' "$secret" > "$tmp/demo.env")

"$target_dir/release/demo-origin" --port "$origin_port" &
origin_pid=$!

cat <<EOF

persona-edge Worker demo
  Worker (wrangler dev): http://127.0.0.1:$worker_port   origin: http://127.0.0.1:$origin_port
  configuration: PERSONA_EDGE_CONFIG in wrangler.toml; secret PERSONA_WEBHOOK_SECRET=$secret

Send a signed sample from another terminal:

  BODY=tests/fixtures/events/inquiry-approved.json
  SIG=\$(cargo run -q --release --bin persona-edge -- sign --secret $secret \$BODY)
  curl -i http://127.0.0.1:$worker_port/webhooks/persona \\
    -H 'Content-Type: application/json; charset=utf-8' \\
    -H "Persona-Signature: \$SIG" \\
    -H 'CF-Connecting-IP: 35.232.44.140' \\
    --data-binary @\$BODY

The origin prints what it received: personal data stripped (the personal-data
preset in wrangler.toml), routing headers added,
the now-stale Persona-Signature removed. Without the CF-Connecting-IP line wrangler
dev supplies 127.0.0.1, which is not a Persona address (403 source_not_allowed); on
Cloudflare the edge sets it and a client cannot. Change the signature or the body
for 401, send GET for 405. Rejections are logged below as JSON lines.

EOF

CI="${CI:-true}" WRANGLER_SEND_METRICS=false node_modules/.bin/wrangler dev \
  --ip 127.0.0.1 --port "$worker_port" \
  --env-file "$tmp/demo.env" \
  --var "ORIGIN_URL:http://127.0.0.1:$origin_port" \
  --persist-to "$tmp/state" \
  --show-interactive-dev-session=false
