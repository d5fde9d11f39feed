//! Built-in blocklists, named by `blocklist_preset`: entries in the same language as
//! `blocklist` (Persona's own), so `persona-edge preset NAME` can print them for the
//! dashboard's blocklist and a user can read exactly what a preset removes.
//!
//! `personal-data` covers every kind of personal data Persona's events carry, grouped
//! by category; tests/fixtures/personal-data-inventory.json classifies every attribute
//! of the example events into these categories (or as not personal) and
//! tests/tests/privacy.rs checks that the preset removes the one and keeps the other.
//! What a preset keeps on purpose: statuses, ids, types, timestamps, template names,
//! check results and scores, country and region codes, the origin's `reference-id`:
//! what an origin routes and acts on, none of which identifies a person.

/// A named blocklist.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    pub name: &'static str,
    pub groups: &'static [PresetGroup],
}

/// The entries of a preset that cover one category of personal data.
#[derive(Clone, Copy, Debug)]
pub struct PresetGroup {
    /// The category, as tests/fixtures/personal-data-inventory.json and the docs name it.
    pub category: &'static str,
    pub entries: &'static [&'static str],
}

impl Preset {
    /// Every entry, in order.
    pub fn entries(&self) -> impl Iterator<Item = &'static str> {
        self.groups.iter().flat_map(|g| g.entries.iter().copied())
    }
}

/// Every preset, in the order their names are listed.
pub const PRESETS: &[Preset] = &[PERSONAL_DATA];

/// The preset called `name`.
pub fn find_preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// Every piece of personal data Persona sends, in attributes at any depth and in any
/// inflection (`fields` included). Simple entries are matched at any depth; the two
/// paths cover keys that are personal only where they stand. Key patterns have at most
/// one `*`, at one end: the blocklist indexes those by their first or last byte, so
/// most keys are ruled out in a few compares (a `*x*` pattern is tried on every key).
pub const PERSONAL_DATA: Preset = Preset {
    name: "personal-data",
    groups: &[
        PresetGroup {
            // Given, middle and family names, suffixes and titles, also in native
            // script or normalized (`native-name-first`); an account's `fields.name`
            // object (a bare `name` elsewhere names a check, a template or a case); a
            // report's search `term`, which is the name searched for.
            category: "names",
            entries: &[
                "name-*",
                "*-name-first",
                "*-name-middle",
                "*-name-last",
                "*-name-suffix",
                "*-name-title",
                "/*/attributes/fields/name",
                "/*/attributes/term",
            ],
        },
        PresetGroup {
            // Date and place of birth.
            category: "birthdates",
            entries: &["birth*", "*-birthdate"],
        },
        PresetGroup {
            // Postal addresses, their parts and normalized forms, and an account's
            // `address` object. The address's country code goes too: exempt it
            // (`!address-country-code`) to keep it.
            category: "addresses",
            entries: &["address", "address-*", "normalized-address-*"],
        },
        PresetGroup {
            // ID document, tax and other identification numbers (`identification-number`,
            // `document-number`, an account's `identification_numbers` list).
            category: "identification-numbers",
            entries: &["*-number", "*-numbers"],
        },
        PresetGroup {
            // The person's e-mail, and who created an inquiry or case: a dashboard
            // user's e-mail address.
            category: "email-addresses",
            entries: &[
                "email*",
                "*-email",
                "*-email-address",
                "creator",
                "creator-id",
            ],
        },
        PresetGroup {
            category: "phone-numbers",
            entries: &["phone*", "*-phone"],
        },
        PresetGroup {
            // The address the person's device connected from.
            category: "ip-addresses",
            entries: &["ip", "*-ip", "ip-address*", "*-ip-address"],
        },
        PresetGroup {
            // Coordinates from the IP address or the device's GPS (`gps-precision` too).
            category: "geolocation",
            entries: &["*latitude", "*longitude", "gps-*"],
        },
        PresetGroup {
            // The full user agent, a device's own name ("Jane's iPhone") and device
            // fingerprints, which follow one device across services.
            category: "device-fingerprints",
            entries: &["user-agent", "device-name", "*fingerprint", "*fingerprints"],
        },
        PresetGroup {
            // Links to the person's ID images, selfies and videos. Persona's file URLs
            // carry an access token valid for hours: whoever holds one can download
            // the file, so they are credentials; any token goes with them.
            category: "file-urls",
            entries: &["url", "urls", "*-url", "*-urls", "*token"],
        },
        PresetGroup {
            // Photos, videos and images of the person and their documents (objects
            // that hold a file), the names of uploaded files, and a case's attachments.
            category: "images",
            entries: &[
                "*photo",
                "*photos",
                "*video",
                "*videos",
                "*image",
                "*images",
                "filename",
                "attachments",
            ],
        },
        PresetGroup {
            // Facts about the person read from a document: sex, height, weight,
            // nationality, visa status, and a driving licence's endorsements,
            // restrictions (which can reveal health) and vehicle classes.
            category: "characteristics",
            entries: &[
                "sex",
                "gender",
                "height",
                "weight",
                "nationality",
                "visa-status",
                "endorsements",
                "restrictions",
                "vehicle-class",
            ],
        },
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklist::{Blocklist, KeyPath};
    use crate::inflection::match_form_string;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    fn compiled(preset: &Preset) -> Blocklist {
        let entries: Vec<String> = preset.entries().map(ToString::to_string).collect();
        Blocklist::parse(&entries).unwrap()
    }

    /// Whether the preset removes the key at `steps` (from the payload root) in a
    /// resource of type `ty`.
    fn removes(list: &Blocklist, steps: &[&str], ty: &str) -> bool {
        let mut path = KeyPath::default();
        for s in steps {
            path.push(&match_form_string(s));
        }
        let key = match_form_string(steps.last().unwrap());
        list.removes(&key, &path, Some(&match_form_string(ty)))
    }

    #[test]
    fn names_are_unique_and_every_preset_compiles() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert!(PRESETS.iter().skip(i + 1).all(|q| q.name != p.name));
            assert!(find_preset(p.name).is_some());
            compiled(p);
        }
        assert!(find_preset("personal_data").is_none());
    }

    /// Each entry, with a key it exists for: so an entry that stops matching (a typo,
    /// a change in the matcher) fails here, in every inflection.
    #[test]
    fn every_entry_removes_the_key_it_is_for() {
        let examples: &[(&str, &[&str])] = &[
            ("name-*", &["data", "attributes", "name-first"]),
            (
                "*-name-first",
                &["included", "attributes", "native-name-first"],
            ),
            (
                "*-name-middle",
                &["included", "attributes", "native-name-middle"],
            ),
            (
                "*-name-last",
                &["included", "attributes", "native-name-last"],
            ),
            (
                "*-name-suffix",
                &["included", "attributes", "normalized-name-suffix"],
            ),
            (
                "*-name-title",
                &["included", "attributes", "native-name-title"],
            ),
            (
                "/*/attributes/fields/name",
                &["data", "attributes", "fields", "name"],
            ),
            ("/*/attributes/term", &["data", "attributes", "term"]),
            ("birth*", &["included", "attributes", "birthplace"]),
            (
                "*-birthdate",
                &["data", "attributes", "normalized-birthdate"],
            ),
            ("address", &["data", "attributes", "fields", "address"]),
            (
                "address-*",
                &["data", "attributes", "fields", "address-street-1"],
            ),
            (
                "normalized-address-*",
                &["included", "attributes", "normalized-address-city"],
            ),
            ("*-number", &["included", "attributes", "document-number"]),
            (
                "*-numbers",
                &["data", "attributes", "fields", "identification_numbers"],
            ),
            ("email*", &["data", "attributes", "fields", "email-address"]),
            ("*-email", &["data", "attributes", "reviewer-email"]),
            (
                "*-email-address",
                &["data", "attributes", "secondary-email-address"],
            ),
            ("creator", &["data", "attributes", "creator"]),
            ("creator-id", &["data", "attributes", "creator-id"]),
            ("phone*", &["data", "attributes", "fields", "phone_number"]),
            ("*-phone", &["data", "attributes", "mobile-phone"]),
            ("ip", &["included", "attributes", "ip"]),
            ("*-ip", &["included", "attributes", "client-ip"]),
            ("ip-address*", &["included", "attributes", "ip-address"]),
            (
                "*-ip-address",
                &["included", "attributes", "last-ip-address"],
            ),
            ("*latitude", &["included", "attributes", "gps-latitude"]),
            ("*longitude", &["included", "attributes", "longitude"]),
            ("gps-*", &["included", "attributes", "gps-precision"]),
            ("user-agent", &["included", "attributes", "user-agent"]),
            ("device-name", &["included", "attributes", "device-name"]),
            (
                "*fingerprint",
                &["included", "attributes", "device-fingerprint"],
            ),
            ("*fingerprints", &["included", "attributes", "fingerprints"]),
            ("url", &["included", "attributes", "photo-urls", "url"]),
            ("urls", &["data", "attributes", "urls"]),
            ("*-url", &["included", "attributes", "front-photo-url"]),
            ("*-urls", &["included", "attributes", "original-urls"]),
            ("*token", &["data", "attributes", "access-token"]),
            ("*photo", &["data", "attributes", "selfie-photo"]),
            ("*photos", &["data", "attributes", "photos"]),
            ("*video", &["data", "attributes", "selfie-video"]),
            ("*videos", &["data", "attributes", "videos"]),
            ("*image", &["data", "attributes", "portrait-image"]),
            ("*images", &["data", "attributes", "images"]),
            (
                "filename",
                &["data", "attributes", "back-photo", "filename"],
            ),
            ("attachments", &["data", "attributes", "attachments"]),
            ("sex", &["data", "attributes", "sex"]),
            ("gender", &["data", "attributes", "gender"]),
            ("height", &["data", "attributes", "height"]),
            ("weight", &["data", "attributes", "weight"]),
            ("nationality", &["data", "attributes", "nationality"]),
            ("visa-status", &["data", "attributes", "visa-status"]),
            ("endorsements", &["data", "attributes", "endorsements"]),
            ("restrictions", &["data", "attributes", "restrictions"]),
            ("vehicle-class", &["data", "attributes", "vehicle-class"]),
        ];
        let all: Vec<&str> = PERSONAL_DATA.entries().collect();
        let covered: Vec<&str> = examples.iter().map(|(e, _)| *e).collect();
        assert_eq!(all, covered, "one example per entry, in the preset's order");
        for (entry, steps) in examples {
            let alone = Blocklist::parse(&[entry.to_string()]).unwrap();
            let inflections: [fn(&str) -> String; 3] = [
                |s: &str| s.to_string(),
                |s: &str| s.replace('-', "_"),
                |s: &str| {
                    let mut out = String::new();
                    let mut upper = false;
                    for c in s.chars() {
                        match c {
                            '-' | '_' => upper = true,
                            c if upper => {
                                out.extend(c.to_uppercase());
                                upper = false;
                            }
                            c => out.push(c),
                        }
                    }
                    out
                },
            ];
            for inflect in inflections {
                let steps: Vec<String> = steps.iter().map(|s| inflect(s)).collect();
                let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
                assert!(removes(&alone, &steps, "inquiry"), "{entry} {steps:?}");
            }
        }
    }

    /// What an origin routes and acts on stays, even where its key resembles a
    /// personal one.
    #[test]
    fn keeps_what_the_origin_acts_on() {
        let list = compiled(&PERSONAL_DATA);
        for steps in [
            &["data", "attributes", "status"][..],
            &["data", "attributes", "reference-id"],
            &["data", "attributes", "name"],
            &["included", "attributes", "checks", "name"],
            &["included", "attributes", "name"],
            &["data", "attributes", "fields", "selected-country-code"],
            &["included", "attributes", "country-code"],
            &["included", "attributes", "region-name"],
            &["included", "attributes", "browser-name"],
            &["included", "attributes", "device-type"],
            &["included", "attributes", "ip-isp"],
            &["included", "attributes", "center-photo-face-coordinates"],
            &["included", "attributes", "selfie-similarity-score-left"],
            &["included", "attributes", "id-class"],
            &["included", "attributes", "expiration-date"],
            &["included", "attributes", "issuing-subdivision"],
            &[
                "data",
                "attributes",
                "behaviors",
                "user-agent-spoof-attempts",
            ],
            &["data", "attributes", "report-template-version-name"],
            &["data", "attributes", "account-type-name"],
            &["data", "attributes", "next-step-name"],
            &["data", "attributes", "created-at"],
            &["data", "attributes", "tags"],
            &["data", "attributes", "has-match"],
            // A `term` or `name` deeper than a resource's own attributes is not the
            // search term or the account's name object.
            &["data", "attributes", "fields", "loan", "term"],
            &["data", "attributes", "fields", "plan", "name"],
        ] {
            assert!(!removes(&list, steps, "inquiry"), "{steps:?}");
        }
    }

    #[test]
    fn an_exemption_beats_the_preset() {
        let mut entries: Vec<String> = PERSONAL_DATA.entries().map(ToString::to_string).collect();
        let steps = ["data", "attributes", "fields", "address-country-code"];
        assert!(removes(
            &Blocklist::parse(&entries).unwrap(),
            &steps,
            "inquiry"
        ));
        entries.push("!address-country-code".to_string());
        let list = Blocklist::parse(&entries).unwrap();
        assert!(!removes(&list, &steps, "inquiry"));
        assert!(removes(
            &list,
            &["data", "attributes", "fields", "address-city"],
            "inquiry"
        ));
    }
}
