//! persona-edge as an Envoy *dynamic module*: a native shared library
//! (`libpersona_edge_filter.so`, scripts/build-native-module.sh) that Envoy 1.40 loads
//! with the `envoy.filters.http.dynamic_modules` HTTP filter (`envoy/envoy-native.yaml`).
//! It runs the same [`Driver`](crate::driver::Driver) as the proxy-wasm filter, but it
//! holds the request headers while it reads the body, so it sets the routing headers
//! and the new `Persona-Signature` and fixes `Content-Length` itself: no buffer filter,
//! no route header detour.
//!
//! - [`abi`]: the hand-written declarations of the C ABI subset used (Envoy 1.40.0).
//! - [`envoy`]: safe wrappers over them; `stream`: the driver's
//!   [`Host`](crate::host::Host) for one stream ([`envoy::Stream`]).
//! - `exports`: the `envoy_dynamic_module_on_*` hooks Envoy calls; `guard`: the panic
//!   guard around the stream hooks (log, answer 500, never unwind into Envoy); `unused`:
//!   the hooks Envoy requires for features the module does not use.
//! - `table`: duplicate suppression's slot table, one per process (the module's
//!   memory), shared by every worker thread and configuration.
//!
//! Configuration: `filter_name: persona_edge`, and the plugin configuration (the same
//! JSON as every packaging) as `filter_config`, a `google.protobuf.StringValue`. The
//! secrets named by `*_env` fields come from Envoy's own process environment. A
//! configuration that does not load refuses Envoy's configuration.
//!
//! Threads: Envoy creates a configuration on its main thread and then uses it from every
//! worker thread (hence `Arc<Plugin>`); each stream lives and dies on one worker thread.
//! The only other state shared between streams is duplicate suppression's table.

pub mod abi;
pub mod envoy;
mod exports;
mod guard;
mod stream;
pub(crate) mod table;
mod unused;

use std::sync::Arc;

use crate::env;
use crate::plugin::Plugin;
use envoy::{ConfigHost, CounterId};

/// The `filter_name` the module answers to.
pub const FILTER_NAME: &str = "persona_edge";

/// One configuration, shared by every worker thread.
pub type SharedPlugin = Arc<Plugin<CounterId>>;

/// Loads the configuration named `filter_name` from `filter_config`'s bytes; `None`
/// refuses it (the reasons are logged).
fn new_config(
    host: &ConfigHost<'_>,
    filter_name: &str,
    filter_config: &[u8],
) -> Option<SharedPlugin> {
    let mut log = |level, line: &str| envoy::log(envoy::level(level), line);
    if filter_name != FILTER_NAME {
        log(
            persona_edge_core::Level::Error,
            &format!(
                "persona-edge: configuration refused: unknown filter_name {filter_name:?} (this module has {FILTER_NAME:?})"
            ),
        );
        return None;
    }
    Plugin::load(
        filter_config,
        &env::var,
        |name| host.define_counter(name),
        &mut log,
    )
    .map(Arc::new)
}
