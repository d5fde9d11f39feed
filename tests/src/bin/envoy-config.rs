//! `envoy-config`: a shipped Envoy configuration rendered for a local run exactly as the
//! tests render it (ports, the .wasm path, one trusted `X-Forwarded-For` hop, and the
//! plugin configuration), for `scripts/run-envoy-demo.sh`.
//!
//! ```text
//! envoy-config --listen PORT --admin PORT --origin PORT (--wasm PATH | --native) [--plugin-config FILE]
//! ```
//!
//! `--wasm PATH` renders `envoy/envoy.yaml` for that .wasm; `--native` renders
//! `envoy/envoy-native.yaml` (Envoy then finds the module through
//! ENVOY_DYNAMIC_MODULES_SEARCH_PATH). The YAML goes to standard output; without
//! `--plugin-config` the shipped plugin configuration is kept.

use std::path::PathBuf;

use persona_edge_tests::envoy::{Packaging, Render, render};

const USAGE: &str = "usage: envoy-config --listen PORT --admin PORT --origin PORT (--wasm PATH | --native) [--plugin-config FILE]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
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
    let (packaging, module) = match (value("--wasm"), args.iter().any(|a| a == "--native")) {
        (Some(wasm), false) => (Packaging::Wasm, PathBuf::from(wasm)),
        (None, true) => (Packaging::Native, PathBuf::new()),
        _ => fail(USAGE),
    };
    let plugin_config = value("--plugin-config").map(|path| {
        std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")))
    });
    print!(
        "{}",
        render(&Render {
            packaging,
            listen_port: port("--listen"),
            admin_port: port("--admin"),
            origin_port: port("--origin"),
            module: &module,
            plugin_config: plugin_config.as_deref(),
        })
    );
}

fn fail(message: &str) -> ! {
    eprintln!("envoy-config: {message}");
    std::process::exit(2)
}
