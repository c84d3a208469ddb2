//! Immediate alerts end to end through a real `monitor-api` in front of real influxd: a line over
//! a threshold, a log line with a keyword, a silent host and a day-over-day jump on data with past
//! timestamps each reach the alert manager URL (an HTTP receiver here) with the right labels,
//! fingerprint and request id; the outbox retries while the alert manager answers 503; rules
//! reload while writes go on (no write fails, the new rule fires, a bad file keeps the old
//! rules); derived metrics land in the shards; the host registry answers its contract shape,
//! `monitorctl hosts` prints it, and it survives a kill -9 restart.
//!
//! One set of processes serves every step, to keep the suite short.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use monitor::alertmanager::alert::fingerprint;
use serde_json::Value;
use support::api::{FAST_TIMINGS, MonitorApi, one_group_yaml};
use support::receiver::AlertReceiver;
use support::{InfluxCluster, wait_for};

const ARRIVAL: Duration = Duration::from_secs(5);
const DB: &str = "alerts";

const RULES: &str = r#"
rules:
  - name: HighMem
    kind: threshold
    measurement: mem
    field: used
    op: ">"
    value: 90
    labels: {team: ops}
    annotations:
      summary: "mem used {{ value }} > {{ threshold }} on {{ host }}"
  - name: Panic
    kind: keyword
    measurement: log
    keywords: ["panic", "fatal"]
    severity: critical
  - name: Silent
    kind: deadman
    for: "2s"
    index: cluster1
    tags: ["host=~quiet.*"]
  - name: ReqDoD
    kind: day_over_day
    measurement: req
    field: n
    op: ">"
    value: 0.5
"#;

const NEW_RULE: &str = r#"
  - name: DiskLow
    kind: threshold
    measurement: disk
    field: free
    op: "<"
    value: 5
"#;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn labels_of(alert: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(alert["labels"].clone()).unwrap()
}

fn write_ok(api: &MonitorApi, body: &str, request_id: &str) {
    let response = api
        .try_write(DB, &[], &[("X-Request-Id", request_id)], body.as_bytes())
        .unwrap();
    assert_eq!(response.status, 204, "{}", response.text());
}

fn start_api(cluster: &InfluxCluster, receiver: &AlertReceiver, rules: &Path) -> MonitorApi {
    MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\n{FAST_TIMINGS}\
alert_managers: [\"{}\"]\nrules_file: \"{}\"\nhost_active_window: \"3s\"\n\
rules:\n  deadman_interval: \"200ms\"\n  hosts_snapshot_interval: \"200ms\"\n  resend_interval: \"1h\"\n\
derived:\n  log_counts: {{interval: \"1s\"}}\n  trace_durations: {{idle: \"1s\"}}\n",
        one_group_yaml(cluster),
        receiver.url(),
        rules.display()
    ))
}

#[test]
fn alerts_reach_the_alert_manager_and_rules_reload_while_writing() {
    let cluster = InfluxCluster::start_in_memory(2);
    let receiver = AlertReceiver::start();
    let rules_dir = tempfile::tempdir().unwrap();
    let rules_path = rules_dir.path().join("rules.yaml");
    std::fs::write(&rules_path, RULES).unwrap();
    let api = start_api(&cluster, &receiver, &rules_path);

    // Threshold: labels, fingerprint, template, request id.
    write_ok(
        &api,
        "mem,index=cluster1,host=host1 used=93\nmem,index=cluster1,host=host2 used=50\n",
        "rid-threshold",
    );
    let (alert, request) = receiver.wait_alert(ARRIVAL, |a| a["name"] == "HighMem");
    let expected = labels(&[
        ("alertname", "HighMem"),
        ("index", "cluster1"),
        ("host", "host1"),
        ("severity", "warning"),
        ("team", "ops"),
    ]);
    assert_eq!(labels_of(&alert), expected);
    assert_eq!(alert["fingerprint"], fingerprint(&expected));
    assert_eq!(alert["value"], 93.0);
    assert_eq!(alert["annotations"]["summary"], "mem used 93 > 90 on host1");
    assert_eq!(alert["annotations"]["request_id"], "rid-threshold");
    assert_eq!(request.header("x-request-id"), Some("rid-threshold"));
    let at = alert["at"].as_str().unwrap();
    assert!(at.len() == 24 && at.ends_with('Z'), "{at}");
    assert_eq!(
        receiver
            .alerts()
            .iter()
            .filter(|(a, _)| a["name"] == "HighMem")
            .count(),
        1,
        "host2 is under the threshold"
    );

    // Keyword in a log line (with a tracelog of one trace for the derived metrics).
    write_ok(
        &api,
        "log,index=cluster1,source=api,host=host1,level=error msg=\"kernel panic: oh no\"\n\
         log,index=cluster1,source=api,host=host1,level=info msg=\"all fine\"\n\
         tracelog,index=cluster1,source=api,host=host1,traceid=t1 msg=\"start\" 1700000000000000000\n\
         tracelog,index=cluster1,source=api,host=host1,traceid=t1 msg=\"end\" 1700000000250000000\n",
        "rid-keyword",
    );
    let (alert, _) = receiver.wait_alert(ARRIVAL, |a| a["name"] == "Panic");
    let expected = labels(&[
        ("alertname", "Panic"),
        ("index", "cluster1"),
        ("host", "host1"),
        ("source", "api"),
        ("severity", "critical"),
    ]);
    assert_eq!(labels_of(&alert), expected);
    assert_eq!(alert["fingerprint"], fingerprint(&expected));
    assert_eq!(alert["source"], "api");

    // Deadman: quiet1 reports once, then stays silent past `for`.
    write_ok(&api, "mem,index=cluster1,host=quiet1 used=1\n", "rid-quiet");
    let (alert, _) = receiver.wait_alert(Duration::from_secs(10), |a| a["name"] == "Silent");
    let expected = labels(&[
        ("alertname", "Silent"),
        ("index", "cluster1"),
        ("host", "quiet1"),
        ("severity", "warning"),
    ]);
    assert_eq!(labels_of(&alert), expected);
    assert_eq!(alert["fingerprint"], fingerprint(&expected));
    assert!(alert["value"].as_f64().unwrap() >= 2.0, "{alert}");

    // Day over day on data written with past timestamps: 100 yesterday, 200 today -> +100%.
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let today = (now_s - 2 * 86_400) / 60 * 60;
    let yesterday = today - 86_400;
    let response = api.write(
        DB,
        &[("precision", "s")],
        format!(
            "req,index=cluster1,host=r1 n=100 {yesterday}\nreq,index=cluster1,host=r1 n=200 {today}\n"
        )
        .as_bytes(),
    );
    assert_eq!(response.status, 204, "{}", response.text());
    let (alert, _) = receiver.wait_alert(ARRIVAL, |a| a["name"] == "ReqDoD");
    assert_eq!(alert["value"], 1.0);

    // The outbox retries while the alert manager answers 503.
    receiver.answer_with(503);
    write_ok(&api, "mem,index=cluster1,host=host5 used=99\n", "rid-retry");
    wait_for(ARRIVAL, || {
        (api.metric_value("monitor_alerts_delivered_total", &[("outcome", "failed")]) >= 1.0)
            .then_some(())
    })
    .expect("the first delivery attempt failed");
    receiver.answer_with(200);
    receiver.wait_alert(Duration::from_secs(10), |a| {
        a["name"] == "HighMem" && a["host"] == "host5"
    });

    // Reload while writing: no write fails, the new rule fires, a bad file keeps the old rules.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let addr = api.addr();
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = format!("mem,index=cluster1,host=busy used={}\n", n % 50);
                let response = support::http_request(
                    addr,
                    "POST",
                    &format!("/write?db={DB}"),
                    &[],
                    body.as_bytes(),
                )
                .unwrap();
                statuses.push(response.status);
            }
            statuses
        })
    };
    std::fs::write(&rules_path, format!("{RULES}{NEW_RULE}")).unwrap();
    let reload = api.request("POST", "/-/reload", &[], b"");
    assert_eq!(reload.status, 200, "{}", reload.text());
    assert!(reload.text().contains("5 rules"), "{}", reload.text());
    write_ok(
        &api,
        "disk,index=cluster1,host=host9 free=1\n",
        "rid-new-rule",
    );
    let (alert, _) = receiver.wait_alert(ARRIVAL, |a| a["name"] == "DiskLow");
    assert_eq!(alert["host"], "host9");

    std::fs::write(
        &rules_path,
        "rules:\n  - name: Broken\n    kind: threshold\n    field: x\n    op: \"~\"\n    value: 1\n",
    )
    .unwrap();
    let reload = api.request("POST", "/-/reload", &[], b"");
    assert_eq!(reload.status, 400, "{}", reload.text());
    assert!(
        reload
            .text()
            .contains("rules.yaml:5: rules[0].op: unknown operator"),
        "{}",
        reload.text()
    );
    write_ok(
        &api,
        "disk,index=cluster1,host=host10 free=2\n",
        "rid-old-rules",
    );
    receiver.wait_alert(ARRIVAL, |a| a["name"] == "DiskLow" && a["host"] == "host10");
    stop.store(true, Ordering::Relaxed);
    let statuses = writer.join().unwrap();
    assert!(statuses.len() > 1);
    assert!(
        statuses.iter().all(|&s| s == 204),
        "a write failed during reloads: {statuses:?}"
    );

    // Rule state.
    let rules = api.request("GET", "/api/v1/rules", &[], b"").json();
    let high_mem = rules["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "HighMem")
        .unwrap()
        .clone();
    assert!(high_mem["times_fired"].as_u64().unwrap() >= 2, "{high_mem}");
    assert!(high_mem["last_fired"].is_string(), "{high_mem}");
    assert!(
        high_mem["series_tracked"].as_u64().unwrap() >= 1,
        "{high_mem}"
    );
    assert!(api.metric_value("monitor_alerts_fired_total", &[("rule", "HighMem")]) >= 2.0);
    assert!(api.metric_value("monitor_rules_buffer_max_bytes", &[]) > 0.0);

    // Derived metrics reached the shards through the write path.
    let counted = wait_for(Duration::from_secs(20), || {
        let rows = cluster.query_rows(
            0,
            DB,
            "SELECT count FROM log_count WHERE level = 'error' AND host = 'host1'",
        );
        (!rows.is_empty()).then_some(rows)
    })
    .expect("log_count written back");
    assert_eq!(counted[0][1], 1);
    let spans = wait_for(Duration::from_secs(20), || {
        let rows = cluster.query_rows(1, DB, "SELECT duration_ms, lines FROM trace_duration");
        (!rows.is_empty()).then_some(rows)
    })
    .expect("trace_duration written back");
    assert_eq!(spans[0][1].as_f64(), Some(250.0));
    assert_eq!(spans[0][2], 2);

    // Host registry: the contract shape, monitorctl, and a restart.
    let hosts = api
        .request("GET", "/api/v1/hosts?index=cluster1", &[], b"")
        .json();
    assert_eq!(hosts["active_window_seconds"], 3);
    let rows = hosts["hosts"].as_array().unwrap();
    let host1 = rows.iter().find(|h| h["host"] == "host1").unwrap().clone();
    let keys: Vec<&String> = host1.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["active", "host", "index", "last_seen"]);
    assert_eq!(host1["index"], "cluster1");
    assert!(rows.iter().any(|h| h["host"] == "quiet1"));
    // quiet1 stopped reporting: it turns inactive once the active window passed.
    wait_for(Duration::from_secs(10), || {
        let quiet = api
            .request("GET", "/api/v1/hosts?index=cluster1&host=quiet1", &[], b"")
            .json();
        (quiet["hosts"][0]["active"] == false).then_some(())
    })
    .expect("quiet1 becomes inactive");
    write_ok(&api, "mem,index=cluster1,host=fresh used=1\n", "rid-fresh");
    let fresh = wait_for(ARRIVAL, || {
        let answer = api
            .request("GET", "/api/v1/hosts?index=cluster1&host=fresh", &[], b"")
            .json();
        (answer["hosts"].as_array().unwrap().len() == 1).then_some(answer)
    })
    .expect("fresh is registered");
    assert_eq!(fresh["hosts"][0]["active"], true);
    let none = api
        .request("GET", "/api/v1/hosts?index=elsewhere", &[], b"")
        .json();
    assert_eq!(none["hosts"], serde_json::json!([]));

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_monitorctl"))
        .args(["--url", &api.url(), "hosts", "--index", "cluster1"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("INDEX"), "{text}");
    let quiet_line = text
        .lines()
        .find(|l| l.contains("quiet1"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        quiet_line.starts_with("cluster1") && quiet_line.ends_with("no"),
        "{text}"
    );
    assert!(text.contains("active = reported within 3s"), "{text}");

    // Survives kill -9 once a snapshot was written (every 200ms here).
    std::thread::sleep(Duration::from_millis(800));
    let before = api
        .request("GET", "/api/v1/hosts?index=cluster1&host=host1", &[], b"")
        .json();
    std::fs::write(&rules_path, RULES).unwrap();
    api.restart();
    let after = api
        .request("GET", "/api/v1/hosts?index=cluster1&host=host1", &[], b"")
        .json();
    assert_eq!(
        after["hosts"][0]["last_seen"], before["hosts"][0]["last_seen"],
        "{after}"
    );
}
