//! End-to-end cost of the rules engine: a real `monitor-api` (in process, over HTTP on
//! 127.0.0.1) takes 1,000-line write requests from concurrent clients with 0, 100 and 1,000
//! rules (the mix of `benches/rules.rs`), and a probe rule fires on one line of every 10th
//! request. Reported per rule count: acknowledged lines/s and the delay from the client sending
//! the probe line to the alert reaching the alert manager (p50, p99, max). The 0-rule run has no
//! rule at all (not even the probe), so it is the proxy without a rules engine at work.
//!
//! Consistency is `any` and the replicas point at closed ports: the figure is the proxy's own
//! ingest path (parse, route, durable log append, rules), not a backend's. The durable log is a
//! temporary directory. Run with `cargo bench --bench rules_e2e` (`RULES_E2E_SECONDS` sets the
//! duration of each run, default 8).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::post;

#[path = "common/rules_setup.rs"]
mod rules_setup;

use rules_setup::{LINES, rule_items_yaml, write_body};

const CLIENTS: usize = 4;

/// The benchmark's rules plus the probe rule; no rule at all for 0.
fn rules_yaml(n: usize) -> String {
    if n == 0 {
        return "rules: []\n".to_owned();
    }
    format!(
        "rules:\n  - name: Probe\n    kind: threshold\n    measurement: probe\n    field: sent_us\n    op: \">\"\n    value: 0\n{}",
        rule_items_yaml(n)
    )
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

struct Outcome {
    lines_per_second: f64,
    delays_ms: Vec<f64>,
    probes_sent: usize,
}

async fn run(rule_count: usize, seconds: u64) -> Outcome {
    // The alert manager: records the delay of every probe alert.
    let delays: Arc<Mutex<Vec<f64>>> = Arc::default();
    let sink = delays.clone();
    let receiver = Router::new().route(
        "/api/v1/alerts",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let arrived = now_us();
                if let Ok(alerts) = serde_json::from_slice::<Vec<serde_json::Value>>(&body) {
                    for alert in alerts {
                        if alert["name"] == "Probe"
                            && let Some(sent) = alert["value"].as_f64()
                        {
                            let delay = arrived.saturating_sub(sent as u64) as f64 / 1000.0;
                            sink.lock().unwrap().push(delay);
                        }
                    }
                }
                "{}"
            }
        }),
    );
    let receiver_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_url = format!("http://{}", receiver_listener.local_addr().unwrap());
    let receiver_task = tokio::spawn(async move {
        let _ = axum::serve(receiver_listener, receiver).await;
    });

    let dir = tempfile::tempdir().unwrap();
    let rules_path = dir.path().join("rules.yaml");
    std::fs::write(&rules_path, rules_yaml(rule_count)).unwrap();
    let config = monitor::config::ApiConfig::from_yaml_str(
        &format!(
            "data_dir: \"{}\"\nconsistency: any\ngroups:\n  g1:\n    replicas: [{{url: \"http://127.0.0.1:1\"}}, {{url: \"http://127.0.0.1:2\"}}]\n\
             indexes:\n  cluster1: g1\nopen_access: true\nalert_managers: [\"{receiver_url}\"]\nrules_file: \"{}\"\n\
             queue: {{max_bytes: 8GiB}}\nlog: {{level: warn}}\n",
            dir.path().join("data").display(),
            rules_path.display()
        ),
        "bench.yaml",
    )
    .unwrap();
    let state = monitor::proxy::server::build_state(config, None).unwrap();
    let app = monitor::proxy::server::router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/write?db=bench", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let bodies: Arc<Vec<String>> =
        Arc::new((0..16).map(|request| write_body(request, None)).collect());
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut clients = Vec::new();
    for client_id in 0..CLIENTS {
        let url = url.clone();
        let bodies = bodies.clone();
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut lines, mut probes, mut request) = (0usize, 0usize, 0u64);
            while Instant::now() < deadline {
                request += 1;
                let mut text = bodies[(request as usize + client_id) % bodies.len()].clone();
                if request % 10 == 0 {
                    probes += 1;
                    text.push_str(&format!(
                        "probe,index=cluster1,host=probe{client_id}x{request} sent_us={}\n",
                        now_us()
                    ));
                }
                let response = http.post(&url).body(text).send().await.unwrap();
                assert_eq!(response.status(), 204, "write refused");
                lines += LINES;
            }
            (lines, probes)
        }));
    }
    let (mut lines, mut probes_sent) = (0, 0);
    for client in clients {
        let (l, p) = client.await.unwrap();
        lines += l;
        probes_sent += p;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last alerts arrive.
    let wait_until = Instant::now() + Duration::from_secs(10);
    while rule_count > 0
        && delays.lock().unwrap().len() < probes_sent
        && Instant::now() < wait_until
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.abort();
    receiver_task.abort();
    state.pipeline.shutdown().await;
    let delays_ms = delays.lock().unwrap().clone();
    Outcome {
        lines_per_second: lines as f64 / elapsed,
        delays_ms,
        probes_sent,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let seconds = std::env::var("RULES_E2E_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "rules_e2e: {CLIENTS} clients, {LINES}-line requests, {seconds}s per run, consistency=any"
    );
    // Runs alternate (0, 100, 1000, 1000, 100, 0) so that a change in the machine's load during
    // the run weighs on every rule count alike; each row sums both of its runs.
    let mut totals: Vec<(usize, Outcome)> = Vec::new();
    for rules in [0usize, 100, 1000, 1000, 100, 0] {
        let outcome = runtime.block_on(run(rules, seconds));
        println!(
            "  run: {rules} rules, {:.0} lines/s",
            outcome.lines_per_second
        );
        match totals.iter_mut().find(|(n, _)| *n == rules) {
            Some((_, total)) => {
                total.lines_per_second = (total.lines_per_second + outcome.lines_per_second) / 2.0;
                total.probes_sent += outcome.probes_sent;
                total.delays_ms.extend(outcome.delays_ms);
            }
            None => totals.push((rules, outcome)),
        }
    }
    println!("rules   lines/s    vs 0 rules  probes  alerts  p50_ms  p99_ms  max_ms");
    let base = totals[0].1.lines_per_second;
    for (rules, outcome) in &totals {
        let mut delays = outcome.delays_ms.clone();
        delays.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{rules:<6}  {:>9.0}  {:>9.1}%  {:>6}  {:>6}  {:>6.2}  {:>6.2}  {:>6.2}",
            outcome.lines_per_second,
            100.0 * outcome.lines_per_second / base,
            outcome.probes_sent,
            delays.len(),
            percentile(&delays, 50.0),
            percentile(&delays, 99.0),
            delays.last().copied().unwrap_or(f64::NAN),
        );
    }
}
