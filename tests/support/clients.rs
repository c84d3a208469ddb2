//! Fixtures for the third-party client tests (`tests/clients_*.rs`, included with
//! `#[path = "support/clients.rs"] mod clients;` next to `mod support;`): a `monitor-api` child
//! process with a generated config, a real VictoriaMetrics server (the v2-dialect backend), the
//! Python client venv from `integration/install-deps.sh python-clients`, and runners for the
//! external clients.
//!
//! It must never leave processes behind (each child is killed by PID on `Drop`, and gets
//! `PR_SET_PDEATHSIG` so it dies with the test thread that started it), must never bind anything
//! but 127.0.0.1, and must never skip: a missing external client is a failure that says how to
//! install it.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use crate::support::{free_port, http_get, http_post, integration_dir, query_string, wait_for};

/// Spawns `command` so that it is killed when the spawning thread exits (a test that panics
/// before its fixtures drop, or a killed test binary, leaves nothing running).
fn spawn_tied_to_thread(command: &mut Command) -> std::io::Result<Child> {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

// ---------------------------------------------------------------------------------------------
// monitor-api

/// `replicas:` entries for v1 replicas at `urls`.
pub fn v1_replicas_yaml(urls: &[String]) -> String {
    urls.iter()
        .map(|url| format!("      - url: \"{url}\"\n"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// VictoriaMetrics

/// Makes sure `victoria-metrics` is installed (through install-deps.sh); panics with how to
/// install it otherwise.
pub fn ensure_victoria_metrics() -> PathBuf {
    static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PROGRAM.get_or_init(|| {
        let program = Path::new("/usr/bin/victoria-metrics");
        if program.is_file() {
            return Ok(program.to_path_buf());
        }
        let output = Command::new(integration_dir().join("install-deps.sh"))
            .arg("victoria-metrics")
            .output()
            .map_err(|e| format!("cannot run install-deps.sh: {e}"))?;
        if output.status.success() && program.is_file() {
            Ok(program.to_path_buf())
        } else {
            Err(format!(
                "victoria-metrics is missing and could not be installed; run \
                 `integration/install-deps.sh victoria-metrics` as root (Debian package \
                 victoria-metrics):\n{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    found.clone().unwrap_or_else(|message| panic!("{message}"))
}

/// A real VictoriaMetrics single-node server: it speaks InfluxDB's `/api/v2/write` (and v1
/// `/write`), so it stands in for a v2-dialect backend. Data in a fresh temp dir.
pub struct VictoriaMetrics {
    dir: TempDir,
    port: u16,
    child: Child,
}

impl VictoriaMetrics {
    pub fn start() -> VictoriaMetrics {
        let program = ensure_victoria_metrics();
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("clients-vm-")
                .tempdir()
                .expect("create temp dir");
            let port = free_port(None);
            let log_path = dir.path().join("victoria-metrics.log");
            let log = std::fs::File::create(&log_path).expect("create log");
            let mut child = spawn_tied_to_thread(
                Command::new(&program)
                    .arg(format!(
                        "-storageDataPath={}",
                        dir.path().join("data").display()
                    ))
                    .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                    .arg("-loggerLevel=WARN")
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().expect("clone log handle"))
                    .stderr(log),
            )
            .expect("spawn victoria-metrics");
            let ready = wait_for(Duration::from_secs(20), || {
                if let Ok(Some(_)) = child.try_wait() {
                    return Some(false);
                }
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                match crate::support::http_request(addr, "GET", "/health", &[], b"") {
                    Ok(response) if response.status == 200 => Some(true),
                    _ => None,
                }
            });
            if ready == Some(true) {
                return VictoriaMetrics { dir, port, child };
            }
            kill_and_reap(&mut child);
            last_error = tail(&log_path, 4000);
        }
        panic!("victoria-metrics did not start (3 attempts); last log:\n{last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every series matching the selector `series` (e.g. `{index="c2"}`), from `/api/v1/export`
    /// (one JSON object per line: `metric` labels, `values`, `timestamps` in ms), after a
    /// `/internal/force_flush` so recent writes are searchable.
    pub fn export(&self, series: &str) -> Vec<serde_json::Value> {
        let _ = http_get(self.port, "/internal/force_flush");
        let response = http_post(
            self.port,
            &format!("/api/v1/export?{}", query_string(&[("match[]", series)])),
            b"",
        );
        assert_eq!(response.status, 200, "export {series}: {}", response.text());
        response
            .text()
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("export line {line:?}: {e}"))
            })
            .collect()
    }

    /// Polls [`export`](Self::export) until it returns at least `min_series` series (newly
    /// written samples become searchable after a short delay); returns the last answer.
    pub fn wait_for_series(&self, series: &str, min_series: usize) -> Vec<serde_json::Value> {
        wait_for(Duration::from_secs(20), || {
            let found = self.export(series);
            (found.len() >= min_series).then_some(found)
        })
        .unwrap_or_else(|| self.export(series))
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

// ---------------------------------------------------------------------------------------------
// external clients

/// The venv holding PyPI's `influxdb` and `influxdb-client` (created by
/// `integration/install-deps.sh python-clients` when missing). Panics, never skips, when that
/// fails.
pub fn python_clients_venv() -> PathBuf {
    static VENV: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let venv = VENV.get_or_init(|| {
        let script = integration_dir().join("install-deps.sh");
        let output = Command::new(&script)
            .arg("python-clients")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let path = stdout.lines().last().unwrap_or("").trim();
        if output.status.success() && Path::new(path).join("bin/python").exists() {
            Ok(PathBuf::from(path))
        } else {
            Err(format!(
                "the Python InfluxDB clients are not installed and `integration/install-deps.sh \
                 python-clients` failed ({}). Install them with network access to PyPI: \
                 `integration/install-deps.sh python-clients` (a venv with pip packages influxdb \
                 and influxdb-client under ~/.cache/monitor/venv).\n{}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    venv.clone().unwrap_or_else(|message| panic!("{message}"))
}

/// Runs `script` with the clients venv's python (`python -c script args...`); panics with its
/// output unless it exits 0. Returns stdout.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let python = python_clients_venv().join("bin/python");
    let output = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    expect_success("python", &output);
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Panics with the program's output unless it exited 0.
pub fn expect_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The `influx` 1.x CLI (Debian's influxdb-client), installed through install-deps.sh when
/// missing.
pub fn influx_cli() -> PathBuf {
    let program = Path::new("/usr/bin/influx");
    if !program.is_file() {
        let status = Command::new(integration_dir().join("install-deps.sh"))
            .arg("influxdb")
            .status();
        assert!(
            status.is_ok_and(|s| s.success()) && program.is_file(),
            "the influx CLI is missing; run `integration/install-deps.sh influxdb` as root"
        );
    }
    program.to_path_buf()
}

/// `curl` (present on every machine the project runs on; fail with a hint otherwise).
pub fn curl() -> Command {
    let found = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "curl is missing: apt-get install -y curl");
    Command::new("curl")
}
