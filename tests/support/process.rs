//! One real service process for the integration tests: a binary cargo built for this test run,
//! started with a YAML config in a fresh temporary directory (its `data_dir`, config file and log
//! live there), on a free loopback port, and waited for until its readiness URL answers. The
//! `monitor-api` fixture (`api.rs`) and the `monitor-alert-manager` fixture
//! (`alertmanager_support`) are thin wrappers over it.
//!
//! It must never leave a process behind: `Drop` kills and reaps the child, and a tiny shell
//! watchdog kills it if this test process dies first. It never binds anything but 127.0.0.1.
//! `restart` keeps the port and the data directory, so a restart is a crash recovery.

use std::fs::OpenOptions;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{free_port, http_request, wait_for};

/// How long a fresh process may take to become ready (debug build, loaded machine).
const START_LIMIT: Duration = Duration::from_secs(60);

/// What the OS says when the port was taken between our check and the bind: worth another port.
const PORT_TAKEN: &str = "Address already in use";

/// A kind of service: which binary, how to tell it is ready. `ServiceProcess<Kind>` gets the
/// kind's own requests from an `impl ServiceProcess<Kind>` next to the kind.
pub trait Service {
    const SPEC: ServiceSpec;
}

/// Which binary to run and how to tell that it is ready.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// The name in messages and the stem of the config and log files (`<name>.yaml`,
    /// `<name>.log`), e.g. `monitor-api`.
    name: &'static str,
    /// The executable, e.g. `env!("CARGO_BIN_EXE_monitor-api")`.
    binary: &'static str,
    /// `GET` this path until it answers `ready_status`.
    ready_path: &'static str,
    ready_status: u16,
    /// Extra environment of the child.
    env: &'static [(&'static str, &'static str)],
}

impl ServiceSpec {
    pub const fn new(
        name: &'static str,
        binary: &'static str,
        ready_path: &'static str,
        ready_status: u16,
    ) -> ServiceSpec {
        ServiceSpec {
            name,
            binary,
            ready_path,
            ready_status,
            env: &[],
        }
    }

    pub const fn with_env(self, env: &'static [(&'static str, &'static str)]) -> ServiceSpec {
        ServiceSpec { env, ..self }
    }
}

/// One child process of a [`Service`], with its temp dir, port and log.
pub struct ServiceProcess<Kind: Service> {
    spec: ServiceSpec,
    dir: TempDir,
    port: u16,
    child: Mutex<Option<Child>>,
    kind: PhantomData<Kind>,
}

impl<Kind: Service> ServiceProcess<Kind> {
    /// Starts the service with `config_yaml` (everything but `listen` and `data_dir`, which are
    /// added here) and waits until it is ready. Retries with another port if the port was taken
    /// between our check and the bind; panics with the log otherwise.
    pub fn start(config_yaml: &str) -> ServiceProcess<Kind> {
        let spec = Kind::SPEC;
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix(&format!("{}-", spec.name))
                .tempdir()
                .expect("create temp dir");
            let process = ServiceProcess {
                spec,
                dir,
                port: free_port(None),
                child: Mutex::new(None),
                kind: PhantomData,
            };
            let config = format!(
                "listen: \"127.0.0.1:{}\"\ndata_dir: \"{}\"\n{config_yaml}",
                process.port,
                process.data_dir().display()
            );
            std::fs::write(process.config_path(), config).expect("write config");
            match process.spawn_and_wait() {
                Ok(()) => return process,
                Err(error) if error.contains(PORT_TAKEN) => last_error = error,
                Err(error) => panic!("could not start {}:\n{error}", spec.name),
            }
        }
        panic!("could not start {}:\n{last_error}", spec.name);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The service's `data_dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.yaml", self.spec.name))
    }

    /// Everything the process wrote to stderr and stdout, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.spec.name))
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.lock().as_ref().map(Child::id)
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn_and_wait(&self) -> Result<(), String> {
        let name = self.spec.name;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("open log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("clone log: {e}"))?;
        let child = Command::new(self.spec.binary)
            .arg("--config")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .envs(self.spec.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("spawn {name}: {e}"))?;
        spawn_watchdog(child.id());
        *self.lock() = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            // (the guard must be gone before the slot is cleared)
            let exited = self
                .lock()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                *self.lock() = None;
                return Err(format!("{name} exited with {status}:\n{}", self.log()));
            }
            let ready = http_request(self.addr(), "GET", self.spec.ready_path, &[], b"");
            if ready.is_ok_and(|r| r.status == self.spec.ready_status) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill9();
                return Err(format!(
                    "{name} did not answer {} within {START_LIMIT:?}:\n{}",
                    self.spec.ready_path,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL (a crash: nothing is flushed or persisted on the way out) and reap.
    pub fn kill9(&self) {
        if let Some(mut child) = self.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for the graceful exit. Returns its exit status, or `None` when it did
    /// not exit within `limit` and had to be killed.
    pub fn stop(&self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.lock().take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let exited = wait_for(limit, || child.try_wait().ok().flatten());
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        exited
    }

    /// Starts the process again (same port, config and data_dir) after `kill9` or `stop`, and
    /// waits until it is ready. Panics with the log if it does not come up.
    pub fn restart(&self) {
        self.kill9();
        if let Err(error) = self.spawn_and_wait() {
            panic!("{} restart failed: {error}", self.spec.name);
        }
    }
}

impl<Kind: Service> Drop for ServiceProcess<Kind> {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- {} log (last 60 lines) ---\n{}",
                self.spec.name,
                tail(&self.log(), 60)
            );
        }
    }
}

/// Kills `child` if this test process dies without running destructors (SIGKILL of the test
/// binary, abort). Only when the owner is gone: a reused PID of an exited child is left alone.
fn spawn_watchdog(child: u32) {
    let owner = std::process::id();
    let script = format!(
        "while kill -0 {owner} 2>/dev/null && kill -0 {child} 2>/dev/null; do sleep 1; done; \
         if ! kill -0 {owner} 2>/dev/null; then kill -9 {child} 2>/dev/null; fi"
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
