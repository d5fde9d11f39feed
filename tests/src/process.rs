//! Child processes (Envoy, workerd, wrangler) and the scratch resources a run needs:
//! temporary directories and free ports.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir.
pub fn tempdir(label: &str) -> PathBuf {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let dir = std::env::temp_dir().join(format!(
        "persona-edge-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        label.replace(['/', ' '], "_")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port that was free a moment ago on 127.0.0.1, never handed out twice by this
/// process. Taken below the kernel's ephemeral range (32768 and up by default), so an
/// outgoing connection (a test client, Envoy's upstream) cannot take it between this
/// check and the listener's bind; each test process starts at its own offset.
pub fn free_port() -> u16 {
    const FIRST: u16 = 20000;
    const SPAN: u16 = 12000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let offset = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        let port = FIRST + (offset + step) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

/// A child process in its own process group, killed (with its group) on drop, with
/// its output in a log file.
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Process {
    /// Starts `cmd` detached from the test's process group (Envoy and workerd were
    /// seen to die with the launching shell otherwise), output to `log`.
    pub fn spawn(name: &str, cmd: Command, log: &Path) -> Process {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        Process::start(name, cmd, log, out, err)
    }

    /// [`Process::spawn`], but standard output goes to its own file, `stdout`, and only
    /// standard error to `log`. Envoy's stdout access log and its stderr log lines were
    /// seen to interleave in one file under load (an access log line cut in two by a
    /// log line), so a run that reads every access log line keeps them apart.
    pub fn spawn_split(name: &str, cmd: Command, log: &Path, stdout: &Path) -> Process {
        let err = std::fs::File::create(log).unwrap();
        let out = std::fs::File::create(stdout).unwrap();
        Process::start(name, cmd, log, out, err)
    }

    fn start(
        name: &str,
        mut cmd: Command,
        log: &Path,
        out: std::fs::File,
        err: std::fs::File,
    ) -> Process {
        use std::os::unix::process::CommandExt;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name} could not be started ({cmd:?}): {e}"));
        Process {
            child,
            log: log.to_path_buf(),
            name: name.to_string(),
        }
    }

    /// The log so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its resident set size now (`VmRSS` of /proc/PID/status), in bytes; `None` once
    /// it has gone or where there is no /proc.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_bytes(self.child.id())
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Panics with the log when `ready` does not become true in time.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ready() {
                return;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    self.name,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} was not ready within {timeout:?}:\n{}",
            self.name,
            self.output()
        );
    }
}

/// The resident set size of process `pid` (`VmRSS` in /proc/PID/status), in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl Drop for Process {
    fn drop(&mut self) {
        // Signal the whole group (wrangler starts workerd as its own child) with the
        // system call itself: `kill -TERM -PID` through procps was seen to take its
        // argument for an option and signal every process, the test runner included.
        let Ok(pid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        if pid <= 1 {
            return;
        }
        // SAFETY: kill(2) with a negative pid signals that process group only; the
        // child was started as the leader of its own group (`process_group(0)`).
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
