//! Safe wrappers over the callbacks of [`super::abi`]: [`ConfigHost`] while Envoy creates
//! a configuration, and [`Stream`], the driver's [`Host`] for one event hook of one
//! stream. Values are copied out of Envoy's memory before they are returned, so nothing
//! here outlives the hook that handed it out.
//!
//! Every `unsafe` block below relies on the same two facts, stated once here and
//! referred to as (P) and (B):
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
use std::time::{SystemTime, UNIX_EPOCH};

use persona_edge_core::{Level, Reply};

use super::abi::{
    self, AttributeId, EnvoyBuffer, EnvoyHttpHeader, HttpBodyType, HttpFilterConfigEnvoyPtr,
    HttpFilterEnvoyPtr, HttpHeaderType, LogLevel, ModuleBuffer, ModuleHttpHeader,
};
use crate::host::{Host, HostError};

/// The proxy-wasm filter's filter state keys carry Envoy's `wasm.` prefix; the module
/// sets the very same keys, so one access log format serves both packagings.
const STATE_KEY_PREFIX: &str = "wasm.";
/// `%RESPONSE_CODE_DETAILS%` of the module's own replies.
const REPLY_DETAILS: &str = "persona_edge";

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

pub fn level(level: Level) -> LogLevel {
    match level {
        Level::Debug => LogLevel::Debug,
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
    }
}

/// A counter defined at configuration time; incremented through a [`Stream`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterId(usize);

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
    ptr: HttpFilterEnvoyPtr,
    /// Set once a local reply was sent: the panic guard must not send a second one.
    replied: &'hook Cell<bool>,
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

    fn set_header(&mut self, name: &str, value: Option<&[u8]>) -> Result<(), HostError> {
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

    fn body_size(&self, kind: HttpBodyType) -> usize {
        // SAFETY: (P).
        unsafe { abi::envoy_dynamic_module_callback_http_get_body_size(self.ptr, kind) }
    }

    /// Appends one body's bytes to `out`.
    fn read_body(&self, kind: HttpBodyType, out: &mut Vec<u8>) -> Result<(), HostError> {
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
    fn received_is_buffered(&self) -> bool {
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

impl Host for Stream<'_> {
    type CounterId = CounterId;

    /// The module holds the request headers (StopIteration) until the body is read.
    fn sets_headers_after_body(&self) -> bool {
        true
    }

    fn peer_address(&mut self) -> Option<String> {
        let mut value = EnvoyBuffer::EMPTY;
        // SAFETY: (P); `value` is a live local Envoy writes.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.ptr,
                AttributeId::SourceAddress,
                &mut value,
            )
        };
        // SAFETY: Envoy's buffer, valid until the end of this hook; copied now.
        ok.then(|| unsafe { copy_envoy_bytes(value) })
            .and_then(|bytes| String::from_utf8(bytes).ok())
    }

    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        let kind = HttpHeaderType::RequestHeader;
        // SAFETY: (P).
        let count =
            unsafe { abi::envoy_dynamic_module_callback_http_get_headers_size(self.ptr, kind) };
        let mut raw = vec![EnvoyHttpHeader::EMPTY; count];
        // SAFETY: (P); `raw` has room for the `count` entries Envoy reported for this map
        // in this same hook (nothing changed it in between).
        let ok = count == 0
            || unsafe {
                abi::envoy_dynamic_module_callback_http_get_headers(
                    self.ptr,
                    kind,
                    raw.as_mut_ptr(),
                )
            };
        if !ok {
            return Err(String::from("Envoy gave no request headers"));
        }
        Ok(raw
            .iter()
            .map(|h| {
                // SAFETY: Envoy filled each entry with pointers into its header map, valid
                // until the end of this hook; they are copied right away.
                let (key, value) = unsafe {
                    (
                        copy_envoy_bytes(EnvoyBuffer {
                            ptr: h.key_ptr,
                            length: h.key_length,
                        }),
                        copy_envoy_bytes(EnvoyBuffer {
                            ptr: h.value_ptr,
                            length: h.value_length,
                        }),
                    )
                };
                (String::from_utf8_lossy(&key).into_owned(), value)
            })
            .collect())
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        self.set_header(name, None)
    }

    /// Works in the body phase because the header hook returned `StopIteration`.
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.set_header(name, Some(value.as_bytes()))
    }

    /// The whole body so far (`size` is what [`Stream::request_body_size`] said).
    fn request_body(&mut self, size: usize) -> Result<Vec<u8>, HostError> {
        let mut body = Vec::with_capacity(size);
        if !self.received_is_buffered() {
            self.read_body(HttpBodyType::BufferedRequestBody, &mut body)?;
        }
        self.read_body(HttpBodyType::ReceivedRequestBody, &mut body)?;
        Ok(body)
    }

    /// Drains the buffered part and the current chunk, and puts `body` in their place
    /// (in Envoy's buffer when there is one, else as the current chunk).
    fn replace_request_body(&mut self, _size: usize, body: &[u8]) -> Result<(), HostError> {
        let kinds = [
            HttpBodyType::BufferedRequestBody,
            HttpBodyType::ReceivedRequestBody,
        ];
        for kind in kinds {
            let size = self.body_size(kind);
            if size > 0 {
                // SAFETY: (P).
                unsafe { abi::envoy_dynamic_module_callback_http_drain_body(self.ptr, kind, size) };
            }
        }
        let appended = kinds.into_iter().any(|kind| {
            // SAFETY: (P), (B).
            unsafe {
                abi::envoy_dynamic_module_callback_http_append_body(
                    self.ptr,
                    kind,
                    ModuleBuffer::from_bytes(body),
                )
            }
        });
        appended
            .then_some(())
            .ok_or_else(|| String::from("Envoy took the new body nowhere"))
    }

    fn send_reply(&mut self, reply: &Reply) {
        self.replied.set(true);
        let mut headers: Vec<ModuleHttpHeader> = reply
            .headers
            .iter()
            .map(|(name, value)| ModuleHttpHeader {
                key_ptr: name.as_ptr().cast(),
                key_length: name.len(),
                value_ptr: value.as_ptr().cast(),
                value_length: value.len(),
            })
            .collect();
        // SAFETY: (P); (B) for the body, the details and every header, which `reply`
        // owns for the whole call; `headers` holds `headers.len()` entries.
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                self.ptr,
                u32::from(reply.status),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::from_bytes(reply.body.as_bytes()),
                ModuleBuffer::from_bytes(REPLY_DETAILS.as_bytes()),
            );
        }
    }

    fn set_filter_state(&mut self, key: &str, value: &str) {
        let full = format!("{STATE_KEY_PREFIX}{key}");
        // SAFETY: (P), (B).
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.ptr,
                ModuleBuffer::from_bytes(full.as_bytes()),
                ModuleBuffer::from_bytes(value.as_bytes()),
            )
        };
        if !ok {
            log(
                LogLevel::Warn,
                &format!("persona-edge: cannot set filter state {full}"),
            );
        }
    }

    fn increment_counter(&mut self, id: CounterId, amount: u64) {
        // SAFETY: (P); no labels (null, 0), as the counter was defined without any.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                self.ptr,
                id.0,
                core::ptr::null(),
                0,
                amount,
            );
        }
    }

    fn log_enabled(&self, level: Level) -> bool {
        // SAFETY: takes a plain enum, no pointer.
        unsafe { abi::envoy_dynamic_module_callback_log_enabled(self::level(level)) }
    }

    fn log(&mut self, level: Level, message: &str) {
        log(self::level(level), message);
    }

    fn now(&mut self) -> Result<u64, HostError> {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| String::from("the clock is before 1970"))
    }

    fn response_status(&mut self) -> Option<u16> {
        let status = self.header(HttpHeaderType::ResponseHeader, ":status")?;
        std::str::from_utf8(&status).ok()?.parse().ok()
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
