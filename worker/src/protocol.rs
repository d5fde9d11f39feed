//! What the Worker and an event's Durable Object say to each other: a POST to
//! `/<operation>` whose body and answer are `name=value` lines (plain text: the
//! Worker links no JSON parser for it, see docs/worker.md, Size).
//!
//! | operation | request | answer |
//! |---|---|---|
//! | `admit` | `event_id`, `ttl_seconds`, `in_flight_seconds` | the admission (`admission` and `since`, `delivered_at` or `retry_after`); a forward is claimed (stored in flight) |
//! | `peek` | same | the admission, nothing stored (shadow mode), and `stored`: whether the object holds a record at all |
//! | `settle` | same, `since` (the claim), `succeeded` | `settled`: whether the claim was still the object's |
//! | `delivered` | same | records a delivery without a claim (shadow mode) |

use persona_edge_core::dedup::{Admission, Claim, DedupSettings};
use persona_edge_core::{Admit, Settlement};

/// The origin of the URLs the Worker posts to an object (any would do: the object
/// reads only the path).
pub const OBJECT_ORIGIN: &str = "https://persona-edge-dedup";

/// An operation of the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Enforce mode: look the event up and claim it when it is to be forwarded.
    Admit,
    /// Shadow mode: look only.
    Peek,
    /// Enforce mode, after the origin answered: end the claim.
    Settle,
    /// Shadow mode, after the origin took the delivery: record it.
    Delivered,
}

impl Op {
    pub const fn as_str(self) -> &'static str {
        match self {
            Op::Admit => "admit",
            Op::Peek => "peek",
            Op::Settle => "settle",
            Op::Delivered => "delivered",
        }
    }

    /// The operation a request's path names (`/admit`).
    pub fn from_path(path: &str) -> Option<Op> {
        [Op::Admit, Op::Peek, Op::Settle, Op::Delivered]
            .into_iter()
            .find(|op| path.trim_start_matches('/') == op.as_str())
    }
}

/// One request to an event's object.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub event_id: String,
    pub settings: DedupSettings,
    pub since: Option<u64>,
    pub succeeded: Option<bool>,
}

impl Message {
    /// The lookup of an admission token: claimed in enforce mode, looked at in shadow.
    pub fn admit(token: &Admit<'_>) -> (Op, Message) {
        let op = if token.claims() { Op::Admit } else { Op::Peek };
        let message = Message {
            event_id: token.event_id().to_string(),
            settings: *token.settings(),
            since: None,
            succeeded: None,
        };
        (op, message)
    }

    /// What the exchange says to record once the origin answered.
    pub fn settle(settlement: &Settlement, settings: &DedupSettings) -> (Op, Message) {
        let (op, since, succeeded) = match settlement {
            Settlement::Claimed {
                claim, succeeded, ..
            } => (Op::Settle, Some(claim.since), Some(*succeeded)),
            Settlement::Delivered { .. } => (Op::Delivered, None, None),
        };
        let message = Message {
            event_id: settlement.event_id().to_string(),
            settings: *settings,
            since,
            succeeded,
        };
        (op, message)
    }

    pub fn to_text(&self) -> String {
        let mut fields = vec![
            ("event_id", self.event_id.clone()),
            ("ttl_seconds", self.settings.ttl_seconds.to_string()),
            (
                "in_flight_seconds",
                self.settings.in_flight_seconds.to_string(),
            ),
        ];
        if let Some(since) = self.since {
            fields.push(("since", since.to_string()));
        }
        if let Some(succeeded) = self.succeeded {
            fields.push(("succeeded", succeeded.to_string()));
        }
        to_lines(&fields)
    }

    pub fn from_text(text: &str) -> Option<Message> {
        let fields = Fields(text);
        let settings = DedupSettings {
            ttl_seconds: fields.number("ttl_seconds").filter(|&n| n >= 1)?,
            in_flight_seconds: fields.number("in_flight_seconds").filter(|&n| n >= 1)?,
            // Each event has its own object: the table size is the Envoy filter's.
            capacity: 1,
        };
        Some(Message {
            event_id: fields
                .get("event_id")
                .filter(|id| !id.is_empty())?
                .to_string(),
            settings,
            since: fields.number("since"),
            succeeded: fields.get("succeeded").and_then(|s| s.parse().ok()),
        })
    }

    /// The claim a `settle` ends, with whether the origin took the delivery.
    pub fn claim(&self) -> Option<(Claim, bool)> {
        Some((Claim { since: self.since? }, self.succeeded?))
    }
}

/// `name=value` lines (values are event ids, numbers and words: no line breaks).
pub fn to_lines(fields: &[(&str, String)]) -> String {
    let lines: Vec<String> = fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
    lines.join("\n")
}

/// Reads `name=value` lines; the first line with a name counts.
struct Fields<'a>(&'a str);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .lines()
            .filter_map(|line| line.split_once('='))
            .find_map(|(n, v)| (n == name).then_some(v))
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.get(name)?.parse().ok()
    }
}

pub fn admission_to_text(admission: &Admission) -> String {
    let (name, field, value) = match *admission {
        Admission::Forward { claim } => ("forward", "since", claim.since),
        Admission::Duplicate { delivered_at } => ("duplicate", "delivered_at", delivered_at),
        Admission::InFlight { retry_after } => ("in_flight", "retry_after", retry_after),
    };
    to_lines(&[("admission", name.into()), (field, value.to_string())])
}

pub fn admission_from_text(text: &str) -> Option<Admission> {
    let fields = Fields(text);
    match fields.get("admission")? {
        "forward" => Some(Admission::Forward {
            claim: Claim {
                since: fields.number("since")?,
            },
        }),
        "duplicate" => Some(Admission::Duplicate {
            delivered_at: fields.number("delivered_at")?,
        }),
        "in_flight" => Some(Admission::InFlight {
            retry_after: fields.number("retry_after")?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let message = Message {
            event_id: "evt_1 =a".into(),
            settings: DedupSettings {
                ttl_seconds: 259_200,
                in_flight_seconds: 30,
                capacity: 1,
            },
            since: Some(1_767_225_600),
            succeeded: Some(false),
        };
        assert_eq!(
            message.to_text(),
            "event_id=evt_1 =a\nttl_seconds=259200\nin_flight_seconds=30\nsince=1767225600\nsucceeded=false"
        );
        assert_eq!(
            Message::from_text(&message.to_text()),
            Some(message.clone())
        );
        assert_eq!(
            message.claim(),
            Some((
                Claim {
                    since: 1_767_225_600
                },
                false
            ))
        );
        let bare = Message {
            since: None,
            succeeded: None,
            ..message
        };
        assert_eq!(Message::from_text(&bare.to_text()), Some(bare.clone()));
        assert_eq!(bare.claim(), None);
        for bad in [
            "",
            "garbage",
            "event_id=\nttl_seconds=1\nin_flight_seconds=1",
            "event_id=e\nttl_seconds=0\nin_flight_seconds=1",
            "event_id=e\nttl_seconds=1",
            "event_id=e\nttl_seconds=-1\nin_flight_seconds=1",
        ] {
            assert_eq!(Message::from_text(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn admissions_round_trip() {
        for admission in [
            Admission::Forward {
                claim: Claim { since: 17 },
            },
            Admission::Duplicate { delivered_at: 18 },
            Admission::InFlight { retry_after: 19 },
        ] {
            assert_eq!(
                admission_from_text(&admission_to_text(&admission)),
                Some(admission)
            );
        }
        assert_eq!(
            admission_to_text(&Admission::InFlight { retry_after: 19 }),
            "admission=in_flight\nretry_after=19"
        );
        assert_eq!(admission_from_text("admission=forward"), None);
        assert_eq!(admission_from_text("admission=maybe\nsince=1"), None);
        assert_eq!(admission_from_text("settled=true"), None);
    }

    #[test]
    fn operations_are_paths() {
        for op in [Op::Admit, Op::Peek, Op::Settle, Op::Delivered] {
            assert_eq!(Op::from_path(&format!("/{}", op.as_str())), Some(op));
        }
        assert_eq!(Op::from_path("/forget"), None);
    }

    #[test]
    fn settlements_become_messages() {
        let settings = DedupSettings {
            ttl_seconds: 10,
            in_flight_seconds: 5,
            capacity: 64,
        };
        let claimed = Settlement::Claimed {
            event_id: "evt_1".into(),
            claim: Claim { since: 7 },
            succeeded: true,
        };
        let (op, message) = Message::settle(&claimed, &settings);
        assert_eq!(op, Op::Settle);
        assert_eq!(
            message.to_text(),
            "event_id=evt_1\nttl_seconds=10\nin_flight_seconds=5\nsince=7\nsucceeded=true"
        );
        let (op, message) = Message::settle(
            &Settlement::Delivered {
                event_id: "evt_1".into(),
            },
            &settings,
        );
        assert_eq!(op, Op::Delivered);
        assert_eq!(message.claim(), None);
    }
}
