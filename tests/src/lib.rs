//! Shared pieces of the integration tests, the soak runs and the benchmarks:
//!
//! | module | what |
//! |---|---|
//! | [`fixtures`] | paths, the fixture secrets, the shared cases of `tests/fixtures/cases.json` |
//! | [`dedup`] | duplicate suppression's tests, every runner: events by id, a holding origin, the answers at the edge |
//! | [`oracle`] | the release `persona-edge process` command every runner is compared with |
//! | [`http`] | a raw HTTP/1.1 client, and the head and body readers |
//! | [`origin`] | a recording HTTP/1.1 origin |
//! | [`process`] | child processes killed on drop, temporary directories, free ports |
//! | [`envoy`] | the real Envoy with the built filter: rendering, starting, stats, access log |
//! | [`workerd`] | the built Worker in the real workerd |
//! | [`load`] | a bounded keep-alive load generator that checks every answer |
//! | [`soak`] | the soak runs' mix, the origin's check of every body, memory sampling |
//!
//! Nothing here is a mock: the origin is a real TCP server, the client speaks HTTP/1.1
//! on a real socket, and the oracle is the release `persona-edge` binary.

pub mod dedup;
pub mod envoy;
pub mod fixtures;
pub mod http;
pub mod load;
pub mod oracle;
pub mod origin;
pub mod privacy;
pub mod process;
pub mod soak;
pub mod workerd;

// The names the test files have always taken from the crate's root.
pub use fixtures::{
    Case, EnvoyRefusal, Expect, ORIGIN_SECRET, PREVIOUS_SECRET, SECRET, cache_dir, case, cases,
    config_text, fixtures_dir, now, target_dir, workspace_root,
};
pub use http::{Framing, Response, header, send};
pub use oracle::{
    CliOutput, assert_reply_is_the_commands, cli_binary, cli_process, parse_cli_output,
};
pub use origin::{Answer, Origin, Recorded, RequestHook};
pub use process::{Process, free_port, rss_bytes, tempdir};
pub use soak::contains_bytes;
