#!/usr/bin/env bash
# Installs the npm packages pinned in package-lock.json (wrangler 4.86.0 with its
# workerd, binaryen for wasm-opt) into ./node_modules with `npm ci`, idempotently: a
# second run only compares the lock file's digest with the one of the last install.
# Both packagings use binaryen's wasm-opt (scripts/build-filter.sh,
# worker/build-worker.sh). Prints the path of wasm-opt on its last line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

stamp="node_modules/.persona-edge-lock.sha256"
want_lock="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want_lock" ] \
  || [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/.bin/wasm-opt ]; then
  echo "setup-wasm-opt: npm ci (wrangler, binaryen)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$want_lock" > "$stamp"
fi

echo "$root/node_modules/.bin/wasm-opt"
