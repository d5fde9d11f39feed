//! The blocklist's decisions remembered per key text, for one body.

use alloc::vec::Vec;

use crate::json;

/// The blocklist's decision per key text, for one body. Events repeat the same few
/// hundred keys many times over, and a hash probe is cheaper than matching every
/// entry. Only used when the decision depends on the key alone (no paths, no types):
/// otherwise it stays `Default`, which allocates nothing.
#[derive(Default)]
pub(super) struct Decisions {
    /// Open addressing; all-zero is an empty slot, so a new table is one memset.
    slots: Vec<Slot>,
    texts: Vec<u8>,
    used: usize,
}

/// One remembered key: its hash (never 0), where its text is in `texts`, and the
/// decision in the top bit of `len_decision`.
#[derive(Clone, Copy, Default)]
struct Slot {
    hash: u64,
    start: u32,
    len_decision: u32,
}

impl Slot {
    const REMOVE: u32 = 1 << 31;

    fn text_range(self) -> core::ops::Range<usize> {
        let len = (self.len_decision & !Self::REMOVE) as usize;
        self.start as usize..self.start as usize + len
    }
}

impl Decisions {
    /// The smallest table (room for the 32 keys of a small event); it doubles when half full.
    const INITIAL_SLOTS: usize = 64;
    const MAX_SLOTS: usize = 4096;

    fn hash(text: &[u8]) -> u64 {
        // A multiply-rotate mix of whole words: the first and last eight bytes (which
        // overlap in a short key) and the ones between. Keys are short, and a
        // collision only costs a compare (the table is bounded by MAX_SLOTS).
        const K: u64 = 0x9e37_79b9_7f4a_7c15;
        let mix = |h: u64, w: u64| (h ^ w).wrapping_mul(K).rotate_left(31);
        let mut h = (text.len() as u64).wrapping_mul(K);
        match (text.first_chunk::<8>(), text.last_chunk::<8>()) {
            (Some(first), Some(last)) => {
                h = mix(h, u64::from_le_bytes(*first));
                // Whole words after the first; the last eight bytes cover any rest.
                for chunk in text.get(8..).unwrap_or_default().chunks_exact(8) {
                    h = mix(h, json::word(chunk));
                }
                h = mix(h, u64::from_le_bytes(*last));
            }
            // Shifts, not a copy: a short variable-length copy is a call in Wasm.
            _ => h = mix(h, text.iter().rev().fold(0, |w, &b| w << 8 | u64::from(b))),
        }
        // 0 marks an empty slot.
        h.wrapping_mul(K) | 1
    }

    /// Sized for the distinct keys a body of `len` bytes usually brings to the table
    /// (about one per 350 bytes of a 20 KB event once `Blocklist::may_remove_key` has
    /// ruled most keys out), so that it rarely grows and rehashes.
    pub(super) fn for_body(len: usize) -> Self {
        let slots = (len / 128)
            .next_power_of_two()
            .clamp(Self::INITIAL_SLOTS, Self::MAX_SLOTS);
        Decisions {
            slots: alloc::vec![Slot::default(); slots],
            texts: Vec::with_capacity(slots * 8),
            used: 0,
        }
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(Self::INITIAL_SLOTS);
        let old = core::mem::replace(&mut self.slots, alloc::vec![Slot::default(); size]);
        for slot in old.into_iter().filter(|s| s.hash != 0) {
            let mut i = (slot.hash as usize) & (size - 1);
            while self.slots.get(i).is_some_and(|s| s.hash != 0) {
                i = (i + 1) & (size - 1);
            }
            if let Some(free) = self.slots.get_mut(i) {
                *free = slot;
            }
        }
    }

    pub(super) fn get_or_insert(&mut self, text: &[u8], decide: impl FnOnce() -> bool) -> bool {
        if text.len() >= Slot::REMOVE as usize {
            return decide();
        }
        if self.used * 2 >= self.slots.len() {
            if self.slots.len() >= Self::MAX_SLOTS {
                return decide();
            }
            self.grow();
        }
        let hash = Self::hash(text);
        let mask = self.slots.len() - 1;
        let mut i = (hash as usize) & mask;
        // The table is at most half full, so an empty slot is always found.
        loop {
            let Some(&slot) = self.slots.get(i) else {
                return decide();
            };
            if slot.hash == 0 {
                let decision = decide();
                let start = self.texts.len() as u32;
                self.texts.extend_from_slice(text);
                if let Some(free) = self.slots.get_mut(i) {
                    *free = Slot {
                        hash,
                        start,
                        len_decision: text.len() as u32 | if decision { Slot::REMOVE } else { 0 },
                    };
                    self.used += 1;
                }
                return decision;
            }
            if slot.hash == hash
                && self
                    .texts
                    .get(slot.text_range())
                    .is_some_and(|seen| json::same_bytes(seen, text))
            {
                return slot.len_decision & Slot::REMOVE != 0;
            }
            i = (i + 1) & mask;
        }
    }
}
