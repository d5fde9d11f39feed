//! The benchmark loop of `scripts/bench.sh`'s "core in wasm" measurement: the core's
//! `Policy::process_body` with the blocklist and the events of
//! `shared/benches/process.rs`, the same code for both sides of the comparison.
//!
//! - Natively, [`Bench`] is called by the driver (`src/main.rs`).
//! - Compiled to `wasm32-unknown-unknown` (a cdylib, the workspace release profile, the
//!   core without `std`: what the Envoy filter is built with), the module exports
//!   `event_buffer`, `bench_new` and `bench_run`, and `run.mjs` times `bench_run` in
//!   Node's V8 with `process.hrtime.bigint()`.
//!
//! Both sides return the same checksum for the same event, so they did the same work.
//! The crate uses `std` as the filter does (its allocator, dlmalloc on wasm32, is the
//! filter's too); the core itself is built without `std`, as in the filter.

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use core::hint::black_box;

use persona_edge_core::{Outcome, Pending, Policy, RequestHead, signature_header};

/// The blocklist and the events of `shared/benches/process.rs`, from the same file.
#[path = "../../../shared/benches/workload.rs"]
pub mod workload;

use workload::BLOCKLIST;

/// The secret and the clock of the signed variant (the native bench's `checks`).
const SECRET: &str = "wbhsec_bench";
const NOW: u64 = 1_700_000_000;

/// One event under the benchmark configuration, ready to be processed.
pub struct Bench {
    policy: Policy,
    pending: Pending,
    event: Vec<u8>,
    now: u64,
}

impl Bench {
    /// The configuration of the native bench's `process`: the blocklist, signature
    /// verification off; with `signed`, that of its `verify_and_process_20KB`: the
    /// same with a secret, and the event signed. `None` when the core refuses it or
    /// the event is not forwarded.
    pub fn new(event: Vec<u8>, signed: bool) -> Option<Bench> {
        let list: Vec<_> = BLOCKLIST.iter().map(|e| format!("\"{e}\"")).collect();
        let signature = if signed {
            format!("{{\"secrets\":[\"{SECRET}\"]}}")
        } else {
            "{\"required\":false}".into()
        };
        let config = format!(
            "{{\"signature\":{signature},\"blocklist\":[{}]}}",
            list.join(",")
        );
        let policy = Policy::from_json(config.as_bytes()).ok()?;
        let header = signature_header(SECRET, NOW, &event);
        let mut headers = alloc::vec![("content-type", "application/json")];
        if signed {
            headers.push(("persona-signature", &header));
        }
        let head = RequestHead {
            method: "POST",
            headers: &headers,
            peer: Some("35.232.44.140:443"),
        };
        let pending = policy.check_head(&head).ok()?;
        let bench = Bench {
            policy,
            pending,
            event,
            now: if signed { NOW } else { 0 },
        };
        (bench.run(1) != 0).then_some(bench)
    }

    /// Processes the event `iterations` times. The checksum: the forwarded lengths
    /// summed, mixed with an FNV-1a hash of the last forwarded body; 0 when the event
    /// was not forwarded.
    pub fn run(&self, iterations: u32) -> u32 {
        let mut lengths: u32 = 0;
        let mut hash: u32 = 0x811c_9dc5;
        for i in 0..iterations {
            match self
                .policy
                .process_body(&self.pending, black_box(&self.event), self.now)
            {
                Outcome::Forward(f) => {
                    lengths = lengths.wrapping_add(u32::try_from(f.body.len()).unwrap_or(0));
                    if i + 1 == iterations {
                        for b in f.body.iter() {
                            hash = (hash ^ u32::from(*b)).wrapping_mul(0x0100_0193);
                        }
                    }
                    black_box(&f);
                }
                _ => return 0,
            }
        }
        lengths ^ hash
    }
}

/// The exports Node calls. The module is single-threaded and `run.mjs` follows the
/// protocol: `event_buffer(len)`, write the event there, `bench_new(ptr, len)` (takes
/// the buffer back and returns a handle, 0 on failure), then `bench_run(handle, n)`.
#[cfg(target_arch = "wasm32")]
mod exports {
    use super::Bench;
    use alloc::boxed::Box;
    use alloc::vec;

    /// A buffer of `len` zero bytes for the host to fill; handed back to `bench_new`.
    #[unsafe(no_mangle)]
    pub extern "C" fn event_buffer(len: usize) -> *mut u8 {
        Box::into_raw(vec![0u8; len].into_boxed_slice()).cast::<u8>()
    }

    /// Takes back the buffer from `event_buffer(len)` and prepares a [`Bench`] of it
    /// (`signed` non-zero: with signature verification).
    ///
    /// # Safety
    /// `ptr` and `len` must come from one `event_buffer(len)` call, used once.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bench_new(ptr: *mut u8, len: usize, signed: u32) -> *mut Bench {
        // SAFETY: the caller passes back what `event_buffer` leaked, exactly once.
        let event = unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr, len)) };
        match Bench::new(event.into_vec(), signed != 0) {
            Some(bench) => Box::into_raw(Box::new(bench)),
            None => core::ptr::null_mut(),
        }
    }

    /// [`Bench::run`] on a handle from `bench_new`.
    ///
    /// # Safety
    /// `bench` must be a non-null handle returned by `bench_new`.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn bench_run(bench: *const Bench, iterations: u32) -> u32 {
        // SAFETY: a live handle from `bench_new`, never freed.
        match unsafe { bench.as_ref() } {
            Some(b) => b.run(iterations),
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_event_is_forwarded_and_stripped() {
        let event = br#"{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.approved","created-at":"2026-01-01T00:00:00.000Z","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{"name-first":"Ann","status":"approved"}}}}}}"#;
        let bench = Bench::new(event.to_vec(), false);
        assert!(bench.is_some_and(|b| b.run(3) == b.run(3)));
        let signed = Bench::new(event.to_vec(), true).map(|b| b.run(1));
        assert_eq!(signed, Bench::new(event.to_vec(), false).map(|b| b.run(1)));
    }
}
