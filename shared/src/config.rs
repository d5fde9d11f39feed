//! The configuration document, the same JSON for every packaging, and its compiled
//! form, [`Policy`]. Loading reports every problem at once, each naming its field.

use alloc::borrow::{Cow, ToOwned};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use ipnet::IpNet;

use crate::address::{Allowlist, ClientAddress, named_set, parse_net};
use crate::blocklist::Blocklist;
use crate::dedup::{self, DedupSettings};
use crate::document::{Document, Number, Value};
pub use crate::inflection::Inflection;
use crate::json::Quoted;
use crate::preset::{PRESETS, find_preset};

/// Defaults, documented in docs/configuration.md.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Bounds that keep a hostile or mistaken config from costing memory or stack.
pub const MAX_BODY_BYTES_LIMIT: usize = 64 * 1024 * 1024;
/// The event envelope alone nests 6 deep; the walk recurses once per level.
pub const MIN_DEPTH: usize = 8;
pub const MAX_DEPTH_LIMIT: usize = 256;

/// `enforce` applies decisions; `shadow` only reports them and forwards the original.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Shadow,
}

/// One problem with a configuration: the field (`sources.allow[2]`) and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Every problem found in one configuration, in document order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigErrors {}

/// A loaded, validated configuration. Built once (at `on_configure`, at Worker start,
/// per command run) and shared by every delivery.
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) mode: Mode,
    pub(crate) allowlist: Allowlist,
    pub(crate) client_address: ClientAddress,
    pub(crate) signature_required: bool,
    pub(crate) secrets: Vec<String>,
    pub(crate) tolerance: u64,
    pub(crate) blocklist: Blocklist,
    pub(crate) forward_events: Vec<Vec<u8>>,
    pub(crate) inflection: Inflection,
    pub(crate) routing_headers: bool,
    pub(crate) resign_secret: Option<String>,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_depth: usize,
    pub(crate) dedup: Option<DedupSettings>,
}

/// What the host contributes to loading a configuration.
pub struct LoadOptions<'a> {
    /// Looks up the variables named by `signature.secrets_env` and
    /// `resign.secret_env` (process environment, proxy-wasm VM environment, Worker
    /// secrets).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Where the client address comes from when `sources.client_address` is absent.
    pub default_client_address: ClientAddress,
    /// Whether the host gives the connection's peer address, so that
    /// `{"from": "peer"}` can work. A host without one (the Worker) says so, and such a
    /// configuration is refused at load instead of answering every delivery 403.
    pub peer_available: bool,
    /// The host as configuration errors name it, such as "the Envoy filter".
    pub host_name: &'a str,
}

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        LoadOptions {
            env: &|_| None,
            default_client_address: ClientAddress::Peer,
            peer_available: true,
            host_name: "this packaging",
        }
    }
}

impl Policy {
    /// Loads a configuration with no environment and the peer address as default.
    pub fn from_json(config: &[u8]) -> Result<Policy, ConfigErrors> {
        Policy::load(config, &LoadOptions::default())
    }

    /// Loads a configuration with the host's environment and defaults.
    pub fn load(config: &[u8], options: &LoadOptions<'_>) -> Result<Policy, ConfigErrors> {
        let document = Document::parse(config).map_err(|why| {
            ConfigErrors(alloc::vec![ConfigError {
                field: String::new(),
                message: format!("not valid JSON: {why}"),
            }])
        })?;
        let mut c = Checker::default();
        let policy = c.policy(document.root(), options);
        match policy {
            Some(p) if c.errors.is_empty() => Ok(p),
            _ => Err(ConfigErrors(c.errors)),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    pub fn client_address(&self) -> &ClientAddress {
        &self.client_address
    }

    /// Whether this configuration may change bodies (a blocklist, or an inflection
    /// other than `preserve`). Decided from the configuration alone, because a proxy
    /// settles its header changes before it sees the body: when true, the incoming
    /// `Persona-Signature` and `Content-Length` are never forwarded as they are.
    pub fn can_change_body(&self) -> bool {
        !self.blocklist.is_empty() || self.inflection != Inflection::Preserve
    }

    /// Whether forwarded deliveries carry a new `Persona-Signature`.
    pub fn resigns(&self) -> bool {
        self.resign_secret.is_some()
    }

    /// Whether routing metadata is sent as `x-persona-*` headers.
    pub fn routing_headers(&self) -> bool {
        self.routing_headers
    }

    /// Duplicate suppression by event id, when the `dedup` section turns it on.
    pub fn dedup(&self) -> Option<&DedupSettings> {
        self.dedup.as_ref()
    }

    /// Whether the client address is allowed (the allowlist alone).
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.allowlist.allows(addr)
    }
}

#[derive(Default)]
struct Checker {
    errors: Vec<ConfigError>,
}

const TOP_FIELDS: &[&str] = &[
    "mode",
    "sources",
    "signature",
    "blocklist",
    "blocklist_preset",
    "events",
    "normalize",
    "resign",
    "limits",
    "dedup",
];

impl Checker {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// The object at `field`, with unknown and repeated members reported. `None`
    /// when absent.
    fn object<'v>(
        &mut self,
        value: Option<Value<'v>>,
        field: &str,
        known: &[&str],
    ) -> Option<Value<'v>> {
        let value = value?;
        if !value.is_object() {
            self.error(
                field,
                format!("must be an object, found {}", value.describe()),
            );
            return None;
        }
        for (i, (key, _)) in value.members().enumerate() {
            if !known.contains(&key.as_ref()) {
                self.error(
                    &join(field, &key),
                    format!("unknown field; expected one of: {}", known.join(", ")),
                );
            } else if value.members().take(i).any(|(earlier, _)| earlier == key) {
                // A JSON parser would silently keep one of them: which one the author
                // meant is not known.
                self.error(
                    &join(field, &key),
                    "duplicate field; each field may appear only once",
                );
            }
        }
        Some(value)
    }

    fn string<'v>(&mut self, value: Option<Value<'v>>, field: &str) -> Option<Cow<'v, str>> {
        let value = value?;
        let text = value.as_str();
        if text.is_none() {
            self.error(
                field,
                format!("must be a string, found {}", value.describe()),
            );
        }
        text
    }

    fn boolean(&mut self, value: Option<Value<'_>>, field: &str) -> Option<bool> {
        let value = value?;
        match value.as_bool() {
            Some(b) => Some(b),
            None => {
                self.error(
                    field,
                    format!("must be true or false, found {}", value.describe()),
                );
                None
            }
        }
    }

    fn integer(
        &mut self,
        value: Option<Value<'_>>,
        field: &str,
        min: u64,
        max: u64,
    ) -> Option<u64> {
        let value = value?;
        match value.as_number() {
            Some(Number::Unsigned(n)) if (min..=max).contains(&n) => Some(n),
            number => {
                let found = match number {
                    Some(Number::Unsigned(n)) if n <= i64::MAX as u64 => format!("{n}"),
                    Some(Number::Negative(n)) => format!("{n}"),
                    Some(Number::Unsigned(_) | Number::Other) => {
                        String::from("a fraction or an out-of-range number")
                    }
                    None => String::from(value.describe()),
                };
                self.error(
                    field,
                    format!("must be a whole number from {min} to {max}, found {found}"),
                );
                None
            }
        }
    }

    /// A list of strings; each bad element is reported with its index.
    fn strings<'v>(
        &mut self,
        value: Option<Value<'v>>,
        field: &str,
    ) -> Option<Vec<(String, Cow<'v, str>)>> {
        let value = value?;
        if !value.is_array() {
            self.error(
                field,
                format!("must be a list of strings, found {}", value.describe()),
            );
            return None;
        }
        let mut out = Vec::new();
        for (i, item) in value.items().enumerate() {
            let at = format!("{field}[{i}]");
            if let Some(s) = self.string(Some(item), &at) {
                out.push((at, s));
            }
        }
        Some(out)
    }

    fn policy(&mut self, root: Value<'_>, options: &LoadOptions<'_>) -> Option<Policy> {
        let root = self.object(Some(root), "", TOP_FIELDS)?;

        let mode = match self.string(root.get("mode"), "mode").as_deref() {
            None | Some("enforce") => Mode::Enforce,
            Some("shadow") => Mode::Shadow,
            Some(other) => {
                self.error(
                    "mode",
                    format!(
                        "{} is not a mode; expected \"enforce\" or \"shadow\"",
                        Quoted(other)
                    ),
                );
                Mode::Enforce
            }
        };

        let (allowlist, client_address) = self.sources(root.get("sources"), options);
        let (signature_required, secrets, tolerance) =
            self.signature(root.get("signature"), options);
        let blocklist = self.blocklist(root.get("blocklist"), root.get("blocklist_preset"));
        let forward_events = self.events(root.get("events"));

        let normalize = self.object(
            root.get("normalize"),
            "normalize",
            &["inflection", "routing_headers"],
        );
        let inflection = match self.string(normalize.and_then(|n| n.get("inflection")), "normalize.inflection") {
            None => Inflection::Preserve,
            Some(name) => Inflection::parse(&name).unwrap_or_else(|| {
                self.error(
                    "normalize.inflection",
                    format!("{} is not an inflection; expected \"preserve\", \"kebab\", \"camel\" or \"snake\"", Quoted(&name)),
                );
                Inflection::Preserve
            }),
        };
        let routing_headers = self
            .boolean(
                normalize.and_then(|n| n.get("routing_headers")),
                "normalize.routing_headers",
            )
            .unwrap_or(true);

        let resign_secret = self.resign(root.get("resign"), options);
        if resign_secret.is_some() && !signature_required {
            // The new signature vouches for the delivery to the origin: without
            // verification it would vouch for anything anyone sent.
            self.error(
                "resign",
                "needs signature.required: true: re-signing deliveries that were not verified would give forged events the origin's signature",
            );
        }

        let limits = self.object(
            root.get("limits"),
            "limits",
            &["max_body_bytes", "max_depth"],
        );
        let max_body_bytes = self
            .integer(
                limits.and_then(|l| l.get("max_body_bytes")),
                "limits.max_body_bytes",
                1,
                MAX_BODY_BYTES_LIMIT as u64,
            )
            .map_or(DEFAULT_MAX_BODY_BYTES, |n| n as usize);
        let max_depth = self
            .integer(
                limits.and_then(|l| l.get("max_depth")),
                "limits.max_depth",
                MIN_DEPTH as u64,
                MAX_DEPTH_LIMIT as u64,
            )
            .map_or(DEFAULT_MAX_DEPTH, |n| n as usize);

        let dedup = self.dedup(root.get("dedup"));

        Some(Policy {
            mode,
            allowlist,
            client_address,
            signature_required,
            secrets,
            tolerance,
            blocklist,
            forward_events,
            inflection,
            routing_headers,
            resign_secret,
            max_body_bytes,
            max_depth,
            dedup,
        })
    }

    /// The `dedup` section: absent, or `"enabled": false`, is off.
    fn dedup(&mut self, value: Option<Value<'_>>) -> Option<DedupSettings> {
        let section = self.object(
            value,
            "dedup",
            &["enabled", "ttl_seconds", "in_flight_seconds", "capacity"],
        )?;
        let enabled = self
            .boolean(section.get("enabled"), "dedup.enabled")
            .unwrap_or(true);
        let defaults = DedupSettings::default();
        let ttl_seconds = self
            .integer(
                section.get("ttl_seconds"),
                "dedup.ttl_seconds",
                1,
                dedup::MAX_TTL_SECONDS,
            )
            .unwrap_or(defaults.ttl_seconds);
        let in_flight_seconds = self
            .integer(
                section.get("in_flight_seconds"),
                "dedup.in_flight_seconds",
                1,
                dedup::MAX_IN_FLIGHT_SECONDS,
            )
            .unwrap_or(defaults.in_flight_seconds);
        let capacity = self
            .integer(
                section.get("capacity"),
                "dedup.capacity",
                1,
                u64::from(dedup::MAX_CAPACITY),
            )
            .map_or(defaults.capacity, |n| n as u32);
        if in_flight_seconds > ttl_seconds {
            // Most likely a unit mistake; a delivered record would expire before a
            // dead attempt's.
            self.error(
                "dedup.in_flight_seconds",
                format!("{in_flight_seconds} is longer than dedup.ttl_seconds ({ttl_seconds})"),
            );
        }
        enabled.then_some(DedupSettings {
            ttl_seconds,
            in_flight_seconds,
            capacity,
        })
    }

    fn sources(
        &mut self,
        value: Option<Value<'_>>,
        options: &LoadOptions<'_>,
    ) -> (Allowlist, ClientAddress) {
        let sources = self.object(value, "sources", &["allow", "client_address"]);
        let mut allowlist = Allowlist::default();
        let entries = match self.strings(sources.and_then(|s| s.get("allow")), "sources.allow") {
            // The default: every Persona address (a valid entry, so never reported).
            None => alloc::vec![(String::new(), Cow::Borrowed("persona"))],
            Some(entries) => {
                if entries.is_empty() {
                    self.error(
                        "sources.allow",
                        "empty: no delivery could get in; list \"persona\", a region or CIDRs",
                    );
                }
                entries
            }
        };
        for (at, entry) in &entries {
            if let Some(set) = named_set(entry) {
                for addr in set {
                    allowlist.push(IpNet::from(IpAddr::V4(addr)));
                }
            } else if let Some(net) = parse_net(entry) {
                allowlist.push(net);
            } else {
                self.error(at, format!("{} is not a Persona set (persona, persona-us, persona-de, persona-in), an IP address or a CIDR without host bits", Quoted(entry)));
            }
        }

        let client = self.object(
            sources.and_then(|s| s.get("client_address")),
            "sources.client_address",
            &["from", "trusted_hops", "name"],
        );
        let client_address = match client {
            None => options.default_client_address.clone(),
            Some(c) => {
                let from = self.string(c.get("from"), "sources.client_address.from");
                let from = from.as_deref();
                let hops = c.get("trusted_hops");
                let name = c.get("name");
                match from {
                    None => {
                        if c.get("from").is_none() {
                            self.error(
                                "sources.client_address.from",
                                "missing; expected \"peer\", \"x-forwarded-for\" or \"header\"",
                            );
                        }
                        ClientAddress::Peer
                    }
                    Some("peer") => {
                        if !options.peer_available {
                            self.error(
                                "sources.client_address.from",
                                format!(
                                    "\"peer\" is not available in {}, which is given no connection peer address; use {} (the default when sources.client_address is absent), or {{\"from\": \"x-forwarded-for\", \"trusted_hops\": N}} behind proxies you run",
                                    options.host_name,
                                    options.default_client_address.to_config()
                                ),
                            );
                        }
                        if hops.is_some() {
                            self.error(
                                "sources.client_address.trusted_hops",
                                "only applies to \"from\": \"x-forwarded-for\"",
                            );
                        }
                        if name.is_some() {
                            self.error(
                                "sources.client_address.name",
                                "only applies to \"from\": \"header\"",
                            );
                        }
                        ClientAddress::Peer
                    }
                    Some("x-forwarded-for") => {
                        if name.is_some() {
                            self.error(
                                "sources.client_address.name",
                                "only applies to \"from\": \"header\"",
                            );
                        }
                        if hops.is_none() {
                            self.error("sources.client_address.trusted_hops", "required with \"from\": \"x-forwarded-for\": how many proxies you trust append to it");
                        }
                        let trusted_hops = self
                            .integer(hops, "sources.client_address.trusted_hops", 1, 16)
                            .map_or(1, |n| n as u32);
                        ClientAddress::ForwardedFor { trusted_hops }
                    }
                    Some("header") => {
                        if hops.is_some() {
                            self.error(
                                "sources.client_address.trusted_hops",
                                "only applies to \"from\": \"x-forwarded-for\"",
                            );
                        }
                        let header = self.string(name, "sources.client_address.name");
                        match header.as_deref() {
                            Some(h) if is_header_name(h) => ClientAddress::Header {
                                name: h.to_ascii_lowercase(),
                            },
                            Some(h) => {
                                self.error(
                                    "sources.client_address.name",
                                    format!("{} is not an HTTP header name", Quoted(h)),
                                );
                                ClientAddress::Peer
                            }
                            None => {
                                if name.is_none() {
                                    self.error("sources.client_address.name", "required with \"from\": \"header\", such as \"CF-Connecting-IP\"");
                                }
                                ClientAddress::Peer
                            }
                        }
                    }
                    Some(other) => {
                        self.error(
                            "sources.client_address.from",
                            format!(
                                "{}: expected \"peer\", \"x-forwarded-for\" or \"header\"",
                                Quoted(other)
                            ),
                        );
                        ClientAddress::Peer
                    }
                }
            }
        };
        (allowlist, client_address)
    }

    fn signature(
        &mut self,
        value: Option<Value<'_>>,
        options: &LoadOptions<'_>,
    ) -> (bool, Vec<String>, u64) {
        let errors_before = self.errors.len();
        let sig = self.object(
            value,
            "signature",
            &["required", "secrets", "secrets_env", "tolerance_seconds"],
        );
        let required = self
            .boolean(sig.and_then(|s| s.get("required")), "signature.required")
            .unwrap_or(true);
        let mut secrets = Vec::new();
        for (at, secret) in self
            .strings(sig.and_then(|s| s.get("secrets")), "signature.secrets")
            .unwrap_or_default()
        {
            if secret.is_empty() {
                self.error(&at, "empty secret");
            } else {
                secrets.push(secret.into_owned());
            }
        }
        for (at, var) in self
            .strings(
                sig.and_then(|s| s.get("secrets_env")),
                "signature.secrets_env",
            )
            .unwrap_or_default()
        {
            match (options.env)(&var) {
                Some(secret) if !secret.is_empty() => secrets.push(secret),
                _ => self.error(
                    &at,
                    format!("the variable {} is not set or empty", Quoted(&var)),
                ),
            }
        }
        let tolerance = self
            .integer(
                sig.and_then(|s| s.get("tolerance_seconds")),
                "signature.tolerance_seconds",
                0,
                7 * 24 * 3600,
            )
            .unwrap_or(DEFAULT_TOLERANCE_SECONDS);
        // When every named secret already has its own error, one more adds nothing.
        let secrets_reported = self.errors.len() > errors_before;
        if required && secrets.is_empty() && !secrets_reported {
            self.error(
                "signature.secrets",
                "required while signature.required is true: list the webhook secrets (or name them in signature.secrets_env), or set signature.required to false to turn verification off",
            );
        }
        (required, secrets, tolerance)
    }

    /// The preset's entries, then `blocklist`'s: one list, so a `!` exemption in
    /// `blocklist` beats a preset entry as it beats any block.
    fn blocklist(&mut self, value: Option<Value<'_>>, preset: Option<Value<'_>>) -> Blocklist {
        let mut entries: Vec<String> = Vec::new();
        if let Some(name) = self.string(preset, "blocklist_preset") {
            match find_preset(&name) {
                Some(preset) => entries.extend(preset.entries().map(String::from)),
                None => {
                    let known: Vec<String> = PRESETS
                        .iter()
                        .map(|p| format!("{}", Quoted(p.name)))
                        .collect();
                    self.error(
                        "blocklist_preset",
                        format!(
                            "{} is not a preset; expected one of: {}",
                            Quoted(&name),
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        let from_preset = entries.len();
        entries.extend(
            self.strings(value, "blocklist")
                .unwrap_or_default()
                .into_iter()
                .map(|(_, s)| s.into_owned()),
        );
        match Blocklist::parse(&entries) {
            Ok(list) => list,
            Err(errors) => {
                for (i, why) in errors {
                    // Presets are checked by their tests; name the field either way.
                    let field = match i.checked_sub(from_preset) {
                        Some(i) => format!("blocklist[{i}]"),
                        None => String::from("blocklist_preset"),
                    };
                    self.error(&field, why);
                }
                Blocklist::default()
            }
        }
    }

    fn events(&mut self, value: Option<Value<'_>>) -> Vec<Vec<u8>> {
        let events = self.object(value, "events", &["forward"]);
        let Some(patterns) = self.strings(events.and_then(|e| e.get("forward")), "events.forward")
        else {
            return alloc::vec![b"*".to_vec()];
        };
        if patterns.is_empty() {
            self.error("events.forward", "empty: every event would be acknowledged and none forwarded; use [\"*\"] to forward all");
        }
        let mut out = Vec::with_capacity(patterns.len());
        for (at, p) in patterns {
            if p.is_empty()
                || p.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == ',')
            {
                self.error(
                    &at,
                    format!(
                        "{} is not an event name pattern such as \"inquiry.*\"",
                        Quoted(&p)
                    ),
                );
            } else {
                out.push(p.as_bytes().to_vec());
            }
        }
        out
    }

    fn resign(&mut self, value: Option<Value<'_>>, options: &LoadOptions<'_>) -> Option<String> {
        let resign = self.object(value, "resign", &["secret", "secret_env"])?;
        let secret = self.string(resign.get("secret"), "resign.secret");
        let var = self.string(resign.get("secret_env"), "resign.secret_env");
        match (secret, var) {
            (Some(s), None) if !s.is_empty() => Some(s.into_owned()),
            (None, Some(v)) => match (options.env)(&v) {
                Some(s) if !s.is_empty() => Some(s),
                _ => {
                    self.error(
                        "resign.secret_env",
                        format!("the variable {} is not set or empty", Quoted(&v)),
                    );
                    None
                }
            },
            (Some(_), Some(_)) => {
                self.error("resign", "give either secret or secret_env, not both");
                None
            }
            (Some(_), None) => {
                self.error("resign.secret", "empty secret");
                None
            }
            (None, None) => {
                if resign.get("secret").is_none() && resign.get("secret_env").is_none() {
                    self.error(
                        "resign",
                        "needs secret or secret_env: the secret the origin verifies with",
                    );
                }
                None
            }
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn errors(doc: &str) -> Vec<String> {
        match Policy::from_json(doc.as_bytes()) {
            Ok(_) => panic!("{doc} should be refused"),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn the_issue_example_loads() {
        let doc = r#"{
          "mode": "enforce",
          "sources": {
            "allow": ["persona", "persona-us", "persona-de", "persona-in", "203.0.113.0/24", "2001:db8::/32"],
            "client_address": {"from": "peer"}
          },
          "signature": {"required": true, "secrets": ["wbhsec_a"], "tolerance_seconds": 300},
          "blocklist": ["name-*", "/data/attributes/fields/*-number?type=inquiry", "!/data/attributes/fields/selected-country-code"],
          "events": {"forward": ["*"]},
          "normalize": {"inflection": "preserve", "routing_headers": true},
          "resign": {"secret": "origin"},
          "limits": {"max_body_bytes": 1048576, "max_depth": 64}
        }"#;
        let p = Policy::from_json(doc.as_bytes()).unwrap();
        assert!(p.can_change_body());
        assert!(p.resigns());
        assert!(p.allows("203.0.113.9".parse().unwrap()));
        assert!(p.allows("2001:db8::1".parse().unwrap()));
        assert!(p.allows("34.93.21.229".parse().unwrap()));
        assert!(!p.allows("198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn defaults() {
        let p = Policy::from_json(br#"{"signature":{"secrets":["s"]}}"#).unwrap();
        assert_eq!(p.mode(), Mode::Enforce);
        assert_eq!(p.max_body_bytes(), DEFAULT_MAX_BODY_BYTES);
        assert_eq!(p.tolerance, 300);
        assert!(!p.can_change_body());
        assert!(p.routing_headers());
        assert!(p.allows("35.232.44.140".parse().unwrap()));
        assert_eq!(p.client_address(), &ClientAddress::Peer);
    }

    #[test]
    fn signature_must_be_explicit() {
        assert_eq!(errors("{}").len(), 1);
        assert!(errors("{}")[0].starts_with("signature.secrets: required"));
        assert!(Policy::from_json(br#"{"signature":{"required":false}}"#).is_ok());
    }

    #[test]
    fn every_error_at_once_with_field_names() {
        let errs = errors(
            r#"{"mode":"loud","extra":1,
                "sources":{"allow":["persona","10.0.0.0/33","nope"],"client_address":{"from":"x-forwarded-for"}},
                "signature":{"secrets":[""],"tolerance_seconds":-1},
                "blocklist":["ok","/meta/attributes/x",""],
                "events":{"forward":["inquiry.*","bad pattern"]},
                "normalize":{"inflection":"pascal"},
                "limits":{"max_body_bytes":0,"max_depth":2}}"#,
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.split(':').next().unwrap()).collect();
        for expected in [
            "extra",
            "mode",
            "sources.allow[1]",
            "sources.allow[2]",
            "sources.client_address.trusted_hops",
            "signature.secrets[0]",
            "signature.tolerance_seconds",
            "blocklist[1]",
            "blocklist[2]",
            "events.forward[1]",
            "normalize.inflection",
            "limits.max_body_bytes",
            "limits.max_depth",
        ] {
            assert!(
                fields.contains(&expected),
                "missing {expected} in {errs:#?}"
            );
        }
    }

    #[test]
    fn duplicate_fields_are_refused() {
        assert_eq!(
            errors(r#"{"signature":{"required":false},"mode":"enforce","mode":"shadow"}"#),
            ["mode: duplicate field; each field may appear only once"]
        );
        assert_eq!(
            errors(r#"{"signature":{"required":false,"tolerance_seconds":1,"required":true}}"#),
            ["signature.required: duplicate field; each field may appear only once"]
        );
        // The same name spelled with an escape is the same field.
        assert_eq!(
            errors(
                r#"{"signature":{"required":false},"limits":{"max_depth":8,"max_d\u0065pth":9}}"#
            ),
            ["limits.max_depth: duplicate field; each field may appear only once"]
        );
        // A repeated unknown field is reported as unknown, each time.
        assert_eq!(
            errors(r#"{"signature":{"required":false},"x":1,"x":2}"#).len(),
            2
        );
    }

    #[test]
    fn errors_follow_document_order() {
        let errs = errors(r#"{"zeta":1,"signature":{"required":false},"alpha":2}"#);
        assert_eq!(
            errs,
            [
                "zeta: unknown field; expected one of: mode, sources, signature, blocklist, blocklist_preset, events, normalize, resign, limits, dedup",
                "alpha: unknown field; expected one of: mode, sources, signature, blocklist, blocklist_preset, events, normalize, resign, limits, dedup",
            ]
        );
    }

    #[test]
    fn not_json() {
        assert_eq!(
            errors("{\n  \"mode\": \"shadow\",\n}"),
            ["not valid JSON: syntax error at line 3 column 1"]
        );
        assert_eq!(
            errors(""),
            ["not valid JSON: unexpected end at line 1 column 1"]
        );
        assert_eq!(errors("[]"), ["must be an object, found a list"]);
    }

    #[test]
    fn values_of_the_wrong_kind() {
        let sig = |t: &str| {
            errors(&alloc::format!(
                r#"{{"signature":{{"required":false,"tolerance_seconds":{t}}}}}"#
            ))
        };
        let msg = "signature.tolerance_seconds: must be a whole number from 0 to 604800, found ";
        for (t, found) in [
            ("-1", "-1"),
            ("604801", "604801"),
            ("1.5", "a fraction or an out-of-range number"),
            ("3e2", "a fraction or an out-of-range number"),
            ("-0", "a fraction or an out-of-range number"),
            (
                "18446744073709551615",
                "a fraction or an out-of-range number",
            ),
            ("\"300\"", "a string"),
            ("null", "null"),
            ("true", "a boolean"),
            ("[]", "a list"),
            ("{}", "an object"),
        ] {
            assert_eq!(sig(t), [alloc::format!("{msg}{found}")], "{t}");
        }
        assert_eq!(
            errors(r#"{"signature":{"required":"yes","secrets":"s"}}"#),
            [
                "signature.required: must be true or false, found a string",
                "signature.secrets: must be a list of strings, found a string",
            ]
        );
        assert_eq!(
            errors(r#"{"signature":{"required":false},"mode":1,"events":{"forward":["a",2]}}"#),
            [
                "mode: must be a string, found a number",
                "events.forward[1]: must be a string, found a number",
            ]
        );
        assert_eq!(
            errors(r#"{"signature":{"required":false},"sources":{"allow":["p\u00e9rsona"]}}"#),
            [
                "sources.allow[0]: \"pérsona\" is not a Persona set (persona, persona-us, persona-de, persona-in), an IP address or a CIDR without host bits"
            ]
        );
    }

    #[test]
    fn client_address_forms() {
        let p = Policy::from_json(br#"{"signature":{"required":false},"sources":{"client_address":{"from":"header","name":"CF-Connecting-IP"}}}"#).unwrap();
        assert_eq!(
            p.client_address(),
            &ClientAddress::Header {
                name: "cf-connecting-ip".to_string()
            }
        );
        let p = Policy::from_json(br#"{"signature":{"required":false},"sources":{"client_address":{"from":"x-forwarded-for","trusted_hops":2}}}"#).unwrap();
        assert_eq!(
            p.client_address(),
            &ClientAddress::ForwardedFor { trusted_hops: 2 }
        );
        assert!(
            !errors(
                r#"{"signature":{"required":false},"sources":{"client_address":{"from":"header"}}}"#
            )
            .is_empty()
        );
        assert!(!errors(r#"{"signature":{"required":false},"sources":{"client_address":{"from":"header","name":"bad name"}}}"#).is_empty());
    }

    #[test]
    fn a_preset_merges_with_the_blocklist() {
        let p = Policy::from_json(
            br#"{"signature":{"required":false},"blocklist_preset":"personal-data"}"#,
        )
        .unwrap();
        assert!(p.can_change_body());
        let preset_only = p.blocklist;
        let p = Policy::from_json(br#"{"signature":{"required":false},"blocklist_preset":"personal-data","blocklist":["reviewer-comment","!address-country-code"]}"#).unwrap();
        let key = |list: &Blocklist, k: &str| {
            let form = crate::inflection::match_form_string(k);
            list.removes(&form, &crate::blocklist::KeyPath::default(), None)
        };
        assert!(key(&preset_only, "addressCountryCode"));
        assert!(
            !key(&p.blocklist, "addressCountryCode"),
            "the exemption wins"
        );
        assert!(key(&p.blocklist, "address_city"));
        assert!(key(&p.blocklist, "reviewer-comment"), "the blocklist adds");
        assert!(!key(&preset_only, "reviewer-comment"));
    }

    #[test]
    fn an_unknown_preset_is_refused_with_the_known_ones() {
        assert_eq!(
            errors(
                r#"{"signature":{"required":false},"blocklist_preset":"pii","blocklist":["ok",""]}"#
            ),
            [
                "blocklist_preset: \"pii\" is not a preset; expected one of: \"personal-data\"",
                "blocklist[1]: empty entry",
            ]
        );
        assert_eq!(
            errors(r#"{"signature":{"required":false},"blocklist_preset":["personal-data"]}"#),
            ["blocklist_preset: must be a string, found a list"]
        );
    }

    #[test]
    fn resign_needs_a_verified_signature() {
        assert_eq!(
            errors(r#"{"signature":{"required":false},"resign":{"secret":"origin"}}"#),
            [
                "resign: needs signature.required: true: re-signing deliveries that were not verified would give forged events the origin's signature"
            ]
        );
        assert!(
            Policy::from_json(br#"{"signature":{"secrets":["s"]},"resign":{"secret":"origin"}}"#)
                .unwrap()
                .resigns()
        );
    }

    #[test]
    fn dedup_section() {
        let load = |dedup: &str| {
            Policy::from_json(format!(r#"{{"signature":{{"required":false}}{dedup}}}"#).as_bytes())
        };
        assert_eq!(load("").unwrap().dedup(), None);
        assert_eq!(
            load(r#","dedup":{}"#).unwrap().dedup(),
            Some(&DedupSettings::default())
        );
        assert_eq!(
            load(r#","dedup":{"enabled":false,"ttl_seconds":60}"#)
                .unwrap()
                .dedup(),
            None
        );
        assert_eq!(
            load(r#","dedup":{"enabled":true,"ttl_seconds":1,"in_flight_seconds":1,"capacity":1}"#)
                .unwrap()
                .dedup(),
            Some(&DedupSettings {
                ttl_seconds: 1,
                in_flight_seconds: 1,
                capacity: 1
            })
        );
        let errs = errors(
            r#"{"signature":{"required":false},"dedup":{"enabled":"yes","ttl_seconds":0,"in_flight_seconds":3601,"capacity":1048577,"size":1}}"#,
        );
        assert_eq!(
            errs,
            [
                "dedup.size: unknown field; expected one of: enabled, ttl_seconds, in_flight_seconds, capacity",
                "dedup.enabled: must be true or false, found a string",
                "dedup.ttl_seconds: must be a whole number from 1 to 2592000, found 0",
                "dedup.in_flight_seconds: must be a whole number from 1 to 3600, found 3601",
                "dedup.capacity: must be a whole number from 1 to 1048576, found 1048577",
            ]
        );
        assert_eq!(
            errors(r#"{"signature":{"required":false},"dedup":{"ttl_seconds":10}}"#),
            ["dedup.in_flight_seconds: 30 is longer than dedup.ttl_seconds (10)"]
        );
        assert_eq!(
            errors(r#"{"signature":{"required":false},"dedup":true}"#),
            ["dedup: must be an object, found a boolean"]
        );
    }

    #[test]
    fn peer_is_refused_where_the_host_has_none() {
        let options = LoadOptions {
            default_client_address: ClientAddress::Header {
                name: "cf-connecting-ip".to_string(),
            },
            peer_available: false,
            host_name: "the test host",
            ..LoadOptions::default()
        };
        let doc =
            br#"{"signature":{"required":false},"sources":{"client_address":{"from":"peer"}}}"#;
        let e = Policy::load(doc, &options).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"sources.client_address.from: "peer" is not available in the test host, which is given no connection peer address; use {"from": "header", "name": "cf-connecting-ip"} (the default when sources.client_address is absent), or {"from": "x-forwarded-for", "trusted_hops": N} behind proxies you run"#
        );
        // The default and the other sources load; a host with a peer takes "peer".
        assert!(Policy::load(br#"{"signature":{"required":false}}"#, &options).is_ok());
        assert!(Policy::load(br#"{"signature":{"required":false},"sources":{"client_address":{"from":"x-forwarded-for","trusted_hops":1}}}"#, &options).is_ok());
        assert!(Policy::from_json(doc).is_ok());
    }

    #[test]
    fn secrets_from_the_environment() {
        let env = |name: &str| (name == "PERSONA_SECRET").then(|| "wbhsec_env".to_string());
        let options = LoadOptions {
            env: &env,
            ..LoadOptions::default()
        };
        let p = Policy::load(br#"{"signature":{"secrets_env":["PERSONA_SECRET"]},"resign":{"secret_env":"PERSONA_SECRET"}}"#, &options).unwrap();
        assert_eq!(p.secrets, ["wbhsec_env"]);
        assert!(p.resigns());
        let e =
            Policy::load(br#"{"signature":{"secrets_env":["MISSING"]}}"#, &options).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(e.0[0].field, "signature.secrets_env[0]");
    }
}
