//! The driver against a fake host: every path, in both capabilities (a host that can
//! set headers after the body, like the native module, and one that cannot, like the
//! proxy-wasm filter).

use std::collections::BTreeMap;
use std::rc::Rc;

use persona_edge_core::{
    Admission, Admit, DedupSettings, Level, Reply, Settlement, signature_header,
};

use super::*;
use crate::native::table::SlotTable;

const EVENT: &[u8] = include_bytes!("../../../tests/fixtures/events/inquiry-approved.json");
const SECRET: &str = "wbhsec_driver";
const NOW: u64 = 1_700_000_000;
const PERSONA: &str = "35.232.44.140:443";
const STRICT: &str = r#"{"sources":{"allow":["persona"]},"signature":{"secrets":["wbhsec_driver"]},"blocklist":["name-first"]}"#;

/// Which host call fails.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Failing {
    Nothing,
    Headers,
    Remove,
    Body,
    Clock,
    Replace,
    Set,
}

struct Fake {
    sets_headers: bool,
    failing: Failing,
    peer: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    peer_reads: usize,
    removed: Vec<String>,
    set: Vec<(String, String)>,
    state: Vec<(String, String)>,
    counters: BTreeMap<&'static str, u64>,
    logs: Vec<(Level, String)>,
    replies: Vec<Reply>,
    status: Option<u16>,
    admissions: usize,
    /// Duplicate suppression's storage, when the test gives one (shared by the fakes
    /// of one test, as Envoy's streams share theirs).
    slots: Option<Rc<SlotTable>>,
    settled: Vec<Settlement>,
}

impl Fake {
    fn new(sets_headers: bool) -> Fake {
        Fake {
            sets_headers,
            failing: Failing::Nothing,
            peer: Some(PERSONA.into()),
            headers: Vec::new(),
            body: Vec::new(),
            peer_reads: 0,
            removed: Vec::new(),
            set: Vec::new(),
            state: Vec::new(),
            counters: BTreeMap::new(),
            logs: Vec::new(),
            replies: Vec::new(),
            status: None,
            admissions: 0,
            slots: None,
            settled: Vec::new(),
        }
    }

    /// A POST of `body` signed at NOW, with `extra` headers.
    fn delivery(sets_headers: bool, body: &[u8], extra: &[(&str, &str)]) -> Fake {
        let mut fake = Fake::new(sets_headers);
        let signature = signature_header(SECRET, NOW, body);
        let length = body.len().to_string();
        let headers = [
            (":method", "POST"),
            (":path", "/webhooks/persona"),
            ("content-type", "application/json"),
            ("persona-signature", signature.as_str()),
            ("content-length", length.as_str()),
            ("x-persona-event-id", "spoofed"),
        ];
        fake.headers = headers
            .iter()
            .chain(extra)
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        fake.body = body.to_vec();
        fake
    }

    fn fails(&self, call: Failing) -> Result<(), String> {
        if self.failing == call {
            Err(format!("{call:?} failed"))
        } else {
            Ok(())
        }
    }

    fn header_set(&self, name: &str) -> Option<&str> {
        self.set
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn state(&self, key: &str) -> Option<&str> {
        self.state
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Host for Fake {
    type CounterId = &'static str;

    fn sets_headers_after_body(&self) -> bool {
        self.sets_headers
    }
    fn peer_address(&mut self) -> Option<String> {
        self.peer_reads += 1;
        self.peer.clone()
    }
    fn request_headers(&mut self) -> Result<Vec<(String, Vec<u8>)>, String> {
        self.fails(Failing::Headers)?;
        Ok(self.headers.clone())
    }
    fn remove_request_header(&mut self, name: &str) -> Result<(), String> {
        self.fails(Failing::Remove)?;
        self.removed.push(name.into());
        Ok(())
    }
    fn set_request_header(&mut self, name: &str, value: &str) -> Result<(), String> {
        self.fails(Failing::Set)?;
        self.set.push((name.into(), value.into()));
        Ok(())
    }
    fn request_body(&mut self, size: usize) -> Result<Vec<u8>, String> {
        self.fails(Failing::Body)?;
        assert_eq!(size, self.body.len());
        Ok(self.body.clone())
    }
    fn replace_request_body(&mut self, size: usize, body: &[u8]) -> Result<(), String> {
        self.fails(Failing::Replace)?;
        assert_eq!(size, self.body.len());
        self.body = body.to_vec();
        Ok(())
    }
    fn send_reply(&mut self, reply: &Reply) {
        self.replies.push(reply.clone());
    }
    fn set_filter_state(&mut self, key: &str, value: &str) {
        self.state.push((key.into(), value.into()));
    }
    fn increment_counter(&mut self, id: &'static str, amount: u64) {
        *self.counters.entry(id).or_default() += amount;
    }
    fn log_enabled(&self, _: Level) -> bool {
        true
    }
    fn log(&mut self, level: Level, message: &str) {
        self.logs.push((level, message.into()));
    }
    fn now(&mut self) -> Result<u64, String> {
        self.fails(Failing::Clock)?;
        Ok(NOW)
    }
    fn response_status(&mut self) -> Option<u16> {
        self.status
    }
    fn admission(&mut self, token: &Admit<'_>) -> Option<Admission> {
        self.admissions += 1;
        self.slots.as_ref().map(|slots| token.admit_slots(&**slots))
    }
    fn settle(&mut self, settlement: &Settlement, settings: &DedupSettings, now: u64) {
        if let Some(slots) = &self.slots {
            settlement.apply_slots(&**slots, settings, now);
        }
        self.settled.push(settlement.clone());
    }
}

/// The counter ids are the counters' names.
fn plugin(config: &str) -> Rc<Plugin<&'static str>> {
    let plugin = Plugin::load(
        config.as_bytes(),
        &|_| None,
        |name| {
            Ok(&*String::leak(
                name.trim_start_matches("persona_edge.").to_string(),
            ))
        },
        &mut |_, _| {},
    );
    Rc::new(plugin.unwrap_or_else(|| panic!("{config}")))
}

/// Runs the request callbacks as Envoy would: headers, then the body in one chunk.
fn deliver(config: &str, fake: &mut Fake) -> Vec<Flow> {
    let mut driver = Driver::new(Some(plugin(config)));
    let body = fake.body.len();
    let mut flows = vec![driver.on_request_headers(fake, body == 0)];
    if body > 0 && flows[0] == Flow::Read {
        flows.push(driver.on_request_body(fake, body, true));
    }
    flows
}

fn error_code(reply: &Reply) -> String {
    let doc: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    doc["errors"][0]["code"].as_str().unwrap().to_string()
}

#[test]
fn forwards_a_rewritten_body_with_headers_set_where_the_host_can() {
    for sets_headers in [false, true] {
        let mut fake = Fake::delivery(sets_headers, EVENT, &[]);
        let flows = deliver(STRICT, &mut fake);
        assert_eq!(flows, [Flow::Read, Flow::Continue], "{sets_headers}");
        assert!(fake.replies.is_empty());
        assert_eq!(fake.peer_reads, 1);
        // Removed at once, in both.
        for name in ["x-persona-event-id", "persona-signature", "content-length"] {
            assert!(fake.removed.contains(&name.to_string()), "{name}");
        }
        assert!(!String::from_utf8_lossy(&fake.body).contains("\"name-first\""));
        assert_ne!(fake.body, EVENT);
        let event_id = "evt_hu12bfFCwgdscq2sFQtavC";
        assert_eq!(fake.state("persona_event_id"), Some(event_id));
        assert_eq!(fake.state("persona_decision"), Some("forward"));
        let stripped: u64 = fake.state("persona_stripped").unwrap().parse().unwrap();
        assert!(stripped > 0);
        if sets_headers {
            assert_eq!(fake.header_set("x-persona-event-id"), Some(event_id));
            let length = fake.body.len().to_string();
            assert_eq!(fake.header_set("content-length"), Some(length.as_str()));
            assert_eq!(fake.state("persona_header.x-persona-event-id"), None);
        } else {
            assert!(fake.set.is_empty());
            assert_eq!(
                fake.state("persona_header.x-persona-event-id"),
                Some(event_id)
            );
        }
        assert_eq!(fake.counters["forwarded"], 1);
        assert_eq!(fake.counters["attributes_stripped"], stripped);
        assert_eq!(fake.logs.len(), 1);
        assert_eq!(fake.logs[0].0, Level::Debug);
    }
}

#[test]
fn resign_sets_the_new_signature_directly_or_through_filter_state() {
    let config = r#"{"sources":{"allow":["persona"]},"signature":{"secrets":["wbhsec_driver"]},"blocklist":["name-first"],"resign":{"secret":"origin"}}"#;
    for sets_headers in [false, true] {
        let mut fake = Fake::delivery(sets_headers, EVENT, &[]);
        deliver(config, &mut fake);
        let want = signature_header("origin", NOW, &fake.body);
        let got = if sets_headers {
            fake.header_set("persona-signature")
        } else {
            fake.state("persona_header.persona-signature")
        };
        assert_eq!(got, Some(want.as_str()), "{sets_headers}");
        assert!(fake.removed.contains(&"persona-signature".to_string()));
    }
}

#[test]
fn refuses_an_unknown_source_before_reading_the_headers() {
    let mut fake = Fake::delivery(true, EVENT, &[]);
    fake.peer = Some("198.51.100.7:1234".into());
    fake.failing = Failing::Headers; // never read
    assert_eq!(deliver(STRICT, &mut fake), [Flow::Stop]);
    assert_eq!(fake.replies.len(), 1);
    assert_eq!(fake.replies[0].status, 403);
    assert_eq!(error_code(&fake.replies[0]), "source_not_allowed");
    assert_eq!(fake.counters["rejected.source_not_allowed"], 1);
    assert_eq!(
        fake.state("persona_decision"),
        Some("reject; status=403; code=source_not_allowed")
    );
    assert_eq!(fake.logs[0].0, Level::Warn);
}

#[test]
fn refuses_at_the_head_and_past_the_declared_length() {
    let mut fake = Fake::delivery(false, EVENT, &[]);
    fake.headers[0].1 = b"PUT".to_vec();
    assert_eq!(deliver(STRICT, &mut fake), [Flow::Stop]);
    assert_eq!(fake.replies[0].status, 405);
    assert!(fake.removed.is_empty());

    // A declared length past the limit: 413 before the body.
    let small = r#"{"sources":{"allow":["persona"]},"signature":{"secrets":["wbhsec_driver"]},"limits":{"max_body_bytes":1024}}"#;
    let mut fake = Fake::delivery(true, EVENT, &[]);
    assert_eq!(deliver(small, &mut fake), [Flow::Stop]);
    assert_eq!(fake.replies[0].status, 413);
    assert_eq!(fake.counters["rejected.body_too_large"], 1);
}

#[test]
fn refuses_a_body_that_grows_past_the_limit() {
    let small = r#"{"sources":{"allow":["persona"]},"signature":{"secrets":["wbhsec_driver"]},"limits":{"max_body_bytes":1024}}"#;
    let mut fake = Fake::delivery(true, EVENT, &[]);
    fake.headers.retain(|(n, _)| n != "content-length"); // chunked
    let mut driver = Driver::new(Some(plugin(small)));
    assert_eq!(driver.on_request_headers(&mut fake, false), Flow::Read);
    assert_eq!(driver.on_request_body(&mut fake, 1000, false), Flow::Read);
    assert_eq!(driver.on_request_body(&mut fake, 2000, false), Flow::Stop);
    assert_eq!(fake.replies[0].status, 413);
    // Later callbacks let the stream be: it was answered.
    assert_eq!(
        driver.on_request_body(&mut fake, 3000, true),
        Flow::Continue
    );
    assert_eq!(fake.replies.len(), 1);
}

#[test]
fn shadow_mode_passes_a_large_body_through_with_the_decision() {
    let shadow = r#"{"mode":"shadow","sources":{"allow":["persona"]},"signature":{"secrets":["wbhsec_driver"]},"limits":{"max_body_bytes":1024}}"#;
    for sets_headers in [false, true] {
        let mut fake = Fake::delivery(sets_headers, EVENT, &[]);
        assert_eq!(deliver(shadow, &mut fake), [Flow::Continue]);
        assert!(fake.replies.is_empty());
        assert_eq!(fake.body, EVENT, "untouched");
        let decision = "reject; status=413; code=body_too_large";
        let header = if sets_headers {
            fake.header_set("x-persona-edge-decision")
        } else {
            fake.state("persona_header.x-persona-edge-decision")
        };
        assert_eq!(header, Some(decision));
        assert_eq!(fake.header_set("content-length"), None);
        assert_eq!(fake.counters["shadow.would_reject.body_too_large"], 1);
        assert_eq!(fake.counters["forwarded"], 1);
    }
}

#[test]
fn acknowledges_unwanted_events() {
    let config = r#"{"sources":{"allow":["persona"]},"signature":{"secrets":["wbhsec_driver"]},"events":{"forward":["account.*"]}}"#;
    let mut fake = Fake::delivery(true, EVENT, &[]);
    assert_eq!(deliver(config, &mut fake), [Flow::Read, Flow::Stop]);
    assert_eq!(fake.replies[0].status, 204);
    assert_eq!(
        fake.state("persona_decision"),
        Some("acknowledge; status=204")
    );
    assert_eq!(fake.counters["acknowledged"], 1);
    assert!(fake.set.is_empty());
}

#[test]
fn a_request_without_a_body_is_decided_at_the_headers() {
    let mut fake = Fake::delivery(true, b"", &[]);
    assert_eq!(deliver(STRICT, &mut fake), [Flow::Stop]);
    assert_eq!(fake.replies[0].status, 400);
}

#[test]
fn trailers_end_the_body() {
    let mut fake = Fake::delivery(true, EVENT, &[]);
    let mut driver = Driver::new(Some(plugin(STRICT)));
    assert_eq!(driver.on_request_headers(&mut fake, false), Flow::Read);
    assert_eq!(
        driver.on_request_body(&mut fake, EVENT.len(), false),
        Flow::Read
    );
    assert_eq!(driver.on_request_trailers(&mut fake), Flow::Continue);
    assert_eq!(fake.state("persona_decision"), Some("forward"));
}

#[test]
fn every_failed_host_call_fails_closed() {
    for failing in [
        Failing::Headers,
        Failing::Remove,
        Failing::Body,
        Failing::Clock,
        Failing::Replace,
        Failing::Set,
    ] {
        let mut fake = Fake::delivery(true, EVENT, &[]);
        fake.failing = failing;
        let flows = deliver(STRICT, &mut fake);
        assert_eq!(flows.last(), Some(&Flow::Stop), "{failing:?}");
        assert_eq!(fake.replies.len(), 1, "{failing:?}");
        assert_eq!(fake.replies[0].status, 500);
        assert_eq!(error_code(&fake.replies[0]), "host_error");
        assert_eq!(fake.counters.get("host_errors"), Some(&1), "{failing:?}");
        assert_eq!(fake.counters.get("forwarded"), None, "{failing:?}");
        let (level, line) = fake.logs.last().unwrap();
        assert_eq!(*level, Level::Error);
        assert!(line.contains(&format!("{failing:?} failed")), "{line}");
        assert_eq!(fake.state("persona_decision"), None, "{failing:?}");
    }
}

#[test]
fn without_a_configuration_every_request_is_refused() {
    let mut fake = Fake::delivery(false, EVENT, &[]);
    let mut driver: Driver<Rc<Plugin<&'static str>>> = Driver::new(None);
    assert_eq!(driver.on_request_headers(&mut fake, false), Flow::Stop);
    assert_eq!(fake.replies[0].status, 500);
    assert_eq!(error_code(&fake.replies[0]), "config_invalid");
    assert_eq!(driver.on_request_body(&mut fake, 10, true), Flow::Stop);
    assert_eq!(fake.replies.len(), 1);
}

#[test]
fn abandoning_answers_500_once() {
    let mut fake = Fake::delivery(true, EVENT, &[]);
    let mut driver = Driver::new(Some(plugin(STRICT)));
    assert_eq!(driver.on_request_headers(&mut fake, false), Flow::Read);
    assert_eq!(driver.abandon(&mut fake, "the filter panicked"), Flow::Stop);
    assert_eq!(error_code(&fake.replies[0]), "host_error");
    assert!(fake.logs.last().unwrap().1.contains("the filter panicked"));
    assert_eq!(driver.on_request_body(&mut fake, 10, true), Flow::Continue);
    assert_eq!(fake.replies.len(), 1);
}

const DEDUP: &str = r#"{"sources":{"allow":["persona"]},"signature":{"secrets":["wbhsec_driver"]},"dedup":{"enabled":true}}"#;

#[test]
fn duplicate_suppression_asks_the_host_and_reads_the_origins_status() {
    let mut fake = Fake::delivery(true, EVENT, &[]);
    let mut driver = Driver::new(Some(plugin(DEDUP)));
    driver.on_request_headers(&mut fake, false);
    // No storage: forwarded.
    assert_eq!(
        driver.on_request_body(&mut fake, EVENT.len(), true),
        Flow::Continue
    );
    assert_eq!(fake.admissions, 1);
    fake.status = Some(200);
    driver.on_response_headers(&mut fake);
    // Nothing was claimed, so nothing to settle.
    assert!(fake.settled.is_empty());

    // Without dedup the storage is never asked, nor anything settled.
    let mut fake = Fake::delivery(true, EVENT, &[]);
    let mut driver = Driver::new(Some(plugin(STRICT)));
    driver.on_request_headers(&mut fake, false);
    driver.on_request_body(&mut fake, EVENT.len(), true);
    fake.status = Some(200);
    driver.on_response_headers(&mut fake);
    driver.on_stream_end(&mut fake);
    assert_eq!(fake.admissions, 0);
    assert!(fake.settled.is_empty());
}

/// One delivery of EVENT through a fresh driver over `slots`, its flows and the
/// driver (for the response phase).
fn deliver_with(
    slots: &Rc<SlotTable>,
    sets_headers: bool,
) -> (Fake, Driver<Rc<Plugin<&'static str>>>, Flow) {
    let mut fake = Fake::delivery(sets_headers, EVENT, &[]);
    fake.slots = Some(slots.clone());
    let mut driver = Driver::new(Some(plugin(DEDUP)));
    assert_eq!(driver.on_request_headers(&mut fake, false), Flow::Read);
    let flow = driver.on_request_body(&mut fake, EVENT.len(), true);
    (fake, driver, flow)
}

#[test]
fn copies_are_answered_at_the_edge_and_failures_release_the_claim() {
    for sets_headers in [false, true] {
        let slots = Rc::new(SlotTable::new());
        let (mut first, mut first_driver, flow) = deliver_with(&slots, sets_headers);
        assert_eq!(flow, Flow::Continue);
        assert!(first.replies.is_empty());

        // A copy while the first is in flight: 409, counted, nothing forwarded.
        let (copy, _, flow) = deliver_with(&slots, sets_headers);
        assert_eq!(flow, Flow::Stop);
        assert_eq!(copy.replies[0].status, 409);
        assert_eq!(error_code(&copy.replies[0]), "delivery_in_flight");
        assert_eq!(copy.counters.get("deduplicated.in_flight"), Some(&1));
        assert_eq!(
            copy.state("persona_decision"),
            Some("reject; status=409; code=delivery_in_flight")
        );

        // The origin failed: the claim is released, the retry goes through.
        first.status = Some(500);
        first_driver.on_response_headers(&mut first);
        assert!(matches!(
            first.settled[..],
            [Settlement::Claimed {
                succeeded: false,
                ..
            }]
        ));
        // Settled once: the end of the stream adds nothing.
        first_driver.on_stream_end(&mut first);
        assert_eq!(first.settled.len(), 1);
        let (mut retry, mut retry_driver, flow) = deliver_with(&slots, sets_headers);
        assert_eq!(flow, Flow::Continue, "{:?}", retry.replies);

        // Delivered: every later copy is a duplicate, answered 200 at the edge.
        retry.status = Some(202);
        retry_driver.on_response_headers(&mut retry);
        let (dup, _, flow) = deliver_with(&slots, sets_headers);
        assert_eq!(flow, Flow::Stop);
        assert_eq!(dup.replies[0].status, 200);
        assert!(dup.replies[0].body.contains(r#""result":"duplicate""#));
        assert_eq!(dup.counters.get("deduplicated.duplicate"), Some(&1));
    }
}

#[test]
fn a_stream_that_ends_without_the_origins_status_releases_the_claim() {
    let slots = Rc::new(SlotTable::new());
    let (mut first, mut driver, flow) = deliver_with(&slots, true);
    assert_eq!(flow, Flow::Continue);
    // The client went away (or the status could not be read): no status, then the end.
    driver.on_response_headers(&mut first);
    assert!(first.settled.is_empty());
    driver.on_stream_end(&mut first);
    assert!(matches!(
        first.settled[..],
        [Settlement::Claimed {
            succeeded: false,
            ..
        }]
    ));
    let (_, _, flow) = deliver_with(&slots, true);
    assert_eq!(flow, Flow::Continue, "the claim was not released");

    // A refused delivery claims nothing and settles nothing.
    let mut fake = Fake::delivery(true, b"{", &[]);
    fake.slots = Some(slots.clone());
    let mut driver = Driver::new(Some(plugin(DEDUP)));
    driver.on_request_headers(&mut fake, false);
    driver.on_request_body(&mut fake, 1, true);
    driver.on_stream_end(&mut fake);
    assert_eq!(fake.replies[0].status, 400);
    assert_eq!((fake.admissions, fake.settled.len()), (0, 0));
}

#[test]
fn headers_split_method_and_drop_pseudo_headers() {
    let raw = vec![
        (String::from(":method"), b"POST".to_vec()),
        (String::from(":path"), b"/webhooks".to_vec()),
        (String::from("content-type"), b"application/json".to_vec()),
        (String::from("x-odd"), vec![b'a', 0xff]),
    ];
    let (method, headers) = split_headers(raw);
    assert_eq!(method, "POST");
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[1].1, "a\u{fffd}");
}
