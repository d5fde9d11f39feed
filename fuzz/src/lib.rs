//! Helpers shared by the fuzz targets: a byte cursor that decodes the targets' input
//! layouts, a JSON tree that keeps duplicate keys and key order, and the oracles the
//! invariants are checked against. The oracles are written independently of the core:
//! they never call its private inflection, glob or signature code, so a bug there
//! cannot hide itself by agreeing with its own reference.
//!
//! The harness panics (which libFuzzer reports as a crash) whenever an invariant fails;
//! every message starts with `invariant:` so a crash from the harness is easy to tell
//! from a crash inside the core.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use persona_edge_core::{ErrorCode, JSON_API_CONTENT_TYPE, Outcome, Rejection};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::Sha256;

/// The clock every target uses (2023-11-14T22:13:20Z).
pub const NOW: u64 = 1_700_000_000;

/// A small valid event: kebab and camel keys, nested `fields`, an `included`
/// resource of another type, personal attributes in both.
pub const SAMPLE_EVENT: &[u8] = br#"{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.approved","created-at":"2024-01-01T00:00:00Z","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{"status":"approved","name-first":"Jane","birthdate":"1990-01-01","fields":{"address-country-code":{"type":"string","value":"US"},"phone-number":{"value":"+1"}}},"relationships":{"account":{"data":{"type":"account","id":"act_1"}}}},"included":[{"type":"verification/government-id","id":"ver_1","attributes":{"front-photo-url":"https://x","nameLast":"Doe","idNumber":"X1","tags":[{"name-first":"nested"}]}}]}}}}"#;

/// The shared fixture with escaped, duplicate and differently inflected keys.
pub const ESCAPED_EVENT: &[u8] = include_bytes!("../../tests/fixtures/events/escaped-keys.json");

/// Fails the run with a message that names the invariant.
#[macro_export]
macro_rules! invariant {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            panic!("invariant: {}", format_args!($($arg)+));
        }
    };
}

// ---------------------------------------------------------------------------------
// Input decoding
// ---------------------------------------------------------------------------------

/// Reads a target's input front to back; past the end every read is zero or empty, so
/// any byte string decodes to something.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn u64_5(&mut self) -> u64 {
        (0..5).fold(0u64, |acc, _| (acc << 8) | u64::from(self.byte()))
    }

    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A length byte (modulo `max + 1`), then that many bytes as lossy UTF-8.
    pub fn string(&mut self, max: usize) -> String {
        let len = usize::from(self.byte()) % (max + 1);
        String::from_utf8_lossy(self.take(len)).into_owned()
    }

    pub fn rest(self) -> &'a [u8] {
        self.data
    }
}

// ---------------------------------------------------------------------------------
// JSON: validity, and a tree that keeps duplicates and order
// ---------------------------------------------------------------------------------

/// The deepest container nesting in a document (the root container is 1), counting
/// brackets outside strings. Meaningful for valid JSON and for a valid prefix.
pub fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Documents nested deeper than this count as invalid here (the core refuses anything
/// deeper than 256), so the recursive check cannot exhaust the stack.
pub const VALIDITY_DEPTH_LIMIT: usize = 1024;

/// Strict JSON validity, independent of the core's scanner: UTF-8 and a complete
/// serde_json document with nothing after it. (serde_json does not check surrogate
/// pairing while skipping values; the core's scanner does.)
pub fn is_valid_json(bytes: &[u8]) -> bool {
    if std::str::from_utf8(bytes).is_err() || nesting_depth(bytes) > VALIDITY_DEPTH_LIMIT {
        return false;
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    IgnoredAny::deserialize(&mut de).is_ok() && de.end().is_ok()
}

/// A JSON value with every object member kept, in document order, duplicates too.
#[derive(Clone, Debug, PartialEq)]
pub enum Tree {
    Scalar(Value),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tree, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tree;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::from(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::from(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::from(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::String(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::String(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::Null))
            }
            fn visit_none<E: de::Error>(self) -> Result<Tree, E> {
                Ok(Tree::Scalar(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Tree>()? {
                    items.push(item);
                }
                Ok(Tree::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<Tree>()?;
                    members.push((key, value));
                }
                Ok(Tree::Object(members))
            }
        }
        d.deserialize_any(V)
    }
}

impl Tree {
    /// Parses with serde_json (recursion limit 128). `None` when serde_json refuses.
    pub fn parse(bytes: &[u8]) -> Option<Tree> {
        serde_json::from_slice(bytes).ok()
    }

    /// Whether any object holds the same (decoded) key twice.
    pub fn has_duplicate_keys(&self) -> bool {
        match self {
            Tree::Scalar(_) => false,
            Tree::Array(items) => items.iter().any(Tree::has_duplicate_keys),
            Tree::Object(members) => {
                let mut keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
                keys.sort_unstable();
                keys.windows(2).any(|w| w[0] == w[1])
                    || members.iter().any(|(_, v)| v.has_duplicate_keys())
            }
        }
    }

    /// The serde_json value (duplicates collapse, the last one wins, as serde_json does).
    pub fn to_value(&self) -> Value {
        match self {
            Tree::Scalar(v) => v.clone(),
            Tree::Array(items) => Value::Array(items.iter().map(Tree::to_value).collect()),
            Tree::Object(members) => {
                let mut map = serde_json::Map::new();
                for (k, v) in members {
                    map.insert(k.clone(), v.to_value());
                }
                Value::Object(map)
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Key spelling: an oracle that does not reuse the core's inflection code
// ---------------------------------------------------------------------------------

/// The simple inflection-insensitive normalisation: ASCII lower case, `-` and `_`
/// dropped. Two keys the core considers the same always normalise equal here (the
/// core's match form is the key's non-separator bytes, lower-cased, joined by `-`),
/// so different normalisations prove the core cannot match them. Equal normalisations
/// do not prove the converse (`namefirst` is one word, `name-first` two), which is
/// what [`spells`] is for.
pub fn simple_norm(key: &str) -> String {
    key.bytes()
        .filter(|&b| b != b'-' && b != b'_')
        .map(|b| b.to_ascii_lowercase() as char)
        .collect()
}

fn title(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// Whether `key` is an unambiguous spelling of `words` (lower-case alphabetic or
/// numeric words): words joined by `-` or `_`, each in lower, UPPER or Title case; or
/// camelCase/PascalCase with Title-case words; or a single word in any of the three
/// cases. Every such spelling has the words' match form in the core, by its documented
/// rules (words split at separators and at lower-to-upper changes).
pub fn spells(key: &str, words: &[&str]) -> bool {
    let case_ok =
        |part: &str, w: &str| part == w || part == w.to_ascii_uppercase() || part == title(w);
    if key.contains(['-', '_']) {
        let parts: Vec<&str> = key.split(['-', '_']).collect();
        return parts.len() == words.len() && parts.iter().zip(words).all(|(p, w)| case_ok(p, w));
    }
    if words.len() == 1 {
        return case_ok(key, words[0]);
    }
    let rest: String = words[1..].iter().map(|w| title(w)).collect();
    key == format!("{}{rest}", words[0]) || key == format!("{}{rest}", title(words[0]))
}

/// How a key compares with `words`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spelling {
    /// The core must treat the key as these words.
    Yes,
    /// The core cannot treat the key as these words.
    No,
    /// Same letters, unclear word boundaries: the oracle makes no claim.
    Unclear,
}

pub fn spelling(key: &str, words: &[&str]) -> Spelling {
    if spells(key, words) {
        Spelling::Yes
    } else if simple_norm(key) == words.concat() {
        Spelling::Unclear
    } else {
        Spelling::No
    }
}

/// Renderings of a word list, all of which [`spells`] accepts.
pub const STYLES: usize = 7;

pub fn render(words: &[&str], style: usize) -> String {
    match style % STYLES {
        0 => words.join("-"),
        1 => words.join("_"),
        2 => words[0].to_owned() + &words[1..].iter().map(|w| title(w)).collect::<String>(),
        3 => words.iter().map(|w| title(w)).collect(),
        4 => words.join("_").to_ascii_uppercase(),
        5 => words.iter().map(|w| title(w)).collect::<Vec<_>>().join("-"),
        _ => words.join("-").to_ascii_uppercase(),
    }
}

/// Literal blocklist entries the oracle checks, as words. Real PII keys, plus envelope
/// and JSON:API names (`data`, `type`, `id`, `attributes`…) that may only ever be
/// removed inside an `attributes` object.
pub const LITERALS: &[&[&str]] = &[
    &["name", "first"],
    &["name", "last"],
    &["name", "middle"],
    &["birthdate"],
    &["email", "address"],
    &["phone", "number"],
    &["identification", "number"],
    &["address", "street", "1"],
    &["address", "city"],
    &["address", "postal", "code"],
    &["selfie", "photo"],
    &["document", "number"],
    &["birthplace"],
    &["nationality"],
    &["social", "security", "number"],
    &["front", "photo", "url"],
    &["photo", "urls"],
    &["country", "code"],
    &["sex"],
    &["fields"],
    &["status"],
    &["value"],
    &["attributes"],
    &["data"],
    &["type"],
    &["id"],
    &["payload"],
    &["included"],
];

/// Other valid entries: wildcards, paths, type filters, exemptions. The oracle makes
/// no exact claim about these; they exercise the matcher.
pub const PATTERNS: &[&str] = &[
    "name-*",
    "*-number",
    "*photo*",
    "*",
    "address-*",
    "!address-country-code",
    "!name-first",
    "/data/attributes/*",
    "!/data/attributes/fields",
    "/data/attributes/fields/*",
    "!/data/attributes/fields/selected-country-code",
    "/included/attributes/*-photo-url?type=verification/*",
    "/*/attributes/fields/phone-number",
    "birthdate?type=inquiry",
    "*-number?type=inquiry*",
    "/*/attributes/*",
    "/*/*/name-*",
    "**",
    "a*b*c",
    "*Number",
    "NAME_*",
    "!*",
    "!fields",
    "/data/attributes/name-first",
    "/included/attributes/*",
    "*?type=*",
    "/data/attributes/fields/*/value",
    "!/*/attributes/status?type=inquiry",
    "photoUrls",
    "*_at",
];

/// Event name patterns for `events.forward`.
pub const EVENT_PATTERNS: &[&str] = &[
    "inquiry.*",
    "report/*",
    "verification.*",
    "*",
    "case.created",
    "account.*",
    "*.approved",
    "document.processed",
];

/// `*` matches any run of bytes (including `.` and `/`); everything else literally.
/// Written from the documentation, not from the core's glob.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // dp[j]: pattern[..i] matches text[..j].
    let mut dp = vec![false; text.len() + 1];
    dp[0] = true;
    for &p in pattern {
        let mut next = vec![false; text.len() + 1];
        if p == b'*' {
            let mut any = false;
            for j in 0..=text.len() {
                any |= dp[j];
                next[j] = any;
            }
        } else {
            for j in 1..=text.len() {
                next[j] = dp[j - 1] && text[j - 1] == p;
            }
        }
        dp = next;
    }
    dp[text.len()]
}

// ---------------------------------------------------------------------------------
// Zones: where the blocklist may act
// ---------------------------------------------------------------------------------

/// Where a value sits, as the documentation defines it: only members of `attributes`
/// objects inside `data.attributes.payload` may be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    Root,
    EventData,
    EventAttributes,
    Payload,
    Attributes,
    /// Outside the payload: nothing is removed (keys may be renamed).
    Outside,
    /// A key whose spelling the oracle cannot classify: no claim below it.
    Unknown,
}

/// The zone of the value under `key` in an object in zone `zone`.
pub fn child_zone(zone: Zone, key: &str) -> Zone {
    let step = |words: &[&str], hit: Zone, miss: Zone| match spelling(key, words) {
        Spelling::Yes => hit,
        Spelling::No => miss,
        Spelling::Unclear => Zone::Unknown,
    };
    match zone {
        Zone::Root => step(&["data"], Zone::EventData, Zone::Outside),
        Zone::EventData => step(&["attributes"], Zone::EventAttributes, Zone::Outside),
        Zone::EventAttributes => step(&["payload"], Zone::Payload, Zone::Outside),
        Zone::Payload => step(&["attributes"], Zone::Attributes, Zone::Payload),
        Zone::Attributes => Zone::Attributes,
        Zone::Outside => Zone::Outside,
        Zone::Unknown => Zone::Unknown,
    }
}

/// Every key found inside an `attributes` object of the payload (the oracle's zones
/// are a subset of the core's: an unclear spelling is never entered).
pub fn attribute_keys<'t>(tree: &'t Tree, zone: Zone, out: &mut Vec<&'t str>) {
    match tree {
        Tree::Scalar(_) => {}
        Tree::Array(items) => {
            for item in items {
                attribute_keys(item, zone, out);
            }
        }
        Tree::Object(members) => {
            for (k, v) in members {
                if zone == Zone::Attributes {
                    out.push(k);
                }
                let child = child_zone(zone, k);
                if child != Zone::Unknown && child != Zone::Outside {
                    attribute_keys(v, child, out);
                }
            }
        }
    }
}

/// What comparing an input with its forwarded form found.
#[derive(Debug, Default)]
pub struct Diff {
    /// Members missing from the output (a removed member's children are not counted).
    pub removed: usize,
    /// Whether part of the document was not compared (an unclear zone key).
    pub unclear: bool,
}

/// Checks that `out` is `inp` with members removed only inside `attributes` objects of
/// the payload, nothing else changed (keys compared exactly, or by [`simple_norm`]
/// when an inflection renames them). Returns why not.
pub fn diff(
    inp: &Tree,
    out: &Tree,
    zone: Zone,
    exact_keys: bool,
    d: &mut Diff,
) -> Result<(), String> {
    let same_key = |a: &str, b: &str| {
        if exact_keys {
            a == b
        } else {
            simple_norm(a) == simple_norm(b)
        }
    };
    if zone == Zone::Unknown {
        d.unclear = true;
        return Ok(());
    }
    match (inp, out) {
        (Tree::Scalar(a), Tree::Scalar(b)) => {
            if a == b {
                Ok(())
            } else {
                Err(format!("value {a} became {b}"))
            }
        }
        (Tree::Array(a), Tree::Array(b)) => {
            if a.len() != b.len() {
                return Err(format!("an array of {} became {}", a.len(), b.len()));
            }
            for (x, y) in a.iter().zip(b) {
                diff(x, y, zone, exact_keys, d)?;
            }
            Ok(())
        }
        (Tree::Object(a), Tree::Object(b)) if zone == Zone::Attributes => {
            // `b` must embed into `a` in order; the earliest compatible match is optimal.
            let mut i = 0;
            for (bk, bv) in b {
                let mut matched = false;
                while i < a.len() {
                    let (ak, av) = &a[i];
                    i += 1;
                    if same_key(ak, bk) {
                        let mut trial = Diff::default();
                        if diff(av, bv, Zone::Attributes, exact_keys, &mut trial).is_ok() {
                            d.removed += trial.removed;
                            d.unclear |= trial.unclear;
                            matched = true;
                            break;
                        }
                    }
                }
                if !matched {
                    return Err(format!(
                        "attribute {bk:?} is not in the input at that place"
                    ));
                }
            }
            d.removed += a.len() - b.len();
            Ok(())
        }
        (Tree::Object(a), Tree::Object(b)) => {
            if a.len() != b.len() {
                return Err(format!(
                    "an object outside any attributes ({zone:?}) went from {} to {} members",
                    a.len(),
                    b.len()
                ));
            }
            for ((ak, av), (bk, bv)) in a.iter().zip(b) {
                if !same_key(ak, bk) {
                    return Err(format!("key {ak:?} became {bk:?}"));
                }
                diff(av, bv, child_zone(zone, ak), exact_keys, d)?;
            }
            Ok(())
        }
        _ => Err(String::from("a value changed kind")),
    }
}

/// A key whose spelling the oracle cannot classify: no exact prediction.
#[derive(Debug)]
pub struct Unclear;

/// The input with every attribute spelling one of `literals` removed (nothing below a
/// removed member is visited, as in the core). `Err(Unclear)` when a key's spelling
/// is unclear, so the exact output cannot be predicted.
pub fn expected_removal(
    tree: &Tree,
    zone: Zone,
    literals: &[&[&str]],
    removed: &mut usize,
) -> Result<Tree, Unclear> {
    match tree {
        Tree::Scalar(_) => Ok(tree.clone()),
        Tree::Array(items) => items
            .iter()
            .map(|i| expected_removal(i, zone, literals, removed))
            .collect::<Result<Vec<_>, _>>()
            .map(Tree::Array),
        Tree::Object(members) => {
            let mut out = Vec::with_capacity(members.len());
            for (k, v) in members {
                if zone == Zone::Attributes {
                    let mut hit = false;
                    for words in literals {
                        match spelling(k, words) {
                            Spelling::Yes => hit = true,
                            Spelling::Unclear => return Err(Unclear),
                            Spelling::No => {}
                        }
                    }
                    if hit {
                        *removed += 1;
                        continue;
                    }
                }
                let child = child_zone(zone, k);
                if child == Zone::Unknown {
                    return Err(Unclear);
                }
                out.push((k.clone(), expected_removal(v, child, literals, removed)?));
            }
            Ok(Tree::Object(out))
        }
    }
}

/// Whether `small` is `big` with some bytes deleted (order kept).
pub fn is_subsequence(small: &[u8], big: &[u8]) -> bool {
    let mut it = big.iter();
    small.iter().all(|b| it.any(|c| c == b))
}

// ---------------------------------------------------------------------------------
// Signatures: HMAC-SHA256 computed here, not by the core
// ---------------------------------------------------------------------------------

pub fn hmac_hex(secret: &str, timestamp_text: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    let mut out = String::with_capacity(64);
    for b in mac.finalize().into_bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// `t=<t>,v1=<hex>`, the documented header format.
pub fn expected_header(secret: &str, t: u64, body: &[u8]) -> String {
    format!("t={t},v1={}", hmac_hex(secret, &t.to_string(), body))
}

/// A necessary condition for a signature to be accepted: some `t=<digits>` and some
/// `v1=<64 hex>` written in the header values form a genuine MAC of the body with a
/// configured secret, and that timestamp is within the tolerance. Deliberately looser
/// than the grammar, so it can only be wrong by being too generous.
pub fn some_genuine_signature(
    values: &[&str],
    secrets: &[String],
    tolerance: u64,
    now: u64,
    body: &[u8],
) -> bool {
    let mut timestamps = Vec::new();
    let mut macs = Vec::new();
    for v in values {
        for (i, _) in v.match_indices("t=") {
            let digits: String = v[i + 2..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !digits.is_empty() {
                timestamps.push(digits);
            }
        }
        for (i, _) in v.match_indices("v1=") {
            if let Some(hex) = v.get(i + 3..i + 67)
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
            {
                macs.push(hex.to_ascii_lowercase());
            }
        }
    }
    timestamps.iter().any(|t| {
        let fresh = t.parse::<u64>().is_ok_and(|n| n.abs_diff(now) <= tolerance);
        fresh && secrets.iter().any(|s| macs.contains(&hmac_hex(s, t, body)))
    })
}

pub fn is_signature_rejection(outcome: &Outcome<'_>) -> bool {
    matches!(
        outcome,
        Outcome::Reject(Rejection {
            code: ErrorCode::SignatureMissing
                | ErrorCode::SignatureMalformed
                | ErrorCode::SignatureStale
                | ErrorCode::SignatureMismatch,
            ..
        })
    )
}

pub fn code_of(outcome: &Outcome<'_>) -> Option<ErrorCode> {
    match outcome {
        Outcome::Reject(r) => Some(r.code),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------
// Outcome checks every target shares
// ---------------------------------------------------------------------------------

/// A header value a host can set: printable ASCII, no CR/LF.
pub fn header_safe(value: &str) -> bool {
    value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// A rejection is answered, never forwarded: a JSON:API error document with the
/// code's status, code and the detail, and a detail free of control characters.
pub fn check_rejection(r: &Rejection) {
    let reply = r.reply();
    invariant!(
        reply.status == r.code.status(),
        "reply status {} for {}",
        reply.status,
        r.code
    );
    invariant!(
        reply.headers == [("content-type", JSON_API_CONTENT_TYPE.to_owned())],
        "reply headers {:?}",
        reply.headers
    );
    let doc: Value = match serde_json::from_str(&reply.body) {
        Ok(v) => v,
        Err(e) => panic!(
            "invariant: the rejection body is not JSON ({e}): {}",
            reply.body
        ),
    };
    let err = &doc["errors"][0];
    invariant!(err["code"] == r.code.as_str(), "code member {err}");
    invariant!(
        err["status"].as_str() == Some(r.code.status().to_string().as_str()),
        "status member {err}"
    );
    invariant!(err["detail"] == r.detail.as_str(), "detail member {err}");
    invariant!(
        !r.detail.chars().any(char::is_control),
        "a rejection detail carries a control character: {:?}",
        r.detail
    );
}

/// Checks what every outcome must satisfy, whatever the configuration.
pub fn check_outcome_shape(outcome: &Outcome<'_>) {
    match outcome {
        Outcome::Reject(r) => check_rejection(r),
        Outcome::Acknowledge(m) => {
            let reply = outcome.reply().expect("an acknowledgement replies");
            invariant!(
                reply.status == 204 && reply.body.is_empty() && reply.headers.is_empty(),
                "ack reply {reply:?}"
            );
            for (_, v) in m.headers() {
                invariant!(header_safe(v), "routing header value {v:?}");
            }
        }
        Outcome::Forward(f) => {
            invariant!(outcome.reply().is_none(), "a forward has no reply");
            for (name, value) in f.set_headers() {
                invariant!(
                    name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                    "header name {name:?}"
                );
                invariant!(
                    header_safe(value),
                    "header {name}: {value:?} is not a safe header value"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use persona_edge_core::{Policy, RequestHead};

    fn event_with(attributes: &str) -> String {
        format!(
            r#"{{"data":{{"type":"event","id":"evt_1","attributes":{{"name":"inquiry.approved","created-at":"t","payload":{{"data":{{"type":"inquiry","id":"inq_1","attributes":{attributes}}}}}}}}}}}"#
        )
    }

    fn stripped(entry: &str, key: &str) -> usize {
        let config = serde_json::json!({"signature": {"required": false}, "blocklist": [entry]});
        let policy = Policy::from_json(config.to_string().as_bytes()).unwrap();
        let headers = [("content-type", "application/json")];
        let head = RequestHead {
            method: "POST",
            headers: &headers,
            peer: Some("35.232.44.140"),
        };
        let body = event_with(&format!(r#"{{{}:1}}"#, serde_json::to_string(key).unwrap()));
        match policy.evaluate(&head, body.as_bytes(), NOW).1 {
            Outcome::Forward(f) => f.stripped,
            other => panic!("{other:?}"),
        }
    }

    /// The oracle's one assumption about the core, checked against the core: every
    /// rendering of a literal removes every rendering of the same literal.
    #[test]
    fn every_spelling_matches_every_spelling() {
        for words in LITERALS {
            for a in 0..STYLES {
                let entry = render(words, a);
                for b in 0..STYLES {
                    let key = render(words, b);
                    assert!(spells(&key, words), "{key} {words:?}");
                    assert_eq!(stripped(&entry, &key), 1, "entry {entry} key {key}");
                }
            }
        }
    }

    #[test]
    fn spelling_classes() {
        assert_eq!(spelling("nameFirst", &["name", "first"]), Spelling::Yes);
        assert_eq!(spelling("NAME_first", &["name", "first"]), Spelling::Yes);
        assert_eq!(spelling("namefirst", &["name", "first"]), Spelling::Unclear);
        assert_eq!(spelling("nAmeFirst", &["name", "first"]), Spelling::Unclear);
        assert_eq!(spelling("name-firsts", &["name", "first"]), Spelling::No);
        assert_eq!(spelling("Data", &["data"]), Spelling::Yes);
        assert_eq!(spelling("_data", &["data"]), Spelling::Unclear);
        assert_eq!(stripped("name-first", "namefirst"), 0);
    }

    #[test]
    fn every_pattern_loads_and_the_samples_forward() {
        for p in PATTERNS {
            let config = serde_json::json!({"signature": {"required": false}, "blocklist": [p]});
            assert!(
                Policy::from_json(config.to_string().as_bytes()).is_ok(),
                "{p}"
            );
        }
        let policy = Policy::from_json(br#"{"signature":{"required":false}}"#).unwrap();
        let headers = [("content-type", "application/json")];
        let head = RequestHead {
            method: "POST",
            headers: &headers,
            peer: Some("35.232.44.140"),
        };
        for body in [SAMPLE_EVENT, ESCAPED_EVENT] {
            assert!(matches!(
                policy.evaluate(&head, body, NOW).1,
                Outcome::Forward(_)
            ));
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"inquiry.*", b"inquiry.approved"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*b*c", b"aXbYc"));
        assert!(!glob_match(b"a*b*c", b"aXbY"));
        assert!(glob_match(b"report/*", b"report/watchlist.matched"));
    }

    #[test]
    fn trees_keep_duplicates() {
        let t = Tree::parse(br#"{"a":1,"a":2,"b":[{"c":1,"c":1}]}"#).unwrap();
        assert!(t.has_duplicate_keys());
        assert!(
            !Tree::parse(br#"{"a":1,"b":{"a":2}}"#)
                .unwrap()
                .has_duplicate_keys()
        );
    }

    #[test]
    fn the_signature_oracle_finds_a_genuine_header() {
        let h = expected_header("s", NOW, b"{}");
        assert_eq!(h, persona_edge_core::signature_header("s", NOW, b"{}"));
        assert!(some_genuine_signature(&[&h], &["s".into()], 0, NOW, b"{}"));
        assert!(!some_genuine_signature(&[&h], &["t".into()], 0, NOW, b"{}"));
        assert!(!some_genuine_signature(
            &[&h],
            &["s".into()],
            0,
            NOW + 1,
            b"{}"
        ));
    }
}
