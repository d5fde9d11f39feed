//! The event hooks Envoy calls (`envoy_dynamic_module_on_*`, resolved with `dlsym`).
//!
//! Each hook turns Envoy's pointers back into the module's objects; the stream hooks run
//! the driver through the panic guard (`guard.rs`), and the others catch panics
//! themselves: a panic never crosses into Envoy.
//!
//! Ownership: the configuration and each stream's state are `Box`es whose raw pointers
//! Envoy holds between `*_new` and `*_destroy`; `*_destroy` takes them back.

use core::cell::{Cell, RefCell};
use core::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::abi::{
    self, EnvoyBuffer, HttpFilterConfigEnvoyPtr, HttpFilterConfigModulePtr, HttpFilterEnvoyPtr,
    HttpFilterModulePtr, LogLevel, RequestBodyStatus, RequestHeadersStatus, RequestTrailersStatus,
    ResponseHeadersStatus,
};
use super::envoy::{ConfigHost, copy_envoy_bytes, log};
use super::guard::{StreamState, on_stream, on_stream_complete, panic_message};
use super::{SharedPlugin, new_config};
use crate::driver::{Driver, Flow};

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

/// The stream is over (answered, or reset), before its access log line: a forward
/// without the origin's status releases its duplicate-suppression claim.
#[unsafe(no_mangle)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter_envoy_ptr: HttpFilterEnvoyPtr,
    filter_module_ptr: HttpFilterModulePtr,
) {
    on_stream_complete(filter_envoy_ptr, filter_module_ptr, |driver, stream| {
        driver.on_stream_end(stream)
    });
}
