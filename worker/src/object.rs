//! The `EventDedup` Durable Object: one per event id, holding the core's record.
//!
//! Durable Objects are single-threaded and globally unique, so one object per event
//! id (`id_from_name(event id)`) sees every attempt of that event, from whichever
//! Cloudflare location it arrives: suppression holds across the whole network. The
//! object keeps the core's record (`persona_edge_core::dedup`) in its storage and an
//! alarm deletes it when it expires, so nothing is kept longer than the TTL. It reads
//! its own clock, so every attempt of one event is judged by one clock. Its requests
//! are those of [`crate::protocol`].

use persona_edge_core::dedup::{self, Admission, DedupSettings, Record};
// `#[durable_object]`'s generated code names `wasm_bindgen` at the crate root of its
// caller; the one `worker` re-exports is the one it must be.
use worker::wasm_bindgen;
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;
use worker::{DurableObject, Env, Request, Response, State, durable_object, js_sys};

use crate::error::ObjectError;
use crate::host::now_secs;
use crate::protocol::{Message, Op, admission_to_text};

/// Storage keys: the core's encoded record, and when it expires (Unix seconds).
const RECORD_KEY: &str = "record";
const EXPIRES_KEY: &str = "expires_at";

/// One event id's record. Only `fetch` and `alarm` are exported (the WebSocket and
/// socket handlers would only add code).
#[durable_object(alarm)]
pub struct EventDedup {
    state: State,
}

impl DurableObject for EventDedup {
    fn new(state: State, _env: Env) -> Self {
        EventDedup { state }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let path = req.path();
        let body = req.text().await?;
        let Some(message) = Message::from_text(&body) else {
            return Response::error(format!("not a dedup message: {body:?}"), 400);
        };
        let Some(op) = Op::from_path(&path) else {
            return Response::error(ObjectError::UnknownOp(path).to_string(), 500);
        };
        let storage = self.state.storage();
        // Read, decide, write, with no other event delivered to the object in
        // between (also guaranteed by input gates; said explicitly here). Errors are
        // values: an Err would reset the object.
        let answer = self
            .state
            .block_concurrency_while(async move { Ok(apply(&storage, op, &message).await) })
            .await?;
        match answer {
            Ok(text) => Response::ok(text),
            Err(why) => Response::error(why.to_string(), 500),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let storage = self.state.storage();
        let expires_at = get(&storage, EXPIRES_KEY)
            .await
            .map_err(|e| worker::Error::RustError(e.to_string()))?
            .as_f64();
        match expires_at {
            // A record written after this alarm was set lives on: wake up again then.
            Some(at) if at > now_secs() as f64 => storage.set_alarm(alarm_time(at as u64)).await?,
            _ => {
                storage
                    .delete_multiple(vec![RECORD_KEY, EXPIRES_KEY])
                    .await?;
            }
        }
        Response::empty()
    }
}

/// Carries out one operation on the stored record; the answer's text.
async fn apply(
    storage: &worker::Storage,
    op: Op,
    message: &Message,
) -> Result<String, ObjectError> {
    let now = now_secs();
    let settings = &message.settings;
    let value = get(storage, RECORD_KEY).await?;
    let bytes = (!value.is_undefined() && !value.is_null())
        .then(|| js_sys::Uint8Array::new(&value).to_vec());
    let stored = bytes
        .as_deref()
        .and_then(|b| dedup::decode_for(b, &message.event_id));
    match op {
        Op::Admit => {
            let admission = dedup::admit(settings, stored.as_ref(), now);
            if let Admission::Forward { claim } = admission {
                save(storage, &message.event_id, &claim.record(), settings).await?;
            }
            Ok(admission_to_text(&admission))
        }
        Op::Peek => {
            let admission = dedup::admit(settings, stored.as_ref(), now);
            Ok(format!(
                "{}\nstored={}",
                admission_to_text(&admission),
                bytes.is_some()
            ))
        }
        Op::Settle => {
            let (claim, succeeded) = message.claim().ok_or(ObjectError::SettleWithoutClaim)?;
            // Only the attempt that holds the claim settles it: a late answer of an
            // attempt whose window passed leaves a newer claim alone.
            if stored != Some(claim.record()) {
                return Ok("settled=false".into());
            }
            match dedup::settle(claim, succeeded, now) {
                Some(record) => save(storage, &message.event_id, &record, settings).await?,
                None => clear(storage).await?,
            }
            Ok("settled=true".into())
        }
        Op::Delivered => {
            let record = Record::Delivered { at: now };
            save(storage, &message.event_id, &record, settings).await?;
            Ok("recorded=true".into())
        }
    }
}

/// A stored value as it is (`undefined` when there is none).
async fn get(storage: &worker::Storage, key: &str) -> Result<JsValue, ObjectError> {
    let promise = storage
        .as_raw()
        .get(key)
        .map_err(ObjectError::storage("get"))?;
    JsFuture::from(promise)
        .await
        .map_err(ObjectError::storage("get"))
}

async fn save(
    storage: &worker::Storage,
    event_id: &str,
    record: &Record,
    settings: &DedupSettings,
) -> Result<(), ObjectError> {
    let bytes = dedup::encode(event_id, record)
        .ok_or_else(|| ObjectError::Unstorable(event_id.to_string()))?;
    let expires_at = record.expires_at(settings);
    storage
        .put_raw(RECORD_KEY, js_sys::Uint8Array::from(bytes.as_slice()))
        .await
        .map_err(failed("put"))?;
    storage
        .put_raw(EXPIRES_KEY, JsValue::from_f64(expires_at as f64))
        .await
        .map_err(failed("put"))?;
    storage
        .set_alarm(alarm_time(expires_at))
        .await
        .map_err(failed("setAlarm"))
}

async fn clear(storage: &worker::Storage) -> Result<(), ObjectError> {
    storage
        .delete_alarm()
        .await
        .map_err(failed("deleteAlarm"))?;
    storage
        .delete_multiple(vec![RECORD_KEY, EXPIRES_KEY])
        .await
        .map(|_| ())
        .map_err(failed("delete"))
}

/// A storage call of the `worker` crate that failed.
fn failed(call: &'static str) -> impl Fn(worker::Error) -> ObjectError {
    move |e| ObjectError::Storage {
        call,
        why: e.to_string(),
    }
}

fn alarm_time(at_secs: u64) -> worker::ScheduledTime {
    worker::ScheduledTime::new(js_sys::Date::new(&JsValue::from_f64(
        at_secs as f64 * 1000.0,
    )))
}
