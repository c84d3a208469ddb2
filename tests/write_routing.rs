//! The write path of a real `monitor-api` in front of real influxd: where lines land (only on
//! the replicas of their index's group), what a request is refused for (unknown index, missing
//! db, oversized and gzip-bomb bodies, bad lines, tokens), request ids, and the v2 endpoint.
//! Every outcome is checked by querying each influxd directly.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use support::InfluxCluster;
use support::api::{FAST_TIMINGS, MonitorApi, groups_yaml, http_request_early_answer};

const DRAIN: Duration = Duration::from_secs(60);

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// `n` lines `m,index=<index>,k=<prefix><i> v=<i> <ts>` with distinct timestamps.
fn lines(index: &str, prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "m,index={index},k={prefix}{i} v={i} {}\n",
                1_600_000_000_000_000_000u64 + i as u64
            )
        })
        .collect()
}

#[test]
fn lines_land_only_on_the_replicas_of_their_group() {
    let cluster = InfluxCluster::start_in_memory(3);
    let groups = groups_yaml(&[
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
        "{groups}indexes:\n  cluster1: g1\n  cluster2: g2\nopen_access: true\n{FAST_TIMINGS}"
    ));

    let body = format!(
        "{}{}",
        lines("cluster1", "a", 10),
        lines("cluster2", "b", 7)
    );
    let response = api.write("rt", &[("consistency", "all")], body.as_bytes());
    assert_eq!(response.status, 204, "{}", response.text());

    // An unknown index: the line is refused by name, the good lines of the batch are stored.
    let body = format!(
        "{}m,index=cluster9,k=z v=1 1600000000000000000\n{}",
        lines("cluster1", "c", 2),
        lines("cluster2", "d", 3)
    );
    let response = api.write("rt", &[], body.as_bytes());
    assert_eq!(response.status, 400, "{}", response.text());
    let error = response.json()["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("partial write:"), "{error}");
    assert!(error.contains("cluster9"), "{error}");
    assert!(error.contains("line 3"), "{error}");

    let response = api.write("", &[], lines("cluster1", "e", 1).as_bytes());
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(
        response.text().contains("database is required"),
        "{}",
        response.text()
    );
    let response = api.request("POST", "/write", &[], lines("cluster1", "e", 1).as_bytes());
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.text().contains("database is required"));

    api.wait_drained(DRAIN);
    let by_index = |i| cluster.count_by_tag(i, "rt", "m", "v", "index");
    assert_eq!(
        by_index(0),
        counts(&[("cluster1", 12)]),
        "replica 0 holds g1 only"
    );
    assert_eq!(
        by_index(1),
        counts(&[("cluster1", 12), ("cluster2", 10)]),
        "replica 1 is in both groups"
    );
    assert_eq!(
        by_index(2),
        counts(&[("cluster2", 10)]),
        "replica 2 holds g2 only"
    );
    for i in 0..3 {
        let stray = cluster.count_by_tag(i, "rt", "m", "v", "k");
        assert!(
            !stray.contains_key("z"),
            "the unknown-index line reached node {i}"
        );
        assert!(
            !stray.contains_key("e0"),
            "a write without db reached node {i}"
        );
    }
    let rejected = api.metric_value(
        "monitor_lines_rejected_total",
        &[("reason", "unknown_index")],
    );
    assert_eq!(rejected, 1.0);
}

/// A gzip stream of `size` zero bytes, compressed chunk by chunk (never `size` bytes in memory).
fn gzip_of_zeros(size: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        encoder.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    encoder.finish().unwrap()
}

#[test]
fn oversized_bodies_gzip_bombs_and_bad_lines_are_refused() {
    let cluster = InfluxCluster::start_in_memory(2);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\nlimits:\n  max_body_bytes: \"256KiB\"\n  max_decompressed_bytes: \"8MiB\"\n  max_line_bytes: \"1KiB\"\n{FAST_TIMINGS}",
        support::api::one_group_yaml(&cluster)
    ));

    // ~100 MB of zeros in ~100 KB of gzip: under the wire limit, far over the decompressed one.
    let bomb = gzip_of_zeros(100 << 20);
    assert!(bomb.len() < 256 << 10, "bomb is {} bytes", bomb.len());
    let (status, text) = http_request_early_answer(
        api.addr(),
        "/write?db=lim",
        &[("Content-Encoding", "gzip")],
        &bomb,
    )
    .unwrap();
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_decompressed_bytes"), "{text}");

    // A gzip body under both limits is taken (the bomb was refused for its size, not for gzip).
    let small = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(lines("cluster1", "g", 5).as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let response = api
        .try_write("lim", &[], &[("Content-Encoding", "gzip")], &small)
        .unwrap();
    assert_eq!(response.status, 204, "{}", response.text());

    // A plain body over max_body_bytes.
    let big = lines("cluster1", "big", 8000);
    assert!(big.len() > 256 << 10);
    let (status, text) =
        http_request_early_answer(api.addr(), "/write?db=lim", &[], big.as_bytes()).unwrap();
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("max_body_bytes"), "{text}");

    // The same body chunked, without a declared length: refused while it arrives.
    let (status, text) =
        support::api::http_post_chunked(api.addr(), "/write?db=lim", big.as_bytes(), 16 << 10)
            .unwrap();
    assert_eq!(status, 413, "{text}");
    let small = lines("cluster1", "chunked", 3);
    let (status, text) =
        support::api::http_post_chunked(api.addr(), "/write?db=lim", small.as_bytes(), 50).unwrap();
    assert_eq!(status, 204, "{text}");

    // Bad lines: refused by line number, the good ones stored.
    let mut body = Vec::new();
    body.extend_from_slice(b"m,index=cluster1,k=ok1 v=1 1600000000000000001\n");
    body.extend_from_slice(b"m,index=cluster1,k=bad2 v= 1600000000000000002\n");
    body.extend_from_slice(b"m,index=cluster1,k=ok3 v=3 1600000000000000003\n");
    body.extend_from_slice(b"m,index=cluster1,k=bad4 1600000000000000004\n");
    body.extend_from_slice(b"m,index=cluster1,k=bad5\xff\xfe v=5 1600000000000000005\n");
    body.extend_from_slice(b"m,index=cluster1,k=ok6 v=6 1600000000000000006\n");
    let long_line = format!(
        "m,index=cluster1,k=long7 v=7,pad=\"{}\" 1600000000000000007\n",
        "x".repeat(2000)
    );
    body.extend_from_slice(long_line.as_bytes());
    let response = api.write("lim", &[], &body);
    assert_eq!(response.status, 400, "{}", response.text());
    let error = response.json()["error"].as_str().unwrap().to_owned();
    assert!(error.starts_with("partial write:"), "{error}");
    for line in ["(line 2,", "(line 4,", "(line 5,", "(line 7,"] {
        assert!(error.contains(line), "{line} not named in {error}");
    }
    for line in ["(line 1,", "(line 3,", "(line 6,"] {
        assert!(!error.contains(line), "good {line} named in {error}");
    }
    assert!(error.contains("invalid utf-8"), "{error}");
    assert!(error.contains("line longer than 1024 bytes"), "{error}");
    assert!(error.contains("dropped=4"), "{error}");

    api.wait_drained(DRAIN);
    for i in 0..2 {
        let stored = cluster.count_by_tag(i, "lim", "m", "v", "k");
        let expected: BTreeMap<String, u64> = [
            "chunked0", "chunked1", "chunked2", "g0", "g1", "g2", "g3", "g4", "ok1", "ok3", "ok6",
        ]
        .iter()
        .map(|k| ((*k).to_owned(), 1))
        .collect();
        assert_eq!(stored, expected, "node {i}");
    }
    assert_eq!(
        api.metric_value(
            "monitor_lines_rejected_total",
            &[("reason", "body_too_large")]
        ),
        3.0
    );
    assert_eq!(
        api.metric_value("monitor_lines_rejected_total", &[("reason", "parse")]),
        4.0
    );
}

#[test]
fn a_token_writes_only_its_indexes() {
    let cluster = InfluxCluster::start_in_memory(2);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\n  cluster2: g1\ntokens:\n  - token: \"w1\"\n    write: [\"cluster1\"]\n{FAST_TIMINGS}",
        support::api::one_group_yaml(&cluster)
    ));
    let auth = [("Authorization", "Token w1")];

    // One forbidden line refuses the whole request, the allowed lines with it.
    let body = format!(
        "{}{}",
        lines("cluster1", "mixed", 3),
        lines("cluster2", "x", 2)
    );
    let response = api.try_write("tok", &[], &auth, body.as_bytes()).unwrap();
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(response.text().contains("cluster2"), "{}", response.text());

    let response = api
        .try_write("tok", &[], &[], lines("cluster1", "anon", 1).as_bytes())
        .unwrap();
    assert_eq!(response.status, 401, "{}", response.text());
    let response = api
        .try_write(
            "tok",
            &[],
            &[("Authorization", "Token nope")],
            lines("cluster1", "wrong", 1).as_bytes(),
        )
        .unwrap();
    assert!(
        response.status == 401 || response.status == 403,
        "{} {}",
        response.status,
        response.text()
    );

    // The token's own index is written (also a barrier: it arrives after anything sent before).
    for (name, headers) in [
        ("token", vec![("Authorization", "Token w1")]),
        ("bearer", vec![("Authorization", "Bearer w1")]),
        ("basic", vec![("Authorization", "Basic YW55Oncx")]),
    ] {
        let response = api
            .try_write("tok", &[], &headers, lines("cluster1", name, 1).as_bytes())
            .unwrap();
        assert_eq!(response.status, 204, "{name}: {}", response.text());
    }
    let response = api.write(
        "tok",
        &[("u", "any"), ("p", "w1")],
        lines("cluster1", "param", 1).as_bytes(),
    );
    assert_eq!(response.status, 204, "{}", response.text());

    // The v2 endpoint takes the same token, and refuses the same index.
    let v2 = "/api/v2/write?bucket=tok&precision=ns";
    let response = api.request("POST", v2, &auth, lines("cluster1", "v2tok", 1).as_bytes());
    assert_eq!(response.status, 204, "{}", response.text());
    let response = api.request("POST", v2, &auth, lines("cluster2", "v2x", 1).as_bytes());
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(response.text().contains("cluster2"), "{}", response.text());

    api.wait_drained(DRAIN);
    for i in 0..2 {
        let stored = cluster.count_by_tag(i, "tok", "m", "v", "k");
        let expected: BTreeMap<String, u64> = ["basic0", "bearer0", "param0", "token0", "v2tok0"]
            .iter()
            .map(|k| ((*k).to_owned(), 1))
            .collect();
        assert_eq!(stored, expected, "node {i}");
    }
    assert!(api.metric_value("monitor_lines_rejected_total", &[("reason", "forbidden")]) >= 1.0);
}

#[test]
fn the_client_request_id_comes_back_and_reaches_the_backends() {
    // influxd logs each request with its request id only with HTTP logging on.
    let cluster =
        InfluxCluster::start_in_memory_with_env(2, &[("INFLUXDB_HTTP_LOG_ENABLED", "true")]);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\n{FAST_TIMINGS}",
        support::api::one_group_yaml(&cluster)
    ));
    let rid = "wt-rid-5f3a9c1e77";
    let response = api
        .try_write(
            "rid",
            &[("consistency", "all")],
            &[("X-Request-Id", rid)],
            lines("cluster1", "r", 3).as_bytes(),
        )
        .unwrap();
    assert_eq!(response.status, 204, "{}", response.text());
    assert_eq!(response.header("x-request-id"), Some(rid));

    // Also on an error answer.
    let response = api
        .try_write(
            "",
            &[],
            &[("X-Request-Id", "wt-rid-error")],
            b"m,index=cluster1 v=1\n",
        )
        .unwrap();
    assert_eq!(response.status, 400);
    assert_eq!(response.header("x-request-id"), Some("wt-rid-error"));

    // Without one the proxy makes one up.
    let response = api.write("rid", &[], lines("cluster1", "n", 1).as_bytes());
    assert_eq!(response.status, 204, "{}", response.text());
    assert!(
        response
            .header("x-request-id")
            .is_some_and(|v| !v.is_empty())
    );

    api.wait_drained(DRAIN);
    for i in 0..2 {
        // consistency=all answered 204: both backends wrote the batch that carried the id.
        let logged = support::wait_for(Duration::from_secs(10), || {
            cluster
                .log(i)
                .lines()
                .any(|l| l.contains("/write") && l.contains(rid))
                .then_some(())
        });
        assert!(
            logged.is_some(),
            "node {i} never logged a write with request id {rid}:\n{}",
            support::api::tail(&cluster.log(i), 20)
        );
    }
}

#[test]
fn the_v2_endpoint_writes_with_its_precision() {
    let cluster = InfluxCluster::start_in_memory(2);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\n{FAST_TIMINGS}",
        support::api::one_group_yaml(&cluster)
    ));
    let body =
        b"cpu,index=cluster1,host=h1 v=1 1700000000\ncpu,index=cluster1,host=h2 v=2 1700000001\n";
    let response = api.request(
        "POST",
        "/api/v2/write?bucket=v2db/autogen&precision=s&org=ignored",
        &[("Authorization", "Token x")],
        body,
    );
    assert_eq!(response.status, 204, "{}", response.text());

    // Without a bucket: refused.
    let response = api.request("POST", "/api/v2/write?precision=s", &[], body);
    assert_eq!(response.status, 400, "{}", response.text());

    api.wait_drained(DRAIN);
    for i in 0..2 {
        let rows = cluster.query_rows(i, "v2db", "SELECT host, v FROM autogen.cpu");
        let expected = vec![
            serde_json::json!([1_700_000_000_000_000_000u64, "h1", 1]),
            serde_json::json!([1_700_000_001_000_000_000u64, "h2", 2]),
        ];
        let got: Vec<serde_json::Value> = rows.into_iter().map(serde_json::Value::from).collect();
        assert_eq!(got, expected, "node {i}");
    }
}
