//! Duplicate suppression by event id: each Persona event reaches the origin once.
//!
//! Persona retries a delivery until the receiver answers 200, 201, 202 or 204 within
//! 5 seconds (up to 7 more times over about two days, and an operator can retry by hand
//! later). Every attempt carries the same event id (`data.id`) and a fresh signature
//! timestamp, so the replay window does not catch them. This module decides, for a
//! delivery that passed every other check, from what was stored for its event id:
//!
//! - nothing stored (or an expired record): [`Admission::Forward`], and the host stores
//!   [`Claim::record`] (in flight) before forwarding;
//! - delivered within `ttl_seconds`: [`Admission::Duplicate`], answered 200 at the edge;
//! - in flight (forwarded less than `in_flight_seconds` ago): [`Admission::InFlight`],
//!   answered 409 with `Retry-After` so Persona retries later, while the first attempt
//!   can still succeed.
//!
//! After the origin's answer, [`settle`] gives the record to store: delivered on a
//! status Persona counts as success ([`origin_succeeded`]), nothing otherwise (so
//! Persona's retry goes through).
//!
//! Storage is the host's. Pure like the rest of the crate: `now` (Unix seconds) is
//! passed in. Every failure leans towards forwarding: a lost or garbled record, a
//! slot taken by another event, a compare-and-swap that keeps failing all let a
//! duplicate through; none suppresses an event that was not delivered.
//!
//! Two shapes of storage:
//! - one record per event id (the Cloudflare Worker's Durable Object): [`admit`],
//!   [`settle`], [`encode`]/[`decode`] directly;
//! - a fixed number of slots shared by every event (the Envoy filter's proxy-wasm
//!   shared data): [`claim`] and [`record_answer`] over a [`SlotStore`]. A slot holds
//!   the full event id, so two events that hash to the same slot evict each other
//!   (a duplicate of the evicted one may get through); they never suppress each other.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::delivery::{Reply, Verdict};
use crate::rejection::{ErrorCode, JSON_API_CONTENT_TYPE, Rejection};

/// Longer than Persona's whole retry schedule (about 2.1 days from the first attempt).
pub const DEFAULT_TTL_SECONDS: u64 = 3 * 24 * 3600;
/// Persona waits 5 s for an answer and retries after about 3 s, then 64 s. 30 s covers
/// the first attempt and an origin that is still working after Persona gave up, so
/// the 3 s retry is deferred; it ends before the 64 s retry, which goes through when
/// the first attempt died without an answer being recorded.
pub const DEFAULT_IN_FLIGHT_SECONDS: u64 = 30;
/// Slots of the Envoy filter's table: a record is at most [`MAX_RECORD_BYTES`].
pub const DEFAULT_CAPACITY: u32 = 65_536;

/// Bounds of the configuration fields (each at least 1 second or 1 slot, so that tests
/// can use short windows).
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;
pub const MAX_IN_FLIGHT_SECONDS: u64 = 3600;
pub const MAX_CAPACITY: u32 = 1 << 20;

/// The longest event id a record holds: the envelope accepts ids up to this length.
pub const MAX_EVENT_ID_BYTES: usize = 256;
/// Version byte, kind byte, 8-byte time, 2-byte id length, the event id.
pub const MAX_RECORD_BYTES: usize = HEADER_BYTES + MAX_EVENT_ID_BYTES;
const HEADER_BYTES: usize = 12;
const FORMAT_VERSION: u8 = 1;
const KIND_IN_FLIGHT: u8 = 1;
const KIND_DELIVERED: u8 = 2;

/// How many times [`claim`] and [`record_answer`] reload a slot that changed under
/// them before giving up (towards forwarding).
pub const MAX_CAS_ATTEMPTS: usize = 8;

/// Counter names, one per answer given at the edge (the Envoy filter prefixes them).
pub const COUNTER_DUPLICATE: &str = "deduplicated.duplicate";
pub const COUNTER_IN_FLIGHT: &str = "deduplicated.in_flight";

/// The `dedup` section of the configuration, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupSettings {
    /// How long a delivered event is answered as a duplicate.
    pub ttl_seconds: u64,
    /// How long a forwarded attempt without an answer holds off the others.
    pub in_flight_seconds: u64,
    /// Slots of a fixed-size table (the Envoy filter); each event id has its own
    /// record in the Worker, which ignores it.
    pub capacity: u32,
}

impl Default for DedupSettings {
    fn default() -> Self {
        DedupSettings {
            ttl_seconds: DEFAULT_TTL_SECONDS,
            in_flight_seconds: DEFAULT_IN_FLIGHT_SECONDS,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

/// What is stored for an event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// Forwarded at `since`, no answer recorded yet.
    InFlight { since: u64 },
    /// The origin answered with success at `at`.
    Delivered { at: u64 },
}

impl Record {
    /// When the record stops mattering: a host may delete it from then on (the
    /// Worker's Durable Object sets its alarm there).
    pub fn expires_at(&self, settings: &DedupSettings) -> u64 {
        match *self {
            Record::InFlight { since } => since.saturating_add(settings.in_flight_seconds),
            Record::Delivered { at } => at.saturating_add(settings.ttl_seconds),
        }
    }
}

/// The right to forward one attempt; [`settle`] or [`record_answer`] turns it into the
/// record to keep once the origin answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    /// When the attempt was forwarded: the in-flight record holds the same time, which
    /// is how an answer finds its own claim (and not a later attempt's).
    pub since: u64,
}

impl Claim {
    /// The record to store before forwarding.
    pub fn record(&self) -> Record {
        Record::InFlight { since: self.since }
    }
}

/// What to do with a delivery, given what is stored for its event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Forward it, holding `claim` (store [`Claim::record`] first).
    Forward { claim: Claim },
    /// Delivered at `delivered_at`: answer 200 at the edge, forward nothing.
    Duplicate { delivered_at: u64 },
    /// Another attempt is in flight: answer 409, forward nothing; it stops being in
    /// flight after `retry_after` seconds at most.
    InFlight { retry_after: u64 },
}

/// The decision for a delivery of an event, given the record stored for its id
/// (`None`: nothing, or a record of another id).
pub fn admit(settings: &DedupSettings, stored: Option<&Record>, now: u64) -> Admission {
    let forward = Admission::Forward {
        claim: Claim { since: now },
    };
    match stored.copied() {
        None => forward,
        // A record far in the future (a clock that jumped back, a corrupted value)
        // is as good as none: it must not hold deliveries off for longer than the
        // window it stands for.
        Some(Record::Delivered { at }) if now.abs_diff(at) < settings.ttl_seconds => {
            Admission::Duplicate { delivered_at: at }
        }
        Some(Record::InFlight { since }) if now.abs_diff(since) < settings.in_flight_seconds => {
            let until = since.saturating_add(settings.in_flight_seconds);
            Admission::InFlight {
                retry_after: until
                    .saturating_sub(now)
                    .clamp(1, settings.in_flight_seconds.max(1)),
            }
        }
        // Expired: the event was delivered long ago (a manual retry after the TTL), or
        // the attempt in flight died without an answer.
        Some(_) => forward,
    }
}

/// The record to keep once the origin answered the attempt holding `claim`: delivered
/// when it succeeded, none (clear) otherwise, so that Persona's retry goes through.
pub fn settle(claim: Claim, origin_succeeded: bool, now: u64) -> Option<Record> {
    let _ = claim;
    origin_succeeded.then_some(Record::Delivered { at: now })
}

/// Whether Persona counts the origin's status as a delivery: 200, 201, 202 or 204.
/// Anything else is retried by Persona, so it must not be recorded as delivered.
pub fn origin_succeeded(status: u16) -> bool {
    matches!(status, 200 | 201 | 202 | 204)
}

// ---------------------------------------------------------------------------
// The stored form

/// The bytes stored for `event_id`: version, kind, time, id length (little-endian),
/// the id.
/// `None` when the id cannot be held (empty, longer than [`MAX_EVENT_ID_BYTES`], not
/// printable ASCII; the envelope never passes such an id on).
pub fn encode(event_id: &str, record: &Record) -> Option<Vec<u8>> {
    if !is_event_id(event_id.as_bytes()) {
        return None;
    }
    let (kind, time) = match *record {
        Record::InFlight { since } => (KIND_IN_FLIGHT, since),
        Record::Delivered { at } => (KIND_DELIVERED, at),
    };
    let mut out = Vec::with_capacity(HEADER_BYTES + event_id.len());
    out.push(FORMAT_VERSION);
    out.push(kind);
    out.extend_from_slice(&time.to_le_bytes());
    out.extend_from_slice(&(event_id.len() as u16).to_le_bytes());
    out.extend_from_slice(event_id.as_bytes());
    Some(out)
}

/// The event id and record in `bytes`, or `None` (unseen) for anything [`encode`]
/// did not write: empty, truncated, extended, another version, garbage.
pub fn decode(bytes: &[u8]) -> Option<(&str, Record)> {
    let (&version, rest) = bytes.split_first()?;
    let (&kind, rest) = rest.split_first()?;
    let (time, rest) = rest.split_first_chunk::<8>()?;
    let (length, id) = rest.split_first_chunk::<2>()?;
    let time = u64::from_le_bytes(*time);
    let length = usize::from(u16::from_le_bytes(*length));
    if version != FORMAT_VERSION || id.len() != length || !is_event_id(id) {
        return None;
    }
    let record = match kind {
        KIND_IN_FLIGHT => Record::InFlight { since: time },
        KIND_DELIVERED => Record::Delivered { at: time },
        _ => return None,
    };
    Some((core::str::from_utf8(id).ok()?, record))
}

/// The record in `bytes` if it is `event_id`'s: a record of another id is none.
pub fn decode_for(bytes: &[u8], event_id: &str) -> Option<Record> {
    decode(bytes)
        .filter(|(id, _)| *id == event_id)
        .map(|(_, record)| record)
}

fn is_event_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_EVENT_ID_BYTES && id.iter().all(|b| (0x20..0x7f).contains(b))
}

// ---------------------------------------------------------------------------
// Replies at the edge

impl Admission {
    /// The reply that answers the delivery at the edge, or `None` to forward it.
    /// Duplicate: 200 with a JSON:API document saying so (Persona stops retrying).
    /// In flight: 409 `delivery_in_flight` with `Retry-After` (Persona retries later).
    pub fn reply(&self, event_id: &str) -> Option<Reply> {
        match *self {
            Admission::Forward { .. } => None,
            Admission::Duplicate { delivered_at } => {
                let mut body = String::with_capacity(120 + event_id.len());
                body.push_str(
                    "{\"meta\":{\"persona_edge\":{\"result\":\"duplicate\",\"event_id\":",
                );
                crate::json::push_string(&mut body, event_id);
                body.push_str(",\"delivered_at\":\"");
                push_rfc3339(&mut body, delivered_at);
                body.push_str("\"}}}");
                Some(Reply {
                    status: 200,
                    headers: alloc::vec![("content-type", JSON_API_CONTENT_TYPE.to_string())],
                    body,
                })
            }
            Admission::InFlight { retry_after } => {
                let mut reply = Rejection::new(
                    ErrorCode::DeliveryInFlight,
                    format!(
                        "an earlier attempt of event {} is being delivered; retry after {retry_after} seconds",
                        crate::json::Quoted(event_id)
                    ),
                )
                .reply();
                reply.headers.push(("retry-after", retry_after.to_string()));
                Some(reply)
            }
        }
    }

    /// The counter an answer at the edge adds to (none for a forward).
    pub fn counter(&self) -> Option<&'static str> {
        match self {
            Admission::Forward { .. } => None,
            Admission::Duplicate { .. } => Some(COUNTER_DUPLICATE),
            Admission::InFlight { .. } => Some(COUNTER_IN_FLIGHT),
        }
    }
}

impl Admission {
    /// The decision as filter state, the shadow-mode decision header and log lines
    /// spell it, next to [`Verdict::as_str`]'s: `forward`, `duplicate; status=200`, or
    /// `reject; status=409; code=delivery_in_flight`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Admission::Forward { .. } => Verdict::Forward.as_str(),
            Admission::Duplicate { .. } => "duplicate; status=200",
            Admission::InFlight { .. } => Verdict::Reject(ErrorCode::DeliveryInFlight).as_str(),
        }
    }
}

impl fmt::Display for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (proleptic Gregorian, UTC).
pub(crate) fn push_rfc3339(out: &mut String, secs: u64) {
    use core::fmt::Write;
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    // Days since 1970-01-01 to a civil date, counting in 400-year eras from 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    );
}

// ---------------------------------------------------------------------------
// A fixed table of slots (the Envoy filter)

/// Why a [`SlotStore::store`] did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The slot changed since the load that gave the version: load and decide again.
    Conflict,
    /// The host could not store at all: give up (towards forwarding).
    Unavailable,
}

/// A table of `capacity` slots, each holding bytes and a version for compare-and-swap
/// (proxy-wasm shared data: one key per slot, its `cas`).
pub trait SlotStore {
    /// Changes with every store to a slot, including the first one.
    type Version: Copy;

    /// The bytes in `slot` (`None` or empty: nothing) and their version.
    fn load(&self, slot: u32) -> (Option<Vec<u8>>, Self::Version);

    /// Writes `value` (empty: clears) into `slot` if it is still at `expected`. Must
    /// fail with [`StoreError::Conflict`] when another store happened since, also when
    /// the slot was empty: a host whose empty slots have no version (proxy-wasm's
    /// `cas` 0 does not check) writes every slot once, empty, before use.
    fn store(&self, slot: u32, value: &[u8], expected: Self::Version) -> Result<(), StoreError>;
}

/// The slot of `event_id` in a table of `capacity` slots: FNV-1a (64 bit) of the id,
/// stable across hosts, processes and versions. Ids are Persona's (only signed
/// deliveries get here), so a sender cannot aim many ids at one slot.
pub fn slot_of(event_id: &str, capacity: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in event_id.as_bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(capacity.max(1))) as u32
}

/// [`admit`] against a slot table: claims the event's slot with compare-and-swap when
/// the decision is to forward. A slot holding another event id counts as empty and is
/// overwritten (that event is evicted: a duplicate of it may get through later). When
/// the slot keeps changing under it, or cannot be written, it forwards without
/// recording: a duplicate may get through, no event is lost.
pub fn claim<S: SlotStore + ?Sized>(
    store: &S,
    settings: &DedupSettings,
    event_id: &str,
    now: u64,
) -> Admission {
    let slot = slot_of(event_id, settings.capacity);
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (bytes, version) = store.load(slot);
        let stored = bytes.as_deref().and_then(|b| decode_for(b, event_id));
        let admission = admit(settings, stored.as_ref(), now);
        let Admission::Forward { claim } = admission else {
            return admission;
        };
        let Some(value) = encode(event_id, &claim.record()) else {
            return admission;
        };
        match store.store(slot, &value, version) {
            Ok(()) | Err(StoreError::Unavailable) => return admission,
            Err(StoreError::Conflict) => continue,
        }
    }
    Admission::Forward {
        claim: Claim { since: now },
    }
}

/// [`settle`] against a slot table: records the origin's answer to the attempt that
/// holds `claim`, only if the event's slot still holds that claim (not another
/// event, nor a later attempt after this one's window passed). Whether it was recorded.
pub fn record_answer<S: SlotStore + ?Sized>(
    store: &S,
    settings: &DedupSettings,
    event_id: &str,
    claim: Claim,
    succeeded: bool,
    now: u64,
) -> bool {
    let slot = slot_of(event_id, settings.capacity);
    let value = match settle(claim, succeeded, now) {
        Some(record) => match encode(event_id, &record) {
            Some(value) => value,
            None => return false,
        },
        None => Vec::new(),
    };
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (bytes, version) = store.load(slot);
        let stored = bytes.as_deref().and_then(|b| decode_for(b, event_id));
        if stored != Some(claim.record()) {
            return false;
        }
        match store.store(slot, &value, version) {
            Ok(()) => return true,
            Err(StoreError::Unavailable) => return false,
            Err(StoreError::Conflict) => continue,
        }
    }
    false
}

/// [`admit`] against a slot table without claiming anything: what enforce mode would
/// decide (shadow mode, which forwards every delivery and only reports).
pub fn peek<S: SlotStore + ?Sized>(
    store: &S,
    settings: &DedupSettings,
    event_id: &str,
    now: u64,
) -> Admission {
    let (bytes, _) = store.load(slot_of(event_id, settings.capacity));
    let stored = bytes.as_deref().and_then(|b| decode_for(b, event_id));
    admit(settings, stored.as_ref(), now)
}

/// Records `event_id` as delivered at `now` without a claim (shadow mode, which claims
/// nothing), whatever its slot held: like [`claim`], a slot of another event is taken
/// over. Whether it was recorded.
pub fn record_delivered<S: SlotStore + ?Sized>(
    store: &S,
    settings: &DedupSettings,
    event_id: &str,
    now: u64,
) -> bool {
    let slot = slot_of(event_id, settings.capacity);
    let Some(value) = encode(event_id, &Record::Delivered { at: now }) else {
        return false;
    };
    for _ in 0..MAX_CAS_ATTEMPTS {
        let (_, version) = store.load(slot);
        match store.store(slot, &value, version) {
            Ok(()) => return true,
            Err(StoreError::Unavailable) => return false,
            Err(StoreError::Conflict) => continue,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;
    use core::cell::RefCell;
    use proptest::prelude::*;

    const S: DedupSettings = DedupSettings {
        ttl_seconds: 100,
        in_flight_seconds: 10,
        capacity: 4,
    };

    #[test]
    fn three_states() {
        let now = 1_000;
        let Admission::Forward { claim } = admit(&S, None, now) else {
            panic!()
        };
        assert_eq!(claim.record(), Record::InFlight { since: now });
        // In flight: held off for the rest of the window, at least 1 s.
        assert_eq!(
            admit(&S, Some(&claim.record()), now),
            Admission::InFlight { retry_after: 10 }
        );
        assert_eq!(
            admit(&S, Some(&claim.record()), now + 9),
            Admission::InFlight { retry_after: 1 }
        );
        // The attempt died: the next one goes through.
        assert!(matches!(
            admit(&S, Some(&claim.record()), now + 10),
            Admission::Forward {
                claim: Claim { since: 1_010 }
            }
        ));
        // Delivered: a duplicate until the TTL passes.
        let delivered = settle(claim, true, now + 2).unwrap();
        assert_eq!(delivered, Record::Delivered { at: now + 2 });
        assert_eq!(
            admit(&S, Some(&delivered), now + 101),
            Admission::Duplicate {
                delivered_at: now + 2
            }
        );
        assert!(matches!(
            admit(&S, Some(&delivered), now + 102),
            Admission::Forward { .. }
        ));
        // Failed: cleared.
        assert_eq!(settle(claim, false, now + 2), None);
    }

    #[test]
    fn records_from_the_future_hold_no_longer_than_their_window() {
        let now = 1_000;
        // Slightly ahead (another host's clock): still counts.
        assert_eq!(
            admit(&S, Some(&Record::InFlight { since: now + 3 }), now),
            Admission::InFlight { retry_after: 10 }
        );
        assert!(matches!(
            admit(&S, Some(&Record::Delivered { at: now + 50 }), now),
            Admission::Duplicate { .. }
        ));
        // Far ahead: as good as none.
        for record in [
            Record::InFlight { since: now + 10 },
            Record::InFlight { since: u64::MAX },
            Record::Delivered { at: now + 100 },
            Record::Delivered { at: u64::MAX },
        ] {
            assert!(
                matches!(admit(&S, Some(&record), now), Admission::Forward { .. }),
                "{record:?}"
            );
        }
    }

    #[test]
    fn origin_success_is_personas() {
        for s in [200, 201, 202, 204] {
            assert!(origin_succeeded(s));
        }
        for s in [
            0, 100, 203, 205, 206, 301, 304, 400, 409, 429, 500, 502, 503,
        ] {
            assert!(!origin_succeeded(s), "{s}");
        }
    }

    #[test]
    fn encoding_round_trips_and_refuses_garbage() {
        for record in [
            Record::InFlight { since: 0 },
            Record::InFlight {
                since: 1_767_225_600,
            },
            Record::Delivered { at: u64::MAX },
        ] {
            let bytes = encode("evt_ABC123", &record).unwrap();
            assert_eq!(bytes.len(), 12 + 10);
            assert_eq!(decode(&bytes), Some(("evt_ABC123", record)));
            assert_eq!(decode_for(&bytes, "evt_ABC123"), Some(record));
            assert_eq!(decode_for(&bytes, "evt_ABC124"), None);
            // Any truncation or extension, another version or kind: unseen.
            for cut in 0..bytes.len() {
                assert_eq!(decode(&bytes[..cut]), None, "{cut}");
            }
            let mut longer = bytes.clone();
            longer.push(b'x');
            assert_eq!(decode(&longer), None);
            let mut other = bytes.clone();
            other[0] = 2;
            assert_eq!(decode(&other), None);
            let mut other = bytes.clone();
            other[1] = 3;
            assert_eq!(decode(&other), None);
        }
        let long = "e".repeat(MAX_EVENT_ID_BYTES);
        let bytes = encode(&long, &Record::Delivered { at: 1 }).unwrap();
        assert_eq!(bytes.len(), MAX_RECORD_BYTES);
        for bad in ["", "evt\n1", "évt", &"e".repeat(MAX_EVENT_ID_BYTES + 1)] {
            assert_eq!(encode(bad, &Record::Delivered { at: 1 }), None, "{bad:?}");
        }
    }

    #[test]
    fn replies() {
        let dup = Admission::Duplicate {
            delivered_at: 1_767_225_600,
        };
        let reply = dup.reply("evt_1").unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.headers,
            [("content-type", JSON_API_CONTENT_TYPE.to_string())]
        );
        assert_eq!(
            reply.body,
            r#"{"meta":{"persona_edge":{"result":"duplicate","event_id":"evt_1","delivered_at":"2026-01-01T00:00:00Z"}}}"#
        );
        let busy = Admission::InFlight { retry_after: 7 }
            .reply("evt_1")
            .unwrap();
        assert_eq!(busy.status, 409);
        assert_eq!(
            busy.headers,
            [
                ("content-type", JSON_API_CONTENT_TYPE.to_string()),
                ("retry-after", "7".to_string())
            ]
        );
        assert_eq!(
            busy.body,
            r#"{"errors":[{"status":"409","code":"delivery_in_flight","title":"Delivery in flight","detail":"an earlier attempt of event \"evt_1\" is being delivered; retry after 7 seconds"}]}"#
        );
        let forward = Admission::Forward {
            claim: Claim { since: 1 },
        };
        assert_eq!(forward.reply("evt_1"), None);
        assert_eq!(forward.counter(), None);
        assert_eq!(dup.counter(), Some("deduplicated.duplicate"));
        assert_eq!(
            Admission::InFlight { retry_after: 1 }.counter(),
            Some("deduplicated.in_flight")
        );
        assert_eq!(forward.to_string(), "forward");
        assert_eq!(dup.to_string(), "duplicate; status=200");
        assert_eq!(
            Admission::InFlight { retry_after: 1 }.to_string(),
            "reject; status=409; code=delivery_in_flight"
        );
    }

    #[test]
    fn dates() {
        for (secs, text) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (1_767_225_599, "2025-12-31T23:59:59Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
            (253_402_300_799, "9999-12-31T23:59:59Z"),
        ] {
            let mut out = String::new();
            push_rfc3339(&mut out, secs);
            assert_eq!(out, text, "{secs}");
        }
    }

    #[test]
    fn slots_are_stable_and_in_range() {
        // Pinned: hosts of different versions share a table across a reload.
        assert_eq!(slot_of("evt_1", 65_536), slot_of("evt_1", 65_536));
        assert_eq!(
            slot_of("", u32::MAX),
            (0xcbf2_9ce4_8422_2325_u64 % u64::from(u32::MAX)) as u32
        );
        assert_eq!(
            slot_of("a", 1 << 20),
            (0xaf63_dc4c_8601_ec8c_u64 % (1 << 20)) as u32
        );
        assert_eq!(slot_of("evt_1", 0), 0);
        assert_eq!(slot_of("evt_1", 1), 0);
    }

    /// Runs once, inside the next store, before it checks the version.
    type Interleave = alloc::boxed::Box<dyn FnMut(&FakeStore)>;

    /// A slot table in memory, with a version per slot; `interleave` runs before each
    /// store (another claimer getting in between a load and a store).
    #[derive(Default)]
    struct FakeStore {
        slots: RefCell<BTreeMap<u32, (Vec<u8>, u64)>>,
        stores: RefCell<usize>,
        unavailable: bool,
        interleave: RefCell<Option<Interleave>>,
    }

    impl SlotStore for FakeStore {
        type Version = u64;
        fn load(&self, slot: u32) -> (Option<Vec<u8>>, u64) {
            match self.slots.borrow().get(&slot) {
                Some((bytes, version)) => (Some(bytes.clone()), *version),
                None => (None, 0),
            }
        }
        fn store(&self, slot: u32, value: &[u8], expected: u64) -> Result<(), StoreError> {
            let hook = self.interleave.borrow_mut().take();
            if let Some(mut hook) = hook {
                hook(self);
            }
            if self.unavailable {
                return Err(StoreError::Unavailable);
            }
            let mut slots = self.slots.borrow_mut();
            let current = slots.get(&slot).map_or(0, |(_, v)| *v);
            if current != expected {
                return Err(StoreError::Conflict);
            }
            *self.stores.borrow_mut() += 1;
            slots.insert(slot, (value.to_vec(), current + 1));
            Ok(())
        }
    }

    #[test]
    fn slot_table_lifecycle() {
        let store = FakeStore::default();
        let Admission::Forward { claim: first } = claim(&store, &S, "evt_1", 100) else {
            panic!()
        };
        assert_eq!(
            claim(&store, &S, "evt_1", 101),
            Admission::InFlight { retry_after: 9 }
        );
        // The origin failed: cleared, the retry goes through.
        assert!(record_answer(&store, &S, "evt_1", first, false, 102));
        let Admission::Forward { claim: second } = claim(&store, &S, "evt_1", 103) else {
            panic!()
        };
        // The first attempt's answer, late, does not touch the second's claim.
        assert!(!record_answer(&store, &S, "evt_1", first, true, 104));
        assert!(record_answer(&store, &S, "evt_1", second, true, 105));
        assert_eq!(
            claim(&store, &S, "evt_1", 106),
            Admission::Duplicate { delivered_at: 105 }
        );
        // Past the TTL it is forwarded again.
        assert!(matches!(
            claim(&store, &S, "evt_1", 205),
            Admission::Forward { .. }
        ));
    }

    #[test]
    fn a_collision_evicts_and_never_suppresses() {
        let one = DedupSettings { capacity: 1, ..S };
        let store = FakeStore::default();
        let Admission::Forward { claim: a } = claim(&store, &one, "evt_a", 100) else {
            panic!()
        };
        assert!(record_answer(&store, &one, "evt_a", a, true, 100));
        // Another event in the same (only) slot: forwarded, and it takes the slot.
        let Admission::Forward { claim: b } = claim(&store, &one, "evt_b", 101) else {
            panic!()
        };
        // evt_a's record is gone: its duplicate gets through (eviction), and the
        // answer for evt_b cannot land in a slot evt_a now holds.
        let Admission::Forward { .. } = claim(&store, &one, "evt_a", 102) else {
            panic!()
        };
        assert!(!record_answer(&store, &one, "evt_b", b, true, 103));
    }

    #[test]
    fn two_claimers_racing_let_exactly_one_forward() {
        // The second claimer loads, then the first stores before it: its store
        // conflicts, it reloads and sees the first's claim.
        let store = FakeStore::default();
        *store.interleave.borrow_mut() = Some(alloc::boxed::Box::new(|s: &FakeStore| {
            assert!(matches!(
                claim(s, &S, "evt_1", 100),
                Admission::Forward { .. }
            ));
        }));
        assert_eq!(
            claim(&store, &S, "evt_1", 100),
            Admission::InFlight { retry_after: 10 }
        );
        assert_eq!(*store.stores.borrow(), 1);
    }

    #[test]
    fn a_store_that_keeps_conflicting_or_fails_lets_the_delivery_through() {
        // Another id takes the slot before every store: give up after the bound.
        struct Contended(FakeStore, RefCell<u64>);
        impl SlotStore for Contended {
            type Version = u64;
            fn load(&self, slot: u32) -> (Option<Vec<u8>>, u64) {
                self.0.load(slot)
            }
            fn store(&self, slot: u32, value: &[u8], expected: u64) -> Result<(), StoreError> {
                let n = *self.1.borrow();
                *self.1.borrow_mut() += 1;
                let other =
                    encode(&format!("evt_other{n}"), &Record::InFlight { since: 0 }).unwrap();
                let (_, v) = self.0.load(slot);
                self.0.store(slot, &other, v)?;
                self.0.store(slot, value, expected)
            }
        }
        let contended = Contended(FakeStore::default(), RefCell::new(0));
        assert!(matches!(
            claim(&contended, &S, "evt_1", 100),
            Admission::Forward { .. }
        ));
        assert_eq!(*contended.1.borrow(), MAX_CAS_ATTEMPTS as u64);

        let down = FakeStore {
            unavailable: true,
            ..FakeStore::default()
        };
        for now in [100, 101] {
            assert!(matches!(
                claim(&down, &S, "evt_1", now),
                Admission::Forward { .. }
            ));
        }
    }

    #[test]
    fn garbage_in_a_slot_is_unseen() {
        let store = FakeStore::default();
        let slot = slot_of("evt_1", S.capacity);
        store
            .slots
            .borrow_mut()
            .insert(slot, (b"\x01\x02garbage".to_vec(), 5));
        assert!(matches!(
            claim(&store, &S, "evt_1", 100),
            Admission::Forward { .. }
        ));
    }

    /// One step of a host's life with one event: a delivery arrives, or an attempt's
    /// answer comes back.
    #[derive(Clone, Debug)]
    enum Step {
        Deliver {
            id: u8,
            after: u8,
        },
        Answer {
            attempt: u8,
            succeeded: bool,
            after: u8,
        },
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        proptest::collection::vec(
            prop_oneof![
                (0u8..6, 0u8..40).prop_map(|(id, after)| Step::Deliver { id, after }),
                (any::<u8>(), any::<bool>(), 0u8..40).prop_map(|(attempt, succeeded, after)| {
                    Step::Answer {
                        attempt,
                        succeeded,
                        after,
                    }
                }),
            ],
            0..60,
        )
    }

    proptest! {
        /// Over any sequence of deliveries and answers, in a table of 1 to 4 slots:
        /// a delivery is answered at the edge only when its own event id was delivered
        /// within the TTL (duplicate) or forwarded within the in-flight window and not
        /// answered since (in flight). Never for another id's record, never for an id
        /// whose attempts all failed.
        #[test]
        fn only_an_event_delivered_or_in_flight_is_held_back(
            capacity in 1u32..=4,
            ttl in 1u64..120,
            in_flight in 1u64..30,
            plan in steps(),
        ) {
            let settings = DedupSettings { ttl_seconds: ttl, in_flight_seconds: in_flight, capacity };
            let store = FakeStore::default();
            let mut now = 1_000u64;
            // Every attempt forwarded: (id, claim, answered).
            let mut attempts: Vec<(u8, Claim, bool)> = Vec::new();
            // Per id: the times the origin answered with success.
            let mut delivered: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
            for step in plan {
                match step {
                    Step::Deliver { id, after } => {
                        now += u64::from(after);
                        let name = format!("evt_{id}");
                        match claim(&store, &settings, &name, now) {
                            Admission::Forward { claim } => attempts.push((id, claim, false)),
                            Admission::Duplicate { delivered_at } => {
                                let successes = delivered.get(&id).cloned().unwrap_or_default();
                                prop_assert!(
                                    successes.contains(&delivered_at),
                                    "{name} suppressed as delivered at {delivered_at}, delivered at {successes:?}"
                                );
                                prop_assert!(now - delivered_at < ttl);
                            }
                            Admission::InFlight { retry_after } => {
                                prop_assert!(retry_after >= 1 && retry_after <= in_flight);
                                let pending = attempts.iter().any(|(i, c, answered)| {
                                    *i == id && !answered && now - c.since < in_flight
                                });
                                prop_assert!(pending, "{name} held as in flight with no attempt pending");
                            }
                        }
                    }
                    Step::Answer { attempt, succeeded, after } => {
                        if attempts.is_empty() {
                            continue;
                        }
                        now += u64::from(after);
                        let at = usize::from(attempt) % attempts.len();
                        let (id, c, answered) = attempts[at];
                        if answered {
                            continue;
                        }
                        attempts[at].2 = true;
                        record_answer(&store, &settings, &format!("evt_{id}"), c, succeeded, now);
                        if succeeded {
                            delivered.entry(id).or_default().push(now);
                        }
                    }
                }
            }
        }

        /// Two claimers of one event, their loads and stores interleaved in any order:
        /// exactly one forwards.
        #[test]
        fn interleaved_claimers_forward_once(order in proptest::collection::vec(any::<bool>(), 4)) {
            // Each claimer is load-then-store; `order` picks who moves next.
            let store = FakeStore::default();
            let slot = slot_of("evt_1", S.capacity);
            let mut loaded: [Option<(Option<Vec<u8>>, u64)>; 2] = [None, None];
            let mut result: [Option<bool>; 2] = [None, None];
            let mut order = order.into_iter();
            let mut guard = 0;
            while result.iter().any(Option::is_none) {
                guard += 1;
                prop_assert!(guard < 100);
                let pick = usize::from(order.next().unwrap_or(false));
                let who = if result[pick].is_some() { 1 - pick } else { pick };
                match loaded[who].take() {
                    None => loaded[who] = Some(store.load(slot)),
                    Some((bytes, version)) => {
                        let stored = bytes.as_deref().and_then(|b| decode_for(b, "evt_1"));
                        match admit(&S, stored.as_ref(), 100) {
                            Admission::Forward { claim } => {
                                let value = encode("evt_1", &claim.record()).unwrap();
                                // Lost the race (Err): load again, as `claim` does.
                                if store.store(slot, &value, version).is_ok() {
                                    result[who] = Some(true);
                                }
                            }
                            _ => result[who] = Some(false),
                        }
                    }
                }
            }
            prop_assert_eq!(result.iter().filter(|r| **r == Some(true)).count(), 1);
        }

        #[test]
        fn decode_never_panics_and_only_reads_what_encode_wrote(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Some((id, record)) = decode(&bytes) {
                prop_assert_eq!(encode(id, &record), Some(bytes.clone()));
            }
        }
    }
}
