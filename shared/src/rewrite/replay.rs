//! The tape driver: replays a scanned document to the [`Editor`] as the scanner's
//! events, giving each resource's type before its `attributes` (the type may come after
//! them in the document, which the one-pass driver cannot know in time).

use alloc::vec::Vec;

use super::editor::Editor;
use crate::envelope::members;
use crate::inflection::{form_of, match_form};
use crate::json::{self, Hooks, Kind, Node};

/// Feeds `editor` the document `input` scanned in full into `tape`. `Err` (a detail for
/// `invalid_envelope`) when `?type=` entries need the type of a resource whose type is
/// ambiguous: see [`resource_type`].
pub(super) fn replay(
    editor: &mut Editor<'_, true>,
    input: &[u8],
    tape: &[Node],
) -> Result<(), &'static str> {
    Replay {
        editor,
        input,
        tape,
    }
    .value(0)
}

struct Replay<'e, 'a, 'i> {
    editor: &'e mut Editor<'a, true>,
    input: &'i [u8],
    tape: &'i [Node],
}

impl Replay<'_, '_, '_> {
    fn value(&mut self, index: usize) -> Result<(), &'static str> {
        let Some(&node) = self.tape.get(index) else {
            return Ok(());
        };
        let is_object = match node.kind {
            Kind::Object => true,
            Kind::Array => false,
            Kind::Key | Kind::String | Kind::Scalar => {
                self.editor.scalar(node.end as usize);
                return Ok(());
            }
        };
        self.editor.open(is_object, node.start as usize);
        // Looked up on the first `attributes` member that needs it.
        let mut resource_type: Option<u32> = None;
        let end = node.next as usize;
        let mut i = index + 1;
        while i < end {
            if is_object {
                let Some(key) = self.tape.get(i) else {
                    break;
                };
                self.editor.key(
                    self.input,
                    key.start as usize,
                    key.end as usize,
                    key.escaped,
                );
                if self.editor.awaits_resource_type() {
                    let ty = match resource_type {
                        Some(ty) => ty,
                        None => {
                            let form = self::resource_type(self.input, self.tape, index)?;
                            *resource_type.insert(self.editor.add_resource_type(form))
                        }
                    };
                    self.editor.enter_resource(ty);
                }
                i += 1;
            }
            let Some(value) = self.tape.get(i) else {
                break;
            };
            // A container is entered unless nothing in it can change; anything else
            // is one event.
            match value.kind {
                Kind::Object | Kind::Array if !self.editor.skips_value() => self.value(i)?,
                _ => self.editor.scalar(value.end as usize),
            }
            i = value.next as usize;
        }
        self.editor.close(node.end as usize);
        Ok(())
    }
}

/// The match form of the `type` member of the resource object at `index` (an object
/// of the payload with `attributes`), for `?type=` entries.
///
/// Fails safe: a resource whose type is missing, not a string, or given twice (in any
/// inflection; JSON parsers disagree on which of two they keep) is refused, since a
/// `?type=` decision on it could differ from what the origin reads.
fn resource_type(input: &[u8], tape: &[Node], index: usize) -> Result<Vec<u8>, &'static str> {
    const TWICE: &str = "a resource in the payload has \"type\" more than once; the blocklist's ?type= entries need one string type per resource";
    const NOT_A_STRING: &str = "a resource in the payload has a \"type\" that is not a string; the blocklist's ?type= entries need one string type per resource";
    const MISSING: &str = "a resource in the payload (an object with \"attributes\") has no \"type\"; the blocklist's ?type= entries need one string type per resource";
    let mut decoded = Vec::new();
    let mut form = Vec::new();
    let mut found: Option<Vec<u8>> = None;
    for (k, v) in members(tape, index) {
        let Some(key) = tape.get(k) else {
            continue;
        };
        if form_of(json::node_text(input, key, &mut decoded), &mut form) != b"type" {
            continue;
        }
        if found.is_some() {
            return Err(TWICE);
        }
        let text = tape
            .get(v)
            .filter(|value| value.kind == Kind::String)
            .and_then(|value| json::string_text(input, value))
            .ok_or(NOT_A_STRING)?;
        let mut type_form = Vec::new();
        match_form(text.as_bytes(), &mut type_form);
        found = Some(type_form);
    }
    found.ok_or(MISSING)
}
