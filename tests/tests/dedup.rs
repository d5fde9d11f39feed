//! Duplicate suppression by event id in the Cloudflare Worker, in the real workerd: the
//! built Worker with its Durable Object (`EventDedup`, in-memory storage, alarms) in
//! front of a real recording origin. Persona's retries are played as they come: the
//! same body, signed anew each time.
//!
//! Nothing is mocked, and nothing is skipped: if the build output or workerd is
//! missing, or the runtime does not start, the test fails and says why.
//!
//! Needs, once: `scripts/setup-worker.sh` and `bash worker/build-worker.sh`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use persona_edge_tests::dedup::{
    Hold, assert_duplicate, assert_from_origin, assert_in_flight, event,
};
use persona_edge_tests::workerd::*;
use persona_edge_tests::{
    Answer, Framing, Origin, Response, SECRET, free_port, now, send, workspace_root,
};

const BINDING: &str =
    r#"(name = "PERSONA_EDGE_DEDUP", durableObjectNamespace = (className = "EventDedup"))"#;

// ---------------------------------------------------------------------------
// Helpers

/// A configuration that forwards Persona's signed deliveries, stripping names, with
/// `dedup` (a JSON object's text) when given.
fn config(mode: &str, dedup: Option<&str>) -> String {
    let dedup = dedup
        .map(|d| format!(r#","dedup":{d}"#))
        .unwrap_or_default();
    format!(
        r#"{{"mode":"{mode}","sources":{{"allow":["persona"]}},"signature":{{"secrets":["{SECRET}"]}},"blocklist":["name-*"]{dedup}}}"#
    )
}

/// The built Worker with its Durable Object namespace bound, as wrangler.toml has it.
fn with_objects(name: &str, config: String, origin_url: String) -> Service {
    let mut service = Service::new(name, Some(config), Some(origin_url));
    service.durable_objects = vec!["EventDedup".into()];
    service.bindings = vec![BINDING.into()];
    service
}

/// Delivers `body` as Persona does on every attempt: signed now, from a Persona address.
fn deliver(addr: SocketAddr, body: &[u8]) -> Response {
    try_deliver(addr, body).unwrap_or_else(|e| panic!("{e}"))
}

/// [`deliver`], with a failure to get any answer as the error.
fn try_deliver(addr: SocketAddr, body: &[u8]) -> Result<Response, String> {
    let headers = vec![
        (
            "Content-Type".to_string(),
            "application/json; charset=utf-8".to_string(),
        ),
        (
            "Persona-Signature".to_string(),
            persona_edge_core::signature_header(SECRET, now(), body),
        ),
        ("CF-Connecting-IP".to_string(), "35.232.44.140".to_string()),
    ];
    send(
        addr,
        "POST",
        "/hooks/persona",
        &headers,
        body,
        Framing::ContentLength,
    )
    .map_err(|e| format!("no response from workerd: {e}"))
}

/// Sends `body` on another thread; its response comes through the channel.
fn deliver_in_background(
    addr: SocketAddr,
    body: &[u8],
    tx: &mpsc::Sender<Result<Response, String>>,
) {
    let (body, tx) = (body.to_vec(), tx.clone());
    thread::spawn(move || {
        let _ = tx.send(try_deliver(addr, &body));
    });
}

/// The next background delivery's response; a failure shows workerd's log.
fn recv(
    rx: &mpsc::Receiver<Result<Response, String>>,
    workerd: &Workerd,
    context: &str,
) -> Response {
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => panic!("{context}: {e}\n{}", workerd.process.output()),
        Err(_) => panic!(
            "{context}: no response within 20 s\n{}",
            workerd.process.output()
        ),
    }
}

// ---------------------------------------------------------------------------
// Enforce mode

/// The `dedup_error` lines of the Worker's log for event `id` and operation `op`.
fn dedup_errors(workerd: &Workerd, id: &str, op: &str) -> usize {
    workerd
        .process
        .output()
        .lines()
        .filter(|l| {
            l.contains(r#""persona_edge":"dedup_error""#)
                && l.contains(&format!(r#""op":"{op}""#))
                && l.contains(&format!(r#""event_id":"{id}""#))
        })
        .count()
}

/// [`dedup_errors`] for `admit` once there are `at_least` (or 5 s passed: the Worker
/// writes the line before it forwards, the runtime may take a moment to flush it).
fn failed_admissions(workerd: &Workerd, id: &str, at_least: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = dedup_errors(workerd, id, "admit");
        if n >= at_least || Instant::now() >= deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn concurrent_copies_reach_the_origin_once() {
    let hold = Arc::new(Hold::default());
    let origin = hold.origin();
    let workerd = Workerd::start(&[with_objects(
        "dedup",
        config("enforce", Some("{}")),
        origin.url(),
    )]);
    let addr = workerd.addr("dedup");
    let id = "evt_Concurrent0000000000001";
    let body = event(id);

    // Six copies at once; the origin holds the first that reaches it.
    hold.hold(1);
    let (tx, rx) = mpsc::channel();
    let copies = 6;
    let started = now();
    for _ in 0..copies {
        deliver_in_background(addr, &body, &tx);
    }
    // Every copy but the one held is answered: 409 while the claim's attempt is in
    // flight, or, for a copy the Durable Object gave no admission in time (which a
    // loaded machine may cause), the origin's own answer after a fail-open forward.
    let mut answered_by_origin = 0;
    for i in 1..copies {
        let r = recv(&rx, &workerd, "a copy while the first is in flight");
        if r.status == 409 {
            assert_in_flight(&r, id, 30, &format!("copy {i}"));
        } else {
            assert_from_origin(&r, 200, &format!("copy {i}"));
            answered_by_origin += 1;
        }
    }
    // The claim's attempt reaches the origin after the others were turned away: wait
    // for it, rather than count before it arrived.
    hold.wait_for_arrivals(1 + answered_by_origin);
    let arrivals = hold.arrivals();
    assert_eq!(
        arrivals,
        1 + answered_by_origin,
        "copies reached the origin"
    );
    // Only a fail-open forward lets a second copy through, and the Worker logs each
    // one (before it forwards). At most one copy got through without such a line:
    // the one the object claimed the event for, unless that copy's own admission came
    // too late (then every forwarded copy failed open).
    let failed_open = failed_admissions(&workerd, id, arrivals - 1);
    assert!(
        failed_open <= arrivals && arrivals <= failed_open + 1,
        "{arrivals} copies reached the origin, {failed_open} failed open:\n{}",
        workerd.process.output()
    );
    let claim_forwarded = arrivals == failed_open + 1;
    if failed_open > 0 {
        eprintln!("{failed_open} of {copies} copies failed open (dedup_error logged)");
    }

    // The held attempt is answered too: its response is the origin's.
    hold.release();
    let first = recv(&rx, &workerd, "the attempt that was forwarded");
    assert_from_origin(&first, 200, "the attempt that was forwarded");
    let delivered = now();

    // Persona's later retries (and an operator's) are answered at the edge: as
    // duplicates once the claim's attempt recorded its success; while a claim nobody
    // settles holds (its admission came too late, or its settle failed, both
    // logged), as in flight.
    let settled = claim_forwarded && dedup_errors(&workerd, id, "settle") == 0;
    let mut arrivals = arrivals;
    for attempt in 0..3 {
        let context = format!("retry {attempt}");
        let failed_before = dedup_errors(&workerd, id, "admit");
        let r = deliver(addr, &body);
        if r.body == Answer::default().body {
            // Forwarded: only a fail-open forward, which the log must show.
            assert_from_origin(&r, 200, &context);
            let failed = failed_admissions(&workerd, id, failed_before + 1);
            assert_eq!(
                failed,
                failed_before + 1,
                "{context}: a duplicate got through"
            );
            arrivals += 1;
        } else if settled {
            assert_duplicate(&r, id, (started, delivered), &context);
        } else {
            assert_in_flight(&r, id, 30, &context);
        }
    }
    assert_eq!(hold.arrivals(), arrivals, "a duplicate reached the origin");
    let got = origin.requests();
    assert_eq!(got.len(), arrivals);
    assert!(
        got.iter()
            .all(|g| !String::from_utf8_lossy(&g.body).contains("\"name-first\"")),
        "a forwarded copy was not the core's"
    );

    // Another event is its own: forwarded.
    let other = deliver(addr, &event("evt_Concurrent0000000000002"));
    assert_from_origin(&other, 200, "another event");
    assert_eq!(hold.arrivals(), arrivals + 1);
}

#[test]
fn failed_attempts_let_the_retry_through() {
    let port = free_port();
    let workerd = Workerd::start(&[with_objects(
        "dedup",
        config("enforce", Some("{}")),
        format!("http://127.0.0.1:{port}"),
    )]);
    let addr = workerd.addr("dedup");
    let id = "evt_Failures000000000000001";
    let body = event(id);

    // The origin is down: 502, and nothing is recorded against the retry.
    let r = deliver(addr, &body);
    assert_error(&r, 502, "origin_unreachable", "origin down");

    // Up, but failing: its answer is passed on, and the retry goes through again.
    let origin = Origin::start_on(
        port,
        Answer {
            status: 500,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: b"origin exploded".to_vec(),
        },
        None,
    );
    let r = deliver(addr, &body);
    assert_from_origin(&r, 500, "origin failing");
    assert_eq!(origin.requests().len(), 1);

    // 203 is a 2xx, but not one Persona counts as delivered: it retries, so must we.
    origin.set_answer(Answer {
        status: 203,
        ..Answer::default()
    });
    let r = deliver(addr, &body);
    assert_from_origin(&r, 203, "origin answering 203");
    assert_eq!(origin.requests().len(), 2);

    // Delivered: from now on a duplicate.
    origin.set_answer(Answer::default());
    let before = now();
    let r = deliver(addr, &body);
    assert_from_origin(&r, 200, "origin back");
    let after = now();
    assert_eq!(origin.requests().len(), 3);
    let r = deliver(addr, &body);
    assert_duplicate(&r, id, (before, after), "after the success");
    assert_eq!(origin.requests().len(), 3, "a duplicate reached the origin");
}

/// The helper Worker that reads an event's object directly (its `/peek`), to see
/// whether the alarm deleted the record.
const INSPECTOR: &str = r#"
export default {
  async fetch(request, env) {
    const id = new URL(request.url).searchParams.get("id");
    const stub = env.DEDUP.get(env.DEDUP.idFromName(id));
    return stub.fetch("https://persona-edge-dedup/peek", {
      method: "POST",
      body: `event_id=${id}\nttl_seconds=3600\nin_flight_seconds=3600`,
    });
  },
};
"#;

/// The object's answer to `/peek`, as `name=value` pairs.
fn inspect(workerd: &Workerd, id: &str) -> std::collections::BTreeMap<String, String> {
    let r = send(
        workerd.addr("inspector"),
        "GET",
        &format!("/?id={id}"),
        &[],
        b"",
        Framing::ContentLength,
    )
    .unwrap();
    assert_eq!(r.status, 200, "inspector: {}", r.text());
    r.text()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn windows_expire_and_the_alarm_deletes_the_record() {
    let hold = Arc::new(Hold::default());
    let origin = hold.origin();
    let mut inspector = Service::new("inspector", None, None);
    inspector.js = Some(INSPECTOR.into());
    inspector.bindings = vec![
        r#"(name = "DEDUP", durableObjectNamespace = (className = "EventDedup", serviceName = "dedup"))"#.into(),
    ];
    let (ttl, in_flight) = (3, 2);
    let workerd = Workerd::start(&[
        with_objects(
            "dedup",
            config(
                "enforce",
                Some(&format!(
                    r#"{{"ttl_seconds":{ttl},"in_flight_seconds":{in_flight}}}"#
                )),
            ),
            origin.url(),
        ),
        inspector,
    ]);
    let addr = workerd.addr("dedup");
    let id = "evt_Windows0000000000000001";
    let body = event(id);

    // The first attempt hangs at the origin; a copy right after is held off.
    hold.hold(1);
    let (tx, rx) = mpsc::channel();
    let first_sent = Instant::now();
    deliver_in_background(addr, &body, &tx);
    hold.wait_for_arrivals(1);
    assert_in_flight(&deliver(addr, &body), id, in_flight, "copy in flight");

    // Past the in-flight window the first attempt counts as dead: the next copy
    // is forwarded (while the first is still held).
    let window_ends = first_sent + Duration::from_millis(in_flight * 1000 + 300);
    thread::sleep(window_ends.saturating_duration_since(Instant::now()));
    let before = now();
    let r = deliver(addr, &body);
    assert_from_origin(&r, 200, "copy after the in-flight window");
    let delivered = now();
    assert_eq!(hold.arrivals(), 2);
    // The first attempt's late answer does not overwrite the second's record.
    hold.release();
    assert_from_origin(
        &recv(&rx, &workerd, "the first attempt"),
        200,
        "the first attempt",
    );
    assert_duplicate(&deliver(addr, &body), id, (before, delivered), "duplicate");
    assert_eq!(inspect(&workerd, id)["stored"], "true");

    // Past the TTL: forwarded again (a manual retry days later).
    thread::sleep(Duration::from_millis(ttl * 1000 + 1200));
    let r = deliver(addr, &body);
    assert_from_origin(&r, 200, "copy after the TTL");
    assert_eq!(hold.arrivals(), 3);

    // The alarm deletes each record when it expires: nothing is kept for an event
    // that is not seen again.
    let quiet = "evt_Windows0000000000000002";
    assert_from_origin(&deliver(addr, &event(quiet)), 200, "another event");
    assert_eq!(inspect(&workerd, quiet)["stored"], "true", "no record kept");
    let deadline = Instant::now() + Duration::from_secs(ttl + 5);
    loop {
        let stored = inspect(&workerd, quiet);
        if stored["stored"] == "false" {
            assert_eq!(stored["admission"], "forward");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the record was not deleted by its alarm: {stored:?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------
// Shadow mode, configuration, and failures of the Durable Object

#[test]
fn shadow_mode_reports_and_never_suppresses() {
    let hold = Arc::new(Hold::default());
    let origin = hold.origin();
    let workerd = Workerd::start(&[with_objects(
        "shadow",
        config("shadow", Some("{}")),
        origin.url(),
    )]);
    let addr = workerd.addr("shadow");
    let id = "evt_Shadow00000000000000001";
    let body = event(id);

    // A copy while the first is in flight still goes through: shadow mode never claims.
    hold.hold(1);
    let (tx, rx) = mpsc::channel();
    deliver_in_background(addr, &body, &tx);
    hold.wait_for_arrivals(1);
    assert_from_origin(&deliver(addr, &body), 200, "copy in flight");
    hold.release();
    assert_from_origin(&recv(&rx, &workerd, "the first"), 200, "the first");

    // Both succeeded, so the next copy is what enforce mode would answer at the
    // edge; it still reaches the origin, unchanged, with the decision.
    for attempt in 0..2 {
        assert_from_origin(&deliver(addr, &body), 200, &format!("retry {attempt}"));
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
    assert_eq!(
        decisions[2..],
        [Some("duplicate; status=200"), Some("duplicate; status=200")],
        "{decisions:?}"
    );
    assert!(
        decisions[..2].iter().all(|d| *d == Some("forward")),
        "{decisions:?}"
    );
}

/// A Durable Object class that fails every request, and one that never answers.
const BROKEN_OBJECTS: &str = r#"
export class Failing {
  async fetch() { return new Response("storage on fire", {status: 500}); }
}
export class Silent {
  async fetch() {
    await new Promise((resolve) => setTimeout(resolve, 30000));
    return new Response("{}");
  }
}
export default { async fetch() { return new Response("objects only"); } };
"#;

#[test]
fn failures_of_the_object_never_block_a_delivery() {
    let origin = Origin::start();
    let on = config("enforce", Some("{}"));
    let mut objects = Service::new("objects", None, None);
    objects.js = Some(BROKEN_OBJECTS.into());
    objects.durable_objects = vec!["Failing".into(), "Silent".into()];
    let bound_to = |name: &str, class: &str| {
        let mut service = Service::new(name, Some(on.clone()), Some(origin.url()));
        service.bindings = vec![format!(
            r#"(name = "PERSONA_EDGE_DEDUP", durableObjectNamespace = (className = "{class}", serviceName = "objects"))"#
        )];
        service
    };
    let workerd = Workerd::start(&[
        objects,
        bound_to("failing", "Failing"),
        bound_to("silent", "Silent"),
        Service::new("unbound", Some(on.clone()), Some(origin.url())),
        with_objects("off", config("enforce", None), origin.url()),
        with_objects(
            "disabled",
            config("enforce", Some(r#"{"enabled":false}"#)),
            origin.url(),
        ),
    ]);
    let body = event("evt_Failures000000000000002");

    // The object fails or does not answer: forwarded (fail open), every time.
    for service in ["failing", "silent"] {
        for attempt in 0..2 {
            let sent = Instant::now();
            let r = deliver(workerd.addr(service), &body);
            assert_from_origin(&r, 200, &format!("{service} {attempt}"));
            assert!(
                sent.elapsed() < Duration::from_secs(5),
                "{service}: {:?}, past Persona's 5 s",
                sent.elapsed()
            );
        }
    }
    assert_eq!(origin.requests().len(), 4);
    let log = workerd.process.output();
    assert!(
        log.contains("dedup_error"),
        "the object's failure was not logged:\n{log}"
    );

    // Turned on without the binding: a configuration error, like a missing secret.
    let r = deliver(workerd.addr("unbound"), &body);
    let doc = assert_error(&r, 500, "config_invalid", "no binding");
    assert!(
        doc["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("PERSONA_EDGE_DEDUP"),
        "{doc}"
    );
    assert_eq!(origin.requests().len(), 4);

    // Off (absent, or enabled false): every copy is forwarded.
    for service in ["off", "disabled"] {
        for attempt in 0..2 {
            let r = deliver(workerd.addr(service), &body);
            assert_from_origin(&r, 200, &format!("{service} {attempt}"));
        }
    }
    assert_eq!(origin.requests().len(), 8);
}

// ---------------------------------------------------------------------------
// wrangler dev with the repository's wrangler.toml (its binding and migration)

#[test]
fn wrangler_dev_runs_the_declared_object() {
    let origin = Origin::start();
    // The shipped configuration with dedup turned on.
    let toml = std::fs::read_to_string(workspace_root().join("wrangler.toml")).unwrap();
    let shipped = toml
        .split("PERSONA_EDGE_CONFIG = '''")
        .nth(1)
        .and_then(|rest| rest.split("'''").next())
        .expect("wrangler.toml has PERSONA_EDGE_CONFIG");
    let mut config: serde_json::Value = serde_json::from_str(shipped).unwrap();
    assert_eq!(
        config["dedup"]["enabled"], false,
        "the shipped configuration turns dedup on; update docs/worker.md and this test"
    );
    config["dedup"]["enabled"] = true.into();
    let wrangler = WranglerDev::start("wrangler-dedup", &origin.url(), Some(&config.to_string()));
    let addr = wrangler.addr;

    let id = "evt_Wrangler00000000000001";
    let body = event(id);
    let before = now();
    let r = deliver(addr, &body);
    assert_from_origin(&r, 200, &format!("first\n{}", wrangler.output()));
    let after = now();
    let r = deliver(addr, &body);
    assert_duplicate(
        &r,
        id,
        (before, after),
        &format!("retry\n{}", wrangler.output()),
    );
    assert_eq!(origin.requests().len(), 1);
}
