//! `Persona-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`; during secret rotation
//! several such groups separated by spaces. The MAC is keyed with the secret as its
//! literal bytes, over `"<t>.<raw body>"`.

use alloc::string::String;
use alloc::vec::Vec;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::rejection::{ErrorCode, Rejection};

/// The header's name, lower-case as HTTP/2 and proxy-wasm hosts spell it.
pub const SIGNATURE_HEADER: &str = "persona-signature";

type HmacSha256 = Hmac<Sha256>;

/// One parsed `t=…,v1=…` group: the timestamp as written (it is part of the MAC
/// input) and every `v1` MAC it carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Group<'a> {
    pub timestamp_text: &'a str,
    pub timestamp: u64,
    pub macs: Vec<[u8; 32]>,
}

/// Parses every group of every header value. Groups that are not well formed are
/// skipped; `Err` only when none is.
pub(crate) fn parse_groups<'a>(values: &[&'a str]) -> Result<Vec<Group<'a>>, &'static str> {
    let mut groups = Vec::new();
    let mut saw_any = false;
    for value in values {
        for group in value.split([' ', '\t']).filter(|g| !g.is_empty()) {
            saw_any = true;
            if let Some(g) = parse_group(group) {
                groups.push(g);
            }
        }
    }
    if groups.is_empty() {
        return Err(if saw_any {
            "no well-formed t=<seconds>,v1=<64 hex digits> group"
        } else {
            "the header is empty"
        });
    }
    Ok(groups)
}

fn parse_group(group: &str) -> Option<Group<'_>> {
    let mut timestamp: Option<(&str, u64)> = None;
    let mut macs = Vec::new();
    for item in group.split(',') {
        let (key, value) = item.split_once('=')?;
        match key {
            "t" => {
                if timestamp.is_some() || value.is_empty() || value.len() > 12 {
                    return None;
                }
                if !value.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                timestamp = Some((value, value.parse().ok()?));
            }
            "v1" => macs.push(decode_hex32(value)?),
            // Unknown schemes (a future v2) are ignored, as Stripe-style schemes expect.
            _ => {}
        }
    }
    let (timestamp_text, timestamp) = timestamp?;
    if macs.is_empty() {
        return None;
    }
    Some(Group {
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

/// Verifies the headers' signatures over `body`: any group whose timestamp is within
/// `tolerance` seconds of `now` (either side), with any configured secret.
pub(crate) fn verify(
    values: &[&str],
    secrets: &[String],
    tolerance: u64,
    now: u64,
    body: &[u8],
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
            alloc::format!("Persona-Signature: {why}"),
        )
    })?;
    let mut fresh = false;
    for group in &groups {
        if group.timestamp.abs_diff(now) > tolerance {
            continue;
        }
        fresh = true;
        for secret in secrets {
            let mac = mac_for(secret, group.timestamp_text, body);
            for expected in &group.macs {
                // `verify_slice` compares in constant time.
                if mac.clone().verify_slice(expected).is_ok() {
                    return Ok(());
                }
            }
        }
    }
    if fresh {
        Err(Rejection::new(
            ErrorCode::SignatureMismatch,
            "no Persona-Signature group matches the body with a configured secret",
        ))
    } else {
        Err(Rejection::new(
            ErrorCode::SignatureStale,
            alloc::format!("every Persona-Signature timestamp is more than {tolerance} s from now"),
        ))
    }
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
