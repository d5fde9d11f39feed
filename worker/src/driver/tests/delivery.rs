//! Forwards, answers, the body, the origin's side, no configuration.

use persona_edge_core::{Body, Decision, Exchange, Head, RequestHead};

use super::fake::*;
use crate::driver::unconfigured;
use crate::error::{BodyError, JsError, SendError};

// ---------------------------------------------------------------------------
// Forwards and answers

#[test]
fn a_forward_is_the_cores_body_and_headers() {
    let mut fake = Fake::new(&[&EVENT[..50], &EVENT[50..120], &EVENT[120..]]);
    assert_eq!(from_origin(run(&mut fake, "")), 200);
    // What the core forwards for the whole body at once.
    let loaded = policy("");
    let policy = loaded.as_ref().as_ref().unwrap();
    let mut exchange = Exchange::new(policy);
    let head = RequestHead {
        method: "POST",
        headers: &HEADERS,
        peer: None,
    };
    assert!(matches!(exchange.head(&head, None), Head::Read { .. }));
    assert!(matches!(exchange.body(EVENT.len(), true), Body::Complete));
    let Decision::Forward(expected) = exchange.finish(EVENT, NOW) else {
        panic!("the core does not forward the event");
    };
    let [sent] = fake.sent.as_slice() else {
        panic!("{:?}", fake.sent)
    };
    assert!(!sent.original);
    assert_eq!(Some(sent.body.as_slice()), expected.body());
    assert!(!String::from_utf8_lossy(&sent.body).contains("Jane"));
    assert_eq!(sent.remove, expected.remove_headers());
    assert!(sent.remove.contains(&"x-persona-event-id".to_string()));
    assert!(
        sent.set
            .contains(&("x-persona-event-id".into(), "evt_1".into()))
    );
    // A plain forward in enforce mode is reported, not logged.
    assert_eq!(fake.kinds, ["forward"]);
    assert!(fake.lines.is_empty(), "{:?}", fake.lines);
    assert!(fake.chunks.is_empty() && !fake.discarded);
}

#[test]
fn an_event_not_forwarded_is_answered_204() {
    let mut fake = Fake::new(&[EVENT]);
    let r = reply(run(&mut fake, r#","events":{"forward":["account.*"]}"#));
    assert_eq!((r.status, r.body.as_str()), (204, ""));
    assert!(fake.sent.is_empty());
    assert_eq!(
        json(&fake.lines[0]),
        json(
            r#"{"persona_edge":"acknowledge","status":204,"event_id":"evt_1","event_name":"inquiry.approved"}"#
        )
    );
}

#[test]
fn a_refused_head_reads_no_body() {
    let mut fake = Fake::new(&[EVENT]);
    let r = reply(run_with(&mut fake, "", &[("content-type", "text/plain")]));
    assert_eq!(r.status, 403);
    assert_eq!(fake.chunks.len(), 1, "the body was read");
    assert_eq!(fake.line_kinds(), ["reject"]);
}

// ---------------------------------------------------------------------------
// The body

const SMALL: &str = r#","limits":{"max_body_bytes":100}"#;

fn too_large_reply() -> persona_edge_core::Reply {
    let loaded = policy(SMALL);
    let policy = loaded.as_ref().as_ref().unwrap();
    policy.check_body_size(101).unwrap_err().reply()
}

#[test]
fn a_body_past_the_limit_is_refused_at_the_chunk_that_passes_it() {
    let mut fake = Fake::new(&[&[b' '; 60], &[b' '; 60], &[b' '; 60]]);
    let r = reply(run(&mut fake, SMALL));
    assert_eq!(r, too_large_reply());
    assert_eq!(fake.chunks.len(), 1, "read on past the limit");
    assert!(fake.discarded, "the rest of the body was not let go");
    assert!(fake.sent.is_empty());
    assert_eq!(fake.line_kinds(), ["reject"]);
}

#[test]
fn a_declared_length_past_the_limit_is_refused_before_reading() {
    let mut fake = Fake::new(&[&[b' '; 60], &[b' '; 60]]);
    let mut headers = HEADERS.to_vec();
    headers.push(("content-length", "120"));
    let r = reply(run_with(&mut fake, SMALL, &headers));
    assert_eq!(r, too_large_reply());
    assert_eq!(fake.chunks.len(), 2, "the body was read");
    assert!(fake.sent.is_empty());
}

#[test]
fn shadow_mode_sends_a_large_body_on_unread() {
    let shadow = r#","mode":"shadow","limits":{"max_body_bytes":100}"#;
    let decision = (
        "x-persona-edge-decision".to_string(),
        "reject; status=413; code=body_too_large".to_string(),
    );
    // Streamed: what was read goes first, the rest follows unread.
    let mut fake = Fake::new(&[&[b'a'; 60], &[b'b'; 60], &[b'c'; 60]]);
    assert_eq!(from_origin(run(&mut fake, shadow)), 200);
    let [sent] = fake.sent.as_slice() else {
        panic!()
    };
    assert!(sent.original);
    assert_eq!(sent.body, [[b'a'; 60], [b'b'; 60]].concat());
    assert_eq!(fake.chunks.len(), 1);
    assert_eq!(sent.set, std::slice::from_ref(&decision));
    assert!(sent.remove.is_empty());
    assert_eq!(
        json(&fake.lines[0]),
        json(
            r#"{"persona_edge":"shadow","decision":"reject; status=413; code=body_too_large","status":413,"code":"body_too_large"}"#
        )
    );
    // Declared: nothing is read.
    let mut fake = Fake::new(&[&[b'a'; 60], &[b'b'; 60]]);
    let mut headers = HEADERS.to_vec();
    headers.push(("content-length", "120"));
    assert_eq!(from_origin(run_with(&mut fake, shadow, &headers)), 200);
    let [sent] = fake.sent.as_slice() else {
        panic!()
    };
    assert!(sent.original && sent.body.is_empty());
    assert_eq!(sent.set, [decision]);
    assert_eq!(fake.chunks.len(), 2);
}

#[test]
fn a_body_that_breaks_off_is_refused() {
    let mut fake = Fake::new(&[&EVENT[..40]]);
    fake.chunks.push_back(Err(BodyError::Read(JsError(
        "Network connection lost.".into(),
    ))));
    let r = reply(run(&mut fake, ""));
    assert_eq!(r.status, 400);
    assert_eq!(
        json(&r.body)["errors"][0]["detail"],
        "the body could not be read to its end (Network connection lost.)"
    );
    assert!(fake.sent.is_empty());
    let mut fake = Fake::new(&[]);
    fake.chunks.push_back(Err(BodyError::NotBytes));
    let r = reply(run(&mut fake, ""));
    assert_eq!(
        json(&r.body)["errors"][0]["detail"],
        "the body could not be read to its end (the body stream gave a chunk that is not bytes)"
    );
}

// ---------------------------------------------------------------------------
// The origin's side

#[test]
fn an_origin_that_cannot_be_reached_is_a_502() {
    let mut fake = Fake::new(&[EVENT]);
    fake.origin = Err(SendError::Unreachable(JsError(
        "connect ECONNREFUSED 10.0.0.7".into(),
    )));
    let r = reply(run(&mut fake, ""));
    assert_eq!(r.status, 502);
    assert!(!r.body.contains("10.0.0.7"), "{}", r.body);
    assert_eq!(fake.line_kinds(), ["origin_error", "reject"]);
    assert_eq!(
        json(&fake.lines[0])["error"],
        "connect ECONNREFUSED 10.0.0.7"
    );
    assert_eq!(json(&fake.lines[1])["code"], "origin_unreachable");
}

#[test]
fn a_request_that_cannot_be_built_fails_closed() {
    let mut fake = Fake::new(&[EVENT]);
    fake.origin = Err(SendError::Request(JsError("invalid header value".into())));
    let r = reply(run(&mut fake, ""));
    assert_eq!(r.status, 500);
    assert_eq!(json(&r.body)["errors"][0]["code"], "host_error");
    assert!(!r.body.contains("invalid header value"));
    assert_eq!(fake.line_kinds(), ["host_error"]);
    assert_eq!(
        json(&fake.lines[0])["error"],
        "building the forwarded request: invalid header value"
    );
}

// ---------------------------------------------------------------------------
// Without a configuration

#[test]
fn without_a_configuration_the_answer_is_generic_and_the_log_has_the_problems() {
    let mut fake = Fake::new(&[]);
    let problem = "PERSONA_EDGE_CONFIG: signature.secrets[0]: wbhsec_pasted";
    let r = unconfigured(&mut fake, None, vec![problem.to_string()]);
    assert_eq!(r.status, 500);
    assert!(!r.body.contains("wbhsec_pasted"));
    assert_eq!(
        json(&r.body)["errors"][0]["detail"],
        "the filter has no valid configuration; see the Worker's log"
    );
    let line = json(&fake.lines[0]);
    assert_eq!(line["mode"], "none");
    assert_eq!(line["problems"], serde_json::json!([problem]));
}
