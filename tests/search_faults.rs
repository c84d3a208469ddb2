//! The search APIs while backends fail, with real processes: three influxd, two shard groups
//! sharing the middle node, a real `monitor-api` and `monitorctl`.
//!
//! With one replica of each group down (one killed, one hung with SIGSTOP) a trace and the logs
//! are still complete, each line once. With no reachable replica in one group the answer holds
//! the other group's lines and says it is partial (JSON, `X-Monitor-Partial`, the CLI's warning);
//! a trace found nowhere while a group is unreachable is not reported as "not found".

mod support;

#[path = "support/search.rs"]
mod search;

use std::process::Command;
use std::time::Duration;

use search::{MS, TRACE_T0, msgs, now_ns, tracelog};
use support::api::{MonitorApi, sum_metric, tail};
use support::wait_for;

const TRACE: &str = "trace-faults";

fn wait_up(api: &MonitorApi, group: &str, replica: &str, up: bool) {
    let reached = wait_for(Duration::from_secs(20), || {
        (api.replica_health(group, replica)["up"] == up).then_some(())
    });
    assert!(
        reached.is_some(),
        "{group}/{replica} never became up={up}: {}\n{}",
        api.health(),
        tail(&api.log(), 20)
    );
}

#[test]
fn search_answers_stay_complete_with_a_replica_down_and_say_when_partial() {
    let (cluster, api) = search::start(&[], "", "open_access: true");
    let now = now_ns();
    let mut body = String::new();
    for (ms, index, source, msg) in [
        (0, "cluster1", "gateway", "accepted"),
        (3, "cluster2", "orders", "order created"),
        (9, "cluster2", "orders", "order stored"),
        (12, "cluster1", "gateway", "answered"),
    ] {
        let fields = format!("msg=\"{msg}\"");
        body.push_str(&tracelog(
            index,
            TRACE,
            "h1",
            source,
            &fields,
            TRACE_T0 + ms * MS,
        ));
    }
    body.push_str(&tracelog(
        "cluster1",
        "g1-only",
        "h1",
        "gateway",
        r#"msg="lonely""#,
        TRACE_T0,
    ));
    for (i, index) in ["cluster1", "cluster2", "cluster1", "cluster2"]
        .iter()
        .enumerate()
    {
        body.push_str(&format!(
            "log,index={index},host=h{i},source=app msg=\"log {i}\" {}\n",
            now - 60_000 * MS + i as i64 * MS
        ));
    }
    search::seed(&api, &[], &body);
    let whole = ["accepted", "order created", "order stored", "answered"];

    // One replica of each group down: g1-a killed, g2-b hung.
    cluster.kill9(0);
    cluster.sigstop(2);
    let response = api.request("GET", &format!("/api/v1/traces/{TRACE}"), &[], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("x-monitor-partial"), None);
    let trace = response.json();
    assert_eq!(msgs(&trace), whole, "complete, each line once: {trace}");
    assert_eq!(trace["partial"], false);
    assert_eq!(trace["span"]["duration_ns"], 12 * MS);
    let response = api.request("GET", "/api/v1/logs", &[], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(msgs(&response.json()), ["log 3", "log 2", "log 1", "log 0"]);

    // g1 loses its last replica (g1-b is on the node g2-a is on); g2 answers through g2-b.
    cluster.sigcont(2);
    wait_up(&api, "g2", "g2-b", true);
    cluster.sigstop(1);
    let response = api.request("GET", &format!("/api/v1/traces/{TRACE}"), &[], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("x-monitor-partial"), Some("g1"));
    let trace = response.json();
    assert_eq!(msgs(&trace), ["order created", "order stored"]);
    assert_eq!(trace["partial"], true);
    assert_eq!(trace["partial_groups"], serde_json::json!(["g1"]));

    let response = api.request("GET", "/api/v1/traces/g1-only", &[], b"");
    assert_eq!(
        response.status,
        503,
        "not a 404 while g1 is unreachable: {}",
        response.text()
    );
    assert_eq!(response.header("x-monitor-partial"), Some("g1"));

    let response = api.request("GET", "/api/v1/logs?format=lp", &[], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("x-monitor-partial"), Some("g1"));
    assert_eq!(response.text().lines().count(), 2, "{}", response.text());

    let output = Command::new(env!("CARGO_BIN_EXE_monitorctl"))
        .args(["--url", &api.url(), "trace", TRACE])
        .env_remove("MONITOR_TOKEN")
        .output()
        .expect("run monitorctl");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: partial answer: no replica of group(s) g1 could be reached"),
        "{stderr}"
    );
    assert!(
        stdout.starts_with(&format!(
            "trace {TRACE}: 2 line(s) from 1 source(s) over 6ms"
        )),
        "{stdout}"
    );

    let metrics = api.metrics();
    assert!(
        sum_metric(
            &metrics,
            "monitor_search_requests_total",
            &[("kind", "trace"), ("outcome", "partial")]
        ) >= 2.0,
        "{metrics}"
    );
    cluster.sigcont(1);
}
