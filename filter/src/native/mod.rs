//! persona-edge as an Envoy *dynamic module*: a native shared library
//! (`libpersona_edge_filter.so`, scripts/build-native-module.sh) that Envoy 1.40 loads
//! with the `envoy.filters.http.dynamic_modules` HTTP filter. Unlike the proxy-wasm
//! filter it can hold the request headers while it reads the body, then set headers and
//! replace the body before the request goes on.
//!
//! Layers, each in its own file:
//!
//! - [`abi`]: the hand-written declarations of the C ABI subset used (Envoy 1.40.0).
//! - [`host`]: safe wrappers, one per configuration ([`ConfigHost`]) and one per stream
//!   ([`Stream`]).
//! - `exports`: the `envoy_dynamic_module_on_*` functions Envoy calls. They turn Envoy's
//!   pointers into [`FilterConfig`] and [`Filter`] calls, and stop every panic at the FFI
//!   boundary (log, answer 500, never unwind into Envoy).
//! - `spike` (cargo feature `native-spike`): a throw-away filter proving each primitive
//!   against the real Envoy (tests/tests/native_spike.rs). Without it the module
//!   refuses every configuration: there is no filter to run yet.
//!
//! Threads: Envoy creates a configuration on its main thread and then uses it from every
//! worker thread (hence `FilterConfig: Send + Sync`); each stream's [`Filter`] lives and
//! dies on one worker thread.

pub mod abi;
mod exports;
pub mod host;
#[cfg(feature = "native-spike")]
mod spike;

pub use abi::{
    LogLevel, RequestBodyStatus, RequestHeadersStatus, RequestTrailersStatus, ResponseHeadersStatus,
};
pub use host::{ConfigHost, CounterId, Scheduler, Stream, log, log_enabled};

/// One Envoy filter configuration, made by the build's [`NewConfig`] on the main thread
/// and shared by every worker thread.
pub trait FilterConfig: Send + Sync {
    /// The filter of a new stream.
    fn new_filter(&self) -> Box<dyn Filter>;
}

/// One stream. Every method has a pass-through default. A method that answers the
/// request ([`Stream::send_reply`]) returns a Stop status.
pub trait Filter {
    fn on_request_headers(
        &mut self,
        _stream: &mut Stream<'_>,
        _end_of_stream: bool,
    ) -> RequestHeadersStatus {
        RequestHeadersStatus::Continue
    }

    fn on_request_body(
        &mut self,
        _stream: &mut Stream<'_>,
        _end_of_stream: bool,
    ) -> RequestBodyStatus {
        RequestBodyStatus::Continue
    }

    fn on_request_trailers(&mut self, _stream: &mut Stream<'_>) -> RequestTrailersStatus {
        RequestTrailersStatus::Continue
    }

    fn on_response_headers(
        &mut self,
        _stream: &mut Stream<'_>,
        _end_of_stream: bool,
    ) -> ResponseHeadersStatus {
        ResponseHeadersStatus::Continue
    }

    /// An event posted with [`Scheduler::commit`], on this stream's thread.
    fn on_scheduled(&mut self, _stream: &mut Stream<'_>, _event_id: u64) {}

    /// The stream is over; access logs are written after this.
    fn on_stream_complete(&mut self, _stream: &mut Stream<'_>) {}
}

/// Makes the configuration named `filter_name` from `filter_config`'s bytes (the
/// `filter_config` of Envoy's `DynamicModuleFilter`: a `StringValue`'s or
/// `BytesValue`'s value, a `Struct` as JSON). An error refuses Envoy's configuration.
pub type NewConfig = fn(
    &ConfigHost<'_>,
    filter_name: &str,
    filter_config: &[u8],
) -> Result<Box<dyn FilterConfig>, String>;
