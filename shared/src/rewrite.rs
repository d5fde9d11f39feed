//! The body rewrite: removes blocked attributes and renames keys, copying every other
//! byte of the original verbatim (numbers, escapes, white space, key order).
//!
//! It walks the scanned tape once. Output is produced lazily: `copied` marks how far
//! the input has been accounted for, and only a removal or a rename flushes the bytes
//! before it, so an untouched document is one copy.

use alloc::vec::Vec;

use crate::blocklist::{Blocklist, KeyPath};
use crate::envelope::{key_form, members};
use crate::inflection::{convert, match_form, Inflection};
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

pub(crate) fn rewrite(input: &[u8], tape: &[Node], blocklist: &Blocklist, inflection: Inflection) -> Rewritten {
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
    stripped: usize,
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
        let Some(node) = self.tape.get(index) else { return };
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

    fn removes(&mut self, resource_type: Option<usize>) -> bool {
        self.path.push(&self.form);
        let ty = resource_type.and_then(|i| self.types.get(i)).map(Vec::as_slice);
        let remove = self.blocklist.removes(&self.form, &self.path, ty);
        self.path.pop();
        remove
    }

    fn object(&mut self, index: usize, zone: Zone) {
        let Some(&node) = self.tape.get(index) else { return };
        let tracks_path = matches!(zone, Zone::Payload | Zone::Attributes(_));
        // Looked up on the first `attributes` member, since `type` may come after it.
        let mut resource_type: Option<Option<usize>> = None;
        let mut kept_any = false;
        let mut after_kept = node.start as usize + 1;
        let mut pairs = members(self.tape, index).peekable();
        while let Some((k, v)) = pairs.next() {
            let (Some(&key), Some(&value)) = (self.tape.get(k), self.tape.get(v)) else { return };
            key_form(self.input, &key, &mut self.decoded, &mut self.form);

            if let Zone::Attributes(ty) = zone {
                if self.removes(ty) {
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
            }

            let child = match zone {
                Zone::Root if self.form == b"data" => Zone::EventData,
                Zone::EventData if self.form == b"attributes" => Zone::EventAttributes,
                Zone::EventAttributes if self.form == b"payload" => Zone::Payload,
                Zone::Payload if self.form == b"attributes" => {
                    let ty = match resource_type {
                        Some(ty) => ty,
                        None => {
                            let ty = self.resource_type(index);
                            resource_type = Some(ty);
                            ty
                        }
                    };
                    Zone::Attributes(ty)
                }
                Zone::Payload | Zone::Attributes(_) => zone,
                _ => Zone::Outside,
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
        let quoted = self.input.get(key.span()).unwrap_or_default();
        let text: &[u8] = if key.escaped {
            &self.decoded
        } else {
            quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default()
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
