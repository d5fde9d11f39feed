//! The driver with a fake host: every step of a delivery, natively, against the
//! real core. (The real runtime runs the same driver in tests/tests/worker.rs and
//! tests/tests/dedup.rs.)

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use persona_edge_core::dedup::{Admission, Claim, DedupSettings};
use persona_edge_core::{Admit, Body, Exchange, Forwarding, Head, Policy, RequestHead, Settlement};
use persona_edge_core::{Decision, Report};

use super::{Delivered, Host, Outgoing, deliver, unconfigured};
use crate::config::{self, CONFIG_VAR};
use crate::error::{BodyError, DedupError, JsError, SendError};
use crate::log;
use crate::protocol::Op;

const NOW: u64 = 1_700_000_000;
const EVENT: &[u8] = br#"{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.approved","created-at":"2024-01-01T00:00:00Z","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{"name-first":"Jane","status":"approved"}}}}}}"#;
const BASE: &str =
    r#""signature":{"required":false},"sources":{"allow":["0.0.0.0/0"]},"blocklist":["name-*"]"#;

/// The policy the Worker loads from `extra` (JSON members after the base ones).
fn policy(extra: &str) -> std::rc::Rc<Result<Policy, crate::error::ConfigError>> {
    let config = format!("{{{BASE}{extra}}}");
    let vars = HashMap::from([(CONFIG_VAR.to_string(), config)]);
    config::load(&|name| vars.get(name).cloned())
}

/// Runs `future` to its end: the fake host never waits.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the fake host never waits"),
    }
}

/// What the fake host sent to the origin.
#[derive(Debug)]
struct Sent {
    set: Vec<(String, String)>,
    remove: Vec<String>,
    body: Vec<u8>,
    /// A pass-through: `body` is what was read, the rest of the stream follows.
    original: bool,
}

struct Fake {
    chunks: VecDeque<Result<Vec<u8>, BodyError>>,
    discarded: bool,
    origin: Result<u16, SendError>,
    sent: Vec<Sent>,
    admission: Result<Admission, DedupError>,
    /// Each admission asked for: (event id, whether it claims).
    asked: Vec<(String, bool)>,
    settled: Vec<Settlement>,
    settle: Result<(), DedupError>,
    /// The Worker's log lines, as it writes them.
    lines: Vec<String>,
    /// The kind of every report, logged or not.
    kinds: Vec<&'static str>,
}

impl Fake {
    /// A request whose body comes in `chunks`, to an origin that answers 200.
    fn new(chunks: &[&[u8]]) -> Fake {
        Fake {
            chunks: chunks.iter().map(|c| Ok(c.to_vec())).collect(),
            discarded: false,
            origin: Ok(200),
            sent: Vec::new(),
            admission: Ok(Admission::Forward {
                claim: Claim { since: NOW },
            }),
            asked: Vec::new(),
            settled: Vec::new(),
            settle: Ok(()),
            lines: Vec::new(),
            kinds: Vec::new(),
        }
    }

    /// The kind (`persona_edge`) of each log line.
    fn line_kinds(&self) -> Vec<String> {
        self.lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["persona_edge"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

impl Host for Fake {
    type Response = u16;

    async fn read_chunk(&mut self, body: &mut Vec<u8>) -> Result<Option<usize>, BodyError> {
        let Some(chunk) = self.chunks.pop_front() else {
            return Ok(None);
        };
        let chunk = chunk?;
        body.extend_from_slice(&chunk);
        Ok(Some(chunk.len()))
    }

    fn discard_body(&mut self) {
        self.discarded = true;
    }

    async fn send(
        &mut self,
        forwarding: &Forwarding<'_>,
        body: Outgoing<'_>,
    ) -> Result<u16, SendError> {
        let (body, original) = match body {
            Outgoing::Body(body) => (body.to_vec(), false),
            Outgoing::Original(read) => (read, true),
        };
        self.sent.push(Sent {
            set: forwarding
                .set_headers()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            remove: forwarding.remove_headers().to_vec(),
            body,
            original,
        });
        self.origin.clone()
    }

    fn status(response: &u16) -> u16 {
        *response
    }

    async fn admit(&mut self, token: &Admit<'_>) -> Result<Admission, DedupError> {
        self.asked
            .push((token.event_id().to_string(), token.claims()));
        self.admission.clone()
    }

    async fn settle(
        &mut self,
        settlement: &Settlement,
        _settings: &DedupSettings,
    ) -> Result<(), DedupError> {
        self.settled.push(settlement.clone());
        self.settle.clone()
    }

    fn now(&self) -> u64 {
        NOW
    }

    fn report(&mut self, report: &Report<'_>) {
        self.kinds.push(report.kind());
        self.lines.extend(log::report_line(report));
    }

    fn dedup_failed(&mut self, error: &DedupError, event_id: &str) {
        self.lines.push(log::dedup_error_line(error, event_id));
    }
}

const HEADERS: [(&str, &str); 3] = [
    ("content-type", "application/json"),
    ("cf-connecting-ip", "203.0.113.7"),
    ("x-persona-event-id", "forged"),
];

/// Delivers `fake`'s body under the configuration `extra`, with `headers`.
fn run_with(fake: &mut Fake, extra: &str, headers: &[(&str, &str)]) -> Delivered<u16> {
    let loaded = policy(extra);
    let policy = loaded.as_ref().as_ref().unwrap();
    let head = RequestHead {
        method: "POST",
        headers,
        peer: None,
    };
    block_on(deliver(fake, policy, &head))
}

fn run(fake: &mut Fake, extra: &str) -> Delivered<u16> {
    run_with(fake, extra, &HEADERS)
}

fn reply(delivered: Delivered<u16>) -> persona_edge_core::Reply {
    match delivered {
        Delivered::Reply(reply) => reply,
        Delivered::Origin(status) => panic!("forwarded ({status}), not answered"),
    }
}

fn from_origin(delivered: Delivered<u16>) -> u16 {
    match delivered {
        Delivered::Origin(status) => status,
        Delivered::Reply(reply) => panic!("answered {}: {}", reply.status, reply.body),
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

// ---------------------------------------------------------------------------
// Forwards and answers

#[test]
fn a_forward_is_the_cores_body_and_headers() {
    let mut fake = Fake::new(&[&EVENT[..50], &EVENT[50..120], &EVENT[120..]]);
    assert_eq!(from_origin(run(&mut fake, "")), 200);
    // What the core forwards for the whole body at once.
    let loaded = policy("");
    let policy = loaded.as_ref().as_ref().unwrap();
    let mut exchange = Exchange::new(policy);
    let head = RequestHead {
        method: "POST",
        headers: &HEADERS,
        peer: None,
    };
    assert!(matches!(exchange.head(&head, None), Head::Read { .. }));
    assert!(matches!(exchange.body(EVENT.len(), true), Body::Complete));
    let Decision::Forward(expected) = exchange.finish(EVENT, NOW) else {
        panic!("the core does not forward the event");
    };
    let [sent] = fake.sent.as_slice() else {
        panic!("{:?}", fake.sent)
    };
    assert!(!sent.original);
    assert_eq!(Some(sent.body.as_slice()), expected.body());
    assert!(!String::from_utf8_lossy(&sent.body).contains("Jane"));
    assert_eq!(sent.remove, expected.remove_headers());
    assert!(sent.remove.contains(&"x-persona-event-id".to_string()));
    assert!(
        sent.set
            .contains(&("x-persona-event-id".into(), "evt_1".into()))
    );
    // A plain forward in enforce mode is reported, not logged.
    assert_eq!(fake.kinds, ["forward"]);
    assert!(fake.lines.is_empty(), "{:?}", fake.lines);
    assert!(fake.chunks.is_empty() && !fake.discarded);
}

#[test]
fn an_event_not_forwarded_is_answered_204() {
    let mut fake = Fake::new(&[EVENT]);
    let r = reply(run(&mut fake, r#","events":{"forward":["account.*"]}"#));
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert!(fake.sent.is_empty());
    assert_eq!(
        json(&fake.lines[0]),
        json(
            r#"{"persona_edge":"acknowledge","status":204,"event_id":"evt_1","event_name":"inquiry.approved"}"#
        )
    );
}

#[test]
fn a_refused_head_reads_no_body() {
    let mut fake = Fake::new(&[EVENT]);
    let r = reply(run_with(&mut fake, "", &[("content-type", "text/plain")]));
    assert_eq!(r.status, 403);
    assert_eq!(fake.chunks.len(), 1, "the body was read");
    assert_eq!(fake.line_kinds(), ["reject"]);
}

// ---------------------------------------------------------------------------
// The body

const SMALL: &str = r#","limits":{"max_body_bytes":100}"#;

fn too_large_reply() -> persona_edge_core::Reply {
    let loaded = policy(SMALL);
    let policy = loaded.as_ref().as_ref().unwrap();
    policy.check_body_size(101).unwrap_err().reply()
}

#[test]
fn a_body_past_the_limit_is_refused_at_the_chunk_that_passes_it() {
    let mut fake = Fake::new(&[&[b' '; 60], &[b' '; 60], &[b' '; 60]]);
    let r = reply(run(&mut fake, SMALL));
    assert_eq!(r, too_large_reply());
    assert_eq!(fake.chunks.len(), 1, "read on past the limit");
    assert!(fake.discarded, "the rest of the body was not let go");
    assert!(fake.sent.is_empty());
    assert_eq!(fake.line_kinds(), ["reject"]);
}

#[test]
fn a_declared_length_past_the_limit_is_refused_before_reading() {
    let mut fake = Fake::new(&[&[b' '; 60], &[b' '; 60]]);
    let mut headers = HEADERS.to_vec();
    headers.push(("content-length", "120"));
    let r = reply(run_with(&mut fake, SMALL, &headers));
    assert_eq!(r, too_large_reply());
    assert_eq!(fake.chunks.len(), 2, "the body was read");
    assert!(fake.sent.is_empty());
}

#[test]
fn shadow_mode_sends_a_large_body_on_unread() {
    let shadow = r#","mode":"shadow","limits":{"max_body_bytes":100}"#;
    let decision = (
        "x-persona-edge-decision".to_string(),
        "reject; status=413; code=body_too_large".to_string(),
    );
    // Streamed: what was read goes first, the rest follows unread.
    let mut fake = Fake::new(&[&[b'a'; 60], &[b'b'; 60], &[b'c'; 60]]);
    assert_eq!(from_origin(run(&mut fake, shadow)), 200);
    let [sent] = fake.sent.as_slice() else {
        panic!()
    };
    assert!(sent.original);
    assert_eq!(sent.body, [[b'a'; 60], [b'b'; 60]].concat());
    assert_eq!(fake.chunks.len(), 1);
    assert_eq!(sent.set, std::slice::from_ref(&decision));
    assert!(sent.remove.is_empty());
    assert_eq!(
        json(&fake.lines[0]),
        json(
            r#"{"persona_edge":"shadow","decision":"reject; status=413; code=body_too_large","status":413,"code":"body_too_large"}"#
        )
    );
    // Declared: nothing is read.
    let mut fake = Fake::new(&[&[b'a'; 60], &[b'b'; 60]]);
    let mut headers = HEADERS.to_vec();
    headers.push(("content-length", "120"));
    assert_eq!(from_origin(run_with(&mut fake, shadow, &headers)), 200);
    let [sent] = fake.sent.as_slice() else {
        panic!()
    };
    assert!(sent.original && sent.body.is_empty());
    assert_eq!(sent.set, [decision]);
    assert_eq!(fake.chunks.len(), 2);
}

#[test]
fn a_body_that_breaks_off_is_refused() {
    let mut fake = Fake::new(&[&EVENT[..40]]);
    fake.chunks.push_back(Err(BodyError::Read(JsError(
        "Network connection lost.".into(),
    ))));
    let r = reply(run(&mut fake, ""));
    assert_eq!(r.status, 400);
    assert_eq!(
        json(&r.body)["errors"][0]["detail"],
        "the body could not be read to its end (Network connection lost.)"
    );
    assert!(fake.sent.is_empty());
    let mut fake = Fake::new(&[]);
    fake.chunks.push_back(Err(BodyError::NotBytes));
    let r = reply(run(&mut fake, ""));
    assert_eq!(
        json(&r.body)["errors"][0]["detail"],
        "the body could not be read to its end (the body stream gave a chunk that is not bytes)"
    );
}

// ---------------------------------------------------------------------------
// The origin's side

#[test]
fn an_origin_that_cannot_be_reached_is_a_502() {
    let mut fake = Fake::new(&[EVENT]);
    fake.origin = Err(SendError::Unreachable(JsError(
        "connect ECONNREFUSED 10.0.0.7".into(),
    )));
    let r = reply(run(&mut fake, ""));
    assert_eq!(r.status, 502);
    assert!(!r.body.contains("10.0.0.7"), "{}", r.body);
    assert_eq!(fake.line_kinds(), ["origin_error", "reject"]);
    assert_eq!(
        json(&fake.lines[0])["error"],
        "connect ECONNREFUSED 10.0.0.7"
    );
    assert_eq!(json(&fake.lines[1])["code"], "origin_unreachable");
}

#[test]
fn a_request_that_cannot_be_built_fails_closed() {
    let mut fake = Fake::new(&[EVENT]);
    fake.origin = Err(SendError::Request(JsError("invalid header value".into())));
    let r = reply(run(&mut fake, ""));
    assert_eq!(r.status, 500);
    assert_eq!(json(&r.body)["errors"][0]["code"], "host_error");
    assert!(!r.body.contains("invalid header value"));
    assert_eq!(fake.line_kinds(), ["host_error"]);
    assert_eq!(
        json(&fake.lines[0])["error"],
        "building the forwarded request: invalid header value"
    );
}

// ---------------------------------------------------------------------------
// Duplicate suppression

const DEDUP: &str = r#","dedup":{"enabled":true}"#;

#[test]
fn a_claimed_forward_is_settled_with_the_origins_answer() {
    for (status, succeeded) in [(200, true), (202, true), (503, false), (203, false)] {
        let mut fake = Fake::new(&[EVENT]);
        fake.origin = Ok(status);
        assert_eq!(from_origin(run(&mut fake, DEDUP)), status);
        assert_eq!(fake.asked, [("evt_1".to_string(), true)]);
        assert_eq!(fake.sent.len(), 1);
        assert_eq!(
            fake.settled,
            [Settlement::Claimed {
                event_id: "evt_1".into(),
                claim: Claim { since: NOW },
                succeeded
            }]
        );
    }
    // No answer from the origin: the claim is released, so Persona's retry goes through.
    let mut fake = Fake::new(&[EVENT]);
    fake.origin = Err(SendError::Unreachable(JsError("refused".into())));
    assert_eq!(reply(run(&mut fake, DEDUP)).status, 502);
    assert!(matches!(
        fake.settled.as_slice(),
        [Settlement::Claimed {
            succeeded: false,
            ..
        }]
    ));
}

#[test]
fn duplicates_and_attempts_in_flight_are_answered_at_the_edge() {
    for admission in [
        Admission::Duplicate {
            delivered_at: NOW - 5,
        },
        Admission::InFlight { retry_after: 7 },
    ] {
        let mut fake = Fake::new(&[EVENT]);
        fake.admission = Ok(admission);
        let r = reply(run(&mut fake, DEDUP));
        assert_eq!(Some(r), admission.reply("evt_1"));
        assert!(fake.sent.is_empty() && fake.settled.is_empty());
        assert_eq!(fake.line_kinds(), [admission.counter().unwrap()]);
    }
}

#[test]
fn a_durable_object_that_fails_lets_the_delivery_through() {
    let mut fake = Fake::new(&[EVENT]);
    fake.admission = Err(DedupError::TimedOut {
        op: Op::Admit,
        after: Duration::from_secs(2),
    });
    assert_eq!(from_origin(run(&mut fake, DEDUP)), 200);
    assert_eq!(fake.sent.len(), 1);
    assert!(fake.settled.is_empty(), "nothing was claimed");
    assert_eq!(
        json(&fake.lines[0]),
        json(
            r#"{"persona_edge":"dedup_error","op":"admit","error":"no answer to admit within 2000 ms","event_id":"evt_1"}"#
        )
    );
    // A failed settle is logged; the delivery is the origin's all the same.
    let mut fake = Fake::new(&[EVENT]);
    fake.settle = Err(DedupError::Failed {
        op: Op::Settle,
        why: "storage on fire".into(),
    });
    assert_eq!(from_origin(run(&mut fake, DEDUP)), 200);
    assert_eq!(fake.line_kinds(), ["dedup_error"]);
    assert_eq!(json(&fake.lines[0])["op"], "settle");
}

#[test]
fn dedup_without_its_binding_is_a_configuration_error() {
    let mut fake = Fake::new(&[EVENT]);
    fake.admission = Err(DedupError::Unbound);
    let r = reply(run(&mut fake, DEDUP));
    assert_eq!(r.status, 500);
    let doc = json(&r.body);
    assert_eq!(doc["errors"][0]["code"], "config_invalid");
    let detail = doc["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains(crate::dedup::BINDING), "{detail}");
    assert!(fake.sent.is_empty());
    assert_eq!(json(&fake.lines[0])["op"], "binding");
}

#[test]
fn shadow_mode_looks_only_and_reports_what_dedup_would_answer() {
    let shadow = r#","mode":"shadow","dedup":{"enabled":true}"#;
    let mut fake = Fake::new(&[EVENT]);
    fake.admission = Ok(Admission::Duplicate { delivered_at: NOW });
    assert_eq!(from_origin(run(&mut fake, shadow)), 200);
    assert_eq!(fake.asked, [("evt_1".to_string(), false)]);
    let [sent] = fake.sent.as_slice() else {
        panic!()
    };
    assert_eq!(sent.body, EVENT, "shadow mode changed the body");
    assert!(sent.set.contains(&(
        "x-persona-edge-decision".into(),
        "duplicate; status=200".into()
    )));
    assert_eq!(fake.line_kinds(), ["shadow", "deduplicated.duplicate"]);
    assert_eq!(json(&fake.lines[1])["mode"], "shadow");
    assert_eq!(
        fake.settled,
        [Settlement::Delivered {
            event_id: "evt_1".into()
        }]
    );
    // The object failing: its line comes first, then the shadow line.
    let mut fake = Fake::new(&[EVENT]);
    fake.admission = Err(DedupError::Failed {
        op: Op::Peek,
        why: "storage on fire".into(),
    });
    assert_eq!(from_origin(run(&mut fake, shadow)), 200);
    assert_eq!(fake.line_kinds(), ["dedup_error", "shadow"]);
}

// ---------------------------------------------------------------------------
// Without a configuration

#[test]
fn without_a_configuration_the_answer_is_generic_and_the_log_has_the_problems() {
    let mut fake = Fake::new(&[]);
    let problem = "PERSONA_EDGE_CONFIG: signature.secrets[0]: wbhsec_pasted";
    let r = unconfigured(&mut fake, None, vec![problem.to_string()]);
    assert_eq!(r.status, 500);
    assert!(!r.body.contains("wbhsec_pasted"));
    assert_eq!(
        json(&r.body)["errors"][0]["detail"],
        "the filter has no valid configuration; see the Worker's log"
    );
    let line = json(&fake.lines[0]);
    assert_eq!(line["mode"], "none");
    assert_eq!(line["problems"], serde_json::json!([problem]));
}
