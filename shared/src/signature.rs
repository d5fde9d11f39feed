//! `Persona-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`; during secret rotation
//! several such groups separated by spaces. The MAC is keyed with the secret as its
//! literal bytes, over `"<t>.<raw body>"`.
//!
//! Verification costs one HMAC over the whole body per distinct (timestamp, secret)
//! pair, whatever the sender writes: the groups are capped ([`MAX_SIGNATURE_GROUPS`],
//! [`MAX_MACS_PER_GROUP`]) and groups that share a timestamp share its MACs.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hmac::digest::CtOutput;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::rejection::{ErrorCode, Rejection};

/// The header's name, lower-case as HTTP/2 and proxy-wasm hosts spell it.
pub const SIGNATURE_HEADER: &str = "persona-signature";

/// The most `t=…,v1=…` groups a delivery may carry, counted over every
/// `Persona-Signature` header, well formed or not. Persona sends one, two while a
/// secret rotates; each fresh group can cost an HMAC over the whole body per secret,
/// so more are refused (`401 signature_malformed`) before any is computed.
pub const MAX_SIGNATURE_GROUPS: usize = 4;

/// The most `v1` MACs one group may carry (Persona sends one).
pub const MAX_MACS_PER_GROUP: usize = 4;

type HmacSha256 = Hmac<Sha256>;

/// One parsed `t=…,v1=…` group: the timestamp as written (it is part of the MAC
/// input) and every `v1` MAC it carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Group<'a> {
    pub timestamp_text: &'a str,
    pub timestamp: u64,
    pub macs: Vec<[u8; 32]>,
}

/// Every group of every header value, white-space separated. The Fetch API joins
/// repeated headers with `", "`, so a group may end with one comma.
fn group_texts<'a>(values: &'a [&'a str]) -> impl Iterator<Item = &'a str> + 'a {
    values
        .iter()
        .flat_map(|value| value.split([' ', '\t']))
        .filter(|g| !g.is_empty())
}

/// Parses every group of every header value. Groups that are not well formed are
/// skipped; `Err` (the detail) when none is, when there are more than
/// [`MAX_SIGNATURE_GROUPS`], or when one carries more than [`MAX_MACS_PER_GROUP`].
pub(crate) fn parse_groups<'a>(values: &'a [&'a str]) -> Result<Vec<Group<'a>>, String> {
    let count = group_texts(values).take(MAX_SIGNATURE_GROUPS + 1).count();
    if count > MAX_SIGNATURE_GROUPS {
        return Err(format!(
            "more than {MAX_SIGNATURE_GROUPS} t=…,v1=… groups (Persona sends one, two while a secret rotates)"
        ));
    }
    let mut groups = Vec::new();
    for text in group_texts(values) {
        match parse_group(text) {
            Ok(group) => groups.push(group),
            Err(Malformed::TooManyMacs) => {
                return Err(format!(
                    "a group carries more than {MAX_MACS_PER_GROUP} v1 signatures"
                ));
            }
            Err(Malformed::Group) => {}
        }
    }
    if groups.is_empty() {
        return Err(String::from(if count > 0 {
            "no well-formed t=<seconds>,v1=<64 hex digits> group"
        } else {
            "the header is empty"
        }));
    }
    Ok(groups)
}

/// Why a group was not parsed.
enum Malformed {
    /// Skipped: another group may still verify.
    Group,
    /// Refuses the header.
    TooManyMacs,
}

fn parse_group(group: &str) -> Result<Group<'_>, Malformed> {
    // One trailing comma: what joining repeated headers with ", " leaves.
    let group = group.strip_suffix(',').unwrap_or(group);
    let mut timestamp: Option<(&str, u64)> = None;
    let mut macs = Vec::new();
    for item in group.split(',') {
        let (key, value) = item.split_once('=').ok_or(Malformed::Group)?;
        match key {
            "t" => {
                if timestamp.is_some() || value.is_empty() || value.len() > 12 {
                    return Err(Malformed::Group);
                }
                if !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Malformed::Group);
                }
                let seconds = value.parse().map_err(|_| Malformed::Group)?;
                timestamp = Some((value, seconds));
            }
            "v1" => {
                if macs.len() == MAX_MACS_PER_GROUP {
                    return Err(Malformed::TooManyMacs);
                }
                macs.push(decode_hex32(value).ok_or(Malformed::Group)?);
            }
            // Unknown schemes (a future v2) are ignored, as Stripe-style schemes expect.
            _ => {}
        }
    }
    let (timestamp_text, timestamp) = timestamp.ok_or(Malformed::Group)?;
    if macs.is_empty() {
        return Err(Malformed::Group);
    }
    Ok(Group {
        timestamp_text,
        timestamp,
        macs,
    })
}

fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let hi = (*pair.first()? as char).to_digit(16)?;
        let lo = (*pair.get(1)? as char).to_digit(16)?;
        *slot = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

fn mac_for(secret: &str, timestamp_text: &str, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable_hmac(),
    };
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cold]
fn unreachable_hmac() -> HmacSha256 {
    // `new_from_slice` only fails for fixed-size-key MACs; HMAC has none. Keep a
    // panic-free path anyway: an empty key, which no configured secret can equal.
    loop {
        if let Ok(mac) = HmacSha256::new_from_slice(&[0u8; 1]) {
            return mac;
        }
    }
}

/// The MAC of `body` signed with `secret` at `timestamp_text`, comparable in constant
/// time.
type Tag = CtOutput<HmacSha256>;

/// Verifies the headers' signatures over `body`: any group whose timestamp is within
/// `tolerance` seconds of `now` (either side), with any configured secret.
pub(crate) fn verify(
    values: &[&str],
    secrets: &[String],
    tolerance: u64,
    now: u64,
    body: &[u8],
) -> Result<(), Rejection> {
    verify_with(
        values,
        secrets,
        tolerance,
        now,
        &mut |secret, timestamp_text| mac_for(secret, timestamp_text, body).finalize(),
    )
}

/// [`verify`] with the MAC computation passed in, so tests can count it: `tag` is
/// called once per distinct (timestamp text, secret) among the fresh groups.
fn verify_with(
    values: &[&str],
    secrets: &[String],
    tolerance: u64,
    now: u64,
    tag: &mut dyn FnMut(&str, &str) -> Tag,
) -> Result<(), Rejection> {
    if values.is_empty() {
        return Err(Rejection::new(
            ErrorCode::SignatureMissing,
            "the Persona-Signature header is missing",
        ));
    }
    let groups = parse_groups(values).map_err(|why| {
        Rejection::new(
            ErrorCode::SignatureMalformed,
            format!("Persona-Signature: {why}"),
        )
    })?;
    let fresh: Vec<&Group<'_>> = groups
        .iter()
        .filter(|g| g.timestamp.abs_diff(now) <= tolerance)
        .collect();
    if fresh.is_empty() {
        return Err(Rejection::new(
            ErrorCode::SignatureStale,
            format!("every Persona-Signature timestamp is more than {tolerance} s from now"),
        ));
    }
    for (i, group) in fresh.iter().enumerate() {
        let timestamp_text = group.timestamp_text;
        if fresh
            .iter()
            .take(i)
            .any(|earlier| earlier.timestamp_text == timestamp_text)
        {
            // Its MACs were compared with the earlier group's.
            continue;
        }
        for secret in secrets {
            let computed = tag(secret, timestamp_text);
            let same_timestamp = fresh
                .iter()
                .skip(i)
                .filter(|g| g.timestamp_text == timestamp_text);
            for expected in same_timestamp.flat_map(|g| g.macs.iter()) {
                // `CtOutput` compares in constant time.
                if computed == Tag::new((*expected).into()) {
                    return Ok(());
                }
            }
        }
    }
    Err(Rejection::new(
        ErrorCode::SignatureMismatch,
        "no Persona-Signature group matches the body with a configured secret",
    ))
}

/// The `Persona-Signature` value Persona would send for `body` signed with `secret`
/// at `timestamp`.
pub fn signature_header(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let t = alloc::format!("{timestamp}");
    let tag = mac_for(secret, &t, body).finalize().into_bytes();
    let mut out = String::with_capacity(t.len() + 70);
    out.push_str("t=");
    out.push_str(&t);
    out.push_str(",v1=");
    for b in tag.iter() {
        out.push(hex_digit(b >> 4));
        out.push(hex_digit(b & 0xf));
    }
    out
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    const SECRET: &str = "wbhsec_test";

    #[test]
    fn sign_then_verify() {
        let body = br#"{"data":{}}"#;
        let header = signature_header(SECRET, 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        let secrets = vec![SECRET.to_string()];
        assert_eq!(
            verify(&[&header], &secrets, 300, 1_700_000_100, body),
            Ok(())
        );
        // Tolerance applies both ways.
        assert_eq!(
            verify(&[&header], &secrets, 300, 1_699_999_800, body),
            Ok(())
        );
        let stale = verify(&[&header], &secrets, 300, 1_700_000_301, body).unwrap_err();
        assert_eq!(stale.code, ErrorCode::SignatureStale);
        let future = verify(&[&header], &secrets, 300, 1_699_999_699, body).unwrap_err();
        assert_eq!(future.code, ErrorCode::SignatureStale);
        let other_body = verify(&[&header], &secrets, 300, 1_700_000_000, b"{}").unwrap_err();
        assert_eq!(other_body.code, ErrorCode::SignatureMismatch);
    }

    #[test]
    fn a_known_vector() {
        // From openssl: printf '%s' '1700000000.{}' | openssl dgst -sha256 -hmac wbhsec_test
        assert_eq!(
            signature_header(SECRET, 1_700_000_000, b"{}"),
            "t=1700000000,v1=d132a70d733d73ec3162b6327e2c7fc6cdd448a4190ef20379145b7f1d2690a5"
        );
    }

    #[test]
    fn rotation_any_group_any_secret() {
        let body = b"{}";
        let old = signature_header("wbhsec_old", 100, body);
        let new = signature_header("wbhsec_new", 100, body);
        let both = alloc::format!("{old} {new}");
        let only_new = vec!["wbhsec_new".to_string()];
        assert_eq!(verify(&[&both], &only_new, 300, 100, body), Ok(()));
        let two_secrets = vec!["wbhsec_x".to_string(), "wbhsec_old".to_string()];
        assert_eq!(verify(&[&old], &two_secrets, 300, 100, body), Ok(()));
        // Several headers are read as one list of groups.
        assert_eq!(
            verify(&["t=1,v1=zz", &new], &only_new, 300, 100, body),
            Ok(())
        );
    }

    /// A valid group of `secret` at `t`, for the group and cost tests.
    fn group(secret: &str, t: u64) -> String {
        signature_header(secret, t, b"{}")
    }

    #[test]
    fn at_most_max_signature_groups_are_read() {
        let secrets = vec![SECRET.to_string()];
        let good = group(SECRET, 100);
        let junk = "t=100,v1=zz";
        // Four groups (the genuine one last): read.
        let four = alloc::format!("{junk} {junk} {junk} {good}");
        assert_eq!(verify(&[&four], &secrets, 300, 100, b"{}"), Ok(()));
        // Five, over one header or several, well formed or not: refused before any MAC.
        for values in [
            vec![alloc::format!("{junk} {four}")],
            vec![four.clone(), String::from(junk)],
            vec![good.clone(); 5],
        ] {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let mut computed = 0;
            let r = verify_with(&values, &secrets, 300, 100, &mut |s, t| {
                computed += 1;
                mac_for(s, t, b"{}").finalize()
            })
            .unwrap_err();
            assert_eq!(r.code, ErrorCode::SignatureMalformed, "{values:?}");
            assert!(
                r.detail.contains("more than 4 t=…,v1=… groups"),
                "{}",
                r.detail
            );
            assert_eq!(computed, 0);
        }
        // At most four v1 MACs in one group.
        let mac = &good["t=100,v1=".len()..];
        let five_macs = alloc::format!("t=100,v1={mac},v1={mac},v1={mac},v1={mac},v1={mac}");
        let r = verify(&[&five_macs], &secrets, 300, 100, b"{}").unwrap_err();
        assert_eq!(r.code, ErrorCode::SignatureMalformed);
        assert!(r.detail.contains("more than 4 v1"), "{}", r.detail);
        let four_macs = alloc::format!("t=100,v1={mac},v1={mac},v1={mac},v1={mac}");
        assert_eq!(verify(&[&four_macs], &secrets, 300, 100, b"{}"), Ok(()));
    }

    #[test]
    fn one_mac_per_distinct_timestamp_and_secret() {
        let secrets = vec!["wbhsec_a".to_string(), "wbhsec_b".to_string()];
        let count = |values: &[&str], now: u64| {
            let mut computed: Vec<(String, String)> = Vec::new();
            let result = verify_with(values, &secrets, 300, now, &mut |s, t| {
                computed.push((s.to_string(), t.to_string()));
                mac_for(s, t, b"{}").finalize()
            });
            (result.map_err(|r| r.code), computed)
        };
        // Four forged groups with one timestamp: one MAC per secret, not per group.
        let forged = |t: u64, byte: &str| alloc::format!("t={t},v1={}", byte.repeat(64));
        let same_t = [
            forged(100, "0"),
            forged(100, "1"),
            forged(100, "2"),
            forged(100, "3"),
        ];
        let values: Vec<&str> = same_t.iter().map(String::as_str).collect();
        let (result, computed) = count(&values, 100);
        assert_eq!(result, Err(ErrorCode::SignatureMismatch));
        assert_eq!(
            computed,
            [
                ("wbhsec_a".to_string(), "100".to_string()),
                ("wbhsec_b".to_string(), "100".to_string())
            ]
        );
        // Two timestamps: two MACs per secret; the genuine one in the last group is found.
        let mixed = [
            forged(100, "0"),
            forged(101, "1"),
            forged(100, "2"),
            group("wbhsec_b", 101),
        ];
        let values: Vec<&str> = mixed.iter().map(String::as_str).collect();
        let (result, computed) = count(&values, 100);
        assert_eq!(result, Ok(()));
        assert_eq!(computed.len(), 4, "{computed:?}");
        // Groups outside the tolerance cost nothing; "0100" is not "100".
        let stale = [
            forged(1, "0"),
            forged(2, "0"),
            forged(1000, "0"),
            forged(1000, "1"),
        ];
        let values: Vec<&str> = stale.iter().map(String::as_str).collect();
        assert_eq!(count(&values, 1000).1.len(), 2);
        let texts = [
            forged(100, "0"),
            String::from("t=0100,v1=") + &"0".repeat(64),
        ];
        let values: Vec<&str> = texts.iter().map(String::as_str).collect();
        assert_eq!(count(&values, 100).1.len(), 4);
    }

    #[test]
    fn repeated_headers_joined_with_a_comma_verify() {
        // The Fetch API gives two Persona-Signature headers as one value, "a, b".
        let secrets = vec![SECRET.to_string()];
        let good = group(SECRET, 100);
        let other = group("wbhsec_retired", 100);
        for joined in [
            alloc::format!("{good}, {other}"),
            alloc::format!("{other}, {good}"),
            alloc::format!("{good},"),
        ] {
            assert_eq!(
                verify(&[&joined], &secrets, 300, 100, b"{}"),
                Ok(()),
                "{joined}"
            );
        }
        // Only one trailing comma, and only at the end of a group.
        for bad in [
            alloc::format!("{good},,"),
            alloc::format!(",{good}"),
            good.replacen(",v1=", ",,v1=", 1),
        ] {
            let r = verify(&[&bad], &secrets, 300, 100, b"{}").unwrap_err();
            assert_eq!(r.code, ErrorCode::SignatureMalformed, "{bad}");
        }
    }

    #[test]
    fn malformed_and_missing() {
        let secrets = vec![SECRET.to_string()];
        let missing = verify(&[], &secrets, 300, 0, b"").unwrap_err();
        assert_eq!(missing.code, ErrorCode::SignatureMissing);
        for bad in [
            "",
            "garbage",
            "t=abc,v1=00",
            "t=1",
            "v1=00",
            "t=1,v1=xyz",
            "t=-5,v1=",
            "t=1,t=2,v1=00",
        ] {
            let r = verify(&[bad], &secrets, 300, 0, b"").unwrap_err();
            assert_eq!(r.code, ErrorCode::SignatureMalformed, "{bad}");
        }
    }
}
