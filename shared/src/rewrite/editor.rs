//! The rewrite engine: fed a document's events in order (the scanner's [`json::Hooks`]),
//! it decides every change and records it as an edit of the input.

use alloc::vec::Vec;

use super::decisions::Decisions;
use crate::blocklist::{Blocklist, KeyPath};
use crate::inflection::{Inflection, convert, form_of, has_form, match_form};
use crate::json;

/// Where in the document a value sits, which decides what may change there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Zone {
    /// The envelope, level by level down to `payload`.
    Root,
    EventData,
    EventAttributes,
    /// Outside the payload, with keys renamed: only renames happen here.
    Outside,
    /// Nothing changes here: outside the payload with keys kept as they are, and
    /// inside a removed value. A driver may skip what is in it.
    Untouched,
    /// Inside the payload, outside any `attributes` object: the key path is tracked.
    Payload,
    /// Inside an `attributes` object; the resource's type, as an index into the
    /// editor's `types` (known only when the tape replay looked it up).
    Attributes(Option<u32>),
}

impl Zone {
    /// The zone of a member's value in an object of this zone outside `attributes`:
    /// `is` tells whether the member's key has a match form. An `attributes` object in
    /// the payload is `Attributes(None)` until its resource's type is given.
    fn of_member(self, renames: bool, mut is: impl FnMut(&[u8]) -> bool) -> Zone {
        match self {
            Zone::Root if is(b"data") => Zone::EventData,
            Zone::EventData if is(b"attributes") => Zone::EventAttributes,
            Zone::EventAttributes if is(b"payload") => Zone::Payload,
            Zone::Payload if is(b"attributes") => Zone::Attributes(None),
            Zone::Payload => Zone::Payload,
            _ if renames => Zone::Outside,
            _ => Zone::Untouched,
        }
    }
}

/// An open container, as the editor sees it.
#[derive(Clone, Copy)]
struct Frame {
    zone: Zone,
    is_object: bool,
    /// The zone of the current member's value (objects only).
    child: Zone,
    /// The current member is removed, from this byte to the end of its value. (Byte
    /// offsets are u32 here, for a smaller frame: the scanner refuses longer bodies.)
    removing_from: Option<u32>,
    /// Some member before the current one is kept.
    kept_any: bool,
    /// A removed first member ended here: the next key takes its separator with it.
    join_next: Option<u32>,
    /// The current member's key is the last step of the editor's path.
    on_path: bool,
}

impl Frame {
    fn new(zone: Zone, is_object: bool) -> Frame {
        Frame {
            zone,
            is_object,
            child: Zone::Untouched,
            removing_from: None,
            kept_any: false,
            join_next: None,
            on_path: false,
        }
    }
}

/// The changes to the input, in input order: ranges left out or replaced.
#[derive(Default)]
struct Edits {
    /// `(from, to, text_end)`: input `from..to` becomes `texts` from the previous
    /// edit's `text_end` to this one's (nothing, for a removal).
    list: Vec<(usize, usize, usize)>,
    texts: Vec<u8>,
}

impl Edits {
    /// Leaves input `from..to` out, merged with the last edit when they touch.
    fn remove(&mut self, from: usize, to: usize) {
        match self.list.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => self.list.push((from, to, self.texts.len())),
        }
    }

    /// Writes `key` (key text) as a JSON string in place of input `from..to`.
    fn replace_key(&mut self, from: usize, to: usize, key: &[u8]) {
        json::push_string_bytes(&mut self.texts, key);
        self.list.push((from, to, self.texts.len()));
    }

    /// The input with the edits applied.
    fn apply(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + self.texts.len());
        let (mut copied, mut text_from) = (0, 0);
        for &(from, to, text_end) in &self.list {
            out.extend_from_slice(input.get(copied..from).unwrap_or_default());
            // Removals (most edits) have no text.
            if text_end > text_from {
                out.extend_from_slice(self.texts.get(text_from..text_end).unwrap_or_default());
            }
            copied = to;
            text_from = text_end;
        }
        out.extend_from_slice(input.get(copied..).unwrap_or_default());
        out
    }
}

/// Where the separator before the member whose key starts at `key` begins: just after
/// the previous value (white space, the comma, white space).
fn previous_value_end(input: &[u8], key: usize) -> usize {
    let mut at = key;
    let back_over_space = |at: &mut usize| {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = at.checked_sub(1).and_then(|i| input.get(i))
        {
            *at -= 1;
        }
    };
    back_over_space(&mut at);
    if at.checked_sub(1).and_then(|i| input.get(i)) == Some(&b',') {
        at -= 1;
    }
    back_over_space(&mut at);
    at
}

/// Writes the key at `span` in the target inflection when that changes it. Out of
/// line: the key hook stays small enough to be inlined into the scanner.
#[inline(never)]
fn rename(
    text: &[u8],
    inflection: Inflection,
    span: core::ops::Range<usize>,
    scratch: &mut Vec<u8>,
    edits: &mut Edits,
) {
    if convert(text, inflection, scratch) {
        edits.replace_key(span.start, span.end, scratch);
    }
}

/// The one place that knows what changes in a body: the zone of each key (the
/// envelope, the payload, an `attributes` object), the blocklist's decision, the
/// separator a removed member takes with it, renamed keys, and the output.
///
/// `TYPED`: whether a driver gives resources' types (the tape replay does). The one
/// engine is compiled once per driver, so that each copy of the key hook has one
/// caller and is inlined into it: shared by both drivers, it was called out of line
/// and the one-pass rewrite cost about 6% more instructions per 20 KB event. The
/// one-pass copy also leaves out the `?type=` code it never runs.
pub(super) struct Editor<'a, const TYPED: bool> {
    blocklist: &'a Blocklist,
    /// Keys are written in this inflection (`Preserve`: as they are).
    inflection: Inflection,
    /// The innermost open container (before the first, the document level); kept out
    /// of `parents` because every event reads it.
    top: Frame,
    parents: Vec<Frame>,
    edits: Edits,
    /// Whether a decision depends on the key alone (no paths, no `?type=`): then it
    /// is remembered per key text in `decisions` (otherwise empty).
    by_key: bool,
    decisions: Decisions,
    decoded: Vec<u8>,
    form: Vec<u8>,
    renamed: Vec<u8>,
    /// With path entries: the match forms of the keys from the payload down to the
    /// current one. Empty otherwise.
    path: KeyPath,
    tracks_path: bool,
    /// The match forms of the resources' types given by the tape replay.
    types: Vec<Vec<u8>>,
    stripped: usize,
}

impl<'a, const TYPED: bool> Editor<'a, TYPED> {
    /// For a body of `len` bytes.
    pub(super) fn new(blocklist: &'a Blocklist, inflection: Inflection, len: usize) -> Self {
        debug_assert!(TYPED || !blocklist.uses_types(), "?type= needs the replay");
        Editor {
            blocklist,
            inflection,
            // Arrays are transparent, so the document level is one around the root.
            top: Frame::new(Zone::Root, false),
            parents: Vec::with_capacity(16),
            edits: Edits::default(),
            by_key: blocklist.decides_by_key(),
            decisions: if blocklist.decides_by_key() {
                Decisions::for_body(len)
            } else {
                Decisions::default()
            },
            decoded: Vec::new(),
            form: Vec::new(),
            renamed: Vec::new(),
            path: KeyPath::default(),
            tracks_path: blocklist.uses_paths(),
            types: Vec::new(),
            stripped: 0,
        }
    }

    /// A value inside the innermost container ended at `end`.
    #[inline]
    fn value_end(&mut self, end: usize) {
        let frame = &mut self.top;
        let Some(from) = frame.removing_from.take() else {
            return;
        };
        if !frame.kept_any {
            // First remaining member: the separator after it goes with the next key.
            frame.join_next = Some(end as u32);
        }
        self.stripped += 1;
        self.edits.remove(from as usize, end);
    }

    /// Whether nothing in the value that comes next can change: a driver that can
    /// skip it may report it as a scalar ending where it ends.
    pub(super) fn skips_value(&self) -> bool {
        let zone = if self.top.is_object {
            self.top.child
        } else {
            self.top.zone
        };
        zone == Zone::Untouched
    }

    /// Whether the member whose key was just given is a resource's `attributes` whose
    /// decisions need the resource's type (`?type=` entries), which the driver must
    /// then give with [`Editor::enter_resource`].
    pub(super) fn awaits_resource_type(&self) -> bool {
        TYPED
            && self.blocklist.uses_types()
            && self.top.is_object
            && self.top.child == Zone::Attributes(None)
    }

    /// Keeps a resource type's match form; the index is for [`Editor::enter_resource`].
    pub(super) fn add_resource_type(&mut self, form: Vec<u8>) -> u32 {
        self.types.push(form);
        // At most one per object of the body, whose length fits in a u32.
        self.types.len() as u32 - 1
    }

    /// The current member is the `attributes` of a resource of this type.
    pub(super) fn enter_resource(&mut self, resource_type: u32) {
        self.top.child = Zone::Attributes(Some(resource_type));
    }

    /// The rewritten body and how many attributes were removed, once every event of
    /// a valid document was given.
    pub(super) fn finish(self, input: &[u8]) -> (Vec<u8>, usize) {
        (self.edits.apply(input), self.stripped)
    }
}

impl<const TYPED: bool> json::Hooks for Editor<'_, TYPED> {
    fn open(&mut self, is_object: bool, _start: usize) {
        let parent = &self.top;
        // Arrays are transparent: `included` elements are in the payload.
        let zone = if parent.is_object {
            parent.child
        } else {
            parent.zone
        };
        let parent = core::mem::replace(&mut self.top, Frame::new(zone, is_object));
        self.parents.push(parent);
    }

    fn key(&mut self, input: &[u8], start: usize, end: usize, escaped: bool) {
        let frame = &mut self.top;
        if let Some(removed_end) = frame.join_next.take() {
            self.edits.remove(removed_end as usize, start);
        }
        if frame.zone == Zone::Untouched {
            frame.kept_any = true;
            return;
        }
        let text = json::quoted_text(input, start..end, escaped, &mut self.decoded);
        // With path entries, every key in the payload is a step of the path, replacing
        // the previous member's.
        let on_path = self.tracks_path && matches!(frame.zone, Zone::Payload | Zone::Attributes(_));
        if on_path {
            if frame.on_path {
                self.path.pop();
            }
            match_form(text, &mut self.form);
            self.path.push(&self.form);
            frame.on_path = true;
        }
        let renames = self.inflection != Inflection::Preserve;
        frame.child = match frame.zone {
            Zone::Attributes(resource_type) => {
                let (blocklist, form) = (self.blocklist, &mut self.form);
                // The one-pass copy meets no `?type=` entries (see `plan`): there a
                // decision depends on the key alone exactly when no path is tracked.
                let by_key = if TYPED { self.by_key } else { !on_path };
                let remove = if by_key {
                    // Most keys cannot match at all: that is known without the memo's hash.
                    blocklist.may_remove_key(text)
                        && self
                            .decisions
                            .get_or_insert(text, || blocklist.removes_key(form_of(text, form)))
                } else {
                    // Only the replay gives types.
                    let resource_type = resource_type
                        .filter(|_| TYPED)
                        .and_then(|i| self.types.get(i as usize))
                        .map(Vec::as_slice);
                    // On the path, the key's form is known already.
                    let form = if on_path { form } else { form_of(text, form) };
                    blocklist.removes(form, &self.path, resource_type)
                };
                if remove {
                    // After a kept member, the separator before this one goes with it.
                    frame.removing_from = Some(if frame.kept_any {
                        previous_value_end(input, start)
                    } else {
                        start
                    } as u32);
                    // Nothing inside a removed value is decided or renamed.
                    frame.child = Zone::Untouched;
                    return;
                }
                frame.zone
            }
            zone if on_path => zone.of_member(renames, |word| self.form.as_slice() == word),
            zone => {
                let form = &mut self.form;
                zone.of_member(renames, |word| has_form(text, word, form))
            }
        };
        frame.kept_any = true;
        if renames {
            rename(
                text,
                self.inflection,
                start..end,
                &mut self.renamed,
                &mut self.edits,
            );
        }
    }

    fn scalar(&mut self, end: usize) {
        self.value_end(end);
    }

    fn close(&mut self, end: usize) {
        if self.top.on_path {
            self.path.pop();
        }
        if let Some(parent) = self.parents.pop() {
            self.top = parent;
        }
        self.value_end(end);
    }
}
