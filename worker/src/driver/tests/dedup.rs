//! Duplicate suppression: the Durable Object's answers and failures.

use std::time::Duration;

use persona_edge_core::Settlement;
use persona_edge_core::dedup::{Admission, Claim};

use super::fake::*;
use crate::error::{DedupError, JsError, SendError};
use crate::protocol::Op;

// ---------------------------------------------------------------------------
// Duplicate suppression

const DEDUP: &str = r#","dedup":{"enabled":true}"#;

#[test]
fn a_claimed_forward_is_settled_with_the_origins_answer() {
    for (status, succeeded) in [(200, true), (202, true), (503, false), (203, false)] {
        let mut fake = Fake::new(&[EVENT]);
        fake.origin = Ok(status);
        assert_eq!(from_origin(run(&mut fake, DEDUP)), status);
        assert_eq!(fake.asked, [("evt_1".to_string(), true)]);
        assert_eq!(fake.sent.len(), 1);
        assert_eq!(
            fake.settled,
            [Settlement::Claimed {
                event_id: "evt_1".into(),
                claim: Claim { since: NOW },
                succeeded
            }]
        );
    }
    // No answer from the origin: the claim is released, so Persona's retry goes through.
    let mut fake = Fake::new(&[EVENT]);
    fake.origin = Err(SendError::Unreachable(JsError("refused".into())));
    assert_eq!(reply(run(&mut fake, DEDUP)).status, 502);
    assert!(matches!(
        fake.settled.as_slice(),
        [Settlement::Claimed {
            succeeded: false,
            ..
        }]
    ));
}

#[test]
fn duplicates_and_attempts_in_flight_are_answered_at_the_edge() {
    for admission in [
        Admission::Duplicate {
            delivered_at: NOW - 5,
        },
        Admission::InFlight { retry_after: 7 },
    ] {
        let mut fake = Fake::new(&[EVENT]);
        fake.admission = Ok(admission);
        let r = reply(run(&mut fake, DEDUP));
        assert_eq!(Some(r), admission.reply("evt_1"));
        assert!(fake.sent.is_empty() && fake.settled.is_empty());
        assert_eq!(fake.line_kinds(), [admission.counter().unwrap()]);
    }
}

#[test]
fn a_durable_object_that_fails_lets_the_delivery_through() {
    let mut fake = Fake::new(&[EVENT]);
    fake.admission = Err(DedupError::TimedOut {
        op: Op::Admit,
        after: Duration::from_secs(2),
    });
    assert_eq!(from_origin(run(&mut fake, DEDUP)), 200);
    assert_eq!(fake.sent.len(), 1);
    assert!(fake.settled.is_empty(), "nothing was claimed");
    assert_eq!(
        json(&fake.lines[0]),
        json(
            r#"{"persona_edge":"dedup_error","op":"admit","error":"no answer to admit within 2000 ms","event_id":"evt_1"}"#
        )
    );
    // A failed settle is logged; the delivery is the origin's all the same.
    let mut fake = Fake::new(&[EVENT]);
    fake.settle = Err(DedupError::Failed {
        op: Op::Settle,
        why: "storage on fire".into(),
    });
    assert_eq!(from_origin(run(&mut fake, DEDUP)), 200);
    assert_eq!(fake.line_kinds(), ["dedup_error"]);
    assert_eq!(json(&fake.lines[0])["op"], "settle");
}

#[test]
fn dedup_without_its_binding_is_a_configuration_error() {
    let mut fake = Fake::new(&[EVENT]);
    fake.admission = Err(DedupError::Unbound);
    let r = reply(run(&mut fake, DEDUP));
    assert_eq!(r.status, 500);
    let doc = json(&r.body);
    assert_eq!(doc["errors"][0]["code"], "config_invalid");
    let detail = doc["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains(crate::dedup::BINDING), "{detail}");
    assert!(fake.sent.is_empty());
    assert_eq!(json(&fake.lines[0])["op"], "binding");
}

#[test]
fn shadow_mode_looks_only_and_reports_what_dedup_would_answer() {
    let shadow = r#","mode":"shadow","dedup":{"enabled":true}"#;
    let mut fake = Fake::new(&[EVENT]);
    fake.admission = Ok(Admission::Duplicate { delivered_at: NOW });
    assert_eq!(from_origin(run(&mut fake, shadow)), 200);
    assert_eq!(fake.asked, [("evt_1".to_string(), false)]);
    let [sent] = fake.sent.as_slice() else {
        panic!()
    };
    assert_eq!(sent.body, EVENT, "shadow mode changed the body");
    assert!(sent.set.contains(&(
        "x-persona-edge-decision".into(),
        "duplicate; status=200".into()
    )));
    assert_eq!(fake.line_kinds(), ["shadow", "deduplicated.duplicate"]);
    assert_eq!(json(&fake.lines[1])["mode"], "shadow");
    assert_eq!(
        fake.settled,
        [Settlement::Delivered {
            event_id: "evt_1".into()
        }]
    );
    // The object failing: its line comes first, then the shadow line.
    let mut fake = Fake::new(&[EVENT]);
    fake.admission = Err(DedupError::Failed {
        op: Op::Peek,
        why: "storage on fire".into(),
    });
    assert_eq!(from_origin(run(&mut fake, shadow)), 200);
    assert_eq!(fake.line_kinds(), ["dedup_error", "shadow"]);
}
