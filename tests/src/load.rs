//! A bounded load generator for loopback soak runs: N keep-alive connections, each
//! on its own thread, sending prepared deliveries round-robin and checking every
//! answer. It reports counts and latency, never floods: the total is fixed up front.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{Response, header, read_body, read_head};

/// One request to send, and the status it must get (0: any, the run's check decides).
#[derive(Clone, Debug)]
pub struct Prepared {
    pub label: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub expect_status: u16,
}

/// What a run saw.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: usize,
    pub wrong: Vec<String>,
    pub errors: Vec<String>,
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    /// How many requests of each label got their expected status.
    pub by_label: std::collections::BTreeMap<String, usize>,
    /// Requests sent a second time on a new connection because the first attempt
    /// failed (the server had closed the keep-alive connection, or an I/O error). A
    /// soak expects none: each is a delivery that did not go through the first time.
    pub retries: usize,
    /// Connections opened, first ones and reconnections (after a `Connection: close`).
    pub connects: usize,
}

impl Report {
    pub fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    }

    pub fn throughput(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct Connection {
    addr: SocketAddr,
    reader: Option<BufReader<TcpStream>>,
    /// Requests this connection had to send twice (see [`Report::retries`]).
    pub retries: usize,
    /// Connections opened (the first one included).
    pub connects: usize,
}

impl Connection {
    pub fn new(addr: SocketAddr) -> Connection {
        Connection {
            addr,
            reader: None,
            retries: 0,
            connects: 0,
        }
    }

    fn stream(&mut self) -> std::io::Result<&mut BufReader<TcpStream>> {
        if self.reader.is_none() {
            let stream = TcpStream::connect(self.addr)?;
            self.connects += 1;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.reader = Some(BufReader::new(stream));
        }
        self.reader
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no connection"))
    }

    /// Sends one request; reconnects once when the server had closed the connection.
    pub fn send(&mut self, request: &Prepared) -> std::io::Result<Response> {
        match self.try_send(request) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.reader = None;
                self.retries += 1;
                self.try_send(request)
            }
        }
    }

    fn try_send(&mut self, r: &Prepared) -> std::io::Result<Response> {
        let addr = self.addr;
        let reader = self.stream()?;
        let mut message = format!("{} {} HTTP/1.1\r\nHost: {addr}\r\n", r.method, r.path);
        for (n, v) in &r.headers {
            message.push_str(&format!("{n}: {v}\r\n"));
        }
        message.push_str(&format!("Content-Length: {}\r\n\r\n", r.body.len()));
        let mut bytes = message.into_bytes();
        bytes.extend_from_slice(&r.body);
        reader.get_mut().write_all(&bytes)?;
        let (start, headers) = read_head(reader)?.ok_or_else(|| std::io::Error::other("closed"))?;
        let status: u16 = start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {start:?}")))?;
        let body = if status == 204 || status == 304 {
            Vec::new()
        } else {
            read_body(reader, &headers, false)?
        };
        let close = header(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if close {
            self.reader = None;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// An extra check of a response with the expected status: `Some(reason)` when wrong.
pub type Check = Arc<dyn Fn(&Prepared, &Response) -> Option<String> + Send + Sync>;

/// Sends `total` requests over `connections` connections, cycling through `requests`.
/// `check` may add its own complaint about a response (returning `Some(reason)`).
pub fn run(
    addr: SocketAddr,
    requests: Arc<Vec<Prepared>>,
    connections: usize,
    total: usize,
    check: Check,
) -> Report {
    run_observed(
        addr,
        requests,
        connections,
        total,
        check,
        Arc::new(AtomicUsize::new(0)),
    )
}

/// [`run`], counting in `done` every request answered or failed as it happens, so that
/// another thread can tell how far the run is (to sample memory during its first and
/// last tenth, or to change the configuration half-way).
pub fn run_observed(
    addr: SocketAddr,
    requests: Arc<Vec<Prepared>>,
    connections: usize,
    total: usize,
    check: Check,
    done: Arc<AtomicUsize>,
) -> Report {
    let next = Arc::new(AtomicUsize::new(0));
    let report = Arc::new(Mutex::new(Report::default()));
    let start = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (next, report, requests, check, done) = (
                next.clone(),
                report.clone(),
                requests.clone(),
                check.clone(),
                done.clone(),
            );
            thread::spawn(move || {
                let mut conn = Connection::new(addr);
                let mut local = Report::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let Some(request) = requests.get(i % requests.len()) else {
                        break;
                    };
                    let t = Instant::now();
                    match conn.send(request) {
                        Ok(response) => {
                            local.latencies.push(t.elapsed());
                            local.sent += 1;
                            if request.expect_status != 0
                                && response.status != request.expect_status
                            {
                                local.wrong.push(format!(
                                    "{}: got {} want {}: {}",
                                    request.label,
                                    response.status,
                                    request.expect_status,
                                    String::from_utf8_lossy(&response.body)
                                ));
                            } else if let Some(reason) = check(request, &response) {
                                local.wrong.push(format!("{}: {reason}", request.label));
                            } else {
                                *local.by_label.entry(request.label.clone()).or_default() += 1;
                            }
                        }
                        Err(e) => local.errors.push(format!("{}: {e}", request.label)),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                let mut shared = report.lock().unwrap();
                shared.retries += conn.retries;
                shared.connects += conn.connects;
                shared.sent += local.sent;
                shared.wrong.extend(local.wrong);
                shared.errors.extend(local.errors);
                shared.latencies.extend(local.latencies);
                for (k, v) in local.by_label {
                    *shared.by_label.entry(k).or_default() += v;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let mut report = std::mem::take(&mut *report.lock().unwrap());
    report.elapsed = start.elapsed();
    report
}
