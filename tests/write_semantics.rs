//! What exactly reaches the backends through a real `monitor-api`: timestamps (given in every
//! precision, or missing and stamped by the proxy) are the same on every replica; a backlog
//! mixing databases and precisions is replayed to each target correctly; a record larger than a
//! sender batch and a log segment is still delivered whole.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::InfluxCluster;
use support::api::{FAST_TIMINGS, MonitorApi, one_group_yaml};

const DRAIN: Duration = Duration::from_secs(60);

fn start(cluster: &InfluxCluster, extra: &str) -> MonitorApi {
    MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\n{FAST_TIMINGS}{extra}",
        one_group_yaml(cluster)
    ))
}

/// `(time_ns, k)` of every point of `from` on node `i`.
fn times(cluster: &InfluxCluster, i: usize, db: &str, from: &str) -> Vec<(u64, String)> {
    cluster
        .query_rows(i, db, &format!("SELECT k, v FROM {from}"))
        .into_iter()
        .map(|row| {
            (
                row[0].as_u64().unwrap(),
                row[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn timestamps_in_every_precision_and_stamped_ones_are_equal_on_every_replica() {
    let cluster = InfluxCluster::start_in_memory(3);
    let api = start(&cluster, "");
    let base_s: u64 = 1_700_000_000;
    for (precision, ts) in [
        ("n", base_s * 1_000_000_000 + 1),
        ("ns", base_s * 1_000_000_000 + 2),
        ("u", base_s * 1_000_000 + 3),
        ("ms", base_s * 1_000 + 4),
        ("s", base_s + 5),
        ("m", base_s / 60 + 6),
        ("h", base_s / 3600 + 7),
    ] {
        let body = format!("t,index=cluster1,k=p{precision} v=1 {ts}\n");
        let response = api.write("ts", &[("precision", precision)], body.as_bytes());
        assert_eq!(response.status, 204, "{precision}: {}", response.text());
    }
    // No timestamp: the proxy stamps the line once, so every replica stores the same time.
    let before = now_ns();
    for precision in ["ns", "s"] {
        let body = format!("t,index=cluster1,k=none_{precision} v=1\n");
        let response = api.write(
            "ts",
            &[("precision", precision), ("consistency", "all")],
            body.as_bytes(),
        );
        assert_eq!(response.status, 204, "{}", response.text());
    }
    let after = now_ns();

    api.wait_drained(DRAIN);
    let reference: BTreeMap<String, u64> = times(&cluster, 0, "ts", "t")
        .into_iter()
        .map(|(t, k)| (k, t))
        .collect();
    let expected_given = [
        ("pn", base_s * 1_000_000_000 + 1),
        ("pns", base_s * 1_000_000_000 + 2),
        ("pu", (base_s * 1_000_000 + 3) * 1_000),
        ("pms", (base_s * 1_000 + 4) * 1_000_000),
        ("ps", (base_s + 5) * 1_000_000_000),
        ("pm", (base_s / 60 + 6) * 60 * 1_000_000_000),
        ("ph", (base_s / 3600 + 7) * 3600 * 1_000_000_000),
    ];
    for (k, t) in expected_given {
        assert_eq!(reference.get(k), Some(&t), "{k}: {reference:?}");
    }
    let stamped_ns = reference["none_ns"];
    assert!(
        (before..=after).contains(&stamped_ns),
        "{stamped_ns} not in {before}..{after}"
    );
    let stamped_s = reference["none_s"];
    assert_eq!(
        stamped_s % 1_000_000_000,
        0,
        "precision=s stamps whole seconds"
    );
    assert!((before / 1_000_000_000 * 1_000_000_000..=after).contains(&stamped_s));
    assert_eq!(reference.len(), 9, "{reference:?}");
    for i in 1..3 {
        let other: BTreeMap<String, u64> = times(&cluster, i, "ts", "t")
            .into_iter()
            .map(|(t, k)| (k, t))
            .collect();
        assert_eq!(other, reference, "node {i} differs from node 0");
    }
}

#[test]
fn a_backlog_mixing_databases_and_precisions_reaches_each_target() {
    let cluster = InfluxCluster::start_in_memory(2);
    let api = start(&cluster, "");
    // With r1 down its backlog grows; when it is back one sender batch holds records for
    // different databases, retention policies and precisions.
    cluster.kill9(1);
    let mut expected: BTreeMap<(&str, String), u64> = BTreeMap::new();
    for round in 0..30u64 {
        let (db, precision, scale) = match round % 3 {
            0 => ("mixa", "s", 1_000_000_000),
            1 => ("mixb", "ms", 1_000_000),
            _ => ("mixa", "u", 1_000),
        };
        let ts = 1_700_000_000_000_000_000 / scale + round;
        let k = format!("r{round:02}");
        let body = format!("x,index=cluster1,k={k} v={round} {ts}\n");
        let response = api.write(
            db,
            &[("precision", precision), ("consistency", "any")],
            body.as_bytes(),
        );
        assert_eq!(response.status, 204, "{}", response.text());
        expected.insert((db, k), ts * scale);
    }
    cluster.restart(1);
    api.wait_drained(DRAIN);
    for i in 0..2 {
        let mut stored = BTreeMap::new();
        for db in ["mixa", "mixb"] {
            for (t, k) in times(&cluster, i, db, "x") {
                stored.insert((db, k), t);
            }
        }
        assert_eq!(stored, expected, "node {i}");
    }
}

#[test]
fn a_record_larger_than_a_batch_and_a_segment_is_delivered_whole() {
    let cluster = InfluxCluster::start_in_memory(2);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\nbackend:\n  timeout: \"5s\"\n  health_check_interval: \"200ms\"\nsender:\n  batch_max_bytes: \"1MiB\"\n  batch_max_wait: \"20ms\"\n  retry_backoff_min: \"50ms\"\n  retry_backoff_max: \"1s\"\nqueue:\n  segment_bytes: \"1MiB\"\n  max_bytes: \"64MiB\"\n",
        one_group_yaml(&cluster)
    ));
    let n = 80_000usize;
    let mut body = String::with_capacity(n * 60);
    for i in 0..n {
        body.push_str(&format!(
            "big,index=cluster1,s=s{} v={i}i {}\n",
            i % 10,
            1_600_000_000_000_000_000u64 + i as u64
        ));
    }
    assert!(body.len() > 4 << 20, "{} bytes", body.len());
    let response = api.write("big", &[("consistency", "all")], body.as_bytes());
    assert_eq!(response.status, 204, "{}", response.text());
    api.wait_drained(DRAIN);
    for i in 0..2 {
        let stored = cluster.count_by_tag(i, "big", "big", "v", "s");
        let expected: BTreeMap<String, u64> = (0..10)
            .map(|s| (format!("s{s}"), (n / 10) as u64))
            .collect();
        assert_eq!(stored, expected, "node {i}");
    }
    let health: Value = api.health();
    assert_eq!(health["status"], "pass", "{health}");
}

#[test]
fn concurrent_writers_are_each_acknowledged_and_everything_arrives() {
    let cluster = InfluxCluster::start_in_memory(3);
    // A long timeout: a 500 here means a waiter was never woken, not a slow machine.
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\nbackend:\n  timeout: \"20s\"\n  health_check_interval: \"200ms\"\nsender:\n  batch_max_wait: \"5ms\"\n",
        one_group_yaml(&cluster)
    ));
    let (threads, batches, lines) = (8usize, 25usize, 200usize);
    let port = api.port();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let mut failures = Vec::new();
                for b in 0..batches {
                    let consistency = ["one", "quorum", "all"][(t + b) % 3];
                    let mut body = String::with_capacity(lines * 64);
                    for i in 0..lines {
                        let ts = 1_600_000_000_000_000_000u64 + ((b * lines + i) as u64);
                        body.push_str(&format!("cw,index=cluster1,t=t{t} v={i}i {ts}\n"));
                    }
                    let path = format!("/write?db=conc&consistency={consistency}");
                    match support::http_request(addr, "POST", &path, &[], body.as_bytes()) {
                        Ok(r) if r.status == 204 => {}
                        Ok(r) => failures.push(format!("t{t} b{b}: {} {}", r.status, r.text())),
                        Err(e) => failures.push(format!("t{t} b{b}: {e}")),
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    api.wait_drained(DRAIN);
    let expected: BTreeMap<String, u64> = (0..threads)
        .map(|t| (format!("t{t}"), (batches * lines) as u64))
        .collect();
    for i in 0..3 {
        assert_eq!(
            cluster.count_by_tag(i, "conc", "cw", "v", "t"),
            expected,
            "node {i}"
        );
    }
}
