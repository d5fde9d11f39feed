//! `wasm-bench`: the core's `process` in V8 against the same loop natively, in one run.
//!
//! ```sh
//! cargo build --release -p persona-edge-wasm-bench --lib --target wasm32-unknown-unknown
//! cargo run --release -p persona-edge-wasm-bench --bin wasm-bench -- [--rounds N] [--rows FILE]
//! ```
//!
//! Builds the 2 KB, 20 KB and 200 KB events exactly as `shared/benches/process.rs` does,
//! starts `node tests/wasm-bench/run.mjs` with the .wasm and the events, and then, round
//! after round, times the same number of `process_body` calls natively (here) and in
//! V8 (Node times `bench_run` with `process.hrtime.bigint()`), back to back,
//! alternating which goes first. Both sides must return the same checksum. Prints the
//! median times per event and the median of the pairs' ratios, and appends rows for
//! scripts/bench.sh's table to `--rows FILE`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use persona_edge_wasm_bench::{Bench, workload};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The events of `shared/benches/process.rs`, byte for byte, with whether the
/// signature is verified too: `process` at each size, then `verify_and_process_20KB`.
fn events() -> Vec<(&'static str, Vec<u8>, bool)> {
    let mut events: Vec<_> = workload::events(&root().join("tests/fixtures/events"))
        .into_iter()
        .map(|(size, body)| (size, body, false))
        .collect();
    let medium = events
        .iter()
        .find(|e| e.0 == "20KB")
        .map(|e| e.1.clone())
        .unwrap();
    for event in &mut events {
        event.0 = match event.0 {
            "2KB" => "process 2KB",
            "20KB" => "process 20KB",
            _ => "process 200KB",
        };
    }
    events.push(("verify + process 20KB", medium, true));
    events
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.2} µs", ns / 1e3)
    }
}

struct Node {
    child: std::process::Child,
    input: std::process::ChildStdin,
    output: BufReader<std::process::ChildStdout>,
}

impl Node {
    fn start(wasm: &Path, events: &[String]) -> (Node, Vec<u32>) {
        let mut child = Command::new("node")
            .arg(root().join("tests/wasm-bench/run.mjs"))
            .arg(wasm)
            .args(events)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("node: {e} (Node 20 is needed)"));
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        let mut node = Node {
            child,
            input,
            output,
        };
        let ready = node.line();
        let checksums = ready
            .strip_prefix("ready")
            .unwrap_or_else(|| panic!("node said {ready:?}"))
            .split_whitespace()
            .map(|c| c.parse().unwrap())
            .collect();
        (node, checksums)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "node exited");
        line.trim().to_string()
    }

    /// (nanoseconds, checksum) of `iterations` calls in V8.
    fn run(&mut self, slot: usize, iterations: u32) -> (f64, u32) {
        writeln!(self.input, "{slot} {iterations}").unwrap();
        self.input.flush().unwrap();
        let answer = self.line();
        let (ns, sum) = answer
            .split_once(' ')
            .unwrap_or_else(|| panic!("node said {answer:?}"));
        (ns.parse().unwrap(), sum.parse().unwrap())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn native(bench: &Bench, iterations: u32) -> (f64, u32) {
    let start = Instant::now();
    let sum = bench.run(iterations);
    (start.elapsed().as_nanos() as f64, sum)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut rounds: usize = std::env::var("BENCH_WASM_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(25);
    let mut rows: Option<PathBuf> = None;
    let mut wasm =
        root().join("target/wasm32-unknown-unknown/release/persona_edge_wasm_bench.wasm");
    // Each measurement takes about this long natively: short, so that the two sides
    // of a pair run close together and a burst of other work lands on few pairs.
    let mut budget_ms = 40.0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => rounds = args.next().unwrap().parse().unwrap(),
            "--rows" => rows = args.next().map(PathBuf::from),
            "--wasm" => wasm = args.next().map(PathBuf::from).unwrap(),
            "--budget-ms" => budget_ms = args.next().unwrap().parse().unwrap(),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        wasm.is_file(),
        "{} is missing: cargo build --release -p persona-edge-wasm-bench --lib --target wasm32-unknown-unknown",
        wasm.display()
    );
    let events = events();
    let dir = std::env::temp_dir().join(format!("persona-edge-wasm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let specs: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(i, (_, body, signed))| {
            let p = dir.join(format!("{i}.json"));
            std::fs::write(&p, body).unwrap();
            format!("{}:{}", u8::from(*signed), p.display())
        })
        .collect();
    let benches: Vec<Bench> = events
        .iter()
        .map(|(name, body, signed)| {
            Bench::new(body.clone(), *signed).unwrap_or_else(|| panic!("{name}: not forwarded"))
        })
        .collect();
    let (mut node, checksums) = Node::start(&wasm, &specs);
    let _ = std::fs::remove_dir_all(&dir);
    for (i, b) in benches.iter().enumerate() {
        assert_eq!(
            checksums.get(i).copied(),
            Some(b.run(1)),
            "{}: wasm and native disagree on the output",
            events[i].0
        );
    }

    // Iterations per measurement: about `budget_ms` natively.
    let iterations: Vec<u32> = benches
        .iter()
        .map(|b| {
            // The fastest of a few warm runs: the first ones pay for cold caches.
            let ns = (0..5)
                .map(|_| native(b, 20).0)
                .fold(f64::INFINITY, f64::min);
            ((budget_ms * 1e6 / (ns / 20.0)) as u32).max(1)
        })
        .collect();
    let mut native_ns = vec![Vec::new(); benches.len()];
    let mut wasm_ns = vec![Vec::new(); benches.len()];
    let mut ratios = vec![Vec::new(); benches.len()];
    // Warm-up, about 300 ms per event on each side: V8 compiles with Liftoff first and
    // tiers hot functions up to TurboFan; the CPU's caches and frequency settle.
    let warmup = (300.0 / budget_ms).ceil() as usize;
    for round in 0..rounds + warmup {
        for (i, b) in benches.iter().enumerate() {
            let n = iterations[i];
            let (first_native, second) = if round % 2 == 0 {
                let a = native(b, n);
                (a, node.run(i, n))
            } else {
                let w = node.run(i, n);
                (native(b, n), w)
            };
            let ((tn, sn), (tw, sw)) = (first_native, second);
            assert_eq!(sn, sw, "{}: wasm and native checksums differ", events[i].0);
            if round >= warmup {
                native_ns[i].push(tn / f64::from(n));
                wasm_ns[i].push(tw / f64::from(n));
                ratios[i].push(tw / tn);
            }
        }
    }

    let mut out = String::new();
    println!(
        "core in wasm (V8, Node {}) against native, {rounds} interleaved pairs: median times per call, median of the pairs' ratios:",
        node_version()
    );
    for (i, (name, body, signed)) in events.iter().enumerate() {
        let (n, w) = (median(&mut native_ns[i]), median(&mut wasm_ns[i]));
        // Each pair ran back to back: its ratio is freer of the machine's other work
        // than the ratio of the two medians.
        let ratio = median(&mut ratios[i]);
        println!(
            "  {name:>21} ({:>6} bytes): native {:>10}  wasm {:>10}  wasm/native {ratio:.2}x  ({} iterations per measurement)",
            body.len(),
            time(n),
            time(w),
            iterations[i]
        );
        // The target (within 1.5x of native) is `process`'s; the signed row shows
        // what SHA-256 costs in wasm, where it has no SHA instructions.
        let target = match (*signed, ratio <= 1.5) {
            (true, _) => String::new(),
            (false, true) => "≤ 1.5x native: met".into(),
            (false, false) => "≤ 1.5x native: MISSED".into(),
        };
        out.push_str(&format!(
            "Core in wasm (V8): {name}\t{}\tnative {}\t{ratio:.2}x\t{target}\n",
            time(w),
            time(n)
        ));
    }
    if let Some(rows) = rows {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(rows)
            .unwrap();
        f.write_all(out.as_bytes()).unwrap();
    }
}

fn node_version() -> String {
    Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
