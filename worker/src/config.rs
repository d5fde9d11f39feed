//! The configuration, parsed once per isolate: `PERSONA_EDGE_CONFIG` (the core's JSON,
//! as a string or a `[vars]` table), with the secrets it names read from the Worker's
//! secrets. The parsed policy is kept while the text, and the value of every
//! variable the load looked up, stay the same: a rotated secret is picked up by
//! running isolates.

use std::cell::RefCell;
use std::rc::Rc;

use persona_edge_core::{ClientAddress, LoadOptions, Policy};
use worker::wasm_bindgen::JsValue;
use worker::{Env, js_sys};

use crate::error::ConfigError;

/// The var holding the configuration JSON (a string, or a JSON object in `[vars]`).
pub const CONFIG_VAR: &str = "PERSONA_EDGE_CONFIG";
/// Where the client address comes from unless the configuration says otherwise.
pub const CLIENT_ADDRESS_HEADER: &str = "cf-connecting-ip";

/// The parsed configuration, or why there is none.
pub type Loaded = Rc<Result<Policy, ConfigError>>;

struct Cached {
    config: String,
    /// Every variable the load looked up, with the value it saw.
    seen: Vec<(String, Option<String>)>,
    loaded: Loaded,
}

thread_local! {
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

/// The isolate's policy for `env`, parsed again only when its text or a secret it
/// read changed.
pub fn policy(env: &Env) -> Loaded {
    load(&|name| var(env, name))
}

/// [`policy`] over any way of reading a variable.
pub(crate) fn load(var: &dyn Fn(&str) -> Option<String>) -> Loaded {
    let Some(config) = var(CONFIG_VAR) else {
        return Rc::new(Err(ConfigError::NotSet));
    };
    let hit = CACHE.with_borrow(|cached| {
        cached
            .as_ref()
            .filter(|c| {
                c.config == config && c.seen.iter().all(|(name, value)| var(name) == *value)
            })
            .map(|c| c.loaded.clone())
    });
    if let Some(loaded) = hit {
        return loaded;
    }
    let seen = RefCell::new(Vec::new());
    let lookup = |name: &str| {
        let value = var(name).filter(|v| !v.is_empty());
        seen.borrow_mut().push((name.to_string(), value.clone()));
        value
    };
    let options = LoadOptions {
        env: &lookup,
        default_client_address: ClientAddress::Header {
            name: CLIENT_ADDRESS_HEADER.into(),
        },
        // A Worker sees no TCP peer: the client is what Cloudflare's edge says.
        peer_available: false,
        host_name: "the Cloudflare Worker",
    };
    let loaded: Loaded =
        Rc::new(Policy::load(config.as_bytes(), &options).map_err(ConfigError::Invalid));
    let seen = seen.into_inner();
    CACHE.with_borrow_mut(|cached| {
        *cached = Some(Cached {
            config,
            seen,
            loaded: loaded.clone(),
        });
    });
    loaded
}

/// A var or secret as text: strings as they are, JSON values (`[vars]` tables) as JSON.
pub fn var(env: &Env, name: &str) -> Option<String> {
    let value = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(name)).ok()?;
    if value.is_undefined() || value.is_null() {
        return None;
    }
    if let Some(text) = value.as_string() {
        return Some(text);
    }
    js_sys::JSON::stringify(&value)
        .ok()
        .and_then(|s| s.as_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NEEDS_SECRET: &str =
        r#"{"sources":{"allow":["persona"]},"signature":{"secrets_env":["SECRET"]}}"#;

    fn load(vars: &[(&str, &str)]) -> Loaded {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        super::load(&|name| vars.get(name).cloned())
    }

    #[test]
    fn the_policy_is_kept_while_its_text_and_secrets_stay() {
        let first = load(&[(CONFIG_VAR, NEEDS_SECRET), ("SECRET", "wbhsec_one")]);
        assert!(first.is_ok());
        let again = load(&[(CONFIG_VAR, NEEDS_SECRET), ("SECRET", "wbhsec_one")]);
        assert!(Rc::ptr_eq(&first, &again), "parsed again without a change");

        // A rotated secret, then an unset one: parsed again each time.
        let rotated = load(&[(CONFIG_VAR, NEEDS_SECRET), ("SECRET", "wbhsec_two")]);
        assert!(rotated.is_ok() && !Rc::ptr_eq(&first, &rotated));
        let unset = load(&[(CONFIG_VAR, NEEDS_SECRET)]);
        let Err(ConfigError::Invalid(errors)) = unset.as_ref() else {
            panic!("an unset secret is a configuration error");
        };
        assert!(errors.to_string().contains("SECRET"), "{errors}");

        // Another text is another policy.
        let other = load(&[(CONFIG_VAR, r#"{"signature":{"required":false}}"#)]);
        assert!(other.is_ok() && !Rc::ptr_eq(&rotated, &other));
    }

    #[test]
    fn without_the_var_there_is_no_policy() {
        assert!(matches!(load(&[]).as_ref(), Err(ConfigError::NotSet)));
    }

    #[test]
    fn the_client_is_cf_connecting_ip_and_there_is_no_peer() {
        let peer =
            r#"{"signature":{"required":false},"sources":{"client_address":{"from":"peer"}}}"#;
        let loaded = load(&[(CONFIG_VAR, peer)]);
        let Err(ConfigError::Invalid(errors)) = loaded.as_ref() else {
            panic!("the peer is not available in a Worker");
        };
        assert!(
            errors.to_string().contains("the Cloudflare Worker"),
            "{errors}"
        );
        let loaded = load(&[(CONFIG_VAR, r#"{"signature":{"required":false}}"#)]);
        let Ok(policy) = loaded.as_ref() else {
            panic!()
        };
        assert_eq!(
            *policy.client_address(),
            ClientAddress::Header {
                name: CLIENT_ADDRESS_HEADER.into()
            }
        );
    }
}
