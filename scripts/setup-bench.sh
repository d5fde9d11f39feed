#!/usr/bin/env bash
# Installs what scripts/bench.sh needs beyond scripts/setup.sh, idempotently:
#   - everything the builds need (scripts/setup.sh: toolchain, Envoy 1.40, workerd,
#     worker-build);
#   - wrk (the HTTP load generator, Debian package `wrk`), with apt-get when missing;
#   - taskset (util-linux) to pin Envoy/workerd and wrk to different cores;
#   - Node 20 (already needed by the Worker build) to run the core's .wasm in V8.
# Fast when everything is present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { echo "setup-bench: $*" >&2; }

scripts/setup.sh >&2

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

command -v wrk >/dev/null || apt_install wrk
command -v taskset >/dev/null || apt_install util-linux

node_major="$(node --version 2>/dev/null | sed -n 's/^v\([0-9]*\)\..*/\1/p')"
if [ -z "$node_major" ] || [ "$node_major" -lt 20 ]; then
  say "Node 20 or later is needed (found: $(node --version 2>/dev/null || echo none))"
  exit 1
fi

command -v wrk >/dev/null && command -v taskset >/dev/null
say "done (wrk: $(command -v wrk), node $(node --version))"
