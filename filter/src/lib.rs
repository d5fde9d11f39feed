//! # persona-edge-filter
//!
//! persona-edge in Envoy, built two ways from one driver:
//!
//! - a **proxy-wasm filter** (`wasm32-unknown-unknown`, scripts/build-filter.sh) for
//!   Envoy's Wasm filter and Istio's `WasmPlugin`: [`wasm`];
//! - a **dynamic module**, a native shared library Envoy 1.40 loads with its
//!   `dynamic_modules` HTTP filter (scripts/build-native-module.sh): [`native`].
//!
//! Both run the same [`driver::Driver`] per request, written against the [`host::Host`]
//! trait; each packaging implements the trait over its own host calls. The driver feeds
//! the core's `Exchange` and carries out what it says; the core decides everything and
//! spells every verdict, counter, log line and error body (docs/hosts.md).
//!
//! | file | what |
//! | --- | --- |
//! | `plugin.rs` | one configuration: the policy and the counters defined for it |
//! | `host.rs` | the [`host::Host`] trait: the host calls the driver makes |
//! | `driver.rs` | the per-request driver (its tests use a fake host: `driver/tests.rs`) |
//! | `env.rs` | environment variables (the secrets) inside a Wasm VM |
//! | `shared_data.rs` | duplicate suppression's slot table in proxy-wasm shared data (the protocol; unit-tested natively) |
//! | `wasm/` | the proxy-wasm root and HTTP contexts, and the host over `proxy_wasm::hostcalls` |
//! | `native/` | `abi.rs` the C ABI declarations, `envoy.rs` safe wrappers, `stream.rs` the host over them, `exports.rs` the hooks, `guard.rs` their panic guard, `table.rs` duplicate suppression's table, `unused.rs` the hooks Envoy requires |

pub mod driver;
mod env;
pub mod host;
pub mod plugin;
pub mod shared_data;

#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use plugin::{Plugin, load_policy};
