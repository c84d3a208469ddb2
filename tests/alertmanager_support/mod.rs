//! Fixtures of the alert-manager tests: the real `monitor-alert-manager` binary with a YAML
//! config in a fresh temp dir (restartable, killable with SIGKILL), a webhook receiver that
//! records every request it gets, and a stand-in for monitor-api's `GET /api/v1/hosts` whose
//! answers the test sets (until monitor-api's host registry is on main).
//!
//! It must never leave a process behind (`Drop` kills and reaps; a shell watchdog kills the child
//! if the test process dies first) and binds only 127.0.0.1.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::support::{HttpResponse, free_port, http_request, wait_for};

const START_LIMIT: Duration = Duration::from_secs(60);

/// One `monitor-alert-manager` child process.
pub struct AlertManager {
    dir: TempDir,
    port: u16,
    child: Mutex<Option<Child>>,
}

impl AlertManager {
    /// Starts it with `config_yaml` (everything but `listen` and `data_dir`).
    pub fn start(config_yaml: &str) -> AlertManager {
        let dir = tempfile::Builder::new()
            .prefix("monitor-am-")
            .tempdir()
            .expect("temp dir");
        let am = AlertManager {
            dir,
            port: free_port(None),
            child: Mutex::new(None),
        };
        let config = format!(
            "listen: \"127.0.0.1:{}\"\ndata_dir: \"{}\"\n{config_yaml}",
            am.port,
            am.dir.path().join("data").display()
        );
        std::fs::write(am.config_path(), config).expect("write config");
        am.spawn_and_wait();
        am
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

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("alert-manager.yaml")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alert-manager.log")).unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn_and_wait(&self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("alert-manager.log"))
            .expect("open log");
        let log_err = log.try_clone().expect("clone log");
        let child = Command::new(env!("CARGO_BIN_EXE_monitor-alert-manager"))
            .arg("--config")
            .arg(self.config_path())
            .current_dir(self.dir.path())
            .env("MONITOR_LOG", "monitor=debug,info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("spawn monitor-alert-manager");
        spawn_watchdog(child.id());
        *self.lock() = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let exited = self
                .lock()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                *self.lock() = None;
                panic!(
                    "monitor-alert-manager exited with {status}:\n{}",
                    self.log()
                );
            }
            if http_request(self.addr(), "GET", "/ready", &[], b"").is_ok_and(|r| r.status == 200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "monitor-alert-manager did not come up:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGKILL and reap: nothing is flushed on the way out.
    pub fn kill9(&self) {
        if let Some(mut child) = self.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Same port, config and data directory.
    pub fn restart(&self) {
        self.kill9();
        self.spawn_and_wait();
    }

    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> HttpResponse {
        http_request(
            self.addr(),
            method,
            path,
            &[("Content-Type", "application/json")],
            body,
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn get_json(&self, path: &str) -> Value {
        let response = self.request("GET", path, b"");
        assert_eq!(response.status, 200, "GET {path}: {}", response.text());
        response.json()
    }

    /// POSTs alerts to `/api/v1/alerts`, asserting a 200.
    pub fn post_alerts(&self, alerts: &Value) -> Value {
        let response = self.request("POST", "/api/v1/alerts", alerts.to_string().as_bytes());
        assert_eq!(
            response.status,
            200,
            "POST /api/v1/alerts: {}",
            response.text()
        );
        response.json()
    }

    pub fn metrics(&self) -> String {
        self.request("GET", "/metrics", b"").text()
    }
}

impl Drop for AlertManager {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "--- monitor-alert-manager log (last 60 lines) ---\n{}",
                tail(&self.log(), 60)
            );
        }
    }
}

pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

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

// ---------------------------------------------------------------------------------------------
// a tiny HTTP server for stand-ins

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

type Handler = Arc<dyn Fn(&Received) -> (u16, String) + Send + Sync>;

/// An HTTP/1.1 server on a thread: records requests, answers with `handler`.
pub struct StandIn {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl StandIn {
    pub fn start(handler: Handler) -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let log = Arc::clone(&log);
                let handler = Arc::clone(&handler);
                std::thread::spawn(move || serve_connection(stream, &log, &handler));
            }
        });
        StandIn { port, received }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

fn serve_connection(stream: TcpStream, log: &Mutex<Vec<Received>>, handler: &Handler) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let length = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Received {
            method,
            path,
            headers,
            body,
        };
        let (status, answer) = handler(&request);
        log.lock().unwrap_or_else(|p| p.into_inner()).push(request);
        let response = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A webhook receiver answering 200 to everything.
pub fn webhook_sink() -> StandIn {
    StandIn::start(Arc::new(|_| (200, String::new())))
}

/// Stand-in for monitor-api's host registry: `GET /api/v1/hosts?index=I&host=H` answers from
/// the shared map of host -> active.
pub fn host_registry(active: Arc<Mutex<HashMap<String, bool>>>) -> StandIn {
    StandIn::start(Arc::new(move |request| {
        let query = request.path.split_once('?').map(|(_, q)| q).unwrap_or("");
        let param = |name: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let (host, index) = (param("host"), param("index"));
        let known = active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&host)
            .copied();
        let hosts = match known {
            Some(is_active) => {
                serde_json::json!([{ "index": index, "host": host, "last_seen": "2026-11-21T12:00:00.000Z", "active": is_active }])
            }
            None => serde_json::json!([]),
        };
        (
            200,
            serde_json::json!({ "active_window_seconds": 60, "hosts": hosts }).to_string(),
        )
    }))
}

/// Webhook notifications (Alertmanager JSON) received so far: (status, hosts of the alerts).
pub fn notifications(sink: &StandIn) -> Vec<(String, Vec<String>)> {
    sink.received()
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            let body = r.json();
            let status = body["status"].as_str().unwrap_or_default().to_owned();
            let hosts = body["alerts"]
                .as_array()
                .map(|alerts| {
                    alerts
                        .iter()
                        .map(|a| a["labels"]["host"].as_str().unwrap_or_default().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            (status, hosts)
        })
        .collect()
}

/// Waits (bounded) until `sink` holds `n` notifications, returns them.
pub fn wait_notifications(sink: &StandIn, n: usize, limit: Duration) -> Vec<(String, Vec<String>)> {
    wait_for(limit, || {
        let got = notifications(sink);
        (got.len() >= n).then_some(got)
    })
    .unwrap_or_else(|| notifications(sink))
}

/// An alert in the v1 shape.
pub fn alert(name: &str, index: &str, host: &str, severity: &str) -> Value {
    serde_json::json!({
        "name": name, "index": index, "host": host, "source": "test", "severity": severity,
        "annotations": { "summary": format!("{name} on {host}") },
        "value": 93.0, "at": "2026-11-21T12:00:00.000Z"
    })
}
