//! A real `monitor-api` process for the write-path tests: the generic process fixture
//! (`process.rs`: the binary cargo built for this test run, a YAML config in a fresh temporary
//! directory, a free loopback port, waited for until `/ping` answers) plus the proxy's requests
//! (`/write`, `/health`, `/metrics`, dead letters) and the config snippets the tests share.
//!
//! It must never leave a process behind (the process fixture kills and reaps on `Drop`, with a
//! watchdog should this test process die first) and never binds anything but 127.0.0.1.
//! `restart` keeps the port and the data directory, so a restart is a crash recovery.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::process::{Service, ServiceProcess, ServiceSpec};
use super::{HttpResponse, InfluxCluster, free_port, http_request, query_string, wait_for};

pub use super::process::tail;

/// The `monitor-api` kind of [`ServiceProcess`].
pub struct MonitorApiService;

impl Service for MonitorApiService {
    const SPEC: ServiceSpec = ServiceSpec::new(
        "monitor-api",
        env!("CARGO_BIN_EXE_monitor-api"),
        "/ping",
        204,
    );
}

/// One `monitor-api` child process: `MonitorApi::start(config_yaml)` waits until `/ping` answers
/// 204; the process fixture gives port, url, addr, data_dir, log, pid, kill9, stop and restart.
pub type MonitorApi = ServiceProcess<MonitorApiService>;

/// The proxy's own requests.
impl MonitorApi {
    /// Any request; panics on connection errors.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> HttpResponse {
        http_request(self.addr(), method, path_and_query, headers, body)
            .unwrap_or_else(|e| panic!("{method} monitor-api {path_and_query}: {e}"))
    }

    /// `POST /write?db=…&<params>` with `body`; panics on connection errors.
    pub fn write(&self, db: &str, params: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        self.try_write(db, params, &[], body)
            .unwrap_or_else(|e| panic!("POST monitor-api /write: {e}"))
    }

    /// `POST /write?db=…&<params>` with extra headers; connection errors are returned (a killed
    /// proxy).
    pub fn try_write(
        &self,
        db: &str,
        params: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        let mut all = vec![("db", db)];
        all.extend_from_slice(params);
        let path = format!("/write?{}", query_string(&all));
        http_request(self.addr(), "POST", &path, headers, body)
    }

    /// `GET /health` as JSON.
    pub fn health(&self) -> serde_json::Value {
        self.request("GET", "/health", &[], b"").json()
    }

    /// `GET /metrics` as text.
    pub fn metrics(&self) -> String {
        let response = self.request("GET", "/metrics", &[], b"");
        assert_eq!(response.status, 200, "/metrics: {}", response.text());
        response.text()
    }

    /// The value of one sample of `/metrics`, e.g.
    /// `metric_value("monitor_lines_rejected_total", &[("reason", "parse")])`; 0 when absent.
    pub fn metric_value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        sum_metric(&self.metrics(), name, labels)
    }

    /// `(group, replica, pending_bytes, up)` of every replica in `/health`.
    pub fn replica_states(&self) -> Vec<(String, String, u64, bool)> {
        let health = self.health();
        let mut out = Vec::new();
        for group in health["groups"].as_array().cloned().unwrap_or_default() {
            for replica in group["replicas"].as_array().cloned().unwrap_or_default() {
                out.push((
                    group["group"].as_str().unwrap_or_default().to_owned(),
                    replica["replica"].as_str().unwrap_or_default().to_owned(),
                    replica["pending_bytes"].as_u64().unwrap_or(u64::MAX),
                    replica["up"].as_bool().unwrap_or(false),
                ));
            }
        }
        out
    }

    /// The `/health` entry of replica `name` in group `group` (`Null` when absent).
    pub fn replica_health(&self, group: &str, name: &str) -> serde_json::Value {
        let health = self.health();
        health["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|g| g["group"] == group)
            .flat_map(|g| g["replicas"].as_array().cloned().unwrap_or_default())
            .find(|r| r["replica"] == name)
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits (bounded) until every replica of every group is up with nothing pending, i.e. every
    /// record of every durable log reached every backend. Panics with `/health` otherwise.
    pub fn wait_drained(&self, limit: Duration) {
        let drained = wait_for(limit, || {
            let states = self.replica_states();
            (!states.is_empty()
                && states
                    .iter()
                    .all(|(_, _, pending, up)| *pending == 0 && *up))
            .then_some(())
        });
        if drained.is_none() {
            panic!(
                "monitor-api did not drain its queues within {limit:?}; /health: {}\nlog tail:\n{}",
                self.health(),
                tail(&self.log(), 40)
            );
        }
    }

    /// The dead-letter file of one replica, one JSON value per line (empty when absent).
    pub fn dead_letters(&self, group: &str, replica: &str) -> Vec<serde_json::Value> {
        let path = self
            .data_dir()
            .join("dead-letter")
            .join(group)
            .join(format!("{replica}.jsonl"));
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("dead letter {l:?}: {e}")))
            .collect()
    }
}

/// Sum of the samples of `name` (Prometheus text) whose labels include all of `labels`.
pub fn sum_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(after) = rest.strip_prefix('{') {
            match after.split_once('}') {
                Some((inside, value)) => (inside, value),
                None => continue,
            }
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue;
        };
        let matches = labels.iter().all(|(k, v)| {
            label_text
                .split(',')
                .any(|pair| pair == format!("{k}=\"{v}\""))
        });
        if matches {
            total += value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    total
}

/// A request whose body may be refused before it is fully sent (413 on a declared length): body
/// write errors are ignored and the answer is read anyway.
pub fn http_request_early_answer(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let _ = stream.write_all(body);
    let _ = stream.flush();
    read_answer(stream)
}

/// The status code and the rest of the answer (headers and body) of a `Connection: close`
/// request.
fn read_answer(stream: TcpStream) -> std::io::Result<(u16, String)> {
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    Ok((status, String::from_utf8_lossy(&rest).into_owned()))
}

/// `POST` with `Transfer-Encoding: chunked` (no `Content-Length`: the server cannot refuse by
/// the declared size), `chunk` bytes per chunk; body write errors are ignored and the answer
/// is read anyway.
pub fn http_post_chunked(
    addr: SocketAddr,
    path_and_query: &str,
    body: &[u8],
    chunk: usize,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let head = format!(
        "POST {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes())?;
    let mut framed = Vec::with_capacity(body.len() + body.len() / chunk.max(1) * 8 + 8);
    for piece in body.chunks(chunk.max(1)) {
        framed.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        framed.extend_from_slice(piece);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    let _ = stream.write_all(&framed);
    let _ = stream.flush();
    read_answer(stream)
}

impl InfluxCluster {
    /// `SELECT count(<field>) FROM <from> GROUP BY <tag>` on node `i`: count per tag value.
    /// `from` is InfluxQL as written (`m`, `"rp"."m"`).
    pub fn count_by_tag(
        &self,
        i: usize,
        db: &str,
        from: &str,
        field: &str,
        tag: &str,
    ) -> std::collections::BTreeMap<String, u64> {
        let q = format!("SELECT count(\"{field}\") FROM {from} GROUP BY \"{tag}\"");
        let value = self.query(i, db, &q);
        let mut out = std::collections::BTreeMap::new();
        for series in value["results"][0]["series"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let key = series["tags"][tag].as_str().unwrap_or_default().to_owned();
            let count = series["values"][0][1].as_u64().unwrap_or(0);
            out.insert(key, count);
        }
        out
    }

    /// `SELECT count(<field>) FROM <measurement>` on node `i` (0 when the database or
    /// measurement does not exist).
    pub fn count(&self, i: usize, db: &str, measurement: &str, field: &str) -> u64 {
        let q = format!("SELECT count(\"{field}\") FROM \"{measurement}\"");
        let value = self.query(i, db, &q);
        value["results"][0]["series"][0]["values"][0][1]
            .as_u64()
            .unwrap_or(0)
    }

    /// The databases of node `i`.
    pub fn databases(&self, i: usize) -> Vec<String> {
        self.query_rows(i, "", "SHOW DATABASES")
            .into_iter()
            .filter_map(|row| row.first().and_then(|v| v.as_str()).map(str::to_owned))
            .collect()
    }

    /// Like [`start_in_memory`](Self::start_in_memory) with extra environment for influxd
    /// (influxd reads `INFLUXDB_<SECTION>_<KEY>` overrides, e.g. `INFLUXDB_HTTP_LOG_ENABLED`).
    pub fn start_in_memory_with_env(n: usize, env: &[(&str, &str)]) -> InfluxCluster {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("influxd-cluster-")
                .tempdir_in(&base)
                .expect("create temp dir");
            let ports: Vec<u16> = (0..n).map(|_| free_port(Some(1000))).collect();
            let cluster = InfluxCluster { dir, ports };
            let output = Command::new(Self::script())
                .args(cluster.start_args(&cluster.ports))
                .envs(env.iter().copied())
                .output()
                .expect("run influxd-cluster.sh");
            if output.status.success() {
                return cluster;
            }
            last_error = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        panic!("could not start an influxd cluster:\n{last_error}");
    }
}

/// Config keys that keep failure tests short: small backend timeout, fast health checks, short
/// retry backoff, short batching wait.
pub const FAST_TIMINGS: &str = "\
backend:
  timeout: \"2s\"
  health_check_interval: \"200ms\"
sender:
  batch_max_wait: \"20ms\"
  retry_backoff_min: \"50ms\"
  retry_backoff_max: \"1s\"
";

/// A `groups:` section: each group with its replicas as `(name, url)`.
pub fn groups_yaml(groups: &[(&str, Vec<(String, String)>)]) -> String {
    let mut yaml = String::from("groups:\n");
    for (group, replicas) in groups {
        yaml.push_str(&format!("  {group}:\n    replicas:\n"));
        for (name, url) in replicas {
            yaml.push_str(&format!(
                "      - url: \"{url}\"\n        name: \"{name}\"\n"
            ));
        }
    }
    yaml
}

/// One group `g1` over every node of `cluster`, replicas named `r0`, `r1`, ...
pub fn one_group_yaml(cluster: &InfluxCluster) -> String {
    let replicas = (0..cluster.len())
        .map(|i| (format!("r{i}"), cluster.url(i)))
        .collect();
    groups_yaml(&[("g1", replicas)])
}
