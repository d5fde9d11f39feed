//! The reporting vocabulary: how every host names what happened to a delivery.
//!
//! A [`Report`] is one thing that happened (forwarded, refused, answered as a
//! duplicate, a host call that failed, …). The [`Exchange`](crate::Exchange) hands
//! them out with each answer and forward; a host turns them into its outputs without
//! spelling any of them itself:
//!
//! - counters: [`Report::counters`], named by [`Counter::name`] (the Envoy hosts
//!   define [`Counter::defined_for`] up front, under [`COUNTER_PREFIX`]);
//! - a text log line: [`Report::level`] and [`Report::text`] (the Envoy hosts);
//! - a structured log line: [`Report::kind`] and [`Report::fields`] (the Worker's
//!   JSON line `{"persona_edge": kind, field: value, …}`);
//! - filter state: the `STATE_*` keys below, set by
//!   [`Forwarding::filter_state`](crate::Forwarding::filter_state) and
//!   [`Answer::filter_state`](crate::Answer::filter_state).
//!
//! Decisions are spelled by [`Verdict::as_str`], [`Admission::as_str`] and
//! [`Mode::as_str`]; nothing here ever carries an attribute value of the event.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::{Mode, Policy};
use crate::dedup::{self, Admission};
use crate::delivery::{Metadata, Verdict};
use crate::rejection::{ErrorCode, Rejection};

/// The prefix of every counter name a proxy defines: `persona_edge.forwarded` (Envoy
/// shows Wasm counters under `wasmcustom.`).
pub const COUNTER_PREFIX: &str = "persona_edge";

/// Filter state keys (without Envoy's `wasm.` prefix) set on each decided request.
/// In an access log or a header formatter: `%FILTER_STATE(wasm.persona_event_id:PLAIN)%`.
pub const STATE_EVENT_ID: &str = "persona_event_id";
pub const STATE_EVENT_NAME: &str = "persona_event_name";
pub const STATE_EVENT_CREATED_AT: &str = "persona_event_created_at";
pub const STATE_RESOURCE_TYPE: &str = "persona_resource_type";
pub const STATE_RESOURCE_ID: &str = "persona_resource_id";
pub const STATE_ATTEMPT: &str = "persona_attempt";
/// `forward`, `acknowledge; status=204` or `reject; status=401; code=signature_mismatch`
/// (with duplicate suppression also `duplicate; status=200`): what enforce mode did
/// or, in shadow mode, would have done.
pub const STATE_DECISION: &str = "persona_decision";
/// How many attributes the blocklist removed from a forwarded body (enforce mode).
pub const STATE_STRIPPED: &str = "persona_stripped";

/// Prefix of the filter state that carries the headers to set on the forwarded
/// request, one key per header: `persona_header.x-persona-event-id`. A proxy-wasm
/// filter cannot set request headers once it has read the body; a route's
/// `request_headers_to_add` can, from this state.
pub const STATE_HEADER_PREFIX: &str = "persona_header.";

/// Every filter state key but the header ones, in the order they are set.
pub const STATE_KEYS: [&str; 8] = [
    STATE_EVENT_ID,
    STATE_EVENT_NAME,
    STATE_EVENT_CREATED_AT,
    STATE_RESOURCE_TYPE,
    STATE_RESOURCE_ID,
    STATE_ATTEMPT,
    STATE_DECISION,
    STATE_STRIPPED,
];

impl Mode {
    /// `enforce` or `shadow`, as configurations and log lines spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// The `mode` of a log line: the configuration's, or `none` without a configuration.
const fn mode_name(mode: Option<Mode>) -> &'static str {
    match mode {
        Some(mode) => mode.as_str(),
        None => "none",
    }
}

// ---------------------------------------------------------------------------
// Counters

/// One counter. [`Counter::index`] numbers them densely, so a host keeps its ids in an
/// array of [`Counter::COUNT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    /// Deliveries forwarded (in shadow mode: every delivery that was decided).
    Forwarded,
    /// Deliveries answered 204 (event type not forwarded).
    Acknowledged,
    /// Attributes the blocklist removed.
    AttributesStripped,
    /// Host calls that failed (answered 500 `host_error`).
    HostErrors,
    /// Refusals, by code (never [`ErrorCode::HostError`]: that is `host_errors`).
    Rejected(ErrorCode),
    /// Shadow mode: what enforce mode would have done.
    WouldForward,
    WouldAcknowledge,
    WouldReject(ErrorCode),
    /// Duplicate suppression answered at the edge: a delivered event, an attempt in flight.
    Duplicate,
    InFlight,
}

impl Counter {
    /// How many counters there are ([`Counter::index`] is below it).
    pub const COUNT: usize = 4 + ErrorCode::COUNT + 2 + ErrorCode::COUNT + 2;

    /// The counter's name, such as `rejected.signature_mismatch` (a proxy prefixes
    /// [`COUNTER_PREFIX`]).
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Forwarded => "forwarded",
            Counter::Acknowledged => "acknowledged",
            Counter::AttributesStripped => "attributes_stripped",
            Counter::HostErrors => "host_errors",
            Counter::Rejected(code) => code.rejected_counter(),
            Counter::WouldForward => "shadow.would_forward",
            Counter::WouldAcknowledge => "shadow.would_acknowledge",
            Counter::WouldReject(code) => code.would_reject_counter(),
            Counter::Duplicate => dedup::COUNTER_DUPLICATE,
            Counter::InFlight => dedup::COUNTER_IN_FLIGHT,
        }
    }

    /// A dense number in `0..Counter::COUNT`, for a host's table of counter ids.
    pub const fn index(self) -> usize {
        const REJECTED: usize = 4;
        const WOULD: usize = REJECTED + ErrorCode::COUNT;
        const WOULD_REJECT: usize = WOULD + 2;
        const DEDUP: usize = WOULD_REJECT + ErrorCode::COUNT;
        match self {
            Counter::Forwarded => 0,
            Counter::Acknowledged => 1,
            Counter::AttributesStripped => 2,
            Counter::HostErrors => 3,
            Counter::Rejected(code) => REJECTED + code.index(),
            Counter::WouldForward => WOULD,
            Counter::WouldAcknowledge => WOULD + 1,
            Counter::WouldReject(code) => WOULD_REJECT + code.index(),
            Counter::Duplicate => DEDUP,
            Counter::InFlight => DEDUP + 1,
        }
    }

    /// The counter of what enforce mode would have done, in shadow mode.
    pub const fn would(verdict: Verdict) -> Counter {
        match verdict {
            Verdict::Forward => Counter::WouldForward,
            Verdict::Acknowledge => Counter::WouldAcknowledge,
            Verdict::Reject(code) => Counter::WouldReject(code),
        }
    }

    /// Every counter a host running `policy` defines, in a fixed order: the four
    /// totals, `rejected.<code>` for each code a delivery can be refused with, in
    /// shadow mode the `shadow.would_*` ones, with `dedup` the `deduplicated.*` ones.
    /// No report ever counts one outside this list.
    pub fn defined_for(policy: &Policy) -> impl Iterator<Item = Counter> + use<> {
        let refusals = || {
            ErrorCode::ALL
                .into_iter()
                .filter(|code| *code != ErrorCode::HostError)
        };
        let shadow = policy.mode() == Mode::Shadow;
        let dedup = policy.dedup().is_some();
        [
            Counter::Forwarded,
            Counter::Acknowledged,
            Counter::AttributesStripped,
            Counter::HostErrors,
        ]
        .into_iter()
        .chain(refusals().map(Counter::Rejected))
        .chain(
            [Counter::WouldForward, Counter::WouldAcknowledge]
                .into_iter()
                .filter(move |_| shadow),
        )
        .chain(refusals().filter(move |_| shadow).map(Counter::WouldReject))
        .chain(
            [Counter::Duplicate, Counter::InFlight]
                .into_iter()
                .filter(move |_| dedup),
        )
    }
}

// ---------------------------------------------------------------------------
// Reports

/// How loud a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// A plain forward in enforce mode: the Envoy hosts log it at debug level, the
    /// Worker does not log it.
    Debug,
    Info,
    Warn,
    Error,
}

/// A value of a structured log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field<'a> {
    Text(&'a str),
    Number(u64),
    /// A list of texts (the configuration problems of a `config_invalid` refusal).
    List(&'a [String]),
}

/// What happened, with the data its outputs need.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// Forwarded in enforce mode; `stripped` attributes were removed.
    Forwarded {
        metadata: Option<&'a Metadata>,
        stripped: usize,
    },
    /// Shadow mode: forwarded unchanged; enforce mode would have done `would`.
    Shadowed {
        would: Verdict,
        metadata: Option<&'a Metadata>,
    },
    /// Answered 204: the event type is not forwarded.
    Acknowledged { metadata: &'a Metadata },
    /// Refused (`problems`: a `config_invalid` refusal's configuration problems, for
    /// the log only).
    Rejected {
        rejection: &'a Rejection,
        problems: &'a [String],
    },
    /// Duplicate suppression answered at the edge (`Duplicate` or `InFlight`; never
    /// `Forward`), or in shadow mode would have.
    Deduplicated {
        admission: Admission,
        event_id: &'a str,
    },
    /// The origin could not be reached (followed by the 502 refusal's report).
    OriginUnreachable { error: &'a str },
    /// A host call failed, or the host drove the exchange out of order: answered 500.
    HostError { what: &'a str },
}

/// One thing that happened to a delivery, in the mode it happened in (`None`: without
/// a configuration).
#[derive(Clone, Copy, Debug)]
pub struct Report<'a> {
    pub mode: Option<Mode>,
    pub event: Event<'a>,
}

impl<'a> Report<'a> {
    /// The name of the structured log line (`persona_edge` in the Worker's JSON):
    /// `forward`, `shadow`, `acknowledge`, `reject`, `deduplicated.duplicate`,
    /// `deduplicated.in_flight`, `origin_error` or `host_error`.
    pub fn kind(&self) -> &'static str {
        match self.event {
            Event::Forwarded { .. } => "forward",
            Event::Shadowed { .. } => "shadow",
            Event::Acknowledged { .. } => "acknowledge",
            Event::Rejected { .. } => "reject",
            Event::Deduplicated { admission, .. } => admission.counter().unwrap_or("deduplicated"),
            Event::OriginUnreachable { .. } => "origin_error",
            Event::HostError { .. } => "host_error",
        }
    }

    /// How loud its log line is: a refusal is a warning (an error from 500 on), a plain
    /// forward debug, an answer or a shadow-mode report info.
    pub fn level(&self) -> Level {
        match self.event {
            Event::Forwarded { .. } => Level::Debug,
            Event::Shadowed { .. } | Event::Acknowledged { .. } | Event::Deduplicated { .. } => {
                Level::Info
            }
            Event::Rejected { rejection, .. } if rejection.status() < 500 => Level::Warn,
            Event::Rejected { .. } | Event::OriginUnreachable { .. } | Event::HostError { .. } => {
                Level::Error
            }
        }
    }

    /// The counters it adds to, with the amount (never 0).
    pub fn counters(&self) -> impl Iterator<Item = (Counter, u64)> + use<> {
        let (first, second): (Option<Counter>, Option<(Counter, u64)>) = match self.event {
            Event::Forwarded { stripped, .. } => (
                Some(Counter::Forwarded),
                Some((Counter::AttributesStripped, stripped as u64)),
            ),
            Event::Shadowed { would, .. } => {
                (Some(Counter::Forwarded), Some((Counter::would(would), 1)))
            }
            Event::Acknowledged { .. } => (Some(Counter::Acknowledged), None),
            Event::Rejected { rejection, .. } => (Some(Counter::Rejected(rejection.code)), None),
            // Shadow mode answered nothing: the forward counted already.
            Event::Deduplicated { admission, .. } => match (self.mode, admission) {
                (Some(Mode::Enforce), Admission::Duplicate { .. }) => {
                    (Some(Counter::Duplicate), None)
                }
                (Some(Mode::Enforce), Admission::InFlight { .. }) => {
                    (Some(Counter::InFlight), None)
                }
                _ => (None, None),
            },
            // The 502's refusal report counts it.
            Event::OriginUnreachable { .. } => (None, None),
            Event::HostError { .. } => (Some(Counter::HostErrors), None),
        };
        first
            .map(|c| (c, 1))
            .into_iter()
            .chain(second)
            .filter(|(_, n)| *n > 0)
    }

    /// The text log line, as the Envoy hosts write it: `persona-edge: rejected
    /// status=401 code=signature_mismatch event=- detail=…`.
    pub fn text(&self) -> String {
        match self.event {
            Event::Forwarded { metadata, stripped } => format!(
                "persona-edge: forwarded event={} stripped={stripped}",
                event_of(metadata)
            ),
            Event::Shadowed { would, metadata } => format!(
                "persona-edge: shadow: forwarded unchanged; enforce would: {} event={}",
                would.as_str(),
                event_of(metadata)
            ),
            Event::Acknowledged { metadata } => format!(
                "persona-edge: acknowledged status=204 event={} name={} (not forwarded: events.forward)",
                metadata.event_id, metadata.event_name
            ),
            Event::Rejected { rejection, .. } => rejection_line(rejection),
            Event::Deduplicated {
                admission,
                event_id,
            } => match (self.mode, admission) {
                (Some(Mode::Shadow), _) => format!(
                    "persona-edge: shadow: forwarded unchanged; dedup would: {} event={event_id}",
                    admission.as_str()
                ),
                (_, Admission::Duplicate { delivered_at }) => {
                    let mut at = String::new();
                    dedup::push_rfc3339(&mut at, delivered_at);
                    format!(
                        "persona-edge: deduplicated status=200 event={event_id} (delivered at {at})"
                    )
                }
                (_, Admission::InFlight { retry_after }) => format!(
                    "persona-edge: deduplicated status=409 event={event_id} (an earlier attempt is in flight; retry after {retry_after} s)"
                ),
                (_, Admission::Forward { .. }) => {
                    format!("persona-edge: admitted event={event_id}")
                }
            },
            Event::OriginUnreachable { error } => {
                format!("persona-edge: origin unreachable: {error}")
            }
            Event::HostError { what } => {
                format!("persona-edge: host call failed: {what}; answering 500")
            }
        }
    }

    /// The fields of the structured log line, in order (the Worker writes them after
    /// `"persona_edge": kind`).
    pub fn fields(&self) -> Vec<(&'static str, Field<'a>)> {
        let mut out: Vec<(&'static str, Field<'a>)> = Vec::with_capacity(6);
        let mode = Field::Text(mode_name(self.mode));
        match self.event {
            Event::Forwarded { metadata, stripped } => {
                if let Some(m) = metadata {
                    out.push(("event_id", Field::Text(&m.event_id)));
                }
                out.push(("stripped", Field::Number(stripped as u64)));
            }
            Event::Shadowed { would, metadata } => {
                out.push(("decision", Field::Text(would.as_str())));
                if let Verdict::Reject(code) = would {
                    out.push(("status", Field::Number(code.status().into())));
                    out.push(("code", Field::Text(code.as_str())));
                }
                if let Some(m) = metadata {
                    out.push(("event_id", Field::Text(&m.event_id)));
                    out.push(("event_name", Field::Text(&m.event_name)));
                }
            }
            Event::Acknowledged { metadata } => {
                out.push(("status", Field::Number(204)));
                out.push(("event_id", Field::Text(&metadata.event_id)));
                out.push(("event_name", Field::Text(&metadata.event_name)));
            }
            Event::Rejected {
                rejection,
                problems,
            } => {
                out.push(("status", Field::Number(rejection.status().into())));
                out.push(("code", Field::Text(rejection.code.as_str())));
                out.push(("detail", Field::Text(&rejection.detail)));
                out.push(("mode", mode));
                if !problems.is_empty() {
                    out.push(("problems", Field::List(problems)));
                }
            }
            Event::Deduplicated {
                admission,
                event_id,
            } => {
                out.push(("decision", Field::Text(admission.as_str())));
                let status = match admission {
                    Admission::Forward { .. } => None,
                    Admission::Duplicate { .. } => Some(200),
                    Admission::InFlight { .. } => Some(ErrorCode::DeliveryInFlight.status().into()),
                };
                if let Some(status) = status {
                    out.push(("status", Field::Number(status)));
                }
                out.push(("event_id", Field::Text(event_id)));
                out.push(("mode", mode));
                if let Admission::InFlight { retry_after } = admission {
                    out.push(("retry_after", Field::Number(retry_after)));
                }
            }
            Event::OriginUnreachable { error } => out.push(("error", Field::Text(error))),
            Event::HostError { what } => {
                out.push(("error", Field::Text(what)));
                out.push((
                    "status",
                    Field::Number(ErrorCode::HostError.status().into()),
                ));
            }
        }
        out
    }
}

/// The event id in a text log line: `-` when the envelope was not read.
fn event_of(metadata: Option<&Metadata>) -> &str {
    metadata.map_or("-", |m| m.event_id.as_str())
}

/// The log line of a refusal: status, code, `event=-` (a refusal comes before the
/// envelope is read, or because it is invalid) and the core's detail, which never
/// carries an attribute value. One allocation of the right size, without
/// `core::fmt`: it is written on every refusal, a flood from an unknown source
/// included.
pub(crate) fn rejection_line(rejection: &Rejection) -> String {
    const HEAD: &str = "persona-edge: rejected status=";
    const EVENT: &str = "-";
    let code = rejection.code.as_str();
    let mut out = String::with_capacity(
        HEAD.len() + 3 + 6 + code.len() + 7 + EVENT.len() + 8 + rejection.detail.len(),
    );
    out.push_str(HEAD);
    let status = rejection.status();
    for div in [100, 10, 1] {
        out.push(char::from(b'0' + ((status / div) % 10) as u8));
    }
    out.push_str(" code=");
    out.push_str(code);
    out.push_str(" event=");
    out.push_str(EVENT);
    out.push_str(" detail=");
    out.push_str(&rejection.detail);
    out
}

/// The filter state of the routing metadata, each pair handed to `set`.
pub(crate) fn metadata_state(metadata: &Metadata, set: &mut dyn FnMut(&str, &str)) {
    set(STATE_EVENT_ID, &metadata.event_id);
    set(STATE_EVENT_NAME, &metadata.event_name);
    set(STATE_EVENT_CREATED_AT, &metadata.created_at);
    set(STATE_RESOURCE_TYPE, &metadata.resource_type);
    set(STATE_RESOURCE_ID, &metadata.resource_id);
    if let Some(attempt) = &metadata.attempt {
        set(STATE_ATTEMPT, attempt);
    }
}

/// The filter state of headers to set (`persona_header.<name>`), each pair handed to
/// `set`. The keys are built in one reused buffer.
pub(crate) fn header_state<'h>(
    headers: impl IntoIterator<Item = (&'static str, &'h str)>,
    set: &mut dyn FnMut(&str, &str),
) {
    let mut key = String::with_capacity(STATE_HEADER_PREFIX.len() + 32);
    for (name, value) in headers {
        key.clear();
        key.push_str(STATE_HEADER_PREFIX);
        key.push_str(name);
        set(&key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeSet;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn verdicts_are_spelled_from_the_code_table() {
        assert_eq!(Verdict::Forward.as_str(), "forward");
        assert_eq!(Verdict::Acknowledge.as_str(), "acknowledge; status=204");
        for code in ErrorCode::ALL {
            let verdict = Verdict::Reject(code);
            assert_eq!(
                verdict.as_str(),
                format!("reject; status={}; code={}", code.status(), code.as_str())
            );
            assert_eq!(verdict.to_string(), verdict.as_str());
        }
        assert_eq!(
            Verdict::Reject(ErrorCode::SignatureMismatch).as_str(),
            "reject; status=401; code=signature_mismatch"
        );
        assert_eq!(Mode::Enforce.as_str(), "enforce");
        assert_eq!(Mode::Shadow.as_str(), "shadow");
    }

    #[test]
    fn every_code_has_its_place() {
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(code.index(), i);
        }
        let names: BTreeSet<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::COUNT);
        assert_eq!(ErrorCode::HostError.status(), 500);
        assert_eq!(ErrorCode::HostError.as_str(), "host_error");
        assert_eq!(ErrorCode::HostError.title(), "Proxy host call failed");
    }

    /// Every counter, each once.
    fn all_counters() -> Vec<Counter> {
        let mut all = vec![
            Counter::Forwarded,
            Counter::Acknowledged,
            Counter::AttributesStripped,
            Counter::HostErrors,
            Counter::WouldForward,
            Counter::WouldAcknowledge,
            Counter::Duplicate,
            Counter::InFlight,
        ];
        for code in ErrorCode::ALL {
            all.push(Counter::Rejected(code));
            all.push(Counter::WouldReject(code));
        }
        all
    }

    #[test]
    fn counters_are_numbered_densely_and_named_once() {
        let all = all_counters();
        assert_eq!(all.len(), Counter::COUNT);
        let indices: BTreeSet<usize> = all.iter().map(|c| c.index()).collect();
        assert_eq!(indices, (0..Counter::COUNT).collect());
        let names: BTreeSet<&str> = all.iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), Counter::COUNT);
        assert_eq!(
            Counter::Rejected(ErrorCode::TooDeep).name(),
            "rejected.too_deep"
        );
        assert_eq!(
            Counter::WouldReject(ErrorCode::SourceUnknown).name(),
            "shadow.would_reject.source_unknown"
        );
        assert_eq!(Counter::Duplicate.name(), "deduplicated.duplicate");
        assert_eq!(Counter::InFlight.name(), "deduplicated.in_flight");
    }

    /// The Envoy filter's counters before the core named them: the same names.
    #[test]
    fn the_defined_counters_are_the_filters() {
        let names = |config: &str| -> Vec<&'static str> {
            Counter::defined_for(&Policy::from_json(config.as_bytes()).unwrap())
                .map(Counter::name)
                .collect()
        };
        let refusals = [
            "method_not_allowed",
            "unsupported_media_type",
            "source_unknown",
            "source_not_allowed",
            "body_too_large",
            "signature_missing",
            "signature_malformed",
            "signature_stale",
            "signature_mismatch",
            "invalid_json",
            "too_deep",
            "invalid_envelope",
            "config_invalid",
            "origin_unreachable",
            "delivery_in_flight",
        ];
        let mut enforce: Vec<String> = [
            "forwarded",
            "acknowledged",
            "attributes_stripped",
            "host_errors",
        ]
        .iter()
        .map(|n| n.to_string())
        .collect();
        enforce.extend(refusals.iter().map(|c| format!("rejected.{c}")));
        assert_eq!(names(r#"{"signature":{"required":false}}"#), enforce);
        let mut shadow = enforce.clone();
        shadow.push("shadow.would_forward".into());
        shadow.push("shadow.would_acknowledge".into());
        shadow.extend(refusals.iter().map(|c| format!("shadow.would_reject.{c}")));
        assert_eq!(
            names(r#"{"mode":"shadow","signature":{"required":false}}"#),
            shadow
        );
        let mut dedup = enforce;
        dedup.push("deduplicated.duplicate".into());
        dedup.push("deduplicated.in_flight".into());
        assert_eq!(
            names(r#"{"signature":{"required":false},"dedup":{"enabled":true}}"#),
            dedup
        );
    }

    fn metadata() -> Metadata {
        Metadata {
            event_id: "evt_1".into(),
            event_name: "account.created".into(),
            created_at: "2024-01-01T00:00:00Z".into(),
            resource_type: "account".into(),
            resource_id: "act_1".into(),
            attempt: None,
        }
    }

    /// The structured line as the Worker writes it.
    fn worker_line(report: &Report<'_>) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert("persona_edge".into(), report.kind().into());
        for (name, value) in report.fields() {
            let value = match value {
                Field::Text(text) => serde_json::Value::from(text),
                Field::Number(n) => serde_json::Value::from(n),
                Field::List(items) => serde_json::Value::from(items),
            };
            object.insert(name.into(), value);
        }
        serde_json::Value::Object(object)
    }

    /// The Worker's log lines as docs/worker.md shows them, from reports.
    #[test]
    fn the_workers_log_lines_come_from_reports() {
        let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        let mismatch = Rejection::new(
            ErrorCode::SignatureMismatch,
            "no Persona-Signature group matches the body with a configured secret",
        );
        let line = worker_line(&Report {
            mode: Some(Mode::Enforce),
            event: Event::Rejected {
                rejection: &mismatch,
                problems: &[],
            },
        });
        assert_eq!(
            line,
            json(
                r#"{"code":"signature_mismatch","detail":"no Persona-Signature group matches the body with a configured secret","mode":"enforce","persona_edge":"reject","status":401}"#
            )
        );
        let m = metadata();
        assert_eq!(
            worker_line(&Report {
                mode: Some(Mode::Enforce),
                event: Event::Acknowledged { metadata: &m },
            }),
            json(
                r#"{"event_id":"evt_1","event_name":"account.created","persona_edge":"acknowledge","status":204}"#
            )
        );
        assert_eq!(
            worker_line(&Report {
                mode: Some(Mode::Shadow),
                event: Event::Shadowed {
                    would: Verdict::Reject(ErrorCode::SignatureMismatch),
                    metadata: None
                },
            }),
            json(
                r#"{"code":"signature_mismatch","decision":"reject; status=401; code=signature_mismatch","persona_edge":"shadow","status":401}"#
            )
        );
        assert_eq!(
            worker_line(&Report {
                mode: Some(Mode::Shadow),
                event: Event::Shadowed {
                    would: Verdict::Forward,
                    metadata: Some(&m)
                },
            }),
            json(
                r#"{"decision":"forward","event_id":"evt_1","event_name":"account.created","persona_edge":"shadow"}"#
            )
        );
        assert_eq!(
            worker_line(&Report {
                mode: Some(Mode::Enforce),
                event: Event::OriginUnreachable {
                    error: "Network connection lost."
                },
            }),
            json(r#"{"error":"Network connection lost.","persona_edge":"origin_error"}"#)
        );
        assert_eq!(
            worker_line(&Report {
                mode: Some(Mode::Enforce),
                event: Event::Deduplicated {
                    admission: Admission::Duplicate { delivered_at: 1 },
                    event_id: "evt_1"
                },
            }),
            json(
                r#"{"decision":"duplicate; status=200","event_id":"evt_1","mode":"enforce","persona_edge":"deduplicated.duplicate","status":200}"#
            )
        );
        assert_eq!(
            worker_line(&Report {
                mode: Some(Mode::Enforce),
                event: Event::Deduplicated {
                    admission: Admission::InFlight { retry_after: 27 },
                    event_id: "evt_1"
                },
            }),
            json(
                r#"{"decision":"reject; status=409; code=delivery_in_flight","event_id":"evt_1","mode":"enforce","persona_edge":"deduplicated.in_flight","retry_after":27,"status":409}"#
            )
        );
        let problems = [String::from(
            "PERSONA_EDGE_CONFIG: signature.secrets_env[0]: the variable \"PERSONA_WEBHOOK_SECRET\" is not set or empty",
        )];
        let invalid = Rejection::new(
            ErrorCode::ConfigInvalid,
            "the filter has no valid configuration; see the Worker's log",
        );
        assert_eq!(
            worker_line(&Report {
                mode: None,
                event: Event::Rejected {
                    rejection: &invalid,
                    problems: &problems
                },
            }),
            json(
                r#"{"code":"config_invalid","detail":"the filter has no valid configuration; see the Worker's log","mode":"none","persona_edge":"reject","problems":["PERSONA_EDGE_CONFIG: signature.secrets_env[0]: the variable \"PERSONA_WEBHOOK_SECRET\" is not set or empty"],"status":500}"#
            )
        );
    }

    #[test]
    fn rejection_lines_are_built_in_one_allocation() {
        let r = Rejection::new(
            ErrorCode::SourceNotAllowed,
            "198.51.100.7 is not in the source allowlist",
        );
        let line = rejection_line(&r);
        assert_eq!(
            line,
            "persona-edge: rejected status=403 code=source_not_allowed event=- detail=198.51.100.7 is not in the source allowlist"
        );
        assert_eq!(line.capacity(), line.len());
        let report = Report {
            mode: Some(Mode::Enforce),
            event: Event::Rejected {
                rejection: &r,
                problems: &[],
            },
        };
        assert_eq!(report.text(), line);
        assert_eq!(report.level(), Level::Warn);
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
            [
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
}
