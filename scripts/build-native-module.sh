#!/usr/bin/env bash
# Builds persona-edge as a native Envoy dynamic module for this machine:
#
#   ${CARGO_TARGET_DIR:-target}/release-native/libpersona_edge_filter.so
#
# and prints that path on its last line. Envoy loads it as the module named
# `persona_edge_filter` from the directory in ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
# Profile `release-native`: release, but panics unwind so the module can catch them.
#
# The module refuses every configuration until the native driver is wired in.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac

cd "$root"
CARGO_TARGET_DIR="$target" cargo build --quiet --profile release-native -p persona-edge-filter >&2
echo "$target/release-native/libpersona_edge_filter.so"
