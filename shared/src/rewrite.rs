//! The body rewrite: removes blocked attributes and renames keys, copying every other
//! byte of the original verbatim (numbers, escapes, white space, key order).
//!
//! It walks the scanned tape once. Output is produced lazily: `copied` marks how far
//! the input has been accounted for, and only a removal or a rename flushes the bytes
//! before it, so an untouched document is one copy.

use alloc::vec::Vec;

use crate::blocklist::{Blocklist, KeyPath};
use crate::envelope::{key_form, members};
use crate::inflection::{Inflection, convert, match_form};
use crate::json::{self, Kind, Node};

/// Where in the document a value sits, which decides what may change there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zone {
    /// The envelope, level by level down to `payload`.
    Root,
    EventData,
    EventAttributes,
    /// Outside the payload: keys may be renamed, nothing is removed.
    Outside,
    /// Inside the payload, outside any `attributes` object: the key path is tracked.
    Payload,
    /// Inside an `attributes` object; the resource's type, as an index into `types`.
    Attributes(Option<usize>),
}

pub(crate) struct Rewritten {
    pub body: Vec<u8>,
    /// How many attributes were removed.
    pub stripped: usize,
}

pub(crate) fn rewrite(
    input: &[u8],
    tape: &[Node],
    blocklist: &Blocklist,
    inflection: Inflection,
) -> Rewritten {
    let mut r = Rewriter {
        input,
        tape,
        blocklist,
        inflection,
        out: Vec::with_capacity(input.len()),
        copied: 0,
        path: KeyPath::default(),
        decoded: Vec::new(),
        form: Vec::new(),
        renamed: Vec::new(),
        types: Vec::new(),
        decisions: Decisions::default(),
        stripped: 0,
    };
    r.value(0, Zone::Root);
    r.flush_to(input.len());
    Rewritten {
        body: r.out,
        stripped: r.stripped,
    }
}

struct Rewriter<'a> {
    input: &'a [u8],
    tape: &'a [Node],
    blocklist: &'a Blocklist,
    inflection: Inflection,
    out: Vec<u8>,
    copied: usize,
    path: KeyPath,
    decoded: Vec<u8>,
    form: Vec<u8>,
    renamed: Vec<u8>,
    /// Match forms of resource types, one per resource seen (kept for borrows).
    types: Vec<Vec<u8>>,
    decisions: Decisions,
    stripped: usize,
}

/// The blocklist's decision per key text, for one body. Events repeat the same few
/// hundred keys many times over, and a hash probe is cheaper than matching every
/// entry. Only used when the decision depends on the key alone (no paths, no types).
#[derive(Default)]
struct Decisions {
    /// Open addressing: (hash, start and length in `texts`, decision).
    slots: Vec<Option<(u64, u32, u32, bool)>>,
    texts: Vec<u8>,
    used: usize,
}

impl Decisions {
    /// Starts small (a 2 KB event has few keys) and doubles when half full.
    const INITIAL_SLOTS: usize = 64;
    const MAX_SLOTS: usize = 4096;

    fn hash(text: &[u8]) -> u64 {
        // FNV-1a: short keys, no adversarial pressure (a collision costs a compare).
        text.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(Self::INITIAL_SLOTS);
        let old = core::mem::replace(&mut self.slots, alloc::vec![None; size]);
        for (hash, start, len, decision) in old.into_iter().flatten() {
            let mut i = (hash as usize) & (size - 1);
            while let Some(Some(_)) = self.slots.get(i) {
                i = (i + 1) & (size - 1);
            }
            if let Some(slot) = self.slots.get_mut(i) {
                *slot = Some((hash, start, len, decision));
            }
        }
    }

    fn get_or_insert(&mut self, text: &[u8], decide: impl FnOnce() -> bool) -> bool {
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
            match self.slots.get(i).copied().flatten() {
                Some((h, start, len, decision)) => {
                    if h == hash
                        && self.texts.get(start as usize..(start + len) as usize) == Some(text)
                    {
                        return decision;
                    }
                }
                None => {
                    let decision = decide();
                    let start = self.texts.len() as u32;
                    self.texts.extend_from_slice(text);
                    if let Some(slot) = self.slots.get_mut(i) {
                        *slot = Some((hash, start, text.len() as u32, decision));
                        self.used += 1;
                    }
                    return decision;
                }
            }
            i = (i + 1) & mask;
        }
    }
}

impl<'a> Rewriter<'a> {
    fn flush_to(&mut self, to: usize) {
        if to > self.copied {
            if let Some(bytes) = self.input.get(self.copied..to) {
                self.out.extend_from_slice(bytes);
            }
            self.copied = to;
        }
    }

    /// Drops input bytes `from..to` from the output.
    fn skip(&mut self, from: usize, to: usize) {
        self.flush_to(from);
        self.copied = self.copied.max(to);
    }

    fn value(&mut self, index: usize, zone: Zone) {
        let Some(node) = self.tape.get(index) else {
            return;
        };
        // With keys kept as they are, nothing outside the payload can change.
        if self.inflection == Inflection::Preserve && zone == Zone::Outside {
            return;
        }
        match node.kind {
            Kind::Object => self.object(index, zone),
            Kind::Array => {
                // Arrays are transparent to paths: `/included/attributes/x` applies to each element.
                let end = node.next as usize;
                let mut i = index + 1;
                while i < end {
                    self.value(i, zone);
                    i = self.tape.get(i).map_or(end, |n| n.next as usize);
                }
            }
            Kind::Key | Kind::String | Kind::Scalar => {}
        }
    }

    /// Records the match form of the `type` member of the resource object at `index`.
    fn resource_type(&mut self, index: usize) -> Option<usize> {
        let mut decoded = Vec::new();
        let mut form = Vec::new();
        for (k, v) in members(self.tape, index) {
            let key = self.tape.get(k)?;
            key_form(self.input, key, &mut decoded, &mut form);
            if form == b"type" {
                let value = self.tape.get(v)?;
                if value.kind != Kind::String {
                    return None;
                }
                let text = json::string_text(self.input, value)?;
                let mut type_form = Vec::new();
                match_form(text.as_bytes(), &mut type_form);
                self.types.push(type_form);
                return Some(self.types.len() - 1);
            }
        }
        None
    }

    fn object(&mut self, index: usize, zone: Zone) {
        let Some(&node) = self.tape.get(index) else {
            return;
        };
        let uses_paths = self.blocklist.uses_paths();
        let tracks_path = uses_paths && matches!(zone, Zone::Payload | Zone::Attributes(_));
        // A decision that depends on the key alone can be remembered per key text.
        let memoize = !uses_paths && !self.blocklist.uses_types();
        // Looked up on the first `attributes` member, since `type` may come after it.
        let mut resource_type: Option<Option<usize>> = None;
        let mut kept_any = false;
        let mut after_kept = node.start as usize + 1;
        let mut pairs = members(self.tape, index).peekable();
        while let Some((k, v)) = pairs.next() {
            let (Some(&key), Some(&value)) = (self.tape.get(k), self.tape.get(v)) else {
                return;
            };
            let text = json::node_text(self.input, &key, &mut self.decoded);

            let child = if let Zone::Attributes(ty) = zone {
                let (blocklist, form, path) = (self.blocklist, &mut self.form, &mut self.path);
                let decide = |form: &mut Vec<u8>, path: &mut KeyPath| {
                    match_form(text, form);
                    let ty = ty.and_then(|i| self.types.get(i)).map(Vec::as_slice);
                    if !uses_paths {
                        return blocklist.removes(form, path, ty);
                    }
                    path.push(form);
                    let remove = blocklist.removes(form, path, ty);
                    path.pop();
                    remove
                };
                let remove = if memoize {
                    self.decisions.get_or_insert(text, || decide(form, path))
                } else {
                    decide(form, path)
                };
                if remove {
                    self.stripped += 1;
                    if kept_any {
                        // Take the separator before this member with it.
                        self.skip(after_kept, value.end as usize);
                    } else {
                        // First remaining member: take the separator after it instead.
                        let until = match pairs.peek().and_then(|&(nk, _)| self.tape.get(nk)) {
                            Some(next_key) => next_key.start as usize,
                            None => value.end as usize,
                        };
                        self.skip(key.start as usize, until);
                    }
                    continue;
                }
                zone
            } else {
                match_form(text, &mut self.form);
                match zone {
                    Zone::Root if self.form == b"data" => Zone::EventData,
                    Zone::EventData if self.form == b"attributes" => Zone::EventAttributes,
                    Zone::EventAttributes if self.form == b"payload" => Zone::Payload,
                    Zone::Payload if self.form == b"attributes" => {
                        let ty = match resource_type {
                            Some(ty) => ty,
                            None if !self.blocklist.uses_types() => None,
                            None => {
                                let ty = self.resource_type(index);
                                resource_type = Some(ty);
                                ty
                            }
                        };
                        Zone::Attributes(ty)
                    }
                    Zone::Payload => Zone::Payload,
                    _ => Zone::Outside,
                }
            };
            if tracks_path {
                self.path.push(&self.form);
            }
            self.rename(&key);
            self.value(v, child);
            if tracks_path {
                self.path.pop();
            }
            kept_any = true;
            after_kept = value.end as usize;
        }
    }

    /// Writes the key in the target inflection when that changes it.
    fn rename(&mut self, key: &Node) {
        if self.inflection == Inflection::Preserve {
            return;
        }
        // The caller has just decoded this key into `decoded` when it had escapes.
        let text: &[u8] = if key.escaped {
            &self.decoded
        } else {
            let quoted = self.input.get(key.span()).unwrap_or_default();
            quoted
                .get(1..quoted.len().saturating_sub(1))
                .unwrap_or_default()
        };
        let mut renamed = core::mem::take(&mut self.renamed);
        if convert(text, self.inflection, &mut renamed) {
            self.flush_to(key.start as usize);
            json::push_string_bytes(&mut self.out, &renamed);
            self.copied = key.end as usize;
        }
        self.renamed = renamed;
    }
}
