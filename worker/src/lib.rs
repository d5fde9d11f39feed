//! persona-edge as a Cloudflare Worker: a thin HTTP adapter over `persona-edge-core`.
//!
//! One delivery, as the exchange goes:
//!
//! 1. The configuration is the `PERSONA_EDGE_CONFIG` var (the core's JSON); secrets it
//!    names (`signature.secrets_env`, `resign.secret_env`) are Worker secrets. It is
//!    parsed once per isolate. Missing or invalid, every request gets 500
//!    `config_invalid` with a generic detail (the problems go to the log only: they
//!    may quote addresses or a secret pasted into the wrong field) and nothing
//!    reaches the origin.
//! 2. The head (method, content type, `CF-Connecting-IP`) is checked before any body
//!    byte is read.
//! 3. The body is read chunk by chunk and refused with 413 as soon as it passes
//!    `limits.max_body_bytes` (or at once, when `Content-Length` already says so).
//! 4. The core decides. A forward goes to `ORIGIN_URL` + path + query (or, without
//!    `ORIGIN_URL`, to the request's own URL: route mode) with the original headers
//!    minus those the core removes, plus those it sets; the origin's response is
//!    returned as it is. An acknowledgement or a rejection is answered by the Worker
//!    with exactly the core's reply, and logged as one JSON line.
//! 5. With `dedup` on, a forward first asks the event's Durable Object (`dedup.rs`),
//!    which may answer it at the edge (duplicate, in flight), and is told the
//!    origin's answer after.

use std::cell::RefCell;
use std::rc::Rc;

use persona_edge_core::{
    ClientAddress, DECISION_HEADER, ErrorCode, LoadOptions, Metadata, Mode, Outcome, Policy,
    Rejection, Reply, RequestHead, Verdict, borrow_headers,
};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Context, Env, console_log, event, js_sys, web_sys};

mod dedup;

/// The var holding the configuration JSON (a string, or a JSON object in `[vars]`).
pub const CONFIG_VAR: &str = "PERSONA_EDGE_CONFIG";
/// The var naming the origin; without it the Worker forwards to the request's own URL.
pub const ORIGIN_VAR: &str = "ORIGIN_URL";
/// Where the client address comes from unless the configuration says otherwise.
pub const CLIENT_ADDRESS_HEADER: &str = "cf-connecting-ip";
/// The detail of every `config_invalid` reply. Anyone can send a request, so the
/// reply says nothing about the configuration; the log line has every problem.
pub const CONFIG_INVALID_DETAIL: &str =
    "the filter has no valid configuration; see the Worker's log";

/// Hop-by-hop and framing headers: the runtime sets its own on the forwarded request.
const NOT_FORWARDED: [&str; 10] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

#[event(fetch)]
async fn fetch(
    req: web_sys::Request,
    env: Env,
    _ctx: Context,
) -> worker::Result<web_sys::Response> {
    match deliver(&req, &env).await {
        Ok(from_origin) => Ok(from_origin),
        Err(reply) => Ok(respond(&reply)?),
    }
}

/// The whole exchange: the origin's response, or the reply the Worker writes itself.
async fn deliver(req: &web_sys::Request, env: &Env) -> Result<web_sys::Response, Reply> {
    let policy = policy(env);
    let policy = match policy.as_ref() {
        Ok(p) => p,
        Err(problems) => return Err(config_invalid(None, problems)),
    };
    let mode = policy.mode();
    let target =
        origin_target(env, &req.url()).map_err(|why| config_invalid(Some(mode), &[why]))?;

    let method = req.method();
    let headers = request_headers(&req.headers());
    let pairs = borrow_headers(&headers);
    let head = RequestHead {
        method: &method,
        headers: &pairs,
        peer: None,
    };
    let pending = policy
        .check_head(&head)
        .map_err(|r| reject(Some(mode), &r))?;

    let body = match read_body(req, policy, mode).await {
        Ok(body) => body,
        Err(Unread::ShadowTooLarge(whole)) => {
            // Shadow mode never blocks: a body past the limit goes on unchanged and
            // unbuffered, with the decision enforce mode would have taken (the head's
            // rejection first, as in the core).
            let code = pending
                .shadow_rejection()
                .map_or(ErrorCode::BodyTooLarge, |r| r.code);
            let verdict = Verdict::Reject(code);
            log_shadow(verdict, None);
            let decision = verdict.to_string();
            let outgoing = outgoing_headers(
                &headers,
                pending.remove_headers(),
                [(DECISION_HEADER, decision.as_str())],
            )
            .map_err(|e| reject(Some(mode), &origin_failed(&js_text(&e))))?;
            return send(&method, &target, &outgoing, &whole)
                .await
                .map_err(|e| reject(Some(mode), &origin_failed(&e)));
        }
        Err(Unread::Reject(rejection)) => return Err(reject(Some(mode), &rejection)),
    };

    let outcome = policy.process_body(&pending, &body, now_secs());
    let reply = outcome.reply();
    match (outcome, reply) {
        (Outcome::Forward(forward), _) => {
            if mode == Mode::Shadow {
                log_shadow(forward.verdict, forward.metadata.as_ref());
            }
            // Each event reaches the origin once (`dedup`): a duplicate or an attempt
            // in flight is answered here; the origin's answer is recorded after.
            let event_id = forward.metadata.as_ref().map(|m| m.event_id.as_str());
            let gate = dedup::Gate::open(env, policy, forward.verdict, event_id).await?;
            let decision = gate.shadow_decision().map(|d| (DECISION_HEADER, d));
            let sent = match outgoing_headers(
                &headers,
                pending.remove_headers(),
                forward.set_headers().chain(decision),
            ) {
                Ok(outgoing) => {
                    let body = js_sys::Uint8Array::from(forward.body.as_ref());
                    send(&method, &target, &outgoing, &body).await
                }
                Err(e) => Err(js_text(&e)),
            };
            gate.close(sent.as_ref().ok().map(web_sys::Response::status))
                .await;
            sent.map_err(|e| reject(Some(mode), &origin_failed(&e)))
        }
        (Outcome::Reject(rejection), _) => Err(reject(Some(mode), &rejection)),
        (Outcome::Acknowledge(metadata), reply) => {
            log_acknowledge(&metadata);
            Err(reply.unwrap_or(Reply {
                status: 204,
                headers: Vec::new(),
                body: String::new(),
            }))
        }
    }
}

// ---------------------------------------------------------------------------
// Configuration, once per isolate

/// The parsed configuration, or every reason there is none.
type Loaded = Rc<Result<Policy, Vec<String>>>;

struct Cached {
    config: String,
    /// Every variable the load looked up, with the value it saw: a changed secret
    /// reloads the policy.
    seen: Vec<(String, Option<String>)>,
    policy: Loaded,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

fn policy(env: &Env) -> Loaded {
    let Some(config) = var(env, CONFIG_VAR) else {
        return Rc::new(Err(vec![format!(
            "the {CONFIG_VAR} var is not set: give the configuration JSON in wrangler.toml [vars] or with --var"
        )]));
    };
    let hit = CACHE.with_borrow(|cached| {
        cached
            .as_ref()
            .filter(|c| {
                c.config == config && c.seen.iter().all(|(name, value)| var(env, name) == *value)
            })
            .map(|c| c.policy.clone())
    });
    if let Some(policy) = hit {
        return policy;
    }
    let seen = RefCell::new(Vec::new());
    let lookup = |name: &str| {
        let value = var(env, name).filter(|v| !v.is_empty());
        seen.borrow_mut().push((name.to_string(), value.clone()));
        value
    };
    let options = LoadOptions {
        env: &lookup,
        default_client_address: ClientAddress::Header {
            name: CLIENT_ADDRESS_HEADER.into(),
        },
        // A Worker sees no TCP peer: the client is what Cloudflare's edge says.
        peer_available: false,
        host_name: "the Cloudflare Worker",
    };
    let loaded: Loaded = Rc::new(Policy::load(config.as_bytes(), &options).map_err(|errors| {
        errors
            .0
            .iter()
            .map(|e| format!("{CONFIG_VAR}: {e}"))
            .collect()
    }));
    let seen = seen.into_inner();
    CACHE.with_borrow_mut(|cached| {
        *cached = Some(Cached {
            config,
            seen,
            policy: loaded.clone(),
        });
    });
    loaded
}

/// A var or secret as text: strings as they are, JSON values (`[vars]` tables) as JSON.
fn var(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(name)).ok()?;
    if value.is_undefined() || value.is_null() {
        return None;
    }
    if let Some(text) = value.as_string() {
        return Some(text);
    }
    js_sys::JSON::stringify(&value)
        .ok()
        .and_then(|s| s.as_string())
}

/// Where a forwarded delivery goes: `ORIGIN_URL` joined with the path and query, or
/// the request's own URL.
///
/// Plain string work on URLs the runtime has already parsed and serialized: linking
/// the `url` crate's parser (and its IDNA tables) would add about 100 KB to the Worker.
fn origin_target(env: &Env, request_url: &str) -> Result<String, String> {
    let (authority, path_and_query) = split_url(request_url)
        .ok_or_else(|| format!("the request URL {request_url:?} has no scheme and host"))?;
    let Some(origin) = var(env, ORIGIN_VAR)
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty())
    else {
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        if host.ends_with(".workers.dev") {
            return Err(format!(
                "{ORIGIN_VAR} is not set and the Worker runs on workers.dev, where forwarding to the request's own URL would call this Worker again; set {ORIGIN_VAR}"
            ));
        }
        return Ok(request_url.to_string());
    };
    let scheme_ok = ["http://", "https://"].iter().any(|s| {
        origin
            .get(..s.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(s))
    });
    let valid = scheme_ok
        && split_url(&origin).is_some_and(|(host, _)| !host.is_empty())
        && !origin.contains(['?', '#'])
        && !origin.contains(|c: char| c.is_whitespace() || c.is_control());
    if !valid {
        return Err(format!(
            "{ORIGIN_VAR} must be an http(s) URL with a host and without query or fragment, such as https://origin.example.com/base"
        ));
    }
    Ok(format!("{}{path_and_query}", origin.trim_end_matches('/')))
}

/// `scheme://authority/path?query` → (authority, `/path?query`), without a fragment.
fn split_url(url: &str) -> Option<(&str, String)> {
    let (_, rest) = url.split_once("://")?;
    let rest = rest.split('#').next().unwrap_or(rest);
    let at = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(at);
    let path_and_query = if tail.starts_with('/') {
        tail.to_string()
    } else {
        format!("/{tail}")
    };
    Some((authority, path_and_query))
}

// ---------------------------------------------------------------------------
// Request in

/// Every header as the runtime gives it: lower-case names, repeated headers joined
/// with ", " (the Fetch API's `Headers` keeps one entry per name).
fn request_headers(headers: &web_sys::Headers) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(Some(entries)) = js_sys::try_iter(headers.as_ref()) {
        for entry in entries.flatten() {
            let pair = js_sys::Array::from(&entry);
            if let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                out.push((name, value));
            }
        }
    }
    out
}

/// A body that was not read whole.
enum Unread {
    /// Refused: too large in enforce mode, or unreadable.
    Reject(Rejection),
    /// Shadow mode, past `limits.max_body_bytes`: the whole body, still to be sent on
    /// unbuffered (the bytes read so far, then the rest as it arrives). The core
    /// forwards such a body in shadow mode too, but would need all of it in memory.
    ShadowTooLarge(web_sys::ReadableStream),
}

impl From<Rejection> for Unread {
    fn from(rejection: Rejection) -> Self {
        Unread::Reject(rejection)
    }
}

/// The whole body, stopped as soon as it passes `limits.max_body_bytes`: by its
/// declared length before a byte is read, else while the chunks arrive. Never more
/// than the limit plus one chunk is held, in either mode. Past the limit, enforce mode
/// gets the core's 413 (`check_body_size`), shadow mode the rest of the stream.
async fn read_body(req: &web_sys::Request, policy: &Policy, mode: Mode) -> Result<Vec<u8>, Unread> {
    let limit = policy.max_body_bytes();
    let past_limit = |received: usize| -> Option<Unread> {
        if let Err(rejection) = policy.check_body_size(received) {
            return Some(Unread::Reject(rejection));
        }
        // Shadow mode: the core lets any size through; the Worker still will not hold it.
        (received > limit).then(|| {
            Unread::Reject(Rejection::new(
                ErrorCode::BodyTooLarge,
                format!("the body is larger than {limit} bytes"),
            ))
        })
    };
    let declared = req
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(length) = declared
        && let Some(refused) = past_limit(length)
    {
        return match (mode, req.body()) {
            (Mode::Shadow, Some(whole)) => Err(Unread::ShadowTooLarge(whole)),
            (Mode::Shadow, None) => Ok(Vec::new()),
            (Mode::Enforce, _) => Err(refused),
        };
    }
    let Some(stream) = req.body() else {
        return Ok(Vec::new());
    };
    let unreadable = |e: JsValue| {
        Rejection::new(
            ErrorCode::InvalidJson,
            format!("the body could not be read to its end ({})", js_text(&e)),
        )
    };
    let reader: web_sys::ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    loop {
        let chunk = JsFuture::from(reader.read()).await.map_err(unreadable)?;
        let done = js_sys::Reflect::get(&chunk, &JsValue::from_str("done"))
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            return Ok(body);
        }
        let value =
            js_sys::Reflect::get(&chunk, &JsValue::from_str("value")).map_err(unreadable)?;
        let bytes: js_sys::Uint8Array = value.dyn_into().map_err(|_| {
            Rejection::new(
                ErrorCode::InvalidJson,
                "the body stream gave a chunk that is not bytes",
            )
        })?;
        let start = body.len();
        let end = start.saturating_add(bytes.length() as usize);
        if let Some(refused) = past_limit(end) {
            if mode == Mode::Shadow {
                reader.release_lock();
                return Err(Unread::ShadowTooLarge(rejoin(body, bytes, stream)));
            }
            // Tell the runtime the rest is not wanted; the reply goes out at once.
            let _ = reader.cancel();
            return Err(refused);
        }
        body.resize(end, 0);
        if let Some(tail) = body.get_mut(start..) {
            bytes.copy_to(tail);
        }
    }
}

/// One stream again: the bytes read so far, the chunk in hand, then the rest.
fn rejoin(
    read: Vec<u8>,
    chunk: js_sys::Uint8Array,
    rest: web_sys::ReadableStream,
) -> web_sys::ReadableStream {
    use futures_util::StreamExt;
    let head = futures_util::stream::iter([
        Ok(JsValue::from(js_sys::Uint8Array::from(read.as_slice()))),
        Ok(JsValue::from(chunk)),
    ]);
    let tail = wasm_streams::ReadableStream::from_raw(rest).into_stream();
    wasm_streams::ReadableStream::from_stream(head.chain(tail)).into_raw()
}

fn now_secs() -> u64 {
    // Date.now() is milliseconds since the epoch; in Workers it advances with I/O.
    (js_sys::Date::now() / 1000.0) as u64
}

// ---------------------------------------------------------------------------
// Forward

/// The original headers minus those the core removes (and framing headers the
/// runtime sets), plus those it sets.
fn outgoing_headers<'h>(
    original: &[(String, String)],
    remove: &[String],
    set: impl IntoIterator<Item = (&'static str, &'h str)>,
) -> Result<web_sys::Headers, JsValue> {
    let headers = web_sys::Headers::new()?;
    for (name, value) in original {
        let drop = NOT_FORWARDED.iter().any(|n| name.eq_ignore_ascii_case(n))
            || remove.iter().any(|n| name.eq_ignore_ascii_case(n));
        if !drop {
            headers.append(name, value)?;
        }
    }
    for (name, value) in set {
        headers.set(name, value)?;
    }
    Ok(headers)
}

/// Sends the forwarded request and hands back the origin's response untouched;
/// redirects are returned, not followed.
async fn send(
    method: &str,
    target: &str,
    headers: &web_sys::Headers,
    body: &JsValue,
) -> Result<web_sys::Response, String> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_headers(headers.as_ref());
    init.set_redirect(web_sys::RequestRedirect::Manual);
    // GET and HEAD (forwarded in shadow mode only) cannot carry a body.
    if !(method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")) {
        init.set_body(body);
    }
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let response = JsFuture::from(global.fetch_with_str_and_init(target, &init))
        .await
        .map_err(|e| js_text(&e))?;
    response
        .dyn_into::<web_sys::Response>()
        .map_err(|_| "fetch gave something that is not a Response".to_string())
}

fn origin_failed(why: &str) -> Rejection {
    // The reason goes to the log line only: it may name internal hosts.
    console_log!(
        "{}",
        log_line("origin_error", &[("error", serde_json::Value::from(why))])
    );
    Rejection::new(
        ErrorCode::OriginUnreachable,
        "the origin could not be reached; Persona will retry",
    )
}

// ---------------------------------------------------------------------------
// Replies and log lines

/// Logs a rejection and gives its reply.
fn reject(mode: Option<Mode>, rejection: &Rejection) -> Reply {
    log_rejection(mode, rejection, None);
    rejection.reply()
}

/// The reply without a usable configuration: generic, with every problem logged.
fn config_invalid(mode: Option<Mode>, problems: &[String]) -> Reply {
    let rejection = Rejection::new(ErrorCode::ConfigInvalid, CONFIG_INVALID_DETAIL);
    log_rejection(mode, &rejection, Some(problems));
    rejection.reply()
}

/// One `reject` log line; `problems`: the configuration's, for `config_invalid`.
fn log_rejection(mode: Option<Mode>, rejection: &Rejection, problems: Option<&[String]>) {
    let mode = match mode {
        Some(Mode::Shadow) => "shadow",
        Some(Mode::Enforce) => "enforce",
        None => "none",
    };
    let mut fields: Vec<(&str, serde_json::Value)> = vec![
        ("status", rejection.status().into()),
        ("code", rejection.code.as_str().into()),
        ("detail", rejection.detail.as_str().into()),
        ("mode", mode.into()),
    ];
    if let Some(problems) = problems {
        fields.push(("problems", problems.into()));
    }
    console_log!("{}", log_line("reject", &fields));
}

fn log_acknowledge(metadata: &Metadata) {
    console_log!(
        "{}",
        log_line(
            "acknowledge",
            &[
                ("status", 204.into()),
                ("event_id", metadata.event_id.as_str().into()),
                ("event_name", metadata.event_name.as_str().into()),
            ],
        )
    );
}

fn log_shadow(verdict: Verdict, metadata: Option<&Metadata>) {
    let mut fields: Vec<(&str, serde_json::Value)> = vec![("decision", verdict.to_string().into())];
    if let Verdict::Reject(code) = verdict {
        fields.push(("status", code.status().into()));
        fields.push(("code", code.as_str().into()));
    }
    if let Some(m) = metadata {
        fields.push(("event_id", m.event_id.as_str().into()));
        fields.push(("event_name", m.event_name.as_str().into()));
    }
    console_log!("{}", log_line("shadow", &fields));
}

/// One JSON object per line: `{"persona_edge":EVENT,...}`. Never attribute values.
fn log_line(event: &str, fields: &[(&str, serde_json::Value)]) -> String {
    let mut object = serde_json::Map::new();
    object.insert("persona_edge".into(), event.into());
    for (name, value) in fields {
        object.insert((*name).into(), value.clone());
    }
    serde_json::Value::Object(object).to_string()
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

fn js_text(value: &JsValue) -> String {
    if let Some(text) = value.as_string() {
        return text;
    }
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    format!("{value:?}")
}

#[cfg(test)]
mod tests {
    use super::split_url;

    #[test]
    fn urls_split_into_authority_and_path() {
        let cases = [
            (
                "https://hooks.example.com/persona?x=1",
                "hooks.example.com",
                "/persona?x=1",
            ),
            ("http://127.0.0.1:8081", "127.0.0.1:8081", "/"),
            ("http://127.0.0.1:8081/", "127.0.0.1:8081", "/"),
            ("http://h?q=1#frag", "h", "/?q=1"),
            (
                "https://u@h.workers.dev:443/a/b#f",
                "u@h.workers.dev:443",
                "/a/b",
            ),
            ("https:///nohost", "", "/nohost"),
        ];
        for (url, authority, path) in cases {
            assert_eq!(split_url(url), Some((authority, path.to_string())), "{url}");
        }
        assert_eq!(split_url("no-scheme"), None);
    }
}
