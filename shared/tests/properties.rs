//! Property tests: generated JSON:API events, blocklists and inflections, checked
//! against a reference built on `serde_json::Value`. The generator knows every key's
//! words, so the reference decides matches from the words, not by re-running the
//! core's own inflection code.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use persona_edge_core::{Outcome, Policy, RequestHead};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Attribute names as words; rendered in any inflection.
const VOCABULARY: &[&[&str]] = &[
    &["name", "first"],
    &["name", "last"],
    &["name", "middle"],
    &["birthdate"],
    &["address", "street", "1"],
    &["address", "country", "code"],
    &["email", "address"],
    &["status"],
    &["selected", "country", "code"],
    &["identification", "number"],
    &["phone", "number"],
    &["fields"],
    &["value"],
    &["tags"],
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Style {
    Kebab,
    Camel,
    Snake,
}

fn render(words: &[&str], style: Style) -> String {
    match style {
        Style::Kebab => words.join("-"),
        Style::Snake => words.join("_"),
        Style::Camel => words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == 0 {
                    w.to_string()
                } else {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                        .unwrap_or_default()
                }
            })
            .collect(),
    }
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![Just(Style::Kebab), Just(Style::Camel), Just(Style::Snake)]
}

/// A generated attribute value: the words of each key are kept alongside.
#[derive(Clone, Debug)]
enum Gen {
    Scalar(Value),
    Object(Vec<(usize, Style, Gen)>),
    Array(Vec<Gen>),
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9 é\"\\\\]{0,12}".prop_map(|s| json!(s)),
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
    ]
}

fn attribute_tree() -> impl Strategy<Value = Gen> {
    let leaf = scalar().prop_map(Gen::Scalar);
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec((0..VOCABULARY.len(), style(), inner.clone()), 0..6)
                .prop_map(|members| Gen::Object(distinct_keys(members))),
            proptest::collection::vec(inner, 0..3).prop_map(Gen::Array),
        ]
    })
}

/// Drops members whose words repeat an earlier member's: duplicate keys would collapse
/// in the serde_json reference.
fn distinct_keys(members: Vec<(usize, Style, Gen)>) -> Vec<(usize, Style, Gen)> {
    let mut seen = Vec::new();
    members
        .into_iter()
        .filter(|(w, _, _)| {
            let new = !seen.contains(w);
            seen.push(*w);
            new
        })
        .collect()
}

fn attributes() -> impl Strategy<Value = Vec<(usize, Style, Gen)>> {
    proptest::collection::vec((0..VOCABULARY.len(), style(), attribute_tree()), 0..8)
        .prop_map(distinct_keys)
}

/// A simple blocklist entry: a vocabulary key, possibly `prefix-*`, possibly exempt.
#[derive(Clone, Debug)]
struct Entry {
    words: Vec<&'static str>,
    wildcard: bool,
    exempt: bool,
    style: Style,
}

impl Entry {
    fn text(&self) -> String {
        let mut words = self.words.clone();
        if self.wildcard {
            words.push("*");
        }
        let body = render(&words, self.style);
        if self.exempt {
            format!("!{body}")
        } else {
            body
        }
    }

    fn matches(&self, key: &[&str]) -> bool {
        if self.wildcard {
            key.len() > self.words.len() && key.starts_with(&self.words)
        } else {
            key == self.words.as_slice()
        }
    }
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        0..VOCABULARY.len(),
        any::<bool>(),
        prop::bool::weighted(0.2),
        style(),
    )
        .prop_map(|(w, wildcard, exempt, style)| {
            let words = VOCABULARY[w].to_vec();
            // `name-*` style: drop the last word of a multi-word key.
            let (words, wildcard) = if wildcard && words.len() > 1 {
                (words[..words.len() - 1].to_vec(), true)
            } else {
                (words, false)
            };
            Entry {
                words,
                wildcard,
                exempt,
                style,
            }
        })
}

/// Builds the input (in `input_style`) and the reference output.
fn build(g: &Gen, inside: bool, blocklist: &[Entry], target: Option<Style>) -> (Value, Value) {
    match g {
        Gen::Scalar(v) => (v.clone(), v.clone()),
        Gen::Array(items) => {
            let (a, b): (Vec<_>, Vec<_>) = items
                .iter()
                .map(|i| build(i, inside, blocklist, target))
                .unzip();
            (Value::Array(a), Value::Array(b))
        }
        Gen::Object(members) => {
            let (mut input, mut output) = (Map::new(), Map::new());
            for (w, style, child) in members {
                let words = VOCABULARY[*w];
                let (i, o) = build(child, inside, blocklist, target);
                input.insert(render(words, *style), i);
                let removed = inside
                    && blocklist.iter().any(|e| !e.exempt && e.matches(words))
                    && !blocklist.iter().any(|e| e.exempt && e.matches(words));
                if !removed {
                    output.insert(render(words, target.unwrap_or(*style)), o);
                }
            }
            (Value::Object(input), Value::Object(output))
        }
    }
}

fn key(words: &[&str], style: Option<Style>, fallback: Style) -> String {
    render(words, style.unwrap_or(fallback))
}

/// The event around generated attributes, input and expected output.
fn event(
    attrs: &[(usize, Style, Gen)],
    style: Style,
    blocklist: &[Entry],
    target: Option<Style>,
) -> (Value, Value) {
    let (input_attrs, output_attrs) = build(&Gen::Object(attrs.to_vec()), true, blocklist, target);
    let wrap = |attributes: Value, out: bool| {
        let t = if out { target } else { None };
        let k = |w: &[&str]| key(w, t, style);
        let mut resource = Map::new();
        resource.insert(k(&["type"]), json!("inquiry"));
        resource.insert(k(&["id"]), json!("inq_1"));
        resource.insert(k(&["attributes"]), attributes);
        let mut payload = Map::new();
        payload.insert(k(&["data"]), Value::Object(resource));
        payload.insert(k(&["included"]), json!([]));
        let mut ev_attrs = Map::new();
        ev_attrs.insert(k(&["name"]), json!("inquiry.approved"));
        ev_attrs.insert(k(&["created", "at"]), json!("2024-01-01T00:00:00.000Z"));
        ev_attrs.insert(k(&["payload"]), Value::Object(payload));
        let mut data = Map::new();
        data.insert(k(&["type"]), json!("event"));
        data.insert(k(&["id"]), json!("evt_1"));
        data.insert(k(&["attributes"]), Value::Object(ev_attrs));
        let mut root = Map::new();
        root.insert(k(&["data"]), Value::Object(data));
        Value::Object(root)
    };
    (wrap(input_attrs, false), wrap(output_attrs, true))
}

fn run(config: &Value, body: &[u8]) -> Vec<u8> {
    let policy = Policy::from_json(config.to_string().as_bytes()).expect("generated config loads");
    let headers = [("content-type", "application/json")];
    let head = RequestHead {
        method: "POST",
        headers: &headers,
        peer: Some("35.232.44.140:443"),
    };
    match policy.evaluate(&head, body, 0).1 {
        Outcome::Forward(f) => f.body.into_owned(),
        other => panic!("expected a forward, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn blocklist_and_inflection_match_the_reference(
        attrs in attributes(),
        input_style in style(),
        blocklist in proptest::collection::vec(entry(), 0..5),
        target in prop_oneof![Just(None), style().prop_map(Some)],
        pretty in any::<bool>(),
    ) {
        let (input, expected) = event(&attrs, input_style, &blocklist, target);
        let body = if pretty { serde_json::to_vec_pretty(&input).unwrap() } else { serde_json::to_vec(&input).unwrap() };
        let inflection = match target { None => "preserve", Some(Style::Kebab) => "kebab", Some(Style::Camel) => "camel", Some(Style::Snake) => "snake" };
        let config = json!({
            "signature": {"required": false},
            "blocklist": blocklist.iter().map(Entry::text).collect::<Vec<_>>(),
            "normalize": {"inflection": inflection},
        });
        let out = run(&config, &body);
        let parsed: Value = serde_json::from_slice(&out).map_err(|e| TestCaseError::fail(format!("output is not JSON: {e}\n{}", String::from_utf8_lossy(&out))))?;
        prop_assert_eq!(&parsed, &expected, "config {}\ninput {}\noutput {}", config, String::from_utf8_lossy(&body), String::from_utf8_lossy(&out));
        // Key order is kept.
        prop_assert_eq!(serde_json::to_string(&parsed).unwrap(), serde_json::to_string(&expected).unwrap());
    }

    #[test]
    fn untouched_bytes_stay_identical(attrs in attributes(), input_style in style()) {
        // With nothing blocked and keys preserved, the output is the input, byte for byte,
        // whatever the spacing.
        let (input, _) = event(&attrs, input_style, &[], None);
        let body = serde_json::to_vec_pretty(&input).unwrap();
        let config = json!({"signature": {"required": false}, "blocklist": ["no-such-key"]});
        prop_assert_eq!(run(&config, &body), body);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_forward_garbage(body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let policy = Policy::from_json(br#"{"signature":{"required":false},"blocklist":["name-*"]}"#).unwrap();
        let headers = [("content-type", "application/json")];
        let head = RequestHead { method: "POST", headers: &headers, peer: Some("35.232.44.140") };
        if let Outcome::Forward(f) = policy.evaluate(&head, &body, 0).1 {
            prop_assert!(serde_json::from_slice::<Value>(&f.body).is_ok());
        }
    }
}

#[test]
fn numbers_and_escapes_pass_byte_identical_next_to_removals() {
    let body = br#"{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.approved","created-at":"x","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{"a":1.10,"name-first":"Jane","b":12345678901234567890,"c":"\u00e9\n","nameLast":"Doe","d":-0.0e+5}}}}}}"#;
    let out = run(
        &json!({"signature": {"required": false}, "blocklist": ["name-*"]}),
        body,
    );
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.approved","created-at":"x","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{"a":1.10,"b":12345678901234567890,"c":"\u00e9\n","d":-0.0e+5}}}}}}"#
    );
}

#[test]
fn removal_at_every_position_keeps_valid_json() {
    for (doc, want) in [
        (r#"{"x":1,"y":2,"z":3}"#, r#"{"y":2,"z":3}"#),
        (r#"{"y":2,"x":1,"z":3}"#, r#"{"y":2,"z":3}"#),
        (r#"{"y":2,"z":3,"x":1}"#, r#"{"y":2,"z":3}"#),
        (r#"{"x":1,"x":2}"#, r#"{}"#),
        (r#"{ "x" : 1 , "y" : 2 }"#, r#"{ "y" : 2 }"#),
        (r#"{"y":2, "x":1 }"#, r#"{"y":2 }"#),
    ] {
        let body = format!(
            r#"{{"data":{{"type":"event","id":"e","attributes":{{"name":"n","created-at":"t","payload":{{"data":{{"type":"t","id":"i","attributes":{doc}}}}}}}}}}}"#
        );
        let out = run(
            &json!({"signature": {"required": false}, "blocklist": ["x"]}),
            body.as_bytes(),
        );
        let expected = body.replace(doc, want);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
