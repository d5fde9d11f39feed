//! The checks of one delivery and the decision on its body, which [`crate::Exchange`]
//! drives: the head's checks, the body's size, and `decide` on the complete body.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::address::find_client_address;
use crate::config::{Mode, Policy};
use crate::envelope;
pub use crate::envelope::Metadata;
use crate::glob;
use crate::json;
use crate::rejection::{ErrorCode, JSON_API_CONTENT_TYPE, Rejection};
use crate::rewrite::Rewrite;
use crate::signature::{self, SIGNATURE_HEADER};

/// In shadow mode, the header that carries the decision to the origin.
pub const DECISION_HEADER: &str = "x-persona-edge-decision";

/// The request line and headers, as the host gives them.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// Every header, names in any case, repeated names as separate entries.
    pub headers: &'a [(&'a str, &'a str)],
    /// The connection's peer address (`ip`, `ip:port` or `[ipv6]:port`).
    pub peer: Option<&'a str>,
}

impl RequestHead<'_> {
    /// The declared body length: the value of the one `Content-Length` header, when it
    /// is a number (`None` without one, with several, or with a value that is not).
    pub fn content_length(&self) -> Option<usize> {
        let mut values = header_values(self.headers, "content-length");
        match (values.next(), values.next()) {
            (Some(value), None) => value.trim().parse().ok(),
            _ => None,
        }
    }
}

/// Header pairs as [`RequestHead::headers`] takes them, borrowed from owned ones (as
/// the proxy-wasm and Worker hosts hand them over).
pub fn borrow_headers(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect()
}

/// A delivery whose head passed: what the body phase needs from the head.
#[derive(Clone, Debug)]
pub struct Pending {
    remove_headers: Vec<String>,
    signatures: Vec<String>,
    attempt: Option<String>,
    /// In shadow mode, the rejection the head would have had.
    shadow_rejection: Option<Rejection>,
}

impl Pending {
    /// Request headers (lower-case names) to remove from the forwarded request, now,
    /// before the body is read: client-supplied `x-persona-*` (also spelled with `_`,
    /// such as `x_persona_event_id`), and `persona-signature`
    /// and `content-length` when the configuration can change bodies. Empty in shadow
    /// mode, which forwards the original.
    pub fn remove_headers(&self) -> &[String] {
        &self.remove_headers
    }

    /// In shadow mode, the rejection the head would have had in enforce mode.
    pub fn shadow_rejection(&self) -> Option<&Rejection> {
        self.shadow_rejection.as_ref()
    }
}

/// What enforce mode does with a delivery; in shadow mode, what it would have done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    Acknowledge,
    Reject(ErrorCode),
}

impl Verdict {
    /// `forward`, `acknowledge; status=204` or `reject; status=401; code=signature_mismatch`:
    /// the decision as filter state, the shadow-mode decision header and log lines spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Forward => "forward",
            Verdict::Acknowledge => "acknowledge; status=204",
            Verdict::Reject(code) => code.verdict_str(),
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery that goes on to the origin.
#[derive(Clone, Debug)]
pub struct Forward<'b> {
    /// The body to send: borrowed when it is the original bytes.
    pub body: Cow<'b, [u8]>,
    /// The routing metadata, when the envelope was read.
    pub metadata: Option<Metadata>,
    /// How many attributes the blocklist removed.
    pub stripped: usize,
    /// `Forward` in enforce mode; in shadow mode, what enforce mode would have done.
    pub verdict: Verdict,
    /// Whether [`Forward::set_headers`] includes the metadata's routing headers.
    pub(crate) routing_headers: bool,
    /// The re-signed `persona-signature`, or in shadow mode the decision.
    pub(crate) other_headers: Vec<(&'static str, String)>,
}

impl Forward<'_> {
    /// Headers to set on the forwarded request, where the host allows: the routing
    /// headers, the re-signed `persona-signature`, or in shadow mode the decision.
    pub fn set_headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let routing = self.metadata.as_ref().filter(|_| self.routing_headers);
        routing
            .into_iter()
            .flat_map(Metadata::headers)
            .chain(self.other_headers.iter().map(|(n, v)| (*n, v.as_str())))
    }
}

/// The decision for one delivery.
#[derive(Clone, Debug)]
pub enum Outcome<'b> {
    Forward(Forward<'b>),
    /// An event type that is not forwarded: answered 204 so Persona stops retrying.
    Acknowledge(Metadata),
    Reject(Rejection),
}

/// A reply persona-edge writes itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Rejection {
    pub fn reply(&self) -> Reply {
        Reply {
            status: self.status(),
            headers: alloc::vec![("content-type", JSON_API_CONTENT_TYPE.to_string())],
            body: self.body(),
        }
    }
}

impl Outcome<'_> {
    /// The reply to send instead of forwarding, if any.
    pub fn reply(&self) -> Option<Reply> {
        match self {
            Outcome::Forward(_) => None,
            Outcome::Acknowledge(_) => Some(Reply {
                status: 204,
                headers: Vec::new(),
                body: String::new(),
            }),
            Outcome::Reject(r) => Some(r.reply()),
        }
    }

    /// The decision as enforce mode takes it.
    pub fn verdict(&self) -> Verdict {
        match self {
            Outcome::Forward(f) => f.verdict,
            Outcome::Acknowledge(_) => Verdict::Acknowledge,
            Outcome::Reject(r) => Verdict::Reject(r.code),
        }
    }
}

/// The values of every header named `name` (any case), in order, without allocating.
fn header_values<'h, 'n>(
    headers: &'n [(&'n str, &'h str)],
    name: &'n str,
) -> impl Iterator<Item = &'h str> + 'n
where
    'h: 'n,
{
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Whether `name` starts with `prefix` (lower case), ignoring ASCII case.
fn starts_with_ignore_case(name: &[u8], prefix: &[u8]) -> bool {
    name.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Whether a client header is in the `x-persona-*` namespace the filter owns, with `_`
/// and `-` alike and in any case: a CGI or WSGI origin reads `x_persona_event_id` as
/// `HTTP_X_PERSONA_EVENT_ID`, the same variable as `x-persona-event-id`.
fn is_persona_header(name: &str) -> bool {
    let prefix = b"x-persona-";
    name.as_bytes().get(..prefix.len()).is_some_and(|head| {
        head.iter()
            .zip(prefix)
            .all(|(&b, &p)| b.to_ascii_lowercase() == p || (b == b'_' && p == b'-'))
    })
}

/// `application/json`, or any `+json` type such as `application/vnd.api+json`, with
/// any parameters.
fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim().as_bytes();
    let suffix = b"+json";
    essence.eq_ignore_ascii_case(b"application/json")
        || (starts_with_ignore_case(essence, b"application/")
            && essence
                .len()
                .checked_sub(suffix.len())
                .and_then(|at| essence.get(at..))
                .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix)))
}

impl Policy {
    /// Phase 1: source address, then method, content type and content encoding,
    /// before any body is read. The source comes first so that a sender outside the allowlist learns
    /// nothing else about what the endpoint accepts: it gets 403 whatever its method
    /// or content type.
    pub fn check_head(&self, head: &RequestHead<'_>) -> Result<Pending, Rejection> {
        let verdict = self.head_verdict(head);
        let shadow_rejection = match (self.mode, verdict) {
            (Mode::Enforce, Err(rejection)) => return Err(rejection),
            (Mode::Enforce, Ok(())) => None,
            (Mode::Shadow, verdict) => verdict.err(),
        };
        let signatures: Vec<String> = header_values(head.headers, SIGNATURE_HEADER)
            .map(String::from)
            .collect();
        let attempt = header_values(head.headers, "persona-webhook-attempts-made")
            .next()
            .map(str::trim)
            .filter(|a| !a.is_empty() && a.len() <= 6 && a.bytes().all(|b| b.is_ascii_digit()))
            .map(String::from);
        let mut remove_headers: Vec<String> = Vec::new();
        if self.mode == Mode::Enforce {
            for (name, _) in head.headers {
                if is_persona_header(name) {
                    let lower = name.to_ascii_lowercase();
                    if !remove_headers.contains(&lower) {
                        remove_headers.push(lower);
                    }
                }
            }
            if self.can_change_body() || self.resigns() {
                remove_headers.push(String::from(SIGNATURE_HEADER));
            }
            if self.can_change_body() {
                remove_headers.push(String::from("content-length"));
            }
        }
        Ok(Pending {
            remove_headers,
            signatures,
            attempt,
            shadow_rejection,
        })
    }

    /// The source check of [`Policy::check_head`] alone, for a host that can answer
    /// an unknown source before it reads the rest of the request: `headers` may be
    /// empty when [`Policy::client_address`] is [`ClientAddress::Peer`], which reads
    /// none. `check_head` makes the same check first, so a host that calls this
    /// first gets the same answer sooner, never another one. In shadow mode a host
    /// must not answer on it: `check_head` records it as the would-be rejection.
    ///
    /// [`ClientAddress::Peer`]: crate::ClientAddress::Peer
    pub fn check_source(
        &self,
        headers: &[(&str, &str)],
        peer: Option<&str>,
    ) -> Result<(), Rejection> {
        let client = find_client_address(&self.client_address, headers, peer)
            .map_err(|why| Rejection::new(ErrorCode::SourceUnknown, why))?;
        if self.allowlist.allows(client) {
            Ok(())
        } else {
            Err(Rejection::new(
                ErrorCode::SourceNotAllowed,
                format!("{client} is not in the source allowlist"),
            ))
        }
    }

    fn head_verdict(&self, head: &RequestHead<'_>) -> Result<(), Rejection> {
        self.check_source(head.headers, head.peer)?;
        if !head.method.eq_ignore_ascii_case("POST") {
            return Err(Rejection::new(
                ErrorCode::MethodNotAllowed,
                format!(
                    "{} is not allowed; Persona delivers with POST",
                    printable(head.method)
                ),
            ));
        }
        let mut types = header_values(head.headers, "content-type");
        match (types.next(), types.next()) {
            (Some(t), None) if is_json_media_type(t) => {}
            (None, _) => {
                return Err(Rejection::new(
                    ErrorCode::UnsupportedMediaType,
                    "Content-Type is missing; expected application/json",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(Rejection::new(
                    ErrorCode::UnsupportedMediaType,
                    "Content-Type appears more than once",
                ));
            }
            (Some(t), None) => {
                return Err(Rejection::new(
                    ErrorCode::UnsupportedMediaType,
                    format!("Content-Type {} is not JSON", printable(t)),
                ));
            }
        }
        // An encoded body cannot be verified or stripped as it is, and decoding it here
        // would hand a decompression bomb the filter's memory: only `identity` passes.
        for value in header_values(head.headers, "content-encoding") {
            let encoded = value
                .split(',')
                .map(str::trim)
                .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case("identity"));
            if encoded {
                return Err(Rejection::new(
                    ErrorCode::UnsupportedMediaType,
                    format!(
                        "Content-Encoding {} is not supported; send the body unencoded (identity)",
                        printable(value)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// While the body arrives: `Err` as soon as `received` bytes pass the limit, so a
    /// host can answer without waiting for the rest. Always `Ok` in shadow mode, which
    /// forwards the original whatever its size and reports `body_too_large` from
    /// [`Policy::process_body`].
    pub fn check_body_size(&self, received: usize) -> Result<(), Rejection> {
        if self.mode == Mode::Enforce && received > self.max_body_bytes {
            Err(self.too_large())
        } else {
            Ok(())
        }
    }

    fn too_large(&self) -> Rejection {
        Rejection::new(
            ErrorCode::BodyTooLarge,
            format!("the body is larger than {} bytes", self.max_body_bytes),
        )
    }

    /// Phase 2: the complete body. `now` is the current time in Unix seconds.
    pub fn process_body<'b>(&self, pending: &Pending, body: &'b [u8], now: u64) -> Outcome<'b> {
        let decision = self.decide(pending, body, now);
        match self.mode {
            Mode::Enforce => decision,
            Mode::Shadow => {
                let decision = match &pending.shadow_rejection {
                    Some(r) => Outcome::Reject(r.clone()),
                    None => decision,
                };
                let verdict = decision.verdict();
                let metadata = match decision {
                    Outcome::Forward(f) => f.metadata,
                    Outcome::Acknowledge(m) => Some(m),
                    Outcome::Reject(_) => None,
                };
                Outcome::Forward(Forward {
                    body: Cow::Borrowed(body),
                    metadata,
                    stripped: 0,
                    verdict,
                    routing_headers: false,
                    other_headers: alloc::vec![(DECISION_HEADER, verdict.to_string())],
                })
            }
        }
    }

    /// Both phases on a complete request.
    pub fn evaluate<'b>(
        &self,
        head: &RequestHead<'_>,
        body: &'b [u8],
        now: u64,
    ) -> (Option<Pending>, Outcome<'b>) {
        match self.check_head(head) {
            Err(r) => (None, Outcome::Reject(r)),
            Ok(pending) => {
                let outcome = self.process_body(&pending, body, now);
                (Some(pending), outcome)
            }
        }
    }

    /// The enforce-mode decision on a complete body.
    fn decide<'b>(&self, pending: &Pending, body: &'b [u8], now: u64) -> Outcome<'b> {
        if body.len() > self.max_body_bytes {
            return Outcome::Reject(self.too_large());
        }
        if self.signature_required {
            let values: Vec<&str> = pending.signatures.iter().map(String::as_str).collect();
            if let Err(r) = signature::verify(&values, &self.secrets, self.tolerance, now, body) {
                return Outcome::Reject(r);
            }
        }
        // The rewrite module chooses how the body is scanned and rewritten.
        let mut rewrite = Rewrite::new(&self.blocklist, self.inflection, body.len());
        let scanned = rewrite.scan(body, self.max_depth);
        if let Err(e) = scanned {
            return Outcome::Reject(match e {
                json::Error::Syntax(at) => Rejection::new(
                    ErrorCode::InvalidJson,
                    format!("the body is not valid UTF-8 JSON (at byte {at})"),
                ),
                json::Error::TooDeep(at) => Rejection::new(
                    ErrorCode::TooDeep,
                    format!(
                        "the body nests deeper than {} levels (at byte {at})",
                        self.max_depth
                    ),
                ),
            });
        }
        let envelope = match envelope::read(body, rewrite.tape(), pending.attempt.clone()) {
            Ok(e) => e,
            Err(why) => return Outcome::Reject(Rejection::new(ErrorCode::InvalidEnvelope, why)),
        };
        let metadata = envelope.metadata;
        let name = metadata.event_name.as_bytes();
        if !self.forward_events.iter().any(|p| glob::matches(p, name)) {
            return Outcome::Acknowledge(metadata);
        }
        let (body, stripped) = match rewrite.finish(body) {
            Ok(r) => (r.body, r.stripped),
            Err(why) => return Outcome::Reject(Rejection::new(ErrorCode::InvalidEnvelope, why)),
        };
        let other_headers = match &self.resign_secret {
            Some(secret) => alloc::vec![(
                SIGNATURE_HEADER,
                signature::signature_header(secret, now, &body),
            )],
            None => Vec::new(),
        };
        Outcome::Forward(Forward {
            body,
            metadata: Some(metadata),
            stripped,
            verdict: Verdict::Forward,
            routing_headers: self.routing_headers,
            other_headers,
        })
    }
}

/// A value for a detail message: control characters and overlong values are cut.
fn printable(value: &str) -> String {
    let mut out: String = value.chars().filter(|c| !c.is_control()).take(64).collect();
    if value.chars().count() > 64 {
        out.push('…');
    }
    format!("{}", json::Quoted(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(extra: &str) -> Policy {
        Policy::from_json(format!(r#"{{"signature":{{"required":false}}{extra}}}"#).as_bytes())
            .unwrap()
    }

    const EVENT: &[u8] = br#"{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.approved","created-at":"2024-01-01T00:00:00Z","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{"name-first":"Jane"}}}}}}"#;

    fn head<'a>(headers: &'a [(&'a str, &'a str)]) -> RequestHead<'a> {
        RequestHead {
            method: "POST",
            headers,
            peer: Some("35.232.44.140:1234"),
        }
    }

    #[test]
    fn head_rejections_in_order() {
        let p = policy("");
        let json = [("Content-Type", "application/json")];
        let get = RequestHead {
            method: "GET",
            ..head(&json)
        };
        assert_eq!(
            p.check_head(&get).unwrap_err().code,
            ErrorCode::MethodNotAllowed
        );
        let text = [("content-type", "text/plain")];
        assert_eq!(
            p.check_head(&head(&text)).unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
        let twice = [
            ("content-type", "application/json"),
            ("content-type", "application/json"),
        ];
        assert_eq!(
            p.check_head(&head(&twice)).unwrap_err().code,
            ErrorCode::UnsupportedMediaType
        );
        let stranger = RequestHead {
            peer: Some("198.51.100.1:1"),
            ..head(&json)
        };
        assert_eq!(
            p.check_head(&stranger).unwrap_err().code,
            ErrorCode::SourceNotAllowed
        );
        let garbage = RequestHead {
            peer: Some("not an address"),
            ..head(&json)
        };
        assert_eq!(
            p.check_head(&garbage).unwrap_err().code,
            ErrorCode::SourceUnknown
        );
        let missing = RequestHead {
            peer: None,
            ..head(&json)
        };
        assert_eq!(
            p.check_head(&missing).unwrap_err().code,
            ErrorCode::SourceUnknown
        );
        for ok in [
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.api+json",
        ] {
            let h = [("content-type", ok)];
            assert!(p.check_head(&head(&h)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn the_source_is_checked_before_method_and_content_type() {
        let p = policy("");
        let text = [("content-type", "text/plain")];
        for (method, headers) in [("GET", &[][..]), ("POST", &text[..]), ("PUT", &text[..])] {
            let stranger = RequestHead {
                method,
                headers,
                peer: Some("198.51.100.1:1"),
            };
            assert_eq!(
                p.check_head(&stranger).unwrap_err().code,
                ErrorCode::SourceNotAllowed,
                "{method} {headers:?}"
            );
            let unknown = RequestHead {
                peer: None,
                ..stranger
            };
            assert_eq!(
                p.check_head(&unknown).unwrap_err().code,
                ErrorCode::SourceUnknown
            );
        }
        // The same answer from the source check alone, without any header.
        assert_eq!(
            p.check_source(&[], Some("198.51.100.1:1")).unwrap_err(),
            p.check_head(&RequestHead {
                method: "GET",
                headers: &[],
                peer: Some("198.51.100.1:1"),
            })
            .unwrap_err()
        );
        assert_eq!(p.check_source(&[], Some("35.232.44.140:1")), Ok(()));
        // Shadow mode records the source as the would-be rejection.
        let shadow = policy(r#","mode":"shadow""#);
        let pending = shadow
            .check_head(&RequestHead {
                method: "GET",
                headers: &text,
                peer: Some("198.51.100.1:1"),
            })
            .unwrap();
        assert_eq!(
            pending.shadow_rejection().map(|r| r.code),
            Some(ErrorCode::SourceNotAllowed)
        );
    }

    #[test]
    fn only_the_identity_content_encoding_passes() {
        let p = policy("");
        for ok in ["identity", "IDENTITY", " identity , identity", ""] {
            let h = [
                ("content-type", "application/json"),
                ("content-encoding", ok),
            ];
            assert!(p.check_head(&head(&h)).is_ok(), "{ok:?}");
        }
        for (bad, named) in [
            ("gzip", "\"gzip\""),
            ("identity, gzip", "\"identity, gzip\""),
            ("br", "\"br\""),
            ("x-unknown\u{7}", "\"x-unknown\""),
        ] {
            let h = [
                ("content-type", "application/json"),
                ("Content-Encoding", bad),
            ];
            let r = p.check_head(&head(&h)).unwrap_err();
            assert_eq!(r.code, ErrorCode::UnsupportedMediaType, "{bad}");
            assert_eq!(
                r.detail,
                format!(
                    "Content-Encoding {named} is not supported; send the body unencoded (identity)"
                )
            );
        }
        // Every header counts, not only the first.
        let twice = [
            ("content-type", "application/json"),
            ("content-encoding", "identity"),
            ("content-encoding", "deflate"),
        ];
        assert!(p.check_head(&head(&twice)).is_err());
        // After the source, the method and the content type.
        let text = [("content-type", "text/plain"), ("content-encoding", "gzip")];
        assert!(
            p.check_head(&head(&text))
                .unwrap_err()
                .detail
                .starts_with("Content-Type")
        );
    }

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            " APPLICATION/JSON ; charset=utf-8",
            "application/vnd.api+json",
            "Application/Problem+JSON;x=y",
            "application/+json",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            ";application/json",
            "application/jsonx",
            "application/json+",
            "text/x+json",
            "application/",
            "application+json",
            "applicatio/json",
            "application/x-www-form-urlencoded",
            "applicätion/json",
        ] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }

    #[test]
    fn removals_are_decided_from_the_config_alone() {
        let h = [
            ("content-type", "application/json"),
            ("X-Persona-Event-Id", "spoof"),
            ("x-persona-attempt", "9"),
        ];
        let plain = policy("").check_head(&head(&h)).unwrap();
        assert_eq!(
            plain.remove_headers(),
            ["x-persona-event-id", "x-persona-attempt"]
        );
        // `_` and `-` alike: a CGI origin reads both as HTTP_X_PERSONA_EVENT_ID.
        let underscores = [
            ("content-type", "application/json"),
            ("x_persona_event_id", "spoof"),
            ("X_Persona-Resource_Type", "admin"),
            ("x-persona_attempt", "9"),
            ("x_personal", "kept"),
            ("x-persona", "kept"),
            ("xx-persona-event-id", "kept"),
        ];
        let plain = policy("").check_head(&head(&underscores)).unwrap();
        assert_eq!(
            plain.remove_headers(),
            [
                "x_persona_event_id",
                "x_persona-resource_type",
                "x-persona_attempt"
            ]
        );
        let strip = policy(r#","blocklist":["x"]"#)
            .check_head(&head(&h))
            .unwrap();
        assert_eq!(
            strip.remove_headers(),
            [
                "x-persona-event-id",
                "x-persona-attempt",
                "persona-signature",
                "content-length"
            ]
        );
    }

    #[test]
    fn type_entries_refuse_resources_of_ambiguous_type() {
        let with_included = |resource: &str| {
            format!(
                r#"{{"data":{{"type":"event","id":"evt_1","attributes":{{"name":"inquiry.approved","created-at":"2024-01-01T00:00:00Z","payload":{{"data":{{"type":"inquiry","id":"inq_1","attributes":{{}}}},"included":[{resource}]}}}}}}}}"#
            )
        };
        let typed = policy(r#","blocklist":["name-first?type=account"]"#);
        let untyped = policy(r#","blocklist":["name-first"]"#);
        let json = [("content-type", "application/json")];
        let refused = [
            (
                r#"{"type":"inquiry","id":"x","attributes":{"name-first":"Jane"},"type":"account"}"#,
                "more than once",
            ),
            (
                r#"{"type":"account","id":"x","attributes":{"name-first":"Jane"},"Type":"inquiry"}"#,
                "more than once",
            ),
            (
                r#"{"type":["account"],"id":"x","attributes":{"name-first":"Jane"}}"#,
                "not a string",
            ),
            (
                r#"{"type":null,"id":"x","attributes":{"name-first":"Jane"}}"#,
                "not a string",
            ),
            (
                r#"{"id":"x","attributes":{"name-first":"Jane"}}"#,
                "no \"type\"",
            ),
        ];
        for (resource, why) in refused {
            let body = with_included(resource);
            match typed.evaluate(&head(&json), body.as_bytes(), 0).1 {
                Outcome::Reject(r) => {
                    assert_eq!(r.code, ErrorCode::InvalidEnvelope, "{resource}");
                    assert!(r.detail.contains(why), "{resource}: {}", r.detail);
                    assert!(r.detail.contains("?type="), "{}", r.detail);
                }
                other => panic!("{resource}: {other:?}"),
            }
            // Without `?type=` entries the type decides nothing: forwarded.
            let outcome = untyped.evaluate(&head(&json), body.as_bytes(), 0).1;
            assert_eq!(outcome.verdict(), Verdict::Forward, "{resource}");
        }
        // One string type: the entry applies to it, and only to it.
        for (resource, stripped) in [
            (
                r#"{"type":"account","id":"x","attributes":{"name-first":"Jane"}}"#,
                1,
            ),
            (
                r#"{"attributes":{"name-first":"Jane"},"type":"account","id":"x"}"#,
                1,
            ),
            (
                r#"{"type":"inquiry","id":"x","attributes":{"name-first":"Jane"}}"#,
                0,
            ),
            // No `attributes`: nothing to decide.
            (r#"{"id":"x"}"#, 0),
        ] {
            let body = with_included(resource);
            match typed.evaluate(&head(&json), body.as_bytes(), 0).1 {
                Outcome::Forward(f) => assert_eq!(f.stripped, stripped, "{resource}"),
                other => panic!("{resource}: {other:?}"),
            }
        }
    }

    #[test]
    fn size_limit_is_early_in_enforce_and_reported_in_shadow() {
        let enforce = policy(r#","limits":{"max_body_bytes":10}"#);
        assert_eq!(enforce.check_body_size(10), Ok(()));
        assert_eq!(
            enforce.check_body_size(11).unwrap_err().code,
            ErrorCode::BodyTooLarge
        );
        let shadow = policy(r#","mode":"shadow","limits":{"max_body_bytes":10}"#);
        assert_eq!(shadow.check_body_size(11), Ok(()));
        let json = [("content-type", "application/json")];
        let (_, outcome) = shadow.evaluate(&head(&json), EVENT, 0);
        match outcome {
            Outcome::Forward(f) => {
                assert_eq!(f.body, EVENT);
                assert_eq!(f.verdict, Verdict::Reject(ErrorCode::BodyTooLarge));
                assert_eq!(
                    f.set_headers().collect::<Vec<_>>(),
                    [(DECISION_HEADER, "reject; status=413; code=body_too_large")]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn forward_carries_metadata_and_attempt() {
        let p = policy(r#","blocklist":["name-*"]"#);
        let h = [
            ("content-type", "application/json"),
            ("Persona-Webhook-Attempts-Made", "3"),
        ];
        let (_, outcome) = p.evaluate(&head(&h), EVENT, 0);
        let Outcome::Forward(f) = outcome else {
            panic!()
        };
        assert_eq!(f.stripped, 1);
        assert!(!f.body.windows(4).any(|w| w == b"Jane"));
        let m = f.metadata.as_ref().unwrap();
        assert_eq!(
            (
                m.event_id.as_str(),
                m.resource_type.as_str(),
                m.attempt.as_deref()
            ),
            ("evt_1", "inquiry", Some("3"))
        );
        assert_eq!(
            f.set_headers().collect::<Vec<_>>(),
            [
                ("x-persona-event-id", "evt_1"),
                ("x-persona-event-name", m.event_name.as_str()),
                ("x-persona-event-created-at", m.created_at.as_str()),
                ("x-persona-resource-type", "inquiry"),
                ("x-persona-resource-id", m.resource_id.as_str()),
                ("x-persona-attempt", "3"),
            ]
        );
    }
}
