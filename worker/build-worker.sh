#!/usr/bin/env bash
# Builds the Worker: `worker-build --release` in worker/, which runs cargo for
# wasm32-unknown-unknown (the workspace release profile), wasm-bindgen, wasm-opt -O3
# and esbuild, and writes worker/build/index.js (the ES module entry) and
# worker/build/index_bg.wasm. wrangler.toml runs this as its [build] command.
#
# Every tool is pinned and local, nothing is downloaded from GitHub: wasm-bindgen-cli
# and worker-build at the versions in Cargo.lock (installed here when missing, as
# scripts/setup-worker.sh does), binaryen and esbuild from npm.
#
# When the compiled crate, worker/Cargo.toml and the tool versions are those of the
# last build, the wasm-bindgen/wasm-opt/esbuild steps are skipped, so `wrangler dev`
# restarts stay quick. PERSONA_EDGE_WORKER_PREBUILT=1 skips everything, cargo
# included, when worker/build/ is complete (the integration tests set it when they
# start `wrangler dev`). (scripts/lib.sh: build_worker)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

build_worker
