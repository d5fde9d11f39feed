//! One blocklist entry, arbitrary text: `{"signature":{"required":false},
//! "blocklist":[ENTRY]}` (the input as lossy UTF-8).
//!
//! Invariants: never panics; the configuration loads, or is refused with exactly one
//! error, at `blocklist[0]`, whose message carries no control character; entries the
//! documentation refuses (empty, white space, a key with `/`, a short or misplaced
//! path, a query other than `?type=<type>`) are refused, and plain well-formed ones
//! load; a loaded entry, applied to sample events, forwards valid JSON that differs
//! from the input only by members removed inside the payload's `attributes` objects
//! (bytes a subsequence of the input's, `stripped` the number removed); an exemption
//! alone changes nothing; a plain key entry leaves no attribute spelled like it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use persona_edge_core::{Outcome, Policy, RequestHead};
use persona_edge_fuzz::*;
use serde_json::json;

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*')
}

/// Entries the documentation says are refused (a conservative reading).
fn must_refuse(entry: &str) -> bool {
    if entry.is_empty() || entry.chars().any(char::is_whitespace) {
        return true;
    }
    let rest = entry.strip_prefix('!').unwrap_or(entry);
    let (body, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    if let Some(q) = query {
        match q.strip_prefix("type=") {
            None => return true,
            Some(t) if t.is_empty() || t.contains(['?', '&', '=']) => return true,
            Some(_) => {}
        }
    }
    if body.is_empty() {
        return true;
    }
    match body.strip_prefix('/') {
        Some(path) => {
            let steps: Vec<&str> = path.split('/').collect();
            if steps.iter().any(|s| s.is_empty()) || steps.len() < 3 {
                return true;
            }
            let cannot_be = |step: &str, names: &[&str]| {
                !step.contains('*') && !names.contains(&simple_norm(step).as_str())
            };
            cannot_be(steps[0], &["data", "included"]) || cannot_be(steps[1], &["attributes"])
        }
        None => body.contains('/'),
    }
}

/// Entries that are plainly well formed and must load.
fn must_accept(entry: &str) -> bool {
    let rest = entry.strip_prefix('!').unwrap_or(entry);
    let (body, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let query_ok = match query {
        None => true,
        Some(q) => q.strip_prefix("type=").is_some_and(|t| {
            !t.is_empty() && t.chars().all(|c| is_key_char(c) || c == '.' || c == '/')
        }),
    };
    let body_ok = match body.strip_prefix('/') {
        None => !body.is_empty() && body.chars().all(is_key_char),
        Some(path) => {
            let steps: Vec<&str> = path.split('/').collect();
            steps.len() >= 3
                && steps
                    .iter()
                    .all(|s| !s.is_empty() && s.chars().all(is_key_char))
                && (steps[0] == "*"
                    || spells(steps[0], &["data"])
                    || spells(steps[0], &["included"]))
                && (steps[1] == "*" || spells(steps[1], &["attributes"]))
        }
    };
    query_ok && body_ok
}

/// The words of a plain key entry written with separators (`name-first`,
/// `ADDRESS_STREET_1`): lower-case alphabetic or numeric words only.
fn plain_words(entry: &str) -> Option<Vec<String>> {
    if entry.is_empty() {
        return None;
    }
    let words: Vec<String> = entry
        .split(['-', '_'])
        .map(str::to_ascii_lowercase)
        .collect();
    let ok = words.iter().all(|w| {
        !w.is_empty()
            && (w.bytes().all(|b| b.is_ascii_lowercase()) || w.bytes().all(|b| b.is_ascii_digit()))
    });
    let same_case = entry.bytes().all(|b| !b.is_ascii_uppercase())
        || entry.bytes().all(|b| !b.is_ascii_lowercase());
    (ok && same_case).then_some(words)
}

fn apply(entry: &str, policy: &Policy, body: &[u8], preserve: bool) {
    let headers = [("content-type", "application/json")];
    let head = RequestHead {
        method: "POST",
        headers: &headers,
        peer: Some("35.232.44.140"),
    };
    let (_, outcome) = policy.evaluate(&head, body, NOW);
    check_outcome_shape(&outcome);
    let Outcome::Forward(f) = outcome else {
        panic!(
            "invariant: a valid event was not forwarded with blocklist [{entry:?}]: {outcome:?}"
        );
    };
    invariant!(
        is_valid_json(&f.body),
        "invalid JSON forwarded with blocklist [{entry:?}]"
    );
    if entry.starts_with('!') && preserve {
        invariant!(
            f.body.as_ref() == body && f.stripped == 0,
            "an exemption alone changed the body"
        );
        return;
    }
    if preserve {
        invariant!(
            is_subsequence(&f.body, body),
            "with preserve, the output is the input with bytes removed"
        );
    }
    let input = Tree::parse(body).expect("the samples parse");
    let output = Tree::parse(&f.body).expect("checked valid above");
    let mut d = Diff::default();
    if let Err(why) = diff(&input, &output, Zone::Root, preserve, &mut d) {
        panic!(
            "invariant: {why}\nentry {entry:?}\noutput {}",
            String::from_utf8_lossy(&f.body)
        );
    }
    if !d.unclear && !input.has_duplicate_keys() {
        invariant!(
            d.removed == f.stripped,
            "stripped {} but {} members are gone",
            f.stripped,
            d.removed
        );
    }
    if let Some(words) = plain_words(entry) {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let mut keys = Vec::new();
        attribute_keys(&output, Zone::Root, &mut keys);
        for key in keys {
            invariant!(!spells(key, &words), "{key:?} survived the entry {entry:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let entry = String::from_utf8_lossy(data);
    let entry = entry.as_ref();
    let config = json!({"signature": {"required": false}, "blocklist": [entry]});
    match Policy::from_json(config.to_string().as_bytes()) {
        Err(errors) => {
            invariant!(
                errors.0.len() == 1 && errors.0[0].field == "blocklist[0]",
                "refused {entry:?} with {errors:?}"
            );
            let message = &errors.0[0].message;
            invariant!(
                !message.is_empty() && !message.chars().any(char::is_control),
                "error message {message:?}"
            );
            invariant!(
                !must_accept(entry),
                "refused the well-formed entry {entry:?}: {message}"
            );
        }
        Ok(policy) => {
            invariant!(
                !must_refuse(entry),
                "loaded the entry {entry:?}, which the documentation refuses"
            );
            apply(entry, &policy, SAMPLE_EVENT, true);
            apply(entry, &policy, ESCAPED_EVENT, true);
            let camel = json!({"signature": {"required": false}, "blocklist": [entry], "normalize": {"inflection": "camel"}});
            let policy =
                Policy::from_json(camel.to_string().as_bytes()).expect("the same entry loads");
            apply(entry, &policy, SAMPLE_EVENT, false);
        }
    }
});
