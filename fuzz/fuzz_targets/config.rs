//! Configuration loading: the input as raw bytes, and the same bytes as the entropy of
//! a structure-aware generator that writes configuration documents field by field,
//! each field valid, invalid or fuzzed.
//!
//! Invariants: `Policy::from_json` and `Policy::load` never panic; a refusal lists at
//! least one error, each with a message; a generated document made only of valid
//! choices loads, and one with a known-invalid choice is refused with an error at that
//! field; a loaded policy answers `check_head` (several heads) and `process_body` (a
//! valid event, signed when the generator knows the secret) without panicking, with
//! well-formed outcomes, forwarded bodies that are valid JSON, and limits in range.

#![no_main]

use arbitrary::{Result as ArbResult, Unstructured};
use libfuzzer_sys::fuzz_target;
use persona_edge_core::{
    ConfigErrors, LoadOptions, Outcome, PERSONA_US, Policy, RequestHead, signature_header,
};
use persona_edge_fuzz::*;
use serde_json::{Map, Value, json};

const EVENT: &[u8] = SAMPLE_EVENT;

/// The environment `Policy::load` sees.
fn env(name: &str) -> Option<String> {
    match name {
        "PERSONA_WEBHOOK_SECRET" => Some(String::from("wbhsec_env_secret")),
        "ORIGIN_SECRET" => Some(String::from("origin_env_secret")),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// What the generator knows about the document it wrote.
#[derive(Default)]
struct Expect {
    /// Fields (error-path prefixes) given a value that must be refused.
    invalid: Vec<String>,
    /// Whether some choice's validity is unknown (fuzzed text).
    unknown: bool,
    /// Whether `from_json` (no environment) must refuse it for lack of a variable.
    needs_env: bool,
    /// A secret deliveries can be signed with.
    secret: Option<String>,
}

/// Chooses among valid (`0..valid`), invalid and fuzzed alternatives.
fn choice(u: &mut Unstructured<'_>, n: u32) -> ArbResult<u32> {
    u.int_in_range(0..=n - 1)
}

fn fuzzed_value(u: &mut Unstructured<'_>, depth: u32) -> ArbResult<Value> {
    Ok(match choice(u, if depth > 3 { 5 } else { 7 })? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => json!(u.arbitrary::<i64>()?),
        3 => json!(u.arbitrary::<f64>()?.clamp(-1e300, 1e300)),
        4 => Value::String(u.arbitrary()?),
        5 => Value::Array(
            (0..u.int_in_range(0..=3)?)
                .map(|_| fuzzed_value(u, depth + 1))
                .collect::<ArbResult<_>>()?,
        ),
        _ => {
            let mut m = Map::new();
            for _ in 0..u.int_in_range(0..=3)? {
                m.insert(u.arbitrary()?, fuzzed_value(u, depth + 1)?);
            }
            Value::Object(m)
        }
    })
}

/// A list of strings: valid ones from `valid`, or a known-invalid one, or fuzzed.
fn string_list(
    u: &mut Unstructured<'_>,
    e: &mut Expect,
    field: &str,
    valid: &[&str],
    invalid: &[&str],
    allow_empty: bool,
) -> ArbResult<Value> {
    let n = u.int_in_range(0..=4)?;
    let mut items = Vec::new();
    for i in 0..n {
        match choice(u, 8)? {
            0..=5 => items.push(json!(u.choose(valid)?)),
            6 => {
                items.push(json!(u.choose(invalid)?));
                e.invalid.push(format!("{field}[{i}]"));
            }
            _ => {
                items.push(json!(u.arbitrary::<String>()?));
                e.unknown = true;
            }
        }
    }
    if items.is_empty() && !allow_empty {
        e.invalid.push(field.to_owned());
    }
    Ok(Value::Array(items))
}

fn generate(u: &mut Unstructured<'_>) -> ArbResult<(Value, Expect)> {
    let mut e = Expect::default();
    let mut root = Map::new();

    if u.arbitrary()? {
        let v = match choice(u, 4)? {
            0 => json!("enforce"),
            1 => json!("shadow"),
            2 => {
                e.invalid.push("mode".into());
                json!(u.choose(&["Enforce", "loud", "", "shadow "])?)
            }
            _ => {
                e.invalid.push("mode".into());
                json!(u.arbitrary::<bool>()?)
            }
        };
        root.insert("mode".into(), v);
    }

    if u.arbitrary()? {
        let mut s = Map::new();
        if u.arbitrary()? {
            let allow = string_list(
                u,
                &mut e,
                "sources.allow",
                &[
                    "persona",
                    "persona-us",
                    "persona-de",
                    "persona-in",
                    "203.0.113.0/24",
                    "2001:db8::/32",
                    "35.232.44.140",
                    "::1",
                    "0.0.0.0/0",
                    "::ffff:34.93.21.229",
                ],
                &[
                    "10.0.0.1/8",
                    "persona-eu",
                    "",
                    "fe80::1%eth0",
                    "1.2.3.4/33",
                    "example.com",
                ],
                false,
            )?;
            s.insert("allow".into(), allow);
        }
        if u.arbitrary()? {
            let ca = match choice(u, 8)? {
                0 => json!({"from": "peer"}),
                1 => json!({"from": "x-forwarded-for", "trusted_hops": u.int_in_range(1..=16)?}),
                2 => {
                    json!({"from": "header", "name": u.choose(&["CF-Connecting-IP", "x-real-ip", "True-Client-IP"])?})
                }
                3 => {
                    e.invalid.push("sources.client_address".into());
                    json!({"from": "x-forwarded-for", "trusted_hops": u.choose(&[0u32, 17, 1000])?})
                }
                4 => {
                    e.invalid.push("sources.client_address".into());
                    u.choose(&[
                        json!({"from": "header"}),
                        json!({"from": "header", "name": "bad name"}),
                        json!({"from": "peer", "trusted_hops": 1}),
                        json!({"from": "x-forwarded-for"}),
                        json!({}),
                        json!({"from": "socket"}),
                    ])?
                    .clone()
                }
                5 => {
                    e.unknown = true;
                    json!({"from": "header", "name": u.arbitrary::<String>()?})
                }
                _ => {
                    e.unknown = true;
                    fuzzed_value(u, 0)?
                }
            };
            s.insert("client_address".into(), ca);
        }
        if u.ratio(1, 10)? {
            e.invalid.push("sources.".into());
            s.insert("allowlist".into(), json!(["persona"]));
        }
        root.insert("sources".into(), Value::Object(s));
    }

    // Signature: always present in a form that may load, unless chosen otherwise.
    // Verification explicitly off: a valid `resign` is then refused.
    let mut unverified = false;
    let sig = match choice(u, 7)? {
        0 => {
            unverified = true;
            json!({"required": false})
        }
        1 => {
            let secret = format!("wbhsec_{}", u.arbitrary::<u32>()?);
            e.secret = Some(secret.clone());
            json!({"secrets": [secret]})
        }
        2 => {
            e.secret = Some(String::from("wbhsec_env_secret"));
            e.needs_env = true;
            json!({"required": true, "secrets_env": ["PERSONA_WEBHOOK_SECRET"], "tolerance_seconds": u.int_in_range(0..=604_800u32)?})
        }
        3 => {
            e.invalid.push("signature".into());
            u.choose(&[
                json!({}),
                json!({"required": true}),
                json!({"secrets": [""]}),
                json!({"secrets_env": ["UNSET_VARIABLE"]}),
                json!({"secrets_env": ["EMPTY"]}),
                json!({"required": false, "tolerance_seconds": 604_801}),
                json!({"required": "no"}),
                json!({"required": false, "secret": "x"}),
            ])?
            .clone()
        }
        4 => {
            let secret: String = u.arbitrary()?;
            if secret.is_empty() {
                e.invalid.push("signature.secrets[0]".into());
            } else {
                e.secret = Some(secret.clone());
            }
            json!({"secrets": [secret], "tolerance_seconds": u.arbitrary::<u32>()? % 700_000})
        }
        5 => {
            e.unknown = true;
            fuzzed_value(u, 0)?
        }
        _ => {
            e.invalid.push("signature".into());
            Value::Null
        }
    };
    if let Some(t) = sig.get("tolerance_seconds").and_then(Value::as_u64)
        && t > 604_800
        && !e.invalid.iter().any(|f| f == "signature")
    {
        e.invalid.push("signature.tolerance_seconds".into());
    }
    if !sig.is_null() || u.arbitrary()? {
        root.insert("signature".into(), sig);
    }

    if u.arbitrary()? {
        let mut valid: Vec<String> = PATTERNS.iter().map(|p| (*p).to_owned()).collect();
        valid.extend(LITERALS.iter().map(|w| render(w, 2)));
        let valid: Vec<&str> = valid.iter().map(String::as_str).collect();
        let list = string_list(
            u,
            &mut e,
            "blocklist",
            &valid,
            &[
                "",
                "a b",
                "/data",
                "/meta/attributes/x",
                "/data/relationships/x",
                "a/b",
                "x?type=",
                "x?kind=y",
                "!",
                "x?type=a&b",
            ],
            true,
        )?;
        root.insert("blocklist".into(), list);
    }

    if u.arbitrary()? {
        let forward = string_list(
            u,
            &mut e,
            "events.forward",
            EVENT_PATTERNS,
            &["", "inquiry approved", "a,b", "x\ny"],
            false,
        )?;
        root.insert("events".into(), json!({ "forward": forward }));
    }

    if u.arbitrary()? {
        let mut n = Map::new();
        if u.arbitrary()? {
            let i = choice(u, 6)?;
            let v = match i {
                0..=3 => json!(["preserve", "kebab", "camel", "snake"][i as usize]),
                4 => {
                    e.invalid.push("normalize.inflection".into());
                    json!(u.choose(&["Camel", "pascal", "", "screaming"])?)
                }
                _ => {
                    e.invalid.push("normalize.inflection".into());
                    json!(3)
                }
            };
            n.insert("inflection".into(), v);
        }
        if u.arbitrary()? {
            if u.ratio(1, 8)? {
                e.invalid.push("normalize.routing_headers".into());
                n.insert("routing_headers".into(), json!("yes"));
            } else {
                n.insert("routing_headers".into(), json!(u.arbitrary::<bool>()?));
            }
        }
        root.insert("normalize".into(), Value::Object(n));
    }

    if u.ratio(1, 3)? {
        let r = match choice(u, 4)? {
            0 => {
                if unverified {
                    e.invalid.push("resign".into());
                }
                json!({"secret": "origin_secret"})
            }
            1 => {
                if unverified {
                    e.invalid.push("resign".into());
                }
                e.needs_env = true;
                json!({"secret_env": "ORIGIN_SECRET"})
            }
            2 => {
                e.invalid.push("resign".into());
                u.choose(&[
                    json!({}),
                    json!({"secret": ""}),
                    json!({"secret": "a", "secret_env": "ORIGIN_SECRET"}),
                    json!({"secret_env": "UNSET_VARIABLE"}),
                    json!({"secret": 1}),
                ])?
                .clone()
            }
            _ => {
                e.unknown = true;
                fuzzed_value(u, 0)?
            }
        };
        root.insert("resign".into(), r);
    }

    if u.arbitrary()? {
        let mut l = Map::new();
        if u.arbitrary()? {
            let v: u64 = if u.ratio(1, 6)? {
                e.invalid.push("limits.max_body_bytes".into());
                *u.choose(&[0u64, 67_108_865, u64::MAX])?
            } else {
                u.int_in_range(1..=67_108_864u64)?
            };
            l.insert("max_body_bytes".into(), json!(v));
        }
        if u.arbitrary()? {
            let v: u64 = if u.ratio(1, 6)? {
                e.invalid.push("limits.max_depth".into());
                *u.choose(&[0u64, 7, 257, 1 << 40])?
            } else {
                u.int_in_range(8..=256u64)?
            };
            l.insert("max_depth".into(), json!(v));
        }
        root.insert("limits".into(), Value::Object(l));
    }

    if u.ratio(1, 12)? {
        let key = u
            .choose(&["colour", "Mode", "blocklists", "limit"])?
            .to_string();
        e.invalid.push(key.clone());
        root.insert(key, json!(1));
    }
    Ok((Value::Object(root), e))
}

fn check_errors(errors: &ConfigErrors) {
    invariant!(!errors.0.is_empty(), "a refusal with no error");
    for e in &errors.0 {
        invariant!(
            !e.message.is_empty(),
            "an error without a message at {:?}",
            e.field
        );
    }
    let _ = errors.to_string();
}

fn exercise(policy: &Policy, secret: Option<&str>) {
    invariant!(
        (1..=64 * 1024 * 1024).contains(&policy.max_body_bytes()),
        "max_body_bytes {}",
        policy.max_body_bytes()
    );
    let signature = secret.map(|s| signature_header(s, NOW, EVENT));
    let us = PERSONA_US[0].to_string();
    let json = "application/json";
    let mut base = vec![
        ("content-type", json),
        ("persona-webhook-attempts-made", "2"),
        ("x-persona-x", "y"),
    ];
    if let Some(sig) = &signature {
        base.push(("persona-signature", sig.as_str()));
    }
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut h = base.clone();
        h.extend_from_slice(extra);
        h
    };
    type Head<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<&'a str>);
    let heads: Vec<Head<'_>> = vec![
        ("POST", base.clone(), Some(us.as_str())),
        (
            "POST",
            with(&[("x-forwarded-for", "198.51.100.1, 35.232.44.140")]),
            Some("10.0.0.1:1"),
        ),
        (
            "POST",
            with(&[("cf-connecting-ip", "35.232.44.140")]),
            Some("203.0.113.9"),
        ),
        ("POST", with(&[("x-real-ip", "::ffff:34.93.21.229")]), None),
        ("GET", base.clone(), Some(us.as_str())),
        (
            "POST",
            vec![("content-type", "text/plain")],
            Some(us.as_str()),
        ),
    ];
    for (method, headers, peer) in &heads {
        let head = RequestHead {
            method,
            headers,
            peer: *peer,
        };
        match policy.check_head(&head) {
            Err(r) => check_rejection(&r),
            Ok(pending) => {
                for h in pending.remove_headers() {
                    invariant!(*h == h.to_ascii_lowercase(), "remove_headers {h:?}");
                }
                let _ = policy.check_body_size(EVENT.len());
                let outcome = policy.process_body(&pending, EVENT, NOW);
                check_outcome_shape(&outcome);
                if let Outcome::Forward(f) = &outcome {
                    invariant!(is_valid_json(&f.body), "forwarded invalid JSON");
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The raw bytes as a document.
    match Policy::from_json(data) {
        Ok(p) => exercise(&p, None),
        Err(e) => check_errors(&e),
    }
    let options = LoadOptions {
        env: &env,
        ..LoadOptions::default()
    };
    if let Ok(p) = Policy::load(data, &options) {
        exercise(&p, None);
    }

    // The same bytes driving the generator.
    let mut u = Unstructured::new(data);
    let Ok((doc, expect)) = generate(&mut u) else {
        return;
    };
    let text = if data.first().is_some_and(|b| b & 1 == 1) {
        serde_json::to_vec_pretty(&doc)
    } else {
        serde_json::to_vec(&doc)
    }
    .expect("a Value serialises");
    for with_env in [false, true] {
        let loaded = if with_env {
            Policy::load(&text, &options)
        } else {
            Policy::from_json(&text)
        };
        let env_missing = expect.needs_env && !with_env;
        match loaded {
            Ok(policy) => {
                invariant!(
                    expect.invalid.is_empty() && !env_missing,
                    "loaded a document with invalid {:?}: {doc}",
                    expect.invalid
                );
                exercise(&policy, expect.secret.as_deref());
            }
            Err(errors) => {
                check_errors(&errors);
                invariant!(
                    !expect.invalid.is_empty() || expect.unknown || env_missing,
                    "refused a valid document ({errors}): {doc}"
                );
                for field in &expect.invalid {
                    invariant!(
                        errors.0.iter().any(|e| e.field.starts_with(field.as_str())),
                        "the invalid {field:?} is not reported ({errors}): {doc}"
                    );
                }
            }
        }
    }
});
