//! The Persona event envelope, read from the scanned tape in any key inflection:
//! `{"data":{"type":"event","id":…,"attributes":{"name":…,"created-at":…,
//! "payload":{"data":{"type":…,"id":…},"included":[…]}}}}`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::inflection::form_of;
use crate::json::{self, Kind, Node};

/// The routing metadata of one event. As request headers these are
/// `x-persona-event-id`, `x-persona-event-name`, `x-persona-event-created-at`,
/// `x-persona-resource-type`, `x-persona-resource-id` and `x-persona-attempt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub event_id: String,
    pub event_name: String,
    pub created_at: String,
    pub resource_type: String,
    pub resource_id: String,
    /// From `Persona-Webhook-Attempts-Made`, when present and a number.
    pub attempt: Option<String>,
}

impl Metadata {
    /// The routing headers, in a fixed order (borrowed: nothing is copied per delivery).
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("x-persona-event-id", self.event_id.as_str()),
            ("x-persona-event-name", self.event_name.as_str()),
            ("x-persona-event-created-at", self.created_at.as_str()),
            ("x-persona-resource-type", self.resource_type.as_str()),
            ("x-persona-resource-id", self.resource_id.as_str()),
        ]
        .into_iter()
        .chain(self.attempt.as_deref().map(|a| ("x-persona-attempt", a)))
    }
}

/// The key/value pairs of the object at `index`, as (key node index, value node index).
pub(crate) fn members(tape: &[Node], index: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let end = tape.get(index).map_or(0, |n| n.next as usize);
    let mut i = index + 1;
    core::iter::from_fn(move || {
        if i >= end {
            return None;
        }
        let key = i;
        let value = i + 1;
        i = tape.get(value).map_or(end, |v| v.next as usize);
        Some((key, value))
    })
}

/// Reads one envelope level: the members named in `wanted` (match forms), refusing
/// duplicates. Returns their value indexes in `wanted` order.
struct Level<'a> {
    input: &'a [u8],
    tape: &'a [Node],
    decoded: Vec<u8>,
    form: Vec<u8>,
}

impl Level<'_> {
    fn object<const N: usize>(
        &mut self,
        index: usize,
        at: &str,
        wanted: [&str; N],
    ) -> Result<[Option<usize>; N], String> {
        match self.tape.get(index) {
            Some(n) if n.kind == Kind::Object => {}
            _ => return Err(format!("{at} must be an object")),
        }
        let mut found = [None; N];
        for (k, v) in members(self.tape, index) {
            let Some(key) = self.tape.get(k) else {
                continue;
            };
            let form = form_of(
                json::node_text(self.input, key, &mut self.decoded),
                &mut self.form,
            );
            let slot = wanted.iter().position(|w| w.as_bytes() == form);
            if let Some(entry) = slot.and_then(|slot| found.get_mut(slot)) {
                if entry.is_some() {
                    let name = slot
                        .and_then(|slot| wanted.get(slot))
                        .copied()
                        .unwrap_or("");
                    return Err(format!("{at} has the member {name} twice"));
                }
                *entry = Some(v);
            }
        }
        Ok(found)
    }

    /// A string value safe to carry in a header: printable ASCII, at most 256 bytes.
    fn text_bytes(&mut self, index: Option<usize>, at: &str) -> Result<&[u8], String> {
        let node = index
            .and_then(|i| self.tape.get(i))
            .ok_or_else(|| format!("{at} is missing"))?;
        if node.kind != Kind::String {
            return Err(format!("{at} must be a string"));
        }
        let text = json::node_text(self.input, node, &mut self.decoded);
        if text.is_empty() || text.len() > 256 || !text.iter().all(|b| (0x20..0x7f).contains(b)) {
            return Err(format!("{at} must be 1 to 256 printable ASCII characters"));
        }
        Ok(text)
    }

    /// [`Level::text_bytes`], owned.
    fn text(&mut self, index: Option<usize>, at: &str) -> Result<String, String> {
        // Printable ASCII is UTF-8.
        let text = self.text_bytes(index, at)?;
        Ok(String::from_utf8_lossy(text).into_owned())
    }
}

/// The envelope's parts the rest of the pipeline needs.
pub(crate) struct Envelope {
    pub metadata: Metadata,
}

/// How deep the envelope reads: `payload.data`'s members and `included`'s items are
/// five containers deep. A tape recorded to this depth is enough for [`read`].
pub(crate) const DEPTH: usize = 5;

/// Validates the envelope; `Err` carries a detail naming the first problem.
pub(crate) fn read(
    input: &[u8],
    tape: &[Node],
    attempt: Option<String>,
) -> Result<Envelope, String> {
    let mut level = Level {
        input,
        tape,
        decoded: Vec::new(),
        form: Vec::new(),
    };
    let [data] = level.object(0, "the body", ["data"])?;
    let data = data.ok_or("data is missing")?;
    let [kind, id, attributes] = level.object(data, "data", ["type", "id", "attributes"])?;
    let kind = level.text_bytes(kind, "data.type")?;
    if kind != b"event" {
        return Err(format!(
            "data.type is {}, not \"event\"",
            json::Quoted(&String::from_utf8_lossy(kind))
        ));
    }
    let event_id = level.text(id, "data.id")?;
    let attributes = attributes.ok_or("data.attributes is missing")?;
    let [name, created_at, payload] = level.object(
        attributes,
        "data.attributes",
        ["name", "created-at", "payload"],
    )?;
    let event_name = level.text(name, "data.attributes.name")?;
    let created_at = level.text(created_at, "data.attributes.created-at")?;
    let payload = payload.ok_or("data.attributes.payload is missing")?;
    let [resource, included] =
        level.object(payload, "data.attributes.payload", ["data", "included"])?;
    let resource = resource.ok_or("data.attributes.payload.data is missing")?;
    let [resource_type, resource_id] =
        level.object(resource, "data.attributes.payload.data", ["type", "id"])?;
    let resource_type = level.text(resource_type, "data.attributes.payload.data.type")?;
    let resource_id = level.text(resource_id, "data.attributes.payload.data.id")?;
    if let Some(included) = included {
        let list = tape
            .get(included)
            .ok_or("data.attributes.payload.included is missing")?;
        if list.kind != Kind::Array {
            return Err(String::from(
                "data.attributes.payload.included must be a list",
            ));
        }
        let mut i = included + 1;
        while i < list.next as usize {
            let item = tape
                .get(i)
                .ok_or("data.attributes.payload.included is truncated")?;
            if item.kind != Kind::Object {
                return Err(String::from(
                    "data.attributes.payload.included must hold resource objects",
                ));
            }
            i = item.next as usize;
        }
    }
    Ok(Envelope {
        metadata: Metadata {
            event_id,
            event_name,
            created_at,
            resource_type,
            resource_id,
            attempt,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tape recorded to `DEPTH` gives the envelope the same answer as the full one.
    #[test]
    fn a_tape_to_the_envelope_depth_is_enough() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/events");
        let mut read_both = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let input = std::fs::read(entry.unwrap().path()).unwrap();
            let (mut full, mut shallow) = (Vec::new(), Vec::new());
            if json::scan(&input, 64, &mut full).is_err() {
                continue;
            }
            json::scan_with(&input, 64, DEPTH, &mut shallow, &mut ()).unwrap();
            assert!(shallow.len() < full.len() || full.len() < 40);
            let (a, b) = (read(&input, &full, None), read(&input, &shallow, None));
            match (a, b) {
                (Ok(a), Ok(b)) => assert_eq!(a.metadata, b.metadata),
                (Err(a), Err(b)) => assert_eq!(a, b),
                (a, b) => panic!("{:?} vs {:?}", a.is_ok(), b.is_ok()),
            }
            read_both += 1;
        }
        assert!(read_both >= 10, "{read_both}");
    }
}
