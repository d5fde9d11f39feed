#!/usr/bin/env bash
# Builds persona-edge as a native Envoy dynamic module for this machine:
#
#   ${CARGO_TARGET_DIR:-target}/persona-edge/libpersona_edge_filter.so
#
# and prints that path on its last line. Envoy loads it as the module named
# `persona_edge_filter` from the directory in ENVOY_DYNAMIC_MODULES_SEARCH_PATH
# (envoy/envoy-native.yaml, docs/envoy.md). Profile `release-native`: release, but
# panics unwind so the module can catch them.
#
#   scripts/build-native-module.sh                # the module that ships
#   scripts/build-native-module.sh --panic-test   # the test-only variant, into persona-edge/panic-test/
#
# (scripts/lib.sh: build_native_module)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build_native_module "$@"
