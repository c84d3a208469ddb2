//! Invariants 3, 4 and 5 of the write path with real processes: backend rejections (field type
//! conflict, missing database) never block a queue and end in the dead-letter file with their
//! reason and in `/metrics`; a full durable log answers 503 with `Retry-After` and loses nothing
//! it acknowledged before.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::InfluxCluster;
use support::api::{FAST_TIMINGS, MonitorApi, one_group_yaml, tail};

const DRAIN: Duration = Duration::from_secs(60);

#[test]
fn backend_rejections_are_dead_lettered_and_do_not_block_the_queue() {
    let cluster = InfluxCluster::start_in_memory(2);
    for i in 0..2 {
        cluster.create_database(i, "dl");
    }
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\ncreate_database: false\n{FAST_TIMINGS}",
        one_group_yaml(&cluster)
    ));
    let write = |db: &str, consistency: &str, body: &str| {
        let response = api.write(db, &[("consistency", consistency)], body.as_bytes());
        assert_eq!(response.status, 204, "{db} {body:?}: {}", response.text());
    };
    write("dl", "all", "ft,index=cluster1 f=1i 1600000000000000001\n");
    // Valid line protocol the backends refuse: `f` is an integer there already.
    let conflict = "ft,index=cluster1 f=\"text\" 1600000000000000002";
    write(
        "dl",
        "any",
        &format!("{conflict}\nok,index=cluster1 v=1 1600000000000000003\n"),
    );
    // The conflict amid lines whose string fields hold newlines: isolating it must not cut a
    // line in two.
    let mut multiline = String::new();
    for i in 0..20 {
        multiline.push_str(&format!(
            "ml,index=cluster1,k=m{i:02} msg=\"first\nsecond {i}\" 16000000000000001{i:02}\n"
        ));
        if i == 13 {
            multiline.push_str("ft,index=cluster1 f=\"again\" 1600000000000000005\n");
        }
    }
    write("dl", "any", &multiline);
    // Waiting for replicas, the client hears of the refusal as influxd would tell it.
    let response = api.write(
        "dl",
        &[("consistency", "quorum")],
        b"ft,index=cluster1 f=true 1600000000000000006\nok,index=cluster1 v=5 1600000000000000007\n",
    );
    assert_eq!(response.status, 400, "{}", response.text());
    let error = response.json()["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("partial write:"), "{error}");
    assert!(error.contains("field type conflict"), "{error}");
    assert!(error.contains("dropped=1"), "{error}");
    let missing_db = "ok,index=cluster1 v=2 1600000000000000004";
    write("nodb", "any", &format!("{missing_db}\n"));
    // Later lines arrive, and with consistency=all: the bad ones did not stall either replica.
    let later: String = (0..5)
        .map(|i| format!("later,index=cluster1,k=k{i} v={i} 1600000000000000010\n"))
        .collect();
    write("dl", "all", &later);

    api.wait_drained(DRAIN);
    for i in 0..2 {
        assert_eq!(cluster.count(i, "dl", "ft", "f"), 1, "node {i}");
        assert_eq!(cluster.count(i, "dl", "ok", "v"), 2, "node {i}");
        assert_eq!(cluster.count(i, "dl", "later", "v"), 5, "node {i}");
        let texts = cluster.query_rows(i, "dl", "SELECT msg FROM ml WHERE k = 'm07'");
        assert_eq!(texts.len(), 1, "node {i}: {texts:?}");
        assert_eq!(texts[0][1], "first\nsecond 7", "node {i}");
        assert_eq!(cluster.count(i, "dl", "ml", "msg"), 20, "node {i}");
        assert!(
            !cluster.databases(i).contains(&"nodb".to_owned()),
            "node {i} created nodb although create_database is false"
        );
    }

    for replica in ["r0", "r1"] {
        let letters = api.dead_letters("g1", replica);
        let by_line: BTreeMap<&str, &serde_json::Value> = letters
            .iter()
            .map(|l| (l["line"].as_str().unwrap_or_default(), l))
            .collect();
        assert_eq!(by_line.len(), 4, "{replica}: {letters:?}");
        let again = "ft,index=cluster1 f=\"again\" 1600000000000000005";
        assert_eq!(
            by_line.get(again).map(|l| &l["reason"]),
            Some(&serde_json::json!("field_type_conflict")),
            "{replica}: {letters:?}"
        );
        let letter = by_line
            .get(conflict)
            .unwrap_or_else(|| panic!("{replica}: no dead letter for the conflict: {letters:?}"));
        assert_eq!(letter["reason"], "field_type_conflict", "{letter}");
        assert_eq!(letter["database"], "dl", "{letter}");
        let letter = by_line
            .get(missing_db)
            .unwrap_or_else(|| panic!("{replica}: no dead letter for nodb: {letters:?}"));
        assert_eq!(letter["reason"], "database_not_found", "{letter}");
        assert_eq!(letter["database"], "nodb", "{letter}");
    }
    let metrics = api.metrics();
    for (reason, expected) in [("field_type_conflict", 6.0), ("database_not_found", 2.0)] {
        let counted = support::api::sum_metric(
            &metrics,
            "monitor_dead_letter_lines_total",
            &[("reason", reason)],
        );
        assert_eq!(counted, expected, "{reason}:\n{metrics}");
    }
    let health = api.health();
    let total: u64 = health["groups"][0]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dead_letter_lines"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, 8, "{health}");
}

/// 40 lines of series `batch=bNNNN` in measurement `q`.
fn small_batch(batch: usize) -> String {
    (0..40)
        .map(|i| {
            format!(
                "q,index=cluster1,batch=b{batch:04} v={i}i {}\n",
                1_600_000_000_000_000_000u64 + (batch * 40 + i) as u64
            )
        })
        .collect()
}

#[test]
fn a_full_queue_answers_503_and_keeps_what_it_acknowledged() {
    let cluster = InfluxCluster::start_in_memory(2);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\nqueue:\n  max_bytes: \"64KiB\"\n  segment_bytes: \"16KiB\"\n{FAST_TIMINGS}",
        one_group_yaml(&cluster)
    ));
    cluster.kill9(1);
    let mut acked = Vec::new();
    let mut refused = None;
    for batch in 0..400 {
        let response = api.write(
            "cap",
            &[("consistency", "any")],
            small_batch(batch).as_bytes(),
        );
        match response.status {
            204 => acked.push(batch),
            503 => {
                refused = Some((batch, response));
                break;
            }
            other => panic!("batch {batch}: unexpected {other}: {}", response.text()),
        }
    }
    let (refused_batch, response) = refused.unwrap_or_else(|| {
        panic!(
            "no 503 after {} batches with a 64KiB cap; /health: {}",
            acked.len(),
            api.health()
        )
    });
    let retry_after = response
        .header("retry-after")
        .unwrap_or_else(|| panic!("503 without Retry-After: {:?}", response.headers));
    assert!(
        retry_after.parse::<u64>().is_ok_and(|s| s >= 1),
        "Retry-After {retry_after:?}"
    );
    assert!(!acked.is_empty(), "nothing was taken before the cap");
    assert!(api.metric_value("monitor_lines_rejected_total", &[("reason", "queue_full")]) >= 40.0);

    cluster.restart(1);
    api.wait_drained(DRAIN);
    // With the backlog delivered the cap is lifted, once the log's maintenance (every second)
    // deleted the passed segments: a client honouring Retry-After gets through.
    let mut attempts = Vec::new();
    let taken = support::wait_for(Duration::from_secs(30), || {
        let response = api.write(
            "cap",
            &[("consistency", "all")],
            small_batch(1000).as_bytes(),
        );
        if response.status == 204 {
            return Some(());
        }
        assert_eq!(response.status, 503, "{}", response.text());
        let wait = response
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .expect("503 with Retry-After");
        attempts.push(wait);
        std::thread::sleep(Duration::from_secs(wait.min(5)));
        None
    });
    assert!(
        taken.is_some(),
        "still refused after the backlog drained ({attempts:?}); /health: {}\n{}",
        api.health(),
        tail(&api.log(), 20)
    );
    api.wait_drained(DRAIN);

    for i in 0..2 {
        let stored = cluster.count_by_tag(i, "cap", "q", "v", "batch");
        let mut expected: BTreeMap<String, u64> =
            acked.iter().map(|b| (format!("b{b:04}"), 40)).collect();
        expected.insert("b1000".to_owned(), 40);
        assert_eq!(
            stored, expected,
            "node {i}: the refused batch {refused_batch} must be absent, every acknowledged one complete"
        );
    }
}

#[test]
fn retention_policy_rejections_do_not_block_the_queue() {
    let cluster = InfluxCluster::start_in_memory(2);
    for i in 0..2 {
        cluster.create_database(i, "rpdb");
        let created = cluster.query(
            i,
            "rpdb",
            "CREATE RETENTION POLICY short ON rpdb DURATION 1h REPLICATION 1",
        );
        assert!(created["results"][0].get("error").is_none(), "{created}");
    }
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\n{FAST_TIMINGS}",
        one_group_yaml(&cluster)
    ));
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let too_old = "rp,index=cluster1,k=old v=1 1000000000";
    let recent = format!("rp,index=cluster1,k=recent v=2 {now_ns}");
    let response = api.write(
        "rpdb",
        &[("rp", "short"), ("consistency", "any")],
        format!("{too_old}\n{recent}\n").as_bytes(),
    );
    assert_eq!(response.status, 204, "{}", response.text());
    // influxd answers a write to a retention policy it does not have with a 500.
    let no_rp = format!("rp,index=cluster1,k=norp v=3 {now_ns}");
    let response = api.write(
        "rpdb",
        &[("rp", "nope"), ("consistency", "any")],
        no_rp.as_bytes(),
    );
    assert_eq!(response.status, 204, "{}", response.text());
    let later = format!("rp,index=cluster1,k=later v=4 {now_ns}");
    let response = api.write(
        "rpdb",
        &[("rp", "short"), ("consistency", "all")],
        later.as_bytes(),
    );
    assert_eq!(
        response.status,
        204,
        "a write after the rejected ones: {}\n/health: {}",
        response.text(),
        api.health()
    );

    api.wait_drained(DRAIN);
    for i in 0..2 {
        let stored = cluster.count_by_tag(i, "rpdb", "\"short\".\"rp\"", "v", "k");
        assert_eq!(
            stored,
            BTreeMap::from([("later".to_owned(), 1), ("recent".to_owned(), 1)]),
            "node {i}"
        );
    }
    for replica in ["r0", "r1"] {
        let letters = api.dead_letters("g1", replica);
        let reasons: BTreeMap<&str, &str> = letters
            .iter()
            .map(|l| {
                (
                    l["line"].as_str().unwrap_or_default(),
                    l["reason"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            reasons,
            BTreeMap::from([
                (too_old, "beyond_retention_policy"),
                (no_rp.as_str(), "retention_policy_not_found"),
            ]),
            "{replica}"
        );
    }
}

/// A request whose lines go to two groups, one of them full: the 503 must mean that nothing of
/// the request was kept, or a client retrying after `Retry-After` would write the other group's
/// lines twice (a duplicate point for lines the proxy stamped). Every group's room is checked
/// before anything is appended (src/proxy/write.rs).
#[test]
fn a_503_stores_no_part_of_the_request() {
    let cluster = InfluxCluster::start_in_memory(3);
    let groups = support::api::groups_yaml(&[
        (
            "g1",
            vec![("r0".into(), cluster.url(0)), ("r1".into(), cluster.url(1))],
        ),
        (
            "g2",
            vec![("r1".into(), cluster.url(1)), ("r2".into(), cluster.url(2))],
        ),
    ]);
    let api = MonitorApi::start(&format!(
        "{groups}indexes:\n  cluster1: g1\n  cluster2: g2\nopen_access: true\nqueue:\n  max_bytes: \"64KiB\"\n  segment_bytes: \"16KiB\"\n{FAST_TIMINGS}"
    ));
    cluster.kill9(2);
    let mut refused = None;
    for batch in 0..400usize {
        // One small line for g1, forty for g2 (whose replica r2 is down): g2 fills first.
        let ts = 1_600_000_000_000_000_000u64 + batch as u64;
        let mut body = format!("p,index=cluster1,batch=b{batch:04} v=0i {ts}\n");
        body.push_str(&small_batch(batch).replace("q,index=cluster1", "p,index=cluster2"));
        let response = api.write("part", &[("consistency", "any")], body.as_bytes());
        if response.status == 503 {
            refused = Some(batch);
            break;
        }
        assert_eq!(response.status, 204, "{}", response.text());
    }
    let refused = refused.expect("g2's log never filled");
    let barrier = api.write(
        "part",
        &[("consistency", "all")],
        b"p,index=cluster1,batch=barrier v=1i 1\n",
    );
    assert_eq!(barrier.status, 204, "{}", barrier.text());
    let on_r0 = cluster.count_by_tag(0, "part", "p", "v", "batch");
    assert_eq!(
        on_r0.get(&format!("b{refused:04}")),
        None,
        "the g1 line of the refused request was stored"
    );
}
