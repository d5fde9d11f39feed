//! Running the real Envoy 1.40 with persona-edge in either packaging (the proxy-wasm
//! filter, `envoy/envoy.yaml`; the native dynamic module, `envoy/envoy-native.yaml`):
//! locating Envoy and the built artifacts, rendering the shipped file for a test's ports
//! and plugin configuration, starting and stopping it, and reading its stats and access
//! log. Shared by the Envoy tests, the soak runs and the benchmarks.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use persona_edge_core::{ErrorCode, signature_header};
use serde_json::Value;

use crate::fixtures::{
    Case, ORIGIN_SECRET, cache_dir, fixtures_dir, required, target_dir, workspace_root,
};
use crate::http::{Framing, Response, send};
use crate::oracle::{CliOutput, assert_reply_is_the_commands};
use crate::origin::{Origin, Recorded};
use crate::process::{Process, free_port, tempdir};

// ---------------------------------------------------------------------------
// The two packagings

/// How persona-edge runs in Envoy: the same driver and plugin configuration, built two
/// ways. Every Envoy test runs against both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packaging {
    /// The proxy-wasm filter (`persona_edge_filter.wasm`), `envoy/envoy.yaml`.
    Wasm,
    /// The dynamic module (`libpersona_edge_filter.so`), `envoy/envoy-native.yaml`.
    Native,
}

impl Packaging {
    pub const ALL: [Packaging; 2] = [Packaging::Wasm, Packaging::Native];

    pub fn name(self) -> &'static str {
        match self {
            Packaging::Wasm => "wasm",
            Packaging::Native => "native",
        }
    }

    /// The shipped Envoy configuration, relative to the checkout.
    pub fn shipped_file(self) -> &'static str {
        match self {
            Packaging::Wasm => "envoy/envoy.yaml",
            Packaging::Native => "envoy/envoy-native.yaml",
        }
    }

    /// The built artifact as it ships (fails when missing or older than its sources).
    pub fn module(self) -> PathBuf {
        match self {
            Packaging::Wasm => wasm_path(),
            Packaging::Native => native_module_path(),
        }
    }

    /// Where `/stats` shows the counters: `<prefix>forwarded`.
    pub fn counter_prefix(self) -> &'static str {
        match self {
            Packaging::Wasm => "wasmcustom.persona_edge.",
            Packaging::Native => "dynamicmodulescustom.persona_edge.",
        }
    }

    /// The environment Envoy needs to find `module` (the native module's directory).
    pub fn module_env(self, module: &Path) -> Vec<(String, String)> {
        match self {
            Packaging::Wasm => Vec::new(),
            Packaging::Native => vec![(
                String::from("ENVOY_DYNAMIC_MODULES_SEARCH_PATH"),
                module.parent().unwrap().display().to_string(),
            )],
        }
    }
}

/// `packaged! { fn NAME(packaging: Packaging) { .. } }` in a test file: the tests
/// `NAME::wasm` and `NAME::native`, each running the body with its packaging.
#[macro_export]
macro_rules! packaged {
    ($(#[$doc:meta])* fn $name:ident($packaging:ident: Packaging) $body:block) => {
        $(#[$doc])*
        mod $name {
            use super::*;

            fn run($packaging: $crate::envoy::Packaging) $body

            #[test]
            fn wasm() {
                run($crate::envoy::Packaging::Wasm)
            }

            #[test]
            fn native() {
                run($crate::envoy::Packaging::Native)
            }
        }
    };
}

pub fn envoy_bin() -> PathBuf {
    let path = match std::env::var_os("ENVOY_BIN") {
        Some(p) => PathBuf::from(p),
        None => cache_dir().join("envoy-venv/bin/envoy"),
    };
    required(path, "run scripts/setup-envoy.sh (or set ENVOY_BIN)")
}

pub fn wasm_path() -> PathBuf {
    // The filter as it ships: scripts/build-filter.sh (cargo, then wasm-opt).
    fresh(
        target_dir().join("persona-edge/persona_edge_filter.wasm"),
        "scripts/build-filter.sh",
        "filter/src/native",
    )
}

/// The native module as it ships: scripts/build-native-module.sh.
pub fn native_module_path() -> PathBuf {
    fresh(
        target_dir().join("persona-edge/libpersona_edge_filter.so"),
        "scripts/build-native-module.sh",
        "filter/src/wasm",
    )
}

/// The test-only native module whose hooks panic on request
/// (`scripts/build-native-module.sh --panic-test`).
pub fn panic_test_module_path() -> PathBuf {
    fresh(
        target_dir().join("persona-edge/panic-test/libpersona_edge_filter.so"),
        "scripts/build-native-module.sh --panic-test",
        "filter/src/wasm",
    )
}

/// `path`, which `script` builds, when it exists and is newer than its sources (those
/// of the filter and the core, less the other packaging's directory `other`, which
/// cargo does not rebuild it for): an artifact older than them tests old code.
fn fresh(path: PathBuf, script: &str, other: &str) -> PathBuf {
    let path = required(path, &format!("run {script} first"));
    let built = std::fs::metadata(&path).unwrap().modified().unwrap();
    let other = workspace_root().join(other);
    for dir in ["filter/src", "shared/src"] {
        if let Some(newer) =
            newest_file(&workspace_root().join(dir), &other).filter(|(t, _)| *t > built)
        {
            panic!(
                "{} is older than {}: rebuild it with {script}",
                path.display(),
                newer.1.display()
            );
        }
    }
    path
}

/// The newest file under `dir`, leaving out the directory `skip`.
pub fn newest_file(dir: &Path, skip: &Path) -> Option<(std::time::SystemTime, PathBuf)> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let candidate = if path == skip {
            None
        } else if path.is_dir() {
            newest_file(&path, skip)
        } else {
            entry.metadata().ok()?.modified().ok().map(|t| (t, path))
        };
        if let Some(c) = candidate
            && newest.as_ref().is_none_or(|n| c.0 > n.0)
        {
            newest = Some(c);
        }
    }
    newest
}

pub fn shipped_config(packaging: Packaging) -> String {
    std::fs::read_to_string(workspace_root().join(packaging.shipped_file())).unwrap()
}

// ---------------------------------------------------------------------------
// Rendering envoy/envoy.yaml and envoy/envoy-native.yaml

/// What a test changes in the shipped file.
pub struct Render<'a> {
    pub packaging: Packaging,
    pub listen_port: u16,
    pub admin_port: u16,
    pub origin_port: u16,
    /// The .wasm (named in the file); the native module is found through
    /// [`Packaging::module_env`] instead.
    pub module: &'a Path,
    /// The plugin configuration; `None` keeps the shipped one.
    pub plugin_config: Option<&'a str>,
}

/// Replaces `from` with `to`, which must occur exactly once.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the shipped Envoy configuration must contain {from:?} exactly once (the tests substitute it)"
    );
    text.replacen(from, to, 1)
}

pub fn render(r: &Render<'_>) -> String {
    let mut text = shipped_config(r.packaging);
    text = replace_once(
        &text,
        "port_value: 9901 }",
        &format!("port_value: {} }}", r.admin_port),
    );
    // The origin before the listener: the listener's new port may be the origin's old
    // one (the demo listens on 8080).
    text = replace_once(
        &text,
        "port_value: 8080 }",
        &format!("port_value: {} }}", r.origin_port),
    );
    text = replace_once(
        &text,
        "port_value: 10000 }",
        &format!("port_value: {} }}", r.listen_port),
    );
    text = replace_once(&text, "xff_num_trusted_hops: 0", "xff_num_trusted_hops: 1");
    if r.packaging == Packaging::Wasm {
        text = replace_once(
            &text,
            "filename: target/persona-edge/persona_edge_filter.wasm",
            &format!("filename: {}", r.module.display()),
        );
    }
    if let Some(config) = r.plugin_config {
        text = replace_plugin_config(&text, config);
    }
    text
}

/// Replaces the block scalar under the one `value: |` line (the plugin configuration)
/// with `config`: every following line indented deeper than `value:` belongs to it.
pub fn replace_plugin_config(text: &str, config: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].trim_end().ends_with("value: |"))
        .collect();
    assert_eq!(
        starts.len(),
        1,
        "the shipped Envoy configuration must have one `value: |` (the plugin configuration)"
    );
    let start = starts[0];
    let indent = lines[start].len() - lines[start].trim_start().len();
    let mut end = start + 1;
    while end < lines.len() {
        let line = lines[end];
        if !line.trim().is_empty() && line.len() - line.trim_start().len() <= indent {
            break;
        }
        end += 1;
    }
    let pad = " ".repeat(indent + 2);
    let mut out: Vec<String> = lines[..=start].iter().map(|l| l.to_string()).collect();
    out.extend(config.lines().map(|l| format!("{pad}{l}")));
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    out.join("\n") + "\n"
}

/// The lines indented deeper than the one line that ends with `key`: a YAML block
/// scalar, or a JSON flow mapping written on the following lines.
pub fn block_under(text: &str, key: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let starts: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].trim_end().ends_with(key))
        .collect();
    assert_eq!(starts.len(), 1, "one line must end with {key:?}");
    let indent = lines[starts[0]].len() - lines[starts[0]].trim_start().len();
    lines[starts[0] + 1..]
        .iter()
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `render`'s output split for LDS over the filesystem: a bootstrap with the admin
/// section, the `origin` cluster and `dynamic_resources.lds_config` pointing at
/// `listeners_path`; and the text of that file, the shipped listener (filters, plugin
/// configuration, access log and all) as the one resource of a listener discovery
/// response. Nothing of the listener is rewritten but its indentation.
pub fn render_lds(r: &Render<'_>, listeners_path: &Path) -> (String, String) {
    let text = render(r);
    let lines: Vec<&str> = text.lines().collect();
    let find = |marker: &str| {
        let at: Vec<usize> = (0..lines.len()).filter(|i| lines[*i] == marker).collect();
        assert_eq!(
            at.len(),
            1,
            "the shipped Envoy configuration must have one line {marker:?} (the LDS variant splits it there)"
        );
        at[0]
    };
    let (statics, listeners, clusters) = (
        find("static_resources:"),
        find("  listeners:"),
        find("  clusters:"),
    );
    assert!(statics + 1 == listeners && listeners < clusters);
    let mut bootstrap: String = lines[..statics].iter().map(|l| format!("{l}\n")).collect();
    bootstrap.push_str(&format!(
        "node: {{ id: persona-edge-soak, cluster: persona-edge-soak }}\n\
         dynamic_resources:\n  \
           lds_config:\n    \
             resource_api_version: V3\n    \
             path_config_source: {{ path: {} }}\n\
         static_resources:\n",
        listeners_path.display()
    ));
    for l in &lines[clusters..] {
        bootstrap.push_str(l);
        bootstrap.push('\n');
    }
    let mut resources = String::from("resources:\n");
    for l in &lines[listeners + 1..clusters] {
        let l = l.strip_prefix("  ").unwrap_or(l.trim_start());
        if l == "- name: persona_webhooks" {
            resources.push_str(
                "- \"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\n  name: persona_webhooks\n",
            );
        } else {
            resources.push_str(l);
            resources.push('\n');
        }
    }
    assert!(
        resources.contains("envoy.config.listener.v3.Listener"),
        "the listener is no longer named persona_webhooks"
    );
    (bootstrap, resources)
}

// ---------------------------------------------------------------------------
// A running Envoy

/// Envoy tests run one at a time: each starts Envoys, and 2 cores are few.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn next_base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Distinct per test process and per instance, so parallel runs never share one.
    (std::process::id() % 10_000) * 100 + NEXT.fetch_add(1, Ordering::Relaxed) % 100
}

pub struct Envoy {
    pub packaging: Packaging,
    /// Always `Some` until dropped (see [`stop`]).
    pub process: Option<Process>,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub _dir: PathBuf,
}

/// Envoy with one worker thread (the tests', the soak's and the benchmarks' default).
pub fn envoy_command(config_path: &Path, env: &[(&str, &str)]) -> Command {
    envoy_command_with(config_path, env, 1)
}

/// Envoy with `workers` worker threads (`--concurrency`): each accepts its own
/// connections and runs its own filter instance (its own Wasm VM), so that state the
/// workers share (duplicate suppression's table) is tested as it is used.
pub fn envoy_command_with(config_path: &Path, env: &[(&str, &str)], workers: usize) -> Command {
    let mut cmd = Command::new(envoy_bin());
    cmd.arg("-c")
        .arg(config_path)
        .arg("--concurrency")
        .arg(workers.to_string())
        .args(["--disable-hot-restart", "--file-flush-interval-msec", "20"])
        .arg("--base-id")
        .arg(next_base_id().to_string())
        .env_remove("PERSONA_WEBHOOK_SECRET")
        .env_remove("ENVOY_DYNAMIC_MODULES_SEARCH_PATH")
        // cargo test puts target/debug/deps there, where a debug build of the native
        // module lies: Envoy's last resort when the search path has none.
        .env_remove("LD_LIBRARY_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A packaging's shipped file rendered for two free ports, an origin and a plugin
/// configuration, in a fresh directory.
pub struct Rendered {
    pub packaging: Packaging,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub listen_port: u16,
    pub admin_port: u16,
    /// What Envoy needs in its environment to find the module.
    pub module_env: Vec<(String, String)>,
}

impl Rendered {
    /// `plugin_config`: None keeps the shipped one. `change`: one more substitution in
    /// the file (`from`, which must occur once, becomes `to`).
    pub fn write(
        packaging: Packaging,
        dir_label: &str,
        origin: &Origin,
        plugin_config: Option<&str>,
        change: Option<(&str, &str)>,
    ) -> Rendered {
        let dir = tempdir(&format!("{dir_label}-{}", packaging.name()));
        let (listen_port, admin_port) = (free_port(), free_port());
        let module = packaging.module();
        let mut yaml = render(&Render {
            packaging,
            listen_port,
            admin_port,
            origin_port: origin.addr.port(),
            module: &module,
            plugin_config,
        });
        if let Some((from, to)) = change {
            yaml = replace_once(&yaml, from, to);
        }
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, yaml).unwrap();
        Rendered {
            packaging,
            dir,
            config_path,
            listen_port,
            admin_port,
            module_env: packaging.module_env(&module),
        }
    }

    /// The command that runs it, with `env` added.
    pub fn command(&self, env: &[(&str, &str)]) -> Command {
        self.command_with(env, 1)
    }

    /// [`Rendered::command`] with `workers` worker threads.
    pub fn command_with(&self, env: &[(&str, &str)], workers: usize) -> Command {
        let mut cmd = envoy_command_with(&self.config_path, env, workers);
        for (k, v) in &self.module_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs it with `env` and waits until Envoy is ready.
    pub fn launch(self, label: &str, env: &[(&str, &str)]) -> Envoy {
        self.launch_with(label, env, 1)
    }

    /// [`Rendered::launch`] with `workers` worker threads.
    pub fn launch_with(self, label: &str, env: &[(&str, &str)], workers: usize) -> Envoy {
        let cmd = self.command_with(env, workers);
        Envoy::launch(
            self.packaging,
            label,
            cmd,
            self.dir,
            self.listen_port,
            self.admin_port,
        )
    }
}

impl Envoy {
    /// Envoy with `plugin_config` (None: the shipped one) in front of `origin`,
    /// ready to serve; panics with Envoy's log if it does not get there.
    pub fn start(
        packaging: Packaging,
        label: &str,
        plugin_config: Option<&str>,
        origin: &Origin,
        env: &[(&str, &str)],
    ) -> Envoy {
        Rendered::write(
            packaging,
            &format!("envoy-{label}"),
            origin,
            plugin_config,
            None,
        )
        .launch(label, env)
    }

    /// Runs `cmd` (an [`envoy_command`]) and waits until Envoy is ready; panics with
    /// its log if it does not get there.
    pub fn launch(
        packaging: Packaging,
        label: &str,
        cmd: Command,
        dir: PathBuf,
        listen_port: u16,
        admin_port: u16,
    ) -> Envoy {
        // The access log (stdout) in a file of its own: interleaved with Envoy's log,
        // a line of one was seen cut by a line of the other under load.
        let process = Process::spawn_split(
            &format!("envoy ({label}, {})", packaging.name()),
            cmd,
            &dir.join("envoy.log"),
            &dir.join("access.log"),
        );
        Envoy::wait_ready(packaging, label, process, dir, listen_port, admin_port)
    }

    /// Waits until the Envoy in `process` is ready; panics with its log if it does not
    /// get there.
    pub fn wait_ready(
        packaging: Packaging,
        label: &str,
        mut process: Process,
        dir: PathBuf,
        listen_port: u16,
        admin_port: u16,
    ) -> Envoy {
        let admin: SocketAddr = ([127, 0, 0, 1], admin_port).into();
        let listen: SocketAddr = ([127, 0, 0, 1], listen_port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        let problem = loop {
            if send(admin, "GET", "/ready", &[], b"", Framing::ContentLength)
                .is_ok_and(|r| r.status == 200)
            {
                break None;
            }
            if let Some(status) = process.exited() {
                break Some(format!("exited ({status}) before it was ready"));
            }
            if Instant::now() > deadline {
                break Some(String::from("was not ready within 30 s"));
            }
            thread::sleep(Duration::from_millis(50));
        };
        if let Some(problem) = problem {
            let output = process.output();
            stop(process);
            panic!(
                "Envoy ({label}, {}) {problem}; is the module built and Envoy 1.40 installed?\n{output}",
                packaging.name()
            );
        }
        Envoy {
            packaging,
            process: Some(process),
            listen,
            admin,
            _dir: dir,
        }
    }

    /// Starts Envoy with a plugin configuration it must refuse; returns its log.
    pub fn refused(packaging: Packaging, label: &str, plugin_config: &str) -> String {
        let origin = Origin::start();
        let rendered = Rendered::write(
            packaging,
            &format!("envoy-refused-{label}"),
            &origin,
            Some(plugin_config),
            None,
        );
        let command = rendered.command(&[]);
        Envoy::refused_by(label, &rendered, command)
    }

    /// Runs `command` (of `rendered`), which Envoy must refuse; returns its log.
    pub fn refused_by(label: &str, rendered: &Rendered, command: Command) -> String {
        let mut process = Process::spawn(
            &format!("envoy ({label}, {})", rendered.packaging.name()),
            command,
            &rendered.dir.join("envoy.log"),
        );
        let admin: SocketAddr = ([127, 0, 0, 1], rendered.admin_port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        let problem = loop {
            if let Some(status) = process.exited() {
                break status
                    .success()
                    .then_some("Envoy exited 0 with a refused configuration");
            }
            if send(admin, "GET", "/ready", &[], b"", Framing::ContentLength)
                .is_ok_and(|r| r.status == 200)
            {
                break Some("Envoy became ready with a configuration it must refuse");
            }
            if Instant::now() > deadline {
                break Some("Envoy neither exited nor became ready");
            }
            thread::sleep(Duration::from_millis(50));
        };
        if let Some(problem) = problem {
            let output = process.output();
            stop(process);
            panic!("{label}: {problem}:\n{output}");
        }
        let output = process.output();
        stop(process);
        // Nothing listens where the webhooks would arrive.
        assert!(TcpStream::connect(("127.0.0.1", rendered.listen_port)).is_err());
        output
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("Envoy is running").child.id()
    }

    /// Envoy's resident set size now, in bytes (V8's Wasm memory included).
    pub fn rss_bytes(&self) -> u64 {
        self.process
            .as_ref()
            .and_then(Process::rss_bytes)
            .unwrap_or_else(|| panic!("no VmRSS for Envoy:\n{}", self.log()))
    }

    /// Envoy's own heap (admin `/memory`: tcmalloc's `allocated` and `heap_size`), in
    /// bytes. V8's Wasm linear memory is mapped outside this heap; see `rss_bytes`.
    pub fn heap_bytes(&self) -> (u64, u64) {
        let r = send(
            self.admin,
            "GET",
            "/memory",
            &[],
            b"",
            Framing::ContentLength,
        )
        .unwrap();
        assert_eq!(r.status, 200, "/memory: {}", r.text());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let field = |name: &str| {
            v[name]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| v[name].as_u64())
                .unwrap_or_else(|| panic!("/memory has no {name}: {v}"))
        };
        (field("allocated"), field("heap_size"))
    }

    /// Every counter and gauge whose name contains `filter` (admin `/stats`), by full
    /// name. Histograms are left out.
    pub fn stats(&self, filter: &str) -> BTreeMap<String, u64> {
        let r = send(
            self.admin,
            "GET",
            &format!("/stats?filter={filter}"),
            &[],
            b"",
            Framing::ContentLength,
        )
        .unwrap();
        assert_eq!(r.status, 200, "/stats: {}", r.text());
        r.text()
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// One counter or gauge by its full name (0 when Envoy has not created it yet).
    pub fn stat(&self, name: &str) -> u64 {
        // The filter is a regular expression; `.` matching any character is harmless
        // since the exact name is looked up.
        self.stats(name).get(name).copied().unwrap_or(0)
    }

    /// The persona_edge counters (without the packaging's prefix).
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let prefix = self.packaging.counter_prefix();
        self.stats("persona_edge")
            .into_iter()
            .filter_map(|(name, value)| {
                let name = name.strip_prefix(prefix)?;
                Some((name.to_string(), value))
            })
            .collect()
    }

    /// The access log lines (JSON) so far.
    pub fn access_log(&self) -> Vec<Value> {
        std::fs::read_to_string(self._dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The access log line of the one request sent to `path`, waiting for the flush.
    pub fn access_log_for(&self, path: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<Value> = self
                .access_log()
                .into_iter()
                .filter(|l| l["path"] == path)
                .collect();
            if lines.len() == 1 {
                return lines.into_iter().next().unwrap();
            }
            assert!(
                lines.len() < 2,
                "{path}: more than one access log line: {lines:#?}"
            );
            assert!(
                Instant::now() < deadline,
                "{path}: no access log line:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(Process::output)
            .unwrap_or_default()
    }
}

/// Envoy whose listener comes from a file it watches (LDS over the filesystem,
/// [`render_lds`]), so that the plugin configuration can change while it runs:
/// [`DynamicEnvoy::set_plugin_config`] writes the new listener next to the watched file
/// and renames it over it, the atomic replacement Envoy reacts to.
pub struct DynamicEnvoy {
    pub envoy: Envoy,
    pub listeners_path: PathBuf,
    origin_port: u16,
    module: PathBuf,
    version: AtomicU32,
}

impl DynamicEnvoy {
    /// Like [`Envoy::start`]. `drain_seconds`: how long connections of a replaced
    /// listener may keep running the old configuration (`--drain-time-s`); with
    /// `--drain-strategy immediate` each of them is closed after its next response
    /// (`Connection: close`) as soon as the replacement is in place.
    pub fn start(
        packaging: Packaging,
        label: &str,
        plugin_config: &str,
        origin: &Origin,
        env: &[(&str, &str)],
        drain_seconds: u32,
    ) -> DynamicEnvoy {
        DynamicEnvoy::start_with(
            packaging,
            label,
            plugin_config,
            origin,
            env,
            drain_seconds,
            1,
        )
    }

    /// [`DynamicEnvoy::start`] with `workers` worker threads.
    pub fn start_with(
        packaging: Packaging,
        label: &str,
        plugin_config: &str,
        origin: &Origin,
        env: &[(&str, &str)],
        drain_seconds: u32,
        workers: usize,
    ) -> DynamicEnvoy {
        let dir = tempdir(&format!("envoy-lds-{label}-{}", packaging.name()));
        let (listen_port, admin_port) = (free_port(), free_port());
        let module = packaging.module();
        let listeners_path = dir.join("listeners.yaml");
        let (bootstrap, listeners) = render_lds(
            &Render {
                packaging,
                listen_port,
                admin_port,
                origin_port: origin.addr.port(),
                module: &module,
                plugin_config: Some(plugin_config),
            },
            &listeners_path,
        );
        std::fs::write(&listeners_path, format!("version_info: \"1\"\n{listeners}")).unwrap();
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, bootstrap).unwrap();
        let mut cmd = envoy_command_with(&config_path, env, workers);
        cmd.envs(packaging.module_env(&module))
            .arg("--drain-time-s")
            .arg(drain_seconds.to_string())
            .args(["--drain-strategy", "immediate"]);
        let envoy = Envoy::launch(packaging, label, cmd, dir, listen_port, admin_port);
        DynamicEnvoy {
            envoy,
            listeners_path,
            origin_port: origin.addr.port(),
            module,
            version: AtomicU32::new(1),
        }
    }

    /// Replaces the listener with one whose plugin configuration is `config`: written
    /// to a new file in the same directory, then renamed over the watched one.
    /// Returns the new `version_info`.
    pub fn set_plugin_config(&self, config: &str) -> u32 {
        self.set_listener(config, None)
    }

    /// [`DynamicEnvoy::set_plugin_config`], with one more substitution in the
    /// listener (`from`, which must occur once, becomes `to`).
    pub fn set_listener(&self, config: &str, change: Option<(&str, &str)>) -> u32 {
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let (_, mut listeners) = render_lds(
            &Render {
                packaging: self.envoy.packaging,
                listen_port: self.envoy.listen.port(),
                admin_port: self.envoy.admin.port(),
                origin_port: self.origin_port,
                module: &self.module,
                plugin_config: Some(config),
            },
            &self.listeners_path,
        );
        if let Some((from, to)) = change {
            listeners = replace_once(&listeners, from, to);
        }
        let next = self.listeners_path.with_extension("next.yaml");
        std::fs::write(&next, format!("version_info: \"{version}\"\n{listeners}")).unwrap();
        std::fs::rename(&next, &self.listeners_path).unwrap();
        version
    }

    /// The access log lines (JSON) so far.
    pub fn access_log(&self) -> Vec<Value> {
        self.envoy.access_log()
    }

    /// Waits until Envoy has accepted `n` listener updates in all (the first load
    /// counts), panicking with its log when one is rejected or none comes in time.
    pub fn wait_for_lds_updates(&self, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = self.envoy.stats("listener_manager.lds.update_");
            let get = |k: &str| stats.get(k).copied().unwrap_or(0);
            let (ok, rejected) = (
                get("listener_manager.lds.update_success"),
                get("listener_manager.lds.update_rejected"),
            );
            assert!(
                rejected == 0,
                "Envoy rejected a listener update ({stats:?}):\n{}",
                self.envoy.log()
            );
            if ok >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Envoy took no listener update {n} within {timeout:?} ({stats:?}):\n{}",
                self.envoy.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            stop(process);
        }
    }
}

/// Stops a child by its own pid (Envoy has no children). `Process`'s own drop
/// signals the process group (`kill -TERM -PID`), which this sandbox does not deliver
/// (the test then waits forever), so it is not run.
pub fn stop(mut process: Process) {
    let _ = process.child.kill();
    let _ = process.child.wait();
    std::mem::forget(process);
}

// ---------------------------------------------------------------------------
// Sending fixture cases

/// The request of `case` at `now`, from a load balancer that saw `client`.
pub fn request_headers(case: &Case, now: u64, xff: &str) -> Vec<(String, String)> {
    let mut headers = case.headers_at(now);
    headers.push(("X-Forwarded-For".into(), xff.into()));
    headers
}

/// The webhook path envoy.yaml routes, with the case's name in the query (which the
/// route's exact path match ignores), so its access log line can be found.
pub fn path_for(case: &Case) -> String {
    format!("/webhooks/persona?case={}", case.name)
}

pub fn send_case(envoy: &Envoy, case: &Case, now: u64, framing: Framing) -> Response {
    send(
        envoy.listen,
        &case.method,
        &path_for(case),
        &request_headers(case, now, &case.client),
        &case.body,
        framing,
    )
    .unwrap_or_else(|e| {
        panic!(
            "{}: sending through Envoy failed: {e}\n{}",
            case.name,
            envoy.log()
        )
    })
}

/// Waits until the origin has `n` requests (forwarding is asynchronous to nothing,
/// but a failed check should show what arrived).
pub fn origin_requests(origin: &Origin, n: usize) -> Vec<Recorded> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = origin.requests();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

pub fn headers_named<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// What went through Envoy matches what the native command decided.
pub fn check_against_cli(
    envoy: &Envoy,
    origin: &Origin,
    case: &Case,
    cli: &CliOutput,
    response: &Response,
    now: u64,
    shadow: bool,
) {
    let name = &case.name;
    match cli.action.as_str() {
        "forward" => {
            assert_eq!(
                response.status,
                200,
                "{name}: {}\n{}",
                response.text(),
                envoy.log()
            );
            let got = origin_requests(origin, 1);
            assert_eq!(
                got.len(),
                1,
                "{name}: the origin got {} requests",
                got.len()
            );
            let r = &got[0];
            assert_eq!(r.method, case.method, "{name}");
            assert_eq!(r.path, path_for(case), "{name}");
            assert!(
                r.body == cli.body,
                "{name}: the origin's body differs from persona-edge process's"
            );
            case.check_forwarded_body(&r.body);
            // Header removals: gone, unless the core sets them again.
            for removed in &cli.remove_headers {
                if removed == "content-length" {
                    continue;
                }
                if !cli.headers.contains_key(removed) {
                    assert!(
                        headers_named(&r.headers, removed).is_empty(),
                        "{name}: {removed} reached the origin: {:?}",
                        r.headers
                    );
                }
            }
            // The body's framing is right after a rewrite.
            if let Some(len) = r.header("content-length") {
                assert_eq!(len, r.body.len().to_string(), "{name}: Content-Length");
            }
            // Headers the core sets: exactly once, with its value; and no other x-persona-*.
            for (header, value) in &cli.headers {
                let got = headers_named(&r.headers, header);
                if header == "persona-signature" {
                    // Re-signed at Envoy's clock, which may be a second past the
                    // command's: the origin verifies it with its own secret.
                    assert_eq!(got.len(), 1, "{name}: {header} at the origin: {got:?}");
                    assert_resigned(name, got[0], &r.body, now);
                    continue;
                }
                assert_eq!(
                    got,
                    vec![value.as_str()],
                    "{name}: header {header} at the origin"
                );
            }
            // A signature the core neither removes nor replaces reaches the origin as sent
            // (the route's persona-signature entry adds nothing when there is no new one).
            if !cli.remove_headers.iter().any(|h| h == "persona-signature") {
                assert_eq!(
                    headers_named(&r.headers, "persona-signature"),
                    case.signatures_at(now),
                    "{name}: the original signature at the origin"
                );
            }
            for (header, _) in &r.headers {
                let lower = header.to_ascii_lowercase();
                if lower.replace('_', "-").starts_with("x-persona-") {
                    assert!(
                        cli.headers.contains_key(&lower),
                        "{name}: unexpected {header} at the origin"
                    );
                }
            }
        }
        "reject" | "acknowledge" => {
            assert_reply_is_the_commands(name, "envoy", response, cli);
            thread::sleep(Duration::from_millis(20));
            assert!(
                origin.requests().is_empty(),
                "{name}: the origin received {:?}",
                origin.requests()
            );
        }
        other => panic!("{name}: unknown action {other}"),
    }
    // The access log carries the decision and the routing metadata.
    let line = envoy.access_log_for(&path_for(case));
    assert_eq!(
        line["decision"].as_str(),
        Some(cli.decision.as_str()),
        "{name}: access log {line}"
    );
    let meta = &cli.metadata;
    for (log_key, meta_key) in [
        ("event_id", "event_id"),
        ("event_name", "event_name"),
        ("event_created_at", "created_at"),
        ("resource_type", "resource_type"),
        ("resource_id", "resource_id"),
        ("attempt", "attempt"),
    ] {
        assert_eq!(
            line[log_key], meta[meta_key],
            "{name}: access log {log_key}: {line}"
        );
    }
    if cli.action == "forward" && !shadow {
        let stripped = cli.raw["stripped"].as_u64().unwrap();
        assert_eq!(
            line["stripped"].as_str(),
            Some(stripped.to_string().as_str()),
            "{name}: {line}"
        );
    }
}

/// The counters a set of decisions should leave.
pub fn expected_counters(outputs: &[&CliOutput], shadow: bool) -> BTreeMap<String, u64> {
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for name in [
        "forwarded",
        "acknowledged",
        "attributes_stripped",
        "host_errors",
    ] {
        want.insert(name.into(), 0);
    }
    // A host error is counted in `host_errors`, not as a refusal.
    for code in ErrorCode::ALL
        .into_iter()
        .filter(|c| *c != ErrorCode::HostError)
    {
        want.insert(format!("rejected.{code}"), 0);
        if shadow {
            want.insert(format!("shadow.would_reject.{code}"), 0);
        }
    }
    if shadow {
        want.insert("shadow.would_forward".into(), 0);
        want.insert("shadow.would_acknowledge".into(), 0);
    }
    for out in outputs {
        match out.action.as_str() {
            "forward" => {
                *want.get_mut("forwarded").unwrap() += 1;
                *want.get_mut("attributes_stripped").unwrap() +=
                    out.raw["stripped"].as_u64().unwrap();
                if shadow {
                    let key = match out.decision.as_str() {
                        "forward" => "shadow.would_forward".to_string(),
                        d if d.starts_with("acknowledge") => "shadow.would_acknowledge".to_string(),
                        d => format!("shadow.would_reject.{}", d.rsplit("code=").next().unwrap()),
                    };
                    *want.get_mut(&key).unwrap() += 1;
                }
            }
            "acknowledge" => *want.get_mut("acknowledged").unwrap() += 1,
            "reject" => {
                *want
                    .get_mut(&format!("rejected.{}", out.code.as_deref().unwrap()))
                    .unwrap() += 1
            }
            other => panic!("unknown action {other}"),
        }
    }
    want
}

/// What an origin that holds the re-signing secret checks: `signature` is
/// `t=<time>,v1=<HMAC-SHA256 of the body with ORIGIN_SECRET>`, signed within 5 s of
/// `now`.
pub fn assert_resigned(name: &str, signature: &str, body: &[u8], now: u64) {
    let t: u64 = signature
        .split(',')
        .find_map(|part| part.strip_prefix("t="))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{name}: no timestamp in {signature}"));
    assert!(t.abs_diff(now) <= 5, "{name}: signed at {t}, now {now}");
    assert_eq!(
        signature,
        signature_header(ORIGIN_SECRET, t, body),
        "{name}: the new signature does not verify with the origin's secret"
    );
}

/// A fixture configuration's text and path.
pub fn fixture_config(config_name: &str) -> (String, PathBuf) {
    let path = fixtures_dir().join("configs").join(config_name);
    (std::fs::read_to_string(&path).unwrap(), path)
}
