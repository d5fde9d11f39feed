//! # persona-edge-core
//!
//! The policy engine of persona-edge: it decides, for one Persona webhook delivery,
//! whether it reaches the origin, in what form, and what the sender, the counters, the
//! logs and the access logs are told. It is pure: no I/O, no clock, no host API. The
//! hosts (the Envoy filter, the Envoy dynamic module, the Cloudflare Worker, the
//! `persona-edge` command) feed it what they read and carry out what it says.
//!
//! ## One delivery: the [`Exchange`]
//!
//! A delivery is a state machine every host drives, made from a loaded [`Policy`]:
//!
//! 1. [`Exchange::source`] (optional): the source address alone, for a host that can
//!    answer before it reads the headers. The core decides when that applies (enforce
//!    mode, the peer as the client address).
//! 2. [`Exchange::head`]: source, method, content type and encoding, and a declared
//!    `Content-Length` past the limit. An [`Answer`] at once, or [`Head::Read`] with
//!    the request headers to remove (decided from the configuration alone, for a host
//!    that can change headers only now), or in shadow mode a pass-through.
//! 3. [`Exchange::body`] as the body arrives: buffer on, or 413 (enforce), or pass the
//!    rest through unbuffered (shadow mode past the limit), or complete.
//! 4. [`Exchange::finish`] on the complete body: signature, JSON and envelope, event
//!    filter, attribute blocklist and key inflection. A [`Forwarding`] (the body to
//!    send, headers to set and to remove) or an [`Answer`] (refused, or 204 for an
//!    event type that is not forwarded).
//! 5. With a `dedup` section, a forward first becomes [`Decision::Admit`]: the host
//!    looks the event id up in its storage (a slot table with [`dedup::claim`], a
//!    Durable Object with [`dedup::admit`]) and hands the [`Admission`] back to
//!    [`Exchange::admit`]: forward, or (enforce) a duplicate or in-flight answer.
//! 6. [`Exchange::origin_answered`] / [`Exchange::origin_unreachable`]: what duplicate
//!    suppression records ([`Settlement`]), and the 502 when the origin is down.
//!
//! [`Exchange::host_error`] turns any failed host call into the 500 `host_error`
//! answer. Once a delivery is answered, further calls are no-ops.
//!
//! Every [`Answer`] and [`Forwarding`] carries its [`Report`]s (counters, text and
//! structured log lines) and its filter state, in the [`report`] vocabulary: no host
//! spells a verdict, a mode, a counter name or an error body itself.
//!
//! ## How a host drives a delivery
//!
//! A host with the whole request at hand (the `persona-edge` command does this); a
//! proxy makes the same calls from its callbacks, one step each:
//!
//! ```
//! use persona_edge_core::{Body, Decision, Exchange, Head, Policy, RequestHead};
//!
//! let policy = Policy::from_json(br#"{"signature": {"required": false}}"#).unwrap();
//! let headers = [("content-type", "application/json")];
//! let head = RequestHead { method: "POST", headers: &headers, peer: Some("35.232.44.140:443") };
//! let body = br#"{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.approved","created-at":"2024-01-01T00:00:00Z","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{}}}}}}"#;
//!
//! let mut exchange = Exchange::new(&policy);
//! let answer = match exchange.head(&head, head.content_length()) {
//!     Head::Read { remove_headers } => {
//!         // A proxy that can change request headers only now removes these now.
//!         let _ = remove_headers;
//!         match exchange.body(body.len(), true) {
//!             Body::Complete => match exchange.finish(body, 1_700_000_000) {
//!                 Decision::Forward(forward) => {
//!                     for report in forward.reports() {
//!                         // Counters and a log line, spelled by the core.
//!                         let _ = (report.counters().count(), report.level(), report.text());
//!                     }
//!                     // Send `forward.body()` with `forward.set_headers()` set and
//!                     // `forward.remove_headers()` removed; then tell the exchange how
//!                     // the origin answered, and record what dedup says.
//!                     assert!(exchange.origin_answered(200).is_none());
//!                     None
//!                 }
//!                 Decision::Answer(answer) => Some(answer),
//!                 // Only with a `dedup` section: look the id up, then `admit`.
//!                 Decision::Admit(_) | Decision::Done => None,
//!             },
//!             Body::Answer(answer) => Some(answer),
//!             Body::More | Body::PassThrough(_) | Body::Done => None,
//!         }
//!     }
//!     Head::Answer(answer) => Some(answer),
//!     Head::PassThrough(_) | Head::Done => None,
//! };
//! assert!(answer.is_none());
//! // Answered or forwarded: every further call is a no-op.
//! assert!(matches!(exchange.body(1, true), Body::Done));
//! ```
//!
//! docs/hosts.md walks through each host's callbacks.
//!
//! The building blocks below the machine ([`Policy::check_head`],
//! [`Policy::check_body_size`], [`Policy::process_body`], [`Policy::evaluate`],
//! [`Outcome`]) stay public for the fuzz targets, benchmarks and tests; hosts use the
//! [`Exchange`].
//!
//! ## Features
//! - `std` (default): `std::error::Error` impls and the native `persona-edge` command.
//!   Without it the crate is `#![no_std]` with `alloc` and builds for
//!   `wasm32-unknown-unknown`.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod address;
mod blocklist;
mod config;
pub mod dedup;
mod delivery;
mod envelope;
mod exchange;
mod glob;
mod inflection;
mod json;
mod preset;
mod rejection;
pub mod report;
mod rewrite;
mod signature;

pub use address::{ClientAddress, PERSONA_DE, PERSONA_IN, PERSONA_US, parse_client_address};
pub use config::{ConfigError, ConfigErrors, Inflection, LoadOptions, Mode, Policy};
pub use dedup::{Admission, DedupSettings};
pub use delivery::{
    DECISION_HEADER, Forward, Metadata, Outcome, Pending, Reply, RequestHead, Verdict,
    borrow_headers,
};
pub use exchange::{Admit, Answer, Body, Decision, Exchange, Forwarding, Head, Settlement};
pub use preset::{PERSONAL_DATA, PRESETS, Preset, PresetGroup, find_preset};
pub use rejection::{ErrorCode, JSON_API_CONTENT_TYPE, Rejection};
pub use report::{Counter, Event, Field, Level, Report};
pub use signature::{MAX_MACS_PER_GROUP, MAX_SIGNATURE_GROUPS, SIGNATURE_HEADER, signature_header};
