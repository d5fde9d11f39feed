//! What the duplicate-suppression tests of every runner share (`tests/tests/dedup.rs`
//! for the Worker, `tests/tests/envoy_dedup.rs` for Envoy): events with a chosen id,
//! an origin that can hold requests, and the exact answers given at the edge.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use persona_edge_core::dedup::Admission;

use crate::fixtures::workspace_root;
use crate::http::Response;
use crate::origin::{Answer, Origin};
use crate::workerd::{assert_error, json};

/// The event id of the inquiry-approved fixture.
pub const FIXTURE_EVENT_ID: &str = "evt_hu12bfFCwgdscq2sFQtavC";

/// A Persona event (the inquiry-approved fixture, 16 KB) with the event id `id`.
pub fn event(id: &str) -> Vec<u8> {
    let body = std::fs::read_to_string(
        workspace_root().join("tests/fixtures/events/inquiry-approved.json"),
    )
    .unwrap();
    assert!(body.contains(FIXTURE_EVENT_ID));
    body.replace(FIXTURE_EVENT_ID, id).into_bytes()
}

/// The origin's own answer, passed through (not an answer written at the edge).
pub fn assert_from_origin(r: &Response, status: u16, context: &str) {
    assert_eq!(r.status, status, "{context}: {}", r.text());
    if status == 200 {
        assert_eq!(r.body, Answer::default().body, "{context}: {}", r.text());
    }
}

/// The duplicate answer, byte for byte the core's for a delivery time in `window`.
pub fn assert_duplicate(r: &Response, id: &str, window: (u64, u64), context: &str) {
    assert_eq!(r.status, 200, "{context}: {}", r.text());
    let candidates: Vec<String> = (window.0..=window.1)
        .map(|t| {
            Admission::Duplicate { delivered_at: t }
                .reply(id)
                .unwrap()
                .body
        })
        .collect();
    assert!(
        candidates.contains(&r.text()),
        "{context}: not the core's duplicate answer for {id} delivered in {window:?}: {}",
        r.text()
    );
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.api+json"),
        "{context}"
    );
    let doc = json(&r.body);
    assert_eq!(doc["meta"]["persona_edge"]["result"], "duplicate");
    assert_eq!(doc["meta"]["persona_edge"]["event_id"], id);
}

/// Whether `r` is the duplicate answer for `id` (delivered at any time).
pub fn is_duplicate(r: &Response, id: &str) -> bool {
    r.status == 200
        && serde_json::from_slice::<serde_json::Value>(&r.body).is_ok_and(|doc| {
            doc["meta"]["persona_edge"]["result"] == "duplicate"
                && doc["meta"]["persona_edge"]["event_id"] == id
        })
}

/// Whether `r` is the core's in-flight answer for `id`, byte for byte, with its
/// `Retry-After`.
pub fn is_in_flight(r: &Response, id: &str) -> bool {
    let Some(retry_after) = r.header("retry-after").and_then(|v| v.parse().ok()) else {
        return false;
    };
    let expected = Admission::InFlight { retry_after }.reply(id).unwrap();
    r.status == 409 && r.body == expected.body.as_bytes()
}

/// The in-flight answer, byte for byte the core's; its `Retry-After`.
pub fn assert_in_flight(r: &Response, id: &str, window: u64, context: &str) -> u64 {
    assert_error(r, 409, "delivery_in_flight", context);
    let retry_after: u64 = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("{context}: no Retry-After"))
        .parse()
        .unwrap();
    assert!(
        (1..=window).contains(&retry_after),
        "{context}: Retry-After {retry_after}"
    );
    let expected = Admission::InFlight { retry_after }.reply(id).unwrap();
    assert_eq!(r.text(), expected.body, "{context}");
    retry_after
}

/// An origin that can hold requests: the next `hold(n)` requests to arrive wait
/// until `release()`, so an attempt stays in flight as long as a test needs.
#[derive(Default)]
pub struct Hold {
    state: Mutex<(usize, bool)>,
    changed: Condvar,
    arrivals: AtomicUsize,
}

impl Hold {
    /// A recording origin with the default answer, holding requests as told.
    pub fn origin(self: &Arc<Self>) -> Origin {
        let hold = self.clone();
        Origin::start_on(
            0,
            Answer::default(),
            Some(Arc::new(move |_| {
                hold.arrivals.fetch_add(1, Ordering::SeqCst);
                let mut state = hold.state.lock().unwrap();
                if state.0 == 0 {
                    return;
                }
                state.0 -= 1;
                state.1 = false;
                while !state.1 {
                    let (next, timeout) = hold
                        .changed
                        .wait_timeout(state, Duration::from_secs(60))
                        .unwrap();
                    state = next;
                    assert!(!timeout.timed_out(), "a held request was never released");
                }
            })),
        )
    }

    pub fn hold(&self, n: usize) {
        self.state.lock().unwrap().0 = n;
    }

    pub fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    /// Requests that reached the origin, held ones included.
    pub fn arrivals(&self) -> usize {
        self.arrivals.load(Ordering::SeqCst)
    }

    pub fn wait_for_arrivals(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.arrivals() < n {
            assert!(
                Instant::now() < deadline,
                "{} of {n} requests reached the origin",
                self.arrivals()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}
