//! Privacy by default, checked through the core library: the `personal-data` preset
//! against the hand-written inventory of every example event
//! (`tests/fixtures/personal-data-inventory.json`), in every inflection; and every
//! configuration the repository ships or shows (envoy/envoy.yaml, the Istio manifest,
//! wrangler.toml, the `make run` demo, each ```json block of README.md and docs/)
//! against what it claims to strip. tests/tests/envoy.rs and tests/tests/worker.rs
//! send the same events through the real Envoy and `wrangler dev` with the shipped
//! files. The vocabulary (inventory, claims, markers) is in `persona_edge_tests::privacy`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use persona_edge_core::PERSONAL_DATA;
use persona_edge_tests::privacy::{
    Claim, Configuration, DocItem, Inventory, check_configuration, check_delivery, deliver,
    doc_files, doc_items, example_deliveries, inventory, load, preset_categories,
    shipped_configurations, unseen_entries,
};
use persona_edge_tests::{cli_binary, fixtures_dir, workspace_root};
use serde_json::Value;

const PRESET_ONLY: &str = r#"{"signature":{"required":false},"blocklist_preset":"personal-data"}"#;

fn assert_none(problems: &[String], what: &str) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn everything(inventory: &Inventory) -> Claim {
    Claim::parse("personal-data", inventory).unwrap()
}

/// The preset, run over `body` (an example event), with its findings.
fn through_the_preset(
    inventory: &Inventory,
    config: &str,
    file: &str,
    label: &str,
    body: &[u8],
) -> persona_edge_tests::privacy::Findings {
    let original: Value = serde_json::from_slice(body).unwrap();
    let forwarded = deliver(config, body)
        .unwrap_or_else(|e| panic!("{label}: {e}"))
        .unwrap_or_else(|| panic!("{label}: acknowledged, not forwarded"));
    let forwarded: Value = serde_json::from_slice(&forwarded).unwrap();
    check_delivery(
        inventory,
        file,
        label,
        &original,
        Some(&forwarded),
        &everything(inventory),
        true,
    )
}

#[test]
fn every_event_fixture_is_an_inventoried_example_or_a_named_other() {
    let inventory = inventory();
    let mut listed: BTreeSet<String> = inventory.not_examples.clone();
    for (file, event) in &inventory.events {
        listed.insert(file.clone());
        listed.extend(event.inflections.iter().cloned());
    }
    let present: BTreeSet<String> = std::fs::read_dir(fixtures_dir().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        present, listed,
        "every event in tests/fixtures/events is an example classified in the inventory, or named in its not_examples"
    );
    // The inventory speaks the preset's categories, no more, no fewer.
    let categories: Vec<&str> = inventory.categories.keys().map(String::as_str).collect();
    let mut preset = preset_categories();
    preset.sort_unstable();
    assert_eq!(categories, preset);
}

#[test]
fn the_preset_strips_every_personal_field_and_keeps_every_other_in_every_inflection() {
    let inventory = inventory();
    let mut problems = Vec::new();
    let mut seen: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    let deliveries = example_deliveries(&inventory);
    assert!(deliveries.len() >= 30, "{} deliveries", deliveries.len());
    for (label, file, body) in &deliveries {
        let findings = through_the_preset(&inventory, PRESET_ONLY, file, label, body);
        problems.extend(findings.problems);
        seen.entry(file.clone()).or_default().extend(findings.seen);
    }
    for (file, seen) in &seen {
        problems.extend(unseen_entries(&inventory, file, seen));
    }
    assert_none(
        &problems,
        "the personal-data preset over every example event",
    );
}

#[test]
fn every_shipped_configuration_strips_what_it_claims() {
    let inventory = inventory();
    let shipped = shipped_configurations(&inventory);
    let labels: Vec<&str> = shipped.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "envoy/envoy.yaml",
            "envoy/envoy-native.yaml",
            "envoy/istio-wasmplugin.yaml",
            "wrangler.toml",
            "make run",
            "make run-worker"
        ]
    );
    let mut problems = Vec::new();
    for config in &shipped {
        // Privacy by default: every shipped configuration claims the whole preset
        // (less the keys it exempts, each justified in a comment beside it).
        let all: BTreeSet<String> = preset_categories().into_iter().map(String::from).collect();
        if config.claim.categories != all {
            problems.push(format!(
                "{}: claims {:?}, not the whole personal-data preset",
                config.label, config.claim.categories
            ));
        }
        problems.extend(check_configuration(&inventory, config));
    }
    assert_none(&problems, "shipped configurations");
}

#[test]
fn every_documented_configuration_strips_what_it_claims() {
    let inventory = inventory();
    let shipped: BTreeMap<String, Configuration> = shipped_configurations(&inventory)
        .into_iter()
        .map(|c| (c.label.clone(), c))
        .collect();
    let mut problems = Vec::new();
    let (mut configurations, mut prose) = (0, Vec::new());
    for file in doc_files() {
        for item in doc_items(&file, &inventory) {
            match item {
                DocItem::Unmarked { label } => problems.push(format!(
                    "{label}: a ```json block without a marker: put `<!-- persona-edge: strips … -->` (or `not a configuration`) on the line before it"
                )),
                DocItem::NotConfiguration { label, text } => {
                    if load(&text).is_ok() {
                        problems.push(format!(
                            "{label}: marked `not a configuration`, but it loads as one"
                        ));
                    }
                }
                DocItem::Configuration(config) => {
                    configurations += 1;
                    problems.extend(check_configuration(&inventory, &config));
                }
                DocItem::Prose {
                    label,
                    target,
                    claim,
                    paragraph,
                } => {
                    prose.push((file.clone(), target.clone()));
                    let Some(config) = shipped.get(&target) else {
                        problems.push(format!(
                            "{label}: {target:?} is not a shipped configuration ({:?})",
                            shipped.keys().collect::<Vec<_>>()
                        ));
                        continue;
                    };
                    // The prose claims no more than the configuration's own claim,
                    // which every_shipped_configuration_strips_what_it_claims checks.
                    for category in claim.categories.difference(&config.claim.categories) {
                        problems.push(format!(
                            "{label}: the prose claims {category}, which {target} does not strip"
                        ));
                    }
                    for key in config.claim.except.difference(&claim.except) {
                        problems.push(format!(
                            "{label}: {target} keeps {key}; the prose must say `except {key}`"
                        ));
                    }
                    // And it says, in words, every category it claims.
                    let text = paragraph.to_lowercase();
                    for category in &claim.categories {
                        let words = &inventory.categories[category];
                        if !words.iter().any(|w| text.contains(&w.to_lowercase())) {
                            problems.push(format!(
                                "{label}: claims {category} but the paragraph does not say {words:?}"
                            ));
                        }
                    }
                }
            }
        }
    }
    if configurations < 2 {
        problems.push(format!(
            "only {configurations} documented configuration(s) found: README.md and docs/configuration.md each show one"
        ));
    }
    // The sentences that describe what the demos and the shipped Worker strip are
    // marked, so they are checked (a marker that goes missing fails here).
    for expected in [
        ("README.md", "make run"),
        ("docs/envoy.md", "make run"),
        ("docs/worker.md", "make run-worker"),
        ("docs/worker.md", "wrangler.toml"),
    ] {
        if !prose
            .iter()
            .any(|(f, t)| (f.as_str(), t.as_str()) == expected)
        {
            problems.push(format!(
                "{}: the prose about {} lost its `<!-- persona-edge: {} strips … -->` marker",
                expected.0, expected.1, expected.1
            ));
        }
    }
    assert_none(&problems, "documented configurations");
}

/// The checks above can fail: a leak, a personal value moved elsewhere, a field that
/// is not personal removed, an attribute the inventory does not know, and an
/// inventory entry the event does not have.
#[test]
fn the_check_catches_leaks_unclassified_keys_and_a_stale_inventory() {
    let inventory = inventory();
    let file = "inquiry-approved.json";
    let body = std::fs::read(fixtures_dir().join("events").join(file)).unwrap();
    assert_none(
        &through_the_preset(&inventory, PRESET_ONLY, file, file, &body).problems,
        "the preset",
    );

    // A preset without its URL entries (as if removed): the ID images' links leak.
    let exempt = r#"{"signature":{"required":false},"blocklist_preset":"personal-data","blocklist":["!*-url"]}"#;
    let problems = through_the_preset(&inventory, exempt, file, file, &body).problems;
    let joined = problems.join("\n");
    for leak in [
        "verification/government-id attributes/front-photo-url (file-urls) reached the origin",
        "verification/selfie attributes/video-url (file-urls) reached the origin",
    ] {
        assert!(joined.contains(leak), "missing {leak:?} in:\n{joined}");
    }
    // ...also through the configuration check, which a claim drives.
    let claimed = Configuration {
        label: "exempting *-url".into(),
        text: exempt.into(),
        claim: everything(&inventory),
    };
    assert!(
        check_configuration(&inventory, &claimed)
            .iter()
            .any(|p| p.contains("front-photo-url")),
    );

    // A personal value copied into a field that stays, whole or inside a sentence.
    let original: Value = serde_json::from_slice(&body).unwrap();
    let mut forwarded: Value =
        serde_json::from_slice(&deliver(PRESET_ONLY, &body).unwrap().unwrap()).unwrap();
    let attributes = &mut forwarded["data"]["attributes"]["payload"]["data"]["attributes"];
    attributes["reference-id"] = Value::from("jane@doe.com");
    attributes["note"] = Value::from("called 123 MAIN ST back");
    let problems = check_delivery(
        &inventory,
        file,
        file,
        &original,
        Some(&forwarded),
        &everything(&inventory),
        false,
    )
    .problems
    .join("\n");
    assert!(
        problems.contains("\"jane@doe.com\" reached the origin"),
        "{problems}"
    );
    assert!(
        problems.contains("\"123 MAIN ST\" reached the origin"),
        "{problems}"
    );

    // A field that is not personal, removed: the preset must keep it.
    let too_much = r#"{"signature":{"required":false},"blocklist_preset":"personal-data","blocklist":["status"]}"#;
    let problems = through_the_preset(&inventory, too_much, file, file, &body)
        .problems
        .join("\n");
    assert!(
        problems.contains("inquiry attributes/status is not personal but was removed"),
        "{problems}"
    );

    // An attribute the inventory does not classify, in a copy of the event.
    let mut copy = original.clone();
    copy["data"]["attributes"]["payload"]["included"][0]["attributes"]["favourite-colour"] =
        Value::from("blue");
    let copy = serde_json::to_vec(&copy).unwrap();
    let findings = through_the_preset(&inventory, PRESET_ONLY, file, file, &copy);
    assert!(
        findings.problems.iter().any(|p| p.contains(
            "inquiry-session attributes/favourite-colour is not classified in the inventory"
        )),
        "{:?}",
        findings.problems
    );

    // An inventory entry the event lost.
    let mut copy = original.clone();
    copy["data"]["attributes"]["payload"]["data"]["attributes"]
        .as_object_mut()
        .unwrap()
        .remove("creator");
    let copy = serde_json::to_vec(&copy).unwrap();
    let findings = through_the_preset(&inventory, PRESET_ONLY, file, file, &copy);
    assert!(findings.problems.is_empty(), "{:?}", findings.problems);
    let stale = unseen_entries(&inventory, file, &findings.seen);
    assert_eq!(
        stale,
        [
            "inquiry-approved.json: the inventory lists inquiry attributes/creator, which the event does not have"
        ]
    );
}

#[test]
fn the_docs_list_what_the_preset_covers() {
    let inventory = inventory();
    let reference =
        std::fs::read_to_string(workspace_root().join("docs/configuration.md")).unwrap();
    let start = reference
        .find("### `blocklist_preset`")
        .expect("docs/configuration.md has a `blocklist_preset` section");
    let section = &reference[start..];
    let section = &section[..section[4..].find("\n### ").map_or(section.len(), |i| i + 4)];
    for group in PERSONAL_DATA.groups {
        assert!(
            section.contains(&format!("`{}`", group.category)),
            "docs/configuration.md, blocklist_preset: category {} is not listed",
            group.category
        );
        for entry in group.entries {
            assert!(
                section.contains(&format!("`{entry}`")),
                "docs/configuration.md, blocklist_preset: entry {entry} is not listed"
            );
        }
    }
    let security = std::fs::read_to_string(workspace_root().join("SECURITY.md"))
        .unwrap()
        .to_lowercase();
    assert!(security.contains("persona-edge preset personal-data"));
    for (category, words) in &inventory.categories {
        assert!(
            words.iter().any(|w| security.contains(&w.to_lowercase())),
            "SECURITY.md does not say what the preset covers of {category} ({words:?})"
        );
    }
}

#[test]
fn the_preset_command_prints_the_entries() {
    let out = Command::new(cli_binary())
        .args(["preset", "personal-data"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let entries: Vec<String> = PERSONAL_DATA.entries().map(String::from).collect();
    assert_eq!(printed, entries);
    // Pasted back as a blocklist, the printed entries are the preset.
    let pasted = serde_json::json!({"signature": {"required": false}, "blocklist": printed});
    let inventory = inventory();
    let body = std::fs::read(fixtures_dir().join("events/inquiry-completed-large.json")).unwrap();
    assert_eq!(
        deliver(&pasted.to_string(), &body).unwrap(),
        deliver(PRESET_ONLY, &body).unwrap()
    );
    assert!(
        inventory
            .events
            .contains_key("inquiry-completed-large.json")
    );

    let out = Command::new(cli_binary())
        .args(["preset", "pii"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"pii\" is not a preset") && stderr.contains("personal-data"),
        "{stderr}"
    );
}
