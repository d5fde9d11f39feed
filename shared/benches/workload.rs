//! The benchmark workload, one source for the criterion bench (`process.rs`) and the
//! V8/native comparison (`tests/wasm-bench`, which includes this file): the strict
//! fixture blocklist and the three events, compact as Persona sends them.

// Benchmark set-up: a missing fixture should stop the run loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

/// The strict fixture blocklist: key patterns only, one exemption.
pub const BLOCKLIST: &[&str] = &[
    "name-*",
    "native-name-*",
    "birthdate",
    "birthplace",
    "address-*",
    "*-number",
    "*-photo-url",
    "*-photo",
    "photo-urls",
    "email-address",
    "phone-number",
    "!address-country-code",
];

/// ~2 KB, ~20 KB and ~200 KB events read from `fixtures` (tests/fixtures/events):
/// `document-processed.json`, `inquiry-completed-large.json`, and the latter with its
/// `included` resources repeated ten times. Natively only (they are built with
/// serde_json, keys in document order).
#[cfg(not(target_arch = "wasm32"))]
pub fn events(fixtures: &std::path::Path) -> Vec<(&'static str, Vec<u8>)> {
    use serde_json::Value;
    let compact = |name: &str| {
        let path = fixtures.join(name);
        let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap()
    };
    let small = compact("document-processed.json");
    let medium = compact("inquiry-completed-large.json");
    let mut doc: Value = serde_json::from_slice(&medium).unwrap();
    let included = doc["data"]["attributes"]["payload"]["included"]
        .as_array()
        .unwrap()
        .clone();
    let list = doc["data"]["attributes"]["payload"]["included"]
        .as_array_mut()
        .unwrap();
    for _ in 0..9 {
        list.extend(included.iter().cloned());
    }
    let large = serde_json::to_vec(&doc).unwrap();
    vec![("2KB", small), ("20KB", medium), ("200KB", large)]
}
