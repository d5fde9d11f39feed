//! Duplicate suppression in the real Envoy 1.40 (no mocks), in both packagings: the
//! proxy-wasm filter's table in shared data and the native module's table in its
//! memory. Every Envoy here runs [`WORKERS`] worker threads, each with its own filter
//! instance (its own Wasm VM), so the copies of one event are decided by different
//! threads against the one table of the process. Persona's retries are played as they
//! come: the same body, signed anew each time, from a Persona address.
//!
//! Needs what `tests/tests/envoy.rs` needs (Envoy, the built filter and module); a
//! missing piece fails the test, nothing is skipped.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use persona_edge_core::signature_header;
use persona_edge_tests::dedup::{
    Hold, assert_duplicate, assert_from_origin, assert_in_flight, event, is_duplicate,
};
use persona_edge_tests::envoy::*;
use persona_edge_tests::http::read_response;
use persona_edge_tests::packaged;
use persona_edge_tests::{Answer, Framing, Origin, Response, SECRET, now, send};

/// Worker threads of every Envoy here (the machine has 2 cores: 4 threads also
/// interleave mid-request).
const WORKERS: usize = 4;
const PERSONA_IP: &str = "35.232.44.140";

// ---------------------------------------------------------------------------
// Helpers

/// Forwards Persona's signed deliveries, stripping names, with `dedup` (a JSON object).
fn config(mode: &str, dedup: &str) -> String {
    format!(
        r#"{{"mode":"{mode}","sources":{{"allow":["persona"]}},"signature":{{"secrets":["{SECRET}"]}},"blocklist":["name-*"],"dedup":{dedup}}}"#
    )
}

/// Envoy with [`WORKERS`] workers and `config`, the shipped file otherwise (`change`:
/// one more substitution in it).
fn start(
    packaging: Packaging,
    label: &str,
    config: &str,
    origin: &Origin,
    change: Option<(&str, &str)>,
) -> Envoy {
    Rendered::write(
        packaging,
        &format!("envoy-dedup-{label}"),
        origin,
        Some(config),
        change,
    )
    .launch_with(label, &[], WORKERS)
}

/// A delivery as Persona makes each attempt: signed now, from a Persona address (the
/// last X-Forwarded-For entry: the rendered file trusts one hop).
fn request(body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("Content-Type".into(), "application/json".into()),
        (
            "Persona-Signature".into(),
            signature_header(SECRET, now(), body),
        ),
        ("X-Forwarded-For".into(), PERSONA_IP.into()),
    ]
}

fn deliver_to(addr: SocketAddr, body: &[u8]) -> Response {
    send(
        addr,
        "POST",
        "/webhooks/persona",
        &request(body),
        body,
        Framing::ContentLength,
    )
    .unwrap_or_else(|e| panic!("no answer from Envoy: {e}"))
}

fn deliver(envoy: &Envoy, body: &[u8]) -> Response {
    send(
        envoy.listen,
        "POST",
        "/webhooks/persona",
        &request(body),
        body,
        Framing::ContentLength,
    )
    .unwrap_or_else(|e| panic!("no answer from Envoy: {e}\n{}", envoy.log()))
}

fn deliver_in_background(envoy: &Envoy, body: &[u8], tx: &mpsc::Sender<Response>) {
    let (addr, body, tx) = (envoy.listen, body.to_vec(), tx.clone());
    thread::spawn(move || {
        let _ = tx.send(deliver_to(addr, &body));
    });
}

fn recv(rx: &mpsc::Receiver<Response>, context: &str) -> Response {
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{context}: no answer within 20 s"))
}

/// `copies` deliveries of `body`, each on its own connection, made to arrive at once:
/// each connection sends all but the last byte, then all send their last byte together.
fn simultaneous(envoy: &Envoy, body: &[u8], copies: usize) -> Vec<Response> {
    let barrier = Arc::new(Barrier::new(copies));
    let threads: Vec<_> = (0..copies)
        .map(|_| {
            let (addr, body, barrier) = (envoy.listen, body.to_vec(), barrier.clone());
            thread::spawn(move || {
                let mut message = format!(
                    "POST /webhooks/persona HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
                    body.len()
                );
                for (n, v) in request(&body) {
                    message.push_str(&format!("{n}: {v}\r\n"));
                }
                message.push_str("\r\n");
                let mut bytes = message.into_bytes();
                bytes.extend_from_slice(&body);
                let (head, last) = bytes.split_at(bytes.len() - 1);
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_nodelay(true).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                stream.write_all(head).unwrap();
                barrier.wait();
                stream.write_all(last).unwrap();
                read_response(&mut BufReader::new(stream), "POST").unwrap()
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// How many of Envoy's worker threads accepted a connection on the listener.
fn workers_used(envoy: &Envoy) -> usize {
    let prefix = format!("listener.127.0.0.1_{}.worker_", envoy.listen.port());
    envoy
        .stats(&prefix)
        .iter()
        .filter(|(name, n)| name.ends_with(".downstream_cx_total") && **n > 0)
        .count()
}

/// The duplicate-suppression counters.
fn dedup_counters(envoy: &Envoy) -> (u64, u64) {
    let counters = envoy.counters();
    let get = |name: &str| {
        *counters
            .get(name)
            .unwrap_or_else(|| panic!("no counter {name} in /stats: {counters:?}"))
    };
    (get("deduplicated.duplicate"), get("deduplicated.in_flight"))
}

/// The event ids the origin received, by how often.
fn arrivals_by_id(origin: &Origin) -> BTreeMap<String, usize> {
    let mut by_id = BTreeMap::new();
    for r in origin.requests() {
        let id = r
            .header("x-persona-event-id")
            .unwrap_or_else(|| panic!("a request without the routing header: {:?}", r.headers));
        *by_id.entry(id.to_string()).or_default() += 1;
    }
    by_id
}

// ---------------------------------------------------------------------------
// Enforce mode

packaged! {
/// Eight copies at once while the origin holds the first: one reaches it, the others
/// are answered 409 by the filter instances of the other workers too; once it is
/// delivered, later copies are duplicates. The counters say so.
fn concurrent_copies_reach_the_origin_once(packaging: Packaging) {
    let _serial = serial();
    let hold = Arc::new(Hold::default());
    let origin = hold.origin();
    let envoy = start(packaging, "concurrent", &config("enforce", "{}"), &origin, None);
    assert_eq!(dedup_counters(&envoy), (0, 0), "the counters exist from the start");
    let id = "evt_EnvoyConcurrent00000001";
    let body = event(id);

    hold.hold(1);
    let copies = 8;
    let started = now();
    let (tx, rx) = mpsc::channel();
    let answered = thread::spawn({
        let (addr, body) = (envoy.listen, body.clone());
        move || {
            let barrier = Arc::new(Barrier::new(copies));
            let threads: Vec<_> = (0..copies)
                .map(|_| {
                    let (barrier, body, tx) = (barrier.clone(), body.clone(), tx.clone());
                    thread::spawn(move || {
                        barrier.wait();
                        let _ = tx.send(deliver_to(addr, &body));
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
    });
    for i in 1..copies {
        let r = recv(&rx, "a copy while the first is in flight");
        assert_in_flight(&r, id, 30, &format!("copy {i}\n{}", envoy.log()));
    }
    hold.wait_for_arrivals(1);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(hold.arrivals(), 1, "copies reached the origin");
    hold.release();
    let first = recv(&rx, "the attempt that was forwarded");
    assert_from_origin(&first, 200, "the attempt that was forwarded");
    answered.join().unwrap();
    let delivered = now();

    for attempt in 0..3 {
        assert_duplicate(&deliver(&envoy, &body), id, (started, delivered), &format!("retry {attempt}"));
    }
    assert_eq!(hold.arrivals(), 1, "a duplicate reached the origin");
    let got = origin.requests();
    assert!(!String::from_utf8_lossy(&got[0].body).contains("\"name-first\""));
    assert_eq!(dedup_counters(&envoy), (3, copies as u64 - 1));
    assert_eq!(envoy.counters()["forwarded"], 1);
    let used = workers_used(&envoy);
    assert!(used >= 2, "all {} connections went to one worker thread", copies + 3);

    // Another event is its own.
    assert_from_origin(&deliver(&envoy, &event("evt_EnvoyConcurrent00000002")), 200, "another event");
    assert_eq!(hold.arrivals(), 2);
}
}

packaged! {
/// Fresh events (slots never used), each sent six times at the same instant over
/// separate connections: each reaches the origin exactly once, whichever workers
/// decide its copies. This is the first claim of each slot, where proxy-wasm's
/// compare-and-swap does not protect a missing key by itself.
fn simultaneous_copies_of_fresh_events_reach_the_origin_once(packaging: Packaging) {
    let _serial = serial();
    let origin = Origin::start();
    let envoy = start(packaging, "race", &config("enforce", "{}"), &origin, None);
    let rounds = 400;
    let copies = 6;
    let mut edge = (0, 0);
    for round in 0..rounds {
        let id = format!("evt_EnvoyRace{round:014}");
        let answers = simultaneous(&envoy, &event(&id), copies);
        let mut forwarded = 0;
        for r in &answers {
            if r.status == 409 {
                assert_in_flight(r, &id, 30, &id);
                edge.1 += 1;
            } else if is_duplicate(r, &id) {
                edge.0 += 1;
            } else {
                assert_from_origin(r, 200, &id);
                forwarded += 1;
            }
        }
        assert_eq!(forwarded, 1, "{id}: {forwarded} copies forwarded\n{}", envoy.log());
    }
    let by_id = arrivals_by_id(&origin);
    assert_eq!(by_id.len(), rounds);
    assert!(by_id.values().all(|n| *n == 1), "{by_id:?}");
    assert_eq!(dedup_counters(&envoy), edge);
    println!(
        "{}: {rounds} events x {copies} simultaneous copies: 1 forwarded each, {} answered as duplicates, {} as in flight, over {} worker threads",
        packaging.name(),
        edge.0,
        edge.1,
        workers_used(&envoy)
    );
}
}

packaged! {
/// The origin cannot be reached (Envoy's own 503), fails, answers 203 (a 2xx Persona
/// does not count): each time the retry reaches it. Then it succeeds, and copies are
/// duplicates.
fn failed_attempts_let_the_retry_through(packaging: Packaging) {
    let _serial = serial();
    // The origin's port, closed before Envoy ever connects to it.
    let gone = Origin::start();
    let port = gone.addr.port();
    let envoy = start(packaging, "failures", &config("enforce", "{}"), &gone, None);
    drop(gone);
    thread::sleep(Duration::from_millis(200));
    let id = "evt_EnvoyFailures0000000001";
    let body = event(id);
    let r = deliver(&envoy, &body);
    assert_eq!(r.status, 503, "origin down: {}", r.text());

    let origin = Origin::start_on(
        port,
        Answer {
            status: 500,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: b"origin exploded".to_vec(),
        },
        None,
    );
    assert_from_origin(&deliver(&envoy, &body), 500, "origin failing");
    assert_from_origin(&deliver(&envoy, &body), 500, "origin failing, the retry");
    origin.set_answer(Answer {
        status: 203,
        ..Answer::default()
    });
    assert_from_origin(&deliver(&envoy, &body), 203, "origin answering 203");
    origin.set_answer(Answer::default());
    let before = now();
    assert_from_origin(&deliver(&envoy, &body), 200, "origin succeeding");
    let after = now();
    assert_eq!(origin.requests().len(), 4);
    for attempt in 0..2 {
        assert_duplicate(&deliver(&envoy, &body), id, (before, after), &format!("retry {attempt}"));
    }
    assert_eq!(origin.requests().len(), 4, "a duplicate reached the origin");
    assert_eq!(dedup_counters(&envoy), (2, 0));
}
}

packaged! {
/// An attempt whose origin times out (Envoy's 504 after the route timeout), resets the
/// connection (Envoy's 503), or whose client goes away: the event is left unseen and
/// the next copy reaches the origin, well within `in_flight_seconds`.
fn an_attempt_without_an_answer_leaves_the_event_unseen(packaging: Packaging) {
    let _serial = serial();
    let hold = Arc::new(Hold::default());
    let origin = hold.origin();
    // The route times out after 1 s instead of 4 s.
    let envoy = start(
        packaging,
        "unanswered",
        &config("enforce", r#"{"in_flight_seconds":60}"#),
        &origin,
        Some(("timeout: 4s", "timeout: 1s")),
    );

    // Timed out: Envoy answers 504 while the origin still holds the request.
    let id = "evt_EnvoyTimeout00000000001";
    let body = event(id);
    hold.hold(1);
    let r = deliver(&envoy, &body);
    assert_eq!(r.status, 504, "{}", r.text());
    assert_from_origin(&deliver(&envoy, &body), 200, "after the timeout");
    assert_eq!(hold.arrivals(), 2);
    hold.release();

    // Reset by the origin: Envoy's 503; the retry goes through.
    let id = "evt_EnvoyReset0000000000001";
    let body = event(id);
    origin.set_reset(true);
    let r = deliver(&envoy, &body);
    assert_eq!(r.status, 503, "{}", r.text());
    origin.set_reset(false);
    let before = now();
    assert_from_origin(&deliver(&envoy, &body), 200, "after the reset");
    assert_duplicate(&deliver(&envoy, &body), id, (before, now()), "once delivered");
    assert_eq!(hold.arrivals(), 4);

    // The client goes away while the origin works: the stream ends without an
    // answer, and the next copy goes through.
    let id = "evt_EnvoyClientGone00000001";
    let body = event(id);
    hold.hold(1);
    let mut client = TcpStream::connect(envoy.listen).unwrap();
    let mut message = format!(
        "POST /webhooks/persona HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in request(&body) {
        message.push_str(&format!("{n}: {v}\r\n"));
    }
    message.push_str("\r\n");
    client.write_all(message.as_bytes()).unwrap();
    client.write_all(&body).unwrap();
    hold.wait_for_arrivals(5);
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    let r = loop {
        let r = deliver(&envoy, &body);
        if r.status != 409 || Instant::now() > deadline {
            break r;
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert_from_origin(&r, 200, "after the client went away");
    assert_eq!(hold.arrivals(), 6);
    hold.release();
    assert_eq!(dedup_counters(&envoy).0, 1);
}
}

packaged! {
/// Short windows: an attempt in flight for longer than `in_flight_seconds` counts as
/// dead (the next copy is forwarded, and the dead one's late answer does not touch the
/// new record); a delivered event is forwarded again after `ttl_seconds`.
fn windows_expire(packaging: Packaging) {
    let _serial = serial();
    let hold = Arc::new(Hold::default());
    let origin = hold.origin();
    let (ttl, in_flight) = (3, 2);
    let envoy = start(
        packaging,
        "windows",
        &config(
            "enforce",
            &format!(r#"{{"ttl_seconds":{ttl},"in_flight_seconds":{in_flight}}}"#),
        ),
        &origin,
        None,
    );
    let id = "evt_EnvoyWindows00000000001";
    let body = event(id);

    hold.hold(1);
    let (tx, rx) = mpsc::channel();
    let first_sent = Instant::now();
    deliver_in_background(&envoy, &body, &tx);
    hold.wait_for_arrivals(1);
    assert_in_flight(&deliver(&envoy, &body), id, in_flight, "copy in flight");

    // Past the in-flight window (and within the route's 4 s): forwarded.
    let window_ends = first_sent + Duration::from_millis(in_flight * 1000 + 300);
    thread::sleep(window_ends.saturating_duration_since(Instant::now()));
    let before = now();
    assert_from_origin(&deliver(&envoy, &body), 200, "copy after the in-flight window");
    let delivered = now();
    assert_eq!(hold.arrivals(), 2);
    hold.release();
    assert_from_origin(&recv(&rx, "the first attempt"), 200, "the first attempt");
    assert_duplicate(&deliver(&envoy, &body), id, (before, delivered), "duplicate");

    // Past the TTL: forwarded again (an operator's retry days later).
    thread::sleep(Duration::from_millis(ttl * 1000 + 1200));
    assert_from_origin(&deliver(&envoy, &body), 200, "copy after the TTL");
    assert_eq!(hold.arrivals(), 3);
}
}

packaged! {
/// Far more events than slots (4), each sent twice from several threads at once:
/// events evict each other, so duplicates get through, but no event is ever answered
/// at the edge without having reached the origin itself.
fn more_events_than_slots_never_suppresses_a_distinct_event(packaging: Packaging) {
    let _serial = serial();
    let origin = Origin::start();
    let envoy = start(packaging, "capacity", &config("enforce", r#"{"capacity":4}"#), &origin, None);
    let events = 120;
    let threads = 6;
    let ids: Vec<String> = (0..events).map(|e| format!("evt_EnvoyCapacity{e:012}")).collect();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(ids.iter().map(|id| event(id)).collect());
    // Thread t sends the 40 events from 20 * t on, one after the other: each event is
    // sent by two threads, about 120 deliveries apart (long evicted by then).
    let answers: Arc<Mutex<Vec<(usize, Response)>>> = Arc::default();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (bodies, answers, addr) = (bodies.clone(), answers.clone(), envoy.listen);
            thread::spawn(move || {
                for step in 0..events * 2 / threads {
                    let e = (t * events / threads + step) % events;
                    let r = deliver_to(addr, &bodies[e]);
                    answers.lock().unwrap().push((e, r));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let by_id = arrivals_by_id(&origin);
    let mut held = 0;
    for (e, r) in &answers {
        let id = &ids[*e];
        if r.status == 409 {
            assert_in_flight(r, id, 30, id);
            held += 1;
        } else if is_duplicate(r, id) {
            held += 1;
        } else {
            assert_from_origin(r, 200, id);
        }
    }
    // Every event reached the origin: none was held back by another's record.
    let missing: Vec<&String> = ids.iter().filter(|id| !by_id.contains_key(*id)).collect();
    assert!(missing.is_empty(), "never reached the origin: {missing:?}");
    let arrived: usize = by_id.values().sum();
    assert_eq!(arrived + held, answers.len());
    assert!(arrived > events, "with 4 slots for {events} events, no duplicate got through?");
    println!(
        "{}: {} deliveries of {events} events into 4 slots: {arrived} reached the origin, {held} answered at the edge",
        packaging.name(),
        answers.len()
    );
}
}

// ---------------------------------------------------------------------------
// Shadow mode

packaged! {
/// Shadow mode claims nothing and suppresses nothing: every copy reaches the origin,
/// unchanged; once one was delivered, the others carry the decision enforce mode would
/// have taken.
fn shadow_mode_reports_and_never_suppresses(packaging: Packaging) {
    let _serial = serial();
    let hold = Arc::new(Hold::default());
    let origin = hold.origin();
    let envoy = start(packaging, "shadow", &config("shadow", "{}"), &origin, None);
    let id = "evt_EnvoyShadow000000000001";
    let body = event(id);

    hold.hold(1);
    let (tx, rx) = mpsc::channel();
    deliver_in_background(&envoy, &body, &tx);
    hold.wait_for_arrivals(1);
    assert_from_origin(&deliver(&envoy, &body), 200, "copy in flight");
    hold.release();
    assert_from_origin(&recv(&rx, "the first"), 200, "the first");
    for attempt in 0..2 {
        assert_from_origin(&deliver(&envoy, &body), 200, &format!("retry {attempt}"));
    }
    let got = origin.requests();
    assert_eq!(got.len(), 4, "shadow mode suppressed a delivery");
    for g in &got {
        assert_eq!(g.body, body, "shadow mode changed the body");
    }
    let decisions: Vec<Option<&str>> = got
        .iter()
        .map(|g| g.header("x-persona-edge-decision"))
        .collect();
    assert_eq!(decisions[..2], [Some("forward"), Some("forward")], "{decisions:?}");
    assert_eq!(
        decisions[2..],
        [Some("duplicate; status=200"), Some("duplicate; status=200")],
        "{decisions:?}"
    );
    // Nothing was answered at the edge, so nothing is counted as deduplicated.
    assert_eq!(dedup_counters(&envoy), (0, 0));
    assert_eq!(envoy.counters()["shadow.would_forward"], 4);
}
}

// ---------------------------------------------------------------------------
// Configuration changes

packaged! {
/// The listener (and its plugin configuration) is replaced while an attempt is in
/// flight: the new configuration sees the same table. A delivered event stays a
/// duplicate, the attempt still in flight holds copies off, and its answer, settled by
/// the old configuration's stream, is what the new one finds.
fn a_listener_update_keeps_the_table(packaging: Packaging) {
    let _serial = serial();
    let hold = Arc::new(Hold::default());
    let origin = hold.origin();
    let before_config = config("enforce", "{}");
    let envoy = DynamicEnvoy::start_with(packaging, "dedup-reload", &before_config, &origin, &[], 30, WORKERS);
    envoy.wait_for_lds_updates(1, Duration::from_secs(10));
    let (delivered, in_flight) = ("evt_EnvoyReloadDelivered01", "evt_EnvoyReloadInFlight001");
    let started = now();
    assert_from_origin(&deliver(&envoy.envoy, &event(delivered)), 200, "before the update");
    hold.hold(1);
    let (tx, rx) = mpsc::channel();
    deliver_in_background(&envoy.envoy, &event(in_flight), &tx);
    hold.wait_for_arrivals(2);

    // Another configuration: another blocklist and TTL, same table.
    let after_config = before_config.replace(r#""name-*""#, r#""name-*","birthdate""#).replace(
        r#""dedup":{}"#,
        r#""dedup":{"ttl_seconds":86400}"#,
    );
    assert_ne!(after_config, before_config);
    envoy.set_plugin_config(&after_config);
    envoy.wait_for_lds_updates(2, Duration::from_secs(20));
    let r = deliver(&envoy.envoy, &event(delivered));
    assert_duplicate(&r, delivered, (started, now()), "delivered before the update");
    let r = deliver(&envoy.envoy, &event(in_flight));
    assert_in_flight(&r, in_flight, 30, "in flight across the update");
    hold.release();
    assert_from_origin(&recv(&rx, "the attempt in flight"), 200, "the attempt in flight");
    let r = deliver(&envoy.envoy, &event(in_flight));
    assert_duplicate(&r, in_flight, (started, now()), "settled by the old configuration");
    assert_eq!(hold.arrivals(), 2);
    // The new configuration is the one deciding: its blocklist applies.
    assert_from_origin(&deliver(&envoy.envoy, &event("evt_EnvoyReloadFresh0000001")), 200, "new event");
    let last = origin.requests().pop().unwrap();
    assert!(!String::from_utf8_lossy(&last.body).contains("\"birthdate\""));
}
}

/// The proxy-wasm filter's table belongs to its `vm_id`: a listener whose filter has
/// another `vm_id` starts with an empty table (the documented way to reset it without
/// restarting Envoy).
#[test]
fn another_vm_id_starts_an_empty_table() {
    let _serial = serial();
    let origin = Origin::start();
    let config = config("enforce", "{}");
    let envoy = DynamicEnvoy::start_with(
        Packaging::Wasm,
        "dedup-vm-id",
        &config,
        &origin,
        &[],
        30,
        WORKERS,
    );
    envoy.wait_for_lds_updates(1, Duration::from_secs(10));
    let id = "evt_EnvoyVmId000000000001";
    let started = now();
    assert_from_origin(&deliver(&envoy.envoy, &event(id)), 200, "first");
    assert_duplicate(
        &deliver(&envoy.envoy, &event(id)),
        id,
        (started, now()),
        "same vm_id",
    );
    envoy.set_listener(
        &config,
        Some(("vm_id: persona_edge", "vm_id: persona_edge_2")),
    );
    envoy.wait_for_lds_updates(2, Duration::from_secs(20));
    assert_from_origin(&deliver(&envoy.envoy, &event(id)), 200, "another vm_id");
    assert_eq!(origin.requests().len(), 2);
}
