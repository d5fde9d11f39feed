//! Duplicate suppression's client: the Worker's calls to an event's Durable Object
//! (`EventDedup`, [`crate::object`]), found by name with `id_from_name(event id)`.
//!
//! A call that fails, or gets no answer within [`OBJECT_TIMEOUT`], is a
//! [`DedupError`]: the driver forwards the delivery anyway and logs it (a duplicate
//! may get through, none is held up).

use std::time::Duration;

use futures_util::future::{Either, select};
use persona_edge_core::dedup::{Admission, DedupSettings};
use persona_edge_core::{Admit, Settlement};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Delay, Env, web_sys, worker_sys};

use crate::error::{DedupError, JsError};
use crate::protocol::{Message, OBJECT_ORIGIN, Op, admission_from_text};

/// The Durable Object namespace binding (wrangler.toml `[[durable_objects.bindings]]`).
pub const BINDING: &str = "PERSONA_EDGE_DEDUP";

/// How long the Worker waits for the object before it forwards without it. A call
/// takes milliseconds, more when the object lives on another continent; Persona
/// gives the whole delivery 5 seconds, and the origin needs its share of them.
pub const OBJECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Looks the event of `token` up: claims it in enforce mode, looks only in shadow.
pub async fn admit(env: &Env, token: &Admit<'_>) -> Result<Admission, DedupError> {
    let (op, message) = Message::admit(token);
    let answer = call(env, op, &message).await?;
    admission_from_text(&answer).ok_or_else(|| DedupError::Failed {
        op,
        why: format!("the Durable Object answered {answer:?} to {}", op.as_str()),
    })
}

/// Records what the exchange settled once the origin answered.
pub async fn settle(
    env: &Env,
    settlement: &Settlement,
    settings: &DedupSettings,
) -> Result<(), DedupError> {
    let (op, message) = Message::settle(settlement, settings);
    call(env, op, &message).await.map(|_| ())
}

/// An event's object, as the runtime gives it (its `fetch` is all the Worker uses).
type Object = worker_sys::DurableObject;

/// One call to the event's object, given up after [`OBJECT_TIMEOUT`].
async fn call(env: &Env, op: Op, message: &Message) -> Result<String, DedupError> {
    let namespace = env
        .durable_object(BINDING)
        .map_err(|_| DedupError::Unbound)?;
    let object = namespace
        .id_from_name(&message.event_id)
        .and_then(|id| id.get_stub())
        .map_err(|e| DedupError::Failed {
            op,
            why: e.to_string(),
        })?
        .into_rpc::<Object>();
    let exchange = Box::pin(post(&object, op, message));
    match select(exchange, Delay::from(OBJECT_TIMEOUT)).await {
        Either::Left((answer, _)) => answer.map_err(|why| DedupError::Failed { op, why }),
        Either::Right(_) => Err(DedupError::TimedOut {
            op,
            after: OBJECT_TIMEOUT,
        }),
    }
}

/// The request and its answer's text; an answer other than 200 is an error.
async fn post(object: &Object, op: Op, message: &Message) -> Result<String, String> {
    let js = |e: JsValue| JsError::from_js(&e).0;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&message.to_text()));
    let url = format!("{OBJECT_ORIGIN}/{}", op.as_str());
    let request = web_sys::Request::new_with_str_and_init(&url, &init).map_err(js)?;
    let response = object.fetch_with_request(&request).map_err(js)?;
    let response: web_sys::Response = JsFuture::from(response)
        .await
        .map_err(js)?
        .dyn_into()
        .map_err(|_| "the Durable Object's answer is not a Response".to_string())?;
    let text = JsFuture::from(response.text().map_err(js)?)
        .await
        .map_err(js)?
        .as_string()
        .unwrap_or_default();
    if response.status() != 200 {
        return Err(format!(
            "the Durable Object answered {} to {}: {text}",
            response.status(),
            op.as_str()
        ));
    }
    Ok(text)
}
