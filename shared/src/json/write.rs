//! JSON string literals out: the quoting of text the core writes into bodies, replies
//! and messages.

use alloc::string::String;
use alloc::vec::Vec;

/// Displays text as a JSON string literal, for messages that quote user input. (Not
/// `{:?}`: Debug formatting pulls Unicode tables into the .wasm.)
pub(crate) struct Quoted<'a>(pub &'a str);

impl core::fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut out = String::with_capacity(self.0.len() + 2);
        push_string(&mut out, self.0);
        f.write_str(&out)
    }
}

/// Appends `text` as a JSON string literal (quotes included). Every control
/// character is escaped, DEL and the C1 range too (JSON only requires C0), so quoted
/// input cannot carry terminal escape sequences into logs.
pub(crate) fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                use core::fmt::Write;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends raw bytes that are valid UTF-8 key text as a JSON string literal.
pub(crate) fn push_string_bytes(out: &mut Vec<u8>, text: &[u8]) {
    // Renamed keys are printable ASCII without quotes or backslashes: nothing to
    // escape, so the bytes go as they are (what `push_string` would write).
    if text
        .iter()
        .all(|&b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(text);
        out.push(b'"');
        return;
    }
    match core::str::from_utf8(text) {
        Ok(s) => {
            let mut encoded = String::with_capacity(s.len() + 2);
            push_string(&mut encoded, s);
            out.extend_from_slice(encoded.as_bytes());
        }
        Err(_) => out.extend_from_slice(b"\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_every_control_character() {
        // Found by fuzz/ (blocklist_entry): DEL and C1 (U+009B is CSI) reached messages raw.
        assert_eq!(
            alloc::format!("{}", Quoted("a\u{7f}\u{9b}[31m\u{1}\n\u{85}é")),
            "\"a\\u007f\\u009b[31m\\u0001\\n\\u0085é\""
        );
    }

    #[test]
    fn encodes_strings() {
        let mut s = String::new();
        push_string(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    #[test]
    fn key_bytes_are_quoted_like_strings() {
        for text in [
            "",
            "created-at",
            "a b~",
            "q\"uote",
            "back\\slash",
            "tab\t",
            "del\u{7f}",
            "é",
            "\u{9b}",
        ] {
            let mut expected = String::new();
            push_string(&mut expected, text);
            let mut out = b"x".to_vec();
            push_string_bytes(&mut out, text.as_bytes());
            assert_eq!(out, [b"x", expected.as_bytes()].concat(), "{text:?}");
        }
    }
}
