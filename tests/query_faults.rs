//! The `/query` path of monitor-api when things go wrong (issue 4), against real influxd 1.6.7:
//! a group with no reachable replica (partial answer, marked), a replica down during writes
//! (aggregates still equal one complete influxd's), DDL reaching a replica that was down when it
//! was sent, the row limit, and read access by token.
//!
//! Topology: g1 = influxd n0 + n1 (indexes c1, c2), g2 = n2 (`replicated`, index c3), oracle
//! n3. One set of processes, checks in order in one test.

mod support;

use std::time::Duration;

use support::api::{MonitorApi, tail};
use support::{HttpResponse, InfluxCluster, http_get, query_string, wait_for};

const BASE: i64 = 1_700_000_000_000_000_000;
const ADMIN: &str = "admin-token";
const READER: &str = "c1-reader";

fn config(cluster: &InfluxCluster) -> String {
    format!(
        "backend:\n  timeout: \"2s\"\n  health_check_interval: \"200ms\"\n\
         sender:\n  batch_max_wait: \"20ms\"\n  retry_backoff_min: \"50ms\"\n  retry_backoff_max: \"500ms\"\n\
         query:\n  max_rows: 300\n  ddl_retry_interval: \"200ms\"\n\
         tokens:\n  - token: \"{ADMIN}\"\n    admin: true\n    write: [\"*\"]\n    read: [\"*\"]\n\
         \x20 - token: \"{READER}\"\n    read: [\"c1\"]\n\
         groups:\n  g1:\n    replicas:\n      - url: \"{}\"\n        name: r0\n      - url: \"{}\"\n        name: r1\n\
         \x20 g2:\n    replicated: true\n    replicas:\n      - url: \"{}\"\n        name: r2\n\
         indexes:\n  c1: g1\n  c2: g1\n  c3: g2\n",
        cluster.url(0),
        cluster.url(1),
        cluster.url(2)
    )
}

fn points(from: i64, to: i64) -> String {
    let mut lines = String::new();
    for i in from..to {
        for (s, index) in ["c1", "c2", "c3"].iter().enumerate() {
            lines.push_str(&format!(
                "cpu,index={index},host=h{s} value={},n={i}i {}\n",
                (i * 3 + s as i64) % 17,
                BASE + i * 1_000_000_000 + s as i64
            ));
        }
    }
    lines
}

fn query(api: &MonitorApi, token: &str, params: &[(&str, &str)]) -> HttpResponse {
    api.request(
        "GET",
        &format!("/query?{}", query_string(params)),
        &[("Authorization", &format!("Token {token}"))],
        b"",
    )
}

fn oracle(cluster: &InfluxCluster, q: &str) -> String {
    http_get(
        cluster.http_port(3),
        &format!("/query?{}", query_string(&[("db", "f"), ("q", q)])),
    )
    .text()
}

#[test]
fn query_path_under_failures() {
    let cluster = InfluxCluster::start_in_memory(4);
    let api = MonitorApi::start(&config(&cluster));
    let created = query(&api, ADMIN, &[("q", "CREATE DATABASE f")]);
    assert_eq!(created.status, 200, "{}", created.text());
    cluster.create_database(3, "f");
    let write = |body: &str| {
        let response = api.request(
            "POST",
            "/write?db=f&consistency=one",
            &[("Authorization", &format!("Token {ADMIN}"))],
            body.as_bytes(),
        );
        assert_eq!(response.status, 204, "{}", response.text());
        assert_eq!(cluster.write(3, "f", body.as_bytes()).status, 204);
    };
    write(&points(0, 100));
    api.wait_drained(Duration::from_secs(30));

    // A replica down during writes: aggregates come from the in-sync one and stay complete.
    cluster.stop(0);
    write(&points(100, 150));
    let aggregate =
        "SELECT count(value), sum(n), mean(value), max(value) FROM cpu WHERE \"index\" = 'c1'";
    let answer = query(&api, ADMIN, &[("db", "f"), ("q", aggregate)]);
    assert_eq!(
        answer.text(),
        oracle(&cluster, aggregate),
        "aggregate with r0 down"
    );
    assert!(answer.header("x-monitor-partial").is_none());
    let across = "SELECT count(value), spread(value) FROM cpu GROUP BY \"index\"";
    let answer = query(&api, ADMIN, &[("db", "f"), ("q", across)]);
    assert_eq!(
        answer.text(),
        oracle(&cluster, across),
        "cross-group aggregate with r0 down"
    );

    // DDL while r0 is down: applied to the others now, queued for r0, in order.
    let ddl = query(
        &api,
        ADMIN,
        &[(
            "q",
            "CREATE DATABASE later; CREATE RETENTION POLICY short ON later DURATION 2h REPLICATION 1",
        )],
    );
    assert_eq!(ddl.status, 200, "{}", ddl.text());
    let body = ddl.json();
    for statement in 0..2 {
        let result = &body["results"][statement];
        assert!(result.get("error").is_none(), "{body}");
        let said = result["messages"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| {
                let text = m["text"].as_str().unwrap_or_default();
                text.contains("queued") && text.contains("g1/r0")
            });
        assert!(
            said,
            "the answer should say the DDL waits for g1/r0: {body}"
        );
    }
    for node in [1, 2] {
        assert!(
            cluster.databases(node).contains(&"later".to_owned()),
            "n{node} lacks the new database"
        );
    }
    assert!(
        api.metrics().contains("monitor_query_ddl_pending"),
        "the pending DDL gauge is exported"
    );

    // r0 comes back: the queued DDL reaches it without anyone asking again.
    cluster.restart(0);
    let reached = wait_for(Duration::from_secs(30), || {
        let policies = cluster.query(0, "", "SHOW RETENTION POLICIES ON later");
        policies.to_string().contains("\"short\"").then_some(())
    });
    assert!(
        reached.is_some(),
        "the DDL queued for r0 did not reach it after its restart; log:\n{}",
        tail(&api.log(), 30)
    );
    api.wait_drained(Duration::from_secs(30));
    let answer = query(&api, ADMIN, &[("db", "f"), ("q", across)]);
    assert_eq!(
        answer.text(),
        oracle(&cluster, across),
        "after r0 caught up"
    );

    // g2 has no reachable replica: g1's data, marked partial (header and message).
    cluster.stop(2);
    let answer = query(&api, ADMIN, &[("db", "f"), ("q", across)]);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("x-monitor-partial"),
        Some("true"),
        "{}",
        answer.text()
    );
    let body = answer.json();
    let complete_g1 = oracle(
        &cluster,
        "SELECT count(value), spread(value) FROM cpu WHERE \"index\" =~ /^c[12]$/ GROUP BY \"index\"",
    );
    let expected: serde_json::Value = serde_json::from_str(&complete_g1).expect("oracle JSON");
    assert_eq!(
        body["results"][0]["series"], expected["results"][0]["series"],
        "g1's data in a partial answer"
    );
    let warning = body["results"][0]["messages"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        warning.contains("partial") && warning.contains("g2"),
        "{body}"
    );
    let raw = query(
        &api,
        ADMIN,
        &[
            ("db", "f"),
            ("q", "SELECT * FROM cpu WHERE \"index\" = 'c3'"),
        ],
    );
    assert_eq!(
        raw.header("x-monitor-partial"),
        Some("true"),
        "{}",
        raw.text()
    );
    assert!(api.metric_value("monitor_query_partial_answers_total", &[]) >= 2.0);
    cluster.restart(2);

    // The row limit: a clear error for the statement, not a silently cut answer.
    let big = query(&api, ADMIN, &[("db", "f"), ("q", "SELECT * FROM cpu")]);
    assert_eq!(big.status, 200);
    let error = big.json()["results"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("query.max_rows") && error.contains("300"),
        "{error}"
    );
    let small = query(
        &api,
        ADMIN,
        &[
            ("db", "f"),
            ("q", "SELECT * FROM cpu WHERE \"index\" = 'c1' LIMIT 20"),
        ],
    );
    assert_eq!(
        small.json()["results"][0]["series"][0]["values"]
            .as_array()
            .map(Vec::len),
        Some(20)
    );

    // Read access by token, like writes.
    let mine = query(
        &api,
        READER,
        &[
            ("db", "f"),
            ("q", "SELECT count(value) FROM cpu WHERE \"index\" = 'c1'"),
        ],
    );
    assert_eq!(mine.status, 200, "{}", mine.text());
    let mine_by_param = query(
        &api,
        READER,
        &[
            ("db", "f"),
            ("index", "c1"),
            ("q", "SELECT count(value) FROM cpu"),
        ],
    );
    assert_eq!(
        mine_by_param.text(),
        mine.text(),
        "the index parameter narrows like WHERE"
    );
    for q in [
        "SELECT count(value) FROM cpu WHERE \"index\" = 'c3'",
        "SELECT count(value) FROM cpu",
        "SELECT count(value) FROM cpu WHERE \"index\" =~ /c/",
        "CREATE DATABASE nope",
    ] {
        let refused = query(&api, READER, &[("db", "f"), ("q", q)]);
        assert_eq!(refused.status, 403, "{q}: {}", refused.text());
        assert!(refused.json()["error"].is_string());
    }
    let anonymous = http_get(
        api.port(),
        &format!("/query?{}", query_string(&[("q", "SHOW DATABASES")])),
    );
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
}
