//! Why a delivery does not reach the origin, and the JSON:API error document the sender gets.

use alloc::string::String;
use core::fmt;

/// The media type of every reply body persona-edge writes itself.
pub const JSON_API_CONTENT_TYPE: &str = "application/vnd.api+json";

/// Declares [`ErrorCode`] from one table: each code's status, name and title, and the
/// texts derived from them (the verdict, the counter names), so no spelling can drift.
macro_rules! error_codes {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $status:literal, $name:literal, $title:literal;
    )*) => {
        /// The cause of a delivery not reaching the origin. Each code has one HTTP status
        /// and one stable name, which is the `code` member of the JSON:API error.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// How many codes there are.
            pub const COUNT: usize = [$($name),*].len();

            /// Every code, in declaration order ([`ErrorCode::index`]), for documentation
            /// and exhaustive tests.
            pub const ALL: [ErrorCode; Self::COUNT] = [$(ErrorCode::$variant),*];

            /// The HTTP status the sender gets.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// The stable machine-readable name (`code` in the error document, counter
            /// suffixes).
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $name,)* }
            }

            /// A short human title (`title` in the error document).
            pub const fn title(self) -> &'static str {
                match self { $(ErrorCode::$variant => $title,)* }
            }

            /// `reject; status=401; code=signature_mismatch`: the verdict as filter state,
            /// the shadow-mode decision header and log lines spell it.
            pub(crate) const fn verdict_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => concat!("reject; status=", $status, "; code=", $name),)*
                }
            }

            /// `rejected.<code>`: the counter of refusals with this code.
            pub(crate) const fn rejected_counter(self) -> &'static str {
                match self { $(ErrorCode::$variant => concat!("rejected.", $name),)* }
            }

            /// `shadow.would_reject.<code>`: the shadow-mode counter of would-be refusals.
            pub(crate) const fn would_reject_counter(self) -> &'static str {
                match self { $(ErrorCode::$variant => concat!("shadow.would_reject.", $name),)* }
            }
        }
    };
}

error_codes! {
    /// The method is not POST (405).
    MethodNotAllowed = 405, "method_not_allowed", "Method not allowed";
    /// The content type is missing or not JSON (415).
    UnsupportedMediaType = 415, "unsupported_media_type", "Unsupported media type";
    /// The client address is missing or cannot be parsed (403).
    SourceUnknown = 403, "source_unknown", "Client address unknown";
    /// The client address is not in the allowlist (403).
    SourceNotAllowed = 403, "source_not_allowed", "Source address not allowed";
    /// The body is larger than `limits.max_body_bytes` (413).
    BodyTooLarge = 413, "body_too_large", "Body too large";
    /// No `Persona-Signature` header (401).
    SignatureMissing = 401, "signature_missing", "Signature missing";
    /// A `Persona-Signature` header without one well-formed `t=…,v1=…` group (401).
    SignatureMalformed = 401, "signature_malformed", "Signature malformed";
    /// Every signature timestamp is outside the tolerance (401).
    SignatureStale = 401, "signature_stale", "Signature timestamp outside tolerance";
    /// No signature matches the body with any configured secret (401).
    SignatureMismatch = 401, "signature_mismatch", "Signature mismatch";
    /// The body is not valid UTF-8 JSON (400).
    InvalidJson = 400, "invalid_json", "Body is not valid JSON";
    /// The body nests deeper than `limits.max_depth` (400).
    TooDeep = 400, "too_deep", "Body nests too deeply";
    /// The body is JSON but not a Persona event envelope (400).
    InvalidEnvelope = 400, "invalid_envelope", "Not a Persona event";
    /// The packaging has no valid configuration: it fails closed (500).
    ConfigInvalid = 500, "config_invalid", "Filter configuration invalid";
    /// The origin could not be reached (502); Persona will retry.
    OriginUnreachable = 502, "origin_unreachable", "Origin unreachable";
    /// An earlier attempt of the same event is still being delivered (409); Persona
    /// will retry, by when that attempt has succeeded or failed.
    DeliveryInFlight = 409, "delivery_in_flight", "Delivery in flight";
    /// A call to the host (the proxy or the runtime) failed, or the host drove the
    /// delivery out of order: it fails closed (500). Counted as `host_errors`, not as a
    /// refusal of the delivery.
    HostError = 500, "host_error", "Proxy host call failed";
}

impl ErrorCode {
    /// The position in [`ErrorCode::ALL`]: `0..ErrorCode::COUNT`.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision not to forward: the code, a detail for the sender and the logs
/// (never an attribute value), and the event id when it was already known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub detail: String,
}

impl Rejection {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Rejection {
            code,
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The JSON:API error document: `{"errors":[{"status","code","title","detail"}]}`.
    pub fn body(&self) -> String {
        let mut out = String::with_capacity(96 + self.detail.len());
        out.push_str("{\"errors\":[{\"status\":\"");
        push_u16(&mut out, self.status());
        out.push_str("\",\"code\":");
        crate::json::push_string(&mut out, self.code.as_str());
        out.push_str(",\"title\":");
        crate::json::push_string(&mut out, self.code.title());
        out.push_str(",\"detail\":");
        crate::json::push_string(&mut out, &self.detail);
        out.push_str("}]}");
        out
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status(), self.code, self.detail)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Rejection {}

fn push_u16(out: &mut String, n: u16) {
    use core::fmt::Write;
    let _ = write!(out, "{n}");
}
