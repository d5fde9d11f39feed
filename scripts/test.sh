#!/usr/bin/env bash
# Every check and every test: formatting, lints, the no_std wasm32 build of the core,
# the release artifacts the integration tests run (the native command, the Envoy
# filter, the Worker bundle), then the whole test suite, including the tests against
# the real Envoy (both packagings: the proxy-wasm filter and the native dynamic module)
# and the real workerd. Installs what it needs first.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

step "setup"
ensure_all

step "format and lints"
cargo fmt --all --check
cargo clippy --workspace --exclude persona-edge-worker --all-targets -- -D warnings
cargo clippy -p persona-edge-worker -p persona-edge-filter --target wasm32-unknown-unknown -- -D warnings
# The native module's test-only variant.
cargo clippy -p persona-edge-filter --features panic-test -- -D warnings

step "the core builds for wasm32-unknown-unknown without std"
cargo build -p persona-edge-core --no-default-features --target wasm32-unknown-unknown --release

step "release artifacts the integration tests run"
cargo build --release --bin persona-edge --bin demo-origin
build_filter >/dev/null
build_native_module --panic-test >/dev/null
build_native_module >/dev/null
build_worker

step "tests (unit, property, golden, real Envoy, real workerd)"
cargo test --workspace --exclude persona-edge-worker
# The Worker crate is a wasm32 cdylib; its pure helpers have native unit tests.
cargo test -p persona-edge-worker --lib
