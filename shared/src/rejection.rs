//! Why a delivery does not reach the origin, and the JSON:API error document the sender gets.

use alloc::string::String;
use core::fmt;

/// The media type of every reply body persona-edge writes itself.
pub const JSON_API_CONTENT_TYPE: &str = "application/vnd.api+json";

/// The cause of a rejection. Each code has one HTTP status and one stable name,
/// which is the `code` member of the JSON:API error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The method is not POST (405).
    MethodNotAllowed,
    /// The content type is missing or not JSON (415).
    UnsupportedMediaType,
    /// The client address is missing or cannot be parsed (403).
    SourceUnknown,
    /// The client address is not in the allowlist (403).
    SourceNotAllowed,
    /// The body is larger than `limits.max_body_bytes` (413).
    BodyTooLarge,
    /// No `Persona-Signature` header (401).
    SignatureMissing,
    /// A `Persona-Signature` header without one well-formed `t=…,v1=…` group (401).
    SignatureMalformed,
    /// Every signature timestamp is outside the tolerance (401).
    SignatureStale,
    /// No signature matches the body with any configured secret (401).
    SignatureMismatch,
    /// The body is not valid UTF-8 JSON (400).
    InvalidJson,
    /// The body nests deeper than `limits.max_depth` (400).
    TooDeep,
    /// The body is JSON but not a Persona event envelope (400).
    InvalidEnvelope,
    /// The packaging has no valid configuration: it fails closed (500).
    ConfigInvalid,
    /// The origin could not be reached (502); Persona will retry.
    OriginUnreachable,
    /// An earlier attempt of the same event is still being delivered (409); Persona
    /// will retry, by when that attempt has succeeded or failed.
    DeliveryInFlight,
}

impl ErrorCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::MethodNotAllowed,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::SourceUnknown,
        ErrorCode::SourceNotAllowed,
        ErrorCode::BodyTooLarge,
        ErrorCode::SignatureMissing,
        ErrorCode::SignatureMalformed,
        ErrorCode::SignatureStale,
        ErrorCode::SignatureMismatch,
        ErrorCode::InvalidJson,
        ErrorCode::TooDeep,
        ErrorCode::InvalidEnvelope,
        ErrorCode::ConfigInvalid,
        ErrorCode::OriginUnreachable,
        ErrorCode::DeliveryInFlight,
    ];

    /// The HTTP status the sender gets.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::SourceUnknown | ErrorCode::SourceNotAllowed => 403,
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::SignatureMissing
            | ErrorCode::SignatureMalformed
            | ErrorCode::SignatureStale
            | ErrorCode::SignatureMismatch => 401,
            ErrorCode::InvalidJson | ErrorCode::TooDeep | ErrorCode::InvalidEnvelope => 400,
            ErrorCode::ConfigInvalid => 500,
            ErrorCode::OriginUnreachable => 502,
            ErrorCode::DeliveryInFlight => 409,
        }
    }

    /// The stable machine-readable name (`code` in the error document, counter suffixes).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::SourceUnknown => "source_unknown",
            ErrorCode::SourceNotAllowed => "source_not_allowed",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::SignatureMissing => "signature_missing",
            ErrorCode::SignatureMalformed => "signature_malformed",
            ErrorCode::SignatureStale => "signature_stale",
            ErrorCode::SignatureMismatch => "signature_mismatch",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::TooDeep => "too_deep",
            ErrorCode::InvalidEnvelope => "invalid_envelope",
            ErrorCode::ConfigInvalid => "config_invalid",
            ErrorCode::OriginUnreachable => "origin_unreachable",
            ErrorCode::DeliveryInFlight => "delivery_in_flight",
        }
    }

    /// A short human title (`title` in the error document).
    pub const fn title(self) -> &'static str {
        match self {
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::SourceUnknown => "Client address unknown",
            ErrorCode::SourceNotAllowed => "Source address not allowed",
            ErrorCode::BodyTooLarge => "Body too large",
            ErrorCode::SignatureMissing => "Signature missing",
            ErrorCode::SignatureMalformed => "Signature malformed",
            ErrorCode::SignatureStale => "Signature timestamp outside tolerance",
            ErrorCode::SignatureMismatch => "Signature mismatch",
            ErrorCode::InvalidJson => "Body is not valid JSON",
            ErrorCode::TooDeep => "Body nests too deeply",
            ErrorCode::InvalidEnvelope => "Not a Persona event",
            ErrorCode::ConfigInvalid => "Filter configuration invalid",
            ErrorCode::OriginUnreachable => "Origin unreachable",
            ErrorCode::DeliveryInFlight => "Delivery in flight",
        }
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
