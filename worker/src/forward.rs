//! Sending a delivery on: a new request with the original method, the original
//! headers minus those the core removes (and the framing the runtime sets itself),
//! plus those it sets, and the body. The origin's response comes back untouched;
//! redirects are returned, not followed.

use persona_edge_core::Forwarding;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{js_sys, web_sys};

use crate::error::{JsError, SendError};

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

/// The request the Worker received, as far as forwarding needs it.
pub struct Original<'r> {
    pub method: &'r str,
    /// Every header as the runtime gives it (lower-case names, repeated ones joined).
    pub headers: &'r [(String, String)],
    /// Where forwarded deliveries go (`crate::target`).
    pub target: &'r str,
}

/// Sends `forwarding` to the origin with `body` (a byte array or a stream; none for
/// a request without one).
pub async fn send(
    original: &Original<'_>,
    forwarding: &Forwarding<'_>,
    body: Option<&JsValue>,
) -> Result<web_sys::Response, SendError> {
    let headers = outgoing_headers(original.headers, forwarding).map_err(SendError::Request)?;
    let init = web_sys::RequestInit::new();
    init.set_method(original.method);
    init.set_headers(headers.as_ref());
    init.set_redirect(web_sys::RequestRedirect::Manual);
    // GET and HEAD (forwarded in shadow mode only) cannot carry a body.
    let bodiless = ["GET", "HEAD"]
        .iter()
        .any(|m| original.method.eq_ignore_ascii_case(m));
    if let Some(body) = body.filter(|_| !bodiless) {
        init.set_body(body);
    }
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let unreachable = |e: JsValue| SendError::Unreachable(JsError::from_js(&e));
    JsFuture::from(global.fetch_with_str_and_init(original.target, &init))
        .await
        .map_err(unreachable)?
        .dyn_into::<web_sys::Response>()
        .map_err(|_| {
            SendError::Unreachable(JsError(
                "fetch gave something that is not a Response".into(),
            ))
        })
}

/// The original headers minus those the core removes and the framing ones, plus
/// those it sets.
fn outgoing_headers(
    original: &[(String, String)],
    forwarding: &Forwarding<'_>,
) -> Result<web_sys::Headers, JsError> {
    let remove = forwarding.remove_headers();
    let headers = web_sys::Headers::new()?;
    for (name, value) in original {
        let drop = NOT_FORWARDED.iter().any(|n| name.eq_ignore_ascii_case(n))
            || remove.iter().any(|n| name.eq_ignore_ascii_case(n));
        if !drop {
            headers.append(name, value)?;
        }
    }
    for (name, value) in forwarding.set_headers() {
        headers.set(name, value)?;
    }
    Ok(headers)
}
