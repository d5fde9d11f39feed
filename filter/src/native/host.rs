//! Safe wrappers over the callbacks of [`super::abi`]: one type per configuration
//! ([`ConfigHost`], while Envoy creates it) and one per stream ([`Stream`], for the
//! duration of one event hook). Values are copied out of Envoy's memory before they are
//! returned, so nothing here outlives the hook that handed it out.
//!
//! Every `unsafe` block below relies on the same two facts, stated once here and
//! referred to as (P) and (B):
//!
//! - (P) The Envoy pointer a wrapper holds is the one Envoy passed to the hook that is
//!   running now, on this thread. Envoy keeps the object alive for the whole hook: a
//!   `DynamicModuleHttpFilterConfig` through `on_http_filter_config_new`, a
//!   `DynamicModuleHttpFilter` until `on_http_filter_destroy`. The wrappers are built by
//!   `exports` inside a hook and are neither `Send` nor storable past it (`Stream` borrows
//!   the hook's frame).
//! - (B) A [`ModuleBuffer`] made by `ModuleBuffer::from_bytes` points into a Rust value
//!   that lives until the call returns; the ABI says Envoy copies what it keeps.

use core::cell::Cell;
use core::marker::PhantomData;

use super::abi::{
    self, AttributeId, EnvoyBuffer, EnvoyHttpHeader, HttpBodyType, HttpFilterConfigEnvoyPtr,
    HttpFilterEnvoyPtr, HttpFilterSchedulerModulePtr, HttpHeaderType, LogLevel, ModuleBuffer,
    ModuleHttpHeader,
};

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

/// Writes one line to Envoy's log (logger `dynamic_modules`, so
/// `--component-log-level dynamic_modules:debug` shows debug lines).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: (B); the log callbacks take no Envoy object and are thread-safe.
    unsafe {
        abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::from_bytes(message.as_bytes()));
    }
}

/// Whether a line at `level` would be written: check before formatting a costly one.
pub fn log_enabled(level: LogLevel) -> bool {
    // SAFETY: takes a plain enum, no pointer.
    unsafe { abi::envoy_dynamic_module_callback_log_enabled(level) }
}

/// A counter defined at configuration time; increment it through a [`Stream`].
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

    /// Defines a counter; Envoy shows it in `/stats` under the dynamic modules' stats
    /// namespace (`dynamicmodulescustom.NAME` unless `metrics_namespace` says otherwise).
    pub fn define_counter(&self, name: &str) -> Result<CounterId, u32> {
        let mut id: usize = 0;
        // SAFETY: (P) for `self.ptr`, (B) for the name; no labels (null, 0); `id` is a live
        // usize Envoy writes once.
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
            Err(result)
        }
    }
}

/// A scheduler for one stream: posts events back to the stream's worker thread, where
/// they arrive as [`super::Filter::on_scheduled`] after the current hook has returned.
/// Deleted when dropped. The ABI allows `commit` from any thread, but this wrapper is
/// not `Send` (nothing needs it yet, and deletion from another thread is undocumented).
pub struct Scheduler {
    ptr: HttpFilterSchedulerModulePtr,
}

impl Scheduler {
    /// Asks Envoy to call `on_http_filter_scheduled(event_id)` on the stream's thread.
    pub fn commit(&self, event_id: u64) {
        // SAFETY: `self.ptr` came from `scheduler_new` and is deleted only in `drop`.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_scheduler_commit(self.ptr, event_id)
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // SAFETY: created by `scheduler_new`, deleted exactly once, here.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_delete(self.ptr) }
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
    /// `ptr` is the filter pointer of the hook that is running (or of the stream whose
    /// `on_http_filter_scheduled` is running), and the value does not outlive that hook.
    pub(crate) unsafe fn new(ptr: HttpFilterEnvoyPtr, replied: &'hook Cell<bool>) -> Self {
        Stream { ptr, replied }
    }

    fn headers(&self, kind: HttpHeaderType) -> Vec<(String, Vec<u8>)> {
        // SAFETY: (P).
        let count =
            unsafe { abi::envoy_dynamic_module_callback_http_get_headers_size(self.ptr, kind) };
        if count == 0 {
            return Vec::new();
        }
        let mut raw = vec![EnvoyHttpHeader::EMPTY; count];
        // SAFETY: (P); `raw` has room for the `count` entries Envoy reported for this map
        // in this same hook (nothing changed it in between).
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(self.ptr, kind, raw.as_mut_ptr())
        };
        if !ok {
            return Vec::new();
        }
        raw.iter()
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
            .collect()
    }

    fn header(&self, kind: HttpHeaderType, name: &str) -> Option<Vec<u8>> {
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
        if !ok || count == 0 {
            return None;
        }
        // SAFETY: Envoy's buffer, valid until the end of this hook; copied now.
        Some(unsafe { copy_envoy_bytes(value) })
    }

    fn set_header(&mut self, kind: HttpHeaderType, name: &str, value: Option<&[u8]>) -> bool {
        let value = value.map_or(ModuleBuffer::NULL, ModuleBuffer::from_bytes);
        // SAFETY: (P), (B) for name and value (a null value asks Envoy to remove).
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.ptr,
                kind,
                ModuleBuffer::from_bytes(name.as_bytes()),
                value,
            )
        }
    }

    /// Every request header, pseudo-headers (`:method`, `:path`, ...) included, in
    /// Envoy's order. Names are lower case; values are bytes (not always UTF-8).
    pub fn request_headers(&self) -> Vec<(String, Vec<u8>)> {
        self.headers(HttpHeaderType::RequestHeader)
    }

    /// The first value of one request header.
    pub fn request_header(&self, name: &str) -> Option<Vec<u8>> {
        self.header(HttpHeaderType::RequestHeader, name)
    }

    /// Sets a request header, replacing every value it had. Works until the request
    /// headers have left this filter: in the header hook, and in later request hooks
    /// when the header hook returned `StopIteration`.
    pub fn set_request_header(&mut self, name: &str, value: &[u8]) -> bool {
        self.set_header(HttpHeaderType::RequestHeader, name, Some(value))
    }

    pub fn remove_request_header(&mut self, name: &str) -> bool {
        self.set_header(HttpHeaderType::RequestHeader, name, None)
    }

    /// The first value of one response header (`:status` included), in response hooks.
    pub fn response_header(&self, name: &str) -> Option<Vec<u8>> {
        self.header(HttpHeaderType::ResponseHeader, name)
    }

    fn body(&self, kind: HttpBodyType) -> Vec<u8> {
        // SAFETY: (P).
        let (size, chunks) = unsafe {
            (
                abi::envoy_dynamic_module_callback_http_get_body_size(self.ptr, kind),
                abi::envoy_dynamic_module_callback_http_get_body_chunks_size(self.ptr, kind),
            )
        };
        if chunks == 0 {
            return Vec::new();
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
            return Vec::new();
        }
        let mut body = Vec::with_capacity(size);
        for slice in slices {
            if !slice.ptr.is_null() && slice.length > 0 {
                // SAFETY: one of the slices Envoy just wrote, valid until the end of this
                // hook; copied now.
                body.extend_from_slice(unsafe {
                    core::slice::from_raw_parts(slice.ptr.cast::<u8>(), slice.length)
                });
            }
        }
        body
    }

    /// The request body received so far: what Envoy buffered in earlier body events
    /// (this filter returned `StopIterationAndBuffer`) followed by the chunk of the
    /// current one. At the end of the stream this is the whole body.
    pub fn request_body(&self) -> Vec<u8> {
        // SAFETY: (P).
        let same = unsafe {
            abi::envoy_dynamic_module_callback_http_received_buffered_request_body(self.ptr)
        };
        if same {
            // An earlier filter resumed with its buffer: "received" is that buffer.
            return self.body(HttpBodyType::ReceivedRequestBody);
        }
        let mut body = self.body(HttpBodyType::BufferedRequestBody);
        body.extend_from_slice(&self.body(HttpBodyType::ReceivedRequestBody));
        body
    }

    /// Replaces the request body received so far with `body`: both the buffered part and
    /// the current chunk are drained, and `body` takes their place (in Envoy's buffer when
    /// there is one, else as the current chunk, which Envoy then forwards or buffers).
    /// Content-Length is the caller's business ([`Stream::set_request_header`]).
    pub fn replace_request_body(&mut self, body: &[u8]) -> bool {
        let kinds = [
            HttpBodyType::BufferedRequestBody,
            HttpBodyType::ReceivedRequestBody,
        ];
        for kind in kinds {
            // SAFETY: (P).
            let size =
                unsafe { abi::envoy_dynamic_module_callback_http_get_body_size(self.ptr, kind) };
            if size > 0 {
                // SAFETY: (P).
                unsafe { abi::envoy_dynamic_module_callback_http_drain_body(self.ptr, kind, size) };
            }
        }
        kinds.into_iter().any(|kind| {
            // SAFETY: (P), (B).
            unsafe {
                abi::envoy_dynamic_module_callback_http_append_body(
                    self.ptr,
                    kind,
                    ModuleBuffer::from_bytes(body),
                )
            }
        })
    }

    /// Answers the request now, instead of the origin: `status`, extra headers, a body,
    /// and `details` for the access log's `%RESPONSE_CODE_DETAILS%` (Envoy's own words
    /// must not contain spaces: use `snake_case`). The hook that calls this should
    /// return a Stop status; later request events for this stream are not delivered.
    pub fn send_reply(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: &[u8],
        details: &str,
    ) {
        self.replied.set(true);
        let mut raw: Vec<ModuleHttpHeader> = headers
            .iter()
            .map(|(name, value)| ModuleHttpHeader {
                key_ptr: name.as_ptr().cast(),
                key_length: name.len(),
                value_ptr: value.as_ptr().cast(),
                value_length: value.len(),
            })
            .collect();
        // SAFETY: (P); (B) for the body, the details and every header, which `headers`
        // borrows for the whole call; `raw` holds `raw.len()` entries.
        unsafe {
            abi::envoy_dynamic_module_callback_http_send_response(
                self.ptr,
                u32::from(status),
                raw.as_mut_ptr(),
                raw.len(),
                ModuleBuffer::from_bytes(body),
                ModuleBuffer::from_bytes(details.as_bytes()),
            );
        }
    }

    /// Whether this stream was answered with [`Stream::send_reply`].
    pub fn replied(&self) -> bool {
        self.replied.get()
    }

    /// A filter state value (a string object): `%FILTER_STATE(KEY:PLAIN)%` in access logs
    /// and header formatters. False when Envoy refused it (read-only key).
    pub fn set_filter_state(&mut self, key: &str, value: &[u8]) -> bool {
        // SAFETY: (P), (B).
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.ptr,
                ModuleBuffer::from_bytes(key.as_bytes()),
                ModuleBuffer::from_bytes(value),
            )
        }
    }

    /// A string in the stream's dynamic metadata: `%DYNAMIC_METADATA(NS:KEY)%`.
    pub fn set_metadata(&mut self, namespace: &str, key: &str, value: &str) {
        // SAFETY: (P), (B).
        unsafe {
            abi::envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
                self.ptr,
                ModuleBuffer::from_bytes(namespace.as_bytes()),
                ModuleBuffer::from_bytes(key.as_bytes()),
                ModuleBuffer::from_bytes(value.as_bytes()),
            );
        }
    }

    /// Adds `value` to a counter of this stream's configuration. False when Envoy does
    /// not know the id.
    pub fn increment(&self, counter: CounterId, value: u64) -> bool {
        // SAFETY: (P); no labels (null, 0), as the counter was defined without any.
        let result = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                self.ptr,
                counter.0,
                core::ptr::null(),
                0,
                value,
            )
        };
        result == abi::METRICS_SUCCESS
    }

    /// The downstream peer as Envoy sees it (`source.address`: "ip:port"), the address
    /// persona-edge checks when `sources.client_address` is "peer".
    pub fn peer_address(&self) -> Option<String> {
        let mut value = EnvoyBuffer::EMPTY;
        // SAFETY: (P); `value` is a live local Envoy writes.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.ptr,
                AttributeId::SourceAddress,
                &mut value,
            )
        };
        if !ok {
            return None;
        }
        // SAFETY: Envoy's buffer, valid until the end of this hook; copied now.
        String::from_utf8(unsafe { copy_envoy_bytes(value) }).ok()
    }

    /// Resumes a request this filter stopped, from a later event of the stream (a
    /// scheduled event, a callout's answer). Not from inside the hook that stopped it:
    /// return `Continue` there instead.
    pub fn continue_request(&mut self) {
        // SAFETY: (P).
        unsafe { abi::envoy_dynamic_module_callback_http_filter_continue_decoding(self.ptr) }
    }

    /// A scheduler that brings events back to this stream's worker thread.
    pub fn scheduler(&self) -> Option<Scheduler> {
        // SAFETY: (P); the returned pointer is owned by the `Scheduler`, which deletes it.
        let ptr = unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_new(self.ptr) };
        (!ptr.is_null()).then_some(Scheduler { ptr })
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
