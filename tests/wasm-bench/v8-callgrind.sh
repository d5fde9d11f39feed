#!/usr/bin/env bash
# Instructions per `process_body` call in V8, counted by valgrind's callgrind: unlike
# wall-clock time on this shared VM, the count repeats to within about 2% (635-649 K
# in three runs of one build on the 20 KB event, N=1000), so a change
# to the core can be judged by its cost in V8 as well as natively (shared/examples/
# profile.rs). V8 compiles every function with TurboFan up front (`--no-liftoff`, as
# Envoy's V8 does: the flag is in the Envoy 1.40 binary's V8 set-up) on one thread
# (`--single-threaded`), so tiering does not move the count.
#
#   tests/wasm-bench/v8-callgrind.sh EVENT.json [N] [SIGNED]     # N defaults to 500
#   MAP=1 tests/wasm-bench/v8-callgrind.sh EVENT.json             # and per function
#
# It builds the wasm-bench module with its symbol names (target/v8-callgrind), runs
# `loop.mjs` with 0 and with N calls, and prints the difference divided by N. MAP=1
# also lists the instructions of each compiled function per call (the one call before
# the N included), from V8's --perf-basic-prof map; V8's own code is not listed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
event="$(realpath "${1:?usage: v8-callgrind.sh EVENT.json [N] [SIGNED]}")"
n="${2:-500}"
signed="${3:-0}"
command -v valgrind >/dev/null || { echo "v8-callgrind: valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
target="$root/target/v8-callgrind"
(cd "$root" && CARGO_TARGET_DIR="$target" CARGO_PROFILE_RELEASE_STRIP=false \
  cargo build --release --quiet -p persona-edge-wasm-bench --lib --target wasm32-unknown-unknown)
module="$target/wasm32-unknown-unknown/release/persona_edge_wasm_bench.wasm"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

count() { # calls, extra node flags...
  local calls="$1"; shift
  (cd "$work" && valgrind --tool=callgrind --smc-check=all-non-file "$@" \
    --callgrind-out-file="$work/cg.$calls" \
    node --no-liftoff --single-threaded ${NODE_FLAGS:-} "$root/tests/wasm-bench/loop.mjs" \
    "$module" "$event" "$calls" "$signed" 2>"$work/log.$calls" >/dev/null) \
    || { cat "$work/log.$calls" >&2; exit 1; }
  sed -n 's/.*Collected : //p' "$work/log.$calls" | tr -d ,
}
# Both runs alike, so that what is not per call cancels out.
if [ "${MAP:-0}" = 1 ]; then
  export NODE_FLAGS=--perf-basic-prof
  base="$(count 0 --dump-instr=yes)"
  total="$(count "$n" --dump-instr=yes)"
else
  base="$(count 0)"
  total="$(count "$n")"
fi
echo "$(basename "$event"): $(( (total - base) / n )) instructions per call in V8 ($n calls)"
[ "${MAP:-0}" = 1 ] || exit 0

# Self cost by JIT function: callgrind's per-instruction addresses, looked up in the map
# V8 writes to /tmp/perf-PID.map. Costs outside the map (V8 itself, Node) are summed.
map="$(ls -t /tmp/perf-*.map | head -n 1)"  # the last run's
python3 - "$work/cg.$n" "$map" "$n" <<'PY'
import bisect, collections, sys
cg, perf_map, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
ranges = sorted((int(a, 16), int(s, 16), name) for a, s, name in
                (line.rstrip("\n").split(" ", 2) for line in open(perf_map)))
starts = [r[0] for r in ranges]
cost, last, after_call, positions = collections.Counter(), 0, False, 1
for line in open(cg):
    if line.startswith("positions:"):
        positions = len(line.split()) - 1
        continue
    if line.startswith("calls="):
        after_call = True  # the next line is a call's inclusive cost
        continue
    if not line or line[0] not in "0123456789+-*":
        continue
    fields = line.split()
    a = fields[0]
    addr = (int(a, 16) if a.startswith("0x") else last + int(a[1:], 0) if a[0] == "+"
            else last - int(a[1:], 0) if a[0] == "-" else last if a == "*" else int(a, 0))
    last = addr
    if after_call:
        after_call = False
        continue
    i = bisect.bisect_right(starts, addr) - 1
    inside = i >= 0 and addr < ranges[i][0] + ranges[i][1]
    if inside:
        cost[ranges[i][2]] += int(fields[positions]) if len(fields) > positions else 0
# Only JIT code is listed: the rest (V8, Node, libc) is mostly start-up, not per call.
for name, c in cost.most_common(25):
    name = name.removeprefix("JS:").rsplit("-", 2)[0]
    print(f"{c // calls:>10,} per call  {name[:110]}")
PY
