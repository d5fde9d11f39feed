//! Running the built Cloudflare Worker in the real workerd: locating the build, workerd
//! and wrangler, generating a capnp configuration with one service per persona-edge
//! configuration, and starting it. Shared by the Worker tests, soak runs and benchmarks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::fixtures::{Case, required, workspace_root};
use crate::http::Response;
use crate::process::{Process, free_port, tempdir};

// ---------------------------------------------------------------------------
// The build and the runtime

pub fn build_dir() -> PathBuf {
    workspace_root().join("worker/build")
}

/// The worker-build output; fails with the command to run when it is missing.
pub fn built_worker() -> (PathBuf, PathBuf) {
    let remedy = "build the Worker first with `worker/build-worker.sh`";
    (
        required(build_dir().join("index.js"), remedy),
        required(build_dir().join("index_bg.wasm"), remedy),
    )
}

/// The workerd binary that wrangler installed (npm package `workerd`).
pub fn workerd_binary() -> PathBuf {
    let modules = workspace_root().join("node_modules");
    let platform = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "linux-64",
        ("linux", "aarch64") => "linux-arm64",
        ("macos", "x86_64") => "darwin-64",
        ("macos", "aarch64") => "darwin-arm64",
        _ => "",
    };
    let native = modules.join(format!("@cloudflare/workerd-{platform}/bin/workerd"));
    if native.is_file() {
        return native;
    }
    let launcher = modules.join(".bin/workerd");
    assert!(
        launcher.exists(),
        "workerd is missing ({} and {}): run `scripts/setup-worker.sh` (npm ci)",
        native.display(),
        launcher.display()
    );
    launcher
}

pub fn wrangler_binary() -> PathBuf {
    required(
        workspace_root().join("node_modules/.bin/wrangler"),
        "run `scripts/setup-worker.sh` (npm ci)",
    )
}

/// `compatibility_date` from wrangler.toml, so workerd runs what a deploy runs.
pub fn compatibility_date() -> String {
    let toml = std::fs::read_to_string(workspace_root().join("wrangler.toml")).unwrap();
    toml.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "compatibility_date").then(|| v.trim().trim_matches('"').to_string())
        })
        .expect("wrangler.toml has a compatibility_date")
}

/// One Worker instance: its configuration (None: the var is not set) and its origin.
pub struct Service {
    pub name: String,
    pub config: Option<String>,
    pub origin_url: Option<String>,
    /// More text bindings (secrets, as `wrangler secret put` gives them).
    pub vars: Vec<(String, String)>,
    /// The configuration as a JSON value binding (a `[vars]` table) instead of text.
    pub config_as_object: bool,
    /// Another Worker in place of the built one (an ES module's source).
    pub js: Option<String>,
    /// Durable Object classes this Worker exports, each a namespace reached through
    /// `bindings`, stored in a directory of the run (`localDisk`: with in-memory
    /// storage, workerd 2026-04-26 aborts when an alarm fires, workerd issue 7190).
    pub durable_objects: Vec<String>,
    /// More bindings, as capnp text, such as
    /// `(name = "NS", durableObjectNamespace = (className = "C"))`.
    pub bindings: Vec<String>,
}

impl Service {
    pub fn new(name: &str, config: Option<String>, origin_url: Option<String>) -> Service {
        Service {
            name: name.into(),
            config,
            origin_url,
            vars: Vec::new(),
            config_as_object: false,
            js: None,
            durable_objects: Vec::new(),
            bindings: Vec::new(),
        }
    }
}

/// A Worker that forwards every request as it is, reading the body whole first as
/// persona-edge does: the baseline the Worker's added time is measured against (the
/// Worker test's `worker_overhead_per_20kb_delivery` and the benchmark harness).
pub const PASS_THROUGH_WORKER: &str = r#"
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const body = await request.arrayBuffer();
    return fetch(env.ORIGIN_URL + url.pathname + url.search, {
      method: request.method, headers: request.headers, body, redirect: "manual",
    });
  },
};
"#;

/// `workerd serve` with one socket per service, each running the built Worker with
/// its own bindings. workerd sets no CF-Connecting-IP: each request carries its own.
pub struct Workerd {
    pub process: Process,
    pub ports: Vec<(String, u16)>,
    pub dir: PathBuf,
}

impl Drop for Workerd {
    fn drop(&mut self) {
        // Keep the config and log of a failed test; otherwise leave nothing behind.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "workerd log ({}):\n{}",
                self.dir.display(),
                self.process.output()
            );
        }
    }
}

impl Workerd {
    pub fn start(services: &[Service]) -> Workerd {
        Workerd::start_with_v8_flags(services, &[])
    }

    /// [`Workerd::start`] with V8 flags (the config's `v8Flags`; workerd warns that
    /// they carry no stability guarantee). The soak run uses them to start V8's young
    /// generation at its full size, so that its growth is not mistaken for a leak.
    pub fn start_with_v8_flags(services: &[Service], v8_flags: &[&str]) -> Workerd {
        let (js, wasm) = built_worker();
        let dir = tempdir("workerd");
        std::fs::copy(&js, dir.join("index.js")).unwrap();
        std::fs::copy(&wasm, dir.join("index_bg.wasm")).unwrap();
        let date = compatibility_date();
        let mut config = String::from("using Workerd = import \"/workerd/workerd.capnp\";\n\n");
        config.push_str("const config :Workerd.Config = (\n  services = [\n");
        config.push_str(
            "    (name = \"internet\", network = (allow = [\"public\", \"private\", \"local\"], tlsOptions = (trustBrowserCas = true))),\n",
        );
        for (i, s) in services.iter().enumerate() {
            config.push_str(&format!(
                "    (name = \"{}\", worker = .worker{i}),\n",
                s.name
            ));
            if !s.durable_objects.is_empty() {
                let objects = dir.join(format!("{}_objects", s.name));
                std::fs::create_dir_all(&objects).unwrap();
                config.push_str(&format!(
                    "    (name = \"{}_objects\", disk = (path = \"{}\", writable = true)),\n",
                    s.name,
                    objects.display()
                ));
            }
        }
        config.push_str("  ],\n  sockets = [\n");
        let mut ports = Vec::new();
        for s in services {
            let port = free_port();
            config.push_str(&format!(
                "    (name = \"{0}\", address = \"127.0.0.1:{port}\", http = (), service = \"{0}\"),\n",
                s.name
            ));
            ports.push((s.name.clone(), port));
        }
        config.push_str("  ],\n");
        if !v8_flags.is_empty() {
            let flags: Vec<String> = v8_flags.iter().map(|f| format!("\"{f}\"")).collect();
            config.push_str(&format!("  v8Flags = [{}],\n", flags.join(", ")));
        }
        config.push_str(");\n\n");
        for (i, s) in services.iter().enumerate() {
            let mut bindings = Vec::new();
            let mut bind = |kind: &str, name: &str, value: &str, file: String| {
                std::fs::write(dir.join(&file), value).unwrap();
                bindings.push(format!("(name = \"{name}\", {kind} = embed \"{file}\")"));
            };
            if let Some(c) = &s.config {
                let kind = if s.config_as_object { "json" } else { "text" };
                bind(
                    kind,
                    "PERSONA_EDGE_CONFIG",
                    c,
                    format!("{}.config.json", s.name),
                );
            }
            if let Some(o) = &s.origin_url {
                bind("text", "ORIGIN_URL", o, format!("{}.origin.txt", s.name));
            }
            for (i, (n, v)) in s.vars.iter().enumerate() {
                bind("text", n, v, format!("{}.var{}.txt", s.name, i));
            }
            bindings.extend(s.bindings.iter().cloned());
            let mut storage = String::new();
            if !s.durable_objects.is_empty() {
                let namespaces: Vec<String> = s
                    .durable_objects
                    .iter()
                    .map(|class| {
                        format!(
                            "(className = \"{class}\", uniqueKey = \"{}-{class}\", enableSql = true)",
                            s.name
                        )
                    })
                    .collect();
                storage = format!(
                    "  durableObjectNamespaces = [{}],\n  durableObjectStorage = (localDisk = \"{}_objects\"),\n",
                    namespaces.join(", "),
                    s.name
                );
            }
            let modules = match &s.js {
                None => "(name = \"index.js\", esModule = embed \"index.js\"),\n    (name = \"index_bg.wasm\", wasm = embed \"index_bg.wasm\")".to_string(),
                Some(source) => {
                    let file = format!("{}.js", s.name);
                    std::fs::write(dir.join(&file), source).unwrap();
                    format!("(name = \"{file}\", esModule = embed \"{file}\")")
                }
            };
            config.push_str(&format!(
                "const worker{i} :Workerd.Worker = (\n  modules = [\n    {modules},\n  ],\n  bindings = [{}],\n{storage}  compatibilityDate = \"{date}\",\n  globalOutbound = \"internet\",\n);\n\n",
                bindings.join(", ")
            ));
        }
        let capnp = dir.join("config.capnp");
        std::fs::write(&capnp, &config).unwrap();
        let mut cmd = Command::new(workerd_binary());
        cmd.arg("serve")
            .arg(&capnp)
            .arg("--verbose")
            .current_dir(&dir);
        let mut process = Process::spawn("workerd", cmd, &dir.join("workerd.log"));
        for (_, port) in &ports {
            let addr: SocketAddr = ([127, 0, 0, 1], *port).into();
            process.wait_until(Duration::from_secs(30), || {
                std::net::TcpStream::connect(addr).is_ok()
            });
        }
        Workerd {
            process,
            ports,
            dir,
        }
    }

    pub fn addr(&self, service: &str) -> SocketAddr {
        let port = self
            .ports
            .iter()
            .find(|(n, _)| n == service)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no service {service}"));
        ([127, 0, 0, 1], port).into()
    }
}

pub fn service_name(config_file: &str) -> String {
    format!(
        "w_{}",
        config_file.trim_end_matches(".json").replace('-', "_")
    )
}

// ---------------------------------------------------------------------------
// Helpers

pub fn headers_with_client(case: &Case, now: u64, client: Option<&str>) -> Vec<(String, String)> {
    let mut headers = case.headers_at(now);
    if let Some(ip) = client {
        headers.push(("CF-Connecting-IP".into(), ip.into()));
    }
    headers
}

pub fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The `t=` of a `Persona-Signature` value.
pub fn signature_time(value: &str) -> u64 {
    value
        .split(',')
        .find_map(|p| p.trim().strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no t= in {value:?}"))
}

/// Asserts a JSON:API error reply from the Worker: status, content type, code.
pub fn assert_error(response: &Response, status: u16, code: &str, context: &str) -> Value {
    assert_eq!(
        response.status,
        status,
        "{context}: status; body {}",
        response.text()
    );
    assert_eq!(
        response.header("content-type"),
        Some("application/vnd.api+json"),
        "{context}: content type"
    );
    let doc = json(&response.body);
    assert_eq!(doc["errors"][0]["code"], code, "{context}: {doc}");
    assert_eq!(
        doc["errors"][0]["status"],
        status.to_string(),
        "{context}: {doc}"
    );
    doc
}

pub fn with_limits(config: &str, max_body_bytes: usize) -> String {
    let mut v: Value = serde_json::from_str(config).unwrap();
    v["limits"] = serde_json::json!({"max_body_bytes": max_body_bytes});
    v.to_string()
}

// ---------------------------------------------------------------------------
// wrangler dev with the repository's wrangler.toml

/// `wrangler dev` serving the repository's `wrangler.toml` with the built Worker, the
/// fixture secret in an env file, `ORIGIN_URL` pointing at `origin_url`, and
/// optionally another `PERSONA_EDGE_CONFIG`. Ready when the Worker answers a probe
/// from a Persona address (405 for a GET: the source is checked first, and wrangler
/// dev would supply 127.0.0.1, which gets 403); the probe reaches no origin.
pub struct WranglerDev {
    // Declared before the directory so that wrangler stops before its state is removed.
    pub process: Process,
    pub addr: SocketAddr,
    _dir: RemovedOnDrop,
}

struct RemovedOnDrop(PathBuf);

impl Drop for RemovedOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl WranglerDev {
    pub fn start(label: &str, origin_url: &str, config: Option<&str>) -> WranglerDev {
        built_worker();
        let dir = tempdir(label);
        let env_file = dir.join("secrets.env");
        std::fs::write(
            &env_file,
            format!("PERSONA_WEBHOOK_SECRET={}\n", crate::fixtures::SECRET),
        )
        .unwrap();
        let port = free_port();
        let mut cmd = Command::new(wrangler_binary());
        cmd.current_dir(workspace_root())
            .env("CI", "true")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("PERSONA_EDGE_WORKER_PREBUILT", "1")
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .arg("--persist-to")
            .arg(dir.join("state"))
            .arg("--env-file")
            .arg(&env_file)
            .arg("--var")
            .arg(format!("ORIGIN_URL:{origin_url}"));
        if let Some(config) = config {
            cmd.arg("--var")
                .arg(format!("PERSONA_EDGE_CONFIG:{config}"));
        }
        cmd.args(["--show-interactive-dev-session=false", "--log-level", "log"]);
        let mut process = Process::spawn("wrangler dev", cmd, &dir.join("wrangler.log"));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let probe = [("CF-Connecting-IP".to_string(), "35.232.44.140".to_string())];
        process.wait_until(Duration::from_secs(90), || {
            crate::http::send(
                addr,
                "GET",
                "/",
                &probe,
                b"",
                crate::http::Framing::ContentLength,
            )
            .is_ok_and(|r| r.status == 405)
        });
        WranglerDev {
            process,
            addr,
            _dir: RemovedOnDrop(dir),
        }
    }

    pub fn output(&self) -> String {
        self.process.output()
    }
}
