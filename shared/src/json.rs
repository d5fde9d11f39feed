//! A validating JSON scanner that records the document's structure as a flat tape of
//! byte spans, so later passes can look ahead (a resource's `type` may follow its
//! `attributes`) and copy untouched bytes verbatim instead of re-serialising them.
//!
//! It accepts exactly RFC 8259 JSON in UTF-8: no byte-order mark, no trailing bytes
//! other than white space, no lone surrogates in `\u` escapes. Nesting deeper than the
//! limit is refused before any deeper byte is looked at.

use alloc::string::String;
use alloc::vec::Vec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    /// An object member's name; its value's nodes follow it.
    Key,
    String,
    /// A number, `true`, `false` or `null`: bytes that are never rewritten.
    Scalar,
}

/// One tape entry. `start..end` are byte offsets into the document (strings include
/// their quotes). For containers `next` is the tape index just past the subtree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// For strings and keys: whether the text holds a `\` escape.
    pub escaped: bool,
    pub start: u32,
    pub end: u32,
    pub next: u32,
}

impl Node {
    pub(crate) fn span(&self) -> core::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Why a document was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Error {
    /// Not JSON (or not UTF-8); the byte offset where it went wrong.
    Syntax(usize),
    /// Nested deeper than the limit, at this offset.
    TooDeep(usize),
}

/// Work done in the scanner's single pass, as it meets each part of the document.
/// Offsets are byte offsets into the input; every method has a no-op default.
pub(crate) trait Hooks {
    /// An object (`is_object`) or array opens at `start`.
    #[inline(always)]
    fn open(&mut self, _is_object: bool, _start: usize) {}
    /// A member name spans `start..end` (with its quotes); its value comes next.
    #[inline(always)]
    fn key(&mut self, _input: &[u8], _start: usize, _end: usize, _escaped: bool) {}
    /// A string, number or literal value ends at `end`.
    #[inline(always)]
    fn scalar(&mut self, _end: usize) {}
    /// The innermost open container closes; `end` is just past its bracket.
    #[inline(always)]
    fn close(&mut self, _end: usize) {}
}

/// No extra work: a plain scan.
impl Hooks for () {}

/// Scans `input` into `tape` (cleared first): every node. (Only the tests need the
/// whole tape.)
#[cfg(test)]
pub(crate) fn scan(input: &[u8], max_depth: usize, tape: &mut Vec<Node>) -> Result<(), Error> {
    scan_with(input, max_depth, usize::MAX, tape, &mut ())
}

/// Scans `input`, calling `hooks` along the way, and records in `tape` (cleared
/// first) only the nodes at most `keep_depth` containers deep: a container at that
/// depth is recorded without its contents (its `next` is the index after it). The
/// whole document is validated either way. The hooks see a prefix of a document that
/// may still turn out invalid: their result counts only when this returns `Ok`.
pub(crate) fn scan_with<H: Hooks>(
    input: &[u8],
    max_depth: usize,
    keep_depth: usize,
    tape: &mut Vec<Node>,
    hooks: &mut H,
) -> Result<(), Error> {
    tape.clear();
    // UTF-8 is checked as the scan goes: outside strings only ASCII structure is
    // valid, and inside them every non-ASCII character is checked where it stands.
    if input.len() > u32::MAX as usize {
        return Err(Error::Syntax(u32::MAX as usize));
    }
    Scanner {
        input,
        pos: 0,
        tape,
        stack: Vec::with_capacity(16),
        max_depth,
        keep_depth,
        hooks,
    }
    .run()
}

/// The tape index of an open container that is not recorded (see `keep_depth`).
const NOT_KEPT: usize = usize::MAX;

struct Scanner<'a, 't, 'h, H> {
    input: &'a [u8],
    pos: usize,
    tape: &'t mut Vec<Node>,
    /// Open containers: their tape index (`NOT_KEPT` when not recorded) and whether
    /// they are objects.
    stack: Vec<(usize, bool)>,
    max_depth: usize,
    keep_depth: usize,
    hooks: &'h mut H,
}

enum State {
    Value,
    ObjectFirst,
    ArrayFirst,
    AfterValue,
}

impl<H: Hooks> Scanner<'_, '_, '_, H> {
    fn run(mut self) -> Result<(), Error> {
        let mut state = State::Value;
        loop {
            self.skip_ws();
            match state {
                State::Value => state = self.value()?,
                State::ObjectFirst => {
                    if self.peek() == Some(b'}') {
                        self.close()?;
                        state = State::AfterValue;
                    } else {
                        self.member_name()?;
                        state = State::Value;
                    }
                }
                State::ArrayFirst => {
                    if self.peek() == Some(b']') {
                        self.close()?;
                        state = State::AfterValue;
                    } else {
                        state = State::Value;
                    }
                }
                State::AfterValue => {
                    let Some(&(_, is_object)) = self.stack.last() else {
                        // The root value is complete: only white space may follow.
                        return if self.pos == self.input.len() {
                            Ok(())
                        } else {
                            Err(Error::Syntax(self.pos))
                        };
                    };
                    match (self.peek(), is_object) {
                        (Some(b','), true) => {
                            self.pos += 1;
                            self.skip_ws();
                            self.member_name()?;
                            state = State::Value;
                        }
                        (Some(b','), false) => {
                            self.pos += 1;
                            state = State::Value;
                        }
                        (Some(b'}'), true) | (Some(b']'), false) => self.close()?,
                        _ => return Err(Error::Syntax(self.pos)),
                    }
                }
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.input.get(self.pos) {
            self.pos += 1;
        }
    }

    fn push(&mut self, kind: Kind, escaped: bool, start: usize, end: usize) {
        if self.stack.len() > self.keep_depth {
            return;
        }
        let next = self.tape.len() as u32 + 1;
        self.tape.push(Node {
            kind,
            escaped,
            start: start as u32,
            end: end as u32,
            next,
        });
    }

    fn value(&mut self) -> Result<State, Error> {
        let start = self.pos;
        match self.peek() {
            Some(open @ (b'{' | b'[')) => {
                if self.stack.len() >= self.max_depth {
                    return Err(Error::TooDeep(start));
                }
                let is_object = open == b'{';
                // Recorded (or not) at its parent's depth, like any other value.
                let index = if self.stack.len() > self.keep_depth {
                    NOT_KEPT
                } else {
                    self.tape.len()
                };
                self.push(
                    if is_object { Kind::Object } else { Kind::Array },
                    false,
                    start,
                    start,
                );
                self.stack.push((index, is_object));
                self.hooks.open(is_object, start);
                self.pos += 1;
                Ok(if is_object {
                    State::ObjectFirst
                } else {
                    State::ArrayFirst
                })
            }
            Some(b'"') => {
                let escaped = self.string()?;
                self.push(Kind::String, escaped, start, self.pos);
                self.hooks.scalar(self.pos);
                Ok(State::AfterValue)
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                self.push(Kind::Scalar, false, start, self.pos);
                self.hooks.scalar(self.pos);
                Ok(State::AfterValue)
            }
            _ => Err(Error::Syntax(start)),
        }
    }

    fn member_name(&mut self) -> Result<(), Error> {
        let start = self.pos;
        if self.peek() != Some(b'"') {
            return Err(Error::Syntax(start));
        }
        let escaped = self.string()?;
        self.push(Kind::Key, escaped, start, self.pos);
        self.hooks.key(self.input, start, self.pos, escaped);
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(Error::Syntax(self.pos));
        }
        self.pos += 1;
        Ok(())
    }

    fn close(&mut self) -> Result<(), Error> {
        let (index, _) = self.stack.pop().ok_or(Error::Syntax(self.pos))?;
        self.pos += 1;
        if index != NOT_KEPT {
            let next = self.tape.len() as u32;
            let end = self.pos as u32;
            let node = self.tape.get_mut(index).ok_or(Error::Syntax(self.pos))?;
            node.end = end;
            node.next = next;
        }
        self.hooks.close(self.pos);
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Result<State, Error> {
        let start = self.pos;
        let end = start + word.len();
        // Byte by byte: a `memcmp` call is a loop in Wasm anyway.
        let found = self.input.get(start..end).unwrap_or_default();
        if found.len() != word.len() || found.iter().zip(word).any(|(a, b)| a != b) {
            return Err(Error::Syntax(start));
        }
        self.pos = end;
        self.push(Kind::Scalar, false, start, end);
        self.hooks.scalar(end);
        Ok(State::AfterValue)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), Error> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Error::Syntax(self.pos)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(Error::Syntax(self.pos));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(Error::Syntax(self.pos));
            }
        }
        Ok(())
    }

    /// Scans a string starting at its opening quote; returns whether it had escapes.
    fn string(&mut self) -> Result<bool, Error> {
        self.pos += 1;
        let mut escaped = false;
        loop {
            let rest = self.input.get(self.pos..).unwrap_or_default();
            let plain = plain_len(rest);
            self.pos += plain;
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                Some(b'\\') => {
                    escaped = true;
                    self.escape()?;
                }
                Some(0x80..=0xFF) => {
                    self.pos +=
                        utf8_char_len(self.input, self.pos).ok_or(Error::Syntax(self.pos))?;
                }
                _ => return Err(Error::Syntax(self.pos)),
            }
        }
    }

    /// Validates one escape at `pos` (the backslash) and moves past it.
    fn escape(&mut self) -> Result<(), Error> {
        let at = self.pos;
        match self.input.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'u') => {
                let unit = hex4(self.input, at + 2).ok_or(Error::Syntax(at))?;
                self.pos += 6;
                match unit {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by an escaped low surrogate.
                        if self.input.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(Error::Syntax(at));
                        }
                        match hex4(self.input, self.pos + 2) {
                            Some(0xDC00..=0xDFFF) => {
                                self.pos += 6;
                                Ok(())
                            }
                            _ => Err(Error::Syntax(at)),
                        }
                    }
                    0xDC00..=0xDFFF => Err(Error::Syntax(at)),
                    _ => Ok(()),
                }
            }
            _ => Err(Error::Syntax(at)),
        }
    }
}

/// How many leading bytes of `bytes` need no attention inside a string: not `"`,
/// not `\\`, not a control character, not the start of a non-ASCII character. Eight
/// bytes at a time with the classic "has zero byte" bit trick; the lowest flagged
/// byte is always a true match.
#[inline]
fn plain_len(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut i = 0usize;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let Ok(array) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(array);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        let flagged = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w)
            | w;
        let flagged = flagged & HIGHS;
        if flagged != 0 {
            return i + (flagged.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i + bytes
        .get(i..)
        .unwrap_or_default()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b))
        .unwrap_or(bytes.len().saturating_sub(i))
}

/// The length of the valid UTF-8 character starting at `at`, if there is one.
fn utf8_char_len(input: &[u8], at: usize) -> Option<usize> {
    let len = match input.get(at)? {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    core::str::from_utf8(input.get(at..at + len)?).ok()?;
    Some(len)
}

fn hex4(input: &[u8], at: usize) -> Option<u32> {
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
pub(crate) fn unescape_into(quoted: &[u8], out: &mut Vec<u8>) -> bool {
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
pub(crate) fn string_text<'a>(input: &'a [u8], node: &Node) -> Option<alloc::borrow::Cow<'a, str>> {
    let quoted = input.get(node.span())?;
    if node.escaped {
        let mut out = Vec::new();
        if !unescape_into(quoted, &mut out) {
            return None;
        }
        String::from_utf8(out).ok().map(alloc::borrow::Cow::Owned)
    } else {
        let inner = quoted.get(1..quoted.len().saturating_sub(1))?;
        core::str::from_utf8(inner)
            .ok()
            .map(alloc::borrow::Cow::Borrowed)
    }
}

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
    match core::str::from_utf8(text) {
        Ok(s) => {
            let mut encoded = String::with_capacity(s.len() + 2);
            push_string(&mut encoded, s);
            out.extend_from_slice(encoded.as_bytes());
        }
        Err(_) => out.extend_from_slice(b"\"\""),
    }
}

/// `a == b` without a `memcmp` call, eight bytes at a time: keys are short, and in
/// Wasm `memcmp` is a byte loop.
#[inline]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a.len() < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    // Whole words, then the last eight bytes (overlapping the last word).
    fn words(s: &[u8]) -> impl Iterator<Item = u64> + '_ {
        s.chunks_exact(8)
            .map(word)
            .chain(s.last_chunk::<8>().map(|w| u64::from_le_bytes(*w)))
    }
    words(a).eq(words(b))
}

/// The eight bytes of `chunk` (exactly eight long) as a little-endian word.
#[inline]
pub(crate) fn word(chunk: &[u8]) -> u64 {
    <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(doc: &str) -> Vec<Node> {
        let mut tape = Vec::new();
        scan(doc.as_bytes(), 64, &mut tape).unwrap_or_else(|e| panic!("{doc}: {e:?}"));
        tape
    }

    fn bad(doc: &[u8]) -> Error {
        let mut tape = Vec::new();
        scan(doc, 64, &mut tape).expect_err(&alloc::format!("{:?}", String::from_utf8_lossy(doc)))
    }

    #[test]
    fn quoting_escapes_every_control_character() {
        // Found by fuzz/ (blocklist_entry): DEL and C1 (U+009B is CSI) reached messages raw.
        assert_eq!(
            alloc::format!("{}", Quoted("a\u{7f}\u{9b}[31m\u{1}\n\u{85}é")),
            "\"a\\u007f\\u009b[31m\\u0001\\n\\u0085é\""
        );
    }

    #[test]
    fn accepts_valid_documents() {
        for doc in [
            "{}",
            "[]",
            " {\"a\" : [1, -0.5e+10, true, false, null, \"x\\u00e9\\ud83d\\ude00\"]}\n",
            "\"just a string\"",
            "12345678901234567890",
            "{\"a\":{\"b\":{\"c\":[]}}}",
        ] {
            ok(doc);
        }
    }

    #[test]
    fn refuses_invalid_documents() {
        for doc in [
            &b""[..],
            b"{",
            b"{\"a\":1,}",
            b"[1,]",
            b"{\"a\" 1}",
            b"{a:1}",
            b"01",
            b"1.",
            b"-",
            b"1e",
            b"tru",
            b"\"\\x\"",
            b"\"\\ud800\"",
            b"\"\\udc00\"",
            b"\"\\ud800\\u0041\"",
            b"\"a\nb\"",
            b"{} {}",
            b"{}x",
            b"\xef\xbb\xbf{}",
            b"\"\xff\"",
            b"[1 2]",
            b"{\"a\":1 \"b\":2}",
        ] {
            assert!(matches!(bad(doc), Error::Syntax(_)));
        }
    }

    #[test]
    fn depth_limit_is_enforced() {
        let deep = "[".repeat(65) + &"]".repeat(65);
        assert!(matches!(bad(deep.as_bytes()), Error::TooDeep(_)));
        let fine = "[".repeat(64) + &"]".repeat(64);
        ok(&fine);
    }

    #[test]
    fn tape_spans_and_next() {
        let doc = "{\"k\":[1,{\"x\":\"y\"}],\"z\":null}";
        let tape = ok(doc);
        assert_eq!(tape[0].kind, Kind::Object);
        assert_eq!(tape[0].next as usize, tape.len());
        assert_eq!(&doc[tape[1].span()], "\"k\"");
        assert_eq!(tape[2].kind, Kind::Array);
        assert_eq!(&doc[tape[2].span()], "[1,{\"x\":\"y\"}]");
        assert_eq!(tape[2].next, 7);
        assert_eq!(&doc[tape[7].span()], "\"z\"");
    }

    #[test]
    fn plain_len_finds_the_first_special_byte() {
        // Non-ASCII bytes stop it too: the scanner checks each such character.
        let specials = [b'"', b'\\', 0x00, 0x1f, b'\n', 0x80, 0xc3, 0xff];
        for len in 0..20 {
            for at in 0..=len {
                for &special in &specials {
                    let mut bytes: Vec<u8> = (0..len).map(|i| b"a ~\x7f/Z9"[i % 7]).collect();
                    if at < len {
                        bytes[at] = special;
                        // Later specials must not hide the first one.
                        if at + 1 < len {
                            bytes[at + 1] = b'"';
                        }
                    }
                    assert_eq!(plain_len(&bytes), at.min(len), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn utf8_is_checked_inside_strings_and_refused_outside() {
        let sequences: [&[u8]; 16] = [
            b"\xc3\xa9",
            b"\xe2\x82\xac",
            b"\xf0\x9f\x98\x80",
            b"\xef\xbf\xbf",
            b"\xc3",
            b"\xc0\x80",
            b"\xc1\xbf",
            b"\xe0\x80\x80",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xf5\x80\x80\x80",
            b"\xff",
            b"\x80",
            b"\xe2\x82",
            b"\xf0\x9f\x98",
            b"a\xc3\xa9\xe2\x82\xacb",
        ];
        let mut tape = Vec::new();
        for seq in sequences {
            for (before, after) in [("", ""), ("abcdefghij", ""), ("", "klmnopqrst"), ("x", "y")] {
                let mut doc = alloc::format!("{{\"k\":\"{before}").into_bytes();
                doc.extend_from_slice(seq);
                doc.extend_from_slice(alloc::format!("{after}\"}}").as_bytes());
                let valid = core::str::from_utf8(&doc).is_ok();
                assert_eq!(scan(&doc, 8, &mut tape).is_ok(), valid, "{doc:?}");
            }
            // Outside a string no non-ASCII byte is valid JSON.
            let mut doc = b"{\"k\":1}".to_vec();
            doc.extend_from_slice(seq);
            assert!(scan(&doc, 8, &mut tape).is_err(), "{doc:?}");
        }
    }

    #[test]
    fn unescapes() {
        let mut out = Vec::new();
        assert!(unescape_into(b"\"name\\u002dfirst\"", &mut out));
        assert_eq!(out, b"name-first");
        assert!(unescape_into(b"\"\\ud83d\\ude00\\n\"", &mut out));
        assert_eq!(out, "\u{1f600}\n".as_bytes());
    }

    #[test]
    fn encodes_strings() {
        let mut s = String::new();
        push_string(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }
}
