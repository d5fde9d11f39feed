//! The text of scanned strings and keys: their bytes between the quotes, or decoded
//! when they hold `\` escapes. Input here has passed the scanner, which validated
//! every escape and every UTF-8 sequence.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use super::scan::Node;

/// The value of the four hex digits at `at`, if they are four hex digits.
pub(super) fn hex4(input: &[u8], at: usize) -> Option<u32> {
    let digits = input.get(at..at + 4)?;
    let mut value = 0u32;
    for &d in digits {
        value = value * 16 + (d as char).to_digit(16)?;
    }
    Some(value)
}

/// Decodes the text of a scanned string or key (the span includes the quotes) into
/// `out`. The scanner has validated it, so this cannot fail on scanned input; on
/// anything else it returns false.
fn unescape_into(quoted: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let Some(inner) = quoted.get(1..quoted.len().saturating_sub(1)) else {
        return false;
    };
    let mut i = 0usize;
    while let Some(&b) = inner.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let ch = match inner.get(i + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                let Some(unit) = hex4(inner, i + 2) else {
                    return false;
                };
                let code = if (0xD800..=0xDBFF).contains(&unit) {
                    let Some(low) = hex4(inner, i + 8) else {
                        return false;
                    };
                    i += 6;
                    0x10000 + ((unit - 0xD800) << 10) + (low.wrapping_sub(0xDC00) & 0x3FF)
                } else {
                    unit
                };
                i += 4;
                match char::from_u32(code) {
                    Some(c) => c,
                    None => return false,
                }
            }
            _ => return false,
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        i += 2;
    }
    true
}

/// The text of a key or string node: its bytes between the quotes, or, when it has
/// escapes, decoded into `decoded` (which the caller reuses across keys).
pub(crate) fn node_text<'a>(input: &'a [u8], node: &Node, decoded: &'a mut Vec<u8>) -> &'a [u8] {
    quoted_text(input, node.span(), node.escaped, decoded)
}

/// [`node_text`] for the string at `span` (quotes included), as the scanner reports it.
pub(crate) fn quoted_text<'a>(
    input: &'a [u8],
    span: core::ops::Range<usize>,
    escaped: bool,
    decoded: &'a mut Vec<u8>,
) -> &'a [u8] {
    let quoted = input.get(span).unwrap_or_default();
    if escaped {
        unescape_into(quoted, decoded);
        decoded
    } else {
        quoted
            .get(1..quoted.len().saturating_sub(1))
            .unwrap_or_default()
    }
}

/// The decoded text of a string node, borrowing when it has no escapes.
pub(crate) fn string_text<'a>(input: &'a [u8], node: &Node) -> Option<Cow<'a, str>> {
    let quoted = input.get(node.span())?;
    if node.escaped {
        let mut out = Vec::new();
        if !unescape_into(quoted, &mut out) {
            return None;
        }
        String::from_utf8(out).ok().map(Cow::Owned)
    } else {
        let inner = quoted.get(1..quoted.len().saturating_sub(1))?;
        core::str::from_utf8(inner).ok().map(Cow::Borrowed)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes() {
        let mut out = Vec::new();
        assert!(unescape_into(b"\"name\\u002dfirst\"", &mut out));
        assert_eq!(out, b"name-first");
        assert!(unescape_into(b"\"\\ud83d\\ude00\\n\"", &mut out));
        assert_eq!(out, "\u{1f600}\n".as_bytes());
    }
}
