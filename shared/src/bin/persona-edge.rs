//! `persona-edge`: check a configuration, sign a test body, and preview exactly what
//! the origin would receive, with the same core the Envoy filter and the Worker run.

use std::io::Read;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use persona_edge_core::{
    Answer, Body, Decision, Exchange, Forwarding, Head, LoadOptions, PRESETS, Policy, RequestHead,
    dedup, find_preset, signature_header,
};
use serde_json::{Map, Value, json};

const USAGE: &str = "\
usage:
  persona-edge check-config CONFIG.json
  persona-edge sign --secret SECRET [--timestamp UNIX_SECONDS] [BODY_FILE]
  persona-edge process --config CONFIG.json [--remote-addr IP] [--header 'Name: value']...
                       [--method METHOD] [--now UNIX_SECONDS] [BODY_FILE]
  persona-edge preset NAME

BODY_FILE defaults to standard input. Secrets named in signature.secrets_env and
resign.secret_env are read from the environment. `preset` prints a built-in
blocklist (blocklist_preset), one entry a line, for reading, editing or pasting
into Persona's dashboard blocklist.
exit status: 0 done (whatever `process` decides), 2 usage or configuration error.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("check-config") => check_config(args.get(1..).unwrap_or_default()),
        Some("sign") => sign(args.get(1..).unwrap_or_default()),
        Some("process") => process(args.get(1..).unwrap_or_default()),
        Some("preset") => preset(args.get(1..).unwrap_or_default()),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some("-V" | "--version") => {
            println!("persona-edge {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        _ => Err(format!("expected a command\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("persona-edge: {message}");
            ExitCode::from(2)
        }
    }
}

/// Options as `--name value` pairs plus at most one positional file.
struct Args {
    options: Vec<(String, String)>,
    file: Option<String>,
}

fn parse(args: &[String], known: &[&str]) -> Result<Args, String> {
    let mut options = Vec::new();
    let mut file = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if let Some(name) = arg.strip_prefix("--") {
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let v = it
                        .next()
                        .ok_or(format!("--{name} needs a value\n\n{USAGE}"))?;
                    (name.to_string(), v.clone())
                }
            };
            if !known.contains(&name.as_str()) {
                return Err(format!("unknown option --{name}\n\n{USAGE}"));
            }
            options.push((name, value));
        } else if file.replace(arg.clone()).is_some() {
            return Err(format!("more than one file given\n\n{USAGE}"));
        }
    }
    Ok(Args { options, file })
}

impl Args {
    fn one(&self, name: &str) -> Result<Option<&str>, String> {
        let mut values = self.options.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(format!("--{name} given more than once"));
        }
        Ok(first)
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.options
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn body(&self) -> Result<Vec<u8>, String> {
        match &self.file {
            Some(path) => std::fs::read(path).map_err(|e| format!("{path}: {e}")),
            None => {
                let mut body = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut body)
                    .map_err(|e| format!("standard input: {e}"))?;
                Ok(body)
            }
        }
    }
}

fn seconds(value: Option<&str>, name: &str) -> Result<u64, String> {
    match value {
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{name} must be Unix seconds, got {v:?}")),
        None => Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)),
    }
}

fn load(path: &str) -> Result<Policy, String> {
    let text = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let env = |name: &str| std::env::var(name).ok();
    let options = LoadOptions {
        env: &env,
        host_name: "the persona-edge command",
        ..LoadOptions::default()
    };
    Policy::load(&text, &options)
        .map_err(|errors| format!("{path}: invalid configuration:\n{errors}"))
}

fn check_config(args: &[String]) -> Result<(), String> {
    let args = parse(args, &[])?;
    let path = args
        .file
        .ok_or(format!("check-config needs CONFIG.json\n\n{USAGE}"))?;
    load(&path)?;
    println!("{path}: ok");
    Ok(())
}

fn sign(args: &[String]) -> Result<(), String> {
    let args = parse(args, &["secret", "timestamp"])?;
    let secret = args
        .one("secret")?
        .ok_or(format!("sign needs --secret\n\n{USAGE}"))?;
    let timestamp = seconds(args.one("timestamp")?, "timestamp")?;
    let body = args.body()?;
    println!("{}", signature_header(secret, timestamp, &body));
    Ok(())
}

fn preset(args: &[String]) -> Result<(), String> {
    let known = PRESETS
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ");
    let name = match args {
        [name] => name,
        _ => return Err(format!("preset needs one NAME: {known}\n\n{USAGE}")),
    };
    let preset = find_preset(name).ok_or(format!(
        "{name:?} is not a preset; the presets are: {known}"
    ))?;
    for entry in preset.entries() {
        println!("{entry}");
    }
    Ok(())
}

fn process(args: &[String]) -> Result<(), String> {
    let args = parse(args, &["config", "remote-addr", "header", "method", "now"])?;
    let config = args
        .one("config")?
        .ok_or(format!("process needs --config\n\n{USAGE}"))?;
    let policy = load(config)?;
    let now = seconds(args.one("now")?, "now")?;
    let method = args.one("method")?.unwrap_or("POST");
    let mut headers: Vec<(&str, &str)> = Vec::new();
    for header in args.all("header") {
        let (name, value) = header
            .split_once(':')
            .ok_or(format!("--header {header:?} is not 'Name: value'"))?;
        headers.push((name.trim(), value.trim()));
    }
    let body = args.body()?;
    let head = RequestHead {
        method,
        headers: &headers,
        peer: args.one("remote-addr")?,
    };
    let mut exchange = Exchange::new(&policy);
    let report = match drive(&mut exchange, &head, &body, now)? {
        Delivered::Forward(forward) => describe_forward(&forward, &body),
        Delivered::Answer(answer) => describe_answer(&answer),
    };
    println!("{report}");
    Ok(())
}

/// How the delivery ended.
enum Delivered<'b> {
    Forward(Forwarding<'b>),
    Answer(Answer),
}

/// Drives the exchange as a host does, with the whole request at hand.
fn drive<'b>(
    exchange: &mut Exchange<&Policy>,
    head: &RequestHead<'_>,
    body: &'b [u8],
    now: u64,
) -> Result<Delivered<'b>, String> {
    // The whole body is here: its real length decides, not a declared one.
    match exchange.head(head, None) {
        Head::Read { .. } => {}
        Head::Answer(answer) => return Ok(Delivered::Answer(answer)),
        Head::PassThrough(forward) => return Ok(Delivered::Forward(forward)),
        Head::Done => return Err("the exchange ended before the head".into()),
    }
    match exchange.body(body.len(), true) {
        Body::Complete => {}
        Body::Answer(answer) => return Ok(Delivered::Answer(answer)),
        Body::PassThrough(forward) => return Ok(Delivered::Forward(forward)),
        Body::More | Body::Done => return Err("the exchange did not take the whole body".into()),
    }
    let decision = match exchange.finish(body, now) {
        // A preview has no storage: the event is seen for the first time.
        Decision::Admit(token) => {
            let first = dedup::admit(token.settings(), None, now);
            exchange.admit(token, Some(first))
        }
        decision => decision,
    };
    match decision {
        Decision::Forward(forward) => Ok(Delivered::Forward(forward)),
        Decision::Answer(answer) => Ok(Delivered::Answer(answer)),
        Decision::Admit(_) | Decision::Done => Err("the exchange ended without a decision".into()),
    }
}

/// A forward as one JSON object, the shape documented in the README. A pass-through
/// (shadow mode past the limit) forwards `original` as it is.
fn describe_forward(forward: &Forwarding<'_>, original: &[u8]) -> Value {
    let headers: Vec<(&str, String)> = forward
        .set_headers()
        .map(|(n, v)| (n, v.to_string()))
        .collect();
    let mut out = describe(
        "forward",
        Value::Null,
        &headers,
        forward.remove_headers(),
        forward.metadata().map_or(Value::Null, metadata_json),
        forward.body().unwrap_or(original),
        forward.decision(),
    );
    out.insert("stripped".into(), json!(forward.stripped()));
    Value::Object(out)
}

/// An answer (refusal or acknowledgement) as one JSON object.
fn describe_answer(answer: &Answer) -> Value {
    let reply = answer.reply();
    let action = if answer.rejection().is_some() {
        "reject"
    } else {
        "acknowledge"
    };
    let mut out = describe(
        action,
        json!(reply.status),
        &reply.headers,
        &[],
        answer.metadata().map_or(Value::Null, metadata_json),
        reply.body.as_bytes(),
        answer.decision().unwrap_or_default(),
    );
    if let Some(rejection) = answer.rejection() {
        out.insert("code".into(), json!(rejection.code.as_str()));
    }
    Value::Object(out)
}

/// The members every decision has, in the documented order.
fn describe(
    action: &str,
    status: Value,
    headers: &[(&str, String)],
    remove_headers: &[String],
    metadata: Value,
    body: &[u8],
    decision: &str,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("action".into(), json!(action));
    out.insert("status".into(), status);
    out.insert(
        "headers".into(),
        Value::Object(
            headers
                .iter()
                .map(|(n, v)| (n.to_string(), json!(v)))
                .collect(),
        ),
    );
    out.insert("remove_headers".into(), json!(remove_headers));
    out.insert("metadata".into(), metadata);
    match std::str::from_utf8(body) {
        Ok(text) => {
            out.insert("body".into(), json!(text));
        }
        Err(_) => {
            // Only a shadow-mode forward of a non-UTF-8 original lands here.
            out.insert("body".into(), Value::Null);
            out.insert(
                "body_hex".into(),
                json!(body.iter().map(|b| format!("{b:02x}")).collect::<String>()),
            );
        }
    }
    out.insert("decision".into(), json!(decision));
    out
}

fn metadata_json(m: &persona_edge_core::Metadata) -> Value {
    json!({
        "event_id": m.event_id,
        "event_name": m.event_name,
        "created_at": m.created_at,
        "resource_type": m.resource_type,
        "resource_id": m.resource_id,
        "attempt": m.attempt,
    })
}
