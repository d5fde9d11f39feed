#!/usr/bin/env bash
# Builds the Worker: `worker-build --release` in worker/, which runs cargo for
# wasm32-unknown-unknown (the workspace release profile), wasm-bindgen, wasm-opt -O3
# and esbuild, and writes worker/build/index.js (the ES module entry) and
# worker/build/index_bg.wasm. wrangler.toml runs this as its [build] command.
#
# Every tool is pinned and local, nothing is downloaded from GitHub:
# scripts/setup-worker.sh (run here; fast when done) installs wasm-bindgen-cli and
# worker-build at the versions in Cargo.lock, and binaryen/esbuild come from npm.
#
# When the compiled crate, worker/Cargo.toml and the tool versions are those of the
# last build, the wasm-bindgen/wasm-opt/esbuild steps are skipped (wasm-opt -O3 alone
# takes about a minute on 2 cores), so `wrangler dev` restarts stay quick.
# PERSONA_EDGE_WORKER_PREBUILT=1 skips everything, cargo included, when worker/build/
# is complete (the integration tests set it when they start `wrangler dev`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/worker/build"

if [ "${PERSONA_EDGE_WORKER_PREBUILT:-}" = 1 ] && [ -s "$out/index.js" ] && [ -s "$out/index_bg.wasm" ]; then
  echo "build-worker: using the existing $out (PERSONA_EDGE_WORKER_PREBUILT=1)" >&2
  exit 0
fi

tools="$("$root/scripts/setup-worker.sh")"
WORKER_BUILD="$(sed -n 's/^WORKER_BUILD=//p' <<<"$tools")"
WASM_BINDGEN_BIN="$(sed -n 's/^WASM_BINDGEN_BIN=//p' <<<"$tools")"
WASM_OPT_BIN="$(sed -n 's/^WASM_OPT_BIN=//p' <<<"$tools")"
ESBUILD_BIN="$root/node_modules/.bin/esbuild"
export WASM_BINDGEN_BIN WASM_OPT_BIN ESBUILD_BIN

cd "$root/worker"
# What worker-build compiles (same command and environment as its own cargo step,
# so this is a no-op for it afterwards).
WASM_BINDGEN_USE_JS_SYS=1 cargo build --lib --release --target wasm32-unknown-unknown --quiet >&2
compiled="${CARGO_TARGET_DIR:-$root/target}/wasm32-unknown-unknown/release/persona_edge_worker.wasm"
stamp_file="$out/.persona-edge-inputs.sha256"
stamp="$( { sha256sum "$compiled" "$root/worker/Cargo.toml" | cut -d' ' -f1; echo "$tools"; } | sha256sum | cut -d' ' -f1)"
if [ -s "$out/index.js" ] && [ -s "$out/index_bg.wasm" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
  echo "build-worker: $out is up to date" >&2
  exit 0
fi

"$WORKER_BUILD" --release >&2
echo "$stamp" > "$stamp_file"

wasm="$out/index_bg.wasm"
js="$out/index.js"
for f in "$wasm" "$js"; do
  [ -s "$f" ] || { echo "build-worker: $f is missing after the build" >&2; exit 1; }
done
raw=$(( $(wc -c <"$wasm") + $(wc -c <"$js") ))
gz=$(( $(gzip -9 -c "$wasm" | wc -c) + $(gzip -9 -c "$js" | wc -c) ))
echo "build-worker: $wasm $(wc -c <"$wasm") bytes; $js $(wc -c <"$js") bytes; total $raw bytes, $gz bytes gzip -9" >&2
