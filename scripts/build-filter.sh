#!/usr/bin/env bash
# Builds the Envoy filter as it ships: cargo (release profile, wasm32-unknown-unknown),
# then binaryen's wasm-opt (from npm, pinned in package-lock.json), which shrinks it
# without slowing the request path (the level was chosen by measurement: BENCHMARKS.md,
# "Filter .wasm"). Writes
#
#   ${CARGO_TARGET_DIR:-target}/persona-edge/persona_edge_filter.wasm
#
# and prints that path on its last line. The tests, the benchmarks and the demo load
# this file; envoy/envoy.yaml names it. wasm-opt (several seconds) is skipped when the
# compiled module and the tool are those of the last run.
#
# scripts/build-filter.sh PACKAGE builds another proxy-wasm cdylib of the workspace the
# same way (scripts/bench.sh: persona-edge-wasm-floor, the empty filter it compares
# with), into persona-edge/LIBNAME.wasm.
set -euo pipefail

package="${1:-persona-edge-filter}"
lib="${package//-/_}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
export CARGO_TARGET_DIR="$target"

# -Oz: the smallest, and the request path measured no slower than without wasm-opt.
# The features are those rustc enables by default for wasm32-unknown-unknown (the
# module keeps no target_features section once stripped, so wasm-opt is told).
opt_flags=(-Oz
  --enable-bulk-memory --enable-bulk-memory-opt --enable-call-indirect-overlong
  --enable-multivalue --enable-mutable-globals --enable-nontrapping-float-to-int
  --enable-reference-types --enable-sign-ext)

wasm_opt="$("$root/scripts/setup-wasm-opt.sh" | tail -n 1)"

cd "$root"
cargo build --release --quiet -p "$package" --target wasm32-unknown-unknown >&2
compiled="$target/wasm32-unknown-unknown/release/$lib.wasm"
out="$target/persona-edge/$lib.wasm"
stamp_file="$out.inputs.sha256"
stamp="$( { sha256sum "$compiled" | cut -d' ' -f1; "$wasm_opt" --version; echo "${opt_flags[*]}"; } | sha256sum | cut -d' ' -f1)"
if [ -s "$out" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] && [ "$out" -nt "$compiled" ]; then
  echo "build-filter: $out is up to date ($(wc -c <"$out") bytes)" >&2
  echo "$out"
  exit 0
fi

mkdir -p "$(dirname "$out")"
"$wasm_opt" "${opt_flags[@]}" "$compiled" -o "$out.tmp"
mv "$out.tmp" "$out"
echo "$stamp" > "$stamp_file"
echo "build-filter: $out $(wc -c <"$out") bytes (cargo's build: $(wc -c <"$compiled") bytes; $(gzip -9 -c "$out" | wc -c) bytes gzip -9)" >&2
echo "$out"
