//! The per-stream driver both Envoy packagings run: Envoy's request callbacks in, the
//! core's [`Exchange`] steps out, and what the exchange says carried out through the
//! [`Host`]. It decides nothing itself (docs/hosts.md has the steps).
//!
//! - **Request headers**: the source from the peer address alone when the exchange
//!   wants it (an unknown source is answered before any header is read), then the head
//!   with the declared `Content-Length` (past the limit: 413 at once). The headers the
//!   core names are removed right away: a proxy-wasm filter can change request headers
//!   only now. A request whose headers end it is decided here.
//! - **Request body**: the size so far after each chunk (413 past the limit; in shadow
//!   mode the rest passes unbuffered), the decision at the end of the stream, or at the
//!   trailers.
//! - **Forward**: a changed body replaces the buffered one. Headers to set go straight
//!   to the request where the host can still set them after the body (the native
//!   module, which also fixes `Content-Length`); otherwise they wait in filter state for
//!   the route (the proxy-wasm filter).
//! - **Answer**: filter state, counters and log line first, then the reply (which may
//!   re-enter the host's callbacks).
//! - **Response headers**: with duplicate suppression, the origin's status settles the
//!   event's claim (Envoy's own 503 and 504 for an origin that failed or timed out come
//!   this way too).
//! - **Stream end** without a status (the client went away, the stream was reset): the
//!   claim is released, so that Persona's retry goes through.
//!
//! Every failed host call fails the delivery closed: 500 `host_error`.

use core::ops::Deref;

use persona_edge_core::report::STATE_HEADER_PREFIX;
use persona_edge_core::{
    Answer, Body, Decision, DedupSettings, Exchange, Forwarding, Head, Report, RequestHead,
    borrow_headers,
};

use crate::host::Host;
use crate::plugin::{Plugin, Shared};

/// Where a log line of a configuration-less answer sends the reader.
const LOG: &str = "the proxy log";

/// What the host's callback returns, in the host's words: each host maps these to its
/// own statuses, per callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Let the request go on (forwarded, or decided earlier).
    Continue,
    /// Keep the body coming: buffer it (the native module also holds the headers).
    Read,
    /// Answered: nothing goes on.
    Stop,
}

/// One stream. `R` is how the host shares the configuration: `Rc<Plugin<u32>>` in the
/// .wasm, `Arc<Plugin<CounterId>>` natively. Without a configuration every request is
/// answered 500 `config_invalid` (Envoy refuses such a filter before it gets here).
pub struct Driver<R> {
    plugin: Option<R>,
    exchange: Option<Exchange<Shared<R>>>,
    /// Body bytes received so far, as the last body callback said.
    received: usize,
    /// The request declared its length: a host that sets headers after the body sets
    /// the forwarded body's.
    declared_length: bool,
    /// Answered without a configuration.
    refused: bool,
}

impl<R, Id> Driver<R>
where
    R: Deref<Target = Plugin<Id>> + Clone,
    Id: Copy + 'static,
{
    pub fn new(plugin: Option<R>) -> Self {
        Driver {
            exchange: plugin.clone().map(|p| Exchange::new(Shared(p))),
            plugin,
            received: 0,
            declared_length: false,
            refused: false,
        }
    }

    pub fn on_request_headers<H: Host<CounterId = Id>>(
        &mut self,
        host: &mut H,
        end_of_stream: bool,
    ) -> Flow {
        let Some(exchange) = self.exchange.as_mut() else {
            if self.refused {
                return Flow::Stop;
            }
            self.refused = true;
            let answer = Answer::config_invalid(LOG, None, Vec::new());
            return self.answer(host, &answer);
        };
        let peer = if exchange.wants_peer() {
            host.peer_address()
        } else {
            None
        };
        if let Some(answer) = exchange.source(peer.as_deref()) {
            return self.answer(host, &answer);
        }
        let raw = match host.request_headers() {
            Ok(raw) => raw,
            Err(e) => return self.fail(host, &format!("reading the request headers: {e}")),
        };
        let (method, headers) = split_headers(raw);
        let pairs = borrow_headers(&headers);
        let head = RequestHead {
            method: &method,
            headers: &pairs,
            peer: peer.as_deref(),
        };
        let declared = head.content_length();
        self.declared_length = declared.is_some();
        match exchange.head(&head, declared) {
            Head::Read { remove_headers } => {
                for name in &remove_headers {
                    if let Err(e) = host.remove_request_header(name) {
                        return self
                            .fail(host, &format!("removing the request header {name}: {e}"));
                    }
                }
                if end_of_stream {
                    self.finish(host, 0, false)
                } else {
                    Flow::Read
                }
            }
            Head::Answer(answer) => self.answer(host, &answer),
            Head::PassThrough(forwarding) => self.forward(host, &forwarding, None),
            Head::Done => Flow::Continue,
        }
    }

    /// `received`: every body byte so far.
    pub fn on_request_body<H: Host<CounterId = Id>>(
        &mut self,
        host: &mut H,
        received: usize,
        end_of_stream: bool,
    ) -> Flow {
        let Some(exchange) = self.exchange.as_mut() else {
            return Flow::Stop;
        };
        self.received = received;
        match exchange.body(received, end_of_stream) {
            Body::More => Flow::Read,
            Body::Complete => self.finish(host, received, true),
            Body::Answer(answer) => self.answer(host, &answer),
            Body::PassThrough(forwarding) => self.forward(host, &forwarding, None),
            Body::Done => Flow::Continue,
        }
    }

    /// Trailers end the request: the body so far is all of it.
    pub fn on_request_trailers<H: Host<CounterId = Id>>(&mut self, host: &mut H) -> Flow {
        let received = self.received;
        self.on_request_body(host, received, true)
    }

    /// The origin answered: with duplicate suppression, its status settles the event.
    pub fn on_response_headers<H: Host<CounterId = Id>>(&mut self, host: &mut H) {
        if self.dedup().is_none() {
            return;
        }
        if let Some(status) = host.response_status() {
            self.settle(host, status);
        }
    }

    /// The stream is over. A forward whose answer never came (the client went away, the
    /// stream was reset, the status could not be read) is settled as a failure, so the
    /// event's claim is released rather than held for `in_flight_seconds`.
    pub fn on_stream_end<H: Host<CounterId = Id>>(&mut self, host: &mut H) {
        if self.dedup().is_some() {
            // No status: 0 is none Persona counts as a delivery.
            self.settle(host, 0);
        }
    }

    fn dedup(&self) -> Option<DedupSettings> {
        self.exchange.as_ref()?.policy().dedup().copied()
    }

    /// Records the origin's `status` for a forwarded delivery (nothing otherwise).
    fn settle<H: Host<CounterId = Id>>(&mut self, host: &mut H, status: u16) {
        let Some(settings) = self.dedup() else {
            return;
        };
        if let Some(settlement) = self
            .exchange
            .as_mut()
            .and_then(|e| e.origin_answered(status))
            && let Ok(now) = host.now()
        {
            host.settle(&settlement, &settings, now);
        }
    }

    /// The host's own failure outside the driver (the native module caught a panic):
    /// answered 500 `host_error` like a failed host call, with a fresh exchange, since
    /// this one may be half-updated. `Flow::Continue` when there is nothing to answer.
    pub fn abandon<H: Host<CounterId = Id>>(&mut self, host: &mut H, what: &str) -> Flow {
        self.exchange = self.plugin.clone().map(|p| Exchange::new(Shared(p)));
        self.fail(host, what)
    }

    /// The whole body (`received` bytes; `in_body_phase` when it is buffered).
    fn finish<H: Host<CounterId = Id>>(
        &mut self,
        host: &mut H,
        received: usize,
        in_body_phase: bool,
    ) -> Flow {
        let body = if received == 0 {
            Vec::new()
        } else {
            match host.request_body(received) {
                Ok(body) => body,
                Err(e) => return self.fail(host, &format!("reading the request body: {e}")),
            }
        };
        let now = match host.now() {
            Ok(now) => now,
            Err(e) => return self.fail(host, &format!("reading the clock: {e}")),
        };
        let Some(exchange) = self.exchange.as_mut() else {
            return Flow::Stop;
        };
        let mut decision = exchange.finish(&body, now);
        while let Decision::Admit(token) = decision {
            let found = host.admission(&token);
            decision = exchange.admit(token, found);
        }
        match decision {
            Decision::Forward(forwarding) => {
                self.forward(host, &forwarding, in_body_phase.then_some(received))
            }
            Decision::Answer(answer) => self.answer(host, &answer),
            Decision::Admit(_) | Decision::Done => Flow::Continue,
        }
    }

    /// Sends it on. `received`: the buffered body's size, when there is one to replace.
    fn forward<H: Host<CounterId = Id>>(
        &mut self,
        host: &mut H,
        forwarding: &Forwarding<'_>,
        received: Option<usize>,
    ) -> Flow {
        let sets_headers = host.sets_headers_after_body();
        match (forwarding.changed_body(), received) {
            (Some(body), Some(received)) => {
                if let Err(e) = host.replace_request_body(received, body) {
                    return self.fail(host, &format!("replacing the request body: {e}"));
                }
            }
            (Some(body), None) if !body.is_empty() => {
                return self.fail(host, "a rewritten body for a request without one");
            }
            _ => {}
        }
        if sets_headers {
            let length = forwarding
                .body()
                .filter(|_| self.declared_length && received.is_some())
                .map(|body| body.len().to_string());
            let framing = length.as_deref().map(|l| ("content-length", l));
            for (name, value) in forwarding.set_headers().chain(framing) {
                if let Err(e) = host.set_request_header(name, value) {
                    return self.fail(host, &format!("setting the request header {name}: {e}"));
                }
            }
        }
        // The headers' filter state is for a route to add them: not needed where the
        // host set them itself.
        forwarding.filter_state(&mut |key, value| {
            if !(sets_headers && key.starts_with(STATE_HEADER_PREFIX)) {
                host.set_filter_state(key, value);
            }
        });
        self.report(host, forwarding.reports());
        Flow::Continue
    }

    fn answer<H: Host<CounterId = Id>>(&mut self, host: &mut H, answer: &Answer) -> Flow {
        answer.filter_state(&mut |key, value| host.set_filter_state(key, value));
        self.report(host, answer.reports());
        host.send_reply(answer.reply());
        if let (Some(settlement), Some(settings)) = (
            answer.settlement(),
            self.plugin
                .as_ref()
                .and_then(|p| p.policy().dedup().copied()),
        ) && let Ok(now) = host.now()
        {
            host.settle(settlement, &settings, now);
        }
        Flow::Stop
    }

    /// A host call failed: 500 `host_error`, nothing forwarded.
    fn fail<H: Host<CounterId = Id>>(&mut self, host: &mut H, what: &str) -> Flow {
        match self.exchange.as_mut().and_then(|e| e.host_error(what)) {
            Some(answer) => self.answer(host, &answer),
            None => Flow::Continue,
        }
    }

    /// Counters and log lines.
    fn report<'r, H: Host<CounterId = Id>>(
        &self,
        host: &mut H,
        reports: impl Iterator<Item = Report<'r>>,
    ) {
        for report in reports {
            if let Some(plugin) = &self.plugin {
                for (counter, amount) in report.counters() {
                    if let Some(id) = plugin.counter(counter) {
                        host.increment_counter(id, amount);
                    }
                }
            }
            let level = report.level();
            if host.log_enabled(level) {
                host.log(level, &report.text());
            }
        }
    }
}

/// The request as the core wants it: the method from `:method`, and every header that
/// is not a pseudo-header. Values that are not UTF-8 are decoded lossily, so they can
/// never match a signature or parse as an address.
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

#[cfg(test)]
mod tests;
