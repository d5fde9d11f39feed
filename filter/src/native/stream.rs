//! The driver's [`Host`] over one stream's [`Stream`]: every method one or a few of the
//! C ABI's callbacks. The `unsafe` blocks rely on the facts (P) and (B) stated in
//! `envoy.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

use persona_edge_core::{Admission, Admit, DedupSettings, Level, Reply, Settlement};

use super::abi::{
    self, AttributeId, EnvoyBuffer, EnvoyHttpHeader, HttpBodyType, HttpHeaderType, LogLevel,
    ModuleBuffer, ModuleHttpHeader,
};
use super::envoy::{self, CounterId, Stream, copy_envoy_bytes, log};
use super::table::table;
use crate::host::{Host, HostError};

/// The proxy-wasm filter's filter state keys carry Envoy's `wasm.` prefix; the module
/// sets the very same keys, so one access log format serves both packagings.
const STATE_KEY_PREFIX: &str = "wasm.";
/// `%RESPONSE_CODE_DETAILS%` of the module's own replies.
const REPLY_DETAILS: &str = "persona_edge";

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
        unsafe { abi::envoy_dynamic_module_callback_log_enabled(envoy::level(level)) }
    }

    fn log(&mut self, level: Level, message: &str) {
        log(envoy::level(level), message);
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

    /// The process's table (`table.rs`), shared by every worker thread.
    fn admission(&mut self, token: &Admit<'_>) -> Option<Admission> {
        Some(token.admit_slots(table()))
    }

    fn settle(&mut self, settlement: &Settlement, settings: &DedupSettings, now: u64) {
        settlement.apply_slots(table(), settings, now);
    }
}
