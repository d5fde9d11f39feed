#!/usr/bin/env bash
# Installs what the Cloudflare Worker packaging needs, idempotently:
#   - the npm packages pinned in package-lock.json (wrangler 4.86.0 with its workerd,
#     binaryen for wasm-opt) into ./node_modules, with `npm ci`
#     (scripts/setup-wasm-opt.sh);
#   - the Rust target wasm32-unknown-unknown;
#   - wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock, and
#     worker-build at exactly the `worker` version in Cargo.lock, each with
#     `cargo install --root` into a versioned directory outside the checkout:
#     ${PERSONA_EDGE_CACHE:-$HOME/.cache/persona-edge}/{wasm-bindgen,worker-build}-VERSION
#     (worker-build would otherwise try to download wasm-bindgen from GitHub).
# Fast when everything is present: it only compares versions.
# Prints, on its last lines, the environment worker/build-worker.sh uses.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${PERSONA_EDGE_CACHE:-$HOME/.cache/persona-edge}"
cd "$root"

say() { echo "setup-worker: $*" >&2; }

# The version of a package in Cargo.lock (the first entry of that name).
locked_version() {
  awk -v name="$1" '
    $0 == "name = \"" name "\"" { found = 1; next }
    found && /^version = / { gsub(/"/, "", $3); print $3; exit }
  ' Cargo.lock
}

# --- npm: wrangler (and workerd), binaryen ---------------------------------
wasm_opt="$("$root/scripts/setup-wasm-opt.sh")"

# --- Rust target --------------------------------------------------------------
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the Rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown >&2
fi

# --- wasm-bindgen-cli and worker-build, pinned by Cargo.lock -------------------
if ! grep -q '^name = "persona-edge-worker"$' Cargo.lock || [ -z "$(locked_version wasm-bindgen)" ]; then
  say "resolving the worker crate's dependencies into Cargo.lock"
  cargo metadata --format-version 1 >/dev/null
fi
wasm_bindgen_version="$(locked_version wasm-bindgen)"
worker_version="$(locked_version worker)"
if [ -z "$wasm_bindgen_version" ] || [ -z "$worker_version" ]; then
  say "Cargo.lock names no wasm-bindgen or worker version"
  exit 1
fi

# install CRATE VERSION BINARY: cargo install into $cache/NAME-VERSION unless the
# binary there already reports VERSION.
install() {
  local crate="$1" version="$2" binary="$3" dir
  dir="$cache/${binary}-${version}"
  if [ -x "$dir/bin/$binary" ] && "$dir/bin/$binary" --version 2>/dev/null | grep -qF "$version"; then
    return 0
  fi
  say "cargo install $crate --version =$version (a few minutes on a cold cache)"
  mkdir -p "$cache"
  # Not --locked: the published lock files of these tools were seen not to resolve.
  cargo install --quiet "$crate" --version "=$version" --root "$dir" >&2
  if ! "$dir/bin/$binary" --version 2>/dev/null | grep -qF "$version"; then
    say "$dir/bin/$binary does not report version $version"
    exit 1
  fi
}
install wasm-bindgen-cli "$wasm_bindgen_version" wasm-bindgen
install worker-build "$worker_version" worker-build

echo "WORKER_BUILD=$cache/worker-build-$worker_version/bin/worker-build"
echo "WASM_BINDGEN_BIN=$cache/wasm-bindgen-$wasm_bindgen_version/bin/wasm-bindgen"
echo "WASM_OPT_BIN=$wasm_opt"
