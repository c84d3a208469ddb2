//! An HTTP receiver standing in for the alert manager in the alert tests: it listens on a free
//! loopback port, answers every request with a configurable status, and records each
//! `POST /api/v1/alerts` (headers and JSON body). Keep-alive connections are served until the
//! client closes them. It never binds anything but 127.0.0.1, and its threads end with the test
//! process.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::wait_for;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub struct AlertReceiver {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    status: Arc<AtomicU16>,
}

impl AlertReceiver {
    pub fn start() -> AlertReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let port = listener.local_addr().unwrap().port();
        let receiver = AlertReceiver {
            port,
            received: Arc::new(Mutex::new(Vec::new())),
            status: Arc::new(AtomicU16::new(200)),
        };
        let shared = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || shared.serve(stream));
            }
        });
        receiver
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The status later requests are answered with (e.g. 503 to exercise retries).
    pub fn answer_with(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Every alert received so far (the JSON arrays flattened), with the request it came in.
    pub fn alerts(&self) -> Vec<(serde_json::Value, Received)> {
        let mut out = Vec::new();
        for request in self.requests() {
            if request.method != "POST" || request.path != "/api/v1/alerts" {
                continue;
            }
            let value: serde_json::Value =
                serde_json::from_slice(&request.body).expect("alerts body is JSON");
            for alert in value.as_array().expect("alerts body is an array") {
                out.push((alert.clone(), request.clone()));
            }
        }
        out
    }

    /// Waits until an alert satisfying `check` arrived; panics with what did arrive otherwise.
    pub fn wait_alert(
        &self,
        limit: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> (serde_json::Value, Received) {
        wait_for(limit, || self.alerts().into_iter().find(|(a, _)| check(a))).unwrap_or_else(|| {
            let names: Vec<String> = self
                .alerts()
                .iter()
                .map(|(a, _)| format!("{} {}", a["name"], a["host"]))
                .collect();
            panic!("no matching alert within {limit:?}; received: {names:?}")
        })
    }

    fn serve(&self, stream: TcpStream) {
        serve_connection(stream, |request| {
            let status = self.status.load(Ordering::SeqCst);
            if status == 200 {
                self.received.lock().unwrap().push(request);
            }
            format!(
                "HTTP/1.1 {status} X\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{{}}"
            )
        });
    }
}

/// Serves one keep-alive connection until the client closes it: every request goes to
/// `respond`, whose answer (a whole HTTP response) is written back.
pub fn serve_connection(stream: TcpStream, mut respond: impl FnMut(Received) -> String) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        if writer.write_all(respond(request).as_bytes()).is_err() {
            return;
        }
    }
}

/// Reads one HTTP/1.1 request (request line, headers, a `Content-Length` body) from a keep-alive
/// connection; `None` once the client closed it or sent less than it announced.
fn read_request(reader: &mut impl BufRead) -> Option<Received> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}
