//! The fake runtime the driver's tests run on, and their helpers.

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use persona_edge_core::dedup::{Admission, Claim, DedupSettings};
use persona_edge_core::{Admit, Forwarding, Policy, Report, RequestHead, Settlement};

use crate::config::{self, CONFIG_VAR};
use crate::driver::{Delivered, Host, Outgoing, deliver};
use crate::error::{BodyError, DedupError, SendError};
use crate::log;

pub const NOW: u64 = 1_700_000_000;
pub const EVENT: &[u8] = br#"{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.approved","created-at":"2024-01-01T00:00:00Z","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{"name-first":"Jane","status":"approved"}}}}}}"#;
pub const BASE: &str =
    r#""signature":{"required":false},"sources":{"allow":["0.0.0.0/0"]},"blocklist":["name-*"]"#;

/// The policy the Worker loads from `extra` (JSON members after the base ones).
pub fn policy(extra: &str) -> std::rc::Rc<Result<Policy, crate::error::ConfigError>> {
    let config = format!("{{{BASE}{extra}}}");
    let vars = HashMap::from([(CONFIG_VAR.to_string(), config)]);
    config::load(&|name| vars.get(name).cloned())
}

/// Runs `future` to its end: the fake host never waits.
pub fn block_on<F: Future>(future: F) -> F::Output {
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
pub struct Sent {
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
    pub body: Vec<u8>,
    /// A pass-through: `body` is what was read, the rest of the stream follows.
    pub original: bool,
}

pub struct Fake {
    pub chunks: VecDeque<Result<Vec<u8>, BodyError>>,
    pub discarded: bool,
    pub origin: Result<u16, SendError>,
    pub sent: Vec<Sent>,
    pub admission: Result<Admission, DedupError>,
    /// Each admission asked for: (event id, whether it claims).
    pub asked: Vec<(String, bool)>,
    pub settled: Vec<Settlement>,
    pub settle: Result<(), DedupError>,
    /// The Worker's log lines, as it writes them.
    pub lines: Vec<String>,
    /// The kind of every report, logged or not.
    pub kinds: Vec<&'static str>,
}

impl Fake {
    /// A request whose body comes in `chunks`, to an origin that answers 200.
    pub fn new(chunks: &[&[u8]]) -> Fake {
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
    pub fn line_kinds(&self) -> Vec<String> {
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

pub const HEADERS: [(&str, &str); 3] = [
    ("content-type", "application/json"),
    ("cf-connecting-ip", "203.0.113.7"),
    ("x-persona-event-id", "forged"),
];

/// Delivers `fake`'s body under the configuration `extra`, with `headers`.
pub fn run_with(fake: &mut Fake, extra: &str, headers: &[(&str, &str)]) -> Delivered<u16> {
    let loaded = policy(extra);
    let policy = loaded.as_ref().as_ref().unwrap();
    let head = RequestHead {
        method: "POST",
        headers,
        peer: None,
    };
    block_on(deliver(fake, policy, &head))
}

pub fn run(fake: &mut Fake, extra: &str) -> Delivered<u16> {
    run_with(fake, extra, &HEADERS)
}

pub fn reply(delivered: Delivered<u16>) -> persona_edge_core::Reply {
    match delivered {
        Delivered::Reply(reply) => reply,
        Delivered::Origin(status) => panic!("forwarded ({status}), not answered"),
    }
}

pub fn from_origin(delivered: Delivered<u16>) -> u16 {
    match delivered {
        Delivered::Origin(status) => status,
        Delivered::Reply(reply) => panic!("answered {}: {}", reply.status, reply.body),
    }
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}
