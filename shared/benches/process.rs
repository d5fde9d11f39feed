//! `cargo bench -p persona-edge-core --bench process`
//!
//! The core's `process` against what a user would write instead, in the same run:
//! (a) parse to `serde_json::Value`, strip, serialize; (b) validating the JSON alone
//! with `serde::de::IgnoredAny`; (c) `memcpy` of the same bytes. Plus the source check
//! with the full Persona set and signature verification alone. Ends with a table of
//! medians and ratios read back from criterion's estimates.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput};
use persona_edge_core::{Outcome, Pending, Policy, RequestHead, signature_header};
use serde_json::Value;

mod workload;

use workload::BLOCKLIST;

fn events() -> Vec<(&'static str, Vec<u8>)> {
    workload::events(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/events"))
}

fn policy(signature: bool) -> Policy {
    let config = serde_json::json!({
        "signature": if signature { serde_json::json!({"secrets": ["wbhsec_bench"]}) } else { serde_json::json!({"required": false}) },
        "blocklist": BLOCKLIST,
    });
    Policy::from_json(config.to_string().as_bytes()).unwrap()
}

fn pending(policy: &Policy, signature: Option<&str>) -> Pending {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(s) = signature {
        headers.push(("persona-signature", s));
    }
    let head = RequestHead {
        method: "POST",
        headers: &headers,
        peer: Some("35.232.44.140:443"),
    };
    policy.check_head(&head).unwrap()
}

/// Baseline (a): what a straightforward implementation does.
fn value_round_trip(body: &[u8]) -> Vec<u8> {
    fn blocked(key: &str) -> bool {
        let key = key.replace('_', "-");
        let mut blocked = false;
        for entry in BLOCKLIST {
            let (exempt, pattern) = match entry.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, *entry),
            };
            let hit = match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
                (Some(suffix), _) => key.ends_with(suffix),
                (_, Some(prefix)) => key.starts_with(prefix),
                _ => key == pattern,
            };
            if hit && exempt {
                return false;
            }
            blocked |= hit;
        }
        blocked
    }
    fn strip(v: &mut Value, inside: bool) {
        match v {
            Value::Object(map) => {
                if inside {
                    map.retain(|k, _| !blocked(k));
                }
                for (k, child) in map.iter_mut() {
                    strip(child, inside || k == "attributes");
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| strip(i, inside)),
            _ => {}
        }
    }
    let mut doc: Value = serde_json::from_slice(body).unwrap();
    if let Some(payload) = doc.pointer_mut("/data/attributes/payload") {
        strip(payload, false);
    }
    serde_json::to_vec(&doc).unwrap()
}

fn bench_process(c: &mut Criterion) {
    let plain = policy(false);
    let plain_pending = pending(&plain, None);
    // Scan and envelope alone: a configuration that never changes bodies.
    let unchanged = Policy::from_json(br#"{"signature":{"required":false}}"#).unwrap();
    let unchanged_pending = pending(&unchanged, None);
    for (size, body) in events() {
        // Same work, same answer: the two must strip the same keys.
        let ours = match plain.process_body(&plain_pending, &body, 0) {
            Outcome::Forward(f) => f.body.into_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            serde_json::from_slice::<Value>(&ours).unwrap(),
            serde_json::from_slice::<Value>(&value_round_trip(&body)).unwrap(),
            "the baseline must do the same work"
        );
        let mut group = c.benchmark_group(format!("body/{size}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("process", |b| {
            b.iter(
                || match plain.process_body(&plain_pending, black_box(&body), 0) {
                    Outcome::Forward(f) => black_box(f.body.len()),
                    _ => 0,
                },
            )
        });
        group.bench_function("validate_only", |b| {
            b.iter(|| {
                unchanged
                    .process_body(&unchanged_pending, black_box(&body), 0)
                    .verdict()
            })
        });
        group.bench_function("value_round_trip", |b| {
            b.iter(|| black_box(value_round_trip(black_box(&body))))
        });
        group.bench_function("ignored_any", |b| {
            b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).is_ok())
        });
        group.bench_function("memcpy", |b| {
            b.iter(|| black_box(black_box(&body).to_vec()))
        });
        group.finish();
    }
}

fn bench_checks(c: &mut Criterion) {
    let signed = policy(true);
    let body = events()
        .into_iter()
        .find_map(|(size, body)| (size == "20KB").then_some(body))
        .unwrap();
    let header = signature_header("wbhsec_bench", 1_700_000_000, &body);
    let signed_pending = pending(&signed, Some(&header));
    let mut group = c.benchmark_group("checks");
    let addrs: Vec<std::net::IpAddr> = ["35.230.80.200", "198.51.100.7", "::ffff:34.93.222.99"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    group.bench_function("allowlist_22", |b| {
        b.iter(|| {
            addrs
                .iter()
                .filter(|a| signed.allows(black_box(**a)))
                .count()
        })
    });
    // Verification is one HMAC-SHA256 over the body and a constant-time compare.
    group.bench_function("hmac_20KB", |b| {
        b.iter(|| {
            black_box(signature_header(
                "wbhsec_bench",
                1_700_000_000,
                black_box(&body),
            ))
        })
    });
    group.bench_function("verify_and_process_20KB", |b| {
        b.iter(|| {
            black_box(
                signed
                    .process_body(&signed_pending, black_box(&body), 1_700_000_000)
                    .verdict(),
            )
        })
    });
    group.finish();
}

/// The ratios, measured interleaved: criterion times one function after the other,
/// so this machine's drift lands in the ratio of two of its medians. Here each round
/// times every variant back to back (in rotating order), and the ratio is the median
/// of the rounds' ratios. Written to `criterion/paired_<size>.json` for
/// `bench-harness core`. `BENCH_PAIR_ROUNDS` rounds (default 21) of ~10 ms each.
fn paired_ratios() {
    let rounds: usize = std::env::var("BENCH_PAIR_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(21);
    let plain = policy(false);
    let plain_pending = pending(&plain, None);
    let unchanged = Policy::from_json(br#"{"signature":{"required":false}}"#).unwrap();
    let unchanged_pending = pending(&unchanged, None);
    println!("\ninterleaved pairs, {rounds} rounds; median of the rounds' ratios:");
    for (size, body) in events() {
        // process, validate only, Value round trip, IgnoredAny
        let variants: [Box<dyn Fn() + '_>; 4] = [
            Box::new(|| {
                black_box(
                    plain
                        .process_body(&plain_pending, black_box(&body), 0)
                        .verdict(),
                );
            }),
            Box::new(|| {
                black_box(
                    unchanged
                        .process_body(&unchanged_pending, black_box(&body), 0)
                        .verdict(),
                );
            }),
            Box::new(|| {
                black_box(value_round_trip(black_box(&body)));
            }),
            Box::new(|| {
                black_box(
                    serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).is_ok(),
                );
            }),
        ];
        // Iterations for ~10 ms of the slowest variant's work, after a warm-up.
        let start = std::time::Instant::now();
        let mut calls = 0u32;
        while start.elapsed().as_millis() < 50 {
            (variants[2])();
            calls += 1;
        }
        let iterations = (calls / 5).max(1);
        let mut times = vec![Vec::with_capacity(rounds); variants.len()];
        for round in 0..rounds {
            for k in 0..variants.len() {
                let v = (round + k) % variants.len();
                let start = std::time::Instant::now();
                for _ in 0..iterations {
                    (variants[v])();
                }
                times[v].push(start.elapsed().as_secs_f64());
            }
        }
        let median = |mut xs: Vec<f64>| {
            xs.sort_by(f64::total_cmp);
            xs[xs.len() / 2]
        };
        let ratio =
            |a: usize, b: usize| median((0..rounds).map(|r| times[a][r] / times[b][r]).collect());
        let (over_ignored, over_validate, value_over) = (ratio(0, 3), ratio(0, 1), ratio(2, 0));
        println!(
            "  {size}: process / IgnoredAny {over_ignored:.2}x, process / validate only {over_validate:.2}x, Value round trip / process {value_over:.2}x"
        );
        let json = serde_json::json!({
            "rounds": rounds,
            "iterations": iterations,
            "process_over_ignored_any": over_ignored,
            "process_over_validate_only": over_validate,
            "value_round_trip_over_process": value_over,
        });
        let dir = criterion_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("paired_{size}.json")), json.to_string()).unwrap();
    }
}

fn criterion_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("criterion")
}

fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(id)
        .join("new/estimates.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn print_ratios() {
    println!(
        "\n| event | process | validate only | Value round trip | IgnoredAny | memcpy | Value / process | process / IgnoredAny |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for size in ["2KB", "20KB", "200KB"] {
        let group = format!("body_{size}");
        let get = |id: &str| median_ns(&group, id);
        let ids = [
            "process",
            "validate_only",
            "value_round_trip",
            "ignored_any",
            "memcpy",
        ];
        if let [Some(p), Some(o), Some(v), Some(i), Some(m)] = ids.map(get) {
            println!(
                "| {size} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.2} µs | {:.2}x | {:.2}x |",
                p / 1e3,
                o / 1e3,
                v / 1e3,
                i / 1e3,
                m / 1e3,
                v / p,
                p / i
            );
        }
    }
    if let Some(a) = median_ns("checks", "allowlist_22") {
        println!(
            "\nallowlist check, 3 addresses against the 22 Persona addresses: {:.1} ns per address",
            a / 3.0
        );
    }
    if let Some(s) = median_ns("checks", "hmac_20KB") {
        println!("signature (HMAC-SHA256) over 20 KB: {:.1} µs", s / 1e3);
    }
    if let Some(s) = median_ns("checks", "verify_and_process_20KB") {
        println!("verify + process, 20 KB: {:.1} µs", s / 1e3);
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_process(&mut c);
    bench_checks(&mut c);
    c.final_summary();
    print_ratios();
    paired_ratios();
}
