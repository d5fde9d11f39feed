//! Persona's attribute blocklist language, the same entries as the dashboard takes:
//!
//! - a simple entry (`birthdate`, `name-*`, `*-number`) removes a matching key wherever
//!   it appears inside any `attributes` object of the payload, at any depth;
//! - a fully qualified entry (`/data/attributes/fields/name-*`, `/*/attributes/x`) is a
//!   path of key patterns rooted at the event's `payload`; arrays such as `included`
//!   are transparent (the path applies to each element);
//! - `?type=inquiry` limits an entry to resources of that type;
//! - `!` makes an entry an exemption, which always beats a block for the key it
//!   matches. It does not rescue a key whose parent is removed: exempt the parent too,
//!   as in Persona's recipe (`/data/attributes/*`, `!/data/attributes/fields`,
//!   `/data/attributes/fields/*`, `!/data/attributes/fields/selected-country-code`).
//!
//! Keys, patterns and types are compared in their inflection-insensitive form, after
//! JSON unescaping, so `emailAddress`, `email_address` and `email-address` are one.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::glob;
use crate::inflection::{is_separator, match_form_string};
use crate::json::{Quoted, same_bytes};

/// One compiled key pattern. Nearly every real entry is a literal, a prefix
/// (`name-*`) or a suffix (`*-number`), which compare with one `memcmp`.
#[derive(Clone, Debug)]
enum Matcher {
    Exact(Vec<u8>),
    Prefix(Vec<u8>),
    Suffix(Vec<u8>),
    Any,
    Glob(Vec<u8>),
}

impl Matcher {
    fn compile(pattern: Vec<u8>) -> Matcher {
        let stars = pattern.iter().filter(|&&b| b == b'*').count();
        match (stars, pattern.first(), pattern.last()) {
            (0, _, _) => Matcher::Exact(pattern),
            (1, Some(b'*'), _) if pattern.len() == 1 => Matcher::Any,
            (1, _, Some(b'*')) => Matcher::Prefix(
                pattern
                    .get(..pattern.len() - 1)
                    .unwrap_or_default()
                    .to_vec(),
            ),
            (1, Some(b'*'), _) => Matcher::Suffix(pattern.get(1..).unwrap_or_default().to_vec()),
            _ => Matcher::Glob(pattern),
        }
    }

    /// One end byte is compared first: nearly every key that does not match differs
    /// there. No `memcmp` calls: keys are short, and in Wasm `memcmp` is a byte loop.
    #[inline(always)]
    fn matches(&self, text: &[u8]) -> bool {
        match self {
            Matcher::Exact(p) => p.first() == text.first() && same_bytes(p, text),
            Matcher::Prefix(p) => {
                p.first() == text.first() && text.get(..p.len()).is_some_and(|t| same_bytes(p, t))
            }
            Matcher::Suffix(p) => {
                p.last() == text.last()
                    && text
                        .len()
                        .checked_sub(p.len())
                        .and_then(|at| text.get(at..))
                        .is_some_and(|t| same_bytes(p, t))
            }
            Matcher::Any => true,
            Matcher::Glob(p) => glob::matches(p, text),
        }
    }
}

#[derive(Clone, Debug)]
enum Pattern {
    /// A key pattern, matched at any depth inside `attributes`.
    Key(Matcher),
    /// Key patterns from the payload root, one per step.
    Path(Vec<Matcher>),
}

#[derive(Clone, Debug)]
struct Entry {
    pattern: Pattern,
    /// A pattern on the resource's `type`.
    resource_type: Option<Matcher>,
}

/// A compiled blocklist.
#[derive(Clone, Debug, Default)]
pub(crate) struct Blocklist {
    blocks: Vec<Entry>,
    exemptions: Vec<Entry>,
    /// Whether any entry is a path: only then is the key path tracked.
    uses_paths: bool,
    /// Whether any entry filters on `?type=`: only then is a resource's type read.
    uses_types: bool,
    /// For the key patterns without `?type=` (when there are 1 to 64 of them): which
    /// of them a key can match, by its first and last byte.
    key_index: Option<alloc::boxed::Box<KeyIndex>>,
    /// The entries `key_index` does not hold (all of them without an index): paths and
    /// `?type=` entries, checked one by one. A preset with a couple of paths among
    /// dozens of key patterns so costs a few compares per key, not dozens.
    rest_blocks: Vec<Entry>,
    rest_exemptions: Vec<Entry>,
}

/// Candidate entries by a key's first and last byte: nearly every key can match
/// only one or two entries of a blocklist, or none, so a decision is a few compares.
#[derive(Clone, Debug)]
struct KeyIndex {
    /// The key patterns: blocks, then exemptions from `first_exemption` on.
    keys: Vec<Matcher>,
    first_exemption: usize,
    /// Bit `i`: `keys[i]` may match a key that starts (`first`) or ends (`last`) with
    /// this byte; `always`: it may match any key.
    first: [u64; 256],
    last: [u64; 256],
    always: u64,
    /// The bits of the blocks (not the exemptions).
    blocks: u64,
}

impl KeyIndex {
    /// `blocks` and `exemptions` are key patterns without `?type=`.
    fn build(blocks: &[&Entry], exemptions: &[&Entry]) -> Option<KeyIndex> {
        if blocks.len() + exemptions.len() > 64 || blocks.is_empty() && exemptions.is_empty() {
            return None;
        }
        let mut index = KeyIndex {
            keys: Vec::new(),
            first_exemption: blocks.len(),
            first: [0; 256],
            last: [0; 256],
            always: 0,
            blocks: 0,
        };
        for (i, entry) in blocks.iter().chain(exemptions).enumerate() {
            let (Pattern::Key(matcher), None, true) =
                (&entry.pattern, &entry.resource_type, i < 64)
            else {
                return None;
            };
            let bit = 1u64 << i;
            match matcher {
                Matcher::Exact(p) | Matcher::Prefix(p) if !p.is_empty() => {
                    if let Some(slot) = p.first().and_then(|&b| index.first.get_mut(usize::from(b)))
                    {
                        *slot |= bit;
                    }
                }
                Matcher::Suffix(p) if !p.is_empty() => {
                    if let Some(slot) = p.last().and_then(|&b| index.last.get_mut(usize::from(b))) {
                        *slot |= bit;
                    }
                }
                _ => index.always |= bit,
            }
            index.keys.push(matcher.clone());
            if i < blocks.len() {
                index.blocks |= bit;
            }
        }
        Some(index)
    }

    /// The entries that may match a key whose match form starts with `first` and
    /// ends with `last`.
    fn candidates(&self, first: Option<&u8>, last: Option<&u8>) -> u64 {
        let at = |table: &[u64; 256], b: Option<&u8>| {
            b.and_then(|&b| table.get(usize::from(b)))
                .copied()
                .unwrap_or(0)
        };
        self.always | at(&self.first, first) | at(&self.last, last)
    }

    fn removes(&self, key: &[u8]) -> bool {
        matches!(self.decide(key), (true, false))
    }

    /// Whether a block, and whether an exemption, of the index matches the key (an
    /// exemption ends the search: it always wins).
    fn decide(&self, key: &[u8]) -> (bool, bool) {
        let mut candidates = self.candidates(key.first(), key.last());
        let mut blocked = false;
        while candidates != 0 {
            let i = candidates.trailing_zeros() as usize;
            candidates &= candidates - 1;
            if self.keys.get(i).is_some_and(|m| m.matches(key)) {
                if i >= self.first_exemption {
                    return (blocked, true);
                }
                blocked = true;
            }
        }
        (blocked, false)
    }
}

/// The path from the payload root to the current key: each step's match form.
#[derive(Default)]
pub(crate) struct KeyPath {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyPath {
    pub(crate) fn push(&mut self, form: &[u8]) {
        self.bytes.extend_from_slice(form);
        self.ends.push(self.bytes.len());
    }

    pub(crate) fn pop(&mut self) {
        self.ends.pop();
        let end = self.ends.last().copied().unwrap_or(0);
        self.bytes.truncate(end);
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn step(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0)
        };
        let end = self.ends.get(i).copied().unwrap_or(start);
        self.bytes.get(start..end).unwrap_or_default()
    }
}

impl Entry {
    #[inline(always)]
    fn matches(&self, key: &[u8], path: &KeyPath, resource_type: Option<&[u8]>) -> bool {
        let in_scope = match &self.pattern {
            Pattern::Key(p) => p.matches(key),
            Pattern::Path(steps) => {
                steps.len() == path.len()
                    && steps
                        .iter()
                        .enumerate()
                        .all(|(i, s)| s.matches(path.step(i)))
            }
        };
        in_scope
            && match &self.resource_type {
                None => true,
                Some(wanted) => resource_type.is_some_and(|t| wanted.matches(t)),
            }
    }
}

impl Blocklist {
    /// Compiles the entries; errors name the entry's index and the reason.
    pub(crate) fn parse(entries: &[String]) -> Result<Blocklist, Vec<(usize, String)>> {
        let mut list = Blocklist::default();
        let mut errors = Vec::new();
        for (i, raw) in entries.iter().enumerate() {
            match parse_entry(raw) {
                Ok((exempt, e)) => {
                    list.uses_paths |= matches!(e.pattern, Pattern::Path(_));
                    list.uses_types |= e.resource_type.is_some();
                    if exempt {
                        list.exemptions.push(e)
                    } else {
                        list.blocks.push(e)
                    }
                }
                Err(why) => errors.push((i, why)),
            }
        }
        if errors.is_empty() {
            let indexable =
                |e: &&Entry| matches!(e.pattern, Pattern::Key(_)) && e.resource_type.is_none();
            let key_blocks: Vec<&Entry> = list.blocks.iter().filter(indexable).collect();
            let key_exemptions: Vec<&Entry> = list.exemptions.iter().filter(indexable).collect();
            list.key_index = KeyIndex::build(&key_blocks, &key_exemptions).map(Into::into);
            let rest = |entries: &[Entry], indexed: bool| -> Vec<Entry> {
                entries
                    .iter()
                    .filter(|e| !indexed || !indexable(e))
                    .cloned()
                    .collect()
            };
            let indexed = list.key_index.is_some();
            list.rest_blocks = rest(&list.blocks, indexed);
            list.rest_exemptions = rest(&list.exemptions, indexed);
            Ok(list)
        } else {
            Err(errors)
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub(crate) fn uses_paths(&self) -> bool {
        self.uses_paths
    }

    pub(crate) fn uses_types(&self) -> bool {
        self.uses_types
    }

    /// Whether every decision depends on the key alone: no paths, no `?type=`.
    pub(crate) fn decides_by_key(&self) -> bool {
        !self.uses_paths && !self.uses_types
    }

    /// [`Blocklist::removes`] for a list without paths or `?type=` (only key patterns).
    #[inline]
    pub(crate) fn removes_key(&self, key: &[u8]) -> bool {
        if let (Some(index), true) = (&self.key_index, self.decides_by_key()) {
            return index.removes(key);
        }
        let hit = |e: &Entry| matches!(&e.pattern, Pattern::Key(m) if m.matches(key));
        self.blocks.iter().any(hit) && !self.exemptions.iter().any(hit)
    }

    /// False when no block can match a key with this text, whatever its inflection;
    /// cheaper than computing its match form. That form starts and ends with the
    /// text's first and last bytes, lower-cased, unless one of those is a separator
    /// (dropped from the form), which, like an empty key, answers true.
    #[inline]
    pub(crate) fn may_remove_key(&self, text: &[u8]) -> bool {
        let (Some(index), Some(&first), Some(&last), true) = (
            &self.key_index,
            text.first(),
            text.last(),
            self.rest_blocks.is_empty(),
        ) else {
            return true;
        };
        if is_separator(first) || is_separator(last) {
            return true;
        }
        let first = first.to_ascii_lowercase();
        let last = last.to_ascii_lowercase();
        index.candidates(Some(&first), Some(&last)) & index.blocks != 0
    }

    /// Whether the key at the end of `path` (its match form is `key`) must be removed.
    pub(crate) fn removes(&self, key: &[u8], path: &KeyPath, resource_type: Option<&[u8]>) -> bool {
        let (blocked, exempt) = match &self.key_index {
            Some(index) => index.decide(key),
            None => (false, false),
        };
        let hit = |e: &Entry| e.matches(key, path, resource_type);
        !exempt
            && (blocked || self.rest_blocks.iter().any(hit))
            && !self.rest_exemptions.iter().any(hit)
    }

    /// [`Blocklist::removes`] without the index: every entry in turn.
    #[cfg(test)]
    fn removes_linearly(&self, key: &[u8], path: &KeyPath, ty: Option<&[u8]>) -> bool {
        self.blocks.iter().any(|e| e.matches(key, path, ty))
            && !self.exemptions.iter().any(|e| e.matches(key, path, ty))
    }
}

/// Parses one entry into (is_exemption, entry).
fn parse_entry(raw: &str) -> Result<(bool, Entry), String> {
    let shown = Quoted(raw);
    if raw.is_empty() {
        return Err(String::from("empty entry"));
    }
    if let Some(c) = raw.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{shown}: contains U+{:04X}; entries are key names or paths",
            u32::from(c)
        ));
    }
    let (exempt, rest) = match raw.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let (body, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let resource_type = match query {
        None => None,
        Some(q) => match q.strip_prefix("type=") {
            Some(t) if !t.is_empty() && !t.contains(['?', '&', '=']) => {
                Some(Matcher::compile(match_form_string(t)))
            }
            Some(_) => {
                return Err(format!(
                    "{shown}: `?type=` needs one resource type, such as `?type=inquiry`"
                ));
            }
            None => {
                return Err(format!(
                    "{shown}: the only filter is `?type=<resource type>`"
                ));
            }
        },
    };
    if body.is_empty() {
        return Err(format!("{shown}: no key or path"));
    }
    let pattern = if let Some(path) = body.strip_prefix('/') {
        let steps: Vec<&str> = path.split('/').collect();
        if steps.iter().any(|s| s.is_empty()) {
            return Err(format!("{shown}: empty path step"));
        }
        if steps.len() < 3 {
            return Err(format!(
                "{shown}: a path names a key inside a resource's attributes: /data/attributes/<key> or /included/attributes/<key>"
            ));
        }
        let forms: Vec<Vec<u8>> = steps.iter().map(|s| match_form_string(s)).collect();
        let root_ok = forms
            .first()
            .is_some_and(|s| glob::matches(s, b"data") || glob::matches(s, b"included"));
        if !root_ok {
            return Err(format!(
                "{shown}: a path starts at the payload: /data/…, /included/… or /*/…"
            ));
        }
        if !forms
            .get(1)
            .is_some_and(|s| glob::matches(s, b"attributes"))
        {
            return Err(format!(
                "{shown}: only attributes are ever removed; the second step must be `attributes` (or `*`)"
            ));
        }
        Pattern::Path(forms.into_iter().map(Matcher::compile).collect())
    } else {
        if body.contains('/') {
            return Err(format!(
                "{shown}: a path must start with `/`, a key name cannot contain `/`"
            ));
        }
        Pattern::Key(Matcher::compile(match_form_string(body)))
    };
    Ok((
        exempt,
        Entry {
            pattern,
            resource_type,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn list(entries: &[&str]) -> Blocklist {
        Blocklist::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn the_key_index_decides_like_every_entry_in_turn() {
        let lists = [
            &[
                "name-*",
                "birthdate",
                "*-number",
                "!address-country-code",
                "address-*",
            ][..],
            &["*", "!status", "!id"],
            &["*name*", "a", "*a", "a*", "!ab", "-", "b*c"],
            &["x-*-y", "*-photo", "photo-urls", "!*-url"],
        ];
        let keys = [
            "",
            "a",
            "ab",
            "abc",
            "ba",
            "name",
            "name-first",
            "native-name-first",
            "birthdate",
            "phone-number",
            "number",
            "address-country-code",
            "address-street-1",
            "status",
            "id",
            "x-a-y",
            "x-y",
            "selfie-photo",
            "photo-urls",
            "front-photo-url",
            "-",
            "b?c",
            // Other inflections: `may_remove_key` reads the raw text.
            "nameFirst",
            "NAME_FIRST",
            "PhoneNumber",
            "phone_number_",
            "_birthdate",
            "Birthdate",
            "addressStreet1",
            "X_A_Y",
            "selfiePhoto",
            "Ab",
            "B?C",
            "é-number",
            // Second and last-but-one bytes.
            "na",
            "n",
            "nb",
            "note",
            "nameX",
            "naTive",
            "xnumber",
            "phoneNumber",
            "photo_url",
            "selfie_photoURL",
            "abc1",
            "a1bc",
            "x-y",
            "xY",
        ];
        let (mut decided, mut ruled_out) = (0, 0);
        for entries in lists {
            let list = list(entries);
            assert!(list.key_index.is_some(), "{entries:?}");
            for key in keys {
                let form = match_form_string(key);
                let linear = list.removes_linearly(&form, &KeyPath::default(), None);
                assert_eq!(list.removes_key(&form), linear, "{entries:?} {key}");
                decided += usize::from(linear);
                // Ruling a key out without its form is never wrong.
                if !list.may_remove_key(key.as_bytes()) {
                    assert!(!linear, "{entries:?} {key}");
                    ruled_out += 1;
                }
            }
        }
        assert!(decided > 10, "{decided}");
        assert!(ruled_out > 5, "{ruled_out}");
        // Paths and types are decided by `removes`, not the index.
        assert!(list(&["/data/attributes/x"]).key_index.is_none());
        assert!(list(&["x?type=inquiry"]).key_index.is_none());
    }

    /// Key patterns mixed with paths and `?type=`: the index holds the key patterns,
    /// the rest are checked in turn, and every decision is the one of all entries in
    /// turn, exemptions of either kind included.
    #[test]
    fn an_index_beside_paths_and_types_decides_like_every_entry_in_turn() {
        let lists = [
            &[
                "name-*",
                "/*/attributes/fields/name",
                "term?type=report/*",
                "address-*",
            ][..],
            &[
                "name-*",
                "!/data/attributes/name-first",
                "*-number",
                "!phone-number?type=x",
            ],
            &[
                "/data/attributes/*",
                "!status",
                "!/data/attributes/fields",
                "fields-*",
            ],
            &[
                "!name-last",
                "/included/attributes/name-*",
                "birthdate?type=inquiry",
            ],
        ];
        let places: &[&[&str]] = &[
            &["data", "attributes", "name-first"],
            &["data", "attributes", "name-last"],
            &["included", "attributes", "name-first"],
            &["included", "attributes", "name-last"],
            &["data", "attributes", "fields", "name"],
            &["data", "attributes", "fields", "x", "name"],
            &["data", "attributes", "name"],
            &["data", "attributes", "term"],
            &["data", "attributes", "status"],
            &["data", "attributes", "fields"],
            &["data", "attributes", "fields-a"],
            &["data", "attributes", "phone-number"],
            &["included", "attributes", "phone-number"],
            &["included", "attributes", "address-city"],
            &["data", "attributes", "birthdate"],
            &["data", "attributes", "identification-number"],
        ];
        let mut removed = 0;
        for entries in lists {
            let l = list(entries);
            for steps in places {
                for ty in ["inquiry", "report/watchlist", "x"] {
                    let p = path(steps);
                    let key = match_form_string(steps.last().unwrap());
                    let ty = match_form_string(ty);
                    let linear = l.removes_linearly(&key, &p, Some(&ty));
                    assert_eq!(
                        l.removes(&key, &p, Some(&ty)),
                        linear,
                        "{entries:?} {steps:?} {ty:?}"
                    );
                    removed += usize::from(linear);
                }
            }
        }
        assert!(removed > 20, "{removed}");
        assert!(list(&["name-*", "/data/attributes/x"]).key_index.is_some());
    }

    /// Every key of up to four bytes from a small alphabet (letters of both cases, a
    /// digit, both separators), against lists whose entries start and end with those
    /// letters: the index and the raw-text check never disagree with the entries.
    #[test]
    fn the_key_index_agrees_on_every_short_key() {
        let lists = [
            &["ab", "a*", "*b", "*ba", "!bab", "b-*", "*-a"][..],
            &["a", "b*", "*a", "!ab*", "a-b", "ba-*"],
            &["*", "!a"],
        ];
        let alphabet = b"abAB1-_";
        let mut keys: Vec<Vec<u8>> = alloc::vec![Vec::new()];
        let mut from = 0;
        for _ in 0..4 {
            let to = keys.len();
            for i in from..to {
                for &c in alphabet {
                    let mut k = keys[i].clone();
                    k.push(c);
                    keys.push(k);
                }
            }
            from = to;
        }
        let mut ruled_out = 0;
        for entries in lists {
            let list = list(entries);
            for key in &keys {
                let form = crate::inflection::match_form_string(core::str::from_utf8(key).unwrap());
                let linear = list.removes_linearly(&form, &KeyPath::default(), None);
                assert_eq!(list.removes_key(&form), linear, "{entries:?} {key:?}");
                if !list.may_remove_key(key) {
                    assert!(!linear, "{entries:?} {key:?}");
                    ruled_out += 1;
                }
            }
        }
        assert!(ruled_out > 200, "{ruled_out}");
    }

    fn path(steps: &[&str]) -> KeyPath {
        let mut p = KeyPath::default();
        for s in steps {
            p.push(&match_form_string(s));
        }
        p
    }

    fn removes(l: &Blocklist, steps: &[&str], ty: &str) -> bool {
        let p = path(steps);
        let key = match_form_string(steps.last().unwrap());
        l.removes(&key, &p, Some(&match_form_string(ty)))
    }

    #[test]
    fn refuses_bad_entries() {
        for bad in [
            "",
            "!",
            "?type=inquiry",
            "name first",
            "/data",
            "/data/attributes",
            "/data//x",
            "/meta/attributes/x",
            "/data/relationships/x",
            "a/b",
            "x?type=",
            "x?kind=y",
            "x?type=a&b",
        ] {
            assert!(parse_entry(bad).is_err(), "{bad:?} should be refused");
        }
        let errs =
            Blocklist::parse(&["ok".to_string(), "".to_string(), "a/b".to_string()]).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn simple_entries_match_any_depth_and_inflection() {
        let l = list(&["name-*", "birthdate", "emailAddress"]);
        assert!(removes(
            &l,
            &["data", "attributes", "fields", "name-first"],
            "inquiry"
        ));
        assert!(removes(&l, &["data", "attributes", "nameFirst"], "inquiry"));
        assert!(removes(
            &l,
            &["included", "attributes", "name_last"],
            "account"
        ));
        assert!(!removes(&l, &["data", "attributes", "name"], "case"));
        assert!(removes(
            &l,
            &["data", "attributes", "email_address"],
            "account"
        ));
        assert!(removes(&l, &["data", "attributes", "birthdate"], "account"));
    }

    #[test]
    fn paths_and_types() {
        let l = list(&[
            "/data/attributes/fields/*-number?type=inquiry",
            "/*/attributes/phone-number",
        ]);
        assert!(removes(
            &l,
            &["data", "attributes", "fields", "identification-number"],
            "inquiry"
        ));
        assert!(!removes(
            &l,
            &["data", "attributes", "fields", "identification-number"],
            "account"
        ));
        assert!(!removes(
            &l,
            &["data", "attributes", "identification-number"],
            "inquiry"
        ));
        assert!(removes(
            &l,
            &["included", "attributes", "phoneNumber"],
            "verification/phone-number"
        ));
        assert!(removes(&l, &["data", "attributes", "phone-number"], "x"));
    }

    #[test]
    fn persona_recipe_keeps_one_nested_key() {
        let l = list(&[
            "/data/attributes/fields/*",
            "!/data/attributes/fields/selected-country-code",
            "/data/attributes/*",
            "!/data/attributes/fields",
        ]);
        assert!(removes(&l, &["data", "attributes", "status"], "inquiry"));
        assert!(!removes(&l, &["data", "attributes", "fields"], "inquiry"));
        assert!(removes(
            &l,
            &["data", "attributes", "fields", "name-first"],
            "inquiry"
        ));
        assert!(!removes(
            &l,
            &["data", "attributes", "fields", "selected-country-code"],
            "inquiry"
        ));
        assert!(!removes(
            &l,
            &["included", "attributes", "status"],
            "inquiry"
        ));
    }

    #[test]
    fn compiled_matchers_agree_with_the_glob() {
        for pattern in ["x", "name-*", "*-number", "*", "a*b", "*mid*", "**"] {
            let m = Matcher::compile(pattern.as_bytes().to_vec());
            for text in [
                "x",
                "name-first",
                "name",
                "identification-number",
                "ab",
                "aXb",
                "premidpost",
                "",
                "number",
            ] {
                assert_eq!(
                    m.matches(text.as_bytes()),
                    glob::matches(pattern.as_bytes(), text.as_bytes()),
                    "{pattern} {text}"
                );
            }
        }
    }

    #[test]
    fn type_filters_accept_wildcards() {
        let l = list(&["*-photo-url?type=verification/*"]);
        assert!(removes(
            &l,
            &["included", "attributes", "front-photo-url"],
            "verification/government-id"
        ));
        assert!(!removes(
            &l,
            &["included", "attributes", "front-photo-url"],
            "document/government-id"
        ));
    }
}
