//! Every shared case through the native core (`persona-edge process`): the documented
//! outcome, the invariants, and the golden outputs in `tests/fixtures/expected/` that
//! the Envoy and Worker runners are also compared with.
//!
//! `UPDATE_GOLDEN=1 cargo test -p persona-edge-tests --test core` rewrites the golden
//! files; review the diff before committing it.

use persona_edge_core::signature_header;
use persona_edge_tests::{Case, CliOutput, ORIGIN_SECRET, cases, cli_process, fixtures_dir};
use serde_json::Value;

/// A fixed clock, so golden outputs (re-signatures) are stable.
const NOW: u64 = 1_700_000_000;

fn check_outcome(case: &Case, out: &CliOutput) {
    let e = &case.expect;
    assert_eq!(
        out.action, e.action,
        "{}: action ({})",
        case.name, out.decision
    );
    assert_eq!(out.status, e.status, "{}: status", case.name);
    assert_eq!(out.code, e.code, "{}: code", case.name);
    if let Some(decision) = &e.decision {
        assert_eq!(&out.decision, decision, "{}: shadow decision", case.name);
        assert_eq!(
            out.headers.get("x-persona-edge-decision"),
            Some(decision),
            "{}",
            case.name
        );
    }
    match out.action.as_str() {
        "forward" => {
            case.check_forwarded_body(&out.body);
            // The forwarded body is JSON whenever the original was.
            if serde_json::from_slice::<Value>(&case.body).is_ok() {
                serde_json::from_slice::<Value>(&out.body).unwrap_or_else(|err| {
                    panic!("{}: forwarded body is not JSON: {err}", case.name)
                });
            }
        }
        "reject" => {
            assert_eq!(
                out.headers.get("content-type").map(String::as_str),
                Some("application/vnd.api+json")
            );
            let doc: Value = serde_json::from_slice(&out.body).unwrap();
            let error = &doc["errors"][0];
            assert_eq!(
                error["status"],
                Value::String(e.status.unwrap().to_string()),
                "{}",
                case.name
            );
            assert_eq!(error["code"].as_str(), e.code.as_deref(), "{}", case.name);
            assert!(
                error["title"].is_string() && error["detail"].is_string(),
                "{}",
                case.name
            );
        }
        "acknowledge" => assert!(out.body.is_empty(), "{}: 204 has no body", case.name),
        other => panic!("{}: unknown action {other}", case.name),
    }
}

#[test]
fn every_case_has_its_documented_outcome_and_matches_golden() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "the shared fixture set shrank to {}",
        cases.len()
    );
    let mut mismatched = Vec::new();
    for case in &cases {
        let out = cli_process(case, NOW);
        check_outcome(case, &out);
        let golden = fixtures_dir()
            .join("expected")
            .join(format!("{}.json", case.name));
        let rendered = serde_json::to_string_pretty(&out.raw).unwrap() + "\n";
        if update {
            std::fs::write(&golden, &rendered).unwrap();
        } else {
            let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run with UPDATE_GOLDEN=1 and review",
                    golden.display()
                )
            });
            // Compared as JSON values: object key order in this rendering depends on
            // serde_json's `preserve_order` feature, which other workspace members turn
            // on. Every string, the forwarded body included, still compares exactly.
            let want: Value = serde_json::from_str(&want).unwrap();
            if want != out.raw {
                mismatched.push(case.name.clone());
            }
        }
    }
    assert!(
        mismatched.is_empty(),
        "output differs from the golden files for: {mismatched:?}"
    );
}

#[test]
fn header_changes_follow_the_configuration() {
    for case in cases() {
        let out = cli_process(&case, NOW);
        if out.action != "forward" || case.config == "shadow.json" {
            continue;
        }
        let changes_body = !matches!(case.config.as_str(), "passthrough.json");
        let removes = |h: &str| out.remove_headers.iter().any(|r| r == h);
        assert_eq!(removes("persona-signature"), changes_body, "{}", case.name);
        assert_eq!(removes("content-length"), changes_body, "{}", case.name);
        // Client x-persona-* headers go, `_` spelled like `-` (how CGI reads them).
        for (name, _) in &case.extra_headers {
            let lower = name.to_ascii_lowercase();
            if lower.replace('_', "-").starts_with("x-persona-") {
                assert!(removes(&lower), "{}: spoofed {name} kept", case.name);
            }
        }
        let routing = case.config != "snake.json";
        assert_eq!(
            out.headers.contains_key("x-persona-event-id"),
            routing,
            "{}",
            case.name
        );
        if routing {
            assert_eq!(
                out.headers["x-persona-event-id"],
                out.metadata["event_id"].as_str().unwrap()
            );
            assert_eq!(out.headers["x-persona-attempt"], "1");
        }
        if case.config == "camel-resign.json" {
            assert_eq!(
                out.headers.get("persona-signature"),
                Some(&signature_header(ORIGIN_SECRET, NOW, &out.body)),
                "{}: the re-signature must verify with the origin's secret",
                case.name
            );
        } else {
            assert!(
                !out.headers.contains_key("persona-signature"),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn shadow_forwards_the_original_untouched() {
    for case in cases().iter().filter(|c| c.config == "shadow.json") {
        let out = cli_process(case, NOW);
        assert_eq!(out.action, "forward", "{}", case.name);
        assert_eq!(out.body, case.body, "{}", case.name);
        assert!(out.remove_headers.is_empty(), "{}", case.name);
    }
}
