//! A validating JSON scanner that records the document's structure as a flat tape of
//! byte spans, so later passes can look ahead (a resource's `type` may follow its
//! `attributes`) and copy untouched bytes verbatim instead of re-serialising them.
//!
//! It accepts exactly RFC 8259 JSON in UTF-8: no byte-order mark, no trailing bytes
//! other than white space, no lone surrogates in `\u` escapes. Nesting deeper than the
//! limit is refused before any deeper byte is looked at.

use alloc::vec::Vec;

use super::bytes::plain_len;
use super::text::hex4;

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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

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
}
