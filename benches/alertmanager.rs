//! Alert-manager benchmarks (`make bench-alerts`; figures go to BENCHMARKS.md):
//!
//! 1. pipeline: alerts/s through `Pipeline::ingest` with state persisted in redb and the real
//!    outbox delivering to a local webhook, 10,000 distinct fingerprints, 100 ignore rules, one
//!    transaction per batch of 1,000 (the first round delivers every alert; later rounds are
//!    suppressed as reissues, the steady state of a firing fleet).
//! 2. http: the same through `POST /api/v1/alerts` of the release binary, 4 connections, with
//!    the CPU time the server process spent per round (user + system, from /proc): on a shared
//!    machine the wall time depends on the neighbours, the CPU time much less.
//! 3. latency: receipt -> webhook for due alerts, minus `group_wait` (p50/p99/max).
//!
//! Run with `cargo bench --bench alertmanager`. Not a test: it asserts nothing. With
//! `ALERT_MANAGER_BIN=<path>` the http and latency parts run that build of the binary instead
//! (to interleave an older build with this one on a shared machine). `AM_BENCH_PARTS` (a comma
//! list of `pipeline`, `http`, `latency`; all by default) runs only some parts, and
//! `AM_BENCH_HTTP_ROUNDS` (default 4) only the first rounds of the http part, e.g. to profile
//! the server during round 0 alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use monitor::alertmanager::alert::Alert;
use monitor::alertmanager::clock::{Clock, SystemClock};
use monitor::alertmanager::ignore::{IgnoreRule, MatcherSpec};
use monitor::alertmanager::metrics::AlertMetrics;
use monitor::alertmanager::outbox::Outbox;
use monitor::alertmanager::pipeline::{Dispatch, Incoming, Pipeline};
use monitor::alertmanager::store::Store;
use monitor::config::alert::AlertManagerConfig;

const FINGERPRINTS: usize = 10_000;
const BATCH: usize = 1_000;
const RULES: usize = 100;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// What the webhook body of a latency alert contains (its alertname starts `Latency`).
const LATENCY_MARK: &[u8] = b"\"Latency";

async fn start_sink(arrivals: Arrivals) -> String {
    let app = Router::new().route(
        "/hook",
        post(move |body: Bytes| {
            let arrivals = Arc::clone(&arrivals);
            async move {
                let now = Instant::now();
                // Only the latency part's alerts are timed: the http part's 1,000 notifications
                // are not parsed, so the sink does not take CPU from the server it measures.
                let timed = body.windows(LATENCY_MARK.len()).any(|w| w == LATENCY_MARK);
                if !timed {
                    return "ok";
                }
                if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
                    let mut arrivals = arrivals.lock().unwrap();
                    for alert in value["alerts"].as_array().into_iter().flatten() {
                        if let Some(name) = alert["labels"]["alertname"].as_str() {
                            arrivals.entry(name.to_owned()).or_insert(now);
                        }
                    }
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn config_yaml(sink: &str, extra: &str) -> String {
    format!(
        r#"
reissue_duration: "1h"
success_duration: "1h"
group_wait: "100ms"
receivers:
  - {{ name: hook, webhook: {{ url: "{sink}/hook" }} }}
default_receiver: hook
{extra}
"#
    )
}

fn alert(i: usize) -> Alert {
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_owned(), format!("Alert{}", i % 100));
    labels.insert("index".to_owned(), format!("cluster{}", (i / 100) % 10));
    labels.insert("host".to_owned(), format!("host{}", i / 1000));
    labels.insert("severity".to_owned(), "warning".to_owned());
    Alert {
        name: format!("Alert{}", i % 100),
        index: String::new(),
        host: String::new(),
        source: String::new(),
        severity: String::new(),
        labels,
        annotations: BTreeMap::from([("summary".to_owned(), format!("value {i} over threshold"))]),
        value: Some(i as f64),
        at: "2026-11-21T12:00:00.000Z".to_owned(),
        fingerprint: String::new(),
    }
}

fn rules(now_ms: u64) -> Vec<IgnoreRule> {
    (0..RULES)
        .map(|r| IgnoreRule {
            id: format!("rule-{r}"),
            // 99 rules match hosts that never report; one ignores host9 (1,000 fingerprints).
            matchers: vec![
                MatcherSpec {
                    name: "host".into(),
                    op: "=".into(),
                    value: if r == 0 {
                        "host9".into()
                    } else {
                        format!("absent{r}")
                    },
                },
                MatcherSpec {
                    name: "severity".into(),
                    op: "=~".into(),
                    value: "warning|critical".into(),
                },
            ],
            starts_at_ms: now_ms,
            ends_at_ms: None,
            author: "bench".into(),
            comment: String::new(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Counts notifications instead of delivering them: the pipeline's own cost.
#[derive(Default)]
struct Discard(std::sync::atomic::AtomicUsize);

impl Dispatch for Discard {
    fn enqueue_in(
        &self,
        _txn: &redb::WriteTransaction,
        _notification: &monitor::alertmanager::notify::Notification,
    ) -> Result<(), String> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
    fn wake(&self) {}
}

async fn run_rounds(label: &str, pipeline: &Arc<Pipeline>, outbox: Option<&Arc<Outbox>>) {
    let alerts: Vec<Alert> = (0..FINGERPRINTS).map(alert).collect();
    for round in 0..5 {
        let started = Instant::now();
        for chunk in alerts.chunks(BATCH) {
            let batch: Vec<Incoming> = chunk
                .iter()
                .map(|a| Incoming {
                    alert: a.clone(),
                    ends_at_ms: None,
                })
                .collect();
            let p = Arc::clone(pipeline);
            tokio::task::spawn_blocking(move || p.ingest(batch, None).unwrap())
                .await
                .unwrap();
        }
        let elapsed = started.elapsed();
        println!(
            "{label} round {round} ({}): {FINGERPRINTS} alerts in {:.1} ms = {:.0} alerts/s",
            if round == 0 {
                "first delivery"
            } else {
                "suppressed reissues"
            },
            elapsed.as_secs_f64() * 1e3,
            FINGERPRINTS as f64 / elapsed.as_secs_f64()
        );
        if round == 0 {
            tokio::time::sleep(Duration::from_millis(120)).await;
            let p = Arc::clone(pipeline);
            let flushed = tokio::task::spawn_blocking(move || p.flush_due_groups().unwrap())
                .await
                .unwrap();
            if let Some(outbox) = outbox {
                let drain = Instant::now();
                while outbox
                    .snapshot()
                    .channels
                    .iter()
                    .map(|c| c.owed)
                    .sum::<u64>()
                    > 0
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                println!(
                    "{label}: {flushed} group notifications delivered to the webhook in {:.1} ms",
                    drain.elapsed().as_secs_f64() * 1e3
                );
            }
        }
    }
}

async fn bench_pipeline(sink: &str) {
    let config = AlertManagerConfig::from_yaml_str(&config_yaml(sink, ""), "bench.yaml").unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let dispatch: Arc<dyn Dispatch> = Arc::new(Discard::default());
        let pipeline = Arc::new(
            Pipeline::open(
                store,
                &config,
                dispatch,
                clock.clone(),
                AlertMetrics::default(),
            )
            .unwrap(),
        );
        for rule in rules(clock.now_ms()) {
            pipeline.put_ignore(rule, "matchers", "ends_at").unwrap();
        }
        run_rounds("pipeline (stages + redb)", &pipeline, None).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let outbox =
        Outbox::open(store.database(), &config, Arc::clone(&clock), &mut registry).unwrap();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(Arc::clone(&outbox).run(shutdown));
    let dispatch: Arc<dyn Dispatch> = outbox.clone();
    let pipeline = Arc::new(
        Pipeline::open(
            store,
            &config,
            dispatch,
            clock.clone(),
            AlertMetrics::default(),
        )
        .unwrap(),
    );
    for rule in rules(clock.now_ms()) {
        pipeline.put_ignore(rule, "matchers", "ends_at").unwrap();
    }
    run_rounds("pipeline + outbox", &pipeline, Some(&outbox)).await;
}

struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_binary(sink: &str) -> (Process, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.path().join("am.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: \"127.0.0.1:{port}\"\ndata_dir: \"{}\"\nlog_level: warn\n{}",
            dir.path().join("data").display(),
            config_yaml(sink, "sweep_interval: \"1s\"")
        ),
    )
    .unwrap();
    // ALERT_MANAGER_BIN lets a saved older build be run side by side with this one.
    let binary = std::env::var_os("ALERT_MANAGER_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_monitor-alert-manager").into());
    let child = std::process::Command::new(binary)
        .arg("--config")
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if client.get(format!("{url}/ready")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (Process(child), url, dir)
}

/// User + system CPU time of a process so far, in ms (Linux /proc; None elsewhere).
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (per_second > 0.0).then(|| ticks * 1e3 / per_second)
}

async fn bench_http(url: &str, pid: u32) {
    let client = reqwest::Client::new();
    let now = monitor::calendar::rfc3339_ms(SystemClock.now_ms());
    for rule in rules(0).into_iter().take(RULES) {
        let matchers: Vec<String> = rule.matchers.iter().map(|m| m.text()).collect();
        client
            .post(format!("{url}/api/v1/ignores"))
            .json(&serde_json::json!({ "matchers": matchers, "starts_at": now, "author": "bench" }))
            .send()
            .await
            .unwrap();
    }
    let bodies: Vec<Bytes> = (0..FINGERPRINTS)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|chunk| {
            Bytes::from(
                serde_json::to_vec(&chunk.iter().map(|&i| alert(i)).collect::<Vec<_>>()).unwrap(),
            )
        })
        .collect();
    let rounds: usize = std::env::var("AM_BENCH_HTTP_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    for round in 0..rounds {
        let cpu_before = cpu_ms(pid);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let client = client.clone();
            let url = url.to_owned();
            let mine: Vec<Bytes> = bodies.iter().skip(worker).step_by(4).cloned().collect();
            tasks.push(tokio::spawn(async move {
                for body in mine {
                    let response = client
                        .post(format!("{url}/api/v1/alerts"))
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success());
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = started.elapsed();
        let server_cpu = match (cpu_before, cpu_ms(pid)) {
            (Some(before), Some(after)) => format!(" (server CPU {:.0} ms)", after - before),
            _ => String::new(),
        };
        println!(
            "http round {round} ({}): {FINGERPRINTS} alerts in {:.1} ms = {:.0} alerts/s{server_cpu}",
            if round == 0 {
                "first delivery"
            } else {
                "suppressed reissues"
            },
            elapsed.as_secs_f64() * 1e3,
            FINGERPRINTS as f64 / elapsed.as_secs_f64()
        );
    }
}

async fn bench_latency(url: &str, arrivals: &Arrivals) {
    let client = reqwest::Client::new();
    let mut sent = HashMap::new();
    const N: usize = 300;
    for i in 0..N {
        let name = format!("Latency{i}");
        let body = serde_json::json!([{ "name": name, "index": "lat", "host": "h1", "at": "2026-11-21T12:00:00Z" }]);
        let start = Instant::now();
        client
            .post(format!("{url}/api/v1/alerts"))
            .json(&body)
            .send()
            .await
            .unwrap();
        sent.insert(name, start);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let arrivals = arrivals.lock().unwrap();
    let mut beyond: Vec<f64> = sent
        .iter()
        .filter_map(|(name, start)| {
            arrivals
                .get(name)
                .map(|at| at.duration_since(*start).as_secs_f64() * 1e3 - 100.0)
        })
        .collect();
    beyond.sort_by(f64::total_cmp);
    println!(
        "latency receipt -> webhook beyond group_wait (100 ms), {} of {N} due alerts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        beyond.len(),
        percentile(&beyond, 50.0),
        percentile(&beyond, 99.0),
        beyond.last().copied().unwrap_or(f64::NAN)
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let arrivals: Arrivals = Arc::new(Mutex::new(HashMap::new()));
        let sink = start_sink(Arc::clone(&arrivals)).await;
        let parts =
            std::env::var("AM_BENCH_PARTS").unwrap_or_else(|_| "pipeline,http,latency".to_owned());
        let part = |name: &str| parts.split(',').any(|p| p.trim() == name);
        if part("pipeline") {
            bench_pipeline(&sink).await;
        }
        if part("http") {
            let (process, url, _dir) = start_binary(&sink).await;
            bench_http(&url, process.0.id()).await;
            // Lets the outbox deliver round 0's notifications before the process is killed
            // (what a profile of the server should see too).
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if part("latency") {
            let (_process2, url2, _dir2) = start_binary(&sink).await;
            bench_latency(&url2, &arrivals).await;
        }
    });
}
