//! A fixed workload for instruction-level profiling, which is repeatable on a noisy
//! machine where wall-clock benchmarks are not:
//!
//! ```sh
//! cargo build --release -p persona-edge-core --example profile
//! N=200 valgrind --tool=callgrind target/release/examples/profile
//! EVENT=document-processed.json target/release/examples/profile
//! CONFIG=my-config.json N=200 valgrind --tool=callgrind target/release/examples/profile
//! ```
//!
//! It runs three loops: serde's `IgnoredAny` validation (the baseline of BENCHMARKS.md),
//! the core validating only, and the core with a realistic blocklist; callgrind's
//! per-function counts separate them.
//!
//! ```sh
//! callgrind_annotate callgrind.out.* | head -40
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Instant;

use persona_edge_core::{Policy, RequestHead};

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let file = std::env::var("EVENT").unwrap_or_else(|_| "inquiry-completed-large.json".into());
    let body = std::fs::read(root.join("tests/fixtures/events").join(&file)).unwrap_or_default();
    // `CONFIG=FILE` replaces the blocklist loop's configuration (a `?type=` entry has
    // the body replayed from a full tape rather than rewritten in the scanner's pass).
    let strict = br#"{"signature":{"required":false},"blocklist":["name-*","native-name-*","birthdate","birthplace","address-*","*-number","*-photo-url","*-photo","photo-urls","email-address","phone-number","!address-country-code"]}"#;
    let blocklist =
        std::env::var_os("CONFIG").map_or_else(|| strict.to_vec(), |p| std::fs::read(p).unwrap());
    let unchanged = br#"{"signature":{"required":false}}"#;
    let n: u32 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    // `ONLY=IgnoredAny` (or `validate only`, `blocklist`) runs one loop, for callgrind totals.
    let only = std::env::var("ONLY").ok();
    let runs = |label: &str| only.as_deref().is_none_or(|o| o == label);
    // The baseline the core is measured against: validating the JSON with serde alone.
    let start = Instant::now();
    for _ in 0..if runs("IgnoredAny") { n } else { 0 } {
        let parsed: Result<serde::de::IgnoredAny, _> =
            serde_json::from_slice(std::hint::black_box(&body));
        std::hint::black_box(parsed.is_ok());
    }
    println!(
        "IgnoredAny: {:?} per validation of {file}",
        start.elapsed() / n.max(1)
    );
    for (label, config) in [
        ("validate only", &unchanged[..]),
        ("blocklist", blocklist.as_slice()),
    ] {
        if !runs(label) {
            continue;
        }
        let Ok(policy) = Policy::from_json(config) else {
            return;
        };
        let headers = [("content-type", "application/json")];
        let head = RequestHead {
            method: "POST",
            headers: &headers,
            peer: Some("35.232.44.140"),
        };
        let Ok(pending) = policy.check_head(&head) else {
            return;
        };
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(
                policy
                    .process_body(&pending, std::hint::black_box(&body), 0)
                    .verdict(),
            );
        }
        println!(
            "{label}: {:?} per delivery of {file} ({} bytes)",
            start.elapsed() / n.max(1),
            body.len()
        );
    }
}
