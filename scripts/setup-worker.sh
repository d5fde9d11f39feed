#!/usr/bin/env bash
# Installs what the Cloudflare Worker packaging needs, idempotently: the npm packages
# pinned in package-lock.json (wrangler with its workerd, binaryen for wasm-opt) with
# `npm ci`, the Rust target wasm32-unknown-unknown, and wasm-bindgen-cli and
# worker-build at exactly the versions Cargo.lock pins, each in a versioned directory
# of the cache ($PERSONA_EDGE_CACHE, default ~/.cache/persona-edge).
# Fast when everything is present: it only compares versions.
# Prints, on its last lines, the environment worker-build runs with.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_worker_tools
worker_tools_env
