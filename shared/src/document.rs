//! A read-only view of a small JSON document (the configuration), built on the core's
//! own scanner (`json.rs`): the tape of byte spans is the whole structure, and values
//! are read from the bytes when asked for. No tree is built and no serde is linked,
//! which keeps the configuration parser out of the way of the `.wasm` size budget.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::json::{self, Kind, Node};

/// How deep a configuration may nest. The schema needs 3 levels; unknown fields may
/// hold anything, but nothing that deep is a configuration.
const MAX_DEPTH: usize = 64;

/// A scanned document. [`Document::root`] is its top-level value.
pub(crate) struct Document<'a> {
    text: &'a [u8],
    tape: Vec<Node>,
}

impl<'a> Document<'a> {
    /// Scans `text`, or says why it is not JSON (with the line and column).
    pub(crate) fn parse(text: &'a [u8]) -> Result<Document<'a>, String> {
        let mut tape = Vec::new();
        match json::scan(text, MAX_DEPTH, &mut tape) {
            Ok(()) => Ok(Document { text, tape }),
            Err(json::Error::Syntax(at)) => {
                let what = if core::str::from_utf8(text).is_err() {
                    "not UTF-8"
                } else if text.get(at).is_none() {
                    "unexpected end"
                } else {
                    "syntax error"
                };
                Err(format!("{what} {}", position(text, at)))
            }
            Err(json::Error::TooDeep(at)) => Err(format!(
                "nested more than {MAX_DEPTH} levels deep {}",
                position(text, at)
            )),
        }
    }

    pub(crate) fn root(&self) -> Value<'_> {
        Value {
            text: self.text,
            tape: &self.tape,
            at: 0,
        }
    }
}

/// `at line L column C` for a byte offset (both from 1; the column counts bytes).
fn position(text: &[u8], at: usize) -> String {
    let before = text.get(..at).unwrap_or(text);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = 1 + before.iter().rev().take_while(|&&b| b != b'\n').count();
    format!("at line {line} column {column}")
}

/// One value of a [`Document`].
#[derive(Clone, Copy)]
pub(crate) struct Value<'d> {
    text: &'d [u8],
    tape: &'d [Node],
    at: usize,
}

/// A JSON number, classified as a configuration reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Number {
    /// A whole number from 0 to `u64::MAX`, written without fraction or exponent.
    Unsigned(u64),
    /// A whole number from `i64::MIN` to -1, written without fraction or exponent.
    Negative(i64),
    /// Anything else: a fraction, an exponent, `-0`, or out of those ranges.
    Other,
}

impl<'d> Value<'d> {
    fn node(&self) -> Option<&'d Node> {
        self.tape.get(self.at)
    }

    fn bytes(&self) -> &'d [u8] {
        self.node()
            .and_then(|n| self.text.get(n.span()))
            .unwrap_or_default()
    }

    fn kind(&self) -> Option<Kind> {
        self.node().map(|n| n.kind)
    }

    /// What the value is, for messages: `null`, `a boolean`, `a number`, `a string`,
    /// `a list` or `an object`.
    pub(crate) fn describe(&self) -> &'static str {
        match (self.kind(), self.bytes().first()) {
            (Some(Kind::Object), _) => "an object",
            (Some(Kind::Array), _) => "a list",
            (Some(Kind::String | Kind::Key), _) => "a string",
            (_, Some(b't' | b'f')) => "a boolean",
            (_, Some(b'n')) => "null",
            _ => "a number",
        }
    }

    pub(crate) fn as_str(&self) -> Option<Cow<'d, str>> {
        let node = self.node()?;
        if node.kind != Kind::String {
            return None;
        }
        json::string_text(self.text, node)
    }

    pub(crate) fn as_bool(&self) -> Option<bool> {
        match (self.kind()?, self.bytes()) {
            (Kind::Scalar, b"true") => Some(true),
            (Kind::Scalar, b"false") => Some(false),
            _ => None,
        }
    }

    /// `None` when the value is not a number.
    pub(crate) fn as_number(&self) -> Option<Number> {
        let bytes = self.bytes();
        if self.kind()? != Kind::Scalar || !matches!(bytes.first(), Some(b'-' | b'0'..=b'9')) {
            return None;
        }
        let (negative, digits) = match bytes.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, bytes),
        };
        let mut magnitude = 0u64;
        for &d in digits {
            if !d.is_ascii_digit() {
                return Some(Number::Other);
            }
            let Some(m) = magnitude
                .checked_mul(10)
                .and_then(|m| m.checked_add(u64::from(d - b'0')))
            else {
                return Some(Number::Other);
            };
            magnitude = m;
        }
        Some(match (negative, magnitude) {
            (false, m) => Number::Unsigned(m),
            (true, 0) => Number::Other,
            (true, m) if m <= 1 << 63 => Number::Negative((m as i64).wrapping_neg()),
            (true, _) => Number::Other,
        })
    }

    /// The members of an object, in document order (duplicates included); nothing
    /// for any other value.
    pub(crate) fn members(&self) -> impl Iterator<Item = (Cow<'d, str>, Value<'d>)> + use<'d> {
        let this = *self;
        self.children(Kind::Object).map(move |key| {
            let name = this
                .tape
                .get(key)
                .and_then(|n| json::string_text(this.text, n))
                .unwrap_or_default();
            (name, this.at(key + 1))
        })
    }

    /// The first member named `name` (a configuration refuses duplicates anyway).
    pub(crate) fn get(&self, name: &str) -> Option<Value<'d>> {
        self.members().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The elements of a list; nothing for any other value.
    pub(crate) fn items(&self) -> impl Iterator<Item = Value<'d>> + use<'d> {
        let this = *self;
        self.children(Kind::Array).map(move |i| this.at(i))
    }

    pub(crate) fn is_object(&self) -> bool {
        self.kind() == Some(Kind::Object)
    }

    pub(crate) fn is_array(&self) -> bool {
        self.kind() == Some(Kind::Array)
    }

    fn at(&self, at: usize) -> Value<'d> {
        Value { at, ..*self }
    }

    /// Tape indices of the direct children of a container of `kind`: for an object
    /// its keys (each value follows its key), for a list its elements.
    fn children(&self, kind: Kind) -> impl Iterator<Item = usize> + use<'d> {
        let tape = self.tape;
        let (mut i, end) = match self.node() {
            Some(n) if n.kind == kind => (self.at + 1, n.next as usize),
            _ => (0, 0),
        };
        let step = usize::from(kind == Kind::Object);
        core::iter::from_fn(move || {
            if i >= end {
                return None;
            }
            let here = i;
            // Past the element, or past the value that follows the key.
            i = tape.get(i + step).map_or(end, |n| n.next as usize);
            Some(here)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn with<R>(doc: &str, f: impl FnOnce(Value<'_>) -> R) -> R {
        let d = Document::parse(doc.as_bytes()).unwrap();
        f(d.root())
    }

    #[test]
    fn walks_objects_and_lists() {
        with(
            r#" {"a": [1, {"x": "y"}, [], "s"], "b\u0065": {"c": true}, "d": null, "a": 2} "#,
            |root| {
                let keys: Vec<_> = root.members().map(|(k, _)| k.into_owned()).collect();
                assert_eq!(keys, ["a", "be", "d", "a"]);
                let a = root.get("a").unwrap();
                assert_eq!(
                    a.items().map(|v| v.describe()).collect::<Vec<_>>(),
                    ["a number", "an object", "a list", "a string"]
                );
                let obj = a.items().nth(1).unwrap();
                assert_eq!(obj.get("x").unwrap().as_str().unwrap(), "y");
                assert_eq!(a.items().nth(3).unwrap().as_str().unwrap(), "s");
                assert_eq!(
                    root.get("be").unwrap().get("c").unwrap().as_bool(),
                    Some(true)
                );
                assert_eq!(root.get("d").unwrap().describe(), "null");
                assert!(root.get("e").is_none());
                assert_eq!(a.members().count(), 0);
                assert_eq!(root.items().count(), 0);
                assert!(root.is_object() && a.is_array());
                assert_eq!(a.as_str(), None);
                assert_eq!(a.as_bool(), None);
                assert_eq!(a.as_number(), None);
            },
        );
    }

    #[test]
    fn strings_are_unescaped() {
        with(r#"["a\"b\\c\u00e9\ud83d\ude00", "plain"]"#, |root| {
            let items: Vec<_> = root
                .items()
                .map(|v| v.as_str().unwrap().into_owned())
                .collect();
            assert_eq!(items, ["a\"b\\cé\u{1f600}", "plain"]);
        });
    }

    #[test]
    fn numbers_are_classified_as_serde_json_did() {
        let cases = [
            ("0", Number::Unsigned(0)),
            ("300", Number::Unsigned(300)),
            ("18446744073709551615", Number::Unsigned(u64::MAX)),
            ("18446744073709551616", Number::Other),
            ("-1", Number::Negative(-1)),
            ("-9223372036854775808", Number::Negative(i64::MIN)),
            ("-9223372036854775809", Number::Other),
            ("-0", Number::Other),
            ("1.0", Number::Other),
            ("1e2", Number::Other),
            ("-2.5E-3", Number::Other),
            ("1e400", Number::Other),
        ];
        for (text, expected) in cases {
            with(text, |v| {
                assert_eq!(v.as_number(), Some(expected), "{text}");
                assert_eq!(v.describe(), "a number");
            });
        }
        for text in ["true", "false", "null", "\"1\"", "[1]", "{}"] {
            with(text, |v| assert_eq!(v.as_number(), None, "{text}"));
        }
        with("[true, false]", |v| {
            let b: Vec<_> = v.items().map(|v| (v.as_bool(), v.describe())).collect();
            assert_eq!(
                b,
                vec![(Some(true), "a boolean"), (Some(false), "a boolean")]
            );
        });
    }

    #[test]
    fn refusals_say_where() {
        for (doc, expected) in [
            (&b""[..], "unexpected end at line 1 column 1"),
            (b"{\n  \"a\": 1,\n}", "syntax error at line 3 column 1"),
            (b"{\"a\": 1", "unexpected end at line 1 column 8"),
            (b"{} x", "syntax error at line 1 column 4"),
            (b"{\"a\": \"\xff\"}", "not UTF-8 at line 1 column 8"),
        ] {
            match Document::parse(doc) {
                Err(e) => assert_eq!(e, expected),
                Ok(_) => panic!("{doc:?} parsed"),
            }
        }
        let deep = "[".repeat(65) + &"]".repeat(65);
        match Document::parse(deep.as_bytes()) {
            Err(e) => assert_eq!(e, "nested more than 64 levels deep at line 1 column 65"),
            Ok(_) => panic!("too deep parsed"),
        }
    }

    /// The view reads what serde_json reads (which the configuration was read with
    /// before): generated documents, written with and without `\u` escapes.
    mod against_serde_json {
        use super::*;
        use alloc::string::ToString;
        use proptest::prelude::*;
        use serde_json::Value as Json;

        fn json() -> impl Strategy<Value = Json> {
            let leaf = prop_oneof![
                Just(Json::Null),
                any::<bool>().prop_map(Json::Bool),
                any::<u64>().prop_map(Json::from),
                any::<i64>().prop_map(Json::from),
                (-1e12f64..1e12).prop_map(Json::from),
                any::<String>().prop_map(Json::String),
                "[a-z_]{0,6}".prop_map(Json::String),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                    // Distinct names: a Map keeps one value per name.
                    prop::collection::btree_map("[a-z\u{e9}\u{1f600}]{0,4}", inner, 0..6)
                        .prop_map(|m| Json::Object(m.into_iter().collect())),
                ]
            })
        }

        /// Writes `value` as JSON, escaping every non-ASCII character as `\u`.
        fn escaped(value: &Json) -> String {
            let ascii = |s: &str| {
                let mut out = String::from("\"");
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
                        c => {
                            let mut units = [0u16; 2];
                            for u in c.encode_utf16(&mut units) {
                                out.push_str(&alloc::format!("\\u{u:04X}"));
                            }
                        }
                    }
                }
                out + "\""
            };
            match value {
                Json::String(s) => ascii(s),
                Json::Array(items) => {
                    let items: Vec<_> = items.iter().map(escaped).collect();
                    alloc::format!("[{}]", items.join(" , "))
                }
                Json::Object(m) => {
                    let members: Vec<_> = m
                        .iter()
                        .map(|(k, v)| alloc::format!("{}:\n{}", ascii(k), escaped(v)))
                        .collect();
                    alloc::format!("{{ {} }}", members.join(","))
                }
                other => other.to_string(),
            }
        }

        fn same(view: Value<'_>, expected: &Json) -> Result<(), TestCaseError> {
            match expected {
                Json::Null => prop_assert_eq!(view.describe(), "null"),
                Json::Bool(b) => prop_assert_eq!(view.as_bool(), Some(*b)),
                Json::Number(n) => prop_assert_eq!(
                    view.as_number(),
                    Some(match (n.as_u64(), n.as_i64()) {
                        (Some(u), _) => Number::Unsigned(u),
                        (None, Some(i)) => Number::Negative(i),
                        (None, None) => Number::Other,
                    })
                ),
                Json::String(s) => {
                    let text = view.as_str().map(Cow::into_owned);
                    prop_assert_eq!(text.as_ref(), Some(s));
                }
                Json::Array(items) => {
                    prop_assert!(view.is_array());
                    prop_assert_eq!(view.items().count(), items.len());
                    for (v, e) in view.items().zip(items) {
                        same(v, e)?;
                    }
                }
                Json::Object(m) => {
                    prop_assert!(view.is_object());
                    let names: Vec<_> = view.members().map(|(k, _)| k.into_owned()).collect();
                    let expected: Vec<_> = m.keys().cloned().collect();
                    prop_assert_eq!(names, expected);
                    for (k, e) in m {
                        same(view.get(k).unwrap(), e)?;
                    }
                }
            }
            if !matches!(expected, Json::Bool(_) | Json::Null | Json::Number(_)) {
                prop_assert_eq!(view.as_bool(), None);
                prop_assert_eq!(view.as_number(), None);
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn reads_what_serde_json_reads(value in json()) {
                for text in [value.to_string(), serde_json::to_string_pretty(&value).unwrap(), escaped(&value)] {
                    // What serde_json reads back (floats may differ in the last digit).
                    let read: Json = serde_json::from_str(&text).unwrap();
                    let doc = Document::parse(text.as_bytes()).unwrap();
                    same(doc.root(), &read)?;
                }
            }
        }
    }
}
