//! The body pipeline under fuzzed configurations and bodies.
//!
//! Input layout (every read past the end is zero; see docs/fuzzing.md):
//!
//! ```text
//! byte 0   flags: bits 0-1 inflection (preserve, kebab, camel, snake), bit 2 shadow,
//!          bit 3 routing_headers false, bit 4 resign (with bit 5 only: resign needs
//!          verification), bit 5 signed (signature required, the harness signs the
//!          body), bit 6 events filter, bit 7 limits
//! byte 1   entry count (low 3 bits)
//! entries  kind byte k: k%4 in {0,1}: a literal, next byte picks LITERALS, style k/4;
//!          k%4 == 2: next byte picks PATTERNS; k%4 == 3: a fuzzed entry (length byte
//!          modulo 25, then that many bytes, lossy UTF-8)
//! [events] one byte, a bitmask over EVENT_PATTERNS (0: a pattern nothing matches)
//! [limits] max_depth byte, max_body_bytes as two bytes
//! rest     the body
//! ```
//!
//! Invariants:
//! - a Forward's body is valid JSON whenever the input was, and the core forwards
//!   only input that is valid JSON;
//! - no literal blocked key (checked with an independent spelling oracle) survives in
//!   any `attributes` object under `data.attributes.payload`, when nothing is exempt;
//! - nothing changes outside those objects, and inside them members are only removed
//!   (keys compared exactly under `preserve`, by normalised spelling otherwise), and
//!   `stripped` counts the removals;
//! - with `preserve` and only literal entries, the output equals the input with
//!   exactly the literals' spellings removed (order-sensitive, duplicates kept; and as
//!   serde_json values when the input has no duplicate keys), and its bytes are a
//!   subsequence of the input's; with nothing removed they are the input's bytes;
//! - rejections and acknowledgements forward nothing and reply well-formed; an
//!   acknowledgement happens exactly when no `events.forward` pattern matches;
//! - in shadow mode the body is the original bytes, the decision header carries the
//!   verdict, and the verdict is what the same configuration in enforce mode decides;
//! - a body the harness signed passes the signature check; a re-signed forward's
//!   header verifies over the forwarded body; headers set are safe header values.

#![no_main]

use libfuzzer_sys::fuzz_target;
use persona_edge_core::{
    DECISION_HEADER, ErrorCode, Inflection, Mode, Outcome, Policy, RequestHead, Verdict,
    signature_header,
};
use persona_edge_fuzz::*;
use serde_json::{Value, json};

const SECRET: &str = "wbhsec_fuzz_current";
const RESIGN_SECRET: &str = "origin_fuzz_secret";
const PEER: &str = "35.232.44.140:443";

struct Case {
    config: Value,
    inflection: Inflection,
    shadow: bool,
    signed: bool,
    resign: bool,
    /// Plain literals (no wildcard, query or exemption), as words.
    literals: Vec<&'static [&'static str]>,
    /// Whether any entry is an exemption (starts with `!`).
    exemptions: bool,
    /// Whether every entry is a plain literal.
    only_literals: bool,
    /// Whether the entries are all known valid (no fuzzed text).
    known_valid: bool,
    events: Option<Vec<&'static str>>,
    max_depth: usize,
}

fn decode(data: &[u8]) -> (Case, &[u8]) {
    let mut b = Bytes::new(data);
    let flags = b.byte();
    let inflection = [
        Inflection::Preserve,
        Inflection::Kebab,
        Inflection::Camel,
        Inflection::Snake,
    ][usize::from(flags & 3)];
    let shadow = flags & 4 != 0;
    let routing_headers = flags & 8 == 0;
    let signed = flags & 32 != 0;
    let resign = flags & 16 != 0 && signed;
    let n = b.byte() & 7;
    let mut entries = Vec::new();
    let mut literals = Vec::new();
    let mut only_literals = true;
    let mut known_valid = true;
    for _ in 0..n {
        let k = b.byte();
        match k % 4 {
            0 | 1 => {
                let words = LITERALS[usize::from(b.byte()) % LITERALS.len()];
                entries.push(render(words, usize::from(k / 4)));
                literals.push(words);
            }
            2 => {
                entries.push(PATTERNS[usize::from(b.byte()) % PATTERNS.len()].to_owned());
                only_literals = false;
            }
            _ => {
                entries.push(b.string(24));
                only_literals = false;
                known_valid = false;
            }
        }
    }
    let exemptions = entries.iter().any(|e| e.starts_with('!'));
    let events = (flags & 64 != 0).then(|| {
        let mask = b.byte();
        let chosen: Vec<&'static str> = EVENT_PATTERNS
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, p)| *p)
            .collect();
        if chosen.is_empty() {
            vec!["no.such.event"]
        } else {
            chosen
        }
    });
    let mut max_depth = 64;
    let limits = (flags & 128 != 0).then(|| {
        max_depth = 8 + usize::from(b.byte()) % 249;
        let size = 1 + u64::from(b.u16());
        json!({"max_depth": max_depth, "max_body_bytes": size})
    });
    let mut config = json!({
        "mode": if shadow { "shadow" } else { "enforce" },
        "signature": if signed { json!({"secrets": [SECRET]}) } else { json!({"required": false}) },
        "blocklist": entries,
        "normalize": {"inflection": inflection.as_str(), "routing_headers": routing_headers},
    });
    if resign {
        config["resign"] = json!({"secret": RESIGN_SECRET});
    }
    if let Some(ev) = &events {
        config["events"] = json!({"forward": ev});
    }
    if let Some(l) = limits {
        config["limits"] = l;
    }
    let case = Case {
        config,
        inflection,
        shadow,
        signed,
        resign,
        literals,
        exemptions,
        only_literals,
        known_valid,
        events,
        max_depth,
    };
    (case, b.rest())
}

fn load(config: &Value) -> Option<Policy> {
    Policy::from_json(config.to_string().as_bytes()).ok()
}

fuzz_target!(|data: &[u8]| {
    let (case, body) = decode(data);
    let Some(policy) = load(&case.config) else {
        invariant!(
            !case.known_valid,
            "a generated config was refused: {}",
            case.config
        );
        return;
    };
    invariant!(
        policy.mode()
            == if case.shadow {
                Mode::Shadow
            } else {
                Mode::Enforce
            },
        "mode"
    );

    let signature = signature_header(SECRET, NOW, body);
    let mut headers = vec![
        ("content-type", "application/json"),
        ("persona-webhook-attempts-made", "1"),
        ("X-Persona-Event-Id", "spoofed"),
    ];
    if case.signed {
        headers.push(("Persona-Signature", signature.as_str()));
    }
    let head = RequestHead {
        method: "POST",
        headers: &headers,
        peer: Some(PEER),
    };
    let pending = match policy.check_head(&head) {
        Ok(p) => p,
        Err(r) => panic!("invariant: a good head was refused: {r}"),
    };
    if case.shadow {
        invariant!(
            pending.remove_headers().is_empty(),
            "shadow mode removes no header"
        );
        invariant!(
            pending.shadow_rejection().is_none(),
            "a good head in shadow"
        );
    } else {
        let removes = |h: &str| pending.remove_headers().iter().any(|r| r == h);
        invariant!(
            removes("x-persona-event-id"),
            "client x-persona-* headers are removed"
        );
        invariant!(
            removes("persona-signature") == (policy.can_change_body() || policy.resigns()),
            "persona-signature removal"
        );
        invariant!(
            removes("content-length") == policy.can_change_body(),
            "content-length removal"
        );
    }
    let too_large = body.len() > policy.max_body_bytes();
    invariant!(
        policy.check_body_size(body.len()).is_err() == (too_large && !case.shadow),
        "check_body_size({}) with a limit of {}",
        body.len(),
        policy.max_body_bytes()
    );

    let outcome = policy.process_body(&pending, body, NOW);
    check_outcome_shape(&outcome);
    if case.signed {
        invariant!(
            !matches!(
                outcome.verdict(),
                Verdict::Reject(
                    ErrorCode::SignatureMissing
                        | ErrorCode::SignatureMalformed
                        | ErrorCode::SignatureStale
                        | ErrorCode::SignatureMismatch
                )
            ),
            "a body the harness signed was refused: {outcome:?}"
        );
    }
    let input_valid = is_valid_json(body);

    if case.shadow {
        let Outcome::Forward(f) = &outcome else {
            panic!("invariant: shadow mode always forwards, got {outcome:?}");
        };
        invariant!(
            f.body.as_ref() == body,
            "shadow mode forwards the original bytes"
        );
        invariant!(f.stripped == 0, "shadow mode strips nothing");
        let decision = f.verdict.to_string();
        let set: Vec<_> = f.set_headers().collect();
        invariant!(
            set == [(DECISION_HEADER, decision.as_str())],
            "decision header {set:?}"
        );
        // The verdict is what enforce mode does with the same delivery.
        let mut twin_config = case.config.clone();
        twin_config["mode"] = json!("enforce");
        let twin = load(&twin_config).expect("the enforce twin of a loaded config loads");
        let (_, twin_outcome) = twin.evaluate(&head, body, NOW);
        invariant!(
            twin_outcome.verdict() == f.verdict,
            "shadow verdict {} but enforce decides {}",
            f.verdict,
            twin_outcome.verdict()
        );
        if f.verdict == Verdict::Forward {
            invariant!(
                input_valid,
                "forwarded (in shadow) a body that is not valid JSON"
            );
        }
        return;
    }

    match &outcome {
        Outcome::Reject(r) => {
            invariant!(
                r.code != ErrorCode::BodyTooLarge || too_large,
                "body_too_large under the limit"
            );
            invariant!(
                !too_large || r.code == ErrorCode::BodyTooLarge,
                "over the limit but {}",
                r.code
            );
            if r.code == ErrorCode::TooDeep {
                invariant!(
                    nesting_depth(body) > case.max_depth,
                    "too_deep within max_depth {}",
                    case.max_depth
                );
            }
        }
        Outcome::Acknowledge(m) => {
            let Some(events) = &case.events else {
                panic!("invariant: acknowledged {m:?} with every event forwarded");
            };
            invariant!(
                !events
                    .iter()
                    .any(|p| glob_match(p.as_bytes(), m.event_name.as_bytes())),
                "acknowledged {:?}, which {events:?} forwards",
                m.event_name
            );
        }
        Outcome::Forward(f) => check_forward(&case, &policy, body, f, input_valid),
    }
});

fn check_forward(
    case: &Case,
    policy: &Policy,
    body: &[u8],
    f: &persona_edge_core::Forward<'_>,
    input_valid: bool,
) {
    invariant!(
        f.verdict == Verdict::Forward,
        "enforce forward with verdict {}",
        f.verdict
    );
    invariant!(
        input_valid,
        "forwarded a body that is not valid JSON: {:?}",
        String::from_utf8_lossy(body)
    );
    invariant!(
        is_valid_json(&f.body),
        "the forwarded body is not valid JSON: {:?}",
        String::from_utf8_lossy(&f.body)
    );
    invariant!(
        nesting_depth(body) <= case.max_depth,
        "forwarded a body deeper than max_depth {}",
        case.max_depth
    );
    let metadata = f.metadata.as_ref().expect("a forward carries metadata");
    if let Some(events) = &case.events {
        invariant!(
            events
                .iter()
                .any(|p| glob_match(p.as_bytes(), metadata.event_name.as_bytes())),
            "forwarded {:?}, which {events:?} does not list",
            metadata.event_name
        );
    }
    if policy.routing_headers() {
        let routing: Vec<_> = f
            .set_headers()
            .filter(|(n, _)| n.starts_with("x-persona-"))
            .collect();
        invariant!(routing.len() == 6, "routing headers {routing:?}");
    }
    if case.resign {
        let sig: Vec<_> = f
            .set_headers()
            .filter(|(n, _)| *n == "persona-signature")
            .collect();
        invariant!(
            sig.len() == 1 && sig[0].1 == expected_header(RESIGN_SECRET, NOW, &f.body),
            "the re-signed header does not verify over the forwarded body: {sig:?}"
        );
    }
    if !policy.can_change_body() {
        invariant!(
            f.body.as_ref() == body && f.stripped == 0,
            "a config that cannot change bodies changed one"
        );
        return;
    }
    let preserve = case.inflection == Inflection::Preserve;
    if preserve {
        invariant!(
            is_subsequence(&f.body, body),
            "with preserve, the output is the input with bytes removed"
        );
        if f.stripped == 0 {
            invariant!(
                f.body.as_ref() == body,
                "nothing stripped, yet the body changed"
            );
        }
    }

    // serde_json refuses some valid JSON (deeper than 128, numbers beyond f64): then
    // only the checks above apply.
    let Some(input) = Tree::parse(body) else {
        return;
    };
    let Some(output) = Tree::parse(&f.body) else {
        panic!(
            "invariant: serde_json reads the input but not the output: {:?}",
            String::from_utf8_lossy(&f.body)
        );
    };

    // No literal blocked key survives inside the payload's attributes.
    if !case.exemptions {
        let mut keys = Vec::new();
        attribute_keys(&output, Zone::Root, &mut keys);
        for key in keys {
            for words in &case.literals {
                invariant!(
                    !spells(key, words),
                    "blocked key {key:?} (entry {words:?}) survived; config {}",
                    case.config
                );
            }
        }
    }

    // Nothing changes outside attributes; inside, members are only removed.
    let mut d = Diff::default();
    if let Err(why) = diff(&input, &output, Zone::Root, preserve, &mut d) {
        panic!(
            "invariant: {why}\nconfig {}\ninput  {}\noutput {}",
            case.config,
            String::from_utf8_lossy(body),
            String::from_utf8_lossy(&f.body)
        );
    }
    let dups = input.has_duplicate_keys();
    if !d.unclear && !dups {
        invariant!(
            d.removed == f.stripped,
            "stripped {} but {} members are gone",
            f.stripped,
            d.removed
        );
    }

    // With only literals, exactly their spellings are removed.
    if case.only_literals && !case.exemptions {
        let mut removed = 0;
        let Ok(expected) = expected_removal(&input, Zone::Root, &case.literals, &mut removed)
        else {
            return;
        };
        invariant!(
            removed == f.stripped,
            "stripped {} but the oracle removes {removed}",
            f.stripped
        );
        if preserve {
            invariant!(
                output == expected,
                "output differs from the input minus the literals\nconfig {}\ninput  {}\noutput {}",
                case.config,
                String::from_utf8_lossy(body),
                String::from_utf8_lossy(&f.body)
            );
            if !dups {
                let parsed: Value = serde_json::from_slice(&f.body).expect("parsed above");
                invariant!(parsed == expected.to_value(), "serde_json values differ");
            }
        }
    }
}
