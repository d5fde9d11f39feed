#!/usr/bin/env bash
# Builds the Envoy filter as it ships: cargo (release profile, wasm32-unknown-unknown),
# then binaryen's wasm-opt (from npm, pinned in package-lock.json), which shrinks it
# without slowing the request path (docs/performance-notes.md). Writes
#
#   ${CARGO_TARGET_DIR:-target}/persona-edge/persona_edge_filter.wasm
#
# and prints that path on its last line. The tests, the benchmarks and the demo load
# this file; envoy/envoy.yaml names it. wasm-opt (several seconds) is skipped when the
# compiled module and the tool are those of the last run.
#
# scripts/build-filter.sh PACKAGE builds another proxy-wasm cdylib of the workspace the
# same way (scripts/bench.sh: persona-edge-wasm-floor, the empty filter it compares
# with), into persona-edge/LIBNAME.wasm. (scripts/lib.sh: build_filter)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build_filter "${1:-persona-edge-filter}"
