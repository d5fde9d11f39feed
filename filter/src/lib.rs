//! # persona-edge-filter
//!
//! persona-edge as a proxy-wasm HTTP filter for Envoy and Istio. A thin adapter: it
//! reads what the host offers, hands it to [`persona_edge_core::Policy`], and applies
//! the decision. It has no policy of its own.
//!
//! How a delivery goes through it (docs/envoy.md has the deployment side):
//!
//! - **Request headers** ([`Delivery::on_http_request_headers`]): first the source.
//!   When the client address is the peer (the default) in enforce mode, the
//!   `source.address` property alone decides it (`check_source`), and an unknown
//!   source is answered before any header is read. Then `check_head` with the method
//!   and the headers (which checks the source again, first, at no host cost). A
//!   rejection is answered at once. Otherwise the headers the core names are removed
//!   now, because Envoy 1.40 lets a Wasm filter change request headers only in this
//!   phase, and the filter returns `Continue` (a `Pause` here becomes stop-all and the
//!   body would never come).
//! - **Request body** ([`Delivery::on_http_request_body`]): each callback checks the
//!   size so far (413 at once past `limits.max_body_bytes`) and buffers; at the end of
//!   the stream `process_body` decides, and a changed body replaces the buffered one.
//!   A request whose headers end the stream is decided in the header phase, one with
//!   trailers in the trailer phase.
//! - **What it leaves for Envoy**: headers to *set* (routing headers, shadow-mode
//!   decision) cannot be set after the header phase; the values go to filter state
//!   instead (`wasm.persona_*`), for access logs and for a route's
//!   `request_headers_to_add`. A configuration with `resign` is refused.
//!
//! Host calls go through `proxy_wasm::hostcalls`, which return errors, never through
//! the SDK's trait helpers that unwrap them; request headers are read as bytes, so a
//! header value that is not UTF-8 cannot panic the SDK. A panic would kill the VM: a
//! panic hook logs it at critical level first.

mod env;
/// The Envoy dynamic module (a native shared library): its own host glue, no proxy-wasm.
#[cfg(not(target_arch = "wasm32"))]
pub mod native;

use persona_edge_core::{ClientAddress, LoadOptions, Metadata, Policy, Rejection};

// The proxy-wasm host glue below is compiled into the .wasm only.
#[cfg(target_arch = "wasm32")]
use persona_edge_core::{
    DECISION_HEADER, ErrorCode, JSON_API_CONTENT_TYPE, Mode, Outcome, Pending, RequestHead,
    Verdict, borrow_headers,
};
#[cfg(target_arch = "wasm32")]
use proxy_wasm::hostcalls;
#[cfg(target_arch = "wasm32")]
use proxy_wasm::traits::{Context, HttpContext, RootContext};
#[cfg(target_arch = "wasm32")]
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};
#[cfg(target_arch = "wasm32")]
use std::{borrow::Cow, rc::Rc, time::UNIX_EPOCH};

// ---------------------------------------------------------------------------------
// Host-independent parts (unit-tested natively).

// The filter state keys and the counter prefix are the core's vocabulary
// (docs/envoy.md, "What the filter reports").
pub use persona_edge_core::report::{
    COUNTER_PREFIX as METRIC_PREFIX, STATE_ATTEMPT, STATE_DECISION, STATE_EVENT_CREATED_AT,
    STATE_EVENT_ID, STATE_EVENT_NAME, STATE_HEADER_PREFIX, STATE_KEYS, STATE_RESOURCE_ID,
    STATE_RESOURCE_TYPE, STATE_STRIPPED,
};

/// Loads the plugin configuration: the core's document, with the secrets named by
/// `*_env` fields read from the VM's environment. Refuses what this packaging cannot
/// honour. Every problem is returned, one line each.
pub fn load_policy(
    config: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Policy, Vec<String>> {
    let options = LoadOptions {
        env,
        default_client_address: ClientAddress::Peer,
        peer_available: true,
        host_name: "the Envoy filter",
    };
    let policy = Policy::load(config, &options)
        .map_err(|errors| errors.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    if policy.resigns() {
        return Err(vec![String::from(
            "resign: not supported by the Envoy filter: a proxy-wasm filter can change request headers only before it \
             has read the body, so it cannot set the new Persona-Signature of a rewritten body; remove `resign`, or \
             verify at the origin with the original secret and no body changes",
        )]);
    }
    Ok(policy)
}

/// The filter state for a decision: the routing metadata when known, the decision,
/// and the number of stripped attributes when forwarded, each pair handed to `set`
/// (key, value) without copying the values.
pub fn filter_state(
    decision: &str,
    metadata: Option<&Metadata>,
    stripped: Option<usize>,
    set: &mut dyn FnMut(&str, &str),
) {
    if let Some(m) = metadata {
        set(STATE_EVENT_ID, &m.event_id);
        set(STATE_EVENT_NAME, &m.event_name);
        set(STATE_EVENT_CREATED_AT, &m.created_at);
        set(STATE_RESOURCE_TYPE, &m.resource_type);
        set(STATE_RESOURCE_ID, &m.resource_id);
        if let Some(attempt) = &m.attempt {
            set(STATE_ATTEMPT, attempt);
        }
    }
    set(STATE_DECISION, decision);
    if let Some(n) = stripped {
        set(STATE_STRIPPED, &n.to_string());
    }
}

/// The filter state for the headers the core wants set on the forwarded request,
/// each pair handed to `set`. The keys are built in one reused buffer.
pub fn header_state<'h>(
    set_headers: impl IntoIterator<Item = (&'static str, &'h str)>,
    set: &mut dyn FnMut(&str, &str),
) {
    let mut key = String::with_capacity(STATE_HEADER_PREFIX.len() + 32);
    for (name, value) in set_headers {
        key.clear();
        key.push_str(STATE_HEADER_PREFIX);
        key.push_str(name);
        set(&key, value);
    }
}

/// A three-digit HTTP status, without `core::fmt`.
fn push_status(out: &mut String, status: u16) {
    for div in [100, 10, 1] {
        out.push(char::from(b'0' + ((status / div) % 10) as u8));
    }
}

/// The request as the core wants it: the method from `:method`, and every header
/// that is not a pseudo-header. Values that are not UTF-8 are decoded lossily, so they
/// can never match a signature or parse as an address.
pub fn split_headers(raw: Vec<(String, Vec<u8>)>) -> (String, Vec<(String, String)>) {
    let mut method = String::new();
    let mut headers = Vec::with_capacity(raw.len());
    for (name, value) in raw {
        let value = match String::from_utf8(value) {
            Ok(v) => v,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        if name == ":method" {
            method = value;
        } else if !name.starts_with(':') {
            headers.push((name, value));
        }
    }
    (method, headers)
}

/// One log line for a decision that did not forward: status, code, event id when
/// known, and the core's detail (which never carries an attribute value).
/// Built in one allocation of the right size, without `core::fmt`: it is written on
/// every refusal, a flood from an unknown source included.
pub fn rejection_line(rejection: &Rejection, event_id: Option<&str>) -> String {
    const HEAD: &str = "persona-edge: rejected status=";
    let code = rejection.code.as_str();
    let event = event_id.unwrap_or("-");
    let mut out = String::with_capacity(
        HEAD.len() + 3 + 6 + code.len() + 7 + event.len() + 8 + rejection.detail.len(),
    );
    out.push_str(HEAD);
    push_status(&mut out, rejection.status());
    out.push_str(" code=");
    out.push_str(code);
    out.push_str(" event=");
    out.push_str(event);
    out.push_str(" detail=");
    out.push_str(&rejection.detail);
    out
}

// ---------------------------------------------------------------------------------
// Host glue.

#[cfg(target_arch = "wasm32")]
fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
}

/// Counter ids, defined once per configuration. `None` where the host refused one.
#[cfg(target_arch = "wasm32")]
#[derive(Default)]
struct Counters {
    forwarded: Option<u32>,
    acknowledged: Option<u32>,
    stripped: Option<u32>,
    host_errors: Option<u32>,
    rejected: Vec<(ErrorCode, Option<u32>)>,
    would_forward: Option<u32>,
    would_acknowledge: Option<u32>,
    would_reject: Vec<(ErrorCode, Option<u32>)>,
}

#[cfg(target_arch = "wasm32")]
fn counter(name: &str) -> Option<u32> {
    match hostcalls::define_metric(MetricType::Counter, &format!("{METRIC_PREFIX}.{name}")) {
        Ok(id) => Some(id),
        Err(status) => {
            log(
                LogLevel::Warn,
                &format!("persona-edge: cannot define counter {name}: {status:?}"),
            );
            None
        }
    }
}

#[cfg(target_arch = "wasm32")]
impl Counters {
    fn define(mode: Mode) -> Counters {
        let mut c = Counters {
            forwarded: counter("forwarded"),
            acknowledged: counter("acknowledged"),
            stripped: counter("attributes_stripped"),
            host_errors: counter("host_errors"),
            // Host errors count in `host_errors`, not as refusals.
            rejected: ErrorCode::ALL
                .iter()
                .filter(|code| **code != ErrorCode::HostError)
                .map(|code| (*code, counter(&format!("rejected.{}", code.as_str()))))
                .collect(),
            ..Counters::default()
        };
        if mode == Mode::Shadow {
            c.would_forward = counter("shadow.would_forward");
            c.would_acknowledge = counter("shadow.would_acknowledge");
            c.would_reject = ErrorCode::ALL
                .iter()
                .filter(|code| **code != ErrorCode::HostError)
                .map(|code| {
                    (
                        *code,
                        counter(&format!("shadow.would_reject.{}", code.as_str())),
                    )
                })
                .collect();
        }
        c
    }

    fn add(id: Option<u32>, n: u64) {
        if let Some(id) = id
            && n > 0
        {
            let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    fn rejected(&self, code: ErrorCode) {
        Self::add(
            self.rejected
                .iter()
                .find(|(c, _)| *c == code)
                .and_then(|(_, id)| *id),
            1,
        );
    }

    fn would(&self, verdict: Verdict) {
        let id = match verdict {
            Verdict::Forward => self.would_forward,
            Verdict::Acknowledge => self.would_acknowledge,
            Verdict::Reject(code) => self
                .would_reject
                .iter()
                .find(|(c, _)| *c == code)
                .and_then(|(_, id)| *id),
        };
        Self::add(id, 1);
    }
}

/// What every HTTP context of one configuration shares.
#[cfg(target_arch = "wasm32")]
struct Shared {
    policy: Policy,
    counters: Counters,
    /// Enforce mode with the peer as the client address: the source is decided from
    /// `source.address` alone, before any header is read.
    source_first: bool,
    /// The `persona_decision` value of each rejection code.
    reject_decisions: Vec<(ErrorCode, String)>,
}

#[cfg(target_arch = "wasm32")]
impl Shared {
    fn new(policy: Policy) -> Shared {
        Shared {
            counters: Counters::define(policy.mode()),
            source_first: policy.mode() == Mode::Enforce
                && *policy.client_address() == ClientAddress::Peer,
            reject_decisions: ErrorCode::ALL
                .iter()
                .map(|code| (*code, Verdict::Reject(*code).to_string()))
                .collect(),
            policy,
        }
    }

    fn reject_decision(&self, code: ErrorCode) -> Cow<'_, str> {
        match self.reject_decisions.iter().find(|(c, _)| *c == code) {
            Some((_, text)) => Cow::Borrowed(text),
            None => Cow::Owned(Verdict::Reject(code).to_string()),
        }
    }
}

/// The root context: loads the configuration, makes one [`Delivery`] per request.
#[cfg(target_arch = "wasm32")]
#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
}

#[cfg(target_arch = "wasm32")]
impl Context for Root {}

#[cfg(target_arch = "wasm32")]
impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                log(
                    LogLevel::Error,
                    &format!("persona-edge: cannot read the plugin configuration: {status:?}"),
                );
                return false;
            }
        };
        match load_policy(&config, &env::var) {
            Ok(policy) => {
                let mode = match policy.mode() {
                    Mode::Enforce => "enforce",
                    Mode::Shadow => "shadow",
                };
                log(
                    LogLevel::Info,
                    &format!(
                        "persona-edge: configuration loaded: mode={mode}, max_body_bytes={}, changes bodies: {}",
                        policy.max_body_bytes(),
                        policy.can_change_body()
                    ),
                );
                self.shared = Some(Rc::new(Shared::new(policy)));
                true
            }
            Err(errors) => {
                for e in &errors {
                    log(
                        LogLevel::Error,
                        &format!("persona-edge: invalid configuration: {e}"),
                    );
                }
                log(
                    LogLevel::Error,
                    &format!(
                        "persona-edge: configuration refused ({} problem(s))",
                        errors.len()
                    ),
                );
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Delivery {
            shared: self.shared.clone(),
            pending: None,
            received: 0,
            done: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// One request.
#[cfg(target_arch = "wasm32")]
pub struct Delivery {
    shared: Option<Rc<Shared>>,
    pending: Option<Pending>,
    /// Body bytes buffered so far, as the last body callback reported.
    received: usize,
    /// Decided: forwarded or answered. Later callbacks pass through.
    done: bool,
}

#[cfg(target_arch = "wasm32")]
impl Context for Delivery {}

#[cfg(target_arch = "wasm32")]
impl Delivery {
    /// Answers the request: nothing is forwarded.
    fn send(&mut self, code: u16, headers: Vec<(&str, &str)>, body: &str) {
        self.done = true;
        let body = (!body.is_empty()).then_some(body.as_bytes());
        if let Err(status) = hostcalls::send_http_response(u32::from(code), headers, body) {
            log(
                LogLevel::Error,
                &format!("persona-edge: cannot send the {code} reply: {status:?}"),
            );
        }
    }

    /// The JSON:API error document of a rejection.
    fn send_rejection(&mut self, rejection: &Rejection) {
        self.send(
            rejection.status(),
            vec![("content-type", JSON_API_CONTENT_TYPE)],
            &rejection.body(),
        );
    }

    /// Fails closed when the host does not answer as documented: 500, nothing forwarded.
    fn host_error(&mut self, shared: &Shared, what: &str) -> Action {
        log(
            LogLevel::Error,
            &format!("persona-edge: host call failed: {what}; answering 500"),
        );
        Counters::add(shared.counters.host_errors, 1);
        self.send(
            500,
            vec![("content-type", JSON_API_CONTENT_TYPE)],
            "{\"errors\":[{\"status\":\"500\",\"code\":\"host_error\",\"title\":\"Proxy host call failed\",\"detail\":\"see the proxy log\"}]}",
        );
        Action::Pause
    }

    /// One filter state entry (one host call).
    fn set_state(key: &str, value: &str) {
        if let Err(status) = hostcalls::set_property(vec![key], Some(value.as_bytes())) {
            log(
                LogLevel::Warn,
                &format!("persona-edge: cannot set filter state {key}: {status:?}"),
            );
        }
    }

    /// A refusal: the decision in filter state, the counter, one log line, the reply.
    fn reject(&mut self, shared: &Shared, rejection: &Rejection) -> Action {
        Self::set_state(STATE_DECISION, &shared.reject_decision(rejection.code));
        shared.counters.rejected(rejection.code);
        let level = if rejection.status() >= 500 {
            LogLevel::Error
        } else {
            LogLevel::Warn
        };
        log(level, &rejection_line(rejection, None));
        self.send_rejection(rejection);
        Action::Pause
    }

    /// Applies the decision on a complete body. `in_body_phase`: the body buffer exists
    /// and may be replaced.
    fn apply(
        &mut self,
        shared: &Shared,
        outcome: Outcome<'_>,
        received: usize,
        in_body_phase: bool,
    ) -> Action {
        match outcome {
            Outcome::Forward(forward) => {
                self.done = true;
                let shadow = shared.policy.mode() == Mode::Shadow;
                let decision: Cow<'_, str> = match forward.verdict {
                    Verdict::Forward => Cow::Borrowed("forward"),
                    Verdict::Acknowledge => Cow::Borrowed("acknowledge; status=204"),
                    Verdict::Reject(code) => shared.reject_decision(code),
                };
                filter_state(
                    &decision,
                    forward.metadata.as_ref(),
                    (!shadow).then_some(forward.stripped),
                    &mut Self::set_state,
                );
                header_state(forward.set_headers(), &mut Self::set_state);
                if let Cow::Owned(body) = &forward.body {
                    if in_body_phase {
                        if let Err(status) =
                            hostcalls::set_buffer(BufferType::HttpRequestBody, 0, received, body)
                        {
                            return self.host_error(
                                shared,
                                &format!("replacing the request body: {status:?}"),
                            );
                        }
                    } else if !body.is_empty() {
                        return self
                            .host_error(shared, "a rewritten body for a request without one");
                    }
                }
                Counters::add(shared.counters.forwarded, 1);
                Counters::add(shared.counters.stripped, forward.stripped as u64);
                let event = forward
                    .metadata
                    .as_ref()
                    .map_or("-", |m| m.event_id.as_str());
                if shadow {
                    shared.counters.would(forward.verdict);
                    log(
                        LogLevel::Info,
                        &format!(
                            "persona-edge: shadow: forwarded unchanged; enforce would: {} event={event}",
                            forward.verdict
                        ),
                    );
                } else {
                    log(
                        LogLevel::Debug,
                        &format!(
                            "persona-edge: forwarded event={event} stripped={}",
                            forward.stripped
                        ),
                    );
                }
                Action::Continue
            }
            Outcome::Acknowledge(metadata) => {
                filter_state(
                    "acknowledge; status=204",
                    Some(&metadata),
                    None,
                    &mut Self::set_state,
                );
                Counters::add(shared.counters.acknowledged, 1);
                log(
                    LogLevel::Info,
                    &format!(
                        "persona-edge: acknowledged status=204 event={} name={} (not forwarded: events.forward)",
                        metadata.event_id, metadata.event_name
                    ),
                );
                self.send(204, Vec::new(), "");
                Action::Pause
            }
            Outcome::Reject(rejection) => self.reject(shared, &rejection),
        }
    }

    /// The end of the request: decide on the body buffered so far.
    fn finish(&mut self, shared: &Shared, received: usize, in_body_phase: bool) -> Action {
        let Some(pending) = self.pending.take() else {
            return Action::Continue;
        };
        let body = if received == 0 {
            Vec::new()
        } else {
            match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, received) {
                Ok(body) => body.unwrap_or_default(),
                Err(status) => {
                    return self
                        .host_error(shared, &format!("reading the request body: {status:?}"));
                }
            }
        };
        let now = match hostcalls::get_current_time().map(|t| t.duration_since(UNIX_EPOCH)) {
            Ok(Ok(d)) => d.as_secs(),
            _ => return self.host_error(shared, "reading the clock"),
        };
        let outcome = shared.policy.process_body(&pending, &body, now);
        self.apply(shared, outcome, received, in_body_phase)
    }

    /// Shadow mode only: a body past the limit is forwarded as it is, no longer buffered.
    fn shadow_too_large(&mut self, shared: &Shared) -> Action {
        self.done = true;
        self.pending = None;
        let verdict = Verdict::Reject(ErrorCode::BodyTooLarge);
        let decision = shared.reject_decision(ErrorCode::BodyTooLarge);
        filter_state(&decision, None, None, &mut Self::set_state);
        header_state([(DECISION_HEADER, decision.as_ref())], &mut Self::set_state);
        Counters::add(shared.counters.forwarded, 1);
        shared.counters.would(verdict);
        log(
            LogLevel::Info,
            &format!("persona-edge: shadow: forwarded unchanged; enforce would: {verdict} event=-"),
        );
        Action::Continue
    }
}

#[cfg(target_arch = "wasm32")]
impl HttpContext for Delivery {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.done {
            return Action::Continue;
        }
        let Some(shared) = self.shared.clone() else {
            let rejection = Rejection::new(
                ErrorCode::ConfigInvalid,
                "the filter has no valid configuration",
            );
            log(LogLevel::Error, &rejection_line(&rejection, None));
            self.send_rejection(&rejection);
            return Action::Pause;
        };
        // The peer address, only where it is the client address.
        let peer = if *shared.policy.client_address() == ClientAddress::Peer {
            match hostcalls::get_property(vec!["source", "address"]) {
                Ok(Some(bytes)) => String::from_utf8(bytes).ok(),
                _ => None,
            }
        } else {
            None
        };
        // An unknown source is answered before any header is read: one property, the
        // allowlist, the reply. check_head makes the same check first, so this only
        // answers sooner. Not in shadow mode, which never answers on the head.
        if shared.source_first
            && let Err(rejection) = shared.policy.check_source(&[], peer.as_deref())
        {
            return self.reject(&shared, &rejection);
        }
        let raw = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(raw) => raw,
            Err(status) => {
                return self
                    .host_error(&shared, &format!("reading the request headers: {status:?}"));
            }
        };
        let (method, headers) = split_headers(raw);
        let pairs = borrow_headers(&headers);
        let head = RequestHead {
            method: &method,
            headers: &pairs,
            peer: peer.as_deref(),
        };
        match shared.policy.check_head(&head) {
            Err(rejection) => self.reject(&shared, &rejection),
            Ok(pending) => {
                for name in pending.remove_headers() {
                    if let Err(status) =
                        hostcalls::remove_map_value(MapType::HttpRequestHeaders, name)
                    {
                        return self.host_error(
                            &shared,
                            &format!("removing the request header {name}: {status:?}"),
                        );
                    }
                }
                self.pending = Some(pending);
                if end_of_stream {
                    self.finish(&shared, 0, false)
                } else {
                    Action::Continue
                }
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.done || self.pending.is_none() {
            return Action::Continue;
        }
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        self.received = body_size;
        if let Err(rejection) = shared.policy.check_body_size(body_size) {
            self.pending = None;
            return self.reject(&shared, &rejection);
        }
        if shared.policy.mode() == Mode::Shadow && body_size > shared.policy.max_body_bytes() {
            // The core would report body_too_large at the end; buffering on would only
            // run into Envoy's own buffer limit (a 413 the sender would see).
            return self.shadow_too_large(&shared);
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.finish(&shared, body_size, true)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.done || self.pending.is_none() {
            return Action::Continue;
        }
        let Some(shared) = self.shared.clone() else {
            return Action::Continue;
        };
        let received = self.received;
        self.finish(&shared, received, true)
    }
}

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    std::panic::set_hook(Box::new(|info| {
        log(LogLevel::Critical, &format!("persona-edge: panic, the Wasm VM stops: {info}"));
    }));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[cfg(test)]
mod tests {
    use super::*;
    use persona_edge_core::{ErrorCode, Verdict};

    const SECRET_CONFIG: &[u8] = br#"{"signature":{"secrets_env":["PERSONA_SECRET"]}}"#;

    #[test]
    fn secrets_come_from_the_given_environment() {
        let env = |name: &str| (name == "PERSONA_SECRET").then(|| String::from("wbhsec_x"));
        assert!(load_policy(SECRET_CONFIG, &env).is_ok());
        let errors = load_policy(SECRET_CONFIG, &|_| None).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("signature.secrets_env[0]"),
            "{errors:?}"
        );
    }

    #[test]
    fn resign_is_refused_with_a_reason() {
        let errors = load_policy(
            br#"{"signature":{"secrets":["a"]},"resign":{"secret":"b"}}"#,
            &|_| None,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("resign: not supported by the Envoy filter"),
            "{errors:?}"
        );
    }

    #[test]
    fn every_config_error_is_reported() {
        let errors = load_policy(br#"{"mode":"loud","signature":{"secrets":[""]}}"#, &|_| {
            None
        })
        .unwrap_err();
        assert!(errors.len() >= 2, "{errors:?}");
        assert!(load_policy(b"not json", &|_| None).is_err());
        assert!(load_policy(b"", &|_| None).is_err());
    }

    #[test]
    fn headers_split_method_and_drop_pseudo_headers() {
        let raw = vec![
            (String::from(":method"), b"POST".to_vec()),
            (String::from(":path"), b"/webhooks".to_vec()),
            (String::from("content-type"), b"application/json".to_vec()),
            (String::from("x-odd"), vec![b'a', 0xff]),
        ];
        let (method, headers) = split_headers(raw);
        assert_eq!(method, "POST");
        assert_eq!(headers.len(), 2);
        assert_eq!(
            headers[0],
            (
                String::from("content-type"),
                String::from("application/json")
            )
        );
        assert_eq!(headers[1].1, "a\u{fffd}");
    }

    #[test]
    fn filter_state_names_and_values() {
        let m = Metadata {
            event_id: String::from("evt_1"),
            event_name: String::from("inquiry.approved"),
            created_at: String::from("2024-01-01T00:00:00.000Z"),
            resource_type: String::from("inquiry"),
            resource_id: String::from("inq_1"),
            attempt: Some(String::from("2")),
        };
        let collect = |decision: &str, m: Option<&Metadata>, stripped: Option<usize>| {
            let mut state: Vec<(String, String)> = Vec::new();
            filter_state(decision, m, stripped, &mut |k, v| {
                state.push((k.to_string(), v.to_string()))
            });
            state
        };
        let state = collect("forward", Some(&m), Some(3));
        let keys: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, STATE_KEYS);
        assert_eq!(state[0].1, "evt_1");
        assert_eq!(state[5].1, "2");
        assert_eq!(state[6].1, "forward");
        assert_eq!(state[7].1, "3");
        let code = ErrorCode::SignatureMismatch;
        let state = collect(&Verdict::Reject(code).to_string(), None, None);
        assert_eq!(
            state,
            vec![(
                STATE_DECISION.to_string(),
                String::from("reject; status=401; code=signature_mismatch")
            )]
        );
    }

    #[test]
    fn header_state_keys_name_the_header() {
        let mut state: Vec<(String, String)> = Vec::new();
        header_state(
            [
                ("x-persona-event-id", "evt_1"),
                ("x-persona-edge-decision", "forward"),
            ],
            &mut |k, v| state.push((k.to_string(), v.to_string())),
        );
        assert_eq!(
            state,
            vec![
                (
                    String::from("persona_header.x-persona-event-id"),
                    String::from("evt_1")
                ),
                (
                    String::from("persona_header.x-persona-edge-decision"),
                    String::from("forward")
                )
            ]
        );
    }

    #[test]
    fn rejection_lines_carry_status_code_and_event() {
        let r = Rejection::new(ErrorCode::SignatureStale, "too old");
        assert_eq!(
            rejection_line(&r, Some("evt_9")),
            "persona-edge: rejected status=401 code=signature_stale event=evt_9 detail=too old"
        );
        let r = Rejection::new(
            ErrorCode::SourceNotAllowed,
            "198.51.100.7 is not in the source allowlist",
        );
        let line = rejection_line(&r, None);
        assert_eq!(
            line,
            "persona-edge: rejected status=403 code=source_not_allowed event=- detail=198.51.100.7 is not in the source allowlist"
        );
        assert_eq!(
            line.capacity(),
            line.len(),
            "one allocation of the right size"
        );
    }
}
