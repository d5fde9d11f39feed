#!/usr/bin/env bash
# Builds persona-edge as a native Envoy dynamic module for this machine:
#
#   ${CARGO_TARGET_DIR:-target}/release-native/libpersona_edge_filter.so
#
# and prints that path on its last line. Envoy loads it as the module named
# `persona_edge_filter` from the directory in ENVOY_DYNAMIC_MODULES_SEARCH_PATH.
# Profile `release-native`: release, but panics unwind so the module can catch them.
#
#   scripts/build-native-module.sh            # the module (refuses every configuration
#                                             # until the native driver is wired in)
#   scripts/build-native-module.sh --spike    # with the spike filter (cargo feature
#                                             # native-spike), for tests/tests/native_spike.rs
set -euo pipefail

features=()
case "${1:-}" in
  "") ;;
  --spike) features=(--features native-spike) ;;
  *) echo "usage: $0 [--spike]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac

cd "$root"
CARGO_TARGET_DIR="$target" cargo build --quiet --profile release-native -p persona-edge-filter "${features[@]}" >&2
echo "$target/release-native/libpersona_edge_filter.so"
