//! The configuration document, the same JSON for every packaging, and its compiled
//! form, [`Policy`]. Loading reports every problem at once, each naming its field.
//!
//! Two phases. serde_json parses the text into [`Node`]s, which keep every member of
//! an object in document order, a repeated name too; serde then reads the typed
//! sections ([`Document`]) from them. A value of the wrong type ([`Field`]), a section
//! that is not an object ([`Section`]) and an unknown field are kept to be reported
//! instead of ending the read, so that one load lists every problem; only text that is
//! not JSON ends it, and a field given twice ends its section. Then [`Checker`]
//! compiles the sections into a [`Policy`]: types and bounds, addresses, secrets from
//! the environment, the blocklist, and the rules between fields.
//!
//! Not `#[serde(deny_unknown_fields)]`, which ends the read at the first unknown field,
//! nor serde_json's `Value`, which keeps one of two members of the same name.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use ipnet::IpNet;
use serde::de::value::{BorrowedStrDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};
use serde::{Deserialize, forward_to_deserialize_any};

use crate::address::{Allowlist, ClientAddress, named_set, parse_net};
use crate::blocklist::Blocklist;
use crate::dedup::{self, DedupSettings};
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
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
        let document = read(config).map_err(|e| ConfigErrors(alloc::vec![e]))?;
        let mut c = Checker { errors: Vec::new() };
        let policy = c.policy(&document, options);
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
        crate::rewrite::plan(&self.blocklist, self.inflection) != crate::rewrite::Plan::Unchanged
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

/// The document as serde reads it. Every field is optional: absence means the default.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Document {
    mode: Field<Mode>,
    sources: Section<Sources>,
    signature: Section<Signature>,
    blocklist: Strings,
    blocklist_preset: Field<String>,
    events: Section<Events>,
    normalize: Section<Normalize>,
    resign: Section<Resign>,
    limits: Section<Limits>,
    dedup: Section<Dedup>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Sources {
    allow: Strings,
    client_address: Section<ClientAddressSection>,
}

/// `sources.client_address`: one object whose valid fields depend on `from`, read
/// flat so that a field given with the wrong `from` is named as such.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ClientAddressSection {
    from: Field<AddressSource>,
    trusted_hops: Field<u64>,
    name: Field<String>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum AddressSource {
    Peer,
    XForwardedFor,
    Header,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Signature {
    required: Field<bool>,
    secrets: Strings,
    secrets_env: Strings,
    tolerance_seconds: Field<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Events {
    forward: Strings,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Normalize {
    inflection: Field<Inflection>,
    routing_headers: Field<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Resign {
    secret: Field<String>,
    secret_env: Field<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Limits {
    max_body_bytes: Field<u64>,
    max_depth: Field<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Dedup {
    enabled: Field<bool>,
    ttl_seconds: Field<u64>,
    in_flight_seconds: Field<u64>,
    capacity: Field<u64>,
}

/// The names are [`Inflection::parse`]'s.
impl<'de> Deserialize<'de> for Inflection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Inflection::parse(&name)
            .ok_or_else(|| de::Error::invalid_value(de::Unexpected::Str(&name), &"an inflection"))
    }
}

/// A value as the document gave it. One of the wrong type is kept, to be reported
/// with what was found, where serde's own error would end the whole read.
#[derive(Default)]
enum Field<T> {
    #[default]
    Absent,
    Given(T),
    Wrong(Node),
}

impl<T> Field<T> {
    fn is_present(&self) -> bool {
        !matches!(self, Field::Absent)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let node = Node::deserialize(deserializer)?;
        Ok(match T::deserialize(NodeDeserializer(&node)) {
            Ok(typed) => Field::Given(typed),
            Err(Refused) => Field::Wrong(node),
        })
    }
}

/// A list of strings. Read as a list of any values, so that each element that is not
/// a string is reported with its index.
type Strings = Field<Vec<Node>>;

/// An object-valued field, read by a derived struct.
#[derive(Default)]
enum Section<T> {
    #[default]
    Absent,
    Given {
        value: T,
        /// The struct's field names, for the "unknown field" message.
        fields: &'static [&'static str],
        /// The members that are none of them, in document order.
        unknown: Vec<String>,
    },
    /// A field given twice. The derived struct stops at it, so the rest of the section
    /// goes unchecked.
    Repeated(String),
    /// Not an object: what was found instead.
    Wrong(&'static str),
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Section<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let members = match Node::deserialize(deserializer)? {
            Node::Object(members) => members,
            other => return Ok(Section::Wrong(other.kind())),
        };
        let mut map = Members {
            members: &members,
            read: 0,
            fields: &[],
        };
        Ok(match T::deserialize(&mut map) {
            Ok(value) => Section::Given {
                value,
                fields: map.fields,
                unknown: map.unknown(),
            },
            // Its members never refuse a value, so the struct's only refusal is
            // `duplicate_field`, raised on the name just read.
            Err(Refused) => Section::Repeated(map.last_name()),
        })
    }
}

/// The document as serde_json parsed it, with every object's members in document
/// order and repeated names kept: serde_json's `Value` keeps one of them, and which
/// one the author meant is not known. The sections' structs are read from it.
enum Node {
    Null,
    Bool(bool),
    Unsigned(u64),
    Negative(i64),
    /// A fraction, an exponent, `-0`, or a whole number past `u64`.
    Float(f64),
    String(String),
    List(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Node {
    /// What it is, as messages name it.
    fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Unsigned(_) | Node::Negative(_) | Node::Float(_) => "a number",
            Node::String(_) => "a string",
            Node::List(_) => "a list",
            Node::Object(_) => "an object",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Node, E> {
        Ok(Node::Unsigned(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Node, E> {
        // serde_json gives every non-negative whole number as `u64`.
        Ok(u64::try_from(n).map_or(Node::Negative(n), Node::Unsigned))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Node, E> {
        Ok(Node::Float(n))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Node, E> {
        Ok(Node::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Node, E> {
        Ok(Node::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Node::Object(members))
    }
}

/// A node handed to the type of its field.
struct NodeDeserializer<'n>(&'n Node);

/// A type refused its value. Why is not kept: the checker describes the value itself.
#[derive(Debug)]
struct Refused;

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused")
    }
}

impl de::StdError for Refused {}

/// Every reason is dropped unformatted: serde's defaults format it first, which
/// links float formatting (20 KB of tables) into the `.wasm` for messages never shown.
impl de::Error for Refused {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Refused
    }
    fn invalid_type(_: de::Unexpected<'_>, _: &dyn de::Expected) -> Self {
        Refused
    }
    fn invalid_value(_: de::Unexpected<'_>, _: &dyn de::Expected) -> Self {
        Refused
    }
    fn invalid_length(_: usize, _: &dyn de::Expected) -> Self {
        Refused
    }
    fn unknown_variant(_: &str, _: &'static [&'static str]) -> Self {
        Refused
    }
    fn unknown_field(_: &str, _: &'static [&'static str]) -> Self {
        Refused
    }
    fn missing_field(_: &'static str) -> Self {
        Refused
    }
    fn duplicate_field(_: &'static str) -> Self {
        Refused
    }
}

impl<'de> IntoDeserializer<'de, Refused> for NodeDeserializer<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> Deserializer<'de> for NodeDeserializer<'de> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        match self.0 {
            Node::Null => visitor.visit_unit(),
            Node::Bool(b) => visitor.visit_bool(*b),
            Node::Unsigned(n) => visitor.visit_u64(*n),
            Node::Negative(n) => visitor.visit_i64(*n),
            Node::Float(n) => visitor.visit_f64(*n),
            Node::String(s) => visitor.visit_borrowed_str(s),
            Node::List(items) => {
                let mut seq = SeqDeserializer::new(items.iter().map(NodeDeserializer));
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            Node::Object(members) => {
                let mut map = MapDeserializer::new(
                    members
                        .iter()
                        .map(|(name, node)| (name.as_str(), NodeDeserializer(node))),
                );
                let value = visitor.visit_map(&mut map)?;
                map.end()?;
                Ok(value)
            }
        }
    }

    /// A closed set of names (`mode`) is an enum of unit variants, named by a string.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        match self.0 {
            Node::String(s) => visitor.visit_enum(BorrowedStrDeserializer::new(s)),
            _ => Err(Refused),
        }
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map struct
        identifier ignored_any
    }
}

/// An object's members handed to a derived struct, which also names its fields.
struct Members<'m> {
    members: &'m [(String, Node)],
    /// How many members the struct has read.
    read: usize,
    fields: &'static [&'static str],
}

impl Members<'_> {
    /// The members that are none of the struct's fields, in document order.
    // Out of line, like the other parts of reading a section that do not depend on
    // its type: one copy for every section.
    #[inline(never)]
    fn unknown(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|(name, _)| !self.fields.contains(&name.as_str()))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The name of the member read last.
    #[inline(never)]
    fn last_name(&self) -> String {
        let last = self.read.checked_sub(1).and_then(|i| self.members.get(i));
        last.map(|(name, _)| name.clone()).unwrap_or_default()
    }
}

impl<'de> MapAccess<'de> for Members<'de> {
    type Error = Refused;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Refused> {
        let Some((name, _)) = self.members.get(self.read) else {
            return Ok(None);
        };
        self.read += 1;
        seed.deserialize(BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Refused> {
        match self.read.checked_sub(1).and_then(|i| self.members.get(i)) {
            Some((_, node)) => seed.deserialize(NodeDeserializer(node)),
            None => Err(Refused),
        }
    }
}

impl<'de> Deserializer<'de> for &mut Members<'de> {
    type Error = Refused;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Refused> {
        visitor.visit_map(self)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Refused> {
        self.fields = fields;
        visitor.visit_map(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

/// Reads the document: serde_json parses it (a refusal, with its position, is then
/// the only error), and the sections are read from what it parsed.
fn read(config: &[u8]) -> Result<Section<Document>, ConfigError> {
    let root: Node = serde_json::from_slice(config).map_err(|e| ConfigError {
        field: String::new(),
        message: format!("not valid JSON: {e}"),
    })?;
    Section::deserialize(NodeDeserializer(&root)).map_err(|Refused| ConfigError {
        field: String::new(),
        message: String::from("cannot be read"),
    })
}

/// Compiles a read document into a [`Policy`], collecting every problem.
struct Checker {
    errors: Vec<ConfigError>,
}

impl Checker {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// The section's fields, with its unknown fields reported; `None` when absent, not
    /// an object, or with a field given twice.
    fn section<'s, T>(&mut self, section: &'s Section<T>, field: &str) -> Option<&'s T> {
        match section {
            Section::Absent => None,
            Section::Given {
                value,
                fields,
                unknown,
            } => {
                self.unknown_fields(field, fields, unknown);
                Some(value)
            }
            Section::Repeated(name) => {
                self.error(
                    &join(field, name),
                    "duplicate field; each field may appear only once",
                );
                None
            }
            Section::Wrong(found) => {
                self.error(field, format!("must be an object, found {found}"));
                None
            }
        }
    }

    // The reports below are out of line: the generic callers are copied once per type.
    #[inline(never)]
    fn unknown_fields(&mut self, field: &str, fields: &[&str], unknown: &[String]) {
        for name in unknown {
            self.error(
                &join(field, name),
                format!("unknown field; expected one of: {}", fields.join(", ")),
            );
        }
    }

    #[inline(never)]
    fn wrong_type(&mut self, field: &str, expected: &str, found: &Node) {
        self.error(field, format!("must be {expected}, found {}", found.kind()));
    }

    /// The value if given with its type, or what was found instead (`Err`).
    fn typed<T>(value: &Field<T>) -> Result<Option<&T>, &Node> {
        match value {
            Field::Absent => Ok(None),
            Field::Given(v) => Ok(Some(v)),
            Field::Wrong(found) => Err(found),
        }
    }

    /// The value when it has the type `expected` names; otherwise reported.
    fn given<'f, T>(&mut self, value: &'f Field<T>, field: &str, expected: &str) -> Option<&'f T> {
        Self::typed(value).unwrap_or_else(|found| {
            self.wrong_type(field, expected, found);
            None
        })
    }

    fn string<'f>(&mut self, value: &'f Field<String>, field: &str) -> Option<&'f str> {
        self.given(value, field, "a string").map(String::as_str)
    }

    fn boolean(&mut self, value: &Field<bool>, field: &str) -> Option<bool> {
        self.given(value, field, "true or false").copied()
    }

    /// One of a closed set of names: a string that is none of them is reported as
    /// the string followed by `refused`.
    fn choice<T: Copy>(&mut self, value: &Field<T>, field: &str, refused: &str) -> Option<T> {
        match Self::typed(value) {
            Ok(choice) => choice.copied(),
            Err(found) => {
                self.not_a_choice(field, found, refused);
                None
            }
        }
    }

    #[inline(never)]
    fn not_a_choice(&mut self, field: &str, found: &Node, refused: &str) {
        match found {
            Node::String(name) => self.error(field, format!("{}{refused}", Quoted(name))),
            other => self.wrong_type(field, "a string", other),
        }
    }

    fn integer(&mut self, value: &Field<u64>, field: &str, min: u64, max: u64) -> Option<u64> {
        // Whole numbers as written, within the signed range; not those serde_json
        // reads as floats (`1.5`, `3e2`, `-0`).
        let out_of_range = || String::from("a fraction or an out-of-range number");
        let found = match Self::typed(value) {
            Ok(None) => return None,
            Ok(Some(n)) if (min..=max).contains(n) => return Some(*n),
            Ok(Some(n)) if i64::try_from(*n).is_ok() => format!("{n}"),
            Ok(Some(_)) | Err(Node::Unsigned(_) | Node::Float(_)) => out_of_range(),
            Err(Node::Negative(n)) => format!("{n}"),
            Err(other) => String::from(other.kind()),
        };
        self.error(
            field,
            format!("must be a whole number from {min} to {max}, found {found}"),
        );
        None
    }

    /// A list of strings, each with its field (`sources.allow[2]`); each bad element is
    /// reported.
    fn strings<'f>(&mut self, value: &'f Strings, field: &str) -> Option<Vec<(String, &'f str)>> {
        let items = match Self::typed(value) {
            Ok(None) => return None,
            Ok(Some(items)) => items,
            Err(found) => {
                self.error(
                    field,
                    format!("must be a list of strings, found {}", found.kind()),
                );
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("{field}[{i}]");
            match item {
                Node::String(s) => out.push((at, s.as_str())),
                other => self.wrong_type(&at, "a string", other),
            }
        }
        Some(out)
    }

    fn policy(
        &mut self,
        document: &Section<Document>,
        options: &LoadOptions<'_>,
    ) -> Option<Policy> {
        let root = self.section(document, "")?;

        let mode = self
            .choice(
                &root.mode,
                "mode",
                " is not a mode; expected \"enforce\" or \"shadow\"",
            )
            .unwrap_or(Mode::Enforce);

        let (allowlist, client_address) = self.sources(&root.sources, options);
        let (signature_required, secrets, tolerance) = self.signature(&root.signature, options);
        let blocklist = self.blocklist(&root.blocklist, &root.blocklist_preset);
        let forward_events = self.events(&root.events);

        let normalize = self.section(&root.normalize, "normalize");
        let inflection = normalize
            .and_then(|n| {
                self.choice(
                    &n.inflection,
                    "normalize.inflection",
                    " is not an inflection; expected \"preserve\", \"kebab\", \"camel\" or \"snake\"",
                )
            })
            .unwrap_or(Inflection::Preserve);
        let routing_headers = normalize
            .and_then(|n| self.boolean(&n.routing_headers, "normalize.routing_headers"))
            .unwrap_or(true);

        let resign_secret = self.resign(&root.resign, options);
        if resign_secret.is_some() && !signature_required {
            // The new signature vouches for the delivery to the origin: without
            // verification it would vouch for anything anyone sent.
            self.error(
                "resign",
                "needs signature.required: true: re-signing deliveries that were not verified would give forged events the origin's signature",
            );
        }

        let limits = self.section(&root.limits, "limits");
        let max_body_bytes = limits
            .and_then(|l| {
                self.integer(
                    &l.max_body_bytes,
                    "limits.max_body_bytes",
                    1,
                    MAX_BODY_BYTES_LIMIT as u64,
                )
            })
            .map_or(DEFAULT_MAX_BODY_BYTES, |n| n as usize);
        let max_depth = limits
            .and_then(|l| {
                self.integer(
                    &l.max_depth,
                    "limits.max_depth",
                    MIN_DEPTH as u64,
                    MAX_DEPTH_LIMIT as u64,
                )
            })
            .map_or(DEFAULT_MAX_DEPTH, |n| n as usize);

        let dedup = self.dedup(&root.dedup);

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
    fn dedup(&mut self, section: &Section<Dedup>) -> Option<DedupSettings> {
        let section = self.section(section, "dedup")?;
        let enabled = self
            .boolean(&section.enabled, "dedup.enabled")
            .unwrap_or(true);
        let defaults = DedupSettings::default();
        let ttl_seconds = self
            .integer(
                &section.ttl_seconds,
                "dedup.ttl_seconds",
                1,
                dedup::MAX_TTL_SECONDS,
            )
            .unwrap_or(defaults.ttl_seconds);
        let in_flight_seconds = self
            .integer(
                &section.in_flight_seconds,
                "dedup.in_flight_seconds",
                1,
                dedup::MAX_IN_FLIGHT_SECONDS,
            )
            .unwrap_or(defaults.in_flight_seconds);
        let capacity = self
            .integer(
                &section.capacity,
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
        section: &Section<Sources>,
        options: &LoadOptions<'_>,
    ) -> (Allowlist, ClientAddress) {
        let sources = self.section(section, "sources");
        let mut allowlist = Allowlist::default();
        let entries = match sources.and_then(|s| self.strings(&s.allow, "sources.allow")) {
            // The default: every Persona address (a valid entry, so never reported).
            None => alloc::vec![(String::new(), "persona")],
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

        let client_address =
            match sources.and_then(|s| self.section(&s.client_address, "sources.client_address")) {
                None => options.default_client_address.clone(),
                Some(c) => self.client_address(c, options),
            };
        (allowlist, client_address)
    }

    fn client_address(
        &mut self,
        c: &ClientAddressSection,
        options: &LoadOptions<'_>,
    ) -> ClientAddress {
        let from = self.choice(
            &c.from,
            "sources.client_address.from",
            ": expected \"peer\", \"x-forwarded-for\" or \"header\"",
        );
        let hops = c.trusted_hops.is_present();
        let name = c.name.is_present();
        match from {
            None => {
                if !c.from.is_present() {
                    self.error(
                        "sources.client_address.from",
                        "missing; expected \"peer\", \"x-forwarded-for\" or \"header\"",
                    );
                }
                ClientAddress::Peer
            }
            Some(AddressSource::Peer) => {
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
                if hops {
                    self.error(
                        "sources.client_address.trusted_hops",
                        "only applies to \"from\": \"x-forwarded-for\"",
                    );
                }
                if name {
                    self.error(
                        "sources.client_address.name",
                        "only applies to \"from\": \"header\"",
                    );
                }
                ClientAddress::Peer
            }
            Some(AddressSource::XForwardedFor) => {
                if name {
                    self.error(
                        "sources.client_address.name",
                        "only applies to \"from\": \"header\"",
                    );
                }
                if !hops {
                    self.error("sources.client_address.trusted_hops", "required with \"from\": \"x-forwarded-for\": how many proxies you trust append to it");
                }
                let trusted_hops = self
                    .integer(
                        &c.trusted_hops,
                        "sources.client_address.trusted_hops",
                        1,
                        16,
                    )
                    .map_or(1, |n| n as u32);
                ClientAddress::ForwardedFor { trusted_hops }
            }
            Some(AddressSource::Header) => {
                if hops {
                    self.error(
                        "sources.client_address.trusted_hops",
                        "only applies to \"from\": \"x-forwarded-for\"",
                    );
                }
                match self.string(&c.name, "sources.client_address.name") {
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
                        if !name {
                            self.error(
                                "sources.client_address.name",
                                "required with \"from\": \"header\", such as \"CF-Connecting-IP\"",
                            );
                        }
                        ClientAddress::Peer
                    }
                }
            }
        }
    }

    fn signature(
        &mut self,
        section: &Section<Signature>,
        options: &LoadOptions<'_>,
    ) -> (bool, Vec<String>, u64) {
        let errors_before = self.errors.len();
        let sig = self.section(section, "signature");
        let required = sig
            .and_then(|s| self.boolean(&s.required, "signature.required"))
            .unwrap_or(true);
        let mut secrets = Vec::new();
        for (at, secret) in sig
            .and_then(|s| self.strings(&s.secrets, "signature.secrets"))
            .unwrap_or_default()
        {
            if secret.is_empty() {
                self.error(&at, "empty secret");
            } else {
                secrets.push(secret.to_owned());
            }
        }
        for (at, var) in sig
            .and_then(|s| self.strings(&s.secrets_env, "signature.secrets_env"))
            .unwrap_or_default()
        {
            match (options.env)(var) {
                Some(secret) if !secret.is_empty() => secrets.push(secret),
                _ => self.error(
                    &at,
                    format!("the variable {} is not set or empty", Quoted(var)),
                ),
            }
        }
        let tolerance = sig
            .and_then(|s| {
                self.integer(
                    &s.tolerance_seconds,
                    "signature.tolerance_seconds",
                    0,
                    7 * 24 * 3600,
                )
            })
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
    fn blocklist(&mut self, blocklist: &Strings, preset: &Field<String>) -> Blocklist {
        let mut entries: Vec<String> = Vec::new();
        if let Some(name) = self.string(preset, "blocklist_preset") {
            match find_preset(name) {
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
                            Quoted(name),
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        let from_preset = entries.len();
        entries.extend(
            self.strings(blocklist, "blocklist")
                .unwrap_or_default()
                .into_iter()
                .map(|(_, s)| s.to_owned()),
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

    fn events(&mut self, section: &Section<Events>) -> Vec<Vec<u8>> {
        let events = self.section(section, "events");
        let Some(patterns) = events.and_then(|e| self.strings(&e.forward, "events.forward")) else {
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
                        Quoted(p)
                    ),
                );
            } else {
                out.push(p.as_bytes().to_vec());
            }
        }
        out
    }

    fn resign(&mut self, section: &Section<Resign>, options: &LoadOptions<'_>) -> Option<String> {
        let resign = self.section(section, "resign")?;
        let secret = self.string(&resign.secret, "resign.secret");
        let var = self.string(&resign.secret_env, "resign.secret_env");
        match (secret, var) {
            (Some(s), None) if !s.is_empty() => Some(s.to_owned()),
            (None, Some(v)) => match (options.env)(v) {
                Some(s) if !s.is_empty() => Some(s),
                _ => {
                    self.error(
                        "resign.secret_env",
                        format!("the variable {} is not set or empty", Quoted(v)),
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
                if !resign.secret.is_present() && !resign.secret_env.is_present() {
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
        assert_eq!(
            errors(
                r#"{"signature":{"required":false},"sources":{"client_address":{"from":"peer","from":"header"}}}"#
            ),
            ["sources.client_address.from: duplicate field; each field may appear only once"]
        );
    }

    #[test]
    fn an_unknown_field_lists_its_section_s_fields() {
        assert_eq!(
            errors(
                r#"{"signature":{"required":false,"secret":"s"},"sources":{"client_address":{"from":"peer","port":1}}}"#
            ),
            [
                "sources.client_address.port: unknown field; expected one of: from, trusted_hops, name",
                "signature.secret: unknown field; expected one of: required, secrets, secrets_env, tolerance_seconds",
            ]
        );
    }

    #[test]
    fn a_section_of_the_wrong_kind_stops_nothing_else() {
        assert_eq!(
            errors(
                r#"{"limits":[{"max_depth":1}],"sources":"persona","signature":{"required":false},"events":{"forward":"*"},"mode":"Shadow"}"#
            ),
            [
                "mode: \"Shadow\" is not a mode; expected \"enforce\" or \"shadow\"",
                "sources: must be an object, found a string",
                "events.forward: must be a list of strings, found a string",
                "limits: must be an object, found a list",
            ]
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
        // serde_json's words and position.
        assert_eq!(
            errors("{\n  \"mode\": \"shadow\",\n}"),
            ["not valid JSON: trailing comma at line 3 column 1"]
        );
        assert_eq!(
            errors(""),
            ["not valid JSON: EOF while parsing a value at line 1 column 0"]
        );
        assert_eq!(
            errors(r#"{"signature":{"required":false}} {}"#),
            ["not valid JSON: trailing characters at line 1 column 34"]
        );
        let mut invalid_utf8 = br#"{"signature":{"required":false},"mode":"x"}"#.to_vec();
        invalid_utf8[40] = 0xff;
        assert_eq!(
            Policy::from_json(&invalid_utf8).unwrap_err().to_string(),
            "not valid JSON: invalid unicode code point at line 1 column 41"
        );
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(
            errors(&format!(
                r#"{{"signature":{{"required":false}},"mode":{}}}"#,
                deep(200)
            )),
            ["not valid JSON: recursion limit exceeded at line 1 column 166"]
        );
        // Wherever it is, an unknown field's value too.
        assert_eq!(
            errors(&format!(
                r#"{{"signature":{{"required":false}},"x":{}}}"#,
                deep(100_000)
            )),
            ["not valid JSON: recursion limit exceeded at line 1 column 163"]
        );
        assert_eq!(errors("[]"), ["must be an object, found a list"]);
        assert_eq!(errors("null"), ["must be an object, found null"]);
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
