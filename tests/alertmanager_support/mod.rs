//! Fixtures of the alert-manager tests: the real `monitor-alert-manager` binary through the
//! generic process fixture (`support/process.rs`: YAML config in a fresh temp dir, restartable,
//! killable with SIGKILL, log tail on failure), a webhook receiver that
//! records every request it gets, and a stand-in for monitor-api's `GET /api/v1/hosts` whose
//! answers the test sets (until monitor-api's host registry is on main).
//!
//! It must never leave a process behind (`Drop` kills and reaps; a shell watchdog kills the child
//! if the test process dies first) and binds only 127.0.0.1.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::process::{Service, ServiceProcess, ServiceSpec};
use crate::support::receiver::serve_connection;
use crate::support::{HttpResponse, http_request, wait_for};

pub use crate::support::receiver::Received;

/// The `monitor-alert-manager` kind of [`ServiceProcess`].
pub struct AlertManagerService;

impl Service for AlertManagerService {
    const SPEC: ServiceSpec = ServiceSpec::new(
        "monitor-alert-manager",
        env!("CARGO_BIN_EXE_monitor-alert-manager"),
        "/ready",
        200,
    )
    .with_env(&[("MONITOR_LOG", "monitor=debug,info")]);
}

/// One `monitor-alert-manager` child process: `AlertManager::start(config_yaml)` waits until
/// `/ready` answers 200; the process fixture gives port, url, addr, log, kill9 and restart.
pub type AlertManager = ServiceProcess<AlertManagerService>;

/// The alert manager's own requests.
impl AlertManager {
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

// ---------------------------------------------------------------------------------------------
// a tiny HTTP server for stand-ins

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
                std::thread::spawn(move || {
                    serve_connection(stream, |request| answer(request, &log, &handler))
                });
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

fn answer(request: Received, log: &Mutex<Vec<Received>>, handler: &Handler) -> String {
    let (status, answer) = handler(&request);
    log.lock().unwrap_or_else(|p| p.into_inner()).push(request);
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
        answer.len()
    )
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
