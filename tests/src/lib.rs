//! Shared pieces of the integration tests: paths, the fixture cases every runner
//! sends, the native `persona-edge process` oracle, a recording HTTP origin, a raw
//! HTTP/1.1 client, and a guard for child processes.
//!
//! Nothing here is a mock: the origin is a real TCP server, the client speaks HTTP/1.1
//! on a real socket, and the oracle is the release `persona-edge` binary.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use persona_edge_core::signature_header;
use serde_json::Value;

pub mod envoy;
pub mod load;
pub mod workerd;

/// The fixture secret every signed case uses, and the previous one (rotation).
pub const SECRET: &str = "wbhsec_fixture_current";
pub const PREVIOUS_SECRET: &str = "wbhsec_fixture_previous";
/// The secret `camel-resign.json` re-signs with (the origin's).
pub const ORIGIN_SECRET: &str = "origin_secret_for_tests";

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub fn fixtures_dir() -> PathBuf {
    workspace_root().join("tests/fixtures")
}

/// Where installed tools live: `$PERSONA_EDGE_CACHE`, else `~/.cache/persona-edge`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PERSONA_EDGE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/persona-edge")
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// What a case expects, whatever the runner.
#[derive(Clone, Debug)]
pub struct Expect {
    pub action: String,
    pub status: Option<u16>,
    pub code: Option<String>,
    /// Texts that must not appear in the forwarded body.
    pub absent: Vec<String>,
    /// Texts that must appear in the forwarded body.
    pub present: Vec<String>,
    /// The forwarded body is the original, byte for byte.
    pub identical: bool,
    /// Shadow mode: the decision reported.
    pub decision: Option<String>,
}

/// What the shipped `envoy/envoy.yaml` answers instead of the filter, for a case that
/// Envoy itself refuses before any filter runs (`"envoy"` in cases.json, whose
/// `why` says why): the status, and the access log's `%RESPONSE_CODE_DETAILS%`.
#[derive(Clone, Debug)]
pub struct EnvoyRefusal {
    pub status: u16,
    pub details: String,
}

/// One delivery from `tests/fixtures/cases.json`.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    /// File name in `tests/fixtures/configs/`.
    pub config: String,
    pub method: String,
    pub content_type: Option<String>,
    /// The client address the runner must make the filter see.
    pub client: String,
    /// How to sign: valid, none, stale, future, wrong-secret, other-body, malformed,
    /// rotation, previous-secret, two-headers, too-many-groups.
    pub signature: String,
    pub extra_headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub expect: Expect,
    /// Envoy refuses it itself through the shipped envoy.yaml (the other runners
    /// follow `expect`).
    pub envoy: Option<EnvoyRefusal>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Every shared case.
pub fn cases() -> Vec<Case> {
    let dir = fixtures_dir();
    let doc: Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let body = match (&c["event"], &c["body"]) {
                (Value::String(file), _) => std::fs::read(dir.join("events").join(file)).unwrap(),
                (_, Value::String(text)) => text.as_bytes().to_vec(),
                _ => panic!("case {} has no body", c["name"]),
            };
            let e = &c["expect"];
            Case {
                name: c["name"].as_str().unwrap().into(),
                config: c["config"].as_str().unwrap().into(),
                method: c["method"].as_str().unwrap_or("POST").into(),
                content_type: match c.get("content_type") {
                    None => Some("application/json; charset=utf-8".into()),
                    Some(Value::Null) => None,
                    Some(v) => Some(v.as_str().unwrap().into()),
                },
                client: c["client"].as_str().unwrap_or("35.232.44.140").into(),
                signature: c["signature"].as_str().unwrap_or("valid").into(),
                extra_headers: c["headers"]
                    .as_array()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
                            .collect()
                    })
                    .unwrap_or_default(),
                body,
                expect: Expect {
                    action: e["action"].as_str().unwrap().into(),
                    status: e["status"].as_u64().map(|s| s as u16),
                    code: e["code"].as_str().map(String::from),
                    absent: strings(&e["absent"]),
                    present: strings(&e["present"]),
                    identical: e["identical"].as_bool().unwrap_or(false),
                    decision: e["decision"].as_str().map(String::from),
                },
                envoy: c.get("envoy").map(|v| EnvoyRefusal {
                    status: v["status"].as_u64().unwrap() as u16,
                    details: v["details"].as_str().unwrap().into(),
                }),
            }
        })
        .collect()
}

/// The shared case named `name`.
pub fn case(name: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no fixture case {name}"))
}

/// The text of a fixture configuration.
pub fn config_text(name: &str) -> String {
    std::fs::read_to_string(fixtures_dir().join("configs").join(name)).unwrap()
}

impl Case {
    /// The `Persona-Signature` value for this case at `now`, if it sends one.
    pub fn signature_at(&self, now: u64) -> Option<String> {
        Some(match self.signature.as_str() {
            "none" => return None,
            "valid" => signature_header(SECRET, now, &self.body),
            "previous-secret" => signature_header(PREVIOUS_SECRET, now, &self.body),
            "stale" => signature_header(SECRET, now - 3600, &self.body),
            "future" => signature_header(SECRET, now + 3600, &self.body),
            "wrong-secret" => signature_header("wbhsec_someone_else", now, &self.body),
            "other-body" => signature_header(SECRET, now, b"{\"data\":{}}"),
            "malformed" => format!("t={now},v1=not-hex"),
            "rotation" => format!(
                "{} {}",
                signature_header("wbhsec_retired", now, &self.body),
                signature_header(SECRET, now, &self.body)
            ),
            // Four forged groups within the tolerance, then a genuine one: one more
            // than the core reads.
            "too-many-groups" => format!(
                "{0} {0} {0} {0} {1}",
                format_args!("t={now},v1={}", "0".repeat(64)),
                signature_header(SECRET, now, &self.body)
            ),
            "two-headers" => return self.signatures_at(now).into_iter().next(),
            other => panic!("case {}: unknown signature kind {other}", self.name),
        })
    }

    /// Every `Persona-Signature` header for this case at `now`, in order: two for
    /// `two-headers` (the genuine one, then one made with a retired secret).
    pub fn signatures_at(&self, now: u64) -> Vec<String> {
        match self.signature.as_str() {
            "two-headers" => vec![
                signature_header(SECRET, now, &self.body),
                signature_header("wbhsec_retired", now, &self.body),
            ],
            _ => self.signature_at(now).into_iter().collect(),
        }
    }

    /// The request headers (without the client address, which each runner conveys
    /// its own way), signed at `now`.
    pub fn headers_at(&self, now: u64) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        if let Some(ct) = &self.content_type {
            headers.push(("Content-Type".to_string(), ct.clone()));
        }
        for sig in self.signatures_at(now) {
            headers.push(("Persona-Signature".to_string(), sig));
        }
        headers.push(("Persona-Webhook-Attempts-Made".to_string(), "1".to_string()));
        headers.extend(self.extra_headers.iter().cloned());
        headers
    }

    /// Checks a forwarded body against `absent`/`present`/`identical`.
    pub fn check_forwarded_body(&self, body: &[u8]) {
        let text = String::from_utf8_lossy(body);
        for a in &self.expect.absent {
            assert!(
                !text.contains(a.as_str()),
                "{}: {a:?} reached the origin",
                self.name
            );
        }
        for p in &self.expect.present {
            assert!(
                text.contains(p.as_str()),
                "{}: {p:?} missing from the forwarded body",
                self.name
            );
        }
        if self.expect.identical {
            assert!(
                body == self.body.as_slice(),
                "{}: the body was changed",
                self.name
            );
        }
    }
}

/// The release `persona-edge` binary (`cargo build --release --bin persona-edge`).
pub fn cli_binary() -> PathBuf {
    let path = target_dir().join("release/persona-edge");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --release --bin persona-edge` first (`make test` does)",
        path.display()
    );
    path
}

/// What `persona-edge process` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct CliOutput {
    pub action: String,
    pub status: Option<u16>,
    pub code: Option<String>,
    /// Headers set on the forwarded request, or on the reply.
    pub headers: BTreeMap<String, String>,
    pub remove_headers: Vec<String>,
    pub metadata: Value,
    pub body: Vec<u8>,
    pub decision: String,
    pub raw: Value,
}

/// Runs `persona-edge process` on the case as delivered at `now` by `client`.
pub fn cli_process(case: &Case, now: u64) -> CliOutput {
    let dir = tempdir(&format!("cli-{}", case.name));
    let body_path = dir.join("body");
    std::fs::write(&body_path, &case.body).unwrap();
    let mut cmd = Command::new(cli_binary());
    cmd.arg("process")
        .arg("--config")
        .arg(fixtures_dir().join("configs").join(&case.config))
        .arg("--remote-addr")
        .arg(&case.client)
        .arg("--method")
        .arg(&case.method)
        .arg("--now")
        .arg(now.to_string());
    for (n, v) in case.headers_at(now) {
        cmd.arg("--header").arg(format!("{n}: {v}"));
    }
    cmd.arg(&body_path);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}: persona-edge process failed: {}",
        case.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    parse_cli_output(&out.stdout)
}

/// A runner's reply to the delivery `name` is the command's refusal or acknowledgement:
/// its status, its body byte for byte, and every header the core sets on it. `runner`
/// labels the runner's body in the message.
pub fn assert_reply_is_the_commands(
    name: &str,
    runner: &str,
    response: &Response,
    cli: &CliOutput,
) {
    assert_eq!(
        Some(response.status),
        cli.status,
        "{name}: status; body {}",
        response.text()
    );
    assert!(
        response.body == cli.body,
        "{name}: reply body\n{runner}: {}\nnative: {}",
        response.text(),
        String::from_utf8_lossy(&cli.body)
    );
    for (header, value) in &cli.headers {
        assert_eq!(
            response.header(header),
            Some(value.as_str()),
            "{name}: reply header {header}"
        );
    }
}

pub fn parse_cli_output(stdout: &[u8]) -> CliOutput {
    let v: Value = serde_json::from_slice(stdout).unwrap();
    CliOutput {
        action: v["action"].as_str().unwrap().into(),
        status: v["status"].as_u64().map(|s| s as u16),
        code: v["code"].as_str().map(String::from),
        headers: v["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect(),
        remove_headers: strings(&v["remove_headers"]),
        metadata: v["metadata"].clone(),
        body: v["body"]
            .as_str()
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default(),
        decision: v["decision"].as_str().unwrap_or("").into(),
        raw: v,
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

/// A fresh directory under the system temp dir.
pub fn tempdir(label: &str) -> PathBuf {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let dir = std::env::temp_dir().join(format!(
        "persona-edge-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        label.replace(['/', ' '], "_")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------
// HTTP/1.1 on the wire

/// A request as the origin received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// A response as the client received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A start line and its headers.
pub(crate) type Head = (String, Vec<(String, String)>);

/// Sees each request the origin records (the demo origin prints them).
pub type RequestHook = Arc<dyn Fn(&Recorded) + Send + Sync>;

/// Reads a start line and headers; `None` on a clean end of stream.
pub(crate) fn read_head(reader: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    // Lines are read as bytes: a header value need not be UTF-8, and the origin must
    // still record such a request.
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    let start = String::from_utf8_lossy(&line).trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "headers cut short",
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        if let Some((n, v)) = text.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some((start, headers)))
}

/// Reads a message body framed by Content-Length or chunked encoding; with neither,
/// reads to the end of the stream when `to_eof` (responses), else none (requests).
pub(crate) fn read_body(
    reader: &mut impl BufRead,
    headers: &[(String, String)],
    to_eof: bool,
) -> std::io::Result<Vec<u8>> {
    let chunked = header(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = header(headers, "content-length") {
        let len: usize = len
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if to_eof {
        reader.read_to_end(&mut body)?;
    }
    Ok(body)
}

/// How a client sends a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// One write with Content-Length.
    ContentLength,
    /// Transfer-Encoding: chunked, in pieces of this many bytes, each flushed apart.
    Chunked(usize),
}

/// Sends one request on a new connection (`Connection: close`) and reads the response.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    framing: Framing,
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    match framing {
        Framing::ContentLength => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            let mut message = head.into_bytes();
            message.extend_from_slice(body);
            stream.write_all(&message)?;
        }
        Framing::Chunked(piece) => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            stream.write_all(head.as_bytes())?;
            for chunk in body.chunks(piece.max(1)) {
                stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                stream.write_all(chunk)?;
                stream.write_all(b"\r\n")?;
                stream.flush()?;
            }
            stream.write_all(b"0\r\n\r\n")?;
        }
    }
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let (start, headers) = read_head(&mut reader)?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response"))?;
    let status = start
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("bad status line {start:?}"),
            )
        })?;
    let body = if status == 204 || status == 304 || method == "HEAD" {
        Vec::new()
    } else {
        read_body(&mut reader, &headers, true)?
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Polls `GET path` until it answers 200 or `timeout` passes.
pub fn wait_for_ok(addr: SocketAddr, path: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let answer = send(addr, "GET", path, &[], b"", Framing::ContentLength);
        if answer.is_ok_and(|r| r.status == 200) {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

/// How the origin answers.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Default for Answer {
    fn default() -> Self {
        Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: b"{\"received\":true}".to_vec(),
        }
    }
}

/// A real HTTP/1.1 origin on 127.0.0.1 that records every request it gets. It
/// serves keep-alive connections (proxies pool them) and chunked request bodies.
pub struct Origin {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Recorded>>>,
    answer: Arc<Mutex<Answer>>,
    stop: Arc<AtomicBool>,
    on_request: Option<RequestHook>,
    /// Requests received, recorded or not.
    count: Arc<AtomicUsize>,
}

impl Origin {
    pub fn start() -> Origin {
        Origin::start_on(0, Answer::default(), None)
    }

    pub fn start_with(answer: Answer) -> Origin {
        Origin::start_on(0, answer, None)
    }

    /// `port` 0 picks a free one; `on_request` sees each request as it is recorded.
    pub fn start_on(port: u16, answer: Answer, on_request: Option<RequestHook>) -> Origin {
        Origin::launch(port, answer, on_request, true)
    }

    /// An origin that keeps nothing: it counts the requests ([`Origin::received_count`])
    /// and shows each one to `check` as it arrives, then forgets it. For soak runs, where
    /// every body must be checked but 100,000 of them must not be held in memory.
    /// `requests()` stays empty.
    pub fn start_checking(check: RequestHook) -> Origin {
        Origin::launch(0, Answer::default(), Some(check), false)
    }

    fn launch(port: u16, answer: Answer, on_request: Option<RequestHook>, record: bool) -> Origin {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let addr = listener.local_addr().unwrap();
        let origin = Origin {
            addr,
            received: Arc::default(),
            answer: Arc::new(Mutex::new(answer)),
            stop: Arc::default(),
            on_request,
            count: Arc::default(),
        };
        let (received, answer, stop, hook, count) = (
            origin.received.clone(),
            origin.answer.clone(),
            origin.stop.clone(),
            origin.on_request.clone(),
            origin.count.clone(),
        );
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (received, answer, hook, count) = (
                    received.clone(),
                    answer.clone(),
                    hook.clone(),
                    count.clone(),
                );
                thread::spawn(move || {
                    let sink = Sink {
                        received: &received,
                        record,
                        count: &count,
                        hook: hook.as_deref(),
                    };
                    serve(stream, &sink, &answer)
                });
            }
        });
        origin
    }

    /// How many requests arrived so far (recorded or not; `clear` does not reset it).
    pub fn received_count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.received.lock().unwrap().clear();
    }

    pub fn set_answer(&self, answer: Answer) {
        *self.answer.lock().unwrap() = answer;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Where the origin puts what it receives.
struct Sink<'a> {
    received: &'a Mutex<Vec<Recorded>>,
    /// Keep every request in `received` (false: only count it and show it to the hook,
    /// for runs too long to hold every body).
    record: bool,
    count: &'a AtomicUsize,
    hook: Option<&'a (dyn Fn(&Recorded) + Send + Sync)>,
}

fn serve(stream: TcpStream, sink: &Sink<'_>, answer: &Mutex<Answer>) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let Ok(Some((start, headers))) = read_head(&mut reader) else {
            return;
        };
        let Ok(body) = read_body(&mut reader, &headers, false) else {
            return;
        };
        let mut parts = start.split_whitespace();
        let recorded = Recorded {
            method: parts.next().unwrap_or("").to_string(),
            path: parts.next().unwrap_or("").to_string(),
            headers: headers.clone(),
            body,
        };
        if let Some(hook) = sink.hook {
            hook(&recorded);
        }
        // Counted after the hook: a caller that sees the count has seen the check.
        if sink.record {
            sink.received.lock().unwrap().push(recorded);
        }
        sink.count.fetch_add(1, Ordering::SeqCst);
        let answer = answer.lock().unwrap().clone();
        let close = header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut head = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
        for (n, v) in &answer.headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n", answer.body.len()));
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut message = head.into_bytes();
        message.extend_from_slice(&answer.body);
        if writer.write_all(&message).is_err() || close {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

// ---------------------------------------------------------------------------
// Child processes

/// A child process in its own process group, killed (with its group) on drop, with
/// its output in a log file.
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Process {
    /// Starts `cmd` detached from the test's process group (Envoy and workerd were
    /// seen to die with the launching shell otherwise), output to `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> Process {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        Process::start(name, cmd, log, out, err)
    }

    /// [`Process::spawn`], but standard output goes to its own file, `stdout`, and only
    /// standard error to `log`. Envoy's stdout access log and its stderr log lines were
    /// seen to interleave in one file under load (an access log line cut in two by a
    /// log line), so a run that reads every access log line keeps them apart.
    pub fn spawn_split(name: &str, cmd: Command, log: &Path, stdout: &Path) -> Process {
        let err = std::fs::File::create(log).unwrap();
        let out = std::fs::File::create(stdout).unwrap();
        Process::start(name, cmd, log, out, err)
    }

    fn start(
        name: &str,
        mut cmd: Command,
        log: &Path,
        out: std::fs::File,
        err: std::fs::File,
    ) -> Process {
        use std::os::unix::process::CommandExt;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name} could not be started ({cmd:?}): {e}"));
        Process {
            child,
            log: log.to_path_buf(),
            name: name.to_string(),
        }
    }

    /// The log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its resident set size now (`VmRSS` of /proc/PID/status), in bytes; `None` once
    /// it has gone or where there is no /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_bytes(self.child.id())
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Panics with the log when `ready` does not become true in time.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ready() {
                return;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} was not ready within {timeout:?}:\n{}",
            self.name,
            self.output()
        );
    }
}

/// The resident set size of process `pid` (`VmRSS` in /proc/PID/status), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Drop for Process {
    fn drop(&mut self) {
        // Signal the whole group (wrangler starts workerd as its own child) with the
        // system call itself: `kill -TERM -PID` through procps was seen to take its
        // argument for an option and signal every process, the test runner included.
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        if pid <= 1 {
            return;
        }
        // SAFETY: kill(2) with a negative pid signals that process group only; the
        // child was started as the leader of its own group (`process_group(0)`).
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
