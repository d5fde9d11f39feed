//! The exchange, driven as a proxy drives it (the head, the body in chunks, a declared
//! length or none), decides every request as `Policy::evaluate` does on the whole of it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use persona_edge_core::{
    Answer, Body, Decision, Exchange, Forwarding, Head, Outcome, Policy, RequestHead,
    signature_header,
};
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "wbhsec_test";
const EVENT: &str = r#"{"data":{"type":"event","id":"evt_1","attributes":{"name":"inquiry.approved","created-at":"2024-01-01T00:00:00Z","payload":{"data":{"type":"inquiry","id":"inq_1","attributes":{"name-first":"Jane","birthdate":"1990-01-01"}}}}}}"#;
const ACCOUNT: &str = r#"{"data":{"type":"event","id":"evt_2","attributes":{"name":"account.created","created-at":"2024-01-01T00:00:00Z","payload":{"data":{"type":"account","id":"act_1","attributes":{}}}}}}"#;

#[derive(Debug)]
enum Ended<'b> {
    Forward(Forwarding<'b>),
    PassThrough(Forwarding<'static>),
    Answer(Answer),
}

/// Head, the body in `chunks` (cumulative sizes), then the whole body.
fn drive<'b>(
    exchange: &mut Exchange<&Policy>,
    head: &RequestHead<'_>,
    declared: Option<usize>,
    chunks: &[usize],
    body: &'b [u8],
) -> Ended<'b> {
    match exchange.head(head, declared) {
        Head::Read { .. } => {}
        Head::Answer(answer) => return Ended::Answer(answer),
        Head::PassThrough(forward) => return Ended::PassThrough(forward),
        Head::Done => panic!("done after the head"),
    }
    let mut sizes: Vec<usize> = chunks.iter().map(|c| c % (body.len() + 1)).collect();
    sizes.sort_unstable();
    sizes.push(body.len());
    for (i, received) in sizes.iter().enumerate() {
        match exchange.body(*received, i + 1 == sizes.len()) {
            Body::More => {}
            Body::Complete => break,
            Body::Answer(answer) => return Ended::Answer(answer),
            Body::PassThrough(forward) => return Ended::PassThrough(forward),
            Body::Done => panic!("done while reading"),
        }
    }
    match exchange.finish(body, NOW) {
        Decision::Forward(forward) => Ended::Forward(forward),
        Decision::Answer(answer) => Ended::Answer(answer),
        Decision::Admit(_) | Decision::Done => panic!("no dedup here"),
    }
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(EVENT.as_bytes().to_vec()),
        Just(ACCOUNT.as_bytes().to_vec()),
        // A valid event with bytes cut or changed.
        (0..EVENT.len(), any::<u8>(), any::<bool>()).prop_map(|(at, byte, cut)| {
            let mut b = EVENT.as_bytes().to_vec();
            if cut {
                b.truncate(at);
            } else {
                b[at] = byte;
            }
            b
        }),
        proptest::collection::vec(any::<u8>(), 0..64),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_exchange_decides_as_evaluate(
        shadow in any::<bool>(),
        blocklist in any::<bool>(),
        only_inquiries in any::<bool>(),
        limit in prop_oneof![Just(1_048_576usize), 1usize..300],
        stranger in any::<bool>(),
        get in any::<bool>(),
        json in any::<bool>(),
        signed in 0u8..3,
        declare in any::<bool>(),
        chunks in proptest::collection::vec(any::<usize>(), 0..4),
        body in body(),
    ) {
        let config = format!(
            r#"{{"mode":"{}","signature":{{"secrets":["{SECRET}"]}},"limits":{{"max_body_bytes":{limit}}}{}{}}}"#,
            if shadow { "shadow" } else { "enforce" },
            if blocklist { r#","blocklist":["name-*"]"# } else { "" },
            if only_inquiries { r#","events":{"forward":["inquiry.*"]}"# } else { "" },
        );
        let policy = Policy::from_json(config.as_bytes()).unwrap();
        let signature = match signed {
            0 => signature_header(SECRET, NOW, &body),
            1 => signature_header("wbhsec_other", NOW, &body),
            _ => String::from("t=1,v1=00"),
        };
        let content_type = if json { "application/json" } else { "text/plain" };
        let headers = [
            ("content-type", content_type),
            ("persona-signature", signature.as_str()),
            ("x-persona-event-id", "spoof"),
        ];
        let head = RequestHead {
            method: if get { "GET" } else { "POST" },
            headers: &headers,
            peer: Some(if stranger { "198.51.100.1:1" } else { "35.232.44.140:1" }),
        };
        let (pending, outcome) = policy.evaluate(&head, &body, NOW);
        let mut exchange = Exchange::new(&policy);
        let declared = declare.then_some(body.len());
        let ended = drive(&mut exchange, &head, declared, &chunks, &body);
        match (&outcome, ended) {
            (Outcome::Reject(r), Ended::Answer(a)) => {
                prop_assert_eq!(a.reply(), &r.reply());
                prop_assert_eq!(a.rejection(), Some(r));
            }
            (Outcome::Acknowledge(m), Ended::Answer(a)) => {
                prop_assert_eq!(a.reply().status, 204);
                prop_assert_eq!(a.metadata(), Some(m));
            }
            (Outcome::Forward(f), Ended::Forward(forward)) => {
                prop_assert_eq!(forward.body(), Some(f.body.as_ref()));
                prop_assert_eq!(forward.decision(), f.verdict.as_str());
                prop_assert_eq!(forward.stripped(), f.stripped);
                prop_assert_eq!(forward.metadata(), f.metadata.as_ref());
                prop_assert_eq!(
                    forward.set_headers().collect::<Vec<_>>(),
                    f.set_headers().collect::<Vec<_>>()
                );
                prop_assert_eq!(
                    forward.remove_headers(),
                    pending.as_ref().unwrap().remove_headers()
                );
            }
            // Shadow mode past the limit: the same decision, without the body.
            (Outcome::Forward(f), Ended::PassThrough(forward)) => {
                prop_assert!(shadow && body.len() > limit);
                prop_assert_eq!(forward.body(), None);
                prop_assert_eq!(forward.decision(), f.verdict.as_str());
                prop_assert_eq!(
                    forward.set_headers().collect::<Vec<_>>(),
                    f.set_headers().collect::<Vec<_>>()
                );
            }
            (outcome, ended) => prop_assert!(false, "evaluate: {outcome:?}\nexchange: {ended:?}"),
        }
        // Decided: every further call is a no-op.
        prop_assert!(matches!(exchange.body(body.len() + 1, true), Body::Done));
        prop_assert!(matches!(exchange.finish(&body, NOW), Decision::Done));
    }
}
