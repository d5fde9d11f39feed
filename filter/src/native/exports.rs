//! The event hooks Envoy calls (`envoy_dynamic_module_on_*`, resolved with `dlsym`).
//!
//! Each hook turns Envoy's pointers back into the module's objects and runs the driver
//! inside `catch_unwind`: a panic never crosses into Envoy. A stream whose driver
//! panicked is answered 500 `host_error` (unless it was already answered), logged, and
//! left alone afterwards; Envoy goes on serving. This needs `panic = "unwind"`: the
//! module is built with the `release-native` profile.
//!
//! Ownership: the configuration and each stream's state are `Box`es whose raw pointers
//! Envoy holds between `*_new` and `*_destroy`; `*_destroy` takes them back.
//!
//! Re-entrancy: a local reply makes Envoy run the response path at once, which may call
//! hooks of the same stream while the first hook is still running. The driver sits in a
//! `RefCell`, so such a nested hook cannot borrow it again: it gets the pass-through
//! status instead of a second `&mut` to the driver.

use core::cell::{Cell, RefCell};
use core::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::abi::{
    self, EnvoyBuffer, HttpFilterConfigEnvoyPtr, HttpFilterConfigModulePtr, HttpFilterEnvoyPtr,
    HttpFilterModulePtr, LogLevel, RequestBodyStatus, RequestHeadersStatus, RequestTrailersStatus,
    ResponseHeadersStatus,
};
use super::envoy::{ConfigHost, Stream, copy_envoy_bytes, log};
use super::{SharedPlugin, new_config};
use crate::driver::{Driver, Flow};

/// What Envoy holds for a stream.
struct StreamState {
    driver: RefCell<Driver<SharedPlugin>>,
    replied: Cell<bool>,
    /// The driver panicked: it is not called again (its state may be half-updated).
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

/// A new filter configuration, on the main thread (also under `envoy --mode
/// validate`). Null refuses Envoy's configuration (at startup Envoy exits).
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    filter_config_envoy_ptr: HttpFilterConfigEnvoyPtr,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> HttpFilterConfigModulePtr {
    let made = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: both buffers are Envoy's, valid during this hook.
        let (name, config) = unsafe { (copy_envoy_bytes(name), copy_envoy_bytes(config)) };
        // SAFETY: the configuration pointer of this very hook; `host` is dropped before
        // the hook returns.
        let host = unsafe { ConfigHost::new(filter_config_envoy_ptr) };
        new_config(&host, &String::from_utf8_lossy(&name), &config)
    }));
    match made {
        Ok(Some(plugin)) => Box::into_raw(Box::new(plugin)) as HttpFilterConfigModulePtr,
        Ok(None) => core::ptr::null(),
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
    let plugin = unsafe { Box::from_raw(filter_config_ptr as *mut SharedPlugin) };
    if catch_unwind(AssertUnwindSafe(move || drop(plugin))).is_err() {
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
    // (worker threads share it: `Arc<Plugin>` is `Sync`).
    let plugin = unsafe { &*(filter_config_ptr as *const SharedPlugin) };
    let made = catch_unwind(AssertUnwindSafe(|| StreamState {
        driver: RefCell::new(Driver::new(Some(plugin.clone()))),
        replied: Cell::new(false),
        poisoned: Cell::new(false),
    }));
    match made {
        Ok(state) => Box::into_raw(Box::new(state)) as HttpFilterModulePtr,
        Err(payload) => {
            log(
                LogLevel::Error,
                &format!(
                    "persona-edge: panic while creating a stream: {}",
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

/// Runs `call` on the stream's driver, inside `catch_unwind`. Returns `pass` when the
/// driver is not called (poisoned, or a nested hook of a stream whose driver is
/// running); after a panic, the flow of answering it (500 unless already answered).
fn on_stream<R>(
    hook: &str,
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
    pass: R,
    status: impl Fn(Flow) -> R,
    call: impl FnOnce(&mut Driver<SharedPlugin>, &mut Stream<'_>) -> Flow,
) -> R {
    if filter_module_ptr.is_null() || filter_envoy_ptr.is_null() {
        return pass;
    }
    // SAFETY: made by `filter_new` and alive until `filter_destroy`, which never runs
    // during another hook of the stream; hooks of one stream run on one thread, and only
    // `&` is taken here (the driver itself is behind the `RefCell`).
    let state = unsafe { &*(filter_module_ptr as *const StreamState) };
    if state.poisoned.get() {
        return pass;
    }
    let Ok(mut driver) = state.driver.try_borrow_mut() else {
        // A hook Envoy called from inside another hook of this stream (see the module
        // docs); the outer one is in charge.
        return pass;
    };
    // SAFETY: the filter pointer of the hook that is running; `stream` does not outlive it.
    let mut stream = unsafe { Stream::new(filter_envoy_ptr, &state.replied) };
    let payload = match catch_unwind(AssertUnwindSafe(|| {
        #[cfg(feature = "panic-test")]
        test_panic(hook, &stream);
        call(&mut driver, &mut stream)
    })) {
        Ok(flow) => return status(flow),
        Err(payload) => payload,
    };
    state.poisoned.set(true);
    let what = format!(
        "the filter panicked in {hook} ({})",
        panic_message(&*payload)
    );
    if stream.replied() {
        log(
            LogLevel::Error,
            &format!("persona-edge: {what}; already answered"),
        );
        return status(Flow::Stop);
    }
    // The driver's state may be half-updated, but it is memory-safe: it answers from a
    // fresh exchange. A panic there too is caught and logged; the stream is stopped.
    let answered = catch_unwind(AssertUnwindSafe(|| driver.abandon(&mut stream, &what)));
    if answered.is_err() {
        log(
            LogLevel::Error,
            &format!("persona-edge: {what}; answering it panicked too"),
        );
    }
    status(Flow::Stop)
}

/// Test builds only (cargo feature `panic-test`): the request header
/// `persona-edge-test-panic: HOOK` panics in that hook (not an `x-persona-` name: the
/// core removes those at the head), so that the tests can prove
/// that a panic never crosses into Envoy. The shipped module has no such trigger.
#[cfg(feature = "panic-test")]
#[allow(clippy::panic)]
fn test_panic(hook: &str, stream: &Stream<'_>) {
    let asked = stream.header(
        abi::HttpHeaderType::RequestHeader,
        "persona-edge-test-panic",
    );
    if asked.as_deref() == Some(hook.as_bytes()) {
        panic!("test panic in {hook}");
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
        RequestHeadersStatus::Continue,
        |flow| match flow {
            Flow::Continue => RequestHeadersStatus::Continue,
            // Hold the headers until the body is decided; or answered.
            Flow::Read | Flow::Stop => RequestHeadersStatus::StopIteration,
        },
        |driver, stream| driver.on_request_headers(stream, end_of_stream),
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
        RequestBodyStatus::Continue,
        |flow| match flow {
            Flow::Continue => RequestBodyStatus::Continue,
            Flow::Read => RequestBodyStatus::StopIterationAndBuffer,
            Flow::Stop => RequestBodyStatus::StopIterationNoBuffer,
        },
        |driver, stream| {
            let received = stream.request_body_size();
            driver.on_request_body(stream, received, end_of_stream)
        },
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
        RequestTrailersStatus::Continue,
        |flow| match flow {
            Flow::Continue => RequestTrailersStatus::Continue,
            Flow::Read | Flow::Stop => RequestTrailersStatus::StopIteration,
        },
        |driver, stream| driver.on_request_trailers(stream),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
    _end_of_stream: bool,
) -> ResponseHeadersStatus {
    on_stream(
        "response headers",
        filter_envoy_ptr,
        filter_module_ptr,
        ResponseHeadersStatus::Continue,
        |flow| match flow {
            Flow::Continue | Flow::Read => ResponseHeadersStatus::Continue,
            Flow::Stop => ResponseHeadersStatus::StopIteration,
        },
        |driver, stream| {
            driver.on_response_headers(stream);
            Flow::Continue
        },
    )
}
