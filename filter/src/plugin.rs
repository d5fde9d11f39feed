//! One filter configuration: the policy loaded from the plugin configuration, and the
//! counters the host defined for it. Both packagings load it the same way and log the
//! same lines, through their own host calls.

use core::borrow::Borrow;
use core::ops::Deref;

use persona_edge_core::report::COUNTER_PREFIX;
use persona_edge_core::{ClientAddress, Counter, Level, LoadOptions, Policy};

/// What every stream of one configuration shares.
pub struct Plugin<Id> {
    policy: Policy,
    /// By [`Counter::index`]; `None` where the host refused to define one.
    counters: [Option<Id>; Counter::COUNT],
}

impl<Id: Copy> Plugin<Id> {
    /// Loads the plugin configuration (the core's document, with the secrets named by
    /// `*_env` fields looked up with `env`) and defines its counters with `define`
    /// (full names: `persona_edge.forwarded`). Every problem goes to `log`, one line
    /// each; `None` refuses the configuration.
    pub fn load(
        config: &[u8],
        env: &dyn Fn(&str) -> Option<String>,
        mut define: impl FnMut(&str) -> Result<Id, String>,
        log: &mut dyn FnMut(Level, &str),
    ) -> Option<Plugin<Id>> {
        let policy = match load_policy(config, env) {
            Ok(policy) => policy,
            Err(problems) => {
                for problem in &problems {
                    log(
                        Level::Error,
                        &format!("persona-edge: invalid configuration: {problem}"),
                    );
                }
                log(
                    Level::Error,
                    &format!(
                        "persona-edge: configuration refused ({} problem(s))",
                        problems.len()
                    ),
                );
                return None;
            }
        };
        let mut counters = [None; Counter::COUNT];
        for counter in Counter::defined_for(&policy) {
            let name = format!("{COUNTER_PREFIX}.{}", counter.name());
            match define(&name) {
                Ok(id) => {
                    if let Some(slot) = counters.get_mut(counter.index()) {
                        *slot = Some(id);
                    }
                }
                Err(why) => log(
                    Level::Warn,
                    &format!("persona-edge: cannot define counter {name}: {why}"),
                ),
            }
        }
        log(
            Level::Info,
            &format!(
                "persona-edge: configuration loaded: mode={}, max_body_bytes={}, changes bodies: {}, re-signs: {}",
                policy.mode().as_str(),
                policy.max_body_bytes(),
                policy.can_change_body(),
                policy.resigns(),
            ),
        );
        Some(Plugin { policy, counters })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The host's id of `counter`, when it was defined.
    pub fn counter(&self, counter: Counter) -> Option<Id> {
        self.counters.get(counter.index()).copied().flatten()
    }
}

/// Loads the plugin configuration: the core's document, with the secrets named by
/// `*_env` fields read with `env`. Every problem is returned, one line each.
pub fn load_policy(
    config: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Policy, Vec<String>> {
    let options = LoadOptions {
        env,
        default_client_address: ClientAddress::Peer,
        peer_available: true,
        host_name: "the Envoy filter",
    };
    Policy::load(config, &options)
        .map_err(|errors| errors.0.iter().map(ToString::to_string).collect::<Vec<_>>())
}

/// A shared [`Plugin`] (`Rc` in the .wasm, `Arc` in the native module) as the core's
/// `Exchange` holds its policy.
#[derive(Clone)]
pub struct Shared<R>(pub R);

impl<R, Id: 'static> Borrow<Policy> for Shared<R>
where
    R: Deref<Target = Plugin<Id>>,
{
    fn borrow(&self) -> &Policy {
        &self.0.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET_CONFIG: &[u8] = br#"{"signature":{"secrets_env":["PERSONA_SECRET"]}}"#;

    fn load(config: &[u8], env: &dyn Fn(&str) -> Option<String>) -> (bool, Vec<String>) {
        let mut lines = Vec::new();
        let mut next = 0_u32;
        let plugin = Plugin::load(
            config,
            env,
            |_| {
                next += 1;
                Ok(next)
            },
            &mut |_, line| lines.push(line.to_string()),
        );
        (plugin.is_some(), lines)
    }

    #[test]
    fn secrets_come_from_the_given_environment() {
        let env = |name: &str| (name == "PERSONA_SECRET").then(|| String::from("wbhsec_x"));
        let (loaded, lines) = load(SECRET_CONFIG, &env);
        assert!(loaded);
        assert!(
            lines[0].starts_with("persona-edge: configuration loaded: mode=enforce"),
            "{lines:?}"
        );
        let (loaded, lines) = load(SECRET_CONFIG, &|_| None);
        assert!(!loaded);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("persona-edge: invalid configuration: signature.secrets_env[0]"),
            "{lines:?}"
        );
        assert_eq!(
            lines[1],
            "persona-edge: configuration refused (1 problem(s))"
        );
    }

    #[test]
    fn resign_is_accepted() {
        let (loaded, lines) = load(
            br#"{"signature":{"secrets":["a"]},"resign":{"secret":"b"}}"#,
            &|_| None,
        );
        assert!(loaded, "{lines:?}");
        assert!(lines[0].ends_with("re-signs: true"), "{lines:?}");
    }

    #[test]
    fn every_config_error_is_reported() {
        let errors = load_policy(br#"{"mode":"loud","signature":{"secrets":[""]}}"#, &|_| {
            None
        })
        .unwrap_err();
        assert!(errors.len() >= 2, "{errors:?}");
        assert!(load_policy(b"not json", &|_| None).is_err());
        assert!(load_policy(b"", &|_| None).is_err());
    }

    #[test]
    fn counters_are_defined_by_the_core_and_looked_up_by_counter() {
        let mut names = Vec::new();
        let plugin = Plugin::load(
            br#"{"signature":{"required":false}}"#,
            &|_| None,
            |name| {
                names.push(name.to_string());
                if name.ends_with("host_errors") {
                    Err(String::from("refused"))
                } else {
                    Ok(names.len())
                }
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(names[0], "persona_edge.forwarded");
        assert_eq!(plugin.counter(Counter::Forwarded), Some(1));
        assert_eq!(plugin.counter(Counter::HostErrors), None);
        assert_eq!(plugin.counter(Counter::WouldForward), None, "shadow only");
    }
}
