//! The oracle: the release `persona-edge process` command, which every runner's
//! answer is compared with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::fixtures::{Case, fixtures_dir, required, strings, target_dir};
use crate::http::Response;
use crate::process::tempdir;

/// The release `persona-edge` binary (`cargo build --release --bin persona-edge`).
pub fn cli_binary() -> PathBuf {
    required(
        target_dir().join("release/persona-edge"),
        "run `cargo build --release --bin persona-edge` first (`make test` does)",
    )
}

/// What `persona-edge process` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct CliOutput {
    pub action: String,
    pub status: Option<u16>,
    pub code: Option<String>,
    /// Headers set on the forwarded request, or on the reply.
    pub headers: BTreeMap<String, String>,
    pub remove_headers: Vec<String>,
    pub metadata: Value,
    pub body: Vec<u8>,
    pub decision: String,
    pub raw: Value,
}

/// Runs `persona-edge process` on the case as delivered at `now` by `client`.
pub fn cli_process(case: &Case, now: u64) -> CliOutput {
    let dir = tempdir(&format!("cli-{}", case.name));
    let body_path = dir.join("body");
    std::fs::write(&body_path, &case.body).unwrap();
    let mut cmd = Command::new(cli_binary());
    cmd.arg("process")
        .arg("--config")
        .arg(fixtures_dir().join("configs").join(&case.config))
        .arg("--remote-addr")
        .arg(&case.client)
        .arg("--method")
        .arg(&case.method)
        .arg("--now")
        .arg(now.to_string());
    for (n, v) in case.headers_at(now) {
        cmd.arg("--header").arg(format!("{n}: {v}"));
    }
    cmd.arg(&body_path);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}: persona-edge process failed: {}",
        case.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
    parse_cli_output(&out.stdout)
}

/// A runner's reply to the delivery `name` is the command's refusal or acknowledgement:
/// its status, its body byte for byte, and every header the core sets on it. `runner`
/// labels the runner's body in the message.
pub fn assert_reply_is_the_commands(
    name: &str,
    runner: &str,
    response: &Response,
    cli: &CliOutput,
) {
    assert_eq!(
        Some(response.status),
        cli.status,
        "{name}: status; body {}",
        response.text()
    );
    assert!(
        response.body == cli.body,
        "{name}: reply body\n{runner}: {}\nnative: {}",
        response.text(),
        String::from_utf8_lossy(&cli.body)
    );
    for (header, value) in &cli.headers {
        assert_eq!(
            response.header(header),
            Some(value.as_str()),
            "{name}: reply header {header}"
        );
    }
}

pub fn parse_cli_output(stdout: &[u8]) -> CliOutput {
    let v: Value = serde_json::from_slice(stdout).unwrap();
    CliOutput {
        action: v["action"].as_str().unwrap().into(),
        status: v["status"].as_u64().map(|s| s as u16),
        code: v["code"].as_str().map(String::from),
        headers: v["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect(),
        remove_headers: strings(&v["remove_headers"]),
        metadata: v["metadata"].clone(),
        body: v["body"]
            .as_str()
            .map(|s| s.as_bytes().to_vec())
            .unwrap_or_default(),
        decision: v["decision"].as_str().unwrap_or("").into(),
        raw: v,
    }
}
