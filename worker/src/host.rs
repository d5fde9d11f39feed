//! The Worker as the driver's [`Host`]: each runtime call is one of the modules
//! (`body`, `forward`, `dedup`, `log`), and [`serve`] sets one request up: its
//! configuration, where it goes, its head, then the driver.

use persona_edge_core::dedup::{Admission, DedupSettings};
use persona_edge_core::{Admit, Reply, Report};
use persona_edge_core::{Forwarding, RequestHead, Settlement, borrow_headers};
use worker::wasm_bindgen::JsValue;
use worker::{Env, console_log, js_sys, web_sys};

use crate::body::BodyReader;
use crate::driver::{self, Delivered, Host, Outgoing};
use crate::error::{BodyError, DedupError, JsError, SendError};
use crate::forward::{self, Original};
use crate::target::{self, ORIGIN_VAR};
use crate::{config, dedup, log};

/// One request's runtime.
struct WorkerHost<'r> {
    env: &'r Env,
    original: Original<'r>,
    body: BodyReader,
}

impl Host for WorkerHost<'_> {
    type Response = web_sys::Response;

    async fn read_chunk(&mut self, body: &mut Vec<u8>) -> Result<Option<usize>, BodyError> {
        self.body.read_into(body).await
    }

    fn discard_body(&mut self) {
        self.body.cancel();
    }

    async fn send(
        &mut self,
        forwarding: &Forwarding<'_>,
        body: Outgoing<'_>,
    ) -> Result<web_sys::Response, SendError> {
        let body = match body {
            Outgoing::Body(bytes) => Some(JsValue::from(js_sys::Uint8Array::from(bytes))),
            Outgoing::Original(read) => self.body.rejoin(read).map(JsValue::from),
        };
        forward::send(&self.original, forwarding, body.as_ref()).await
    }

    fn status(response: &web_sys::Response) -> u16 {
        response.status()
    }

    async fn admit(&mut self, token: &Admit<'_>) -> Result<Admission, DedupError> {
        dedup::admit(self.env, token).await
    }

    async fn settle(
        &mut self,
        settlement: &Settlement,
        settings: &DedupSettings,
    ) -> Result<(), DedupError> {
        dedup::settle(self.env, settlement, settings).await
    }

    fn now(&self) -> u64 {
        now_secs()
    }

    fn report(&mut self, report: &Report<'_>) {
        if let Some(line) = log::report_line(report) {
            console_log!("{line}");
        }
    }

    fn dedup_failed(&mut self, error: &DedupError, event_id: &str) {
        console_log!("{}", log::dedup_error_line(error, event_id));
    }
}

/// One request: the origin's response, or the reply the Worker writes itself.
pub async fn serve(req: web_sys::Request, env: Env) -> worker::Result<web_sys::Response> {
    let loaded = config::policy(&env);
    let target = target::resolve(config::var(&env, ORIGIN_VAR).as_deref(), &req.url());
    let method = req.method();
    let (headers, unreadable) = match request_headers(&req.headers()) {
        Ok(headers) => (headers, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    let mut host = WorkerHost {
        env: &env,
        original: Original {
            method: &method,
            headers: &headers,
            target: target.as_deref().unwrap_or_default(),
        },
        body: BodyReader::new(req.body()),
    };
    let delivered = match (loaded.as_ref(), &target, unreadable) {
        (Err(error), _, _) => {
            Delivered::Reply(driver::unconfigured(&mut host, None, error.problems()))
        }
        (Ok(policy), Err(error), _) => Delivered::Reply(driver::unconfigured(
            &mut host,
            Some(policy.mode()),
            vec![error.to_string()],
        )),
        (Ok(policy), Ok(_), Some(error)) => driver::host_failed(
            &mut host,
            policy,
            &format!("reading the request headers: {error}"),
        ),
        (Ok(policy), Ok(_), None) => {
            let pairs = borrow_headers(&headers);
            let head = RequestHead {
                method: &method,
                headers: &pairs,
                // A Worker sees no peer: the client address is a header.
                peer: None,
            };
            driver::deliver(&mut host, policy, &head).await
        }
    };
    match delivered {
        Delivered::Origin(response) => Ok(response),
        Delivered::Reply(reply) => Ok(respond(&reply)?),
    }
}

/// Every header as the runtime gives it: lower-case names, repeated headers joined
/// with ", " (the Fetch API's `Headers` keeps one entry per name).
fn request_headers(headers: &web_sys::Headers) -> Result<Vec<(String, String)>, JsError> {
    let entries = js_sys::try_iter(headers.as_ref())?
        .ok_or_else(|| JsError("the request headers are not iterable".into()))?;
    let mut out = Vec::new();
    for entry in entries {
        let pair = js_sys::Array::from(&entry?);
        match (pair.get(0).as_string(), pair.get(1).as_string()) {
            (Some(name), Some(value)) => out.push((name, value)),
            _ => return Err(JsError("a header entry is not a name and a value".into())),
        }
    }
    Ok(out)
}

/// The reply as a Response: status, headers and body exactly.
fn respond(reply: &Reply) -> Result<web_sys::Response, JsValue> {
    let headers = web_sys::Headers::new()?;
    for (name, value) in &reply.headers {
        headers.append(name, value)?;
    }
    let init = web_sys::ResponseInit::new();
    init.set_status(reply.status);
    init.set_headers(headers.as_ref());
    if reply.body.is_empty() {
        web_sys::Response::new_with_opt_str_and_init(None, &init)
    } else {
        let body = js_sys::Uint8Array::from(reply.body.as_bytes());
        web_sys::Response::new_with_opt_buffer_source_and_init(Some(&body), &init)
    }
}

/// Unix seconds. `Date.now()` is milliseconds since the epoch; in Workers it
/// advances with I/O.
pub fn now_secs() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}
