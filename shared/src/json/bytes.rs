//! Byte tricks a word (eight bytes) at a time: the scanner's search for the end of a
//! plain run of string bytes, and compares and hashes of short keys without `memcmp`
//! calls (in Wasm `memcmp` is a byte loop).

/// How many leading bytes of `bytes` need no attention inside a string: not `"`,
/// not `\\`, not a control character, not the start of a non-ASCII character. Eight
/// bytes at a time with the classic "has zero byte" bit trick; the lowest flagged
/// byte is always a true match.
#[inline]
pub(super) fn plain_len(bytes: &[u8]) -> usize {
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
    use alloc::vec::Vec;

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
}
