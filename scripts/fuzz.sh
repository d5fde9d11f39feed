#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target of persona-edge-core for a fixed time each,
# one after another, one libFuzzer job each. Exits non-zero on any crash, timeout or
# out-of-memory (the reproducer is left in fuzz/corpus-run/artifacts/<target>/).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]        (default 60)
#
# It installs cargo-fuzz (pinned, `cargo install --locked`) into the cache
# ($PERSONA_EDGE_CACHE/cargo-fuzz, scripts/lib.sh) if it is missing, checks
# that fuzz/Cargo.lock is current, and fuzzes a scratch corpus in
# fuzz/corpus-run/<target>/ (git-ignored) seeded from the committed fuzz/corpus/<target>/,
# which is never written to. Environment:
#   FUZZ_TARGETS     targets to run (default: body signature config blocklist_entry)
#   FUZZ_SANITIZER   none (default) or address; the core has no unsafe code, and
#                    AddressSanitizer costs 4-6x in executions (see docs/fuzzing.md)
#   FUZZ_FRESH=1     discard the scratch corpus from earlier runs first
#   FUZZ_COVERAGE=1  afterwards, report which of the core's functions and edges each
#                    target's corpus reaches (builds the address-sanitizer binaries,
#                    whose runtime symbolizes)
# Details: docs/fuzzing.md.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seconds="${1:-60}"
targets="${FUZZ_TARGETS:-body signature config blocklist_entry}"
sanitizer="${FUZZ_SANITIZER:-none}"
cd "$root"

if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  say "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (a whole number of seconds, at least 1)"
  exit 2
fi
case "$sanitizer" in none | address) ;; *) say "FUZZ_SANITIZER must be none or address"; exit 2 ;; esac

# --- tools -------------------------------------------------------------------------
ensure_cargo_fuzz

# The committed lock file is used as it is: refuse to run if it would have to change.
if ! cargo +nightly metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null; then
  say "fuzz/Cargo.lock is out of date with fuzz/Cargo.toml or shared/Cargo.toml; update it deliberately"
  exit 1
fi

host="$(rustc +nightly -vV | sed -n 's/^host: //p')"

# build SANITIZER: every target, into fuzz/target/SANITIZER (or, when CARGO_TARGET_DIR is
# set, as CI does to cache builds, into its fuzz-SANITIZER: the fuzz flags must not
# invalidate the workspace's own artifacts); prints the binaries' directory.
build() {
  local dir="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz-$1}"
  dir="${dir:-fuzz/target/$1}"
  say "building the targets (sanitizer: $1) in $dir"
  cargo +nightly fuzz build --fuzz-dir fuzz --sanitizer "$1" --target-dir "$dir" >&2
  echo "$dir/$host/release"
}
bin_dir="$(build "$sanitizer")"

max_len() {
  case "$1" in
    body) echo 32768 ;;  # room for the 16 KB seed and for small max_body_bytes limits
    *) echo 4096 ;;
  esac
}

# --- runs --------------------------------------------------------------------------
mkdir -p fuzz/corpus-run/logs
failed=()
summary=()
for target in $targets; do
  if [ ! -d "fuzz/corpus/$target" ]; then
    say "unknown target $target"
    exit 2
  fi
  run="fuzz/corpus-run/$target"
  artifacts="fuzz/corpus-run/artifacts/$target"
  log="fuzz/corpus-run/logs/$target.log"
  if [ "${FUZZ_FRESH:-0}" = 1 ]; then rm -rf "$run"; fi
  rm -rf "$artifacts"
  mkdir -p "$run" "$artifacts"
  cp -n fuzz/corpus/"$target"/* "$run"/ 2>/dev/null || true

  say "$target: ${seconds}s"
  status=0
  "$bin_dir/$target" "$run" \
    -max_total_time="$seconds" \
    -dict="fuzz/dict/$target.dict" \
    -max_len="$(max_len "$target")" \
    -timeout=10 \
    -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts/" \
    -print_final_stats=1 \
    >"$log" 2>&1 || status=$?

  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
  cov="$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\) corp: \([0-9]*\)\/.*/cov \1, ft \2, corpus \3/p' <<<"$done_line")"
  found="$(find "$artifacts" -type f | head -1)"
  if [ "$status" -ne 0 ] || [ -n "$found" ]; then
    failed+=("$target")
    summary+=("$target: FAILED (exit $status) ${found:+reproducer $found}")
    say "$target FAILED; the end of $log:"
    grep -v '# Uses:' "$log" | tail -40 >&2
    if [ -n "$found" ]; then
      say "reproduce: $bin_dir/$target $found"
    fi
  else
    summary+=("$target: ok, ${execs:-?} executions (${rate:-?}/s), ${cov:-no stats}")
  fi
done

# --- coverage (optional) -------------------------------------------------------------
if [ "${FUZZ_COVERAGE:-0}" = 1 ]; then
  cov_dir="$(build address)"
  for target in $targets; do
    # -print_coverage lists every instrumented function with its edges; keep the core's.
    "$cov_dir/$target" -runs=0 -print_coverage=1 "fuzz/corpus-run/$target" 2>&1 \
      | grep -E '^(UN)?COVERED_FUNC:' | grep '/shared/src/' \
      | awk -v t="$target" '{ split($5, e, "/"); hit += e[1]; all += e[2]; n++; if ($1 == "COVERED_FUNC:") f++ }
          END { printf "%s: core coverage %d of %d functions, %d of %d edges (%.1f%%)\n", t, f, n, hit, all, all ? 100 * hit / all : 0 }' \
      | tee -a fuzz/corpus-run/logs/coverage.log
  done
fi

echo "fuzz summary (${seconds}s per target, sanitizer $sanitizer):"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  say "failed: ${failed[*]}"
  exit 1
fi
