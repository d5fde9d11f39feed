//! What can go wrong in the Worker, as types: each failure says what it is, and its
//! text (`Display`) is written once, here, for the log line or reply it ends up in.
//! The driver decides by the type what the exchange hears: a configuration the
//! Worker cannot run (500 `config_invalid`), a body that could not be read (400), an
//! origin that could not be reached (502), a host call that failed (500
//! `host_error`), or a Durable Object that did not answer (the delivery goes on).

use std::fmt;
use std::time::Duration;

use persona_edge_core::ConfigErrors;
use worker::js_sys;
use worker::wasm_bindgen::{JsCast, JsValue};

use crate::config::CONFIG_VAR;
use crate::dedup::BINDING;
use crate::protocol::Op;
use crate::target::ORIGIN_VAR;

/// A call into the JavaScript runtime that threw (or gave something of the wrong type).
#[derive(Clone, Debug, PartialEq)]
pub struct JsError(pub String);

impl JsError {
    /// The message of what was thrown: an `Error`'s message, a string as it is.
    pub fn from_js(value: &JsValue) -> JsError {
        if let Some(text) = value.as_string() {
            return JsError(text);
        }
        if let Some(error) = value.dyn_ref::<js_sys::Error>() {
            return JsError(String::from(error.message()));
        }
        JsError(format!("{value:?}"))
    }
}

impl From<JsValue> for JsError {
    fn from(value: JsValue) -> Self {
        JsError::from_js(&value)
    }
}

impl fmt::Display for JsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why there is no configuration to run: every request is answered 500
/// `config_invalid`, and these texts go to the log line's `problems` only.
#[derive(Debug)]
pub enum ConfigError {
    /// `PERSONA_EDGE_CONFIG` is not set.
    NotSet,
    /// The core refused it (each error is one problem).
    Invalid(ConfigErrors),
}

impl ConfigError {
    /// One line per problem, each naming the var.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::NotSet => vec![format!(
                "the {CONFIG_VAR} var is not set: give the configuration JSON in wrangler.toml [vars] or with --var"
            )],
            ConfigError::Invalid(errors) => errors
                .0
                .iter()
                .map(|e| format!("{CONFIG_VAR}: {e}"))
                .collect(),
        }
    }
}

/// Why the Worker does not know where to forward: a configuration problem too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetError {
    /// The runtime gave a request URL without scheme and host.
    RequestUrl(String),
    /// No `ORIGIN_URL` on `*.workers.dev`: the request's own URL is this Worker.
    CallsItself,
    /// `ORIGIN_URL` is not an http(s) URL with a host and without query or fragment.
    OriginUrl,
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::RequestUrl(url) => {
                write!(f, "the request URL {url:?} has no scheme and host")
            }
            TargetError::CallsItself => write!(
                f,
                "{ORIGIN_VAR} is not set and the Worker runs on workers.dev, where forwarding to the request's own URL would call this Worker again; set {ORIGIN_VAR}"
            ),
            TargetError::OriginUrl => write!(
                f,
                "{ORIGIN_VAR} must be an http(s) URL with a host and without query or fragment, such as https://origin.example.com/base"
            ),
        }
    }
}

/// The request body stream broke off (its text goes into the 400's detail).
#[derive(Clone, Debug, PartialEq)]
pub enum BodyError {
    /// Reading the next chunk threw (the client went away, the connection broke).
    Read(JsError),
    /// The stream gave something that is not bytes.
    NotBytes,
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Read(error) => error.fmt(f),
            BodyError::NotBytes => f.write_str("the body stream gave a chunk that is not bytes"),
        }
    }
}

/// Sending the delivery on did not give the origin's response.
#[derive(Clone, Debug, PartialEq)]
pub enum SendError {
    /// The request could not be built (its headers, its init): a host error, 500.
    Request(JsError),
    /// `fetch` failed: the origin could not be reached, 502.
    Unreachable(JsError),
}

/// A call to an event's Durable Object that gave no admission or record.
#[derive(Clone, Debug, PartialEq)]
pub enum DedupError {
    /// `dedup` is on but the Worker has no `PERSONA_EDGE_DEDUP` binding: a deployment
    /// problem, answered 500 `config_invalid` with this text (it names no secret).
    Unbound,
    /// The call threw, or the object answered an error.
    Failed { op: Op, why: String },
    /// No answer within the Worker's timeout.
    TimedOut { op: Op, after: Duration },
}

impl DedupError {
    /// The `op` of the `dedup_error` log line.
    pub fn op(&self) -> &'static str {
        match self {
            DedupError::Unbound => "binding",
            DedupError::Failed { op, .. } | DedupError::TimedOut { op, .. } => op.as_str(),
        }
    }
}

impl fmt::Display for DedupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DedupError::Unbound => write!(
                f,
                "dedup is enabled but the Durable Object binding {BINDING} is missing; declare it in wrangler.toml (docs/worker.md)"
            ),
            DedupError::Failed { why, .. } => f.write_str(why),
            DedupError::TimedOut { op, after } => write!(
                f,
                "no answer to {} within {} ms",
                op.as_str(),
                after.as_millis()
            ),
        }
    }
}

/// Why the Durable Object could not carry out a request (it answers 400 or 500 with
/// this text; the Worker logs it in its `dedup_error` line).
#[derive(Clone, Debug, PartialEq)]
pub enum ObjectError {
    /// Its storage threw.
    Storage { call: &'static str, why: String },
    /// An event id the core's record cannot hold.
    Unstorable(String),
    /// `settle` without `since` and `succeeded`.
    SettleWithoutClaim,
    /// A path that is no operation.
    UnknownOp(String),
}

impl ObjectError {
    pub fn storage(call: &'static str) -> impl Fn(JsValue) -> ObjectError {
        move |value| ObjectError::Storage {
            call,
            why: JsError::from_js(&value).0,
        }
    }
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectError::Storage { call, why } => write!(f, "storage {call}: {why}"),
            ObjectError::Unstorable(id) => write!(f, "event id {id:?} cannot be stored"),
            ObjectError::SettleWithoutClaim => f.write_str("settle needs since and succeeded"),
            ObjectError::UnknownOp(op) => write!(f, "unknown operation {op:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_the_documented_ones() {
        assert_eq!(
            DedupError::TimedOut {
                op: Op::Admit,
                after: Duration::from_secs(2)
            }
            .to_string(),
            "no answer to admit within 2000 ms"
        );
        assert_eq!(DedupError::Unbound.op(), "binding");
        assert!(DedupError::Unbound.to_string().contains(BINDING));
        assert_eq!(
            ConfigError::NotSet.problems(),
            [
                "the PERSONA_EDGE_CONFIG var is not set: give the configuration JSON in wrangler.toml [vars] or with --var"
            ]
        );
        let invalid = persona_edge_core::Policy::from_json(b"{\"mode\":1}").unwrap_err();
        let problems = ConfigError::Invalid(invalid).problems();
        assert!(
            problems
                .iter()
                .all(|p| p.starts_with("PERSONA_EDGE_CONFIG: ")),
            "{problems:?}"
        );
        assert!(
            TargetError::OriginUrl
                .to_string()
                .starts_with("ORIGIN_URL must be an http(s) URL")
        );
    }
}
