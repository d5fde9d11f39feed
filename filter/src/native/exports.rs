//! The event hooks Envoy calls (`envoy_dynamic_module_on_*`, resolved with `dlsym`).
//!
//! Each hook turns Envoy's pointers back into the module's objects and calls the
//! [`FilterConfig`] or [`Filter`] inside `catch_unwind`: a panic never crosses into
//! Envoy. A stream whose filter panicked is answered 500 (unless it was already
//! answered), logged, and left alone afterwards; Envoy goes on serving. This needs
//! `panic = "unwind"`: the module is built with the `release-native` profile.
//!
//! Ownership: the configuration and each stream's state are `Box`es whose raw pointers
//! Envoy holds between `*_new` and `*_destroy`; `*_destroy` takes them back.
//!
//! Re-entrancy: a filter that calls [`Stream::send_reply`] makes Envoy run the response
//! path at once, which may call hooks of the same stream while the first hook is still
//! running. The filter sits in a `RefCell`, so such a nested hook cannot borrow it again:
//! it gets the pass-through status instead of a second `&mut` to the filter.

use core::cell::{Cell, RefCell};
use core::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::abi::{
    self, EnvoyBuffer, EnvoyHttpHeader, HttpFilterConfigEnvoyPtr, HttpFilterConfigModulePtr,
    HttpFilterEnvoyPtr, HttpFilterModulePtr, LogLevel, RequestBodyStatus, RequestHeadersStatus,
    RequestTrailersStatus, ResponseBodyStatus, ResponseHeadersStatus, ResponseTrailersStatus,
};
use super::host::{ConfigHost, Stream, copy_envoy_bytes, log};
use super::{Filter, FilterConfig, NewConfig};

/// The filter this build runs.
#[cfg(feature = "native-spike")]
const NEW_CONFIG: NewConfig = super::spike::new_config;
#[cfg(not(feature = "native-spike"))]
const NEW_CONFIG: NewConfig = no_filter;

/// Without a filter compiled in, every configuration is refused: Envoy must not run a
/// listener whose module would do nothing.
#[cfg(not(feature = "native-spike"))]
fn no_filter(_: &ConfigHost<'_>, _: &str, _: &[u8]) -> Result<Box<dyn FilterConfig>, String> {
    Err(String::from(
        "this build of the persona-edge module has no filter (the native driver is not wired yet; \
         build with --features native-spike for the spike)",
    ))
}

/// The answer to a request whose filter panicked. The same JSON:API error shape as the
/// filter's other errors; the detail stays in Envoy's log.
const PANIC_BODY: &str = "{\"errors\":[{\"status\":\"500\",\"code\":\"internal_error\",\"title\":\"persona-edge failed\",\"detail\":\"see the proxy log\"}]}";
/// `%RESPONSE_CODE_DETAILS%` of that answer.
const PANIC_DETAILS: &str = "persona_edge_panic";

/// What Envoy holds for a configuration.
struct ConfigState {
    config: Box<dyn FilterConfig>,
}

/// What Envoy holds for a stream.
struct StreamState {
    filter: RefCell<Box<dyn Filter>>,
    replied: Cell<bool>,
    /// The filter panicked: it is not called again (its state may be half-updated).
    poisoned: Cell<bool>,
}

/// The panic's message, when it is a string.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

// ---------------------------------------------------------------------------------
// Program and configuration.

/// Called once when Envoy loads the library, on the main thread. Returns the ABI
/// version; null would make Envoy unload the module and refuse the configuration.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    let installed = catch_unwind(|| {
        // Panics are reported through Envoy's log, with their location; the hook that
        // caught one then logs what it did about it.
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
            let message = info.payload_as_str().unwrap_or("(no message)");
            log(
                LogLevel::Error,
                &format!("persona-edge: panic{at}: {message}"),
            );
        }));
    });
    if installed.is_err() {
        return core::ptr::null();
    }
    abi::ABI_VERSION.as_ptr()
}

/// A new filter configuration, on the main thread. Null refuses Envoy's configuration
/// (the listener is not created; at startup Envoy exits).
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    filter_config_envoy_ptr: HttpFilterConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> HttpFilterConfigModulePtr {
    let made = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: both buffers are Envoy's, valid during this hook.
        let (name, config) = unsafe { (copy_envoy_bytes(name), copy_envoy_bytes(config)) };
        let name = String::from_utf8_lossy(&name);
        // SAFETY: the configuration pointer of this very hook; `host` is dropped before
        // the hook returns.
        let host = unsafe { ConfigHost::new(filter_config_envoy_ptr) };
        NEW_CONFIG(&host, &name, &config).map_err(|e| format!("filter {name:?}: {e}"))
    }));
    match made {
        Ok(Ok(config)) => {
            Box::into_raw(Box::new(ConfigState { config })) as HttpFilterConfigModulePtr
        }
        Ok(Err(e)) => {
            log(
                LogLevel::Error,
                &format!("persona-edge: configuration refused: {e}"),
            );
            core::ptr::null()
        }
        Err(payload) => {
            log(
                LogLevel::Error,
                &format!(
                    "persona-edge: configuration refused: panic while loading it: {}",
                    panic_message(&*payload)
                ),
            );
            core::ptr::null()
        }
    }
}

/// Envoy is done with a configuration (every stream made from it is gone). May run on a
/// worker thread: whoever dropped Envoy's last reference.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    filter_config_ptr: HttpFilterConfigModulePtr,
) {
    if filter_config_ptr.is_null() {
        return;
    }
    // SAFETY: made by `Box::into_raw` in `config_new`; Envoy hands it back exactly once.
    let state = unsafe { Box::from_raw(filter_config_ptr as *mut ConfigState) };
    if catch_unwind(AssertUnwindSafe(move || drop(state))).is_err() {
        log(
            LogLevel::Error,
            "persona-edge: panic while dropping a configuration",
        );
    }
}

// ---------------------------------------------------------------------------------
// Streams.

/// A new stream, on its worker thread. Null makes Envoy close the stream.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    filter_config_ptr: HttpFilterConfigModulePtr,
    _filter_envoy_ptr: HttpFilterEnvoyPtr,
) -> HttpFilterModulePtr {
    if filter_config_ptr.is_null() {
        return core::ptr::null();
    }
    // SAFETY: made by `config_new` and alive until `config_destroy`, which Envoy calls
    // only after every stream of the configuration is destroyed; only `&` is taken
    // (worker threads share it: `FilterConfig: Sync`).
    let state = unsafe { &*(filter_config_ptr as *const ConfigState) };
    match catch_unwind(AssertUnwindSafe(|| state.config.new_filter())) {
        Ok(filter) => Box::into_raw(Box::new(StreamState {
            filter: RefCell::new(filter),
            replied: Cell::new(false),
            poisoned: Cell::new(false),
        })) as HttpFilterModulePtr,
        Err(payload) => {
            log(
                LogLevel::Error,
                &format!(
                    "persona-edge: panic while creating a stream's filter: {}",
                    panic_message(&*payload)
                ),
            );
            core::ptr::null()
        }
    }
}

/// The stream is destroyed: its state is dropped.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(
    filter_module_ptr: HttpFilterModulePtr,
) {
    if filter_module_ptr.is_null() {
        return;
    }
    // SAFETY: made by `Box::into_raw` in `filter_new`; Envoy hands it back exactly once,
    // after the stream's last hook.
    let state = unsafe { Box::from_raw(filter_module_ptr as *mut StreamState) };
    if catch_unwind(AssertUnwindSafe(move || drop(state))).is_err() {
        log(
            LogLevel::Error,
            "persona-edge: panic while dropping a stream",
        );
    }
}

/// Runs `call` on the stream's filter, inside `catch_unwind`.
///
/// `pass` is returned when the filter is not called (poisoned, or a nested hook of a
/// stream whose filter is running); `stop` after a panic, which answers 500 when nothing
/// was answered yet and the stream can still be answered (`can_answer`).
fn on_stream<R>(
    hook: &str,
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
    (pass, stop, can_answer): (R, R, bool),
    call: impl FnOnce(&mut dyn Filter, &mut Stream<'_>) -> R,
) -> R {
    if filter_module_ptr.is_null() || filter_envoy_ptr.is_null() {
        return pass;
    }
    // SAFETY: made by `filter_new` and alive until `filter_destroy`, which never runs
    // during another hook of the stream; hooks of one stream run on one thread, and only
    // `&` is taken here (the filter itself is behind the `RefCell`).
    let state = unsafe { &*(filter_module_ptr as *const StreamState) };
    if state.poisoned.get() {
        return pass;
    }
    let Ok(mut filter) = state.filter.try_borrow_mut() else {
        // A hook Envoy called from inside another hook of this stream (see the module
        // docs); the outer one is in charge.
        return pass;
    };
    // SAFETY: the filter pointer of the hook that is running; `stream` does not outlive it.
    let mut stream = unsafe { Stream::new(filter_envoy_ptr, &state.replied) };
    match catch_unwind(AssertUnwindSafe(|| call(&mut **filter, &mut stream))) {
        Ok(status) => status,
        Err(payload) => {
            state.poisoned.set(true);
            let answer = can_answer && !state.replied.get();
            log(
                LogLevel::Error,
                &format!(
                    "persona-edge: the filter panicked in {hook} ({}); {}",
                    panic_message(&*payload),
                    if answer {
                        "answering 500"
                    } else {
                        "not answering (already answered, or the stream is over)"
                    }
                ),
            );
            if answer {
                stream.send_reply(
                    500,
                    &[("content-type", persona_edge_core::JSON_API_CONTENT_TYPE)],
                    PANIC_BODY.as_bytes(),
                    PANIC_DETAILS,
                );
            }
            stop
        }
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
    end_of_stream: bool,
) -> RequestHeadersStatus {
    on_stream(
        "request headers",
        filter_envoy_ptr,
        filter_module_ptr,
        (
            RequestHeadersStatus::Continue,
            RequestHeadersStatus::StopIteration,
            true,
        ),
        |filter, stream| filter.on_request_headers(stream, end_of_stream),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
    end_of_stream: bool,
) -> RequestBodyStatus {
    on_stream(
        "request body",
        filter_envoy_ptr,
        filter_module_ptr,
        (
            RequestBodyStatus::Continue,
            RequestBodyStatus::StopIterationNoBuffer,
            true,
        ),
        |filter, stream| filter.on_request_body(stream, end_of_stream),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
) -> RequestTrailersStatus {
    on_stream(
        "request trailers",
        filter_envoy_ptr,
        filter_module_ptr,
        (
            RequestTrailersStatus::Continue,
            RequestTrailersStatus::StopIteration,
            true,
        ),
        |filter, stream| filter.on_request_trailers(stream),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
    end_of_stream: bool,
) -> ResponseHeadersStatus {
    on_stream(
        "response headers",
        filter_envoy_ptr,
        filter_module_ptr,
        (
            ResponseHeadersStatus::Continue,
            ResponseHeadersStatus::StopIteration,
            true,
        ),
        |filter, stream| filter.on_response_headers(stream, end_of_stream),
    )
}

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
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
    event_id: u64,
) {
    on_stream(
        "a scheduled event",
        filter_envoy_ptr,
        filter_module_ptr,
        ((), (), true),
        |filter, stream| filter.on_scheduled(stream, event_id),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
) {
    on_stream(
        "stream complete",
        filter_envoy_ptr,
        filter_module_ptr,
        ((), (), false),
        |filter, stream| filter.on_stream_complete(stream),
    )
}

// ---------------------------------------------------------------------------------
// Hooks Envoy 1.40 resolves for every HTTP filter configuration and refuses the
// configuration without ("Failed to create filter config: Failed to resolve symbol ..."),
// checked one by one), for features this module does not use: HTTP callouts and streams
// to other clusters, downstream flow control. They do nothing; their parameters are
// those the ABI documents. (`on_http_filter_local_reply`, the per-route and the
// configuration-level callout/scheduler hooks are optional and not exported.)

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
