//! [`Host`] over `proxy_wasm::hostcalls`. The hostcalls return errors (the SDK's trait
//! helpers would panic on them), and request headers are read as bytes, so a header
//! value that is not UTF-8 cannot panic the SDK.

use std::time::UNIX_EPOCH;

use persona_edge_core::{Admission, Admit, DedupSettings, Level, Reply, Settlement};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, LogLevel, MapType, Status};

use crate::host::{self, Host, HostError};
use crate::shared_data::{SetError, SharedData, SharedDataSlots};

/// The proxy-wasm ABI has no per-stream handle: every call is about the stream whose
/// callback is running.
pub struct WasmHost;

pub fn log(level: LogLevel, message: &str) {
    let _ = hostcalls::log(level, message);
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

fn failed(what: Status) -> HostError {
    format!("{what:?}")
}

/// The shared data of this VM's `vm_id`: one store for every worker thread's VM
/// (`shared_data.rs` has the protocol over it).
struct VmSharedData;

impl SharedData for VmSharedData {
    fn get(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        hostcalls::get_shared_data(key).ok()
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        match hostcalls::set_shared_data(key, Some(value), Some(cas)) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => Err(SetError::CasMismatch),
            Err(_) => Err(SetError::Failed),
        }
    }
}

impl Host for WasmHost {
    type CounterId = u32;

    fn sets_headers_after_body(&self) -> bool {
        false
    }

    fn peer_address(&mut self) -> Option<String> {
        match hostcalls::get_property(vec!["source", "address"]) {
            Ok(Some(bytes)) => String::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, HostError> {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders).map_err(failed)
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).map_err(failed)
    }

    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(value)).map_err(failed)
    }

    fn request_body(&mut self, size: usize) -> Result<Vec<u8>, HostError> {
        hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size)
            .map(Option::unwrap_or_default)
            .map_err(failed)
    }

    fn replace_request_body(&mut self, size: usize, body: &[u8]) -> Result<(), HostError> {
        hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, body).map_err(failed)
    }

    fn send_reply(&mut self, reply: &Reply) {
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let body = (!reply.body.is_empty()).then_some(reply.body.as_bytes());
        if let Err(status) = hostcalls::send_http_response(u32::from(reply.status), headers, body) {
            log(
                LogLevel::Error,
                &format!(
                    "persona-edge: cannot send the {} reply: {status:?}",
                    reply.status
                ),
            );
        }
    }

    fn set_filter_state(&mut self, key: &str, value: &str) {
        if let Err(status) = hostcalls::set_property(vec![key], Some(value.as_bytes())) {
            log(
                LogLevel::Warn,
                &format!("persona-edge: cannot set filter state {key}: {status:?}"),
            );
        }
    }

    fn increment_counter(&mut self, id: u32, amount: u64) {
        let _ = hostcalls::increment_metric(id, i64::try_from(amount).unwrap_or(i64::MAX));
    }

    /// Envoy drops what its log level hides; asking first would cost a host call too.
    fn log_enabled(&self, _level: Level) -> bool {
        true
    }

    fn log(&mut self, level: Level, message: &str) {
        log(self::level(level), message);
    }

    fn now(&mut self) -> Result<u64, HostError> {
        let now = hostcalls::get_current_time().map_err(failed)?;
        now.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| String::from("the clock is before 1970"))
    }

    fn response_status(&mut self) -> Option<u16> {
        hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status")
            .ok()
            .flatten()?
            .parse()
            .ok()
    }

    fn admission(&mut self, token: &Admit<'_>) -> Option<Admission> {
        Some(token.admit_slots(&SharedDataSlots(VmSharedData)))
    }

    fn settle(&mut self, settlement: &Settlement, settings: &DedupSettings, now: u64) {
        settlement.apply_slots(&SharedDataSlots(VmSharedData), settings, now);
    }
}
