//! The body rewrite: removes blocked attributes and renames keys, copying every other
//! byte of the original verbatim (numbers, escapes, white space, key order).
//!
//! One engine, two drivers. The [`Editor`] decides everything: the zone of each key
//! (the envelope, the payload, an `attributes` object), the blocklist's decision, the
//! separator a removed member takes with it, renamed keys, and the output (the input
//! with its edits applied, so an untouched document is one copy). It is fed the
//! scanner's events ([`json::Hooks`]) by one of two drivers, which [`plan`] chooses:
//!
//! - **one pass**: the scanner's hooks, while it reads the body. Key patterns, paths
//!   and renames follow from the keys read so far, so every configuration without
//!   `?type=` is rewritten in the scan itself, with a tape of the envelope only;
//! - **replay**: the scanned tape, replayed afterwards, for `?type=` entries: a
//!   resource's `type` may come after its `attributes`, and the replay looks it up
//!   before them.
//!
//! [`Rewrite`] carries a body through both steps for the delivery: the scan (with the
//! tape the plan needs), then the rewrite.

mod decisions;
mod editor;
mod replay;

use alloc::borrow::Cow;
use alloc::vec::Vec;

use crate::blocklist::Blocklist;
use crate::envelope;
use crate::inflection::Inflection;
use crate::json::{self, Node};
use editor::Editor;

/// How a body is read and rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing can change: the scan validates and records the envelope.
    Unchanged,
    /// The editor runs on the scanner's hooks.
    OnePass,
    /// The scan records the whole tape, and the editor runs on its replay.
    Replay,
}

/// The plan for a policy's blocklist and inflection.
pub(crate) fn plan(blocklist: &Blocklist, inflection: Inflection) -> Plan {
    if blocklist.is_empty() && inflection == Inflection::Preserve {
        Plan::Unchanged
    } else if blocklist.uses_types() {
        Plan::Replay
    } else {
        Plan::OnePass
    }
}

impl Plan {
    /// How deep the scan records the tape, and the nodes to reserve for a body of
    /// `len` bytes: the envelope's few dozen, or, for the replay, every node (about one
    /// per 12 bytes of an event).
    fn tape(self, len: usize) -> (usize, usize) {
        match self {
            Plan::Unchanged | Plan::OnePass => (envelope::DEPTH, 64),
            Plan::Replay => (usize::MAX, len / 12 + 16),
        }
    }
}

/// A rewritten body.
pub(crate) struct Rewritten<'b> {
    /// Borrowed when the plan changes nothing.
    pub body: Cow<'b, [u8]>,
    /// How many attributes were removed.
    pub stripped: usize,
}

/// One body's scan and rewrite, as [`plan`] says.
pub(crate) struct Rewrite<'a> {
    /// How deep the scan records the tape.
    keep_depth: usize,
    tape: Vec<Node>,
    engine: Engine<'a>,
}

/// The editor, in its copy for the plan's driver.
enum Engine<'a> {
    Unchanged,
    OnePass(Editor<'a, false>),
    Replay(Editor<'a, true>),
}

impl<'a> Rewrite<'a> {
    /// For a body of `len` bytes.
    pub(crate) fn new(blocklist: &'a Blocklist, inflection: Inflection, len: usize) -> Self {
        Self::with_plan(plan(blocklist, inflection), blocklist, inflection, len)
    }

    fn with_plan(plan: Plan, blocklist: &'a Blocklist, inflection: Inflection, len: usize) -> Self {
        let (keep_depth, nodes) = plan.tape(len);
        Rewrite {
            keep_depth,
            tape: Vec::with_capacity(nodes),
            engine: match plan {
                Plan::Unchanged => Engine::Unchanged,
                Plan::OnePass => Engine::OnePass(Editor::new(blocklist, inflection, len)),
                Plan::Replay => Engine::Replay(Editor::new(blocklist, inflection, len)),
            },
        }
    }

    /// Scans (validates) the body; on the one-pass plan, rewrites it in the same pass.
    pub(crate) fn scan(&mut self, input: &[u8], max_depth: usize) -> Result<(), json::Error> {
        let (keep_depth, tape) = (self.keep_depth, &mut self.tape);
        match &mut self.engine {
            Engine::OnePass(editor) => json::scan_with(input, max_depth, keep_depth, tape, editor),
            Engine::Unchanged | Engine::Replay(_) => {
                json::scan_with(input, max_depth, keep_depth, tape, &mut ())
            }
        }
    }

    /// The scanned tape, at least to the envelope's depth.
    pub(crate) fn tape(&self) -> &[Node] {
        &self.tape
    }

    /// The rewritten body of `input`, after a successful [`Rewrite::scan`] of it. `Err`
    /// (a detail for `invalid_envelope`) when `?type=` entries meet a resource whose
    /// type is ambiguous.
    pub(crate) fn finish(self, input: &[u8]) -> Result<Rewritten<'_>, &'static str> {
        let (body, stripped) = match self.engine {
            Engine::Unchanged => {
                return Ok(Rewritten {
                    body: Cow::Borrowed(input),
                    stripped: 0,
                });
            }
            Engine::OnePass(editor) => editor.finish(input),
            Engine::Replay(mut editor) => {
                replay::replay(&mut editor, input, &self.tape)?;
                editor.finish(input)
            }
        };
        Ok(Rewritten {
            body: Cow::Owned(body),
            stripped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn blocklist(entries: &[&str]) -> Blocklist {
        let entries: Vec<String> = entries.iter().map(|e| String::from(*e)).collect();
        Blocklist::parse(&entries).unwrap()
    }

    fn run(plan: Plan, input: &[u8], list: &Blocklist, inflection: Inflection) -> (Vec<u8>, usize) {
        let mut rewrite = Rewrite::with_plan(plan, list, inflection, input.len());
        rewrite.scan(input, 64).unwrap();
        let r = rewrite.finish(input).unwrap();
        (r.body.into_owned(), r.stripped)
    }

    /// The one-pass rewrite and the tape replay give the same bytes.
    fn both(
        input: &[u8],
        list: &Blocklist,
        inflection: Inflection,
    ) -> ((Vec<u8>, usize), (Vec<u8>, usize)) {
        assert_eq!(plan(list, inflection), Plan::OnePass);
        (
            run(Plan::OnePass, input, list, inflection),
            run(Plan::Replay, input, list, inflection),
        )
    }

    #[test]
    fn the_plan_replays_only_for_types() {
        let none = blocklist(&[]);
        let keys = blocklist(&["name-*", "!name-last"]);
        let paths = blocklist(&["/data/attributes/*", "!/data/attributes/status"]);
        let types = blocklist(&["name-*?type=inquiry"]);
        let exempt_only = blocklist(&["!name-*?type=inquiry"]);
        assert_eq!(plan(&none, Inflection::Preserve), Plan::Unchanged);
        assert_eq!(plan(&exempt_only, Inflection::Preserve), Plan::Unchanged);
        assert_eq!(plan(&none, Inflection::Camel), Plan::OnePass);
        assert_eq!(plan(&keys, Inflection::Preserve), Plan::OnePass);
        assert_eq!(plan(&paths, Inflection::Snake), Plan::OnePass);
        assert_eq!(plan(&types, Inflection::Preserve), Plan::Replay);
        assert_eq!(plan(&types, Inflection::Kebab), Plan::Replay);
        // Only the replay reads below the envelope.
        assert_eq!(Plan::OnePass.tape(12_000), (envelope::DEPTH, 64));
        assert_eq!(Plan::Replay.tape(12_000), (usize::MAX, 1_016));
    }

    #[test]
    fn streaming_and_walking_agree_on_every_fixture() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/events");
        let lists = [
            blocklist(&[
                "name-*",
                "birthdate",
                "address-*",
                "*-number",
                "!address-country-code",
            ]),
            blocklist(&["*"]),
            blocklist(&["*", "!status"]),
            blocklist(&["fields", "id", "type"]),
            blocklist(&["*name*", "tags"]),
            // Path entries (envoy/envoy.yaml's list, Persona's recipe, deeper paths).
            blocklist(&[
                "name-*",
                "native-name-*",
                "birthdate",
                "address-*",
                "*-number",
                "!/data/attributes/fields/selected-country-code",
            ]),
            blocklist(&[
                "/data/attributes/fields/*",
                "!/data/attributes/fields/selected-country-code",
                "!/data/attributes/fields/address-country-code",
            ]),
            blocklist(&["/included/attributes/*", "!/included/attributes/status"]),
            blocklist(&[
                "/data/attributes/*/value",
                "/included/attributes/name-*",
                "name-first",
            ]),
            blocklist(&[
                "/data/attributes/*",
                "!/data/attributes/status",
                "!address-*",
            ]),
        ];
        let renames = [
            blocklist(&[]),
            blocklist(&["name-*", "!/included/attributes/name-last"]),
        ];
        let mut compared = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let input = std::fs::read(entry.unwrap().path()).unwrap();
            let mut tape = Vec::new();
            if json::scan(&input, 64, &mut tape).is_err() {
                continue;
            }
            for list in &lists {
                let (streamed, walked) = both(&input, list, Inflection::Preserve);
                assert_eq!(streamed, walked);
                compared += 1;
            }
            for list in lists.iter().take(2).chain(&renames) {
                for inflection in [Inflection::Kebab, Inflection::Camel, Inflection::Snake] {
                    let (streamed, walked) = both(&input, list, inflection);
                    assert_eq!(streamed, walked);
                    compared += 1;
                }
            }
        }
        assert!(compared >= 100, "{compared}");
    }

    #[test]
    fn streaming_separators_and_nesting() {
        let list = blocklist(&["a", "b*"]);
        for (doc, expected) in [
            (
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"a":1}}}}}}"#,
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{}}}}}}"#,
            ),
            (
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"a":1,"b":2,"c":3}}}}}}"#,
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"c":3}}}}}}"#,
            ),
            (
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{ "c" : 3 , "a" : [1,{"a":2}] , "bb":{} }}}}}}"#,
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{ "c" : 3 }}}}}}"#,
            ),
            (
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"c":{"a":1,"d":{"b":2,"e":[{"a":0}]}},"a":1}}}}}}"#,
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"c":{"d":{"e":[{}]}}}}}}}}"#,
            ),
            (
                r#"{"data":{"attributes":{"payload":{"included":[{"attributes":{"a":1,"x":2}},{"attributes":{"x":1,"a":2}}]}}}}"#,
                r#"{"data":{"attributes":{"payload":{"included":[{"attributes":{"x":2}},{"attributes":{"x":1}}]}}}}"#,
            ),
            (
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"\u0061":1,"b\n":2,"c":"a"}}}}}}"#,
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"c":"a"}}}}}}"#,
            ),
            (
                r#"{"data":{"attributes":{"a":1,"payload":{"a":1,"attributes":{"a":1}}}},"a":{"attributes":{"a":1}}}"#,
                r#"{"data":{"attributes":{"a":1,"payload":{"a":1,"attributes":{}}}},"a":{"attributes":{"a":1}}}"#,
            ),
            (
                "{\n  \"data\": {\"attributes\": {\"payload\": {\"data\": {\"attributes\": {\n    \"a\": 1,\n    \"b\": 2\n  }}}}}\n}\n",
                "{\n  \"data\": {\"attributes\": {\"payload\": {\"data\": {\"attributes\": {\n    \n  }}}}}\n}\n",
            ),
        ] {
            let (streamed, walked) = both(doc.as_bytes(), &list, Inflection::Preserve);
            assert_eq!(String::from_utf8_lossy(&streamed.0), expected, "{doc}");
            assert_eq!(streamed, walked, "{doc}");
        }
    }

    #[test]
    fn renames_next_to_removals() {
        let list = blocklist(&["a", "b*"]);
        for (doc, inflection, expected) in [
            (
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"a":1,"c-d":{"e_f":2,"bX":3},"gH":4}}},"created_at":0}}}"#,
                Inflection::Camel,
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"cD":{"eF":2},"gH":4}}},"createdAt":0}}}"#,
            ),
            (
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"xY":[{"a":1,"zW":2}],"_links":1,"b":{"cD":1}}}}}},"dataX":{"kL":1}}"#,
                Inflection::Snake,
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"x_y":[{"z_w":2}],"_links":1}}}}},"data_x":{"k_l":1}}"#,
            ),
            (
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"\u0061B":1,"a":2}}}}}}"#,
                Inflection::Kebab,
                r#"{"data":{"attributes":{"payload":{"data":{"attributes":{"a-b":1}}}}}}"#,
            ),
        ] {
            let (streamed, walked) = both(doc.as_bytes(), &list, inflection);
            assert_eq!(String::from_utf8_lossy(&streamed.0), expected, "{doc}");
            assert_eq!(streamed, walked, "{doc}");
        }
    }
}
