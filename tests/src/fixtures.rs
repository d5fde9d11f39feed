//! The shared fixtures every runner sends: paths, the fixture secrets, and the cases of
//! `tests/fixtures/cases.json` with what each expects.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use persona_edge_core::signature_header;
use serde_json::Value;

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

/// `path`, which an earlier step builds or installs; a missing one fails the test with
/// `remedy`, what makes it.
pub fn required(path: PathBuf, remedy: &str) -> PathBuf {
    assert!(path.exists(), "{} is missing: {remedy}", path.display());
    path
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

pub(crate) fn strings(v: &Value) -> Vec<String> {
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
