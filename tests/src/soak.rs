//! The soak runs' harness (`tests/tests/soak.rs`, `docs/soak.md`): the mix of
//! deliveries and what `persona-edge process` makes of each, the check of every answer
//! and of every body the origin receives, memory sampling with its bound, and the
//! reports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::envoy::request_headers;
use crate::fixtures::{Case, config_text, now};
use crate::http::Response;
use crate::load::{self, Check, Prepared, Report};
use crate::oracle::{CliOutput, cli_process};
use crate::origin::{Answer, Origin, Recorded, RequestHook};
use crate::process::tempdir;
use crate::workerd;

/// A Persona address (US), and one that is not.
pub const PERSONA: &str = "35.232.44.140";
const STRANGER: &str = "198.51.100.7";

/// The memory bound: the largest RSS sample of the last tenth of a run may exceed the
/// largest of the first tenth by at most this much (see `docs/soak.md`: with 80,000
/// deliveries between the two windows, a leak of 105 bytes a delivery in Envoy).
pub const MEMORY_SLACK: u64 = 8 << 20;
/// The same for Envoy's own heap (tcmalloc's `allocated`, about 12 MiB in use).
pub const HEAP_SLACK: u64 = 2 << 20;

pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------
// The deliveries

/// The soak configuration: strict.json (signature, Persona addresses, the full
/// blocklist), but only inquiry, verification and report events are forwarded, so
/// that `account.created` is acknowledged. `blocklist` replaces the blocklist.
pub fn soak_config(blocklist: Option<&[&str]>) -> String {
    let mut doc: Value = serde_json::from_str(&config_text("strict.json")).unwrap();
    doc["events"]["forward"] = serde_json::json!(["inquiry.*", "verification.*", "report/*"]);
    if let Some(list) = blocklist {
        doc["blocklist"] = serde_json::json!(list);
    }
    serde_json::to_string_pretty(&doc).unwrap()
}

/// How a runner tells the filter who the client is.
#[derive(Clone, Copy)]
pub enum ClientBy {
    /// Envoy trusts one hop: the last `X-Forwarded-For` entry.
    ForwardedFor,
    /// The Worker reads `CF-Connecting-IP`.
    CfConnectingIp,
}

/// One kind of delivery in the mix, with what `persona-edge process` makes of it.
pub struct Kind {
    pub label: String,
    /// How many of each cycle of the mix are of this kind.
    pub weight: usize,
    pub case: Case,
    pub oracle: CliOutput,
    /// Forwarded kinds: texts that occur in the delivery but must never reach the
    /// origin (attribute names and values the blocklist removes).
    pub sentinels: Vec<String>,
}

impl Kind {
    pub fn forwarded(&self) -> bool {
        self.oracle.action == "forward"
    }

    pub fn path(&self) -> String {
        // The query carries the label: envoy.yaml routes the webhook path only.
        format!("/webhooks/persona?soak={}", self.label)
    }

    pub fn expect_status(&self) -> u16 {
        match self.oracle.action.as_str() {
            "forward" => 200,
            _ => self.oracle.status.unwrap(),
        }
    }
}

/// The fixture case `fixture`, sent by `client`, under the configuration at
/// `config_path`; panics unless the command decides `action` (with `code`).
/// `leak_texts`: find the texts a forwarded body must not contain (the fixture's own
/// list is written for strict.json's blocklist, which the soak configuration keeps).
#[allow(clippy::too_many_arguments)]
pub fn kind(
    label: &str,
    weight: usize,
    fixture: &str,
    client: &str,
    config_path: &Path,
    now: u64,
    want: (&str, Option<&str>),
    leak_texts: bool,
) -> Kind {
    let mut case = crate::fixtures::case(fixture);
    case.config = config_path.display().to_string();
    case.client = client.to_string();
    let oracle = cli_process(&case, now);
    assert_eq!(
        (oracle.action.as_str(), oracle.code.as_deref()),
        want,
        "{label}: persona-edge process decides otherwise: {}",
        oracle.raw
    );
    let sentinels = if oracle.action == "forward" && leak_texts {
        sentinels(label, &case, &oracle.body)
    } else {
        Vec::new()
    };
    Kind {
        label: label.to_string(),
        weight,
        case,
        oracle,
        sentinels,
    }
}

/// What must not reach the origin for a forwarded delivery: the fixture's own
/// `absent` list (written by hand), plus every attribute name and every string value
/// (4 characters or more) that is in the original but not in the forwarded body,
/// found by comparing the two documents. Each one is checked to occur in the original,
/// so that the leak check is never vacuous.
fn sentinels(label: &str, case: &Case, forwarded: &[u8]) -> Vec<String> {
    let original: Value = serde_json::from_slice(&case.body).unwrap();
    let out: Value = serde_json::from_slice(forwarded).unwrap();
    let mut removed = Vec::new();
    removed_texts(&original, &out, &mut removed);
    let (orig_text, out_text) = (
        String::from_utf8_lossy(&case.body),
        String::from_utf8_lossy(forwarded),
    );
    for a in &case.expect.absent {
        assert!(
            orig_text.contains(a.as_str()) && !out_text.contains(a.as_str()),
            "{label}: the fixture's absent text {a:?} is not in the delivery, or persona-edge process forwards it"
        );
    }
    let mut all: Vec<String> = case.expect.absent.clone();
    all.extend(
        removed
            .into_iter()
            .filter(|t| orig_text.contains(t.as_str()) && !out_text.contains(t.as_str())),
    );
    all.sort();
    all.dedup();
    assert!(
        all.len() >= 8,
        "{label}: only {} texts to look for ({all:?}): does the blocklist strip anything?",
        all.len()
    );
    all
}

/// Names (quoted, as in JSON) and string values of the members of `a` that `b` lacks.
fn removed_texts(a: &Value, b: &Value, acc: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => removed_texts(v, w, acc),
                    None => {
                        acc.push(format!("\"{k}\""));
                        string_leaves(v, acc);
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (v, w) in a.iter().zip(b) {
                removed_texts(v, w, acc);
            }
        }
        _ => {}
    }
}

fn string_leaves(v: &Value, acc: &mut Vec<String>) {
    match v {
        Value::String(s) if s.chars().count() >= 4 => acc.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| string_leaves(i, acc)),
        Value::Object(m) => m.values().for_each(|i| string_leaves(i, acc)),
        _ => {}
    }
}

/// The soak mix, 10 deliveries a cycle: 6 forwarded (16 KB, 4 KB and 21 KB events,
/// stripped), 3 rejected, 1 acknowledged.
fn mix(config_path: &Path, now: u64) -> Vec<Kind> {
    type Row = (
        &'static str,
        usize,
        &'static str,
        &'static str,
        (&'static str, Option<&'static str>),
    );
    let rows: [Row; 7] = [
        (
            "inquiry-approved",
            3,
            "inquiry-approved-strict",
            PERSONA,
            ("forward", None),
        ),
        (
            "verification-passed",
            2,
            "verification-passed-strict",
            PERSONA,
            ("forward", None),
        ),
        (
            "inquiry-completed-large",
            1,
            "inquiry-completed-large-strict",
            PERSONA,
            ("forward", None),
        ),
        (
            "bad-signature",
            1,
            "signature-wrong-secret",
            PERSONA,
            ("reject", Some("signature_mismatch")),
        ),
        (
            "wrong-source",
            1,
            "source-not-allowed",
            STRANGER,
            ("reject", Some("source_not_allowed")),
        ),
        (
            "bad-json",
            1,
            "body-truncated",
            PERSONA,
            ("reject", Some("invalid_json")),
        ),
        (
            "not-forwarded",
            1,
            "account-created-strict",
            PERSONA,
            ("acknowledge", None),
        ),
    ];
    rows.into_iter()
        .map(|(label, weight, fixture, client, want)| {
            kind(label, weight, fixture, client, config_path, now, want, true)
        })
        .collect()
}

/// One cycle of the mix as requests, each kind as often as its weight, spread out.
/// The index of each request's kind is returned alongside.
pub fn prepared(kinds: &[Kind], now: u64, by: ClientBy) -> (Vec<Prepared>, Vec<usize>) {
    let mut order = Vec::new();
    let most = kinds.iter().map(|k| k.weight).max().unwrap_or(0);
    for round in 0..most {
        for (i, k) in kinds.iter().enumerate() {
            if k.weight > round {
                order.push(i);
            }
        }
    }
    let requests = order
        .iter()
        .map(|&i| {
            let k = &kinds[i];
            let headers = match by {
                ClientBy::ForwardedFor => request_headers(&k.case, now, &k.case.client),
                ClientBy::CfConnectingIp => {
                    workerd::headers_with_client(&k.case, now, Some(&k.case.client))
                }
            };
            Prepared {
                label: k.label.clone(),
                method: k.case.method.clone(),
                path: k.path(),
                headers,
                body: k.case.body.clone(),
                expect_status: k.expect_status(),
            }
        })
        .collect();
    (requests, order)
}

/// How many of the first `total` requests (cycling through `order`) are of each kind.
pub fn per_kind(order: &[usize], kinds: usize, total: usize) -> Vec<usize> {
    let mut n = vec![0; kinds];
    for i in 0..total {
        n[order[i % order.len()]] += 1;
    }
    n
}

/// The check of every answer with the expected status: a rejection is the exact
/// JSON:API document `persona-edge process` answers (so its code too), an
/// acknowledgement has no body, a forward is the origin's answer.
pub fn answer_check(kinds: &[Kind]) -> Check {
    let expected: HashMap<String, (String, Vec<u8>, Option<String>)> = kinds
        .iter()
        .map(|k| {
            (
                k.label.clone(),
                (
                    k.oracle.action.clone(),
                    k.oracle.body.clone(),
                    k.oracle.code.clone(),
                ),
            )
        })
        .collect();
    let origin_answer = Answer::default().body;
    Arc::new(move |request: &Prepared, response: &Response| {
        let (action, body, code) = expected.get(&request.label)?;
        match action.as_str() {
            "forward" => (response.body != origin_answer)
                .then(|| format!("not the origin's answer: {}", response.text())),
            "acknowledge" => (!response.body.is_empty())
                .then(|| format!("a body with the 204: {}", response.text())),
            _ => {
                let Ok(doc) = serde_json::from_slice::<Value>(&response.body) else {
                    return Some(format!("not a JSON:API error: {}", response.text()));
                };
                let got = doc["errors"][0]["code"].as_str();
                if got != code.as_deref() {
                    return Some(format!("code {got:?}, want {code:?}"));
                }
                if response.header("content-type") != Some("application/vnd.api+json") {
                    return Some(format!(
                        "content type {:?}",
                        response.header("content-type")
                    ));
                }
                (response.body != *body).then(|| {
                    format!(
                        "reply {} differs from persona-edge process's {}",
                        response.text(),
                        String::from_utf8_lossy(body)
                    )
                })
            }
        }
    })
}

// ---------------------------------------------------------------------------
// The origin's check of every body

/// What a forwarded delivery of one kind may arrive as at the origin.
struct Arrival {
    kind: usize,
    /// The bodies it may have (one, or one per configuration in the reload run).
    bodies: Vec<Vec<u8>>,
    /// Texts it must not contain.
    sentinels: Vec<String>,
    /// Its `x-persona-event-id` routing header.
    event_id: Option<String>,
}

/// What the origin saw, kept as counts (and the first few problems in words).
pub struct OriginCheck {
    /// By path, what a forwarded delivery may arrive as.
    expect: HashMap<String, Arrival>,
    per_kind: Vec<AtomicUsize>,
    /// Per kind and per accepted body (index into its list of bodies).
    per_variant: Vec<Vec<AtomicUsize>>,
    /// Bodies that are none of the expected ones.
    wrong: AtomicUsize,
    /// Bodies with a text that must not reach the origin.
    leaked: AtomicUsize,
    /// Requests to a path no forwarded kind uses (something forwarded that must not be).
    unexpected: AtomicUsize,
    /// Requests with a Persona-Signature (the blocklist changes bodies: it must go) or
    /// without the event id routing header.
    bad_headers: AtomicUsize,
    problems: Mutex<Vec<String>>,
    /// When each body arrived, and which of its kind's bodies it was (reload run only).
    arrivals: Option<Mutex<Vec<(Instant, usize)>>>,
}

impl OriginCheck {
    /// `bodies[k]`: the bodies kind `k` may arrive as (one, or one per configuration
    /// in the reload run).
    pub fn new(kinds: &[Kind], bodies: Vec<Vec<Vec<u8>>>, keep_arrivals: bool) -> Arc<OriginCheck> {
        let mut expect = HashMap::new();
        let mut per_variant = Vec::new();
        for (i, (k, b)) in kinds.iter().zip(bodies).enumerate() {
            per_variant.push((0..b.len()).map(|_| AtomicUsize::new(0)).collect());
            if k.forwarded() {
                let event_id = k.oracle.headers.get("x-persona-event-id").cloned();
                expect.insert(
                    k.path(),
                    Arrival {
                        kind: i,
                        bodies: b,
                        sentinels: k.sentinels.clone(),
                        event_id,
                    },
                );
            }
        }
        Arc::new(OriginCheck {
            expect,
            per_kind: kinds.iter().map(|_| AtomicUsize::new(0)).collect(),
            per_variant,
            wrong: AtomicUsize::new(0),
            leaked: AtomicUsize::new(0),
            unexpected: AtomicUsize::new(0),
            bad_headers: AtomicUsize::new(0),
            problems: Mutex::new(Vec::new()),
            arrivals: keep_arrivals.then(|| Mutex::new(Vec::new())),
        })
    }

    fn problem(&self, counter: &AtomicUsize, text: String) {
        counter.fetch_add(1, Ordering::SeqCst);
        let mut p = self.problems.lock().unwrap();
        if p.len() < 10 {
            p.push(text);
        }
    }

    fn see(&self, r: &Recorded) {
        let Some(Arrival {
            kind,
            bodies,
            sentinels,
            event_id,
        }) = self.expect.get(&r.path)
        else {
            self.problem(
                &self.unexpected,
                format!("{} {} reached the origin", r.method, r.path),
            );
            return;
        };
        self.per_kind[*kind].fetch_add(1, Ordering::SeqCst);
        // Every body is searched for every removed text, whether or not it is one of
        // the expected bodies: the leak check does not trust the oracle.
        if let Some(s) = sentinels
            .iter()
            .find(|s| contains_bytes(&r.body, s.as_bytes()))
        {
            self.problem(
                &self.leaked,
                format!("{}: {s:?} reached the origin", r.path),
            );
        }
        match bodies.iter().position(|b| *b == r.body) {
            Some(v) => {
                self.per_variant[*kind][v].fetch_add(1, Ordering::SeqCst);
                if let Some(arrivals) = &self.arrivals {
                    arrivals.lock().unwrap().push((Instant::now(), v));
                }
            }
            None => self.problem(
                &self.wrong,
                format!(
                    "{}: a body that is none of the {} expected ({} bytes)",
                    r.path,
                    bodies.len(),
                    r.body.len()
                ),
            ),
        }
        if r.header("persona-signature").is_some()
            || r.header("x-persona-event-id") != event_id.as_deref()
        {
            self.problem(
                &self.bad_headers,
                format!("{}: headers {:?}", r.path, r.headers),
            );
        }
    }

    pub fn hook(self: &Arc<Self>) -> RequestHook {
        let me = self.clone();
        Arc::new(move |r: &Recorded| me.see(r))
    }

    pub fn count(&self, kind: usize) -> usize {
        self.per_kind[kind].load(Ordering::SeqCst)
    }

    pub fn variant(&self, kind: usize, v: usize) -> usize {
        self.per_variant[kind][v].load(Ordering::SeqCst)
    }

    /// When each body arrived and which of its kind's bodies it was, taken out (the
    /// reload run's; empty unless the check was made to keep them).
    pub fn take_arrivals(&self) -> Vec<(Instant, usize)> {
        self.arrivals
            .as_ref()
            .map(|a| std::mem::take(&mut *a.lock().unwrap()))
            .unwrap_or_default()
    }

    /// Panics on any problem seen.
    pub fn assert_clean(&self, what: &str) {
        let counts = [
            ("bodies not as expected", self.wrong.load(Ordering::SeqCst)),
            (
                "bodies with personal data",
                self.leaked.load(Ordering::SeqCst),
            ),
            (
                "requests that must not be forwarded",
                self.unexpected.load(Ordering::SeqCst),
            ),
            (
                "requests with wrong headers",
                self.bad_headers.load(Ordering::SeqCst),
            ),
        ];
        assert!(
            counts.iter().all(|(_, n)| *n == 0),
            "{what}: the origin saw {counts:?}; first problems: {:#?}",
            self.problems.lock().unwrap()
        );
    }
}

/// Whether `needle` occurs in `haystack`. The C library's `memmem`: as fast in a debug
/// build of the tests as in a release one (the soak runs search every body the origin
/// receives for dozens of texts; `str::contains` compiled without optimisation was
/// most of the harness's time).
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    // SAFETY: both pointers and lengths come from live slices; memmem only reads them.
    let found = unsafe {
        libc::memmem(
            haystack.as_ptr().cast(),
            haystack.len(),
            needle.as_ptr().cast(),
            needle.len(),
        )
    };
    !found.is_null()
}

// ---------------------------------------------------------------------------
// Memory

#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Requests done when the sample was taken.
    done: usize,
    rss: u64,
    /// Envoy's heap in use (tcmalloc `allocated`), when there is one to ask.
    heap: Option<u64>,
}

/// Samples `measure` every `every` until `stop`, tagging each with `done`.
fn sample(
    done: &AtomicUsize,
    stop: &AtomicBool,
    every: Duration,
    measure: impl Fn() -> (u64, Option<u64>),
) -> Vec<Sample> {
    let mut samples = Vec::new();
    // Bounded: at most an hour of samples, whatever happens to the run.
    for _ in 0..(3_600_000 / every.as_millis().max(1)) {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let done = done.load(Ordering::SeqCst);
        let (rss, heap) = measure();
        samples.push(Sample { done, rss, heap });
        thread::sleep(every);
    }
    samples
}

/// The largest RSS and heap of the samples taken while `range` of the run was done.
struct Window {
    samples: usize,
    rss_max: u64,
    heap_max: Option<u64>,
}

fn window(samples: &[Sample], range: std::ops::Range<usize>) -> Window {
    let in_range: Vec<&Sample> = samples.iter().filter(|s| range.contains(&s.done)).collect();
    Window {
        samples: in_range.len(),
        rss_max: in_range.iter().map(|s| s.rss).max().unwrap_or(0),
        heap_max: in_range.iter().filter_map(|s| s.heap).max(),
    }
}

/// Asserts that memory in the last tenth of a run of `total` is not above the first
/// tenth's by more than [`MEMORY_SLACK`] (RSS) and [`HEAP_SLACK`] (Envoy's heap);
/// returns both windows for the report.
fn assert_flat(what: &str, samples: &[Sample], total: usize) -> (Window, Window) {
    println!(
        "{what}: RSS by tenth of the run (largest sample, MiB): {}",
        tenths(samples, total)
    );
    let tenth = total / 10;
    let first = window(samples, 0..tenth);
    let last = window(samples, total - tenth..total);
    assert!(
        first.samples >= 3 && last.samples >= 3,
        "{what}: too few memory samples ({} in the first tenth, {} in the last): the run was too short",
        first.samples,
        last.samples
    );
    assert!(
        last.rss_max <= first.rss_max + MEMORY_SLACK,
        "{what}: RSS grew from {:.1} MiB (first tenth) to {:.1} MiB (last tenth), more than {:.0} MiB",
        mib(first.rss_max),
        mib(last.rss_max),
        mib(MEMORY_SLACK)
    );
    if let (Some(a), Some(b)) = (first.heap_max, last.heap_max) {
        assert!(
            b <= a + HEAP_SLACK,
            "{what}: Envoy's heap grew from {:.1} MiB (first tenth) to {:.1} MiB (last tenth), more than {:.0} MiB",
            mib(a),
            mib(b),
            mib(HEAP_SLACK)
        );
    }
    (first, last)
}

// ---------------------------------------------------------------------------
// Reporting

pub fn assert_all_answered(what: &str, report: &Report, total: usize) {
    assert!(
        report.wrong.is_empty(),
        "{what}: {} wrong answers of {total}; first: {:#?}",
        report.wrong.len(),
        &report.wrong[..report.wrong.len().min(5)]
    );
    assert!(
        report.errors.is_empty(),
        "{what}: {} requests failed; first: {:#?}",
        report.errors.len(),
        &report.errors[..report.errors.len().min(5)]
    );
    assert_eq!(
        report.retries, 0,
        "{what}: {} requests had to be sent twice",
        report.retries
    );
    assert_eq!(report.sent, total, "{what}: answers");
}

pub fn print_run(what: &str, report: &Report, connections: usize) {
    println!(
        "{what}: {} deliveries over {connections} connections in {:.1} s: {:.0} deliveries/s, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        report.sent,
        report.elapsed.as_secs_f64(),
        report.throughput(),
        ms(report.percentile(0.50)),
        ms(report.percentile(0.99)),
        ms(report.percentile(1.0)),
    );
    println!(
        "{what}: answered as expected, by kind: {:?}",
        report.by_label
    );
}

/// The largest RSS of each tenth of the run, in MiB.
fn tenths(samples: &[Sample], total: usize) -> String {
    (0..10)
        .map(|t| {
            let w = window(samples, total * t / 10..total * (t + 1) / 10);
            format!("{:.1}", mib(w.rss_max))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_memory(what: &str, first: &Window, last: &Window) {
    let heap = match (first.heap_max, last.heap_max) {
        (Some(a), Some(b)) => format!(", heap {:.1} -> {:.1} MiB", mib(a), mib(b)),
        _ => String::new(),
    };
    println!(
        "{what}: memory, largest sample of the first and last tenth: RSS {:.1} -> {:.1} MiB{heap} ({} and {} samples)",
        mib(first.rss_max),
        mib(last.rss_max),
        first.samples,
        last.samples
    );
}

/// Runs `total` deliveries of `requests` at `connections`, sampling memory with
/// `measure` every `every` meanwhile.
fn run_sampled(
    addr: std::net::SocketAddr,
    requests: Vec<Prepared>,
    connections: usize,
    total: usize,
    check: Check,
    every: Duration,
    measure: impl Fn() -> (u64, Option<u64>) + Sync,
) -> (Report, Vec<Sample>) {
    let done = Arc::new(AtomicUsize::new(0));
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let sampler = s.spawn(|| sample(&done, &stop, every, &measure));
        let report = load::run_observed(
            addr,
            Arc::new(requests),
            connections,
            total,
            check,
            done.clone(),
        );
        // One sample after the last delivery, then stop.
        stop.store(true, Ordering::SeqCst);
        let samples = sampler.join().unwrap();
        (report, samples)
    })
}

/// `total` deliveries of `requests` at `connections`, each answer checked with its
/// status and `check`, memory sampled with `measure` every `every`: prints the run and
/// the memory by tenth, and asserts that every delivery was answered as expected and
/// that memory stayed flat ([`MEMORY_SLACK`], [`HEAP_SLACK`]).
#[allow(clippy::too_many_arguments)]
pub fn run_flat(
    what: &str,
    addr: std::net::SocketAddr,
    requests: Vec<Prepared>,
    connections: usize,
    total: usize,
    check: Check,
    every: Duration,
    measure: impl Fn() -> (u64, Option<u64>) + Sync,
) -> Report {
    let (report, samples) = run_sampled(addr, requests, connections, total, check, every, measure);
    print_run(what, &report, connections);
    assert_all_answered(what, &report, total);
    let (first, last) = assert_flat(what, &samples, total);
    print_memory(what, &first, &last);
    report
}

pub fn write_config(label: &str, text: &str) -> PathBuf {
    let path = tempdir(label).join("config.json");
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------------------
// The runs

/// One soak: the mix, its configuration and the checking origin, set up before the
/// proxy under test starts (it needs the origin's address).
pub struct Soak {
    pub config: String,
    pub signed: u64,
    pub kinds: Vec<Kind>,
    pub check: Arc<OriginCheck>,
    pub origin: Origin,
}

impl Soak {
    pub fn new(label: &str) -> Soak {
        let config = soak_config(None);
        let config_path = write_config(label, &config);
        let signed = now();
        let kinds = mix(&config_path, signed);
        let bodies = kinds.iter().map(|k| vec![k.oracle.body.clone()]).collect();
        let check = OriginCheck::new(&kinds, bodies, false);
        let origin = Origin::start_checking(check.hook());
        Soak {
            config,
            signed,
            kinds,
            check,
            origin,
        }
    }

    /// `warmup` deliveries, then `total` more with memory sampled by `measure`; every
    /// answer and every body at the origin checked. Returns the measured run's report
    /// and how many deliveries of each kind were sent in all.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        what: &str,
        addr: std::net::SocketAddr,
        by: ClientBy,
        warmup: usize,
        total: usize,
        connections: usize,
        every: Duration,
        measure: impl Fn() -> (u64, Option<u64>) + Sync,
    ) -> (Report, Vec<usize>) {
        let (requests, order) = prepared(&self.kinds, self.signed, by);
        // Warm-up: connections, JIT tiers, allocator and heap sizes settle. Checked
        // like the rest, but outside the memory windows.
        let warm = load::run(
            addr,
            Arc::new(requests.clone()),
            connections,
            warmup,
            answer_check(&self.kinds),
        );
        assert_all_answered(&format!("{what} (warm-up)"), &warm, warmup);
        let (report, samples) = run_sampled(
            addr,
            requests,
            connections,
            total,
            answer_check(&self.kinds),
            every,
            measure,
        );
        print_run(what, &report, connections);
        assert!(
            now() - self.signed < 300,
            "{what}: the run outlasted the signature tolerance (300 s): {:.0} deliveries/s is too slow for {total}",
            report.throughput()
        );
        assert_all_answered(what, &report, total);

        // The origin: exactly the forwarded deliveries, each one as the command
        // forwards it, none with a removed text.
        let n = self.kinds.len();
        let sent: Vec<usize> = per_kind(&order, n, warmup)
            .iter()
            .zip(per_kind(&order, n, total))
            .map(|(a, b)| a + b)
            .collect();
        let forwarded: usize = (0..n)
            .filter(|k| self.kinds[*k].forwarded())
            .map(|k| sent[k])
            .sum();
        assert_eq!(
            self.origin.received_count(),
            forwarded,
            "{what}: the origin's requests against the forwarded deliveries"
        );
        self.check.assert_clean(what);
        for (i, k) in self.kinds.iter().enumerate() {
            let expect = if k.forwarded() { sent[i] } else { 0 };
            assert_eq!(
                self.check.count(i),
                expect,
                "{what}: {} at the origin",
                k.label
            );
        }
        let (first, last) = assert_flat(what, &samples, total);
        print_memory(what, &first, &last);
        println!(
            "{what}: {warmup} warm-up deliveries before; the origin received {forwarded} bodies in all, each searched for the {}-{} texts its delivery must lose; {} connections opened",
            self.kinds
                .iter()
                .filter(|k| k.forwarded())
                .map(|k| k.sentinels.len())
                .min()
                .unwrap_or(0),
            self.kinds
                .iter()
                .map(|k| k.sentinels.len())
                .max()
                .unwrap_or(0),
            report.connects
        );
        (report, sent)
    }
}
