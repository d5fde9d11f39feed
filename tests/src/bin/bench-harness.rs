//! `bench-harness`: the runtime half of `scripts/bench.sh` (`make bench`).
//!
//! ```text
//! bench-harness envoy  --rows FILE    Envoy 1.40: passthrough / RBAC / persona-edge, wrk
//! bench-harness worker --rows FILE    workerd: pass-through Worker / persona-edge Worker
//! bench-harness core   --rows FILE --since UNIX_SECONDS   criterion's medians as rows
//! bench-harness sizes  --rows FILE    the filter .wasm and the Worker bundle
//! bench-harness table  FILE           the one table (Markdown) of every row
//! bench-harness profile VARIANT WORKLOAD [SECONDS]   perf profile of one Envoy
//! ```
//!
//! Each measuring subcommand appends tab-separated rows to FILE: measurement,
//! persona-edge, baseline(s), ratio(s) (persona-edge ÷ baseline), target and verdict.
//! Every comparison is measured interleaved in the same run (round after round, the
//! variants in rotating order) and reported as the median over the rounds, so that
//! other work on the machine lands on every variant alike.
//!
//! Environment: `BENCH_ROUNDS` (3), `BENCH_SECONDS` per wrk run (4), `BENCH_WARMUP`
//! seconds (2), `BENCH_WORKER_ROUNDS` (5), `BENCH_SERVER_CPU` (0) and
//! `BENCH_CLIENT_CPU` (1): Envoy or workerd run pinned to the first, wrk to the second.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread;
use std::time::Duration;

use persona_edge_core::{PERSONA_DE, PERSONA_IN, PERSONA_US};
use persona_edge_tests::envoy::{
    Envoy, Packaging, Render, envoy_bin, envoy_command, render, replace_plugin_config, wasm_path,
};
use persona_edge_tests::fixtures::{SECRET, config_text, fixtures_dir, required, target_dir};
use persona_edge_tests::http::{Framing, send};
use persona_edge_tests::oracle::cli_binary;
use persona_edge_tests::origin::{Answer, Origin};
use persona_edge_tests::process::{Process, free_port, tempdir};
use persona_edge_tests::workerd::{PASS_THROUGH_WORKER, Service, Workerd, built_worker};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Settings

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn server_cpu() -> String {
    env_num("BENCH_SERVER_CPU", 0).to_string()
}

fn client_cpu() -> String {
    env_num("BENCH_CLIENT_CPU", 1).to_string()
}

// ---------------------------------------------------------------------------
// Child processes: `Process` kills them on drop; the release profile aborts on a
// panic, so no drop runs then, and they are registered here to be killed on a panic
// and on SIGINT/SIGTERM too.

static CHILDREN: [AtomicI32; 16] = [const { AtomicI32::new(0) }; 16];

fn register(pid: u32) {
    let pid = i32::try_from(pid).unwrap();
    for slot in &CHILDREN {
        if slot
            .compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
    panic!("more than {} child processes", CHILDREN.len());
}

fn unregister(pid: u32) {
    let pid = i32::try_from(pid).unwrap();
    for slot in &CHILDREN {
        let _ = slot.compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Terminates every registered child's process group (each child leads its own).
fn kill_children() {
    for slot in &CHILDREN {
        let pid = slot.swap(0, Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) with a process group id; no memory is involved.
            unsafe {
                libc::kill(-pid, libc::SIGTERM);
            }
        }
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    kill_children();
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + signal) }
}

fn guard_children() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_children();
        hook(info);
    }));
    let handler: extern "C" fn(libc::c_int) = on_signal;
    // SAFETY: installs a handler that only calls async-signal-safe functions.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// A child registered for [`kill_children`] while this guard lives.
struct Registered(u32);

impl Registered {
    fn new(pid: u32) -> Registered {
        register(pid);
        Registered(pid)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        unregister(self.0);
    }
}

/// CPU time used so far by every thread of `pid`, in nanoseconds
/// (`/proc/PID/task/*/schedstat`, first field).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Pins every thread of `pid` (and so the threads it starts later) to the server CPU.
fn pin(pid: u32) {
    let status = Command::new("taskset")
        .args(["-a", "-p", "-c", &server_cpu(), &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "taskset -a -p {pid} failed");
}

/// This process (the origin of the Worker runs, and wrk's parent) on the client CPU.
fn pin_self_to_client_cpu() {
    let cpu: usize = client_cpu().parse().unwrap();
    // SAFETY: a zeroed cpu_set_t filled by CPU_SET, for this thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

// ---------------------------------------------------------------------------
// Events and signatures

/// The fixture without whitespace between tokens (strings untouched, key order kept):
/// compact as Persona sends it.
fn compact_fixture(name: &str) -> Vec<u8> {
    let raw = std::fs::read(fixtures_dir().join("events").join(name)).unwrap();
    let (mut out, mut in_string, mut escaped) = (Vec::with_capacity(raw.len()), false, false);
    for b in raw {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !b.is_ascii_whitespace() {
            in_string = b == b'"';
            out.push(b);
        }
    }
    serde_json::from_slice::<Value>(&out).unwrap();
    out
}

/// A `Persona-Signature` for `body` at the current time, from the native command.
fn sign(secret: &str, body: &Path) -> String {
    let out = Command::new(cli_binary())
        .args(["sign", "--secret", secret])
        .arg(body)
        .output()
        .unwrap();
    assert!(out.status.success(), "persona-edge sign failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

// ---------------------------------------------------------------------------
// wrk

const WRK_LUA: &str = r#"-- POST with the body in $BENCH_BODY (a file; none when empty) and the headers in
-- $BENCH_HEADERS ("Name: value" lines).
wrk.method = "POST"
local path = os.getenv("BENCH_BODY")
if path and path ~= "" then
  local f = assert(io.open(path, "rb"))
  wrk.body = f:read("*a")
  f:close()
end
for line in string.gmatch(os.getenv("BENCH_HEADERS") or "", "[^\n]+") do
  local name, value = string.match(line, "^([^:]+):%s*(.*)$")
  if name then wrk.headers[name] = value end
end
"#;

struct Load<'a> {
    url: String,
    body: Option<&'a Path>,
    headers: Vec<(String, String)>,
    connections: u32,
    seconds: u64,
}

#[derive(Clone, Debug, Default)]
struct WrkResult {
    requests: u64,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    non_2xx: u64,
    socket_errors: u64,
    /// The server's CPU time per request (all its threads), in microseconds.
    cpu_us: f64,
}

fn duration_us(text: &str) -> Option<f64> {
    let (n, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    n.parse::<f64>().ok().map(|v| v * factor)
}

fn parse_wrk(out: &str) -> WrkResult {
    let mut r = WrkResult::default();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", d] => r.p50_us = duration_us(d).unwrap_or(f64::NAN),
            ["99%", d] => r.p99_us = duration_us(d).unwrap_or(f64::NAN),
            ["Requests/sec:", n] => r.rps = n.parse().unwrap_or(f64::NAN),
            [n, "requests", "in", ..] => r.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => r.non_2xx = n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                r.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum()
            }
            _ => {}
        }
    }
    r
}

fn wrk(load: &Load<'_>, lua: &Path, server_pid: u32) -> WrkResult {
    let headers: String = load
        .headers
        .iter()
        .map(|(n, v)| format!("{n}: {v}\n"))
        .collect();
    let cpu_before = cpu_ns(server_pid);
    let out = Command::new("taskset")
        .args(["-c", &client_cpu(), "wrk", "-t1"])
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.seconds))
        .args(["--timeout", "5s", "--latency", "-s"])
        .arg(lua)
        .arg(&load.url)
        .env(
            "BENCH_BODY",
            load.body
                .map(|p| p.as_os_str().to_owned())
                .unwrap_or_default(),
        )
        .env("BENCH_HEADERS", headers)
        .output()
        .unwrap_or_else(|e| panic!("wrk: {e} (scripts/bench.sh installs it)"));
    let cpu = cpu_ns(server_pid).saturating_sub(cpu_before);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "wrk failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r = parse_wrk(&text);
    assert!(r.requests > 0 && r.rps.is_finite(), "wrk said:\n{text}");
    r.cpu_us = cpu as f64 / 1e3 / r.requests as f64;
    r
}

// ---------------------------------------------------------------------------
// Statistics and formatting

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn us(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} ms", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0} µs")
    } else {
        format!("{v:.1} µs")
    }
}

/// A difference, with its sign.
fn delta(v: f64) -> String {
    if v < 0.0 {
        format!("-{}", us(-v))
    } else {
        format!("+{}", us(v))
    }
}

fn rps(v: f64) -> String {
    format!("{v:.0} req/s")
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn append_rows(file: &Path, rows: &[[String; 5]]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace(['\t', '\n'], " ")).collect();
        writeln!(f, "{}", cells.join("\t")).unwrap();
    }
}

// ---------------------------------------------------------------------------
// Envoy

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    /// No HTTP filter but the router.
    Passthrough,
    /// Envoy's RBAC filter with the Persona addresses.
    Rbac,
    /// The least a Wasm filter does on these paths (tests/wasm-floor), in
    /// persona-edge's place: what any Wasm filter costs.
    Floor,
    /// persona-edge with the shipped configuration.
    Filter,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Passthrough,
        Variant::Rbac,
        Variant::Floor,
        Variant::Filter,
    ];

    fn name(self) -> &'static str {
        match self {
            Variant::Passthrough => "passthrough",
            Variant::Rbac => "RBAC",
            Variant::Floor => "empty-wasm",
            Variant::Filter => "persona-edge",
        }
    }
}

/// The floor filter's .wasm, built and optimised as the filter is
/// (`scripts/build-filter.sh persona-edge-wasm-floor`).
fn floor_wasm() -> PathBuf {
    required(
        target_dir().join("persona-edge/persona_edge_wasm_floor.wasm"),
        "scripts/build-filter.sh persona-edge-wasm-floor",
    )
}

/// Envoy's native RBAC filter allowing the 22 Persona addresses: `remote_ip`, the
/// downstream remote address after `xff_num_trusted_hops` (the address the filter
/// checks); `source_ip` is deprecated in 1.40 and `direct_remote_ip` is the TCP peer.
fn rbac_filter() -> String {
    let mut principals = String::new();
    for ip in PERSONA_US.iter().chain(&PERSONA_DE).chain(&PERSONA_IN) {
        principals.push_str(&format!(
            "                    - remote_ip: {{ address_prefix: {ip}, prefix_len: 32 }}\n"
        ));
    }
    format!(
        "          - name: envoy.filters.http.rbac\n\
         \x20           typed_config:\n\
         \x20             \"@type\": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC\n\
         \x20             rules:\n\
         \x20               action: ALLOW\n\
         \x20               policies:\n\
         \x20                 persona:\n\
         \x20                   permissions: [{{ any: true }}]\n\
         \x20                   principals:\n{principals}"
    )
}

/// A second listener that answers 200 at once (after reading the whole request, so
/// the upstream connection stays reusable): the origin, costing the same to every
/// variant and no other process.
fn origin_listener(port: u16) -> String {
    format!(
        r#"  - name: bench_origin
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    per_connection_buffer_limit_bytes: 1114112
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench_origin
          route_config:
            virtual_hosts:
            - name: origin
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: "ok" }} }}
          http_filters:
          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 1114112
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

/// `envoy/envoy.yaml` as the tests render it (ports, the .wasm, one trusted
/// X-Forwarded-For hop), with the HTTP filters before the router replaced for the
/// baselines (the floor: the same Wasm and buffer filters, running the floor's
/// .wasm), and the origin listener added. Everything else (access log, route
/// headers, limits) is the shipped file's, for all of them.
fn envoy_yaml(
    variant: Variant,
    ports: (u16, u16, u16),
    wasm: &Path,
    plugin_config: Option<&str>,
) -> String {
    let (listen, admin, origin) = ports;
    let floor = (variant == Variant::Floor).then(floor_wasm);
    let mut text = render(&Render {
        packaging: Packaging::Wasm,
        listen_port: listen,
        admin_port: admin,
        origin_port: origin,
        module: floor.as_deref().unwrap_or(wasm),
        plugin_config,
    });
    if floor.is_some() {
        text = replace_plugin_config(&text, "{}");
    }
    let lines: Vec<&str> = text.lines().collect();
    let find = |line: &str| {
        let at: Vec<usize> = (0..lines.len()).filter(|i| lines[*i] == line).collect();
        assert_eq!(at.len(), 1, "envoy/envoy.yaml must have one line {line:?}");
        at[0]
    };
    let filters = find("          - name: persona_edge");
    let router = find("          - name: envoy.filters.http.router");
    let clusters = find("  clusters:");
    assert!(filters < router && router < clusters);
    let mut out: Vec<String> = lines[..filters].iter().map(|l| l.to_string()).collect();
    match variant {
        Variant::Passthrough => {}
        Variant::Rbac => out.push(rbac_filter().trim_end().to_string()),
        Variant::Floor | Variant::Filter => {
            out.extend(lines[filters..router].iter().map(|l| l.to_string()))
        }
    }
    out.extend(lines[router..clusters].iter().map(|l| l.to_string()));
    out.push(origin_listener(origin).trim_end().to_string());
    out.extend(lines[clusters..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

const ENVOY_SECRET: &str = "wbhsec_bench";

struct RunningEnvoy {
    variant: Variant,
    /// Not the shipped plugin configuration (`profile` only): it may strip nothing.
    custom_config: bool,
    /// Unregistered before `envoy` stops it (fields drop in order).
    _registered: Registered,
    envoy: Envoy,
}

impl RunningEnvoy {
    /// `plugin_config`: `None` for the shipped one (the benchmark); `profile` may
    /// take another to take the filter's work apart.
    fn start(variant: Variant, dir: &Path, plugin_config: Option<&str>) -> RunningEnvoy {
        let (listen, admin, origin) = (free_port(), free_port(), free_port());
        let wasm = wasm_path();
        let yaml = envoy_yaml(variant, (listen, admin, origin), &wasm, plugin_config);
        let label = variant.name().replace(' ', "_");
        let config = dir.join(format!("{label}.yaml"));
        std::fs::write(&config, yaml).unwrap();
        let mut cmd = envoy_command(&config, &[("PERSONA_WEBHOOK_SECRET", ENVOY_SECRET)]);
        // Warnings (the filter logs each rejection at warn) as a default (info)
        // deployment would; `profile` may set BENCH_ENVOY_LOG_LEVEL to compare.
        cmd.arg("--log-level")
            .arg(std::env::var("BENCH_ENVOY_LOG_LEVEL").unwrap_or_else(|_| "warn".into()));
        // The access log (stdout) is not read: /dev/null.
        let process = Process::spawn_split(
            &format!("envoy ({})", variant.name()),
            cmd,
            &dir.join(format!("{label}.log")),
            Path::new("/dev/null"),
        );
        let registered = Registered::new(process.child.id());
        let envoy = Envoy::wait_ready(
            Packaging::Wasm,
            variant.name(),
            process,
            dir.to_path_buf(),
            listen,
            admin,
        );
        pin(envoy.pid());
        RunningEnvoy {
            variant,
            custom_config: plugin_config.is_some(),
            _registered: registered,
            envoy,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Denied,
    Signed,
}

struct Workload {
    name: &'static str,
    kind: Kind,
    body: Option<PathBuf>,
    bytes: usize,
}

impl Workload {
    fn headers(&self) -> Vec<(String, String)> {
        let mut h = vec![("Content-Type".to_string(), "application/json".to_string())];
        match (self.kind, &self.body) {
            (Kind::Denied, _) => h.push(("X-Forwarded-For".into(), "198.51.100.7".into())),
            (Kind::Signed, Some(body)) => {
                h.push(("X-Forwarded-For".into(), "35.232.44.140".into()));
                h.push(("Persona-Signature".into(), sign(ENVOY_SECRET, body)));
                h.push(("Persona-Webhook-Attempts-Made".into(), "1".into()));
            }
            (Kind::Signed, None) => unreachable!(),
        }
        h
    }

    /// The status every request must get, and the counter (Envoy stat) that must grow
    /// by one per request.
    fn expect(&self, variant: Variant) -> (u16, &'static str) {
        match (self.kind, variant) {
            (_, Variant::Passthrough) => (200, "cluster.origin.upstream_rq_200"),
            (Kind::Denied, Variant::Rbac) => (403, "http.persona_webhooks.rbac.denied"),
            (Kind::Signed, Variant::Rbac) => (200, "http.persona_webhooks.rbac.allowed"),
            (Kind::Denied, Variant::Filter) => {
                (403, "wasmcustom.persona_edge.rejected.source_not_allowed")
            }
            (Kind::Signed, Variant::Filter) => (200, "wasmcustom.persona_edge.forwarded"),
            (Kind::Denied, Variant::Floor) => (403, "http.persona_webhooks.downstream_rq_4xx"),
            (Kind::Signed, Variant::Floor) => (200, "cluster.origin.upstream_rq_200"),
        }
    }
}

/// One wrk run of `workload` against `envoy`, checked: every response had the expected
/// status, and the variant's own counter grew by the number of requests.
fn envoy_run(
    e: &RunningEnvoy,
    w: &Workload,
    connections: u32,
    seconds: u64,
    lua: &Path,
) -> WrkResult {
    let (status, counter) = w.expect(e.variant);
    let stripped = || e.envoy.stat("wasmcustom.persona_edge.attributes_stripped");
    let (before, stripped_before) = (e.envoy.stat(counter), stripped());
    let r = wrk(
        &Load {
            url: format!("http://{}/webhooks/persona", e.envoy.listen),
            body: w.body.as_deref(),
            headers: w.headers(),
            connections,
            seconds,
        },
        lua,
        e.envoy.pid(),
    );
    // Let requests still in flight when wrk stopped finish before reading counters.
    thread::sleep(Duration::from_millis(100));
    let grew = e.envoy.stat(counter) - before;
    let context = format!("{} / {} / {connections} conn", e.variant.name(), w.name);
    let expected_non_2xx = if status == 200 { 0 } else { r.requests };
    assert_eq!(
        r.non_2xx,
        expected_non_2xx,
        "{context}: {} responses were not {status}",
        r.non_2xx.abs_diff(expected_non_2xx)
    );
    assert!(
        grew >= r.requests && grew <= r.requests + u64::from(connections),
        "{context}: {counter} grew by {grew} for {} requests",
        r.requests
    );
    if e.variant == Variant::Filter && w.kind == Kind::Signed && !e.custom_config {
        assert!(
            stripped() > stripped_before,
            "{context}: the filter stripped nothing"
        );
    }
    if r.socket_errors > 0 {
        eprintln!("  warning: {context}: {} socket errors", r.socket_errors);
    }
    r
}

/// One request of each workload to each Envoy, checked by hand before measuring.
fn envoy_preflight(envoys: &[RunningEnvoy], workloads: &[Workload]) {
    for e in envoys {
        for w in workloads {
            let body = w
                .body
                .as_ref()
                .map(|p| std::fs::read(p).unwrap())
                .unwrap_or_default();
            let r = send(
                e.envoy.listen,
                "POST",
                "/webhooks/persona",
                &w.headers(),
                &body,
                Framing::ContentLength,
            )
            .unwrap();
            let (status, _) = w.expect(e.variant);
            assert_eq!(
                r.status,
                status,
                "{} / {}: {}\n{}",
                e.variant.name(),
                w.name,
                r.text(),
                e.envoy.log()
            );
            if status == 200 {
                assert_eq!(
                    r.text(),
                    "ok",
                    "{} / {}: not the origin's answer",
                    e.variant.name(),
                    w.name
                );
            } else if e.variant == Variant::Filter {
                assert!(r.text().contains("source_not_allowed"), "{}", r.text());
            }
        }
    }
}

/// One line of the Envoy part of the table.
struct Metric {
    label: &'static str,
    get: fn(&WrkResult) -> f64,
    /// From the 1-connection runs (else the 16-connection ones).
    latency: bool,
    fmt: fn(f64) -> String,
}

const METRICS: [Metric; 4] = [
    Metric {
        label: "p50 latency, 1 connection",
        get: |r| r.p50_us,
        latency: true,
        fmt: us,
    },
    Metric {
        label: "p99 latency, 1 connection",
        get: |r| r.p99_us,
        latency: true,
        fmt: us,
    },
    Metric {
        label: "throughput, 16 connections",
        get: |r| r.rps,
        latency: false,
        fmt: rps,
    },
    Metric {
        label: "Envoy CPU per request, 16 connections",
        get: |r| r.cpu_us,
        latency: false,
        fmt: us,
    },
];

/// A denied source (headers only, from an address outside the allowlist), and 2 KB
/// and 20 KB deliveries from a Persona address, signed, compact, of event types the
/// shipped configuration forwards (the 2 KB event of the core bench,
/// document.processed, would be acknowledged with a 204 instead).
fn workloads(dir: &Path) -> Vec<Workload> {
    let event = |name: &'static str, file: &str, label: &str| {
        let body = compact_fixture(file);
        let path = dir.join(label);
        std::fs::write(&path, &body).unwrap();
        Workload {
            name,
            kind: Kind::Signed,
            body: Some(path),
            bytes: body.len(),
        }
    };
    vec![
        Workload {
            name: "denied source (headers only)",
            kind: Kind::Denied,
            body: None,
            bytes: 0,
        },
        event("2KB delivery", "verification-passed.json", "2kb.json"),
        event("20KB delivery", "inquiry-completed-large.json", "20kb.json"),
    ]
}

/// `profile VARIANT WORKLOAD [SECONDS]`: one Envoy under 16 connections of one
/// workload while `perf record` samples it (cpu-clock); prints where its CPU time
/// went by object (Envoy's binary is stripped; the Wasm code V8 compiled is in
/// anonymous memory) and the busiest addresses. For docs/performance-notes.md.
/// `BENCH_PLUGIN_CONFIG=FILE` runs the filter with another plugin configuration;
/// `BENCH_PERF=0` only measures (throughput, CPU per request, p50).
fn cmd_profile(variant: &str, workload: &str, seconds: u64) {
    let variant = *Variant::ALL
        .iter()
        .find(|v| v.name().eq_ignore_ascii_case(variant))
        .unwrap_or_else(|| panic!("variant: passthrough, RBAC, empty-wasm or persona-edge"));
    let dir = tempdir("bench-profile");
    let lua = dir.join("post.lua");
    std::fs::write(&lua, WRK_LUA).unwrap();
    let w = workloads(&dir)
        .into_iter()
        .find(|w| w.name.starts_with(workload))
        .unwrap_or_else(|| panic!("workload: denied, 2KB or 20KB"));
    let plugin_config =
        std::env::var_os("BENCH_PLUGIN_CONFIG").map(|p| std::fs::read_to_string(p).unwrap());
    let envoy = RunningEnvoy::start(variant, &dir, plugin_config.as_deref());
    envoy_preflight(std::slice::from_ref(&envoy), std::slice::from_ref(&w));
    envoy_run(&envoy, &w, 16, 2, &lua);
    if std::env::var("BENCH_PERF").is_ok_and(|v| v == "0") {
        let r = envoy_run(&envoy, &w, 16, seconds, &lua);
        let lat = envoy_run(&envoy, &w, 1, seconds, &lua);
        println!(
            "{} / {}: {} / {:.0} µs Envoy CPU per request / p50 {} at 1 connection",
            variant.name(),
            w.name,
            rps(r.rps),
            r.cpu_us,
            us(lat.p50_us)
        );
        drop(envoy);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let data = dir.join("perf.data");
    let mut perf = Command::new("perf")
        .args(["record", "-e", "cpu-clock", "-F", "4000", "-g", "-o"])
        .arg(&data)
        .args(["-p", &envoy.envoy.pid().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("perf: {e} (apt-get install linux-perf)"));
    let r = envoy_run(&envoy, &w, 16, seconds, &lua);
    // SAFETY: SIGINT to our own perf child, which then writes its data and exits.
    unsafe {
        libc::kill(perf.id() as i32, libc::SIGINT);
    }
    let _ = perf.wait();
    println!(
        "{} / {}: {} / {:.0} µs Envoy CPU per request",
        variant.name(),
        w.name,
        rps(r.rps),
        r.cpu_us
    );
    for sort in ["dso", "dso,sym"] {
        let out = Command::new("perf")
            .args([
                "report",
                "--no-children",
                "--stdio",
                "-g",
                "none",
                "--percent-limit",
                "1.5",
                "--sort",
                sort,
                "-i",
            ])
            .arg(&data)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            println!("  {}", line.trim_end());
        }
        println!();
    }
    drop(envoy);
    let _ = std::fs::remove_dir_all(&dir);
}

fn cmd_envoy(rows_file: &Path) {
    let rounds = env_num("BENCH_ROUNDS", 3) as usize;
    let seconds = env_num("BENCH_SECONDS", 4);
    let warmup = env_num("BENCH_WARMUP", 2);
    let dir = tempdir("bench-envoy");
    let lua = dir.join("post.lua");
    std::fs::write(&lua, WRK_LUA).unwrap();
    let workloads = workloads(&dir);
    let envoys: Vec<RunningEnvoy> = Variant::ALL
        .iter()
        .map(|v| RunningEnvoy::start(*v, &dir, None))
        .collect();
    envoy_preflight(&envoys, &workloads);
    println!(
        "Envoy {} (--concurrency 1, CPU {}) and wrk (1 thread, CPU {}): {} rounds of {seconds} s runs, after {warmup} s of warm-up each",
        envoy_version(),
        server_cpu(),
        client_cpu(),
        rounds
    );
    for w in &workloads {
        for e in &envoys {
            envoy_run(e, w, 16, warmup, &lua);
        }
    }
    // (workload, variant) -> (latency runs at 1 connection, throughput runs at 16)
    let mut results: BTreeMap<(usize, usize), (Vec<WrkResult>, Vec<WrkResult>)> = BTreeMap::new();
    for round in 0..rounds {
        for (wi, w) in workloads.iter().enumerate() {
            for k in 0..envoys.len() {
                let vi = (k + round + wi) % envoys.len();
                let e = &envoys[vi];
                let lat = envoy_run(e, w, 1, seconds, &lua);
                let tput = envoy_run(e, w, 16, seconds, &lua);
                println!(
                    "  round {} {:<30} {:<13} 1 conn: p50 {:>9} p99 {:>9} | 16 conn: {:>12} {:>8} CPU/req",
                    round + 1,
                    w.name,
                    e.variant.name(),
                    us(lat.p50_us),
                    us(lat.p99_us),
                    rps(tput.rps),
                    us(tput.cpu_us)
                );
                let entry = results.entry((wi, vi)).or_default();
                entry.0.push(lat);
                entry.1.push(tput);
            }
        }
    }
    let mut rows = Vec::new();
    let index = |v: Variant| Variant::ALL.iter().position(|x| *x == v).unwrap();
    for (wi, w) in workloads.iter().enumerate() {
        let m = |v: Variant, metric: &Metric| {
            let (lat, tput) = &results[&(wi, index(v))];
            let runs = if metric.latency { lat } else { tput };
            median(runs.iter().map(metric.get).collect())
        };
        let size = if w.bytes > 0 {
            format!(" ({} bytes)", w.bytes)
        } else {
            String::new()
        };
        for metric in &METRICS {
            let (label, fmt) = (metric.label, metric.fmt);
            let (a, b, f, c) = (
                m(Variant::Passthrough, metric),
                m(Variant::Rbac, metric),
                m(Variant::Floor, metric),
                m(Variant::Filter, metric),
            );
            let target = match (w.kind, label, w.bytes > 10_000) {
                (Kind::Denied, "throughput, 16 connections", _) => {
                    format!("≥ 0.9x RBAC: {}", verdict(c / b >= 0.9))
                }
                (Kind::Signed, "p50 latency, 1 connection", true) => {
                    format!("≤ 1.25x passthrough: {}", verdict(c / a <= 1.25))
                }
                _ => String::new(),
            };
            rows.push([
                format!("Envoy, {}{size}: {label}", w.name),
                fmt(c),
                format!(
                    "passthrough {}; RBAC {}; empty Wasm filter {}",
                    fmt(a),
                    fmt(b),
                    fmt(f)
                ),
                format!("{:.2}x; {:.2}x; {:.2}x", c / a, c / b, c / f),
                target,
            ]);
        }
    }
    for e in &envoys {
        let (cx, rq) = (
            e.envoy.stat("cluster.origin.upstream_cx_total"),
            e.envoy.stat("cluster.origin.upstream_rq_total"),
        );
        println!(
            "  {}: {rq} requests to the origin over {cx} upstream connections",
            e.variant.name()
        );
    }
    append_rows(rows_file, &rows);
    drop(envoys);
    let _ = std::fs::remove_dir_all(&dir);
}

fn envoy_version() -> String {
    Command::new(envoy_bin())
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            // "<path>  version: <commit>/1.40.0/Clean/RELEASE/BoringSSL"
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            let (_, version) = text.split_once("version: ")?;
            version.split('/').nth(1).map(str::to_string)
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The Worker in workerd

fn cmd_worker(rows_file: &Path) {
    let rounds = env_num("BENCH_WORKER_ROUNDS", 5) as usize;
    let seconds = env_num("BENCH_SECONDS", 4);
    let warmup = env_num("BENCH_WARMUP", 2);
    built_worker();
    // A keep-alive origin that reads each request and answers 200 "ok", keeping nothing.
    let origin = Origin::start_discarding(Answer {
        status: 200,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: b"ok".to_vec(),
    });
    let origin_url = origin.url();
    let mut pass = Service::new("pass_through", None, Some(origin_url.clone()));
    pass.js = Some(PASS_THROUGH_WORKER.into());
    // The full job: allowlist, signature, blocklist, routing headers.
    let edge = Service::new(
        "edge_strict",
        Some(config_text("strict.json")),
        Some(origin_url),
    );
    let workerd = Workerd::start(&[pass, edge]);
    let pid = workerd.process.child.id();
    let registered = Registered::new(pid);
    pin(pid);
    let dir = tempdir("bench-worker");
    let lua = dir.join("post.lua");
    std::fs::write(&lua, WRK_LUA).unwrap();
    let body = compact_fixture("inquiry-completed-large.json");
    let body_path = dir.join("20kb.json");
    std::fs::write(&body_path, &body).unwrap();
    let headers = || {
        vec![
            (
                "Content-Type".to_string(),
                "application/json; charset=utf-8".to_string(),
            ),
            ("Persona-Signature".into(), sign(SECRET, &body_path)),
            ("Persona-Webhook-Attempts-Made".into(), "1".into()),
            ("CF-Connecting-IP".into(), "35.232.44.140".into()),
        ]
    };
    let variants = ["pass_through", "edge_strict"];
    for v in variants {
        let r = send(
            workerd.addr(v),
            "POST",
            "/hooks/persona",
            &headers(),
            &body,
            Framing::ContentLength,
        )
        .unwrap();
        assert_eq!(
            r.status,
            200,
            "{v}: {}\n{}",
            r.text(),
            workerd.process.output()
        );
        assert_eq!(r.text(), "ok", "{v}: not the origin's answer");
    }
    let run = |v: &str, seconds: u64| {
        let r = wrk(
            &Load {
                url: format!("http://{}/hooks/persona", workerd.addr(v)),
                body: Some(&body_path),
                headers: headers(),
                connections: 1,
                seconds,
            },
            &lua,
            pid,
        );
        assert_eq!(r.non_2xx, 0, "{v}: {} responses were not 200", r.non_2xx);
        r
    };
    println!(
        "workerd (CPU {}) with a pass-through Worker and the persona-edge Worker (strict.json), {} byte deliveries, 1 connection, {rounds} rounds of {seconds} s",
        server_cpu(),
        body.len()
    );
    for v in variants {
        run(v, warmup);
    }
    let mut results: Vec<Vec<WrkResult>> = vec![Vec::new(), Vec::new()];
    for round in 0..rounds {
        for k in 0..2 {
            let vi = (k + round) % 2;
            let r = run(variants[vi], seconds);
            println!(
                "  round {} {:<13} p50 {:>9} p99 {:>9} {:>12} {:>8} CPU/req",
                round + 1,
                variants[vi],
                us(r.p50_us),
                us(r.p99_us),
                rps(r.rps),
                us(r.cpu_us)
            );
            results[vi].push(r);
        }
    }
    let m = |vi: usize, f: fn(&WrkResult) -> f64| median(results[vi].iter().map(f).collect());
    let (p_pass, p_edge) = (m(0, |r| r.p50_us), m(1, |r| r.p50_us));
    let (c_pass, c_edge) = (m(0, |r| r.cpu_us), m(1, |r| r.cpu_us));
    let (q_pass, q_edge) = (m(0, |r| r.p99_us), m(1, |r| r.p99_us));
    let rows = vec![
        [
            format!(
                "Worker (workerd), 20KB delivery ({} bytes): p50 latency, 1 connection",
                body.len()
            ),
            us(p_edge),
            format!("pass-through Worker {}", us(p_pass)),
            format!("{:.2}x ({})", p_edge / p_pass, delta(p_edge - p_pass)),
            format!("< 1 ms added: {}", verdict(p_edge - p_pass < 1000.0)),
        ],
        [
            "Worker (workerd), 20KB delivery: p99 latency, 1 connection".into(),
            us(q_edge),
            format!("pass-through Worker {}", us(q_pass)),
            format!("{:.2}x ({})", q_edge / q_pass, delta(q_edge - q_pass)),
            String::new(),
        ],
        [
            "Worker (workerd), 20KB delivery: workerd CPU per request".into(),
            us(c_edge),
            format!("pass-through Worker {}", us(c_pass)),
            format!("{:.2}x ({})", c_edge / c_pass, delta(c_edge - c_pass)),
            String::new(),
        ],
    ];
    append_rows(rows_file, &rows);
    drop(registered);
    drop(workerd);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// The core (criterion's results) and the sizes

/// A JSON file the bench wrote under `target/criterion/`, if written at or after
/// `since` (an older one is from another run and is ignored, with a note).
fn criterion_json(relative: &str, since: u64) -> Option<Value> {
    let path = target_dir().join("criterion").join(relative);
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    let secs = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    if secs < since {
        eprintln!("{}: older than this run, ignored", path.display());
        return None;
    }
    serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
}

/// criterion's median for `group/id`.
fn criterion_median(group: &str, id: &str, since: u64) -> Option<f64> {
    criterion_json(&format!("{group}/{id}/new/estimates.json"), since)?["median"]["point_estimate"]
        .as_f64()
}

/// The bench's interleaved ratios for one event size (see `paired_ratios` in
/// shared/benches/process.rs).
fn paired_ratios(size: &str, since: u64) -> Option<Value> {
    criterion_json(&format!("paired_{size}.json"), since)
}

fn cmd_core(rows_file: &Path, since: u64) {
    let ns = |n: f64| us(n / 1e3);
    let mut rows = Vec::new();
    for size in ["2KB", "20KB", "200KB"] {
        let group = format!("body_{size}");
        let get = |id: &str| criterion_median(&group, id, since).unwrap_or(f64::NAN);
        let (p, o, v, i, m) = (
            get("process"),
            get("validate_only"),
            get("value_round_trip"),
            get("ignored_any"),
            get("memcpy"),
        );
        // The ratios from interleaved rounds when the bench wrote them; criterion's
        // medians, taken one after the other, otherwise.
        let paired = paired_ratios(size, since);
        let pick = |key: &str, fallback: f64| {
            paired
                .as_ref()
                .and_then(|j| j[key].as_f64())
                .unwrap_or(fallback)
        };
        let over_i = pick("process_over_ignored_any", p / i);
        let over_o = pick("process_over_validate_only", p / o);
        let over_v = 1.0 / pick("value_round_trip_over_process", v / p);
        let how = if paired.is_some() {
            " (interleaved)"
        } else {
            ""
        };
        let mut target = format!("≤ 2x IgnoredAny: {}", verdict(over_i <= 2.0));
        if size == "20KB" {
            target = format!(
                "≤ 0.33x Value round trip (3x faster): {}; {target}",
                verdict(over_v <= 1.0 / 3.0)
            );
        }
        rows.push([
            format!("Core native: process {size}"),
            ns(p),
            format!(
                "Value round trip {}; IgnoredAny {}; validate only {}; memcpy {}",
                ns(v),
                ns(i),
                ns(o),
                ns(m)
            ),
            format!(
                "{over_v:.2}x; {over_i:.2}x; {over_o:.2}x; {:.0}x{how}",
                p / m
            ),
            target,
        ]);
    }
    let a = criterion_median("checks", "allowlist_22", since).unwrap_or(f64::NAN) / 3.0;
    rows.push([
        "Core native: source check against the 22 Persona addresses (per address)".into(),
        format!("{a:.1} ns"),
        String::new(),
        String::new(),
        format!("< 100 ns: {}", verdict(a < 100.0)),
    ]);
    let h = criterion_median("checks", "hmac_20KB", since).unwrap_or(f64::NAN);
    let vp = criterion_median("checks", "verify_and_process_20KB", since).unwrap_or(f64::NAN);
    let p20 = criterion_median("body_20KB", "process", since).unwrap_or(f64::NAN);
    rows.push([
        "Core native: signature (HMAC-SHA256 over 20 KB)".into(),
        ns(h),
        String::new(),
        String::new(),
        String::new(),
    ]);
    rows.push([
        "Core native: verify + process 20 KB".into(),
        ns(vp),
        format!("process alone {}", ns(p20)),
        format!("{:.2}x", vp / p20),
        String::new(),
    ]);
    append_rows(rows_file, &rows);
}

fn gzip_len(path: &Path) -> u64 {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "gzip {}", path.display());
    out.stdout.len() as u64
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn cmd_sizes(rows_file: &Path) {
    let filter = wasm_path();
    let raw = std::fs::metadata(&filter).unwrap().len();
    let gz = gzip_len(&filter);
    let floor = floor_wasm();
    let floor_raw = std::fs::metadata(&floor).unwrap().len();
    let (js, wasm) = built_worker();
    let (wr, jr) = (
        std::fs::metadata(&wasm).unwrap().len(),
        std::fs::metadata(&js).unwrap().len(),
    );
    let (wg, jg) = (gzip_len(&wasm), gzip_len(&js));
    let rows = vec![
        [
            "Size: Envoy filter (persona_edge_filter.wasm, as scripts/build-filter.sh ships it)"
                .into(),
            format!("{} raw ({raw} B); {} gzip -9", kib(raw), kib(gz)),
            format!(
                "an empty proxy-wasm filter (tests/wasm-floor: SDK, std, allocator; same build) {} raw",
                kib(floor_raw)
            ),
            format!("{:.2}x", raw as f64 / floor_raw as f64),
            format!("≤ 150 KB (150,000 B) raw: {}", verdict(raw <= 150_000)),
        ],
        [
            "Size: Worker bundle (index_bg.wasm + index.js)".into(),
            format!(
                "{} gzip -9 ({} + {}); {} raw",
                kib(wg + jg),
                kib(wg),
                kib(jg),
                kib(wr + jr)
            ),
            String::new(),
            String::new(),
            format!("≤ 300 KiB gzip: {}", verdict(wg + jg <= 300 * 1024)),
        ],
    ];
    append_rows(rows_file, &rows);
}

// ---------------------------------------------------------------------------
// The table

fn cmd_table(rows_file: &Path) {
    let text = std::fs::read_to_string(rows_file).unwrap_or_default();
    println!(
        "| measurement | persona-edge | baseline(s) | ratio (persona-edge ÷ baseline) | target |"
    );
    println!("|---|---|---|---|---|");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split('\t').collect();
        let cell = |i: usize| cells.get(i).copied().unwrap_or("");
        let target = cell(4).replace("MISSED", "**MISSED**");
        println!(
            "| {} | {} | {} | {} | {} |",
            cell(0),
            cell(1),
            cell(2),
            cell(3),
            target
        );
    }
}

fn main() {
    guard_children();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let rows = flag("--rows").map(PathBuf::from);
    let need_rows = || rows.clone().expect("--rows FILE");
    match args.first().map(String::as_str) {
        Some("envoy") => {
            pin_self_to_client_cpu();
            cmd_envoy(&need_rows())
        }
        Some("worker") => {
            pin_self_to_client_cpu();
            cmd_worker(&need_rows())
        }
        Some("core") => cmd_core(
            &need_rows(),
            flag("--since").and_then(|s| s.parse().ok()).unwrap_or(0),
        ),
        Some("sizes") => cmd_sizes(&need_rows()),
        Some("profile") => {
            pin_self_to_client_cpu();
            cmd_profile(
                args.get(1).map_or("persona-edge", String::as_str),
                args.get(2).map_or("20KB", String::as_str),
                args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10),
            )
        }
        Some("table") => cmd_table(Path::new(args.get(1).expect("table FILE"))),
        _ => {
            eprintln!("usage: bench-harness envoy|worker|core|sizes --rows FILE | table FILE");
            std::process::exit(2);
        }
    }
}
