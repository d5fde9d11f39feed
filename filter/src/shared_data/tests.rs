//! The shared-data protocol against a model of Envoy's store: proxy-wasm-cpp-host's
//! `SharedData::get`/`set` (Envoy 1.40), including its one trap: a write to a missing
//! key succeeds whatever its `cas`.

use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use persona_edge_core::dedup::{self, Admission, DedupSettings, Record, SlotStore, StoreError};
use proptest::prelude::*;

use super::*;

const SETTINGS: DedupSettings = DedupSettings {
    ttl_seconds: 100,
    in_flight_seconds: 10,
    capacity: 4,
};

/// Envoy's store for one vm_id: values with a `cas` from one process-wide counter that
/// skips 0. `set` checks the `cas` only for a key that exists and a `cas` that is not 0.
struct Model {
    state: Mutex<Store>,
}

/// Each key's value and `cas`, and the counter's next value.
type Store = (HashMap<String, (Vec<u8>, u32)>, u32);

impl Model {
    fn new() -> Model {
        Model::starting_at(1)
    }

    /// The counter's next value (to reach the wrap-around).
    fn starting_at(cas: u32) -> Model {
        Model {
            state: Mutex::new((HashMap::new(), cas)),
        }
    }

    fn keys(&self) -> usize {
        self.state.lock().unwrap().0.len()
    }
}

impl SharedData for &Model {
    fn get(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)> {
        let found = match self.state.lock().unwrap().0.get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        };
        // A VM works between two host calls: let another thread in, as a loaded
        // Envoy would.
        thread::yield_now();
        Some(found)
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let mut state = self.state.lock().unwrap();
        let (map, next) = &mut *state;
        if let Some((_, current)) = map.get(key)
            && cas != 0
            && cas != *current
        {
            return Err(SetError::CasMismatch);
        }
        let assigned = *next;
        *next = next.wrapping_add(1).max(1);
        map.insert(key.to_string(), (value.to_vec(), assigned));
        Ok(())
    }
}

/// The slot table a host that trusted `cas` 0 on a missing key would have: the trap.
struct Naive<'m>(&'m Model);

impl SlotStore for Naive<'_> {
    type Version = u32;
    fn load(&self, slot: u32) -> (Option<Vec<u8>>, u32) {
        match (&self.0).get(&slot_key(slot)) {
            Some((bytes, cas)) => (bytes, cas.unwrap_or(0)),
            None => (None, 0),
        }
    }
    fn store(&self, slot: u32, value: &[u8], expected: u32) -> Result<(), StoreError> {
        (&self.0)
            .set(&slot_key(slot), value, expected)
            .map_err(|_| StoreError::Conflict)
    }
}

#[test]
fn keys_are_namespaced_by_slot() {
    assert_eq!(slot_key(0), "persona_edge.dedup.0");
    assert_eq!(slot_key(1_048_575), "persona_edge.dedup.1048575");
}

#[test]
fn a_slot_is_created_by_its_first_claim_and_only_then() {
    let model = Model::new();
    let slots = SharedDataSlots(&model);
    assert_eq!(model.keys(), 0);
    let Admission::Forward { claim } = dedup::claim(&slots, &SETTINGS, "evt_1", 1_000) else {
        panic!()
    };
    assert_eq!(model.keys(), 1, "one key for the one event seen");
    assert_eq!(
        dedup::claim(&slots, &SETTINGS, "evt_1", 1_001),
        Admission::InFlight { retry_after: 9 }
    );
    assert!(dedup::record_answer(
        &slots, &SETTINGS, "evt_1", claim, true, 1_002
    ));
    assert_eq!(
        dedup::claim(&slots, &SETTINGS, "evt_1", 1_003),
        Admission::Duplicate {
            delivered_at: 1_002
        }
    );
    // A failed attempt clears the value, not the key: the key count stays bounded by
    // the slots ever used.
    let Admission::Forward { claim } = dedup::claim(&slots, &SETTINGS, "evt_2", 1_000) else {
        panic!()
    };
    assert!(dedup::record_answer(
        &slots, &SETTINGS, "evt_2", claim, false, 1_001
    ));
    assert!(model.keys() <= 2);
    assert!(matches!(
        dedup::claim(&slots, &SETTINGS, "evt_2", 1_002),
        Admission::Forward { .. }
    ));
}

#[test]
fn a_create_never_overwrites_a_key_that_exists() {
    let model = Model::new();
    let slots = SharedDataSlots(&model);
    let record = dedup::encode("evt_1", &Record::Delivered { at: 5 }).unwrap();
    slots.store(0, &record, CREATE_CAS).unwrap();
    // Another worker read the key as missing before that: its create must fail.
    assert_eq!(
        slots.store(0, b"other", CREATE_CAS),
        Err(StoreError::Conflict)
    );
    assert_eq!(slots.load(0).0.unwrap(), record);
}

#[test]
fn a_key_whose_cas_is_the_create_value_is_still_swapped_normally() {
    // Envoy's counter hands out u32::MAX too (then wraps to 1).
    let model = Model::starting_at(u32::MAX);
    let slots = SharedDataSlots(&model);
    slots.store(2, b"first", CREATE_CAS).unwrap();
    let (_, version) = slots.load(2);
    assert_eq!(version, u32::MAX);
    slots.store(2, b"second", version).unwrap();
    let (bytes, version) = slots.load(2);
    assert_eq!((bytes.unwrap(), version), (b"second".to_vec(), 1));
    assert_eq!(
        slots.store(2, b"third", u32::MAX),
        Err(StoreError::Conflict)
    );
}

/// One claimer as `dedup::claim` runs it, a host call at a time, so that a test can
/// interleave several: load, decide, store; a store that conflicts starts over.
struct Claimer {
    id: &'static str,
    settings: DedupSettings,
    loaded: Option<(Option<Vec<u8>>, u32)>,
    attempts: usize,
    result: Option<Admission>,
}

impl Claimer {
    fn new(id: &'static str) -> Claimer {
        Claimer::with(id, SETTINGS)
    }

    fn with(id: &'static str, settings: DedupSettings) -> Claimer {
        Claimer {
            id,
            settings,
            loaded: None,
            attempts: 0,
            result: None,
        }
    }

    /// One host call.
    fn step(&mut self, store: &dyn SlotStore<Version = u32>, now: u64) {
        let slot = dedup::slot_of(self.id, self.settings.capacity);
        let Some((bytes, version)) = self.loaded.take() else {
            self.loaded = Some(store.load(slot));
            return;
        };
        let stored = bytes.as_deref().and_then(|b| dedup::decode_for(b, self.id));
        let admission = dedup::admit(&self.settings, stored.as_ref(), now);
        let Admission::Forward { claim } = admission else {
            self.result = Some(admission);
            return;
        };
        let value = dedup::encode(self.id, &claim.record()).unwrap();
        match store.store(slot, &value, version) {
            Ok(()) | Err(StoreError::Unavailable) => self.result = Some(admission),
            Err(StoreError::Conflict) => {
                self.attempts += 1;
                if self.attempts == dedup::MAX_CAS_ATTEMPTS {
                    self.result = Some(admission);
                }
            }
        }
    }
}

/// Runs `claimers` to the end, `order` picking who makes the next host call.
fn interleave(
    store: &dyn SlotStore<Version = u32>,
    claimers: &mut [Claimer],
    order: &[usize],
) -> Vec<Admission> {
    let mut picks = order.iter().copied();
    let mut guard = 0;
    while claimers.iter().any(|c| c.result.is_none()) {
        guard += 1;
        assert!(guard < 1_000);
        let pick = picks.next().unwrap_or(0) % claimers.len();
        let who = (pick..claimers.len())
            .chain(0..pick)
            .find(|i| claimers[*i].result.is_none())
            .unwrap();
        claimers[who].step(store, 1_000);
    }
    claimers.iter().map(|c| c.result.unwrap()).collect()
}

fn forwards(results: &[Admission]) -> usize {
    results
        .iter()
        .filter(|a| matches!(a, Admission::Forward { .. }))
        .count()
}

#[test]
fn trusting_cas_0_on_a_missing_key_lets_two_claimers_forward() {
    // Both read the key as missing, then both write: the trap this module avoids.
    let model = Model::new();
    let naive = Naive(&model);
    let mut claimers = [Claimer::new("evt_1"), Claimer::new("evt_1")];
    let results = interleave(&naive, &mut claimers, &[0, 1, 0, 1]);
    assert_eq!(forwards(&results), 2);
    // The same interleaving against the real protocol: one forwards.
    let model = Model::new();
    let slots = SharedDataSlots(&model);
    let mut claimers = [Claimer::new("evt_1"), Claimer::new("evt_1")];
    let results = interleave(&slots, &mut claimers, &[0, 1, 0, 1]);
    assert_eq!(forwards(&results), 1, "{results:?}");
}

proptest! {
    /// Three claimers of one event, on a missing key or one that exists (cleared, or
    /// holding another event), their host calls in any order: exactly one forwards;
    /// the others see its claim in flight.
    #[test]
    fn claimers_of_one_event_forward_once_in_any_interleaving(
        order in proptest::collection::vec(0usize..3, 0..24),
        existing in 0u8..3,
    ) {
        let model = Model::new();
        let slots = SharedDataSlots(&model);
        let slot = dedup::slot_of("evt_1", SETTINGS.capacity);
        match existing {
            1 => slots.store(slot, &[], CREATE_CAS).unwrap(),
            2 => {
                let other = dedup::encode("evt_other", &Record::Delivered { at: 999 }).unwrap();
                slots.store(slot, &other, CREATE_CAS).unwrap();
            }
            _ => {}
        }
        let mut claimers = [Claimer::new("evt_1"), Claimer::new("evt_1"), Claimer::new("evt_1")];
        let results = interleave(&slots, &mut claimers, &order);
        prop_assert_eq!(forwards(&results), 1, "{:?}", results);
        for r in &results {
            let forwarded_or_held = matches!(r, Admission::Forward { .. } | Admission::InFlight { .. });
            prop_assert!(forwarded_or_held, "{:?}", r);
        }
    }

    /// Two events that share a slot, claimed in any interleaving: both are forwarded
    /// (one evicts the other), neither is ever held back by the other's record.
    #[test]
    fn events_sharing_a_slot_never_hold_each_other_back(
        order in proptest::collection::vec(0usize..2, 0..16),
    ) {
        let one = DedupSettings { capacity: 1, ..SETTINGS };
        let model = Model::new();
        let slots = SharedDataSlots(&model);
        let mut claimers = [Claimer::with("evt_a", one), Claimer::with("evt_b", one)];
        let results = interleave(&slots, &mut claimers, &order);
        prop_assert_eq!(forwards(&results), 2, "{:?}", results);
    }
}

#[test]
fn worker_threads_racing_for_fresh_slots_forward_each_event_once() {
    // Real threads through the core's own `claim`, on one store: Envoy's worker
    // threads, each with its VM, all reaching the same shared data.
    let settings = DedupSettings {
        capacity: 65_536,
        ..SETTINGS
    };
    let model = Arc::new(Model::new());
    let threads = 8;
    let events = 300;
    let barrier = Arc::new(Barrier::new(threads));
    let forwarded: Vec<Vec<bool>> = (0..threads)
        .map(|_| {
            let (model, barrier) = (model.clone(), barrier.clone());
            thread::spawn(move || {
                let slots = SharedDataSlots(&*model);
                (0..events)
                    .map(|e| {
                        barrier.wait();
                        let id = format!("evt_race{e}");
                        matches!(
                            dedup::claim(&slots, &settings, &id, 1_000),
                            Admission::Forward { .. }
                        )
                    })
                    .collect()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    for e in 0..events {
        let n = forwarded.iter().filter(|f| f[e]).count();
        assert_eq!(n, 1, "event {e} forwarded by {n} threads");
    }
}
