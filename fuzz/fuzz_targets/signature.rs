//! `Persona-Signature` verification, through `Policy::evaluate` with a signature
//! required, and `signature_header`.
//!
//! Input layout (reads past the end are zero; see docs/fuzzing.md):
//!
//! ```text
//! byte 0    flags: bit 0 a wrong secret listed before the right one, bit 1 one after,
//!           bits 2-3 header name spelling, bit 4 fuzzed values also sent as separate
//!           header entries, bit 5 now before t instead of after, bit 6 every
//!           single-character change (bodies up to 16 bytes)
//! secret    length byte (modulo 48), bytes as lossy UTF-8 (empty: a fixed secret)
//! t         5 bytes, modulo 10^12 (the format allows 12 digits)
//! tolerance 4 bytes, modulo 604801
//! delta     4 bytes, modulo tolerance + 1: now = t ± delta
//! mutation  position (2 bytes), a replacement byte, a body XOR byte
//! values    count byte (modulo 4), then per value a length byte (modulo 121) and bytes
//! rest      the body
//! ```
//!
//! Invariants: never panics; `signature_header` writes `t=<t>,v1=<HMAC-SHA256 hex>` as
//! computed here independently; a header it produced verifies within the tolerance
//! (alone, next to other groups, among other header entries, while there are at most
//! `MAX_SIGNATURE_GROUPS` groups in all; more are malformed) and is stale outside it;
//! a wrong secret is a mismatch; any single-character replacement, deletion or
//! insertion in that header (other than a hex digit's case, white space at either
//! end, or one comma at the end; every position when bit 6 asks and the body is at most 16 bytes, three
//! fuzzed positions otherwise)
//! and any single-byte change to the body is refused as missing, malformed,
//! stale or mismatched, never accepted; arbitrary header values are only ever
//! accepted when they contain a genuine MAC of the body (checked with an independent
//! HMAC); no header is `signature_missing`, an empty one `signature_malformed`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use persona_edge_core::{
    ErrorCode, MAX_SIGNATURE_GROUPS, Outcome, Policy, RequestHead, signature_header,
};
use persona_edge_fuzz::*;
use serde_json::json;

const NAMES: [&str; 4] = [
    "persona-signature",
    "Persona-Signature",
    "PERSONA-SIGNATURE",
    "persona-Signature",
];

struct Verifier {
    policy: Policy,
    secrets: Vec<String>,
    tolerance: u64,
    name: &'static str,
}

impl Verifier {
    fn new(secrets: Vec<String>, tolerance: u64, name: &'static str) -> Verifier {
        let config = json!({"signature": {"secrets": secrets, "tolerance_seconds": tolerance}});
        let policy = match Policy::from_json(config.to_string().as_bytes()) {
            Ok(p) => p,
            Err(e) => panic!("invariant: a valid signature config was refused: {e}"),
        };
        Verifier {
            policy,
            secrets,
            tolerance,
            name,
        }
    }

    fn evaluate<'b>(&self, values: &[&str], body: &'b [u8], now: u64) -> Outcome<'b> {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(values.iter().map(|v| (self.name, *v)));
        let head = RequestHead {
            method: "POST",
            headers: &headers,
            peer: Some("35.232.44.140"),
        };
        self.policy.evaluate(&head, body, now).1
    }

    /// The outcome, its shape checked (a JSON parse of any reply: kept off hot loops).
    fn outcome<'b>(&self, values: &[&str], body: &'b [u8], now: u64) -> Outcome<'b> {
        let outcome = self.evaluate(values, body, now);
        check_outcome_shape(&outcome);
        outcome
    }

    fn accepts(&self, values: &[&str], body: &[u8], now: u64) -> bool {
        !is_signature_rejection(&self.outcome(values, body, now))
    }

    fn refuses(&self, values: &[&str], body: &[u8], now: u64, why: &str) {
        let outcome = self.evaluate(values, body, now);
        invariant!(
            is_signature_rejection(&outcome),
            "{why}: accepted {values:?} over {} body bytes ({outcome:?})",
            body.len()
        );
    }
}

/// How many `t=…,v1=…` groups the values carry: white-space separated, as the core counts.
fn group_count(values: &[&str]) -> usize {
    values
        .iter()
        .flat_map(|v| v.split([' ', '\t']))
        .filter(|g| !g.is_empty())
        .count()
}

fn is_hex_case_change(a: char, b: char) -> bool {
    a.is_ascii_hexdigit() && b.is_ascii_hexdigit() && a.eq_ignore_ascii_case(&b)
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes::new(data);
    let flags = b.byte();
    let mut secret = b.string(47);
    if secret.is_empty() {
        secret = String::from("wbhsec_fuzz");
    }
    let t = b.u64_5() % 1_000_000_000_000;
    let tolerance = u64::from(b.u32()) % 604_801;
    let delta = u64::from(b.u32()) % (tolerance + 1);
    let now = if flags & 32 != 0 {
        t.saturating_sub(delta)
    } else {
        t + delta
    };
    let position = usize::from(b.u16());
    let replacement = char::from(b.byte());
    let body_xor = b.byte().max(1);
    let value_count = b.byte() % 4;
    let values: Vec<String> = (0..value_count).map(|_| b.string(120)).collect();
    let body = b.rest();

    // The header, computed by the core and independently.
    let header = signature_header(&secret, t, body);
    invariant!(
        header == expected_header(&secret, t, body),
        "signature_header wrote {header:?}"
    );

    let mut secrets = Vec::new();
    if flags & 1 != 0 {
        secrets.push(format!("{secret}-previous"));
    }
    secrets.push(secret.clone());
    if flags & 2 != 0 {
        secrets.push(String::from("wbhsec_other"));
    }
    let v = Verifier::new(secrets, tolerance, NAMES[usize::from(flags >> 2) & 3]);

    // Genuine: verifies, alone or with company.
    invariant!(
        v.accepts(&[&header], body, now),
        "a genuine header was refused (t={t}, now={now}, tolerance={tolerance})"
    );
    let rotation = format!("t={t},v1={} {header}", "0".repeat(64));
    invariant!(
        v.accepts(&[&rotation], body, now),
        "a genuine group after another was refused"
    );
    if let [first, rest @ ..] = values.as_slice() {
        let spliced = format!("{first} {header} {}", rest.join(" "));
        let mut entries: Vec<&str> = values.iter().map(String::as_str).collect();
        entries.push(&header);
        for tried in [vec![spliced.as_str()], entries] {
            if group_count(&tried) <= MAX_SIGNATURE_GROUPS {
                invariant!(
                    v.accepts(&tried, body, now),
                    "a genuine group among others was refused: {tried:?}"
                );
            } else {
                invariant!(
                    code_of(&v.outcome(&tried, body, now)) == Some(ErrorCode::SignatureMalformed),
                    "more than {MAX_SIGNATURE_GROUPS} groups were not malformed: {tried:?}"
                );
            }
        }
    }

    // Outside the tolerance: stale.
    let late = t + tolerance + 1 + delta % 1000;
    invariant!(
        code_of(&v.outcome(&[&header], body, late)) == Some(ErrorCode::SignatureStale),
        "a header {} s late was not stale",
        late - t
    );
    if t > tolerance {
        let early = t - tolerance - 1;
        invariant!(
            code_of(&v.outcome(&[&header], body, early)) == Some(ErrorCode::SignatureStale),
            "a header from the future was not stale"
        );
    }
    // A wrong secret: mismatch.
    let wrong = Verifier::new(vec![format!("{secret}x")], tolerance, v.name);
    invariant!(
        code_of(&wrong.outcome(&[&header], body, now)) == Some(ErrorCode::SignatureMismatch),
        "a header made with another secret was not a mismatch"
    );
    invariant!(
        code_of(&v.outcome(&[], body, now)) == Some(ErrorCode::SignatureMissing),
        "no header"
    );
    invariant!(
        code_of(&v.outcome(&[" \t "], body, now)) == Some(ErrorCode::SignatureMalformed),
        "a blank header"
    );

    // Single-character changes to the header: never accepted.
    let chars: Vec<char> = header.chars().collect();
    // Every position when flag bit 6 asks and the body is tiny (each check is an HMAC
    // over it), else three fuzzed positions.
    let sweep: Vec<usize> = if flags & 64 != 0 && body.len() <= 16 {
        (0..=chars.len()).collect()
    } else {
        let n = chars.len() + 1;
        vec![position % n, (position / n) % n, (position * 31 + 7) % n]
    };
    for &i in &sweep {
        if let Some(&original) = chars.get(i) {
            if replacement != original && !is_hex_case_change(original, replacement) {
                let mut m = chars.clone();
                m[i] = replacement;
                let m: String = m.into_iter().collect();
                v.refuses(&[&m], body, now, "a header with one character replaced");
            }
            let mut m = chars.clone();
            m.remove(i);
            let m: String = m.into_iter().collect();
            v.refuses(&[&m], body, now, "a header with one character deleted");
        }
        let blank_at_end = matches!(replacement, ' ' | '\t') && (i == 0 || i == chars.len());
        // What joining repeated headers with ", " leaves: accepted.
        let comma_at_end = replacement == ',' && i == chars.len();
        if !blank_at_end && !comma_at_end {
            let mut m = chars.clone();
            m.insert(i, replacement);
            let m: String = m.into_iter().collect();
            v.refuses(&[&m], body, now, "a header with one character inserted");
        }
    }

    // Single-byte changes to the body: a mismatch.
    let mismatch = |changed: &[u8], what: &str| {
        invariant!(
            code_of(&v.evaluate(&[&header], changed, now)) == Some(ErrorCode::SignatureMismatch),
            "{what} was not a mismatch"
        );
    };
    let positions: Vec<usize> = if flags & 64 != 0 && body.len() <= 16 {
        (0..body.len()).collect()
    } else {
        vec![position % body.len().max(1)]
    };
    for &i in positions.iter().filter(|&&i| i < body.len()) {
        let mut m = body.to_vec();
        m[i] ^= body_xor;
        mismatch(&m, "a body with one byte changed");
        let mut m = body.to_vec();
        m.remove(i);
        mismatch(&m, "a body with one byte deleted");
    }
    let mut m = body.to_vec();
    m.insert(position % (body.len() + 1), body_xor);
    mismatch(&m, "a body with one byte inserted");

    // Arbitrary values: accepted only with a genuine MAC in them.
    let entries: Vec<&str> = values.iter().map(String::as_str).collect();
    let joined = entries.join(" ");
    let tries: Vec<Vec<&str>> = if flags & 16 != 0 {
        vec![entries.clone(), vec![&joined]]
    } else {
        vec![vec![&joined]]
    };
    for values in tries {
        if v.accepts(&values, body, now) {
            invariant!(
                !values.is_empty()
                    && some_genuine_signature(&values, &v.secrets, v.tolerance, now, body),
                "accepted {values:?} with no genuine signature in it"
            );
        }
    }
});
