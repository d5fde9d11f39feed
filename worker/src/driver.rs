//! One delivery through the core's [`Exchange`]: the Worker's steps in order, written
//! against [`Host`], the few things the runtime does (read a chunk, send to the
//! origin, ask the Durable Object, tell the time, log). The exchange decides
//! everything else; this module only carries it out. `host.rs` is the real host;
//! the tests drive the same code with a fake one.
//!
//! ```text
//! head ─► body chunks ─► finish ─► admit (dedup) ─► send ─► origin answered ─► settle
//!   └ answer, or pass-through (shadow, too large) at any step before the send
//! ```

use persona_edge_core::dedup::{Admission, DedupSettings};
use persona_edge_core::{
    Admit, Answer, Body, Decision, ErrorCode, Exchange, Forwarding, Head, Mode, Policy, Rejection,
    Reply, Report, RequestHead, Settlement,
};

use crate::error::{BodyError, DedupError, SendError};

/// Where a `config_invalid` reply sends its reader.
pub const LOG_NAME: &str = "the Worker's log";

/// What the driver needs from the runtime.
pub trait Host {
    /// The origin's response, handed back to the sender as it is.
    type Response;

    /// Appends the next chunk of the request body to `body`: how many bytes, `None`
    /// at the end.
    async fn read_chunk(&mut self, body: &mut Vec<u8>) -> Result<Option<usize>, BodyError>;
    /// The body is refused: the rest of it is not wanted.
    fn discard_body(&mut self);
    /// Sends the delivery to the origin with `forwarding`'s header changes and `body`.
    async fn send(
        &mut self,
        forwarding: &Forwarding<'_>,
        body: Outgoing<'_>,
    ) -> Result<Self::Response, SendError>;
    fn status(response: &Self::Response) -> u16;
    /// Looks the event up in its storage; claims it when `token.claims()`.
    async fn admit(&mut self, token: &Admit<'_>) -> Result<Admission, DedupError>;
    /// Records what the exchange settled once the forward ended.
    async fn settle(
        &mut self,
        settlement: &Settlement,
        settings: &DedupSettings,
    ) -> Result<(), DedupError>;
    /// Unix seconds.
    fn now(&self) -> u64;
    fn report(&mut self, report: &Report<'_>);
    fn dedup_failed(&mut self, error: &DedupError, event_id: &str);
}

/// The body of a forwarded request.
pub enum Outgoing<'b> {
    /// The body the core gives.
    Body(&'b [u8]),
    /// Shadow mode past the limit: the bytes read so far, then the rest of the
    /// original as it arrives.
    Original(Vec<u8>),
}

/// How a delivery ended.
pub enum Delivered<R> {
    /// Forwarded: the origin's response.
    Origin(R),
    /// Answered by the Worker.
    Reply(Reply),
}

/// Drives one delivery whose head is `head` under `policy`.
pub async fn deliver<H: Host>(
    host: &mut H,
    policy: &Policy,
    head: &RequestHead<'_>,
) -> Delivered<H::Response> {
    let mut exchange = Exchange::new(policy);
    let declared = head.content_length();
    match exchange.head(head, declared) {
        Head::Read { .. } => {}
        Head::Answer(answer) => return answered(host, policy, answer).await,
        Head::PassThrough(forwarding) => {
            return send(
                host,
                &mut exchange,
                &forwarding,
                Outgoing::Original(Vec::new()),
            )
            .await;
        }
        Head::Done => return host_failed(host, policy, "the exchange ended before the head"),
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(policy.max_body_bytes()));
    loop {
        let end = match host.read_chunk(&mut body).await {
            Ok(chunk) => chunk.is_none(),
            Err(error) => {
                let answer = exchange.body_unreadable(&error.to_string());
                return answered_or_failed(host, policy, answer).await;
            }
        };
        match exchange.body(body.len(), end) {
            Body::More => {}
            Body::Complete => break,
            Body::Answer(answer) => {
                host.discard_body();
                return answered(host, policy, answer).await;
            }
            Body::PassThrough(forwarding) => {
                return send(host, &mut exchange, &forwarding, Outgoing::Original(body)).await;
            }
            Body::Done => return host_failed(host, policy, "the exchange ended in the body"),
        }
    }
    let now = host.now();
    let decision = match exchange.finish(&body, now) {
        Decision::Admit(token) => match admit(host, &mut exchange, token).await {
            Ok(decision) => decision,
            Err(reply) => return Delivered::Reply(reply),
        },
        decision => decision,
    };
    match decision {
        Decision::Forward(forwarding) => {
            let Some(body) = forwarding.body() else {
                return host_failed(host, policy, "a forward without a body");
            };
            send(host, &mut exchange, &forwarding, Outgoing::Body(body)).await
        }
        Decision::Answer(answer) => answered(host, policy, answer).await,
        Decision::Admit(_) | Decision::Done => {
            host_failed(host, policy, "the exchange ended without a decision")
        }
    }
}

/// The answer without a configuration to run: 500 `config_invalid`, generic, with
/// every problem in the log line only (`mode` when the configuration itself loaded).
pub fn unconfigured<H: Host>(host: &mut H, mode: Option<Mode>, problems: Vec<String>) -> Reply {
    let answer = Answer::config_invalid(LOG_NAME, mode, problems);
    report_all(host, answer.reports());
    answer.into_reply()
}

/// A host call that failed outside the exchange's steps (reading the request
/// headers), or a step the exchange did not expect: 500 `host_error`, fail closed.
pub fn host_failed<H: Host>(host: &mut H, policy: &Policy, what: &str) -> Delivered<H::Response> {
    let Some(answer) = Exchange::new(policy).host_error(what) else {
        // A new exchange always answers a host error; fail closed all the same.
        return Delivered::Reply(Reply {
            status: 500,
            headers: Vec::new(),
            body: String::new(),
        });
    };
    report_all(host, answer.reports());
    Delivered::Reply(answer.into_reply())
}

/// Duplicate suppression's admission for `token`, handed back to the exchange. A
/// Durable Object that cannot answer lets the delivery through (logged); a missing
/// binding is a deployment problem, answered `config_invalid` with what to fix.
async fn admit<'b, H: Host>(
    host: &mut H,
    exchange: &mut Exchange<&Policy>,
    token: Admit<'b>,
) -> Result<Decision<'b>, Reply> {
    let found = match host.admit(&token).await {
        Ok(admission) => Some(admission),
        Err(error) => {
            host.dedup_failed(&error, token.event_id());
            if error == DedupError::Unbound {
                return Err(Rejection::new(ErrorCode::ConfigInvalid, error.to_string()).reply());
            }
            None
        }
    };
    Ok(exchange.admit(token, found))
}

/// Sends a forward (or a pass-through) and ends the exchange with what came back.
async fn send<H: Host>(
    host: &mut H,
    exchange: &mut Exchange<&Policy>,
    forwarding: &Forwarding<'_>,
    body: Outgoing<'_>,
) -> Delivered<H::Response> {
    report_all(host, forwarding.reports());
    let answer = match host.send(forwarding, body).await {
        Ok(response) => {
            if let Some(settlement) = exchange.origin_answered(H::status(&response)) {
                settle(host, exchange.policy(), &settlement).await;
            }
            return Delivered::Origin(response);
        }
        Err(SendError::Unreachable(why)) => exchange.origin_unreachable(&why.to_string()),
        Err(SendError::Request(why)) => {
            exchange.host_error(&format!("building the forwarded request: {why}"))
        }
    };
    answered_or_failed(host, exchange.policy(), answer).await
}

/// Logs an answer, records the settlement it carries, and gives its reply.
async fn answered<H: Host>(
    host: &mut H,
    policy: &Policy,
    answer: Answer,
) -> Delivered<H::Response> {
    report_all(host, answer.reports());
    if let Some(settlement) = answer.settlement() {
        settle(host, policy, settlement).await;
    }
    Delivered::Reply(answer.into_reply())
}

async fn answered_or_failed<H: Host>(
    host: &mut H,
    policy: &Policy,
    answer: Option<Answer>,
) -> Delivered<H::Response> {
    match answer {
        Some(answer) => answered(host, policy, answer).await,
        None => host_failed(host, policy, "the exchange had no answer"),
    }
}

/// Records a settlement in the event's object; a failure is logged (the record then
/// stays as it was: an in-flight claim ends with its window).
async fn settle<H: Host>(host: &mut H, policy: &Policy, settlement: &Settlement) {
    let Some(settings) = policy.dedup() else {
        return;
    };
    if let Err(error) = host.settle(settlement, settings).await {
        host.dedup_failed(&error, settlement.event_id());
    }
}

fn report_all<'a, H: Host>(host: &mut H, reports: impl Iterator<Item = Report<'a>>) {
    for report in reports {
        host.report(&report);
    }
}

#[cfg(test)]
mod tests;
