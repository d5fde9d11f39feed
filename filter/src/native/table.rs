//! Duplicate suppression's slot table in the native module: one per Envoy process, in
//! the module's memory, shared by every worker thread and every filter configuration
//! (like the proxy-wasm filter's shared data, which is one per `vm_id`). It lives as
//! long as the module stays loaded (`do_not_close: true` in `envoy-native.yaml`), so a
//! listener update keeps it.
//!
//! Slots are kept in a few locked shards, each a map from slot number to record, so a
//! slot costs memory only while it holds a record: at most `capacity` records of at
//! most [`MAX_RECORD_BYTES`](persona_edge_core::dedup::MAX_RECORD_BYTES) each. A
//! version per record makes the core's compare-and-swap exact: 0 is a slot without a
//! record, and each shard numbers its stores from 1 on, never twice, so a slot that was
//! cleared and written again never looks unchanged.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use persona_edge_core::dedup::{SlotStore, StoreError};

/// Shards of the table: contention between worker threads stays low.
const SHARDS: usize = 64;

/// The process's table.
pub fn table() -> &'static SlotTable {
    static TABLE: LazyLock<SlotTable> = LazyLock::new(SlotTable::new);
    &TABLE
}

pub struct SlotTable {
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    records: HashMap<u32, Record>,
    /// The last version this shard gave a store.
    last_version: u64,
}

struct Record {
    bytes: Box<[u8]>,
    version: u64,
}

impl SlotTable {
    pub fn new() -> SlotTable {
        SlotTable {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, slot: u32) -> Option<MutexGuard<'_, Shard>> {
        let at = usize::try_from(slot).ok()? % SHARDS;
        self.shards.get(at).map(lock)
    }
}

impl Default for SlotTable {
    fn default() -> Self {
        SlotTable::new()
    }
}

/// A shard whose lock a panicking thread held is still consistent (every change is one
/// map operation), so it is used as it is.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SlotStore for SlotTable {
    type Version = u64;

    fn load(&self, slot: u32) -> (Option<Vec<u8>>, u64) {
        match self.shard(slot) {
            Some(shard) => match shard.records.get(&slot) {
                Some(record) => (Some(record.bytes.to_vec()), record.version),
                None => (None, 0),
            },
            None => (None, 0),
        }
    }

    /// An empty `value` removes the record (the slot keeps no memory).
    fn store(&self, slot: u32, value: &[u8], expected: u64) -> Result<(), StoreError> {
        let Some(mut shard) = self.shard(slot) else {
            return Err(StoreError::Unavailable);
        };
        let current = shard.records.get(&slot).map_or(0, |r| r.version);
        if current != expected {
            return Err(StoreError::Conflict);
        }
        if value.is_empty() {
            shard.records.remove(&slot);
        } else {
            shard.last_version += 1;
            let version = shard.last_version;
            shard.records.insert(
                slot,
                Record {
                    bytes: value.into(),
                    version,
                },
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};
    use std::thread;

    use persona_edge_core::dedup::{self, Admission, DedupSettings};

    use super::*;

    /// Slots holding a record now.
    fn records(table: &SlotTable) -> usize {
        table.shards.iter().map(|s| lock(s).records.len()).sum()
    }

    const SETTINGS: DedupSettings = DedupSettings {
        ttl_seconds: 100,
        in_flight_seconds: 10,
        capacity: 1_048_576,
    };

    #[test]
    fn compare_and_swap_is_exact_also_for_an_empty_slot() {
        let table = SlotTable::new();
        assert_eq!(table.load(7), (None, 0));
        table.store(7, b"a", 0).unwrap();
        // A second writer that also saw the slot empty loses.
        assert_eq!(table.store(7, b"b", 0), Err(StoreError::Conflict));
        let (bytes, version) = table.load(7);
        assert_eq!(bytes.as_deref(), Some(&b"a"[..]));
        // Cleared: no record, and a writer holding the old version loses.
        table.store(7, b"", version).unwrap();
        assert_eq!(records(&table), 0);
        assert_eq!(table.store(7, b"c", version), Err(StoreError::Conflict));
        // Written again: a new version, never the old one.
        table.store(7, b"d", 0).unwrap();
        let (_, again) = table.load(7);
        assert!(again > version);
    }

    #[test]
    fn memory_follows_the_records_held() {
        let table = SlotTable::new();
        let settings = DedupSettings {
            capacity: 16,
            ..SETTINGS
        };
        for e in 0..1_000 {
            let id = format!("evt_{e}");
            let Admission::Forward { claim } = dedup::claim(&table, &settings, &id, 1_000) else {
                panic!("{id} held back");
            };
            dedup::record_answer(&table, &settings, &id, claim, e % 2 == 0, 1_001);
        }
        assert!(records(&table) <= 16, "{} records", records(&table));
    }

    #[test]
    fn worker_threads_racing_for_fresh_slots_forward_each_event_once() {
        let table = Arc::new(SlotTable::new());
        let threads = 8;
        let events = 500;
        let barrier = Arc::new(Barrier::new(threads));
        let forwarded: Vec<Vec<bool>> = (0..threads)
            .map(|_| {
                let (table, barrier) = (table.clone(), barrier.clone());
                thread::spawn(move || {
                    (0..events)
                        .map(|e| {
                            barrier.wait();
                            let id = format!("evt_race{e}");
                            matches!(
                                dedup::claim(&*table, &SETTINGS, &id, 1_000),
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
}
