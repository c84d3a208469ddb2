//! Test support shared by the integration tests (`mod support;` in each `tests/*.rs`): real
//! influxd clusters and a real SMTP sink, started through the scripts in `integration/`, and a
//! tiny blocking HTTP/1.1 client over `std::net::TcpStream`.
//!
//! It must never leave processes behind: every process is stopped on `Drop` by its recorded PID,
//! and the scripts get this test process's PID as `--owner-pid` so a watchdog also stops them if
//! the test process dies before its destructors run. It binds only to 127.0.0.1, on ports the OS
//! reports free, and keeps all state in a fresh temporary directory per instance, so parallel and
//! repeated test runs do not collide.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod api;
pub mod process;
pub mod receiver;

/// The repository's `integration/` directory.
pub fn integration_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("integration")
}

// ---------------------------------------------------------------------------------------------
// ports

/// Ports handed out by this process, so two fixtures in one test binary never get the same port
/// between "the OS said it is free" and "the server bound it".
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn bindable(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A loopback port that is free now and not handed out before by this process. With
/// `companion_offset`, `port + offset` must be free too (influxd's RPC port is HTTP + 1000).
pub fn free_port(companion_offset: Option<u16>) -> u16 {
    for _ in 0..1000 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        drop(listener);
        if let Some(offset) = companion_offset {
            match port.checked_add(offset) {
                Some(companion) if bindable(companion) => {}
                _ => continue,
            }
        }
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        let set = guard.get_or_insert_with(HashSet::new);
        let companion = companion_offset.map(|o| port + o);
        if set.contains(&port) || companion.is_some_and(|c| set.contains(&c)) {
            continue;
        }
        set.insert(port);
        if let Some(c) = companion {
            set.insert(c);
        }
        return port;
    }
    panic!("no free loopback port found");
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased, in received order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response (status {}) is not JSON: {e}: {}",
                self.status,
                self.text()
            )
        })
    }
}

/// Percent-encodes a query-string component.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `k1=v1&k2=v2`, percent-encoded.
pub fn query_string(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); handles `Content-Length`,
/// chunked and read-to-EOF bodies. `path_and_query` starts with `/`.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut request = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    stream.flush()?;

    let mut reader = BufReader::new(stream);
    // header values may hold arbitrary bytes (influxd echoes the refused line in one)
    let read_line = |reader: &mut BufReader<TcpStream>| -> std::io::Result<String> {
        let mut raw = Vec::new();
        reader.read_until(b'\n', &mut raw)?;
        Ok(String::from_utf8_lossy(&raw).into_owned())
    };
    let status_line = read_line(&mut reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        // no body
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let size_line = read_line(&mut reader)?;
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {size_line:?}")))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// GET `http://127.0.0.1:{port}{path_and_query}`; panics on connection errors.
pub fn http_get(port: u16, path_and_query: &str) -> HttpResponse {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    http_request(addr, "GET", path_and_query, &[], b"")
        .unwrap_or_else(|e| panic!("GET 127.0.0.1:{port}{path_and_query}: {e}"))
}

/// POST `body` to `http://127.0.0.1:{port}{path_and_query}`; panics on connection errors.
pub fn http_post(port: u16, path_and_query: &str, body: &[u8]) -> HttpResponse {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    http_request(addr, "POST", path_and_query, &[], body)
        .unwrap_or_else(|e| panic!("POST 127.0.0.1:{port}{path_and_query}: {e}"))
}

/// Polls `check` every 50 ms until it returns `Some` or `limit` passes (a bounded wait for an
/// outcome, not a timing assertion).
pub fn wait_for<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn run_script(script: &Path, args: &[String]) -> Result<String, String> {
    let output = Command::new(script)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned() + &stderr)
    } else {
        Err(format!(
            "{} {} failed ({}):\n{}{}",
            script.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            stderr
        ))
    }
}

fn signal_pid(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------
// influxd cluster

/// N real influxd 1.x servers on free loopback ports, each with its own data in a temp dir.
pub struct InfluxCluster {
    dir: TempDir,
    ports: Vec<u16>,
}

impl InfluxCluster {
    const SCRIPT: &'static str = "influxd-cluster.sh";

    fn script() -> PathBuf {
        integration_dir().join(Self::SCRIPT)
    }

    /// Starts `n` influxd and waits until each answers `/ping`. Panics with the script's output
    /// (which includes the log tail) if that fails three times with fresh ports.
    pub fn start(n: usize) -> InfluxCluster {
        Self::start_in(n, &std::env::temp_dir())
    }

    /// Like [`start`](Self::start) but with data in memory (`/dev/shm` when it exists): much
    /// faster for tests that create many databases or shards (each one costs an fsync on disk).
    pub fn start_in_memory(n: usize) -> InfluxCluster {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        Self::start_in(n, &base)
    }

    /// Like [`start`](Self::start) with the cluster's temp dir created under `base`.
    pub fn start_in(n: usize, base: &Path) -> InfluxCluster {
        assert!(n > 0, "a cluster needs at least one node");
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("influxd-cluster-")
                .tempdir_in(base)
                .expect("create temp dir");
            let ports: Vec<u16> = (0..n).map(|_| free_port(Some(1000))).collect();
            let cluster = InfluxCluster { dir, ports };
            match cluster.run(&cluster.start_args(&cluster.ports)) {
                Ok(_) => return cluster,
                // a port taken between our check and influxd's bind: retry with other ports
                Err(e) => last_error = e,
            }
        }
        panic!("could not start an influxd cluster:\n{last_error}");
    }

    fn start_args(&self, ports: &[u16]) -> Vec<String> {
        let list = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        vec![
            "start".into(),
            "--dir".into(),
            self.dir.path().display().to_string(),
            "--ports".into(),
            list,
            "--owner-pid".into(),
            std::process::id().to_string(),
        ]
    }

    fn run(&self, args: &[String]) -> Result<String, String> {
        run_script(&Self::script(), args)
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn http_port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    pub fn url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    pub fn urls(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.url(i)).collect()
    }

    fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(self.ports[i].to_string())
    }

    /// PID of node `i` as recorded by the script (None when stopped).
    pub fn pid(&self, i: usize) -> Option<u32> {
        read_pid(&self.node_dir(i).join("pid"))
    }

    fn running_pid(&self, i: usize) -> u32 {
        self.pid(i)
            .unwrap_or_else(|| panic!("influxd node {i} is not running"))
    }

    /// The node's log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.node_dir(i).join("influxd.log")).unwrap_or_default()
    }

    /// SIGKILL node `i` and wait until it is gone (its port refuses connections).
    pub fn kill9(&self, i: usize) {
        let pid = self.running_pid(i);
        signal_pid(pid, "-KILL");
        let gone = wait_for(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", self.ports[i]))
                .is_err()
                .then_some(())
        });
        assert!(
            gone.is_some(),
            "influxd node {i} still accepts connections after SIGKILL"
        );
    }

    /// SIGSTOP node `i`: it keeps its sockets but answers nothing (a hung backend).
    pub fn sigstop(&self, i: usize) {
        signal_pid(self.running_pid(i), "-STOP");
    }

    /// SIGCONT node `i` after `sigstop`.
    pub fn sigcont(&self, i: usize) {
        signal_pid(self.running_pid(i), "-CONT");
    }

    /// Stops node `i` gracefully (SIGTERM; SIGKILL after 10 s).
    pub fn stop(&self, i: usize) {
        let args = vec![
            "stop".into(),
            "--dir".into(),
            self.dir.path().display().to_string(),
            "--ports".into(),
            self.ports[i].to_string(),
        ];
        self.run(&args).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts node `i` again on the same port and data (stopping it first if it still runs, e.g.
    /// after `sigstop`), and waits until it answers `/ping`.
    pub fn restart(&self, i: usize) {
        if let Some(pid) = self.pid(i) {
            // a stopped process cannot handle SIGTERM
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        self.stop(i);
        self.run(&self.start_args(&[self.ports[i]]))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `/query` on node `i` (POST, `epoch=ns`); returns the JSON body. Panics unless status 200.
    pub fn query(&self, i: usize, db: &str, q: &str) -> serde_json::Value {
        let path = format!(
            "/query?{}",
            query_string(&[("db", db), ("q", q), ("epoch", "ns")])
        );
        let response = http_post(self.ports[i], &path, b"");
        assert_eq!(
            response.status,
            200,
            "query {q:?} on node {i}: {}",
            response.text()
        );
        response.json()
    }

    /// The `values` rows of the first series of the first statement (empty when none).
    pub fn query_rows(&self, i: usize, db: &str, q: &str) -> Vec<Vec<serde_json::Value>> {
        let v = self.query(i, db, q);
        v["results"][0]["series"][0]["values"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|row| row.as_array().cloned().unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `CREATE DATABASE` on node `i`.
    pub fn create_database(&self, i: usize, db: &str) {
        let response = self.query(i, "", &format!("CREATE DATABASE \"{db}\""));
        assert!(
            response["results"][0].get("error").is_none(),
            "CREATE DATABASE {db}: {response}"
        );
    }

    /// `/write?db=…` on node `i` (nanosecond precision); returns the raw response.
    pub fn write(&self, i: usize, db: &str, body: &[u8]) -> HttpResponse {
        self.write_with_precision(i, db, "ns", body)
    }

    pub fn write_with_precision(
        &self,
        i: usize,
        db: &str,
        precision: &str,
        body: &[u8],
    ) -> HttpResponse {
        let path = format!(
            "/write?{}",
            query_string(&[("db", db), ("precision", precision)])
        );
        http_post(self.ports[i], &path, body)
    }
}

impl Drop for InfluxCluster {
    fn drop(&mut self) {
        for i in 0..self.len() {
            if let Some(pid) = self.pid(i) {
                let _ = Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status();
            }
        }
        let args = vec![
            "stop".to_string(),
            "--dir".to_string(),
            self.dir.path().display().to_string(),
        ];
        if self.run(&args).is_err() {
            // the script failed: kill what it recorded ourselves
            for i in 0..self.len() {
                if let Some(pid) = self.pid(i) {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SMTP sink

/// A mail received by [`SmtpSink`].
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Mail {
    pub seq: u64,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub received_unix_ns: u64,
    /// The DATA as received (headers and body, CRLF line ends), lossily decoded as UTF-8.
    pub data: String,
}

impl Mail {
    /// The first header `name` (case-insensitive) of the message, unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = found.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case(name)
            {
                found = Some(v.trim().to_string());
            }
        }
        found
    }

    /// The message body (after the blank line).
    pub fn body(&self) -> &str {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("")
    }
}

/// A real SMTP server (aiosmtpd) on a free loopback port that stores every mail it receives.
pub struct SmtpSink {
    dir: TempDir,
    port: u16,
}

impl SmtpSink {
    fn script() -> PathBuf {
        integration_dir().join("smtp-sink.sh")
    }

    pub fn start() -> SmtpSink {
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("smtp-sink-")
                .tempdir()
                .expect("create temp dir");
            let port = free_port(None);
            let args = vec![
                "start".to_string(),
                "--dir".to_string(),
                dir.path().display().to_string(),
                "--port".to_string(),
                port.to_string(),
                "--owner-pid".to_string(),
                std::process::id().to_string(),
            ];
            match run_script(&Self::script(), &args) {
                Ok(_) => return SmtpSink { dir, port },
                Err(e) => last_error = e,
            }
        }
        panic!("could not start the SMTP sink:\n{last_error}");
    }

    /// Starts a sink on a port chosen beforehand (e.g. one a mailer was already pointed at
    /// while no server listened there, to test retries until the server comes up).
    pub fn start_on(port: u16) -> SmtpSink {
        let dir = tempfile::Builder::new()
            .prefix("smtp-sink-")
            .tempdir()
            .expect("create temp dir");
        let args = vec![
            "start".to_string(),
            "--dir".to_string(),
            dir.path().display().to_string(),
            "--port".to_string(),
            port.to_string(),
            "--owner-pid".to_string(),
            std::process::id().to_string(),
        ];
        match run_script(&Self::script(), &args) {
            Ok(_) => SmtpSink { dir, port },
            Err(e) => panic!("could not start the SMTP sink on port {port}:\n{e}"),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Every completely received mail so far, in arrival order.
    pub fn messages(&self) -> Vec<Mail> {
        let mail_dir = self.dir.path().join("mail");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&mail_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("read mail json");
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            })
            .collect()
    }

    /// Waits (bounded by `limit`) until at least `n` mails arrived; returns all received.
    pub fn wait_for_messages(&self, n: usize, limit: Duration) -> Vec<Mail> {
        wait_for(limit, || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
        .unwrap_or_else(|| self.messages())
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let args = vec![
            "stop".to_string(),
            "--dir".to_string(),
            self.dir.path().display().to_string(),
        ];
        if run_script(&Self::script(), &args).is_err()
            && let Some(pid) = read_pid(&self.dir.path().join("pid"))
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// child processes

/// Owns a spawned child (e.g. `Command::new(env!("CARGO_BIN_EXE_monitor-api"))`): kills and
/// reaps it on drop, so a failing test leaves nothing running.
pub struct ProcessGuard {
    child: std::process::Child,
}

impl ProcessGuard {
    pub fn spawn(command: &mut Command) -> ProcessGuard {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
        ProcessGuard { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`"-TERM"`, `"-KILL"`, `"-STOP"`, `"-CONT"`, `"-HUP"`).
    pub fn signal(&self, signal: &str) {
        signal_pid(self.child.id(), signal);
    }

    /// Whether the child has exited (reaps it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits (bounded) for the child to exit, e.g. after `signal("-TERM")`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        wait_for(limit, || self.child.try_wait().ok().flatten())
    }

    pub fn child_mut(&mut self) -> &mut std::process::Child {
        &mut self.child
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-CONT", &self.child.id().to_string()])
                .status();
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
