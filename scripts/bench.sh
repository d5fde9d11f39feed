#!/usr/bin/env bash
# `make bench`: every benchmark of persona-edge in one run, on loopback, in about
# 8 minutes once built, ending with ONE table of medians and ratios (also written to
# target/bench/table.md; BENCHMARKS.md records the latest one by hand).
#
#   1. the core, native: criterion (shared/benches/process.rs), shorter measurements;
#   2. the core in wasm: the same process_body in V8 (Node) against the same loop
#      natively, interleaved (tests/wasm-bench);
#   3. Envoy 1.40: passthrough (router only) / native RBAC with the 22 Persona
#      addresses / an empty Wasm filter in persona-edge's place (tests/wasm-floor:
#      what any Wasm filter costs) / the persona-edge filter with envoy/envoy.yaml,
#      for a denied source and 2 KB and 20 KB signed deliveries: wrk p50/p99 at 1
#      connection, throughput and Envoy CPU per request at 16 connections, rounds
#      interleaved;
#   4. the Worker in workerd against a pass-through Worker, 20 KB deliveries;
#   5. the sizes of the filter .wasm and the Worker bundle.
# Ratios are persona-edge ÷ the baseline measured in the same run.
#
# Installs what it needs (scripts/lib.sh: ensure_all, and ensure_bench_tools for wrk
# and taskset with apt-get, and Node 20).
# Knobs (environment): BENCH_ROUNDS (3), BENCH_SECONDS per wrk run (4), BENCH_WARMUP
# (2), BENCH_WORKER_ROUNDS (5), BENCH_WASM_ROUNDS (25), BENCH_CRITERION_SECONDS (2), BENCH_PAIR_ROUNDS (21),
# BENCH_SERVER_CPU (0) and BENCH_CLIENT_CPU (1): the server under test and wrk are
# pinned to these two cores. Run it on a quiet machine: the table says how loaded
# it was.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$root"

out="$target_dir/bench"
bin="$target_dir/release"
mkdir -p "$out"
rows="$out/rows.tsv"
: >"$rows"
began=$(date +%s)
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

step "setup (wrk, Envoy 1.40, workerd, Node)"
ensure_all
ensure_bench_tools

step "release builds"
cargo build --release --quiet --bin persona-edge --bin demo-origin
build_filter >/dev/null
build_worker
build_filter persona-edge-wasm-floor >/dev/null
cargo build --release --quiet -p persona-edge-wasm-bench --lib --target wasm32-unknown-unknown
cargo build --release --quiet -p persona-edge-wasm-bench --bin wasm-bench
cargo build --release --quiet -p persona-edge-tests --bin bench-harness
cargo bench --quiet -p persona-edge-core --bench process --no-run

step "1/5 core, native (criterion; log in $out/criterion.log)"
since=$(date +%s)
cargo bench --quiet -p persona-edge-core --bench process -- \
  --warm-up-time 1 --measurement-time "${BENCH_CRITERION_SECONDS:-2}" >"$out/criterion.log" 2>&1 \
  || { tail -30 "$out/criterion.log"; exit 1; }
sed -n '/^| event/,$p' "$out/criterion.log"
"$bin/bench-harness" core --rows "$rows" --since "$since"

step "2/5 core in wasm (V8) against native"
"$bin/wasm-bench" --rows "$rows" \
  --wasm "$target_dir/wasm32-unknown-unknown/release/persona_edge_wasm_bench.wasm"

step "3/5 Envoy: passthrough, RBAC, empty Wasm filter, persona-edge"
"$bin/bench-harness" envoy --rows "$rows"

step "4/5 Worker in workerd: pass-through, persona-edge"
"$bin/bench-harness" worker --rows "$rows"

step "5/5 sizes"
"$bin/bench-harness" sizes --rows "$rows"

ended=$(date +%s)
{
  echo "persona-edge benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- shared filter worker 2>/dev/null || echo ' (with uncommitted changes to shared/filter/worker)')"
  echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg); $((ended - began)) s"
  echo "command: make bench (scripts/bench.sh)"
  echo
  "$bin/bench-harness" table "$rows"
} >"$out/table.md"
step "results (also in $out/table.md)"
cat "$out/table.md"
