//! persona-edge in the real Envoy 1.40 (no mocks), in both packagings: the proxy-wasm
//! filter (`envoy/envoy.yaml`) and the native dynamic module (`envoy/envoy-native.yaml`).
//! Every shared fixture case is compared with the native `persona-edge process`, plus
//! what only a proxy shows: trusted X-Forwarded-For hops, bodies past the limit,
//! chunked uploads, concurrency, refused configurations, re-signing, counters and the
//! access log. Every test but the few about one packaging runs twice, as
//! `NAME::wasm` and `NAME::native`, with the same expected outputs.
//!
//! Needs Envoy (`scripts/setup-envoy.sh`, or `ENVOY_BIN`), the filter and the module as
//! they ship (`scripts/build-filter.sh`, `scripts/build-native-module.sh`, and its
//! `--panic-test` variant) and the command (`cargo build --release --bin
//! persona-edge`). A missing piece fails the test with the command to run; nothing is
//! skipped.
//!
//! Each Envoy runs the shipped file itself, with only its marked values substituted
//! (ports, the .wasm path, `xff_num_trusted_hops: 1` so the test client can stand for a
//! load balancer in front of Envoy, and the plugin configuration), so the shipped file
//! is what is tested.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use persona_edge_core::{Policy, signature_header};
use persona_edge_tests::envoy::*;
use persona_edge_tests::packaged;
use persona_edge_tests::privacy;
use persona_edge_tests::{
    CliOutput, EnvoyRefusal, Framing, Origin, Response, SECRET, case, cases, cli_process,
    config_text, now, send, tempdir, workspace_root,
};
use serde_json::Value;

// ---------------------------------------------------------------------------
// Helpers

/// An origin, and Envoy in front of it running the fixture configuration `config`.
fn envoy_with_fixture(packaging: Packaging, label: &str, config: &str) -> (Origin, Envoy) {
    let origin = Origin::start();
    let envoy = Envoy::start(packaging, label, Some(&config_text(config)), &origin, &[]);
    (origin, envoy)
}

/// POSTs `body` to the webhook path with exactly `headers` (the caller sets
/// X-Forwarded-For, or leaves it out).
fn post(envoy: &Envoy, headers: &[(String, String)], body: &[u8]) -> Response {
    send(
        envoy.listen,
        "POST",
        "/webhooks/persona",
        headers,
        body,
        Framing::ContentLength,
    )
    .unwrap()
}

// ---------------------------------------------------------------------------
// Tests

packaged! {
fn every_shared_case_matches_the_native_command(packaging: Packaging) {
    let _serial = serial();
    let all = cases();
    assert!(
        all.len() >= 40,
        "the shared fixture set shrank to {}",
        all.len()
    );
    let mut configs: Vec<String> = all.iter().map(|c| c.config.clone()).collect();
    configs.sort();
    configs.dedup();
    let mut ran = 0;
    for config in configs.iter().filter(|c| c.as_str() != "invalid.json") {
        let (text, config_path) = fixture_config(config);
        let origin = Origin::start();
        let envoy = Envoy::start(packaging, config, Some(&text), &origin, &[]);
        let shadow =
            Policy::from_json(text.as_bytes()).unwrap().mode() == persona_edge_core::Mode::Shadow;
        let mut outputs = Vec::new();
        for case in all.iter().filter(|c| &c.config == config) {
            let mut case = case.clone();
            // The command reads the same configuration Envoy runs (an absolute path
            // replaces the fixtures directory).
            case.config = config_path.display().to_string();
            let now = now();
            let cli = cli_process(&case, now);
            assert_eq!(
                cli.action, case.expect.action,
                "{}: the command disagrees with the fixture",
                case.name
            );
            origin.clear();
            let response = send_case(&envoy, &case, now, Framing::ContentLength);
            if let Some(refusal) = &case.envoy {
                check_envoy_refusal(&envoy, &origin, &case.name, refusal, &response);
                ran += 1;
                continue;
            }
            check_against_cli(&envoy, &origin, &case, &cli, &response, now, shadow);
            outputs.push(cli);
            ran += 1;
        }
        let refs: Vec<&CliOutput> = outputs.iter().collect();
        assert_eq!(
            envoy.counters(),
            expected_counters(&refs, shadow),
            "{config}: counters"
        );
    }
    assert_eq!(
        ran,
        all.iter().filter(|c| c.config != "invalid.json").count()
    );
}
}

/// A case Envoy refuses itself (`"envoy"` in cases.json): its status, nothing at the
/// origin, the filter never called (no decision), and the reason in the access log.
fn check_envoy_refusal(
    envoy: &Envoy,
    origin: &Origin,
    name: &str,
    refusal: &EnvoyRefusal,
    response: &Response,
) {
    assert_eq!(
        response.status,
        refusal.status,
        "{name}: {}",
        response.text()
    );
    thread::sleep(Duration::from_millis(20));
    assert!(
        origin.requests().is_empty(),
        "{name}: the origin received {:?}",
        origin.requests()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let lines: Vec<Value> = envoy
            .access_log()
            .into_iter()
            .filter(|l| l["details"] == refusal.details.as_str())
            .collect();
        if let Some(line) = lines.first() {
            assert_eq!(lines.len(), 1, "{name}: {lines:#?}");
            assert_eq!(line["status"], refusal.status, "{name}: {line}");
            assert!(line["decision"].is_null(), "{name}: the filter ran: {line}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}: no access log line with details {}:\n{}",
            refusal.details,
            envoy.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

packaged! {
fn chunked_uploads_in_small_pieces_match_one_piece(packaging: Packaging) {
    let _serial = serial();
    let names = [
        "inquiry-approved-strict",
        "inquiry-completed-large-strict",
        "escaped-keys-strict",
        "signature-other-body",
        "body-truncated",
    ];
    let (origin, envoy) = envoy_with_fixture(packaging, "chunked", "strict.json");
    for name in names {
        let case = &case(name);
        let now = now();
        let cli = cli_process(case, now);
        let mut results = Vec::new();
        for framing in [
            Framing::ContentLength,
            Framing::Chunked(1),
            Framing::Chunked(7),
            Framing::Chunked(4096),
        ] {
            origin.clear();
            let response = send_case(&envoy, case, now, framing);
            let received = origin_requests(&origin, usize::from(cli.action == "forward"));
            results.push((
                response.status,
                response.body.clone(),
                received.iter().map(|r| r.body.clone()).collect::<Vec<_>>(),
            ));
            if cli.action == "forward" {
                assert_eq!(received.len(), 1, "{name} {framing:?}");
                assert!(
                    received[0].body == cli.body,
                    "{name} {framing:?}: body differs from the command's"
                );
            } else {
                assert_eq!(Some(response.status), cli.status, "{name} {framing:?}");
                assert!(
                    response.body == cli.body,
                    "{name} {framing:?}: {}",
                    response.text()
                );
                assert!(
                    received.is_empty(),
                    "{name} {framing:?}: the origin received it"
                );
            }
        }
        assert!(
            results.windows(2).all(|w| w[0] == w[1]),
            "{name}: framings gave different results"
        );
    }
}
}

packaged! {
fn spoofed_forwarded_for_entries_do_not_get_a_client_in(packaging: Packaging) {
    let _serial = serial();
    let case = case("inquiry-approved-strict");
    let (origin, envoy) = envoy_with_fixture(packaging, "xff", "strict.json");
    let persona = "35.232.44.140";
    let attacker = "198.51.100.7";
    // One trusted hop (the test client stands for the load balancer): the client is
    // the rightmost entry; anything left of it is the sender's own claim.
    let tries: [(&str, Option<&str>, u16); 6] = [
        ("rightmost is Persona", Some(persona), 200),
        (
            "claims Persona on the left",
            Some(&format!("{persona}, {attacker}")),
            403,
        ),
        (
            "claims Persona twice on the left",
            Some(&format!("{persona}, {persona}, {attacker}")),
            403,
        ),
        (
            "Persona behind the attacker",
            Some(&format!("{attacker}, {persona}")),
            200,
        ),
        ("no X-Forwarded-For: the peer, 127.0.0.1", None, 403),
        ("garbage", Some("not-an-address"), 403),
    ];
    for (label, xff, status) in tries {
        origin.clear();
        let now = now();
        let mut headers = case.headers_at(now);
        if let Some(xff) = xff {
            headers.push(("X-Forwarded-For".into(), xff.to_string()));
        }
        let r = post(&envoy, &headers, &case.body);
        assert_eq!(r.status, status, "{label}: {}", r.text());
        let received = origin_requests(&origin, usize::from(status == 200));
        assert_eq!(received.len(), usize::from(status == 200), "{label}");
        if status == 403 {
            let doc: Value = serde_json::from_slice(&r.body).unwrap();
            let code = doc["errors"][0]["code"].as_str().unwrap();
            assert!(
                code == "source_not_allowed" || code == "source_unknown",
                "{label}: {code}"
            );
        }
    }
    // Two X-Forwarded-For headers are one list: the left one cannot smuggle a client in.
    origin.clear();
    let now = now();
    let mut headers = case.headers_at(now);
    headers.push(("X-Forwarded-For".into(), persona.into()));
    headers.push(("X-Forwarded-For".into(), attacker.into()));
    let r = post(&envoy, &headers, &case.body);
    assert_eq!(r.status, 403, "two headers: {}", r.text());
    assert!(origin.requests().is_empty());
}
}

/// Sends a large body and reads the reply while still writing, as a real client
/// does (Envoy answers before the upload ends). Returns the status and body.
fn send_large(
    addr: SocketAddr,
    headers: &[(String, String)],
    body: &[u8],
    chunked: bool,
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head =
        format!("POST /webhooks/persona HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if chunked {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    }
    let mut writer = stream.try_clone().unwrap();
    let body = body.to_vec();
    let uploader = thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        for piece in body.chunks(64 * 1024) {
            let ok = if chunked {
                writer
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .and_then(|_| writer.write_all(piece))
                    .and_then(|_| writer.write_all(b"\r\n"))
            } else {
                writer.write_all(piece)
            };
            if ok.is_err() {
                return; // Envoy answered and closed: expected.
            }
        }
        if chunked {
            let _ = writer.write_all(b"0\r\n\r\n");
        }
    });
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let _ = uploader.join();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(body.len());
    (status, body.as_bytes()[..length.min(body.len())].to_vec())
}

packaged! {
fn bodies_past_the_limit_get_413_and_are_not_forwarded(packaging: Packaging) {
    let _serial = serial();
    let base = case("inquiry-approved-strict");
    let (origin, envoy) = envoy_with_fixture(packaging, "limit", "strict.json");
    // Past the filter's 1 MiB limit but within Envoy's own buffer limit
    // (per_connection_buffer_limit_bytes, 1114112): the filter answers, always. Past
    // Envoy's limit, whichever notices first answers: the filter (JSON:API), or Envoy
    // when one read carries the buffered body over its limit (plain text). Either way
    // 413 and nothing forwarded.
    let envoy_limit = 1_114_112;
    let mut filter_answers = 0;
    for size in [1024 * 1024 + 1, 1_100_000, 1_200_000, 5 * 1024 * 1024] {
        for chunked in [false, true] {
            let mut case = base.clone();
            let mut body = case.body.clone();
            let pad = size - body.len();
            // Keep it JSON: grow a string value.
            let at = body.iter().position(|b| *b == b'{').unwrap() + 1;
            let filler = format!("\"pad\":\"{}\",", "x".repeat(pad - 9));
            body.splice(at..at, filler.bytes());
            assert_eq!(body.len(), size);
            case.body = body;
            let now = now();
            let cli = cli_process(&case, now);
            assert_eq!(cli.status, Some(413));
            origin.clear();
            let mut headers = case.headers_at(now);
            headers.push(("X-Forwarded-For".into(), case.client.clone()));
            let (status, reply) = send_large(envoy.listen, &headers, &case.body, chunked);
            let what = format!(
                "{size} bytes, chunked {chunked}: {}",
                String::from_utf8_lossy(&reply)
            );
            assert_eq!(status, 413, "{what}");
            if reply == cli.body {
                filter_answers += 1;
            } else {
                assert!(size > envoy_limit, "not the filter's error: {what}");
            }
            thread::sleep(Duration::from_millis(50));
            assert!(
                origin.requests().is_empty(),
                "{what}: the origin received it"
            );
        }
    }
    assert!(filter_answers >= 4);
    // The filter counts each body it refused, including one whose reply lost the race
    // to Envoy's own.
    let counted = envoy.counters()["rejected.body_too_large"];
    assert!(
        (filter_answers..=8).contains(&counted),
        "{counted} counted, {filter_answers} answered"
    );
    assert_eq!(envoy.counters()["forwarded"], 0);
}
}

packaged! {
fn shadow_mode_forwards_oversized_bodies_unchanged(packaging: Packaging) {
    let _serial = serial();
    let case = &case("shadow-would-forward");
    let mut config: Value = serde_json::from_str(&config_text(&case.config)).unwrap();
    config["limits"] = serde_json::json!({"max_body_bytes": 4096});
    let origin = Origin::start();
    let envoy = Envoy::start(packaging, "shadow-limit", Some(&config.to_string()), &origin, &[]);
    assert!(case.body.len() > 4096);
    for framing in [Framing::ContentLength, Framing::Chunked(1000)] {
        origin.clear();
        let r = send_case(&envoy, case, now(), framing);
        assert_eq!(r.status, 200, "{framing:?}: {}", r.text());
        let got = origin_requests(&origin, 1);
        assert_eq!(got.len(), 1, "{framing:?}");
        assert!(
            got[0].body == case.body,
            "{framing:?}: shadow mode changed the body"
        );
        assert_eq!(
            got[0].header("x-persona-edge-decision"),
            Some("reject; status=413; code=body_too_large"),
            "{framing:?}"
        );
    }
    let counters = envoy.counters();
    assert_eq!(counters["forwarded"], 2);
    assert_eq!(counters["shadow.would_reject.body_too_large"], 2);
    assert_eq!(counters["rejected.body_too_large"], 0);
}
}

packaged! {
fn concurrent_deliveries_are_all_processed_correctly(packaging: Packaging) {
    let _serial = serial();
    // Forwarded with a rewrite, forwarded as is, rejected after the body, rejected at
    // the head: each with its expected result from the command.
    let kinds = [
        case("inquiry-approved-strict"),
        case("inquiry-completed-large-strict"),
        case("signature-wrong-secret"),
        case("source-not-allowed"),
    ];
    let now = now();
    let expected: Vec<CliOutput> = kinds.iter().map(|c| cli_process(c, now)).collect();
    let (origin, envoy) = envoy_with_fixture(packaging, "concurrent", "strict.json");
    let total = 200;
    let listen = envoy.listen;
    let kinds = Arc::new(kinds);
    let expected = Arc::new(expected);
    let handles: Vec<_> = (0..total)
        .map(|i| {
            let (kinds, expected) = (kinds.clone(), expected.clone());
            thread::spawn(move || {
                let k = i % kinds.len();
                let case = &kinds[k];
                let framing = if i % 3 == 0 {
                    Framing::Chunked(1000)
                } else {
                    Framing::ContentLength
                };
                let r = send(
                    listen,
                    "POST",
                    &format!("/webhooks/persona?delivery={i}"),
                    &request_headers(case, now, &case.client),
                    &case.body,
                    framing,
                )
                .unwrap_or_else(|e| panic!("delivery {i}: {e}"));
                let want = &expected[k];
                match want.action.as_str() {
                    "forward" => assert_eq!(r.status, 200, "delivery {i}: {}", r.text()),
                    _ => {
                        assert_eq!(Some(r.status), want.status, "delivery {i}");
                        assert!(r.body == want.body, "delivery {i}: {}", r.text());
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let forwarded: Vec<usize> = (0..total)
        .filter(|i| expected[i % 4].action == "forward")
        .collect();
    let got = origin_requests(&origin, forwarded.len());
    assert_eq!(
        got.len(),
        forwarded.len(),
        "the origin got {} of {} forwards",
        got.len(),
        forwarded.len()
    );
    for r in &got {
        let i: usize = r.path.rsplit('=').next().unwrap().parse().unwrap();
        assert!(
            r.body == expected[i % 4].body,
            "delivery {i}: the origin's body differs"
        );
        assert_eq!(
            r.header("x-persona-event-id"),
            expected[i % 4]
                .headers
                .get("x-persona-event-id")
                .map(String::as_str)
        );
    }
    let refs: Vec<&CliOutput> = (0..total).map(|i| &expected[i % 4]).collect();
    assert_eq!(envoy.counters(), expected_counters(&refs, false));
}
}

packaged! {
fn invalid_configurations_are_refused_by_envoy(packaging: Packaging) {
    let _serial = serial();
    // The fixture that must be refused: every problem the core finds is logged.
    let invalid = config_text("invalid.json");
    let errors = Policy::from_json(invalid.as_bytes()).unwrap_err();
    assert!(errors.0.len() >= 4, "{errors}");
    let log = Envoy::refused(packaging, "invalid", &invalid);
    for e in &errors.0 {
        let line = format!("persona-edge: invalid configuration: {e}");
        assert!(
            log.contains(&line),
            "missing {line:?} in Envoy's log:\n{log}"
        );
    }
    // Not JSON at all.
    let log = Envoy::refused(packaging, "not-json", "{ this is not json");
    assert!(
        log.contains("persona-edge: invalid configuration: not valid JSON"),
        "{log}"
    );
    // A secret named in the environment that Envoy does not have.
    let log = Envoy::refused(packaging,
        "missing-env",
        r#"{"signature": {"secrets_env": ["PERSONA_EDGE_TEST_UNSET"]}}"#,
    );
    assert!(
        log.contains(r#"signature.secrets_env[0]: the variable "PERSONA_EDGE_TEST_UNSET" is not set or empty"#),
        "{log}"
    );
}
}

packaged! {
fn the_shipped_configuration_validates_and_reads_its_secret_from_the_environment(packaging: Packaging) {
    let _serial = serial();
    let module = packaging.module();
    // `envoy --mode validate` on the shipped file itself, from a directory where its
    // relative .wasm path resolves (the checkout root, whatever CARGO_TARGET_DIR is),
    // with the module's directory in ENVOY_DYNAMIC_MODULES_SEARCH_PATH as
    // envoy-native.yaml says.
    let dir = tempdir(&format!("validate-{}", packaging.name()));
    let rel = dir.join("target/persona-edge");
    std::fs::create_dir_all(&rel).unwrap();
    std::os::unix::fs::symlink(&module, rel.join(module.file_name().unwrap())).unwrap();
    let shipped = workspace_root().join(packaging.shipped_file());
    let validate = |secret: Option<&str>| {
        let mut cmd = Command::new(envoy_bin());
        cmd.current_dir(&dir)
            .args(["--mode", "validate", "-c"])
            .arg(&shipped)
            .env_remove("PERSONA_WEBHOOK_SECRET")
            .env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", "target/persona-edge");
        if let Some(s) = secret {
            cmd.env("PERSONA_WEBHOOK_SECRET", s);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = validate(Some("wbhsec_example"));
    assert!(
        ok,
        "envoy --mode validate refused {}:\n{text}",
        packaging.shipped_file()
    );
    assert!(
        text.contains("persona-edge: configuration loaded"),
        "{text}"
    );
    // Without the secret the filter refuses its configuration: fail closed.
    let (ok, text) = validate(None);
    assert!(!ok, "validated without PERSONA_WEBHOOK_SECRET:\n{text}");
    assert!(
        text.contains("\"PERSONA_WEBHOOK_SECRET\" is not set or empty"),
        "{text}"
    );

    // Serving with the shipped plugin configuration: the secret from Envoy's
    // environment (the Wasm VM's through vm_config.environment_variables.host_env_keys)
    // verifies deliveries.
    let origin = Origin::start();
    let envoy = Envoy::start(packaging,
        "shipped",
        None,
        &origin,
        &[("PERSONA_WEBHOOK_SECRET", SECRET)],
    );
    let (case, account) = (
        &case("inquiry-approved-strict"),
        &case("account-created-strict"),
    );
    let now = now();
    let r = send_case(&envoy, case, now, Framing::ContentLength);
    assert_eq!(r.status, 200, "{}", r.text());
    let got = origin_requests(&origin, 1);
    assert_eq!(got.len(), 1);
    let body = String::from_utf8_lossy(&got[0].body);
    assert!(
        !body.contains("\"name-first\"") && !body.contains("\"birthdate\""),
        "{body}"
    );
    assert!(
        !body.contains("\"address-street-1\"") && body.contains("\"reference-id\""),
        "{body}"
    );
    assert_eq!(
        got[0].header("x-persona-event-name"),
        Some("inquiry.approved")
    );
    // Signed with another secret: refused.
    origin.clear();
    let mut headers = request_headers(case, now, &case.client);
    for (n, v) in headers.iter_mut() {
        if n == "Persona-Signature" {
            *v = signature_header("wbhsec_not_the_one", now, &case.body);
        }
    }
    let r = post(&envoy, &headers, &case.body);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(origin.requests().is_empty());
    // An event type the shipped configuration does not forward: acknowledged.
    let r = send_case(&envoy, account, now, Framing::ContentLength);
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(origin.requests().is_empty());

    // Every example event in every inflection, signed as Persona signs it: none of
    // the personal fields the file claims to strip reaches the origin
    // (tests/tests/privacy.rs checks the same through the core).
    let inventory = privacy::inventory();
    let shipped = privacy::shipped_configurations(&inventory);
    let claim = &shipped
        .iter()
        .find(|c| c.label == packaging.shipped_file())
        .unwrap()
        .claim;
    let label = format!("{} in Envoy", packaging.shipped_file());
    let problems = privacy::check_through(&inventory, &label, claim, |body| {
        origin.clear();
        let headers: Vec<(String, String)> = [
            (
                "Content-Type",
                "application/json; charset=utf-8".to_string(),
            ),
            ("Persona-Signature", signature_header(SECRET, now, body)),
            ("X-Forwarded-For", privacy::PERSONA_ADDRESS.to_string()),
        ]
        .map(|(n, v)| (n.to_string(), v))
        .into();
        let r = post(&envoy, &headers, body);
        let got = origin_requests(&origin, usize::from(r.status == 200));
        match (r.status, got.as_slice()) {
            (200, [one]) => Ok(Some(one.body.clone())),
            (204, []) => Ok(None),
            (status, got) => Err(format!(
                "{status}, {} at the origin: {}",
                got.len(),
                r.text()
            )),
        }
    });
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
}

/// Envoy running the shipped file for `origin` with the plugin configuration
/// `plugin_config` and one more change to the file: `from` (which must occur once)
/// becomes `to`.
fn envoy_with_change(
    packaging: Packaging,
    label: &str,
    plugin_config: &str,
    origin: &Origin,
    from: &str,
    to: &str,
) -> Envoy {
    Rendered::write(
        packaging,
        &format!("envoy-{label}"),
        origin,
        Some(plugin_config),
        Some((from, to)),
    )
    .launch(label, &[])
}

packaged! {
fn the_filter_removes_underscore_spellings_where_envoy_keeps_them(packaging: Packaging) {
    let _serial = serial();
    // The shipped envoy.yaml refuses header names with `_` (the shared case
    // spoofed-routing-headers-underscores gets Envoy's 400). Where a proxy keeps them,
    // as Envoy and Istio do by default, the filter removes x_persona_* itself.
    let origin = Origin::start();
    let envoy = envoy_with_change(
        packaging,
        "underscores-allowed",
        &config_text("strict.json"),
        &origin,
        "headers_with_underscores_action: REJECT_REQUEST",
        "headers_with_underscores_action: ALLOW",
    );
    let case = case("spoofed-routing-headers-underscores");
    let now = now();
    let cli = cli_process(&case, now);
    assert!(
        cli.remove_headers
            .contains(&"x_persona_event_id".to_string())
    );
    let response = send_case(&envoy, &case, now, Framing::ContentLength);
    check_against_cli(&envoy, &origin, &case, &cli, &response, now, false);
    let got = origin_requests(&origin, 1);
    assert_eq!(got.len(), 1);
    assert!(
        got[0].headers.iter().all(|(n, _)| !n.contains('_')),
        "{:?}",
        got[0].headers
    );
    assert_eq!(
        got[0].header("x-persona-event-id"),
        cli.headers.get("x-persona-event-id").map(String::as_str)
    );
}
}

packaged! {
fn only_the_webhook_path_reaches_the_origin(packaging: Packaging) {
    let _serial = serial();
    let case = case("inquiry-approved-strict");
    let (origin, envoy) = envoy_with_fixture(packaging, "paths", "strict.json");
    let now = now();
    let headers = request_headers(&case, now, &case.client);
    // A genuine, signed delivery from a Persona address, sent to other paths: the
    // signature covers the body, not the URL, so only the route keeps it away.
    for path in [
        "/",
        "/webhooks/persona/",
        "/webhooks/persona/other",
        "/webhooks/personas",
        "/WEBHOOKS/persona",
        "/admin/webhooks/persona",
    ] {
        let r = send(
            envoy.listen,
            "POST",
            path,
            &headers,
            &case.body,
            Framing::ContentLength,
        )
        .unwrap();
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/vnd.api+json"),
            "{path}"
        );
        let doc: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(doc["errors"][0]["code"], "not_found", "{path}");
    }
    thread::sleep(Duration::from_millis(50));
    assert!(
        origin.requests().is_empty(),
        "another path reached the origin: {:?}",
        origin.requests()
    );
    // The filter does not run there: nothing decided, nothing counted.
    assert!(
        envoy.counters().values().all(|n| *n == 0),
        "{:?}",
        envoy.counters()
    );
    // The webhook path, with any query, is served.
    let r = post(&envoy, &headers, &case.body);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = send(
        envoy.listen,
        "POST",
        "/webhooks/persona?attempt=2",
        &headers,
        &case.body,
        Framing::ContentLength,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(origin_requests(&origin, 2).len(), 2);
}
}

packaged! {
fn the_shipped_configuration_limits_connections_and_heap(packaging: Packaging) {
    let _serial = serial();
    // Without a connection limit Envoy 1.40 warns at start; envoy.yaml sets one, and
    // the limit closes connections past it. A limit of 2 makes that visible.
    let origin = Origin::start();
    let envoy = envoy_with_change(
        packaging,
        "connection-limit",
        &config_text("strict.json"),
        &origin,
        "max_active_downstream_connections: 10000",
        "max_active_downstream_connections: 2",
    );
    thread::sleep(Duration::from_millis(200));
    let log = envoy.log();
    assert!(
        !log.contains("no configured limit to the number of allowed active downstream connections"),
        "{log}"
    );
    for monitor in ["global_downstream_max_connections", "fixed_heap"] {
        let stats = envoy.stats(&format!("overload.envoy.resource_monitors.{monitor}"));
        assert!(
            !stats.is_empty(),
            "{monitor}: no overload monitor stats:\n{log}"
        );
        assert_eq!(
            stats[&format!("overload.envoy.resource_monitors.{monitor}.failed_updates")],
            0,
            "{monitor}: {stats:?}"
        );
    }
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(envoy.listen).unwrap())
        .collect();
    thread::sleep(Duration::from_millis(300));
    // One past the limit: closed without an answer (the write may fail, or not).
    let mut extra = TcpStream::connect(envoy.listen).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = extra.write_all(b"GET /webhooks/persona HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut answer = Vec::new();
    let _ = extra.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "a connection past the limit was served: {}",
        String::from_utf8_lossy(&answer)
    );
    let listener = format!(
        "listener.127.0.0.1_{}.downstream_global_cx_overflow",
        envoy.listen.port()
    );
    assert_eq!(envoy.stat(&listener), 1);
    drop(held);
}
}

packaged! {
fn client_addresses_with_a_zone_id_are_refused(packaging: Packaging) {
    let _serial = serial();
    // The filter reads the client from X-Forwarded-For (two hops: the test client and
    // Envoy's own entry), so the address text reaches the core as sent.
    let config = r#"{
      "sources": {"allow": ["2001:db8::/32"], "client_address": {"from": "x-forwarded-for", "trusted_hops": 2}},
      "signature": {"required": false}
    }"#;
    let origin = Origin::start();
    let envoy = Envoy::start(packaging, "zone-id", Some(config), &origin, &[]);
    let case = case("unsigned-cidr-v6");
    let deliver = |client: &str| {
        origin.clear();
        let r = post(&envoy, &request_headers(&case, now(), client), &case.body);
        (r, origin_requests(&origin, 1).len())
    };
    let (r, received) = deliver("[2001:db8::5]:443");
    assert_eq!((r.status, received), (200, 1), "{}", r.text());
    for zoned in [
        "[2001:db8::5%1]:443",
        "2001:db8::5%1",
        "[2001:db8::5%25eth0]:443",
    ] {
        let (r, received) = deliver(zoned);
        assert_eq!((r.status, received), (403, 0), "{zoned}: {}", r.text());
        let doc: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(doc["errors"][0]["code"], "source_unknown", "{zoned}");
    }
}
}

/// Sends raw request bytes and returns the status line.
fn send_raw(addr: SocketAddr, raw: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(raw).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn every_shipped_plugin_configuration_is_the_same() {
    let envoy: Value =
        serde_json::from_str(&block_under(&shipped_config(Packaging::Wasm), "value: |")).unwrap();
    let native: Value =
        serde_json::from_str(&block_under(&shipped_config(Packaging::Native), "value: |")).unwrap();
    assert_eq!(
        envoy, native,
        "envoy/envoy.yaml and envoy/envoy-native.yaml configure different policies"
    );
    let istio_text =
        std::fs::read_to_string(workspace_root().join("envoy/istio-wasmplugin.yaml")).unwrap();
    let istio: Value = serde_json::from_str(&block_under(&istio_text, "pluginConfig:"))
        .expect("envoy/istio-wasmplugin.yaml: pluginConfig must stay JSON (YAML accepts it)");
    assert_eq!(
        envoy, istio,
        "envoy/envoy.yaml and envoy/istio-wasmplugin.yaml configure different policies"
    );
    let env = |name: &str| (name == "PERSONA_WEBHOOK_SECRET").then(|| SECRET.to_string());
    let options = persona_edge_core::LoadOptions {
        env: &env,
        ..Default::default()
    };
    let policy = Policy::load(istio.to_string().as_bytes(), &options).unwrap();
    assert!(!policy.resigns());
    for key in [
        "failStrategy: FAIL_CLOSE",
        "phase: AUTHN",
        "valueFrom: HOST",
    ] {
        assert!(
            istio_text.contains(key),
            "envoy/istio-wasmplugin.yaml lost {key:?}"
        );
    }
}

packaged! {
fn header_values_that_are_not_utf8_do_not_break_the_filter(packaging: Packaging) {
    let _serial = serial();
    let case = &case("inquiry-approved-strict");
    let (origin, envoy) = envoy_with_fixture(packaging, "latin1", "strict.json");
    let now = now();
    // Latin-1 bytes in header values (HTTP/1.1 allows obs-text). The SDK's string
    // header reader would panic on them and kill the VM; the filter reads bytes.
    let raw = |extra: &[u8], signature: &[u8]| {
        let mut raw =
            b"POST /webhooks/persona HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
        for (n, v) in request_headers(case, now, &case.client) {
            if n != "Persona-Signature" {
                raw.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
        }
        raw.extend_from_slice(b"Persona-Signature: ");
        raw.extend_from_slice(signature);
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(extra);
        raw.extend_from_slice(format!("Content-Length: {}\r\n\r\n", case.body.len()).as_bytes());
        raw.extend_from_slice(&case.body);
        raw
    };
    let wrong = signature_header("wbhsec_not_the_one", now, &case.body);
    let status = send_raw(envoy.listen, &raw(b"X-Note: caf\xe9\r\n", wrong.as_bytes()));
    assert!(
        status.starts_with("HTTP/1.1 401"),
        "{status}\n{}",
        envoy.log()
    );
    let mut latin1_signature = format!("t={now},v1=").into_bytes();
    latin1_signature.extend_from_slice(&[0xe9; 64]);
    let status = send_raw(envoy.listen, &raw(b"", &latin1_signature));
    assert!(
        status.starts_with("HTTP/1.1 401"),
        "{status}\n{}",
        envoy.log()
    );
    assert!(origin.requests().is_empty());
    // The VM is still alive for the next delivery.
    let r = send_case(&envoy, case, now, Framing::ContentLength);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), envoy.log());
    assert!(!envoy.log().contains("panic"), "{}", envoy.log());
    let counters = envoy.counters();
    assert_eq!(
        (
            counters["rejected.signature_mismatch"],
            counters["rejected.signature_malformed"]
        ),
        (1, 1)
    );
}
}

#[test]
fn the_filter_size_is_reported() {
    let wasm = wasm_path();
    let size = std::fs::metadata(&wasm).unwrap().len();
    println!(
        "persona_edge_filter.wasm: {size} bytes ({} KiB)",
        size / 1024
    );
    // A regression guard, not the target (BENCHMARKS.md, "Filter .wasm ≤ 150 KB"): the
    // shipped filter (after wasm-opt) was 201 KB before the signature-group cap, the
    // Content-Encoding and `?type=` checks and their messages, 205 KB after; 217 KB
    // once the filter drove the core's Exchange (its duplicate-suppression answers and
    // report texts are linked in); 223 KB once it kept duplicate suppression's records
    // in shared data (the claim, the record format).
    assert!(size < 230 * 1024, "the filter grew to {size} bytes");
    let native = native_module_path();
    println!(
        "libpersona_edge_filter.so: {} bytes",
        std::fs::metadata(&native).unwrap().len()
    );
}

packaged! {
fn resigned_deliveries_verify_at_the_origin_with_its_secret(packaging: Packaging) {
    let _serial = serial();
    // The fixture configuration re-signs with `origin_secret_for_tests`: the origin,
    // which holds only that secret, verifies every forwarded body, rewritten or not.
    let (origin, envoy) = envoy_with_fixture(packaging, "resign", "camel-resign.json");
    let cases: Vec<_> = cases()
        .into_iter()
        .filter(|c| c.config == "camel-resign.json" && c.expect.action == "forward")
        .collect();
    assert!(!cases.is_empty());
    for case in &cases {
        origin.clear();
        let now = now();
        let r = send_case(&envoy, case, now, Framing::Chunked(512));
        assert_eq!(r.status, 200, "{}: {}", case.name, r.text());
        let got = origin_requests(&origin, 1);
        assert_eq!(got.len(), 1, "{}", case.name);
        let signatures = headers_named(&got[0].headers, "persona-signature");
        assert_eq!(signatures.len(), 1, "{}: {signatures:?}", case.name);
        assert_resigned(&case.name, signatures[0], &got[0].body, now);
        // Persona's own signature does not verify the rewritten body: it was replaced.
        assert_ne!(Some(signatures[0]), case.signature_at(now).as_deref());
    }
    assert_eq!(envoy.counters()["forwarded"], cases.len() as u64);
}
}

/// The test-only module (cargo feature `panic-test`) panics in the hook named by the
/// request header `persona-edge-test-panic`. Each panic is caught at the FFI boundary:
/// answered 500 `host_error` (or, after the origin answered, replaced by it), logged,
/// counted, and the next delivery on the same Envoy is served.
#[test]
fn a_panic_in_the_native_module_never_reaches_envoy() {
    let _serial = serial();
    let module = panic_test_module_path();
    let origin = Origin::start();
    let rendered = Rendered::write(
        Packaging::Native,
        "envoy-panic",
        &origin,
        Some(&config_text("strict.json")),
        None,
    );
    let mut cmd = rendered.command(&[]);
    cmd.envs(Packaging::Native.module_env(&module));
    let envoy = Envoy::launch(
        Packaging::Native,
        "panic",
        cmd,
        rendered.dir,
        rendered.listen_port,
        rendered.admin_port,
    );
    let case = case("inquiry-approved-strict");
    for (hook, reaches_origin) in [
        ("request headers", false),
        ("request body", false),
        ("response headers", true),
    ] {
        origin.clear();
        let now = now();
        let mut headers = request_headers(&case, now, &case.client);
        headers.push(("persona-edge-test-panic".into(), hook.into()));
        let r = post(&envoy, &headers, &case.body);
        assert_eq!(r.status, 500, "{hook}: {}", r.text());
        let doc: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(doc["errors"][0]["code"], "host_error", "{hook}");
        assert_eq!(
            origin_requests(&origin, 1).len(),
            usize::from(reaches_origin)
        );
        assert!(
            envoy
                .log()
                .contains(&format!("host call failed: the filter panicked in {hook}")),
            "{hook}:\n{}",
            envoy.log()
        );
        // Envoy is alive and the next delivery goes through.
        origin.clear();
        let r = send_case(&envoy, &case, now, Framing::ContentLength);
        assert_eq!(r.status, 200, "after {hook}: {}", r.text());
        assert_eq!(origin_requests(&origin, 1).len(), 1);
    }
    assert_eq!(envoy.counters()["host_errors"], 3);
    assert_eq!(envoy.counters()["forwarded"], 3 + 1);
}

/// A module Envoy cannot find refuses the configuration: Envoy does not start.
#[test]
fn a_missing_native_module_refuses_the_configuration() {
    let _serial = serial();
    let origin = Origin::start();
    let rendered = Rendered::write(
        Packaging::Native,
        "envoy-no-module",
        &origin,
        Some(&config_text("strict.json")),
        None,
    );
    let empty = tempdir("no-module");
    let mut cmd = rendered.command(&[]);
    cmd.env("ENVOY_DYNAMIC_MODULES_SEARCH_PATH", &empty);
    let log = Envoy::refused_by("no-module", &rendered, cmd);
    assert!(log.contains("libpersona_edge_filter.so"), "{log}");
    assert!(log.contains("Failed to load dynamic module"), "{log}");
}
