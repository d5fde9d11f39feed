//! `*` wildcards, as event filters and blocklist entries use them: `*` matches any run
//! of bytes (including none); every other byte matches itself.

/// Whether `text` matches `pattern`. Iterative with one backtrack point, so it runs in
/// O(pattern × text) at worst and never recurses.
pub(crate) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        match (pattern.get(p), text.get(t)) {
            (Some(b'*'), _) => {
                star = Some((p, t));
                p += 1;
            }
            (Some(&pc), Some(&tc)) if pc == tc => {
                p += 1;
                t += 1;
            }
            (None, None) => return true,
            _ => match star {
                // Let the last star swallow one more byte and retry.
                Some((sp, st)) if st < text.len() => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                _ => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        assert!(matches(b"*", b""));
        assert!(matches(b"*", b"inquiry.approved"));
        assert!(matches(b"inquiry.*", b"inquiry.approved"));
        assert!(!matches(b"inquiry.*", b"inquiry-session.started"));
        assert!(matches(b"report/*", b"report/watchlist.matched"));
        assert!(matches(b"name-*", b"name-first"));
        assert!(!matches(b"name-*", b"name"));
        assert!(matches(b"*-number", b"identification-number"));
        assert!(matches(b"a*b*c", b"aXbYbZc"));
        assert!(!matches(b"a*b*c", b"aXbYbZ"));
        assert!(matches(b"exact", b"exact"));
        assert!(!matches(b"exact", b"exactly"));
        assert!(!matches(b"", b"x"));
    }
}
