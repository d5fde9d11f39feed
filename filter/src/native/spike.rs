//! SPIKE (cargo feature `native-spike`): a throw-away filter that exercises every
//! primitive the persona-edge module needs, so that tests/tests/native_spike.rs can
//! prove each one against the real Envoy 1.40. It will be replaced by the driver shared
//! with the proxy-wasm filter; nothing else depends on it.
//!
//! Filter name `spike`; the filter configuration `refuse` is refused (fail-closed test).
//! Per request:
//!
//! - headers: counts the request (`persona_edge_spike.requests`), records the peer
//!   address in filter state and dynamic metadata, then holds the headers
//!   (`StopIteration`) until the body is complete;
//! - body end: reads the whole body, sets `x-spike-body-len` (its length),
//!   removes `x-spike-remove-me`, replaces a non-empty body with `SPIKE:` + the body in
//!   upper case (and fixes Content-Length when there is one), then lets the request go on;
//! - `x-spike-reply: headers|body`: answers 418 with a JSON body in that phase instead;
//! - `x-spike-defer: 1`: does the body-end work in a scheduled event and resumes the
//!   request with `continue_decoding`;
//! - `x-spike-panic: headers|body|response`: panics in that phase;
//! - response headers: logs the origin's `:status` and records it in filter state.

use std::fmt::Write as _;

use super::{
    ConfigHost, CounterId, Filter, FilterConfig, LogLevel, RequestBodyStatus, RequestHeadersStatus,
    RequestTrailersStatus, ResponseHeadersStatus, Scheduler, Stream, log,
};

/// Filter state keys and the dynamic metadata namespace the spike writes.
const STATE_PEER: &str = "persona_edge_spike.peer";
const STATE_BODY_LEN: &str = "persona_edge_spike.body_len";
const STATE_ORIGIN_STATUS: &str = "persona_edge_spike.origin_status";
const METADATA_NAMESPACE: &str = "persona_edge_spike";

/// The scheduled event that finishes a deferred body.
const FINISH_EVENT: u64 = 1;

pub(super) fn new_config(
    host: &ConfigHost<'_>,
    filter_name: &str,
    filter_config: &[u8],
) -> Result<Box<dyn FilterConfig>, String> {
    if filter_name != "spike" {
        return Err(format!(
            "unknown filter name {filter_name:?} (this build has \"spike\")"
        ));
    }
    if filter_config == b"refuse" {
        return Err(String::from(
            "the spike was asked to refuse this configuration",
        ));
    }
    let counter = |name: &str| {
        host.define_counter(name)
            .map_err(|code| format!("cannot define counter {name}: metrics result {code}"))
    };
    log(
        LogLevel::Info,
        &format!(
            "persona-edge spike: configuration loaded ({} bytes)",
            filter_config.len()
        ),
    );
    Ok(Box::new(SpikeConfig {
        requests: counter("persona_edge_spike.requests")?,
        transformed: counter("persona_edge_spike.transformed")?,
    }))
}

struct SpikeConfig {
    requests: CounterId,
    transformed: CounterId,
}

impl FilterConfig for SpikeConfig {
    fn new_filter(&self) -> Box<dyn Filter> {
        Box::new(SpikeFilter {
            transformed: self.transformed,
            requests: self.requests,
            panic_in: None,
            reply_in: None,
            defer: false,
            scheduler: None,
        })
    }
}

struct SpikeFilter {
    requests: CounterId,
    transformed: CounterId,
    /// `x-spike-panic`: the phase to panic in.
    panic_in: Option<String>,
    /// `x-spike-reply`: the phase to answer 418 in.
    reply_in: Option<String>,
    /// `x-spike-defer`: finish the body in a scheduled event.
    defer: bool,
    scheduler: Option<Scheduler>,
}

fn text(value: Option<Vec<u8>>) -> Option<String> {
    value.map(|v| String::from_utf8_lossy(&v).into_owned())
}

impl SpikeFilter {
    /// Panics when the request asked for one in `phase`: the panic test.
    fn maybe_panic(&self, phase: &str) {
        if self.panic_in.as_deref() == Some(phase) {
            #[allow(clippy::panic)] // Deliberate: the FFI boundary must catch it.
            {
                panic!("persona-edge spike: the panic the request asked for ({phase})");
            }
        }
    }

    /// Answers 418 when the request asked for it in `phase`.
    fn maybe_reply(&self, stream: &mut Stream<'_>, phase: &str) -> bool {
        if self.reply_in.as_deref() != Some(phase) {
            return false;
        }
        let body = format!("{{\"spike\":\"teapot\",\"phase\":\"{phase}\"}}");
        stream.send_reply(
            418,
            &[("content-type", "application/json"), ("x-spike", "reply")],
            body.as_bytes(),
            "spike_teapot",
        );
        true
    }

    /// The body-end work: read, set headers, replace the body.
    fn finish(&self, stream: &mut Stream<'_>) {
        let body = stream.request_body();
        let mut replaced = b"SPIKE:".to_vec();
        replaced.extend(body.iter().map(u8::to_ascii_uppercase));
        let len = body.len().to_string();
        stream.set_request_header("x-spike-body-len", len.as_bytes());
        stream.remove_request_header("x-spike-remove-me");
        // A request without a body keeps none: appending to it would make Envoy forward a
        // body (chunked) the client never sent.
        if !body.is_empty() && !stream.replace_request_body(&replaced) {
            log(
                LogLevel::Error,
                "persona-edge spike: replacing the body failed",
            );
        }
        if !body.is_empty() && stream.request_header("content-length").is_some() {
            stream.set_request_header("content-length", replaced.len().to_string().as_bytes());
        }
        stream.set_filter_state(STATE_BODY_LEN, len.as_bytes());
        stream.set_metadata(METADATA_NAMESPACE, "body_len", &len);
        stream.increment(self.transformed, 1);
    }
}

impl Filter for SpikeFilter {
    fn on_request_headers(
        &mut self,
        stream: &mut Stream<'_>,
        end_of_stream: bool,
    ) -> RequestHeadersStatus {
        stream.increment(self.requests, 1);
        if let Some(peer) = stream.peer_address() {
            stream.set_filter_state(STATE_PEER, peer.as_bytes());
            stream.set_metadata(METADATA_NAMESPACE, "peer", &peer);
        }
        // One pass over every header, as the real filter will make.
        let headers = stream.request_headers();
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        self.panic_in = text(find("x-spike-panic"));
        self.reply_in = text(find("x-spike-reply"));
        self.defer = find("x-spike-defer").is_some();
        if log_wanted() {
            let mut line = String::from("persona-edge spike: request headers:");
            for (name, value) in &headers {
                let _ = write!(line, " {name}={}", String::from_utf8_lossy(value));
            }
            log(LogLevel::Debug, &line);
        }
        self.maybe_panic("headers");
        if self.maybe_reply(stream, "headers") {
            return RequestHeadersStatus::StopIteration;
        }
        if end_of_stream {
            // No body will come: finish now, in the header phase.
            self.finish(stream);
            return RequestHeadersStatus::Continue;
        }
        RequestHeadersStatus::StopIteration
    }

    fn on_request_body(
        &mut self,
        stream: &mut Stream<'_>,
        end_of_stream: bool,
    ) -> RequestBodyStatus {
        if !end_of_stream {
            return RequestBodyStatus::StopIterationAndBuffer;
        }
        self.maybe_panic("body");
        if self.maybe_reply(stream, "body") {
            return RequestBodyStatus::StopIterationNoBuffer;
        }
        if self.defer {
            match stream.scheduler() {
                Some(scheduler) => {
                    scheduler.commit(FINISH_EVENT);
                    self.scheduler = Some(scheduler);
                    return RequestBodyStatus::StopIterationAndBuffer;
                }
                None => log(
                    LogLevel::Error,
                    "persona-edge spike: no scheduler; finishing now",
                ),
            }
        }
        self.finish(stream);
        RequestBodyStatus::Continue
    }

    fn on_request_trailers(&mut self, stream: &mut Stream<'_>) -> RequestTrailersStatus {
        // The body ended without end_of_stream: it is all in Envoy's buffer now.
        self.finish(stream);
        RequestTrailersStatus::Continue
    }

    fn on_scheduled(&mut self, stream: &mut Stream<'_>, event_id: u64) {
        if event_id != FINISH_EVENT {
            return;
        }
        self.scheduler = None;
        self.finish(stream);
        log(
            LogLevel::Info,
            "persona-edge spike: deferred body finished; continuing the request",
        );
        stream.continue_request();
    }

    fn on_response_headers(
        &mut self,
        stream: &mut Stream<'_>,
        _end_of_stream: bool,
    ) -> ResponseHeadersStatus {
        let status = text(stream.response_header(":status")).unwrap_or_default();
        log(
            LogLevel::Info,
            &format!("persona-edge spike: origin answered status={status}"),
        );
        stream.set_filter_state(STATE_ORIGIN_STATUS, status.as_bytes());
        self.maybe_panic("response");
        ResponseHeadersStatus::Continue
    }
}

fn log_wanted() -> bool {
    super::log_enabled(LogLevel::Debug)
}
