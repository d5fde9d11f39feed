//! Safe wrappers over the callbacks of [`super::abi`]: [`ConfigHost`] while Envoy creates
//! a configuration, and [`Stream`], the driver's [`Host`](crate::host::Host) for one
//! event hook of one stream (the trait's implementation is in `stream.rs`). Values are
//! copied out of Envoy's memory before they are returned, so nothing here outlives the
//! hook that handed it out.
//!
//! Every `unsafe` block below and in `stream.rs` relies on the same two facts, stated
//! once here and referred to as (P) and (B):
//!
//! - (P) The Envoy pointer a wrapper holds is the one Envoy passed to the hook that is
//!   running now, on this thread. Envoy keeps the object alive for the whole hook: a
//!   `DynamicModuleHttpFilterConfig` through `on_http_filter_config_new`, a
//!   `DynamicModuleHttpFilter` until `on_http_filter_destroy`. The wrappers are built by
//!   `exports` inside a hook and do not outlive it (`'hook`).
//! - (B) A [`ModuleBuffer`] made by `ModuleBuffer::from_bytes` points into a Rust value
//!   that lives until the call returns; the ABI says Envoy copies what it keeps.

use core::cell::Cell;
use core::marker::PhantomData;

use persona_edge_core::Level;

use super::abi::{
    self, EnvoyBuffer, HttpBodyType, HttpFilterConfigEnvoyPtr, HttpFilterEnvoyPtr, HttpHeaderType,
    LogLevel, ModuleBuffer,
};
use crate::host::{self, HostError};

/// Copies Envoy's bytes out.
///
/// # Safety
/// `buffer` must be null/empty or point to `length` readable bytes for the duration of
/// the call (Envoy's buffers are valid until the end of the current hook).
pub(crate) unsafe fn copy_envoy_bytes(buffer: EnvoyBuffer) -> Vec<u8> {
    if buffer.ptr.is_null() || buffer.length == 0 {
        return Vec::new();
    }
    // SAFETY: non-null and `length` bytes readable, by this function's contract.
    unsafe { core::slice::from_raw_parts(buffer.ptr.cast::<u8>(), buffer.length) }.to_vec()
}

/// Writes one line to Envoy's log (logger `dynamic_modules`).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: (B); the log callback takes no Envoy object and is thread-safe.
    unsafe {
        abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::from_bytes(message.as_bytes()));
    }
}

/// The core's levels as this host's: debug, info, warn, error.
const LEVELS: [LogLevel; 4] = [
    LogLevel::Debug,
    LogLevel::Info,
    LogLevel::Warn,
    LogLevel::Error,
];

pub fn level(level: Level) -> LogLevel {
    host::log_level(level, LEVELS)
}

/// A counter defined at configuration time; incremented through a [`Stream`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterId(pub(super) usize);

/// Envoy's side of a filter configuration, while `on_http_filter_config_new` runs.
/// Counters can only be defined now: Envoy freezes stat creation afterwards.
pub struct ConfigHost<'hook> {
    ptr: HttpFilterConfigEnvoyPtr,
    _hook: PhantomData<&'hook ()>,
}

impl ConfigHost<'_> {
    /// # Safety
    /// `ptr` is the configuration pointer of the `on_http_filter_config_new` call that is
    /// running, and the value does not outlive it.
    pub(crate) unsafe fn new(ptr: HttpFilterConfigEnvoyPtr) -> Self {
        ConfigHost {
            ptr,
            _hook: PhantomData,
        }
    }

    /// Defines a counter, shown as `dynamicmodulescustom.NAME` in `/stats`.
    pub fn define_counter(&self, name: &str) -> Result<CounterId, String> {
        let mut id: usize = 0;
        // SAFETY: (P) for `self.ptr`, (B) for the name; no labels (null, 0); `id` is a
        // live usize Envoy writes once.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                self.ptr,
                ModuleBuffer::from_bytes(name.as_bytes()),
                core::ptr::null(),
                0,
                &mut id,
            )
        };
        if result == abi::METRICS_SUCCESS {
            Ok(CounterId(id))
        } else {
            Err(format!("metrics result {result}"))
        }
    }
}

/// Envoy's side of one stream, for the duration of one event hook.
pub struct Stream<'hook> {
    pub(super) ptr: HttpFilterEnvoyPtr,
    /// Set once a local reply was sent: the panic guard must not send a second one.
    pub(super) replied: &'hook Cell<bool>,
}

impl<'hook> Stream<'hook> {
    /// # Safety
    /// `ptr` is the filter pointer of the hook that is running, and the value does not
    /// outlive that hook.
    pub(crate) unsafe fn new(ptr: HttpFilterEnvoyPtr, replied: &'hook Cell<bool>) -> Self {
        Stream { ptr, replied }
    }

    /// The first value of one header.
    pub fn header(&self, kind: HttpHeaderType, name: &str) -> Option<Vec<u8>> {
        let mut value = EnvoyBuffer::EMPTY;
        let mut count: usize = 0;
        // SAFETY: (P), (B) for the name; `value` and `count` are live locals Envoy writes.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_header(
                self.ptr,
                kind,
                ModuleBuffer::from_bytes(name.as_bytes()),
                &mut value,
                0,
                &mut count,
            )
        };
        // SAFETY: Envoy's buffer, valid until the end of this hook; copied now.
        (ok && count > 0).then(|| unsafe { copy_envoy_bytes(value) })
    }

    pub(super) fn set_header(&mut self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
        let value_buffer = value.map_or(ModuleBuffer::NULL, ModuleBuffer::from_bytes);
        // SAFETY: (P), (B) for name and value (a null value asks Envoy to remove).
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.ptr,
                HttpHeaderType::RequestHeader,
                ModuleBuffer::from_bytes(name.as_bytes()),
                value_buffer,
            )
        };
        ok.then_some(())
            .ok_or_else(|| String::from("Envoy refused the header change"))
    }

    pub(super) fn body_size(&self, kind: HttpBodyType) -> usize {
        // SAFETY: (P).
        unsafe { abi::envoy_dynamic_module_callback_http_get_body_size(self.ptr, kind) }
    }

    /// Appends one body's bytes to `out`.
    pub(super) fn read_body(&self, kind: HttpBodyType, out: &mut Vec<u8>) -> Result<(), HostError> {
        // SAFETY: (P).
        let chunks =
            unsafe { abi::envoy_dynamic_module_callback_http_get_body_chunks_size(self.ptr, kind) };
        if chunks == 0 {
            return Ok(());
        }
        let mut slices = vec![EnvoyBuffer::EMPTY; chunks];
        // SAFETY: (P); `slices` has room for the `chunks` entries Envoy just reported.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_body_chunks(
                self.ptr,
                kind,
                slices.as_mut_ptr(),
            )
        };
        if !ok {
            return Err(format!("Envoy gave no {kind:?}"));
        }
        for slice in slices {
            if !slice.ptr.is_null() && slice.length > 0 {
                // SAFETY: one of the slices Envoy just wrote, valid until the end of this
                // hook; copied now.
                out.extend_from_slice(unsafe {
                    core::slice::from_raw_parts(slice.ptr.cast::<u8>(), slice.length)
                });
            }
        }
        Ok(())
    }

    /// Whether the received body of this event is the buffer an earlier filter built
    /// (then "received" and "buffered" are the same bytes).
    pub(super) fn received_is_buffered(&self) -> bool {
        // SAFETY: (P).
        unsafe { abi::envoy_dynamic_module_callback_http_received_buffered_request_body(self.ptr) }
    }

    /// The body bytes so far: what Envoy buffered in earlier body events (the module
    /// returned `StopIterationAndBuffer`) and the chunk of the current one.
    pub fn request_body_size(&self) -> usize {
        let received = self.body_size(HttpBodyType::ReceivedRequestBody);
        if self.received_is_buffered() {
            return received;
        }
        self.body_size(HttpBodyType::BufferedRequestBody) + received
    }

    /// Whether this stream was answered with a local reply.
    pub fn replied(&self) -> bool {
        self.replied.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_bytes_are_copied_and_null_is_empty() {
        let data = b"abc";
        // SAFETY: points at 3 live bytes.
        let copied = unsafe {
            copy_envoy_bytes(EnvoyBuffer {
                ptr: data.as_ptr().cast(),
                length: 3,
            })
        };
        assert_eq!(copied, b"abc");
        // SAFETY: null is allowed by the contract.
        assert!(unsafe { copy_envoy_bytes(EnvoyBuffer::EMPTY) }.is_empty());
    }
}
