//! `envoy-config`: `envoy/envoy.yaml` rendered for a local run exactly as the tests
//! render it (ports, the .wasm path, one trusted `X-Forwarded-For` hop, and the plugin
//! configuration), for `scripts/run-envoy-demo.sh`.
//!
//! ```text
//! envoy-config --listen PORT --admin PORT --origin PORT --wasm PATH [--plugin-config FILE]
//! ```
//!
//! The YAML goes to standard output; without `--plugin-config` the shipped plugin
//! configuration is kept.

use std::path::PathBuf;

use persona_edge_tests::envoy::{Render, render};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: envoy-config --listen PORT --admin PORT --origin PORT --wasm PATH [--plugin-config FILE]"
        );
        return;
    }
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let port = |name: &str| -> u16 {
        value(name)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| fail(&format!("{name} needs a port number")))
    };
    let wasm = PathBuf::from(value("--wasm").unwrap_or_else(|| fail("--wasm needs a path")));
    let plugin_config = value("--plugin-config").map(|path| {
        std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")))
    });
    print!(
        "{}",
        render(&Render {
            listen_port: port("--listen"),
            admin_port: port("--admin"),
            origin_port: port("--origin"),
            wasm: &wasm,
            plugin_config: plugin_config.as_deref(),
        })
    );
}

fn fail(message: &str) -> ! {
    eprintln!("envoy-config: {message}");
    std::process::exit(2)
}
