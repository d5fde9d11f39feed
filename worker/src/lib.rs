//! persona-edge as a Cloudflare Worker: a host of `persona-edge-core`'s `Exchange`,
//! which decides everything about a delivery (docs/hosts.md). The Worker reads what
//! the runtime offers, drives the exchange, and carries out what it says.
//!
//! | module | what |
//! |---|---|
//! | `driver` | one delivery through the exchange, over the `Host` trait (unit-tested with a fake host) |
//! | `host` | the runtime as that host, and the setup of one request |
//! | `config` | `PERSONA_EDGE_CONFIG` and its secrets, parsed once per isolate |
//! | `target` | where a forward goes: `ORIGIN_URL` + path + query, or route mode |
//! | `body` | the request body, chunk by chunk; the rejoined stream of a shadow-mode pass-through |
//! | `forward` | the forwarded request: headers, body, `fetch` |
//! | `dedup`, `protocol`, `object` | duplicate suppression: the client, the messages, the `EventDedup` Durable Object |
//! | `log` | the JSON log lines |
//! | `error` | what can fail, as types |

mod body;
mod config;
mod dedup;
mod driver;
mod error;
mod forward;
mod host;
mod log;
mod object;
mod protocol;
mod target;

use worker::{Context, Env, event, web_sys};

#[event(fetch)]
async fn fetch(
    req: web_sys::Request,
    env: Env,
    _ctx: Context,
) -> worker::Result<web_sys::Response> {
    host::serve(req, env).await
}
