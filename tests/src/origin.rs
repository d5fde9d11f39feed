//! A recording HTTP/1.1 origin: a real TCP server on 127.0.0.1 that keeps (or shows a
//! hook) every request it receives.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use crate::http::{header, read_body, read_head};

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

/// Sees each request the origin records (the demo origin prints them).
pub type RequestHook = Arc<dyn Fn(&Recorded) + Send + Sync>;

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
    /// Reset every connection after reading its request, instead of answering.
    reset: Arc<AtomicBool>,
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

    /// An origin that keeps and checks nothing: it reads each request whole, counts it
    /// and answers `answer`. The benchmarks' origin, which must cost every variant alike.
    pub fn start_discarding(answer: Answer) -> Origin {
        Origin::launch(0, answer, None, false)
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
            reset: Arc::default(),
        };
        let (received, answer, stop, hook, count, reset) = (
            origin.received.clone(),
            origin.answer.clone(),
            origin.stop.clone(),
            origin.on_request.clone(),
            origin.count.clone(),
            origin.reset.clone(),
        );
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (received, answer, hook, count, reset) = (
                    received.clone(),
                    answer.clone(),
                    hook.clone(),
                    count.clone(),
                    reset.clone(),
                );
                thread::spawn(move || {
                    let sink = Sink {
                        received: &received,
                        record,
                        count: &count,
                        hook: hook.as_deref(),
                        reset: &reset,
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

    /// From now on (`true`), each request is recorded and its connection reset (TCP
    /// RST) instead of answered: the origin crashed mid-request, as a proxy sees it.
    pub fn set_reset(&self, reset: bool) {
        self.reset.store(reset, Ordering::SeqCst);
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
    /// Reset the connection instead of answering.
    reset: &'a AtomicBool,
}

fn serve(stream: TcpStream, sink: &Sink<'_>, answer: &Mutex<Answer>) {
    // Each answer is one write: sent at once, not held back for an ACK (Nagle).
    let _ = stream.set_nodelay(true);
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
        if sink.reset.load(Ordering::SeqCst) {
            reset(&writer);
            return;
        }
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

/// Closes `stream` with a TCP RST (`SO_LINGER` 0) rather than an orderly FIN.
fn reset(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a live socket's descriptor, and a pointer to a `linger` of the size given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    // The socket closes (with the RST) when the caller drops its last handle.
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
