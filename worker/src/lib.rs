//! persona-edge as a Cloudflare Worker: a host of `persona-edge-core`'s `Exchange`,
//! which decides everything about a delivery (docs/hosts.md). The Worker reads what
//! the runtime offers, drives the exchange, and carries out what it says.
//!
//! One file a concern: `driver` drives a delivery over the `Host` trait, `host` is
//! the runtime behind it; docs/worker.md ("Where things are") maps the rest.

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
