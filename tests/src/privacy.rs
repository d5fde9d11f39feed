//! What "personal data the origin does not need never reaches it" means, checkably:
//! the personal-data inventory (`tests/fixtures/personal-data-inventory.json`, every
//! attribute of every example event classified by hand), the configurations the
//! repository ships or shows with what each claims to strip, and the check that a
//! forwarded body keeps none of the personal fields its configuration claims to strip.
//!
//! A claim is written next to each configuration, in the same words everywhere:
//! `persona-edge: strips personal-data` (every category of the preset),
//! `persona-edge: strips names, birthdates` (categories of the inventory), optionally
//! followed by `except KEY, KEY` (keys the configuration exempts with `!`). In Markdown
//! it is an HTML comment right before the ```json block; in envoy.yaml, the Istio
//! manifest, wrangler.toml and the demo script, a `#` comment line. A Markdown
//! comment `persona-edge: TARGET strips …` before a paragraph ties that paragraph's
//! prose to a shipped configuration (`make run`, `envoy/envoy.yaml`, …): the paragraph
//! must name every category it claims, and the configuration must strip them.

use std::collections::{BTreeMap, BTreeSet};

use persona_edge_core::{
    LoadOptions, Outcome, PERSONAL_DATA, Policy, RequestHead, signature_header,
};
use serde_json::Value;

use crate::envoy::block_under;
use crate::{fixtures_dir, workspace_root};

/// The secret every `*_env` variable of a configuration under test resolves to.
pub const TEST_SECRET: &str = "wbhsec_privacy_check";
/// A Persona US address, which every shipped and documented configuration allows.
pub const PERSONA_ADDRESS: &str = "35.232.44.140";
const NOW: u64 = 1_700_000_000;

// ---------------------------------------------------------------------------
// The inventory

/// How the inventory classifies one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// Personal data of this category.
    Personal(String),
    NotPersonal,
}

/// One example event's fields: by resource type, by path inside `attributes` (each
/// step in [`norm`] form, joined by `/`).
#[derive(Debug, Default)]
pub struct EventInventory {
    /// Other files holding the same event in another inflection.
    pub inflections: Vec<String>,
    pub resources: BTreeMap<String, BTreeMap<String, Class>>,
}

#[derive(Debug)]
pub struct Inventory {
    /// Category → the words prose may use for it.
    pub categories: BTreeMap<String, Vec<String>>,
    /// The event envelope's own attributes (`name`, `created-at`, `payload`).
    pub envelope: BTreeMap<String, Class>,
    /// Event fixtures that are not Persona examples (hostile or broken on purpose).
    pub not_examples: BTreeSet<String>,
    pub events: BTreeMap<String, EventInventory>,
}

fn classify(text: &str, categories: &BTreeMap<String, Vec<String>>, at: &str) -> Class {
    let (class, why) = text
        .split_once(": ")
        .unwrap_or_else(|| panic!("{at}: {text:?} is not \"CATEGORY: why\""));
    assert!(!why.trim().is_empty(), "{at}: no why");
    if class == "not personal" {
        Class::NotPersonal
    } else {
        assert!(
            categories.contains_key(class),
            "{at}: {class:?} is not a category of the inventory"
        );
        Class::Personal(class.to_string())
    }
}

fn norm_path(path: &str) -> String {
    path.split('/').map(norm).collect::<Vec<_>>().join("/")
}

/// Reads and checks the inventory's own form.
pub fn inventory() -> Inventory {
    let path = fixtures_dir().join("personal-data-inventory.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut categories = BTreeMap::new();
    for (name, c) in doc["categories"].as_object().unwrap() {
        assert!(c["covers"].is_string(), "categories.{name}.covers");
        let prose: Vec<String> = c["prose"]
            .as_array()
            .unwrap_or_else(|| panic!("categories.{name}.prose"))
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect();
        assert!(!prose.is_empty(), "categories.{name}.prose");
        categories.insert(name.clone(), prose);
    }
    let envelope = doc["envelope"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let class = classify(v.as_str().unwrap(), &categories, &format!("envelope.{k}"));
            (norm(k), class)
        })
        .collect();
    let not_examples = doc["not_examples"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut events = BTreeMap::new();
    for (file, e) in doc["events"].as_object().unwrap() {
        let mut event = EventInventory {
            inflections: e["inflections"]
                .as_array()
                .map(|a| a.iter().map(|f| f.as_str().unwrap().to_string()).collect())
                .unwrap_or_default(),
            ..EventInventory::default()
        };
        for (ty, fields) in e["resources"].as_object().unwrap() {
            let mut classes = BTreeMap::new();
            for (p, text) in fields.as_object().unwrap() {
                let at = format!("events.{file}.{ty}.{p}");
                let class = classify(text.as_str().unwrap(), &categories, &at);
                assert!(
                    classes.insert(norm_path(p), class).is_none(),
                    "{at}: listed twice (keys compare inflection-insensitively)"
                );
            }
            event.resources.insert(ty.clone(), classes);
        }
        events.insert(file.clone(), event);
    }
    Inventory {
        categories,
        envelope,
        not_examples,
        events,
    }
}

/// Every category the preset covers (its groups, in order).
pub fn preset_categories() -> Vec<&'static str> {
    PERSONAL_DATA.groups.iter().map(|g| g.category).collect()
}

// ---------------------------------------------------------------------------
// Keys in any inflection

/// A key's inflection-insensitive form, as the blocklist compares keys: words split at
/// `-`/`_`, at lower-to-upper changes (the last capital of an acronym starts the next
/// word) and at letter/digit changes, lower-cased and joined by `-`.
pub fn norm(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '-' || c == '_' {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            continue;
        }
        if let Some(&prev) = word.chars().last().as_ref() {
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let boundary = (prev.is_ascii_lowercase() || prev.is_ascii_digit())
                && c.is_ascii_uppercase()
                || prev.is_ascii_uppercase() && c.is_ascii_uppercase() && next_lower
                || prev.is_ascii_alphabetic() && c.is_ascii_digit()
                || prev.is_ascii_digit() && c.is_ascii_alphabetic();
            if boundary {
                words.push(std::mem::take(&mut word));
            }
        }
        word.push(c.to_ascii_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words.join("-")
}

#[derive(Clone, Copy, Debug)]
pub enum Style {
    Kebab,
    Camel,
    Snake,
}

/// `key` written in `style` (digits are words: `address-street-1` → `addressStreet1`).
pub fn write_key(key: &str, style: Style) -> String {
    let form = norm(key);
    let words: Vec<&str> = form.split('-').collect();
    match style {
        Style::Kebab => words.join("-"),
        Style::Snake => words.join("_"),
        Style::Camel => words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let mut c = w.chars();
                match (i, c.next()) {
                    (0, _) | (_, None) => w.to_string(),
                    (_, Some(first)) => first.to_ascii_uppercase().to_string() + c.as_str(),
                }
            })
            .collect(),
    }
}

/// `value` with every object key, the envelope's too, written in `style`, as a
/// webhook with that inflection setting sends it.
pub fn inflect(value: &Value, style: Style) -> Value {
    match value {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (write_key(k, style), inflect(v, style)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| inflect(v, style)).collect()),
        v => v.clone(),
    }
}

/// The member of an object whose key has the form `form`.
pub fn member<'a>(value: &'a Value, form: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find(|(k, _)| norm(k) == form)
        .map(|(_, v)| v)
}

/// Every example event in every inflection: (label, event file, body). The event
/// file names its inventory entry.
pub fn example_deliveries(inventory: &Inventory) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    for (file, event) in &inventory.events {
        let body = std::fs::read(fixtures_dir().join("events").join(file)).unwrap();
        let doc: Value = serde_json::from_slice(&body).unwrap();
        out.push((file.clone(), file.clone(), body));
        for other in &event.inflections {
            let body = std::fs::read(fixtures_dir().join("events").join(other)).unwrap();
            out.push((other.clone(), file.clone(), body));
        }
        for style in [Style::Kebab, Style::Camel, Style::Snake] {
            let body = serde_json::to_vec(&inflect(&doc, style)).unwrap();
            out.push((format!("{file} in {style:?}"), file.clone(), body));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Claims

/// What a configuration claims to strip.
#[derive(Clone, Debug)]
pub struct Claim {
    pub categories: BTreeSet<String>,
    /// Keys (in [`norm`] form) the configuration exempts with `!`, which may stay.
    pub except: BTreeSet<String>,
}

impl Claim {
    /// `personal-data`, or categories separated by commas, then optionally
    /// `except KEY, KEY`.
    pub fn parse(text: &str, inventory: &Inventory) -> Result<Claim, String> {
        let (items, except) = match text.split_once(" except ") {
            Some((items, except)) => (items, Some(except)),
            None => (text, None),
        };
        let mut categories = BTreeSet::new();
        for item in items.split(',').map(str::trim) {
            if item == "personal-data" {
                categories.extend(preset_categories().into_iter().map(String::from));
            } else if inventory.categories.contains_key(item) {
                categories.insert(item.to_string());
            } else {
                return Err(format!(
                    "{item:?} is neither personal-data nor a category of the inventory ({})",
                    inventory
                        .categories
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        let except = except
            .map(|e| e.split(',').map(|k| norm(k.trim())).collect())
            .unwrap_or_default();
        Ok(Claim { categories, except })
    }

    fn strips(&self, category: &str, key_form: &str) -> bool {
        self.categories.contains(category) && !self.except.contains(key_form)
    }
}

/// The text after `persona-edge: ` on a marker line (`<!-- … -->` or `# …`).
pub fn marker(line: &str) -> Option<&str> {
    let line = line.trim();
    let rest = line
        .strip_prefix("<!--")
        .and_then(|l| l.strip_suffix("-->"))
        .or_else(|| line.strip_prefix('#'))?;
    rest.trim().strip_prefix("persona-edge:").map(str::trim)
}

// ---------------------------------------------------------------------------
// Checking one forwarded body

/// What checking found: problems, and which inventory entries the event has.
#[derive(Debug, Default)]
pub struct Findings {
    pub problems: Vec<String>,
    pub seen: BTreeSet<(String, String)>,
}

struct Walk<'a> {
    event: &'a EventInventory,
    claim: &'a Claim,
    keep_not_personal: bool,
    label: &'a str,
    findings: Findings,
    /// The values of personal fields the claim covers (their whole subtrees).
    claimed: Vec<&'a Value>,
}

fn is_container(v: &Value) -> bool {
    v.is_object() || v.is_array()
}

impl<'a> Walk<'a> {
    fn attributes(
        &mut self,
        ty: &str,
        original: &'a Value,
        forwarded: Option<&Value>,
        path: &mut Vec<String>,
    ) {
        match original {
            Value::Object(m) => {
                for (key, value) in m {
                    let form = norm(key);
                    path.push(form.clone());
                    let at = path.join("/");
                    let kept = forwarded.and_then(|f| member(f, &form));
                    self.findings.seen.insert((ty.to_string(), at.clone()));
                    match self.event.resources.get(ty).and_then(|r| r.get(&at)) {
                        None => self.findings.problems.push(format!(
                            "{}: {ty} attributes/{at} is not classified in the inventory",
                            self.label
                        )),
                        Some(Class::Personal(category)) => {
                            if self.claim.strips(category, &form) {
                                if kept.is_some() {
                                    self.findings.problems.push(format!(
                                        "{}: {ty} attributes/{at} ({category}) reached the origin",
                                        self.label
                                    ));
                                }
                                self.claimed.push(value);
                            }
                        }
                        Some(Class::NotPersonal) => {
                            if self.keep_not_personal {
                                match kept {
                                    None => self.findings.problems.push(format!(
                                        "{}: {ty} attributes/{at} is not personal but was removed",
                                        self.label
                                    )),
                                    Some(k) if !is_container(value) && k != value => {
                                        self.findings.problems.push(format!(
                                            "{}: {ty} attributes/{at} changed: {value} became {k}",
                                            self.label
                                        ))
                                    }
                                    Some(_) => {}
                                }
                            }
                            self.attributes(ty, value, kept, path);
                        }
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let kept = forwarded.and_then(|f| f.get(i));
                    self.attributes(ty, item, kept, path);
                }
            }
            _ => {}
        }
    }
}

/// The texts of the scalars (strings and numbers) in `value`, skipping `skip`.
fn scalars(value: &Value, skip: &[&Value], out: &mut Vec<String>) {
    if skip.iter().any(|s| std::ptr::eq(*s, value)) {
        return;
    }
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Object(m) => m.values().for_each(|v| scalars(v, skip, out)),
        Value::Array(a) => a.iter().for_each(|v| scalars(v, skip, out)),
        Value::Null | Value::Bool(_) => {}
    }
}

fn resources(event: &Value) -> Vec<&Value> {
    let payload = member(event, "data")
        .and_then(|d| member(d, "attributes"))
        .and_then(|a| member(a, "payload"));
    let mut out = Vec::new();
    if let Some(p) = payload {
        out.extend(member(p, "data"));
        if let Some(Value::Array(included)) = member(p, "included") {
            out.extend(included);
        }
    }
    out
}

/// Checks one delivery of `event_file` (`original`, in any inflection): every key
/// inside `attributes` is classified by the inventory; no personal field the claim
/// covers is in `forwarded` (`None`: nothing reached the origin), neither the key at
/// its place nor its values anywhere; with `keep_not_personal`, every field that is
/// not personal is still there, unchanged.
pub fn check_delivery(
    inventory: &Inventory,
    event_file: &str,
    label: &str,
    original: &Value,
    forwarded: Option<&Value>,
    claim: &Claim,
    keep_not_personal: bool,
) -> Findings {
    let Some(event) = inventory.events.get(event_file) else {
        return Findings {
            problems: vec![format!("{label}: {event_file} is not in the inventory")],
            ..Findings::default()
        };
    };
    let mut walk = Walk {
        event,
        claim,
        keep_not_personal,
        label,
        findings: Findings::default(),
        claimed: Vec::new(),
    };
    let envelope = member(original, "data").and_then(|d| member(d, "attributes"));
    for key in envelope
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if !inventory.envelope.contains_key(&norm(key)) {
            walk.findings.problems.push(format!(
                "{label}: the envelope's attributes/{key} is not classified"
            ));
        }
    }
    let kept_resources = forwarded.map(resources).unwrap_or_default();
    let originals = resources(original);
    if forwarded.is_some() && kept_resources.len() != originals.len() {
        walk.findings
            .problems
            .push(format!("{label}: the forwarded body has other resources"));
    }
    for (i, resource) in originals.iter().enumerate() {
        let ty = member(resource, "type")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !event.resources.contains_key(ty) {
            walk.findings.problems.push(format!(
                "{label}: resource type {ty:?} is not in the inventory of {event_file}"
            ));
            continue;
        }
        let Some(attributes) = member(resource, "attributes") else {
            continue;
        };
        let kept = kept_resources.get(i).and_then(|r| member(r, "attributes"));
        if forwarded.is_some() && kept.is_none() {
            walk.findings
                .problems
                .push(format!("{label}: resource {i} lost its attributes"));
        }
        walk.attributes(ty, attributes, kept, &mut Vec::new());
    }

    // Values: a personal value must not be anywhere in the forwarded body, unless the
    // same text is also a value that stays (a country code, `null`-like texts).
    if let Some(forwarded) = forwarded {
        let mut personal = Vec::new();
        for v in &walk.claimed {
            scalars(v, &[], &mut personal);
        }
        let mut kept = Vec::new();
        scalars(original, &walk.claimed, &mut kept);
        let kept: BTreeSet<String> = kept.into_iter().collect();
        let mut sent = Vec::new();
        scalars(forwarded, &[], &mut sent);
        let sent_set: BTreeSet<&String> = sent.iter().collect();
        let mut reported = BTreeSet::new();
        for value in personal {
            if kept.contains(&value) || reported.contains(&value) {
                continue;
            }
            let inside = value.chars().count() >= 4
                && !kept.iter().any(|k| k.contains(&value))
                && sent.iter().any(|s| s.contains(&value));
            if sent_set.contains(&value) || inside {
                let shown: String = value.chars().take(60).collect();
                walk.findings.problems.push(format!(
                    "{label}: the personal value {shown:?} reached the origin"
                ));
                reported.insert(value);
            }
        }
    }
    walk.findings
}

/// Inventory entries of `event_file` that no delivery had (a stale inventory).
pub fn unseen_entries(
    inventory: &Inventory,
    event_file: &str,
    seen: &BTreeSet<(String, String)>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (ty, fields) in &inventory.events[event_file].resources {
        for path in fields.keys() {
            if !seen.contains(&(ty.clone(), path.clone())) {
                out.push(format!(
                    "{event_file}: the inventory lists {ty} attributes/{path}, which the event does not have"
                ));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Running a configuration

/// Loads a configuration as a packaging would, with every variable it names in
/// `*_env` set to [`TEST_SECRET`].
pub fn load(config: &str) -> Result<Policy, String> {
    let env = |_: &str| Some(TEST_SECRET.to_string());
    let options = LoadOptions {
        env: &env,
        ..LoadOptions::default()
    };
    Policy::load(config.as_bytes(), &options).map_err(|e| e.to_string())
}

/// What reached the origin: the forwarded body, or `None` when the event was
/// acknowledged without forwarding. A rejection is an error (the delivery is valid).
pub fn deliver(config: &str, body: &[u8]) -> Result<Option<Vec<u8>>, String> {
    Loaded::new(config)?.deliver(body)
}

/// A configuration loaded once for many deliveries.
pub struct Loaded {
    policy: Policy,
    /// What deliveries are signed with: the first inline secret, else [`TEST_SECRET`].
    secret: String,
}

impl Loaded {
    pub fn new(config: &str) -> Result<Loaded, String> {
        let policy = load(config)?;
        let doc: Value = serde_json::from_str(config).map_err(|e| e.to_string())?;
        let secret = doc["signature"]["secrets"][0]
            .as_str()
            .unwrap_or(TEST_SECRET)
            .to_string();
        Ok(Loaded { policy, secret })
    }

    /// [`deliver`] with this configuration.
    pub fn deliver(&self, body: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let policy = &self.policy;
        let signature = signature_header(&self.secret, NOW, body);
        // The client address wherever a configuration may look for it.
        let headers = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Persona-Signature", signature.as_str()),
            ("X-Forwarded-For", PERSONA_ADDRESS),
            ("CF-Connecting-IP", PERSONA_ADDRESS),
        ];
        let head = RequestHead {
            method: "POST",
            headers: &headers,
            peer: Some(PERSONA_ADDRESS),
        };
        match policy.evaluate(&head, body, NOW).1 {
            Outcome::Forward(f) if policy.mode() == persona_edge_core::Mode::Enforce => {
                Ok(Some(f.body.into_owned()))
            }
            Outcome::Forward(_) => Err("shadow mode forwards every body unchanged".into()),
            Outcome::Acknowledge(_) => Ok(None),
            Outcome::Reject(r) => Err(format!("rejected: {} {}", r.code.as_str(), r.detail)),
        }
    }
}

/// A configuration and what it claims to strip.
#[derive(Clone, Debug)]
pub struct Configuration {
    pub label: String,
    pub text: String,
    pub claim: Claim,
}

/// Runs every example event, in every inflection, through `config` and checks its
/// claim. Problems are returned, not asserted, so a test can show them all.
pub fn check_configuration(inventory: &Inventory, config: &Configuration) -> Vec<String> {
    let label = &config.label;
    let mut problems = Vec::new();
    // An `except` must be an exemption the configuration really makes.
    let doc: Value = match serde_json::from_str(&config.text) {
        Ok(d) => d,
        Err(e) => return vec![format!("{label}: not JSON: {e}")],
    };
    let exemptions: BTreeSet<String> = doc["blocklist"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str()?.strip_prefix('!'))
        .map(norm)
        .collect();
    for key in &config.claim.except {
        if !exemptions.contains(key) {
            problems.push(format!(
                "{label}: the claim excepts {key}, which the blocklist does not exempt (\"!{key}\")"
            ));
        }
    }
    match Loaded::new(&config.text) {
        Ok(loaded) => problems.extend(check_through(inventory, label, &config.claim, |body| {
            loaded.deliver(body)
        })),
        Err(e) => problems.push(format!("{label}: {e}")),
    }
    problems
}

/// What a real packaging did with one delivery, for [`check_through`]: forwarded (the
/// body the origin got), acknowledged (nothing reached it), or something else.
pub fn packaging_outcome(
    status: u16,
    at_origin: &[crate::origin::Recorded],
    reply: &str,
) -> Result<Option<Vec<u8>>, String> {
    match (status, at_origin) {
        (200, [one]) => Ok(Some(one.body.clone())),
        (204, []) => Ok(None),
        (status, got) => Err(format!("{status}, {} at the origin: {reply}", got.len())),
    }
}

/// Sends every example event, in every inflection, with `send`, which returns what
/// reached the origin (`None`: nothing did), and checks each against `claim`. The
/// core (`Loaded::deliver`) or a real packaging does the sending.
pub fn check_through(
    inventory: &Inventory,
    label: &str,
    claim: &Claim,
    mut send: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut forwarded = 0;
    for (delivery, file, body) in example_deliveries(inventory) {
        let at = format!("{label}, {delivery}");
        let original: Value = serde_json::from_slice(&body).unwrap();
        match send(&body) {
            Err(e) => problems.push(format!("{at}: {e}")),
            Ok(None) => {}
            Ok(Some(out)) => {
                forwarded += 1;
                let out: Value = match serde_json::from_slice(&out) {
                    Ok(v) => v,
                    Err(e) => {
                        problems.push(format!("{at}: forwarded body is not JSON: {e}"));
                        continue;
                    }
                };
                let findings =
                    check_delivery(inventory, &file, &at, &original, Some(&out), claim, false);
                problems.extend(findings.problems);
            }
        }
    }
    if forwarded == 0 {
        problems.push(format!(
            "{label}: forwards no example event, so its claim is untested"
        ));
    }
    problems
}

// ---------------------------------------------------------------------------
// Where the configurations are

fn read(relative: &str) -> String {
    std::fs::read_to_string(workspace_root().join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The one claim line (`# persona-edge: strips …`) of a shipped file.
fn claim_line(text: &str, file: &str) -> String {
    let claims: Vec<&str> = text
        .lines()
        .filter_map(marker)
        .filter(|m| m.starts_with("strips "))
        .collect();
    assert_eq!(
        claims.len(),
        1,
        "{file} must say once, in a comment line `# persona-edge: strips …`, what its configuration strips"
    );
    claims[0].trim_start_matches("strips ").to_string()
}

/// `PERSONA_EDGE_CONFIG = '''…'''` in wrangler.toml.
pub fn wrangler_config(text: &str) -> String {
    let start = "PERSONA_EDGE_CONFIG = '''\n";
    assert_eq!(
        text.matches(start).count(),
        1,
        "wrangler.toml must give PERSONA_EDGE_CONFIG once, as a ''' string"
    );
    let after = &text[text.find(start).unwrap() + start.len()..];
    after[..after
        .find("'''")
        .expect("PERSONA_EDGE_CONFIG's closing '''")]
        .to_string()
}

/// The here-document read into `variable` (`read -r -d '' VARIABLE <<'JSON'` … `JSON`).
pub fn heredoc(text: &str, variable: &str) -> String {
    let mut lines = text.lines();
    let opener = format!("{variable} <<'JSON'");
    lines
        .by_ref()
        .find(|l| l.contains(&opener))
        .unwrap_or_else(|| panic!("no here-document {opener}"));
    let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "JSON").collect();
    body.join("\n") + "\n"
}

/// The configurations the repository ships, each with the claim its file makes:
/// envoy/envoy.yaml, envoy/envoy-native.yaml, the Istio manifest, wrangler.toml and the
/// `make run` demo (`make run-native` runs the same); `make run-worker` runs
/// wrangler.toml's (checked here).
pub fn shipped_configurations(inventory: &Inventory) -> Vec<Configuration> {
    let mut out = Vec::new();
    let mut add = |label: &str, file: &str, text: String, config: String| {
        let claim_text = claim_line(&text, file);
        let claim = Claim::parse(&claim_text, inventory)
            .unwrap_or_else(|e| panic!("{file}: persona-edge: strips {claim_text}: {e}"));
        out.push(Configuration {
            label: label.to_string(),
            text: config,
            claim,
        });
    };
    let envoy = read("envoy/envoy.yaml");
    add(
        "envoy/envoy.yaml",
        "envoy/envoy.yaml",
        envoy.clone(),
        block_under(&envoy, "value: |"),
    );
    let native = read("envoy/envoy-native.yaml");
    add(
        "envoy/envoy-native.yaml",
        "envoy/envoy-native.yaml",
        native.clone(),
        block_under(&native, "value: |"),
    );
    let istio = read("envoy/istio-wasmplugin.yaml");
    add(
        "envoy/istio-wasmplugin.yaml",
        "envoy/istio-wasmplugin.yaml",
        istio.clone(),
        block_under(&istio, "pluginConfig:"),
    );
    let wrangler = read("wrangler.toml");
    add(
        "wrangler.toml",
        "wrangler.toml",
        wrangler.clone(),
        wrangler_config(&wrangler),
    );
    let demo = read("scripts/run-envoy-demo.sh");
    add(
        "make run",
        "scripts/run-envoy-demo.sh",
        demo.clone(),
        heredoc(&demo, "PLUGIN_CONFIG"),
    );
    // The Worker demo configures nothing itself: wrangler dev reads wrangler.toml.
    let worker_demo = read("scripts/run-worker-demo.sh");
    assert!(
        worker_demo.contains("wrangler dev")
            && !worker_demo.contains("PERSONA_EDGE_CONFIG:")
            && !worker_demo.contains("--config")
            && !worker_demo.contains(" -c "),
        "scripts/run-worker-demo.sh must run wrangler dev with the repository's wrangler.toml"
    );
    let mut worker = out
        .iter()
        .find(|c| c.label == "wrangler.toml")
        .unwrap()
        .clone();
    worker.label = "make run-worker".into();
    out.push(worker);
    let make = read("Makefile");
    assert!(
        make.contains("scripts/run-envoy-demo.sh") && make.contains("scripts/run-worker-demo.sh"),
        "the Makefile's run targets moved"
    );
    out
}

/// One marked place in the documentation.
#[derive(Debug)]
pub enum DocItem {
    /// A ```json configuration with its claim.
    Configuration(Configuration),
    /// A ```json block marked `not a configuration`.
    NotConfiguration { label: String, text: String },
    /// A paragraph whose prose claims what a shipped configuration strips.
    Prose {
        label: String,
        target: String,
        claim: Claim,
        paragraph: String,
    },
    /// A ```json block without a marker.
    Unmarked { label: String },
}

/// The Markdown files whose configurations are checked: README.md and docs/*.md.
pub fn doc_files() -> Vec<String> {
    let mut files = vec!["README.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(workspace_root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// Every marker and every ```json block of one Markdown file.
pub fn doc_items(file: &str, inventory: &Inventory) -> Vec<DocItem> {
    let text = read(file);
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut in_fence = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        let label = format!("{file}:{}", i + 1);
        if line.starts_with("```") {
            if !in_fence && line.trim_end() == "```json" {
                let body: Vec<&str> = lines[i + 1..]
                    .iter()
                    .take_while(|l| !l.trim_start().starts_with("```"))
                    .copied()
                    .collect();
                let block = body.join("\n");
                let before = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
                match before.and_then(|l| marker(l)) {
                    Some("not a configuration") => {
                        out.push(DocItem::NotConfiguration { label, text: block })
                    }
                    Some(m) if m.starts_with("strips ") => {
                        let claim = Claim::parse(&m["strips ".len()..], inventory)
                            .unwrap_or_else(|e| panic!("{label}: {e}"));
                        out.push(DocItem::Configuration(Configuration {
                            label,
                            text: block,
                            claim,
                        }))
                    }
                    _ => out.push(DocItem::Unmarked { label }),
                }
                i += body.len() + 2;
                continue;
            }
            in_fence = !in_fence;
        } else if !in_fence && let Some(m) = marker(line) {
            let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
            let before_fence = next.is_some_and(|l| l.trim_start().starts_with("```"));
            if let (false, Some((target, claim))) = (before_fence, m.split_once(" strips ")) {
                let claim =
                    Claim::parse(claim, inventory).unwrap_or_else(|e| panic!("{label}: {e}"));
                let paragraph: Vec<&str> = lines[i + 1..]
                    .iter()
                    .skip_while(|l| l.trim().is_empty())
                    .take_while(|l| !l.trim().is_empty())
                    .copied()
                    .collect();
                out.push(DocItem::Prose {
                    label,
                    target: target.to_string(),
                    claim,
                    paragraph: paragraph.join(" "),
                });
            }
        }
        i += 1;
    }
    out
}
