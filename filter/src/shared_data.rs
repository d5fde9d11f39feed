//! Duplicate suppression's slot table in proxy-wasm *shared data*: one key per slot
//! (`persona_edge.dedup.<slot>`), in the store Envoy keeps for each `vm_id` and shares
//! between every worker thread's VM of that id. The `.wasm` reaches it through
//! `wasm/host.rs`; the protocol is here, so that it is unit-tested natively against a
//! model of Envoy's store.
//!
//! Envoy's compare-and-swap (proxy-wasm-cpp-host `SharedData::set`, Envoy 1.40) checks
//! the `cas` only when the key exists and the `cas` is not 0: a write to a key that
//! does not exist always succeeds, whatever `cas` it carries. So "claim this slot if it
//! is still empty" cannot be `cas` 0 on a missing key: two workers that both found the
//! key missing would both write, and both forward. Writing every slot once before use
//! would cost `capacity` keys (up to a million) whether used or not.
//!
//! Instead the first write to a slot carries [`CREATE_CAS`], a `cas` no fresh key has:
//! on a missing key it creates the key (the write is atomic under Envoy's lock), and on
//! a key another worker created since it fails with a mismatch, so the claim is decided
//! again against what that worker stored. One get and one set per claim, also for a
//! slot's first one; a slot costs memory only once an event lands in it.
//!
//! The one way around it: the key was created in between *and* its `cas` is exactly
//! [`CREATE_CAS`] (Envoy's counter is one for the whole process and takes every value
//! but 0, once every 2^32 writes). Then the create overwrites that record: at worst a
//! duplicate gets through, as with an eviction; nothing is ever suppressed by it.

use persona_edge_core::dedup::{SlotStore, StoreError};
use persona_edge_core::report::COUNTER_PREFIX;

/// The `cas` the first write to a slot carries: a write to a key that does not exist
/// ignores it, a write to one that does fails unless its `cas` is this value.
pub const CREATE_CAS: u32 = u32::MAX;

/// A failed write to shared data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetError {
    /// The key changed since the read that gave the `cas`.
    CasMismatch,
    /// Envoy refused the call for another reason.
    Failed,
}

/// proxy-wasm's shared data as Envoy offers it: `get` gives a value and its `cas`
/// (`None` for a key never written), `set` writes if the key is missing, or if `cas` is
/// 0 or the key's current one.
pub trait SharedData {
    /// `None` when the store could not be read at all.
    fn get(&self, key: &str) -> Option<(Option<Vec<u8>>, Option<u32>)>;
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError>;
}

/// The key of `slot`: `persona_edge.dedup.<slot>`.
pub fn slot_key(slot: u32) -> String {
    format!("{COUNTER_PREFIX}.dedup.{slot}")
}

/// The core's [`SlotStore`] over shared data. The version of a slot is its key's
/// `cas`, or [`CREATE_CAS`] while the key does not exist.
pub struct SharedDataSlots<D>(pub D);

impl<D: SharedData> SlotStore for SharedDataSlots<D> {
    type Version = u32;

    fn load(&self, slot: u32) -> (Option<Vec<u8>>, u32) {
        match self.0.get(&slot_key(slot)) {
            Some((bytes, Some(cas))) => (bytes, cas),
            // Never written, or unreadable: only a create may write it, so a key that
            // exists after all is never overwritten on the strength of this read.
            Some((_, None)) | None => (None, CREATE_CAS),
        }
    }

    fn store(&self, slot: u32, value: &[u8], expected: u32) -> Result<(), StoreError> {
        match self.0.set(&slot_key(slot), value, expected) {
            Ok(()) => Ok(()),
            Err(SetError::CasMismatch) => Err(StoreError::Conflict),
            Err(SetError::Failed) => Err(StoreError::Unavailable),
        }
    }
}

#[cfg(test)]
mod tests;
