//! What the driver needs from Envoy, as one trait with two implementations: the
//! proxy-wasm host (`wasm/host.rs`, over `proxy_wasm::hostcalls`) and the dynamic-module
//! host (`native/stream.rs`, over Envoy's C ABI). The driver's unit tests use a fake.
//!
//! Every method is one host call or a few; none decides anything. A call that can fail
//! returns the failure as text for the log line of the 500 it causes (`host_error`):
//! the delivery then fails closed.

use persona_edge_core::{Admission, Admit, DedupSettings, Level, Reply, Settlement};

/// What failed, for the log: `reading the request body: BadArgument`.
pub type HostError = String;

/// One stream's view of Envoy, for the duration of one callback.
pub trait Host {
    /// The host's id of a counter, defined with the configuration ([`crate::Plugin`]).
    type CounterId: Copy;

    /// Whether request headers can still be set and the body replaced with its framing
    /// fixed once the whole body was read. The dynamic module holds the request headers
    /// while it reads the body, so it sets the routing headers and the new
    /// `Persona-Signature` itself and fixes `Content-Length`. A proxy-wasm filter
    /// cannot: it leaves the headers to set in filter state (`persona_header.NAME`),
    /// for the route's `request_headers_to_add`, and Envoy's buffer filter sets
    /// `Content-Length`.
    fn sets_headers_after_body(&self) -> bool;

    /// The downstream peer (`source.address`: `ip:port`).
    fn peer_address(&mut self) -> Option<String>;

    /// Every request header, pseudo-headers (`:method`, …) included, values as bytes.
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError>;

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;

    /// Sets a request header, replacing its values. In the body phase only where
    /// [`Host::sets_headers_after_body`].
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;

    /// The request body received so far, `size` bytes.
    fn request_body(&mut self, size: usize) -> Result<Vec<u8>, HostError>;

    /// Replaces the `size` bytes received so far with `body`.
    fn replace_request_body(&mut self, size: usize, body: &[u8]) -> Result<(), HostError>;

    /// Answers the request instead of the origin. Nothing is forwarded afterwards.
    fn send_reply(&mut self, reply: &Reply);

    /// One filter state value (`%FILTER_STATE(wasm.KEY:PLAIN)%` in both packagings).
    fn set_filter_state(&mut self, key: &str, value: &str);

    fn increment_counter(&mut self, id: Self::CounterId, amount: u64);

    /// Whether a line at `level` would be written (the text is built only then).
    fn log_enabled(&self, level: Level) -> bool;

    fn log(&mut self, level: Level, message: &str);

    /// Unix seconds.
    fn now(&mut self) -> Result<u64, HostError>;

    /// The origin's status, in the response phase.
    fn response_status(&mut self) -> Option<u16>;

    /// Duplicate suppression's storage: what it says about `token`'s event (claiming
    /// it when [`Admit::claims`]): `token.admit_slots(&table)` over the host's slot
    /// table (proxy-wasm shared data, the native module's table). `None`: the storage
    /// could not be asked (the delivery is forwarded).
    fn admission(&mut self, token: &Admit<'_>) -> Option<Admission>;

    /// Records what the origin's answer settled (`settlement.apply_slots(..)`).
    fn settle(&mut self, settlement: &Settlement, settings: &DedupSettings, now: u64);
}

/// `level` in a host's own log levels, given as `[debug, info, warn, error]`.
pub fn log_level<T: Copy>(level: Level, [debug, info, warn, error]: [T; 4]) -> T {
    match level {
        Level::Debug => debug,
        Level::Info => info,
        Level::Warn => warn,
        Level::Error => error,
    }
}
