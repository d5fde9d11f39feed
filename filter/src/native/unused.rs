//! Hooks Envoy 1.40 resolves for every HTTP filter configuration, and refuses the
//! configuration without ("Failed to create filter config: Failed to resolve symbol
//! ...", checked one by one), for features this module does not use: scheduled events,
//! HTTP callouts and streams to other clusters, downstream flow control, response
//! bodies and trailers. They do nothing; their parameters are those the ABI documents.
//! (`on_http_filter_local_reply`, the per-route and the configuration-level
//! callout/scheduler hooks are optional and not exported.)

use super::abi::{
    EnvoyBuffer, EnvoyHttpHeader, HttpFilterEnvoyPtr, HttpFilterModulePtr, ResponseBodyStatus,
    ResponseTrailersStatus,
};

/// Response bodies and trailers pass through: the filter has nothing to do there.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
    _end_of_stream: bool,
) -> ResponseBodyStatus {
    ResponseBodyStatus::Continue
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
) -> ResponseTrailersStatus {
    ResponseTrailersStatus::Continue
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
    _event_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
    _callout_id: u64,
    _result: u32,
    _headers: *mut EnvoyHttpHeader,
    _headers_size: usize,
    _body_chunks: *mut EnvoyBuffer,
    _body_chunks_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
    _stream_id: u64,
    _headers: *mut EnvoyHttpHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
    _stream_id: u64,
    _trailers: *mut EnvoyHttpHeader,
    _trailers_size: usize,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
    _stream_id: u64,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
    _stream_id: u64,
    _reason: u32,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
) {
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
    _filter_module_ptr: HttpFilterModulePtr,
) {
}
