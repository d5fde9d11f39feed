//! The native Envoy dynamic module (filter/src/native) in the real Envoy 1.40, running
//! the spike filter (cargo feature `native-spike`, filter/src/native/spike.rs): proof
//! that each primitive the persona-edge module needs works there. Envoy holds the
//! request headers while the module reads the whole body, then the module sets headers
//! and replaces the body; it answers locally; counts in `/stats`; leaves values for the
//! access log; resumes a request from a scheduled event; survives panics (500, logged);
//! and a module or configuration that cannot load refuses Envoy's configuration.
//!
//! Builds the module itself (`scripts/build-native-module.sh --spike`, fast when up to
//! date) and needs Envoy (`scripts/setup-envoy.sh`, or `ENVOY_BIN`). If Envoy cannot
//! start, the tests fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use persona_edge_tests::envoy::{Envoy, envoy_bin, envoy_command, next_base_id, serial, stop};
use persona_edge_tests::{
    Answer, Framing, Origin, Process, Response, free_port, send, target_dir, tempdir,
    workspace_root,
};
use serde_json::Value;

/// The module's name in Envoy's configuration: Envoy loads `lib{name}.so`.
const MODULE: &str = "persona_edge_filter";
const COUNTER_REQUESTS: &str = "dynamicmodulescustom.persona_edge_spike.requests";
const COUNTER_TRANSFORMED: &str = "dynamicmodulescustom.persona_edge_spike.transformed";

/// The directory holding `libpersona_edge_filter.so` built with the spike, built once
/// per test process.
fn module_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let output = Command::new(workspace_root().join("scripts/build-native-module.sh"))
            .arg("--spike")
            .env("CARGO_TARGET_DIR", target_dir())
            .output()
            .expect("scripts/build-native-module.sh runs");
        assert!(
            output.status.success(),
            "scripts/build-native-module.sh --spike failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let path = PathBuf::from(stdout.lines().last().expect("the script prints the path"));
        assert!(path.is_file(), "{} was not built", path.display());
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some(&*format!("lib{MODULE}.so"))
        );
        path.parent().unwrap().to_path_buf()
    })
}

/// An Envoy configuration: one listener whose HTTP filters are the dynamic module
/// (`module` named, `filter_name`, `filter_config` as a StringValue) and the router,
/// in front of `origin_port`, with a JSON access log of what the spike leaves.
fn config(
    listen_port: u16,
    admin_port: u16,
    origin_port: u16,
    module: &str,
    filter_name: &str,
    filter_config: &str,
) -> String {
    format!(
        r#"admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
static_resources:
  listeners:
  - name: spike
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen_port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: spike
          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                json_format:
                  path: "%REQ(:PATH)%"
                  status: "%RESPONSE_CODE%"
                  details: "%RESPONSE_CODE_DETAILS%"
                  peer: "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%"
                  state_peer: "%FILTER_STATE(persona_edge_spike.peer:PLAIN)%"
                  metadata_peer: "%DYNAMIC_METADATA(persona_edge_spike:peer)%"
                  state_body_len: "%FILTER_STATE(persona_edge_spike.body_len:PLAIN)%"
                  metadata_body_len: "%DYNAMIC_METADATA(persona_edge_spike:body_len)%"
                  origin_status: "%FILTER_STATE(persona_edge_spike.origin_status:PLAIN)%"
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: origin }}
          http_filters:
          - name: envoy.filters.http.dynamic_modules
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter
              dynamic_module_config: {{ name: {module} }}
              filter_name: {filter_name}
              filter_config:
                "@type": type.googleapis.com/google.protobuf.StringValue
                value: "{filter_config}"
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {origin_port} }} }} }}
"#
    )
}

/// Envoy running the spike in front of `origin`, ready; fails (with Envoy's log) if it
/// does not get there.
fn start(label: &str, origin: &Origin) -> Envoy {
    let dir = tempdir(&format!("native-{label}"));
    let (listen_port, admin_port) = (free_port(), free_port());
    let path = dir.join("envoy.yaml");
    std::fs::write(
        &path,
        config(
            listen_port,
            admin_port,
            origin.addr.port(),
            MODULE,
            "spike",
            "{}",
        ),
    )
    .unwrap();
    let search_path = module_dir().to_str().unwrap().to_string();
    let cmd = envoy_command(
        &path,
        &[("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", &search_path)],
    );
    Envoy::launch(label, cmd, dir, listen_port, admin_port)
}

fn request(
    envoy: &Envoy,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    framing: Framing,
) -> Response {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    send(envoy.listen, method, path, &headers, body, framing)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", envoy.log()))
}

/// What the spike forwards for `body`.
fn transformed(body: &[u8]) -> Vec<u8> {
    let mut out = b"SPIKE:".to_vec();
    out.extend(body.iter().map(u8::to_ascii_uppercase));
    out
}

/// The one request the origin received for `path`.
fn received(origin: &Origin, path: &str) -> persona_edge_tests::Recorded {
    let found: Vec<_> = origin
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{path}: the origin received {} requests",
        found.len()
    );
    found.into_iter().next().unwrap()
}

fn assert_not_received(origin: &Origin, path: &str) {
    assert!(
        origin.requests().iter().all(|r| r.path != path),
        "{path}: the origin must receive nothing"
    );
}

/// Waits until Envoy's log contains `needle`.
fn wait_for_log(envoy: &Envoy, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !envoy.log().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "Envoy's log has no {needle:?}:\n{}",
            envoy.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn assert_still_running(envoy: &mut Envoy) {
    let process = envoy.process.as_mut().unwrap();
    assert!(
        process.exited().is_none(),
        "Envoy exited:\n{}",
        process.output()
    );
}

#[test]
fn the_module_holds_the_headers_reads_the_body_then_sets_headers_and_replaces_it() {
    let _serial = serial();
    let origin = Origin::start_with(Answer {
        status: 201,
        ..Answer::default()
    });
    let mut envoy = start("primitives", &origin);
    // The version check passed exactly (a mismatch is only a warning in Envoy).
    wait_for_log(&envoy, "Dynamic module ABI version v0.2.0 matched.");

    // One write with Content-Length.
    let body = br#"{"data":{"type":"event","attributes":{"name":"inquiry.approved"}}}"#;
    let r = request(
        &envoy,
        "POST",
        "/one-write",
        &[
            ("x-spike-remove-me", "yes"),
            ("content-type", "application/json"),
        ],
        body,
        Framing::ContentLength,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let got = received(&origin, "/one-write");
    assert_eq!(got.body, transformed(body));
    assert_eq!(
        got.header("x-spike-body-len"),
        Some(&*body.len().to_string())
    );
    assert_eq!(
        got.header("content-length"),
        Some(&*transformed(body).len().to_string()),
        "Content-Length follows the new body"
    );
    assert_eq!(got.header("x-spike-remove-me"), None);
    assert_eq!(got.header("content-type"), Some("application/json"));

    // Chunked, in small pieces: many body events, buffered by Envoy until the end.
    let big: Vec<u8> = (0..3000u32)
        .map(|i| b"abcdefghij"[(i % 10) as usize])
        .collect();
    let r = request(&envoy, "POST", "/chunked", &[], &big, Framing::Chunked(7));
    assert_eq!(r.status, 201, "{}", r.text());
    let got = received(&origin, "/chunked");
    assert_eq!(got.body, transformed(&big));
    assert_eq!(got.header("x-spike-body-len"), Some("3000"));

    // Finished in a scheduled event, resumed with continue_decoding.
    let r = request(
        &envoy,
        "POST",
        "/deferred",
        &[("x-spike-defer", "1")],
        b"later",
        Framing::ContentLength,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let got = received(&origin, "/deferred");
    assert_eq!(got.body, b"SPIKE:LATER");
    assert_eq!(got.header("x-spike-body-len"), Some("5"));
    assert_eq!(got.header("content-length"), Some("11"));
    wait_for_log(&envoy, "deferred body finished; continuing the request");

    // No body: decided in the header phase, no body invented.
    let r = request(&envoy, "GET", "/no-body", &[], b"", Framing::ContentLength);
    assert_eq!(r.status, 201, "{}", r.text());
    let got = received(&origin, "/no-body");
    assert!(got.body.is_empty());
    assert_eq!(got.header("x-spike-body-len"), Some("0"));
    assert_eq!(got.header("transfer-encoding"), None);

    // Local replies, from the header phase and from the body phase (headers held).
    for phase in ["headers", "body"] {
        let path = format!("/reply-{phase}");
        let r = request(
            &envoy,
            "POST",
            &path,
            &[("x-spike-reply", phase)],
            b"{}",
            Framing::ContentLength,
        );
        assert_eq!(r.status, 418, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-spike"), Some("reply"));
        let json: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(json["phase"], phase);
        assert_not_received(&origin, &path);
    }

    // Counters, in /stats under the dynamic modules' namespace.
    assert_eq!(
        envoy.stat(COUNTER_REQUESTS),
        6,
        "{:?}",
        envoy.stats("spike")
    );
    assert_eq!(envoy.stat(COUNTER_TRANSFORMED), 4);

    // Filter state and dynamic metadata reach the access log; the peer address is the
    // downstream's.
    let line = envoy.access_log_for("/one-write");
    let peer = line["peer"].as_str().unwrap().to_string();
    assert!(peer.starts_with("127.0.0.1:"), "{line}");
    assert_eq!(line["state_peer"], peer.as_str(), "{line}");
    assert_eq!(line["metadata_peer"], peer.as_str(), "{line}");
    assert_eq!(line["state_body_len"], body.len().to_string().as_str());
    assert_eq!(line["metadata_body_len"], body.len().to_string().as_str());
    assert_eq!(line["details"], "via_upstream");
    // Response headers: the origin's :status, read by the module.
    assert_eq!(line["origin_status"], "201", "{line}");
    wait_for_log(&envoy, "persona-edge spike: origin answered status=201");
    let line = envoy.access_log_for("/reply-body");
    assert_eq!(line["status"], 418);
    assert_eq!(line["details"], "spike_teapot");
    assert_eq!(
        line["origin_status"],
        Value::Null,
        "the origin was not asked"
    );

    assert_still_running(&mut envoy);
}

#[test]
fn a_panic_in_the_module_answers_500_and_envoy_keeps_serving() {
    let _serial = serial();
    let origin = Origin::start();
    let mut envoy = start("panics", &origin);
    for phase in ["headers", "body", "response"] {
        let path = format!("/panic-{phase}");
        let r = request(
            &envoy,
            "POST",
            &path,
            &[("x-spike-panic", phase)],
            b"{}",
            Framing::ContentLength,
        );
        assert_eq!(r.status, 500, "{path}: {}", r.text());
        let json: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(json["errors"][0]["code"], "internal_error", "{json}");
        assert_eq!(r.header("content-type"), Some("application/vnd.api+json"));
        if phase == "response" {
            // The origin was asked; its answer is replaced.
            received(&origin, &path);
        } else {
            assert_not_received(&origin, &path);
        }
        let where_ = match phase {
            "headers" => "request headers",
            "body" => "request body",
            _ => "response headers",
        };
        wait_for_log(&envoy, &format!("the filter panicked in {where_}"));
        assert_eq!(envoy.access_log_for(&path)["details"], "persona_edge_panic");

        // The next request is served normally.
        let next = format!("/after-{phase}");
        let r = request(&envoy, "POST", &next, &[], b"ok", Framing::ContentLength);
        assert_eq!(r.status, 200, "{next}: {}", r.text());
        assert_eq!(received(&origin, &next).body, b"SPIKE:OK");
        assert_still_running(&mut envoy);
    }
    // The panic hook logged where, in Envoy's log, on one line.
    wait_for_log(&envoy, "persona-edge: panic at filter/src/native/spike.rs:");
}

/// `envoy --mode validate` on a configuration: its exit status and output.
fn validate(label: &str, module: &str, filter_name: &str, filter_config: &str) -> (bool, String) {
    let dir = tempdir(&format!("native-validate-{label}"));
    let path = dir.join("envoy.yaml");
    std::fs::write(
        &path,
        config(
            free_port(),
            free_port(),
            free_port(),
            module,
            filter_name,
            filter_config,
        ),
    )
    .unwrap();
    let output = Command::new(envoy_bin())
        .args(["--mode", "validate", "-c"])
        .arg(&path)
        .arg("--base-id")
        .arg(next_base_id().to_string())
        .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", module_dir())
        .output()
        .expect("envoy runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

#[test]
fn a_module_or_configuration_that_cannot_load_refuses_envoys_configuration() {
    let _serial = serial();
    // The control: the spike's own configuration validates.
    let (ok, out) = validate("good", MODULE, "spike", "{}");
    assert!(ok, "the spike configuration must validate:\n{out}");
    assert!(
        out.contains("persona-edge spike: configuration loaded"),
        "{out}"
    );

    // A module that is not there.
    let (ok, out) = validate("missing", "persona_edge_missing", "spike", "{}");
    assert!(!ok, "a missing module must be refused:\n{out}");
    assert!(out.contains("libpersona_edge_missing.so"), "{out}");

    // The module refuses the configuration (its config hook returns null).
    let (ok, out) = validate("refuse", MODULE, "spike", "refuse");
    assert!(!ok, "a refused configuration must fail validation:\n{out}");
    assert!(out.contains("persona-edge: configuration refused"), "{out}");
    assert!(out.contains("Failed to initialize dynamic module"), "{out}");

    // A filter name the module does not have.
    let (ok, out) = validate("name", MODULE, "nope", "{}");
    assert!(!ok, "an unknown filter name must be refused:\n{out}");
    assert!(out.contains("unknown filter name"), "{out}");

    // Started for real, Envoy exits and never listens.
    let dir = tempdir("native-refused-start");
    let (listen_port, admin_port) = (free_port(), free_port());
    let path = dir.join("envoy.yaml");
    std::fs::write(
        &path,
        config(
            listen_port,
            admin_port,
            free_port(),
            MODULE,
            "spike",
            "refuse",
        ),
    )
    .unwrap();
    let search_path = module_dir().to_str().unwrap().to_string();
    let mut process = Process::spawn(
        "envoy (refused)",
        envoy_command(
            &path,
            &[("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", &search_path)],
        ),
        &dir.join("envoy.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = process.exited() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "Envoy kept running with a refused configuration:\n{}",
            process.output()
        );
        thread::sleep(Duration::from_millis(50));
    };
    let output = process.output();
    stop(process);
    assert!(!status.success(), "{output}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", listen_port)).is_err());
    assert!(
        output.contains("persona-edge: configuration refused"),
        "{output}"
    );
}
