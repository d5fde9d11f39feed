//! Duplicate suppression in the Worker: one Durable Object per event id.
//!
//! Durable Objects are single-threaded and globally unique, so one object per event
//! id (`id_from_name(event id)`) sees every attempt of that event, from whichever
//! Cloudflare location it arrives: suppression holds across the whole network. The
//! object keeps the core's record (`persona_edge_core::dedup`) in its storage and an
//! alarm deletes it when it expires, so nothing is kept longer than the TTL.
//!
//! The Worker talks to the object over its `fetch`: a POST to `/<operation>` whose body
//! and answer are `name=value` lines (plain text: the Worker links no JSON parser for
//! it, see docs/worker.md, Size):
//!
//! | operation | request | answer |
//! |---|---|---|
//! | `admit` | `event_id`, `ttl_seconds`, `in_flight_seconds` | the admission (`admission` and `since`, `delivered_at` or `retry_after`); a forward is claimed (stored in flight) |
//! | `peek` | same | the admission, nothing stored (shadow mode), and `stored`: whether the object holds a record at all |
//! | `settle` | same, `since` (the claim), `succeeded` | `settled`: whether the claim was still the object's |
//! | `delivered` | same | records a delivery without a claim (shadow mode) |
//!
//! The object reads its own clock, so every attempt of one event is judged by one
//! clock. A failure to reach it, or no answer within [`OBJECT_TIMEOUT`], never blocks
//! a delivery: the Worker forwards and logs.

use std::time::Duration;

use futures_util::future::{Either, select};
use persona_edge_core::dedup::{self, Admission, Claim, DedupSettings, Record};
use persona_edge_core::{ErrorCode, Mode, Policy, Rejection, Reply, Verdict};
use serde_json::Value;
// `#[durable_object]`'s generated code names `wasm_bindgen` at the crate root of its
// caller; the one `worker` re-exports is the one it must be.
use worker::wasm_bindgen;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    Delay, DurableObject, Env, Request, Response, State, console_log, durable_object, js_sys,
    web_sys, worker_sys,
};

use crate::js_text;

/// The Durable Object namespace binding (wrangler.toml `[[durable_objects.bindings]]`).
pub const BINDING: &str = "PERSONA_EDGE_DEDUP";

/// How long the Worker waits for the object before it forwards without it. A call
/// takes milliseconds, more when the object lives on another continent; Persona
/// gives the whole delivery 5 seconds.
pub const OBJECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Storage keys: the core's encoded record, and when it expires (Unix seconds).
const RECORD_KEY: &str = "record";
const EXPIRES_KEY: &str = "expires_at";

// ---------------------------------------------------------------------------
// The Worker's side

/// Duplicate suppression for one forwarded delivery: opened before the forward,
/// closed with the origin's answer.
pub struct Gate {
    open: Option<Open>,
}

struct Open {
    object: Object,
    message: Message,
    /// Enforce: the claim to settle. Shadow: none; a success is recorded as delivered.
    claim: Option<Claim>,
    mode: Mode,
    /// In shadow mode, the decision when it is not a forward (for the decision header).
    shadow_decision: Option<String>,
}

impl Gate {
    const OFF: Gate = Gate { open: None };

    /// Before forwarding a delivery the core let through (`verdict` is the core's:
    /// only a forward is looked up). `Err` is the reply that answers it at the edge
    /// in enforce mode (a duplicate, an attempt in flight, or a missing binding).
    pub async fn open(
        env: &Env,
        policy: &Policy,
        verdict: Verdict,
        event_id: Option<&str>,
    ) -> Result<Gate, Reply> {
        let (Some(settings), Verdict::Forward, Some(event_id)) =
            (policy.dedup(), verdict, event_id)
        else {
            return Ok(Gate::OFF);
        };
        let mode = policy.mode();
        let namespace = match env.durable_object(BINDING) {
            Ok(namespace) => namespace,
            Err(_) => {
                // A deployment without the binding: like a missing secret, a
                // configuration error (the shipped wrangler.toml declares it).
                let rejection = Rejection::new(
                    ErrorCode::ConfigInvalid,
                    format!(
                        "dedup is enabled but the Durable Object binding {BINDING} is missing; declare it in wrangler.toml (docs/worker.md)"
                    ),
                );
                log_error("binding", &rejection.detail, event_id);
                return Err(rejection.reply());
            }
        };
        let message = Message {
            event_id: event_id.to_string(),
            settings: *settings,
            since: None,
            succeeded: None,
        };
        let op = match mode {
            Mode::Enforce => "admit",
            Mode::Shadow => "peek",
        };
        let (object, admission) = match ask(&namespace, &message, op).await {
            Ok(answer) => answer,
            Err(why) => {
                // Fail open: a duplicate may get through, no delivery is held up.
                log_error(op, &why, event_id);
                return Ok(Gate::OFF);
            }
        };
        if let Some(reply) = admission.reply(event_id) {
            log_answer(&admission, event_id, mode);
            if mode == Mode::Enforce {
                return Err(reply);
            }
        }
        let claim = match admission {
            Admission::Forward { claim } if mode == Mode::Enforce => Some(claim),
            _ => None,
        };
        let shadow_decision = match admission {
            Admission::Forward { .. } => None,
            _ => Some(admission.to_string()),
        };
        Ok(Gate {
            open: Some(Open {
                object,
                message,
                claim,
                mode,
                shadow_decision,
            }),
        })
    }

    /// In shadow mode, the decision header's value when duplicate suppression would
    /// have answered at the edge.
    pub fn shadow_decision(&self) -> Option<&str> {
        self.open.as_ref()?.shadow_decision.as_deref()
    }

    /// After the forward: `status` is the origin's, `None` when it could not be
    /// reached. Enforce: a success records the delivery, anything else clears the
    /// claim so Persona's retry goes through. Shadow: a success is recorded.
    pub async fn close(self, status: Option<u16>) {
        let Some(open) = self.open else {
            return;
        };
        let succeeded = status.is_some_and(dedup::origin_succeeded);
        let (op, message) = match (open.mode, open.claim) {
            (Mode::Enforce, Some(claim)) => (
                "settle",
                Message {
                    since: Some(claim.since),
                    succeeded: Some(succeeded),
                    ..open.message
                },
            ),
            (Mode::Shadow, _) if succeeded => ("delivered", open.message),
            _ => return,
        };
        if let Err(why) = call(&open.object, &message, op).await {
            // The record stays as it was: an in-flight claim ends with its window.
            log_error(op, &why, &message.event_id);
        }
    }
}

/// An event's object, as the runtime gives it (its `fetch` is all the Worker uses).
type Object = worker_sys::DurableObject;

/// One request to an event's object.
#[derive(Clone, Debug, PartialEq)]
struct Message {
    event_id: String,
    settings: DedupSettings,
    since: Option<u64>,
    succeeded: Option<bool>,
}

impl Message {
    fn to_text(&self) -> String {
        let mut fields = vec![
            ("event_id", self.event_id.clone()),
            ("ttl_seconds", self.settings.ttl_seconds.to_string()),
            (
                "in_flight_seconds",
                self.settings.in_flight_seconds.to_string(),
            ),
        ];
        if let Some(since) = self.since {
            fields.push(("since", since.to_string()));
        }
        if let Some(succeeded) = self.succeeded {
            fields.push(("succeeded", succeeded.to_string()));
        }
        to_lines(&fields)
    }

    fn from_text(text: &str) -> Option<Message> {
        let fields = Fields(text);
        let settings = DedupSettings {
            ttl_seconds: fields.number("ttl_seconds").filter(|&n| n >= 1)?,
            in_flight_seconds: fields.number("in_flight_seconds").filter(|&n| n >= 1)?,
            // Each event has its own object: the table size is the Envoy filter's.
            capacity: 1,
        };
        Some(Message {
            event_id: fields
                .get("event_id")
                .filter(|id| !id.is_empty())?
                .to_string(),
            settings,
            since: fields.number("since"),
            succeeded: fields.get("succeeded").and_then(|s| s.parse().ok()),
        })
    }
}

/// `name=value` lines (values are event ids, numbers and words: no line breaks).
fn to_lines(fields: &[(&str, String)]) -> String {
    let lines: Vec<String> = fields.iter().map(|(n, v)| format!("{n}={v}")).collect();
    lines.join("\n")
}

/// Reads `name=value` lines; the first line with a name counts.
struct Fields<'a>(&'a str);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .lines()
            .filter_map(|line| line.split_once('='))
            .find_map(|(n, v)| (n == name).then_some(v))
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.get(name)?.parse().ok()
    }
}

fn admission_to_text(admission: &Admission) -> String {
    let (name, field, value) = match *admission {
        Admission::Forward { claim } => ("forward", "since", claim.since),
        Admission::Duplicate { delivered_at } => ("duplicate", "delivered_at", delivered_at),
        Admission::InFlight { retry_after } => ("in_flight", "retry_after", retry_after),
    };
    to_lines(&[("admission", name.into()), (field, value.to_string())])
}

fn admission_from_text(text: &str) -> Option<Admission> {
    let fields = Fields(text);
    match fields.get("admission")? {
        "forward" => Some(Admission::Forward {
            claim: Claim {
                since: fields.number("since")?,
            },
        }),
        "duplicate" => Some(Admission::Duplicate {
            delivered_at: fields.number("delivered_at")?,
        }),
        "in_flight" => Some(Admission::InFlight {
            retry_after: fields.number("retry_after")?,
        }),
        _ => None,
    }
}

/// Asks the event's object for an admission.
async fn ask(
    namespace: &worker::ObjectNamespace,
    message: &Message,
    op: &str,
) -> Result<(Object, Admission), String> {
    let object = namespace
        .id_from_name(&message.event_id)
        .and_then(|id| id.get_stub())
        .map_err(|e| e.to_string())?
        .into_rpc::<Object>();
    let answer = call(&object, message, op).await?;
    let admission = admission_from_text(&answer)
        .ok_or_else(|| format!("the Durable Object answered {answer:?} to {op}"))?;
    Ok((object, admission))
}

/// One call to the object, given up after [`OBJECT_TIMEOUT`].
async fn call(object: &Object, message: &Message, op: &str) -> Result<String, String> {
    let exchange = Box::pin(exchange(object, message, op));
    match select(exchange, Delay::from(OBJECT_TIMEOUT)).await {
        Either::Left((answer, _)) => answer,
        Either::Right(_) => Err(format!(
            "no answer to {op} within {} ms",
            OBJECT_TIMEOUT.as_millis()
        )),
    }
}

async fn exchange(object: &Object, message: &Message, op: &str) -> Result<String, String> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&message.to_text()));
    let request =
        web_sys::Request::new_with_str_and_init(&format!("https://persona-edge-dedup/{op}"), &init)
            .map_err(|e| js_text(&e))?;
    let response = object
        .fetch_with_request(&request)
        .map_err(|e| js_text(&e))?;
    let response: web_sys::Response = JsFuture::from(response)
        .await
        .map_err(|e| js_text(&e))?
        .dyn_into()
        .map_err(|_| "the Durable Object's answer is not a Response".to_string())?;
    let text = response.text().map_err(|e| js_text(&e))?;
    let text = JsFuture::from(text)
        .await
        .map_err(|e| js_text(&e))?
        .as_string()
        .unwrap_or_default();
    if response.status() != 200 {
        return Err(format!(
            "the Durable Object answered {} to {op}: {text}",
            response.status()
        ));
    }
    Ok(text)
}

/// An answer at the edge (or, in shadow mode, one that would have been given): one
/// log line named after the counter it stands for.
fn log_answer(admission: &Admission, event_id: &str, mode: Mode) {
    let Some(reply) = admission.reply(event_id) else {
        return;
    };
    let mode = match mode {
        Mode::Enforce => "enforce",
        Mode::Shadow => "shadow",
    };
    let mut line = serde_json::Map::new();
    line.insert(
        "persona_edge".into(),
        admission.counter().unwrap_or_default().into(),
    );
    line.insert("decision".into(), admission.to_string().into());
    line.insert("status".into(), reply.status.into());
    line.insert("event_id".into(), event_id.into());
    line.insert("mode".into(), mode.into());
    if let Admission::InFlight { retry_after } = admission {
        line.insert("retry_after".into(), (*retry_after).into());
    }
    console_log!("{}", Value::Object(line));
}

fn log_error(op: &str, why: &str, event_id: &str) {
    let mut line = serde_json::Map::new();
    line.insert("persona_edge".into(), "dedup_error".into());
    line.insert("op".into(), op.into());
    line.insert("error".into(), why.into());
    line.insert("event_id".into(), event_id.into());
    console_log!("{}", Value::Object(line));
}

// ---------------------------------------------------------------------------
// The Durable Object

/// One event id's record (see the module documentation). Only `fetch` and `alarm`
/// are exported (the WebSocket and socket handlers would only add code).
#[durable_object(alarm)]
pub struct EventDedup {
    state: State,
}

impl DurableObject for EventDedup {
    fn new(state: State, _env: Env) -> Self {
        EventDedup { state }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let op = req.path();
        let body = req.text().await?;
        let Some(message) = Message::from_text(&body) else {
            return Response::error(format!("not a dedup message: {body:?}"), 400);
        };
        let storage = self.state.storage();
        // Read, decide, write, with no other event delivered to the object in
        // between (also guaranteed by input gates; said explicitly here). Errors are
        // values: an Err would reset the object.
        let answer = self
            .state
            .block_concurrency_while(async move {
                Ok(apply(&storage, op.trim_start_matches('/'), &message).await)
            })
            .await?;
        match answer {
            Ok(text) => Response::ok(text),
            Err(why) => Response::error(why, 500),
        }
    }

    async fn alarm(&self) -> worker::Result<Response> {
        let storage = self.state.storage();
        let expires_at = get(&storage, EXPIRES_KEY).await?.as_f64();
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

async fn apply(storage: &worker::Storage, op: &str, message: &Message) -> Result<String, String> {
    let now = now_secs();
    let settings = &message.settings;
    let value = get(storage, RECORD_KEY).await?;
    let bytes = (!value.is_undefined() && !value.is_null())
        .then(|| js_sys::Uint8Array::new(&value).to_vec());
    let stored = bytes
        .as_deref()
        .and_then(|b| dedup::decode_for(b, &message.event_id));
    match op {
        "admit" => {
            let admission = dedup::admit(settings, stored.as_ref(), now);
            if let Admission::Forward { claim } = admission {
                save(storage, &message.event_id, &claim.record(), settings).await?;
            }
            Ok(admission_to_text(&admission))
        }
        "peek" => {
            let admission = dedup::admit(settings, stored.as_ref(), now);
            Ok(format!(
                "{}\nstored={}",
                admission_to_text(&admission),
                bytes.is_some()
            ))
        }
        "settle" => {
            let (Some(since), Some(succeeded)) = (message.since, message.succeeded) else {
                return Err("settle needs since and succeeded".into());
            };
            let claim = Claim { since };
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
        "delivered" => {
            let record = Record::Delivered { at: now };
            save(storage, &message.event_id, &record, settings).await?;
            Ok("recorded=true".into())
        }
        other => Err(format!("unknown operation {other:?}")),
    }
}

/// A stored value as it is (`undefined` when there is none).
async fn get(storage: &worker::Storage, key: &str) -> Result<JsValue, String> {
    let promise = storage
        .as_raw()
        .get(key)
        .map_err(|e| format!("storage get: {}", js_text(&e)))?;
    JsFuture::from(promise)
        .await
        .map_err(|e| format!("storage get: {}", js_text(&e)))
}

async fn save(
    storage: &worker::Storage,
    event_id: &str,
    record: &Record,
    settings: &DedupSettings,
) -> Result<(), String> {
    let bytes = dedup::encode(event_id, record)
        .ok_or_else(|| format!("event id {event_id:?} cannot be stored"))?;
    let expires_at = record.expires_at(settings);
    storage
        .put_raw(RECORD_KEY, js_sys::Uint8Array::from(bytes.as_slice()))
        .await
        .map_err(|e| format!("storage put: {e}"))?;
    storage
        .put_raw(EXPIRES_KEY, JsValue::from_f64(expires_at as f64))
        .await
        .map_err(|e| format!("storage put: {e}"))?;
    storage
        .set_alarm(alarm_time(expires_at))
        .await
        .map_err(|e| format!("storage setAlarm: {e}"))
}

async fn clear(storage: &worker::Storage) -> Result<(), String> {
    storage
        .delete_alarm()
        .await
        .map_err(|e| format!("storage deleteAlarm: {e}"))?;
    storage
        .delete_multiple(vec![RECORD_KEY, EXPIRES_KEY])
        .await
        .map(|_| ())
        .map_err(|e| format!("storage delete: {e}"))
}

fn alarm_time(at_secs: u64) -> worker::ScheduledTime {
    worker::ScheduledTime::new(js_sys::Date::new(&JsValue::from_f64(
        at_secs as f64 * 1000.0,
    )))
}

fn now_secs() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let message = Message {
            event_id: "evt_1 =a".into(),
            settings: DedupSettings {
                ttl_seconds: 259_200,
                in_flight_seconds: 30,
                capacity: 1,
            },
            since: Some(1_767_225_600),
            succeeded: Some(false),
        };
        assert_eq!(
            message.to_text(),
            "event_id=evt_1 =a\nttl_seconds=259200\nin_flight_seconds=30\nsince=1767225600\nsucceeded=false"
        );
        assert_eq!(
            Message::from_text(&message.to_text()),
            Some(message.clone())
        );
        let bare = Message {
            since: None,
            succeeded: None,
            ..message
        };
        assert_eq!(Message::from_text(&bare.to_text()), Some(bare));
        for bad in [
            "",
            "garbage",
            "event_id=\nttl_seconds=1\nin_flight_seconds=1",
            "event_id=e\nttl_seconds=0\nin_flight_seconds=1",
            "event_id=e\nttl_seconds=1",
            "event_id=e\nttl_seconds=-1\nin_flight_seconds=1",
        ] {
            assert_eq!(Message::from_text(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn admissions_round_trip() {
        for admission in [
            Admission::Forward {
                claim: Claim { since: 17 },
            },
            Admission::Duplicate { delivered_at: 18 },
            Admission::InFlight { retry_after: 19 },
        ] {
            assert_eq!(
                admission_from_text(&admission_to_text(&admission)),
                Some(admission)
            );
        }
        assert_eq!(
            admission_to_text(&Admission::InFlight { retry_after: 19 }),
            "admission=in_flight\nretry_after=19"
        );
        assert_eq!(admission_from_text("admission=forward"), None);
        assert_eq!(admission_from_text("admission=maybe\nsince=1"), None);
        assert_eq!(admission_from_text("settled=true"), None);
    }
}
