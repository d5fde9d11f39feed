//! # persona-edge-core
//!
//! The policy engine of persona-edge: it decides, for one Persona webhook delivery,
//! whether it reaches the origin and in what form. It is pure: no I/O, no clock, no
//! host API. The caller (the Envoy filter, the Cloudflare Worker, the `persona-edge`
//! command) passes the method, headers, client address, body bytes and the current
//! time in, and applies the decision it gets back.
//!
//! A delivery goes through two phases, because a proxy must settle its request-header
//! changes before it sees the body:
//!
//! 1. [`Policy::check_head`]: source address first, then method and content type. Either a
//!    [`Rejection`] to answer at once, or a [`Pending`] delivery that names the headers
//!    to remove from the forwarded request (decided from the configuration alone).
//! 2. [`Policy::check_body_size`] while the body arrives, then
//!    [`Policy::process_body`] once it is complete: signature, JSON and envelope,
//!    event filter, attribute blocklist and key inflection. The [`Outcome`] is a
//!    [`Forward`] (with the body to send and the headers to set), an acknowledgement
//!    (204, nothing forwarded) or a rejection.
//!
//! [`Policy::evaluate`] runs both phases on a complete request.
//!
//! With a `dedup` section ([`Policy::dedup`]), a forward is then looked up by its event
//! id in the host's storage: [`dedup`] decides whether it goes on, is a duplicate of a
//! delivered event, or waits for an attempt in flight, and what to record after the
//! origin's answer.
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
mod glob;
mod inflection;
mod json;
mod preset;
mod rejection;
mod rewrite;
mod signature;

pub use address::{ClientAddress, PERSONA_DE, PERSONA_IN, PERSONA_US, parse_client_address};
pub use config::{ConfigError, ConfigErrors, Inflection, LoadOptions, Mode, Policy};
pub use dedup::{Admission, DedupSettings};
pub use delivery::{
    DECISION_HEADER, Forward, Metadata, Outcome, Pending, Reply, RequestHead, Verdict,
    borrow_headers,
};
pub use preset::{PERSONAL_DATA, PRESETS, Preset, PresetGroup, find_preset};
pub use rejection::{ErrorCode, JSON_API_CONTENT_TYPE, Rejection};
pub use signature::{MAX_MACS_PER_GROUP, MAX_SIGNATURE_GROUPS, SIGNATURE_HEADER, signature_header};
