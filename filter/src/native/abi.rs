//! The part of Envoy's dynamic-module C ABI this module uses, declared by hand.
//!
//! Envoy's Rust SDK for dynamic modules lives in Envoy's repository and is not on
//! crates.io, so these declarations are written from the ABI's documentation: the C
//! header `source/extensions/dynamic_modules/abi/abi.h` of the v0.1.0 line (the header
//! states that a v0.1 module works with a v0.2 Envoy), checked against Envoy 1.40.0
//! itself: every callback below is exported by its binary (`nm -D --defined-only`),
//! the version it expects from [`envoy_dynamic_module_on_program_init`] is the string
//! `v0.2.0` (`strings`), and the argument registers of the callbacks whose signatures
//! matter most were read from its disassembly. /work/notes/native-abi.md (for the
//! maintainers) has the details.
//!
//! Only what the module calls or must export is here. Names keep the ABI's words with
//! the `envoy_dynamic_module_type_` prefix dropped from types.
//!
//! Calling convention: everything is `extern "C"` on x86-64 System V. C `bool` is Rust
//! `bool`, `size_t` is `usize`, and a C enum is an `int`-sized integer: enums Envoy
//! *reads* from us are `#[repr(C)]` Rust enums with the documented discriminants; a value
//! Envoy *returns* to us (metrics results) is taken as a plain `u32`, so that a value
//! this file does not know can never be an invalid Rust enum.

use core::ffi::{c_char, c_void};

/// The ABI version this module is built for: what Envoy 1.40.0 expects (it logs
/// "Dynamic module ABI version v0.2.0 matched."). A mismatch is only a warning.
pub const ABI_VERSION: &core::ffi::CStr = c"v0.2.0";

// ---------------------------------------------------------------------------------
// Opaque pointers.

/// Envoy's `DynamicModuleHttpFilterConfig`; owned by Envoy.
pub type HttpFilterConfigEnvoyPtr = *mut c_void;
/// The module's configuration object; owned by the module until
/// `on_http_filter_config_destroy`.
pub type HttpFilterConfigModulePtr = *const c_void;
/// Envoy's `DynamicModuleHttpFilter` (one per stream); valid until
/// `on_http_filter_destroy`.
pub type HttpFilterEnvoyPtr = *mut c_void;
/// The module's per-stream object; owned by the module until `on_http_filter_destroy`.
pub type HttpFilterModulePtr = *const c_void;

// ---------------------------------------------------------------------------------
// Buffers and headers.

/// Bytes owned by Envoy (`envoy_dynamic_module_type_envoy_buffer`). Valid for the
/// duration of the event hook that handed them out, unless a setter changes the source.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const EMPTY: EnvoyBuffer = EnvoyBuffer {
        ptr: core::ptr::null(),
        length: 0,
    };
}

/// Bytes owned by the module (`envoy_dynamic_module_type_module_buffer`); Envoy copies
/// what it keeps. A null `ptr` means "no value" where the ABI says so (a header set to
/// null is removed).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const c_char,
    pub length: usize,
}

impl ModuleBuffer {
    pub const NULL: ModuleBuffer = ModuleBuffer {
        ptr: core::ptr::null(),
        length: 0,
    };

    /// Borrows `bytes`; the result must not outlive them.
    pub fn from_bytes(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr().cast(),
            length: bytes.len(),
        }
    }
}

/// A header owned by the module (`envoy_dynamic_module_type_module_http_header`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ModuleHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

/// A header owned by Envoy's header map (`envoy_dynamic_module_type_envoy_http_header`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHttpHeader {
    pub key_ptr: *const c_char,
    pub key_length: usize,
    pub value_ptr: *const c_char,
    pub value_length: usize,
}

impl EnvoyHttpHeader {
    pub const EMPTY: EnvoyHttpHeader = EnvoyHttpHeader {
        key_ptr: core::ptr::null(),
        key_length: 0,
        value_ptr: core::ptr::null(),
        value_length: 0,
    };
}

// ---------------------------------------------------------------------------------
// Enums Envoy reads from the module.

/// Which header map (`envoy_dynamic_module_type_http_header_type`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpHeaderType {
    RequestHeader = 0,
    ResponseHeader = 2,
}

/// Which body (`envoy_dynamic_module_type_http_body_type`). "Received" is the chunk of
/// the current body event; "buffered" is what earlier events left in Envoy's buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpBodyType {
    ReceivedRequestBody = 0,
    BufferedRequestBody = 1,
}

/// `envoy_dynamic_module_type_log_level` (Envoy's spdlog levels).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// `envoy_dynamic_module_type_attribute_id`: only `source.address` is used (the
/// downstream peer, "ip:port").
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttributeId {
    SourceAddress = 24,
}

/// `..._on_http_filter_request_headers_status`, cast by Envoy to `FilterHeadersStatus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestHeadersStatus {
    Continue = 0,
    /// Holds the headers (and everything after them) until `continue_decoding` or a
    /// body/trailers event returns Continue; body events keep coming.
    StopIteration = 1,
}

/// `..._on_http_filter_request_body_status`, cast to `FilterDataStatus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBodyStatus {
    Continue = 0,
    /// Keeps this chunk in Envoy's buffer and waits for more (or `continue_decoding`).
    StopIterationAndBuffer = 1,
    /// Stops without keeping the chunk: after a local reply, nothing goes on.
    StopIterationNoBuffer = 3,
}

/// `..._on_http_filter_request_trailers_status`, cast to `FilterTrailersStatus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestTrailersStatus {
    Continue = 0,
    StopIteration = 1,
}

/// `..._on_http_filter_response_headers_status`, cast to `FilterHeadersStatus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseHeadersStatus {
    Continue = 0,
    StopIteration = 1,
}

/// `..._on_http_filter_response_body_status`, cast to `FilterDataStatus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseBodyStatus {
    Continue = 0,
}

/// `..._on_http_filter_response_trailers_status`, cast to `FilterTrailersStatus`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseTrailersStatus {
    Continue = 0,
}

/// `envoy_dynamic_module_type_metrics_result`, as Envoy returns it: 0 is Success
/// (1 MetricNotFound, 2 InvalidLabels, 3 Frozen: defined after configuration time).
pub type MetricsResult = u32;
pub const METRICS_SUCCESS: MetricsResult = 0;

// ---------------------------------------------------------------------------------
// Callbacks: functions Envoy exports and the module calls.

unsafe extern "C" {
    /// Writes `message` to Envoy's log under the `dynamic_modules` logger.
    pub fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    /// Whether `level` would be logged (avoids formatting what would be dropped).
    pub fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;

    /// Defines a counter at configuration time (inside `on_http_filter_config_new`;
    /// later calls return Frozen). Writes its id to `counter_id_ptr`.
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        filter_config_envoy_ptr: HttpFilterConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *const ModuleBuffer,
        label_names_length: usize,
        counter_id_ptr: *mut usize,
    ) -> MetricsResult;
    /// Adds `value` to a counter of the configuration that created this stream.
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        id: usize,
        label_values: *const ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> MetricsResult;

    /// The `index`-th value of header `key` (not guaranteed UTF-8); the number of values
    /// goes to `optional_size` when it is not null. A missing key gives a null buffer.
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        header_type: HttpHeaderType,
        key: ModuleBuffer,
        result_buffer: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    /// How many entries the header map has.
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        header_type: HttpHeaderType,
    ) -> usize;
    /// Writes every entry of the map into `result_headers`, which must have room for
    /// `get_headers_size` entries.
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        header_type: HttpHeaderType,
        result_headers: *mut EnvoyHttpHeader,
    ) -> bool;
    /// Replaces every value of `key` with `value`; a null `value` removes the header.
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        header_type: HttpHeaderType,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    /// Answers the request locally (Envoy's `sendLocalReply`): `status_code`, extra
    /// headers, `body`, and `details` for `%RESPONSE_CODE_DETAILS%` (may be null).
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        status_code: u32,
        headers_vector: *mut ModuleHttpHeader,
        headers_vector_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    /// Total bytes of a body (0 when unavailable).
    pub fn envoy_dynamic_module_callback_http_get_body_size(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        body_type: HttpBodyType,
    ) -> usize;
    /// How many slices a body is made of.
    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        body_type: HttpBodyType,
    ) -> usize;
    /// Writes the body's slices into `result_buffer_vector`, which must have room for
    /// `get_body_chunks_size` entries.
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        body_type: HttpBodyType,
        result_buffer_vector: *mut EnvoyBuffer,
    ) -> bool;
    /// Appends `data` (copied) to a body; false when that body is unavailable.
    pub fn envoy_dynamic_module_callback_http_append_body(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        body_type: HttpBodyType,
        data: ModuleBuffer,
    ) -> bool;
    /// Removes the first `number_of_bytes` of a body (all of it when it is shorter).
    pub fn envoy_dynamic_module_callback_http_drain_body(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        body_type: HttpBodyType,
        number_of_bytes: usize,
    ) -> bool;
    /// Whether the received body of this event is the buffer an earlier filter built
    /// (then "received" and "buffered" are the same bytes).
    pub fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
    ) -> bool;

    /// Sets a filter state object holding bytes (`%FILTER_STATE(key:PLAIN)%`); false
    /// when the key exists read-only or there is no stream info.
    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    /// A string attribute of the stream (CEL attribute vocabulary).
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter_envoy_ptr: HttpFilterEnvoyPtr,
        attribute_id: AttributeId,
        result: *mut EnvoyBuffer,
    ) -> bool;
}
