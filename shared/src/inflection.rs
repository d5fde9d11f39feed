//! Key inflection: Persona writes keys in kebab-case (`created-at`), camelCase
//! (`createdAt`) or snake_case (`created_at`), per webhook.
//!
//! Two operations:
//! - [`match_form`]: a form that is the same for all three spellings of one key, used
//!   to compare keys with blocklist entries and envelope names. It splits words at
//!   `-`/`_`, at lower-to-upper case changes and at every letter/digit change, and
//!   joins them lower-cased with `-`: `addressStreet1`, `address_street_1` and
//!   `address-street-1` all become `address-street-1`.
//! - [`convert`]: writes a key in a target inflection. Digits split from letters only
//!   in camelCase keys (`addressStreet1` → `address_street_1`), so a kebab or snake key
//!   such as `street1` keeps its shape. Keys that are not identifiers in any
//!   inflection (leading, trailing or doubled separators, like `_links`) are kept as
//!   they are.

use alloc::vec::Vec;

/// The key inflection an output is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inflection {
    /// Keep every key as received.
    Preserve,
    Kebab,
    Camel,
    Snake,
}

impl Inflection {
    pub fn parse(name: &str) -> Option<Inflection> {
        Some(match name {
            "preserve" => Inflection::Preserve,
            "kebab" => Inflection::Kebab,
            "camel" => Inflection::Camel,
            "snake" => Inflection::Snake,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Inflection::Preserve => "preserve",
            Inflection::Kebab => "kebab",
            Inflection::Camel => "camel",
            Inflection::Snake => "snake",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Lower,
    Upper,
    Digit,
    Separator,
    Other,
}

fn class(b: u8) -> Class {
    match b {
        b'a'..=b'z' | b'*' => Class::Lower,
        b'A'..=b'Z' => Class::Upper,
        b'0'..=b'9' => Class::Digit,
        b'-' | b'_' => Class::Separator,
        _ => Class::Other,
    }
}

/// A byte that separates words and is left out of a key's match form.
pub(crate) fn is_separator(b: u8) -> bool {
    class(b) == Class::Separator
}

/// Calls `word` for each word of `key`. `digit_breaks` splits letters from digits.
/// `*` counts as a lower-case letter so blocklist patterns split like keys.
fn for_each_word(key: &[u8], digit_breaks: bool, mut word: impl FnMut(&[u8])) {
    let mut start = 0usize;
    let mut prev = Class::Separator;
    for (i, &b) in key.iter().enumerate() {
        let c = class(b);
        let next_is_lower = key
            .get(i + 1)
            .map(|&n| class(n) == Class::Lower)
            .unwrap_or(false);
        let boundary = match (prev, c) {
            (_, Class::Separator) => {
                if let Some(w) = key.get(start..i).filter(|w| !w.is_empty()) {
                    word(w);
                }
                start = i + 1;
                prev = Class::Separator;
                continue;
            }
            (Class::Lower | Class::Digit, Class::Upper) => true,
            // The last capital of an acronym starts the next word: `URLValue` → url, value.
            (Class::Upper, Class::Upper) => next_is_lower,
            (Class::Lower | Class::Upper, Class::Digit) | (Class::Digit, Class::Lower) => {
                digit_breaks
            }
            _ => false,
        };
        if boundary && i > start {
            if let Some(w) = key.get(start..i) {
                word(w);
            }
            start = i;
        }
        prev = c;
    }
    if let Some(w) = key.get(start..).filter(|w| !w.is_empty()) {
        word(w);
    }
}

/// Whether `key` is already its own match form: lower-case words of letters (or `*`)
/// joined by single dashes, no digits. Most of Persona's keys are, so this one pass is
/// the common case of [`match_form`].
#[inline]
pub(crate) fn is_plain_form(key: &[u8]) -> bool {
    // `after_dash` starts true so that a leading dash (and an empty key) fails.
    let mut after_dash = true;
    for &b in key {
        match b {
            b'a'..=b'z' | b'*' => after_dash = false,
            b'-' if !after_dash => after_dash = true,
            _ => return false,
        }
    }
    !after_dash
}

/// The inflection-insensitive form of a key or pattern, written into `out`.
pub(crate) fn match_form(key: &[u8], out: &mut Vec<u8>) {
    out.clear();
    if is_plain_form(key) {
        out.extend_from_slice(key);
        return;
    }
    for_each_word(key, true, |w| {
        if !out.is_empty() {
            out.push(b'-');
        }
        out.extend(w.iter().map(u8::to_ascii_lowercase));
    });
}

/// The match form of `key`: the key itself when it is its own form (most keys are),
/// else written into `scratch`.
pub(crate) fn form_of<'a>(key: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if is_plain_form(key) {
        key
    } else {
        match_form(key, scratch);
        scratch
    }
}

/// Whether `key`'s match form is `word`, a lowercase word without separators. Cheap
/// for the common "no": the form of such a word holds exactly its letters, so a key
/// whose letters (ignoring case and separators) differ cannot have it; only a key
/// that passes is given its full form (into `scratch`) to rule out inner word breaks.
pub(crate) fn has_form(key: &[u8], word: &[u8], scratch: &mut Vec<u8>) -> bool {
    let mut letters = key.iter().filter(|&&b| !is_separator(b));
    let same_letters = word
        .iter()
        .all(|&w| letters.next().is_some_and(|&b| b.to_ascii_lowercase() == w))
        && letters.next().is_none();
    if !same_letters {
        return false;
    }
    match_form(key, scratch);
    scratch.as_slice() == word
}

/// Convenience for configuration time.
pub(crate) fn match_form_string(key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len());
    match_form(key.as_bytes(), &mut out);
    out
}

/// Whether a key is an identifier that [`convert`] may rewrite.
fn is_inflectable(key: &[u8]) -> bool {
    let (Some(&first), Some(&last)) = (key.first(), key.last()) else {
        return false;
    };
    if class(first) == Class::Separator || class(last) == Class::Separator {
        return false;
    }
    !key.windows(2)
        .any(|w| w.iter().all(|&b| class(b) == Class::Separator))
        && key.iter().all(|&b| class(b) != Class::Other || b == b'*')
}

/// Writes `key` in the target inflection into `out`. Returns false (and leaves `out`
/// empty) when the key stays as it is.
pub(crate) fn convert(key: &[u8], target: Inflection, out: &mut Vec<u8>) -> bool {
    out.clear();
    if target == Inflection::Preserve || !is_inflectable(key) || key.contains(&b'*') {
        return false;
    }
    let has_separator = key.iter().any(|&b| class(b) == Class::Separator);
    let has_upper = key.iter().any(|&b| class(b) == Class::Upper);
    let digit_breaks = !has_separator && has_upper;
    let mut first = true;
    for_each_word(key, digit_breaks, |w| {
        match target {
            Inflection::Kebab | Inflection::Snake => {
                if !first {
                    out.push(if target == Inflection::Kebab {
                        b'-'
                    } else {
                        b'_'
                    });
                }
                out.extend(w.iter().map(u8::to_ascii_lowercase));
            }
            Inflection::Camel => {
                for (i, &b) in w.iter().enumerate() {
                    out.push(if i == 0 && !first {
                        b.to_ascii_uppercase()
                    } else {
                        b.to_ascii_lowercase()
                    });
                }
            }
            Inflection::Preserve => {}
        }
        first = false;
    });
    if out.as_slice() == key {
        out.clear();
        return false;
    }
    true
}

/// Convenience for tests and configuration time.
#[cfg(test)]
pub(crate) fn convert_string(key: &str, target: Inflection) -> alloc::string::String {
    let mut out = Vec::new();
    if convert(key.as_bytes(), target, &mut out) {
        alloc::string::String::from_utf8(out).unwrap_or_default()
    } else {
        alloc::string::String::from(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn mf(s: &str) -> String {
        String::from_utf8(match_form_string(s)).unwrap()
    }

    #[test]
    fn match_form_is_the_same_for_every_inflection() {
        for (a, b, c) in [
            ("created-at", "createdAt", "created_at"),
            ("address-street-1", "addressStreet1", "address_street_1"),
            ("email-address", "emailAddress", "email_address"),
            (
                "selected-country-code",
                "selectedCountryCode",
                "selected_country_code",
            ),
        ] {
            assert_eq!(mf(a), mf(b), "{a} {b}");
            assert_eq!(mf(a), mf(c), "{a} {c}");
        }
        assert_eq!(mf("URLValue"), "url-value");
        assert_eq!(mf("name-*"), "name-*");
        assert_eq!(mf("*Number"), "*-number");
        assert_eq!(mf("*_number"), "*-number");
        assert_eq!(mf("street1"), mf("street_1"));
    }

    #[test]
    fn has_form_agrees_with_match_form() {
        let mut scratch = Vec::new();
        for key in [
            "attributes",
            "Attributes",
            "ATTRIBUTES",
            "_attributes",
            "attributes-",
            "attriButes",
            "attribute",
            "attributess",
            "at-tributes",
            "payload",
            "data",
            "Data",
            "dAta",
            "",
            "attributes1",
        ] {
            for word in ["attributes", "data", "payload"] {
                let expected = match_form_string(key) == word.as_bytes();
                assert_eq!(
                    has_form(key.as_bytes(), word.as_bytes(), &mut scratch),
                    expected,
                    "{key} {word}"
                );
            }
        }
    }

    #[test]
    fn converts_between_inflections() {
        use Inflection::*;
        assert_eq!(convert_string("address-street-1", Camel), "addressStreet1");
        assert_eq!(convert_string("addressStreet1", Snake), "address_street_1");
        assert_eq!(convert_string("addressStreet1", Kebab), "address-street-1");
        assert_eq!(
            convert_string("address_street_1", Kebab),
            "address-street-1"
        );
        assert_eq!(convert_string("created-at", Snake), "created_at");
        assert_eq!(convert_string("street1", Snake), "street1");
        assert_eq!(convert_string("street_1", Camel), "street1");
        assert_eq!(convert_string("_links", Camel), "_links");
        assert_eq!(convert_string("a--b", Camel), "a--b");
        assert_eq!(convert_string("data", Camel), "data");
        assert_eq!(convert_string("name first", Camel), "name first");
        assert_eq!(convert_string("created-at", Preserve), "created-at");
    }
}
