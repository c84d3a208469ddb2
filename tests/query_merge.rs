//! The `/query` merge rules of monitor-api (issue 4) against real influxd 1.6.7: every answer
//! through the proxy is compared, byte for byte as JSON, with what ONE influxd holding all the
//! data (the oracle) answers to the same request. The proxy's replicas are made to differ on
//! purpose (points written directly to one replica only), so a union that dropped a replica's
//! rows, or an aggregate summed over replicas, would show.
//!
//! Topology: group g1 = influxd n0 + n1 (indexes c1, c2), group g2 = influxd n2 (`replicated`,
//! index c3), oracle = n3. One set of processes for the whole file: the checks run in order in
//! one test, each failure naming the query.

mod support;

#[path = "support/clients.rs"]
mod clients;

use std::process::Command;
use std::time::Duration;

use support::api::MonitorApi;
use support::{HttpResponse, InfluxCluster, http_get, http_request, query_string};

const BASE: i64 = 1_700_000_000_000_000_000;
/// Rows of the `big` measurement (streamed through the proxy, not held whole).
const BIG_ROWS: i64 = 30_000;
const RANGE: &str = "time >= '2023-11-14T22:00:00Z' AND time < '2023-11-15T00:00:00Z'";

fn config(cluster: &InfluxCluster) -> String {
    format!(
        "backend:\n  timeout: \"5s\"\n  health_check_interval: \"200ms\"\n\
         groups:\n  g1:\n    replicas:\n      - url: \"{}\"\n        name: r0\n      - url: \"{}\"\n        name: r1\n\
         \x20 g2:\n    replicated: true\n    replicas:\n      - url: \"{}\"\n        name: r2\n\
         indexes:\n  c1: g1\n  c2: g1\n  c3: g2\n",
        cluster.url(0),
        cluster.url(1),
        cluster.url(2)
    )
}

/// 200 points for each of five series over three indexes (two groups), at distinct times.
fn complete_data() -> String {
    let series = [
        ("c1", "h1", "eu"),
        ("c1", "h2", "us"),
        ("c2", "h3", "eu"),
        ("c3", "h4", "us"),
        ("c3", "h5", "eu"),
    ];
    let mut lines = String::new();
    for i in 0..200i64 {
        for (s, (index, host, region)) in series.iter().enumerate() {
            let s = s as i64;
            let t = BASE + i * 10_000_000_000 + s * 1000;
            // Leave holes so fill() has work: h2 skips a stretch of 10 minutes.
            if *host == "h2" && (60..120).contains(&i) {
                continue;
            }
            lines.push_str(&format!(
                "cpu,index={index},host={host},region={region} value={}.5,n={}i,ok={} {t}\n",
                (i * 7 + s * 3) % 50,
                i * s,
                i % 3 == 0
            ));
        }
        if i % 4 == 0 {
            lines.push_str(&format!(
                "mem,index=c3,host=h4 used={} {}\n",
                i % 90,
                BASE + i * 10_000_000_000 + 7
            ));
        }
    }
    lines
}

struct Fixture {
    cluster: InfluxCluster,
    api: MonitorApi,
}

impl Fixture {
    fn oracle(&self) -> u16 {
        self.cluster.http_port(3)
    }

    fn get(&self, port: u16, params: &[(&str, &str)]) -> HttpResponse {
        http_get(port, &format!("/query?{}", query_string(params)))
    }

    /// The same request to the proxy and the oracle must get the same status and JSON.
    fn same(&self, params: &[(&str, &str)]) -> String {
        let proxy = self.get(self.api.port(), params);
        let oracle = self.get(self.oracle(), params);
        let (left, right) = (proxy.text(), oracle.text());
        if proxy.status == oracle.status && left != right && left.len() + right.len() > 4000 {
            // Long answers: show where they part, not two megabytes.
            let at = left
                .bytes()
                .zip(right.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(left.len().min(right.len()));
            let around = |text: &str| {
                let from = at.saturating_sub(200);
                text.get(from..(at + 200).min(text.len()))
                    .unwrap_or("")
                    .to_owned()
            };
            panic!(
                "proxy and the complete influxd differ for {params:?} at byte {at} (lengths {} / {}):\nproxy:  {}\ninfluxd: {}",
                left.len(),
                right.len(),
                around(&left),
                around(&right)
            );
        }
        assert_eq!(
            (proxy.status, left),
            (oracle.status, right),
            "proxy (left) and the complete influxd (right) differ for {params:?}"
        );
        assert!(
            proxy.header("x-monitor-partial").is_none(),
            "a complete answer must not be marked partial: {params:?}"
        );
        proxy.text()
    }

    fn same_q(&self, q: &str) -> String {
        self.same(&[("db", "q"), ("q", q)])
    }
}

fn write_direct(cluster: &InfluxCluster, node: usize, body: &str) {
    let response = cluster.write(node, "q", body.as_bytes());
    assert_eq!(
        response.status,
        204,
        "direct write to n{node}: {}",
        response.text()
    );
}

fn setup() -> Fixture {
    let cluster = InfluxCluster::start_in_memory(4);
    let api = MonitorApi::start(&config(&cluster));
    // DDL through the proxy reaches n0..n2; the oracle gets it directly.
    let created = http_request(
        api.addr(),
        "POST",
        &format!("/query?{}", query_string(&[("q", "CREATE DATABASE q")])),
        &[],
        b"",
    )
    .expect("CREATE DATABASE through the proxy");
    assert_eq!(created.status, 200, "{}", created.text());
    for node in 0..3 {
        assert!(
            cluster.databases(node).contains(&"q".to_owned()),
            "CREATE DATABASE through the proxy did not reach n{node}"
        );
    }
    cluster.create_database(3, "q");
    let data = complete_data();
    let written = api.write("q", &[], data.as_bytes());
    assert_eq!(written.status, 204, "{}", written.text());
    write_direct(&cluster, 3, &data);
    api.wait_drained(Duration::from_secs(30));

    // Replicas of g1 that differ: n0 alone has t0 and t1, n1 alone has t2; both have t1.
    let t = |k: i64| BASE + 5_000_000_000 + k * 1_000_000_000;
    let only_n0 = format!(
        "gappy,index=c1,host=a v=1 {}\ngappy,index=c1,host=a v=2 {}\n",
        t(0),
        t(1)
    );
    let only_n1 = format!(
        "gappy,index=c1,host=a v=2 {}\ngappy,index=c1,host=a v=3 {}\ngappy,index=c2,host=z v=8 {}\n",
        t(1),
        t(2),
        t(3)
    );
    let g2 = format!("gappy,index=c3,host=b v=9 {}\n", t(4));
    write_direct(&cluster, 0, &only_n0);
    write_direct(&cluster, 1, &only_n1);
    write_direct(&cluster, 2, &g2);
    for body in [&only_n0, &only_n1, &g2] {
        write_direct(&cluster, 3, body);
    }
    // A raw answer longer than what the proxy holds before streaming (1 MiB), each replica
    // missing a different third, with strings InfluxDB escapes its own way (`<`, `&`, `>`).
    let (mut n0, mut n1, mut all) = (String::new(), String::new(), String::new());
    for i in 0..BIG_ROWS {
        // Floats over 80 orders of magnitude (Go's plain and exponent notations), strings with
        // what JSON encoders escape differently.
        let f = ((i * 7919) % 100_003) as f64 / 997.0 * 10f64.powi((i % 80) as i32 - 40);
        let line = format!(
            "big,index=c1,host=h{} v={}.25,f={f:e},s=\"a<{i}&> \\\\ \\\" é\u{2028}\" {}\n",
            i % 3,
            i % 1000,
            BASE + i * 1_000_000
        );
        if i % 3 != 0 {
            n0.push_str(&line);
        }
        if i % 3 != 1 {
            n1.push_str(&line);
        }
        all.push_str(&line);
    }
    write_direct(&cluster, 0, &n0);
    write_direct(&cluster, 1, &n1);
    write_direct(&cluster, 3, &all);
    // Two series with equal values at the same times: without GROUP BY, two equal rows.
    let twins = format!(
        "twin,index=c1,host=a v=1 {BASE}\ntwin,index=c1,host=b v=1 {BASE}\ntwin,index=c1,host=a v=2 {}\n",
        BASE + 1
    );
    let twins_lagging = format!("twin,index=c1,host=b v=1 {BASE}\n");
    write_direct(&cluster, 0, &twins);
    write_direct(&cluster, 1, &twins_lagging);
    write_direct(&cluster, 3, &twins);
    Fixture { cluster, api }
}

#[test]
fn query_answers_equal_one_complete_influxd() {
    let f = setup();

    // Raw SELECT: union of replicas (gappy differs per replica), dedup, sort, windows.
    for q in [
        "SELECT * FROM gappy",
        "SELECT * FROM gappy ORDER BY time DESC",
        "SELECT * FROM gappy LIMIT 2 OFFSET 1",
        "SELECT v FROM gappy GROUP BY host",
        "SELECT v FROM gappy GROUP BY * SLIMIT 1 SOFFSET 1",
        "SELECT v FROM gappy WHERE \"index\" = 'c1'",
        "SELECT * FROM cpu LIMIT 7",
        "SELECT * FROM cpu ORDER BY time DESC LIMIT 5 OFFSET 3",
        "SELECT value, host FROM cpu WHERE value > 40 AND host =~ /h[15]/ LIMIT 20",
        "SELECT value FROM cpu GROUP BY host, region LIMIT 3 OFFSET 2",
        "SELECT value FROM cpu WHERE time > '2023-11-14T22:40:00Z' AND time <= 1700002000000000000 LIMIT 5",
        "SELECT * FROM cpu, gappy WHERE \"index\" = 'c1' LIMIT 3",
        "SELECT * FROM /gap.*/",
        "SELECT * FROM q.autogen.gappy",
        "SELECT * FROM q..gappy WHERE v >= 2",
        "SELECT * FROM nosuch",
        "SELECT used FROM mem WHERE index = 'c3' LIMIT 3",
        "SELECT abs(value), floor(value) * 2 FROM cpu WHERE value < 3 LIMIT 9",
    ] {
        f.same_q(q);
    }

    // Aggregates across groups: recombined (mean from sum and count, spread from max and min).
    for q in [
        "SELECT count(value), sum(n), min(value), max(value), mean(value), spread(value) FROM cpu",
        &format!(
            "SELECT mean(value), count(value), sum(n), min(value), max(value), spread(value) FROM cpu WHERE {RANGE} GROUP BY time(5m)"
        ),
        &format!("SELECT mean(value) FROM cpu WHERE {RANGE} GROUP BY time(5m), host fill(0)"),
        &format!("SELECT count(value) FROM cpu WHERE {RANGE} GROUP BY time(2m), host fill(7)"),
        &format!(
            "SELECT mean(value) FROM cpu WHERE {RANGE} GROUP BY time(1m), host fill(previous) LIMIT 30"
        ),
        &format!(
            "SELECT mean(value), count(n) FROM cpu WHERE {RANGE} GROUP BY time(1m), host fill(linear)"
        ),
        &format!(
            "SELECT max(value) FROM cpu WHERE {RANGE} GROUP BY time(10m) fill(none) ORDER BY time DESC LIMIT 3 OFFSET 1"
        ),
        &format!("SELECT sum(value) FROM cpu WHERE {RANGE} GROUP BY time(15m), region SLIMIT 1"),
        &format!(
            "SELECT max(value) FROM cpu WHERE {RANGE} GROUP BY time(30m), host ORDER BY time DESC"
        ),
        "SELECT max(value) FROM cpu",
        "SELECT min(n) FROM cpu GROUP BY region",
        "SELECT first(value) FROM cpu",
        "SELECT last(value) FROM cpu GROUP BY \"index\"",
        "SELECT count(value) AS c, sum(value) AS s FROM cpu GROUP BY host",
        "SELECT max(value), max(n) FROM cpu",
        "SELECT count(v) FROM gappy WHERE \"index\" = 'c3'",
    ] {
        f.same_q(q);
    }

    // Aggregates within one group come from one replica, and may use anything InfluxDB has.
    for q in [
        "SELECT percentile(value, 90), median(value), stddev(value) FROM cpu WHERE \"index\" = 'c3'",
        &format!(
            "SELECT mean(value) FROM cpu WHERE \"index\" = 'c1' AND {RANGE} GROUP BY time(5m) LIMIT 4"
        ),
        "SELECT top(value, 3) FROM cpu WHERE \"index\" =~ /^c[12]$/",
        "SELECT derivative(mean(value), 1m) FROM cpu WHERE index = 'c2' AND time >= '2023-11-14T22:10:00Z' AND time < '2023-11-14T22:30:00Z' GROUP BY time(5m)",
    ] {
        f.same_q(q);
    }

    // SHOW: union (gappy's c2 series exists on n1 only), dedup, sort.
    for q in [
        "SHOW DATABASES",
        "SHOW MEASUREMENTS",
        "SHOW MEASUREMENTS LIMIT 2 OFFSET 1",
        "SHOW MEASUREMENTS WITH MEASUREMENT =~ /g.*/",
        "SHOW TAG KEYS",
        "SHOW TAG KEYS FROM cpu",
        "SHOW TAG VALUES WITH KEY = host",
        "SHOW TAG VALUES FROM gappy WITH KEY IN (\"host\", \"index\")",
        "SHOW TAG VALUES WITH KEY = \"index\" WHERE host = 'h4'",
        "SHOW FIELD KEYS",
        "SHOW SERIES",
        "SHOW SERIES FROM gappy WHERE \"index\" = 'c2'",
        "SHOW RETENTION POLICIES ON q",
    ] {
        f.same_q(q);
    }

    // One raw statement over two replicas: merged as the chunks arrive; longer than 1 MiB, it
    // streams to the client (whole or chunked, every epoch, windows, several series).
    f.same(&[
        ("db", "q"),
        ("chunked", "true"),
        ("chunk_size", "2"),
        ("q", "SELECT * FROM gappy"),
    ]);
    for (epoch, chunked) in [("", "false"), ("ms", "false"), ("ns", "true"), ("", "true")] {
        let text = f.same(&[
            ("db", "q"),
            ("epoch", epoch),
            ("chunked", chunked),
            ("chunk_size", "7000"),
            ("q", "SELECT * FROM big"),
        ]);
        assert!(
            text.len() > 1 << 20,
            "the big answer must be long enough to stream"
        );
    }
    f.same_q("SELECT v, s FROM big GROUP BY host ORDER BY time DESC LIMIT 12000 OFFSET 3");
    f.same_q("SELECT * FROM big GROUP BY * SLIMIT 2 SOFFSET 1");

    // Replicas in sync send the same chunks byte for byte: the proxy decodes each once (the
    // answer is still the union). Replicas that differ in every chunk share none.
    let counters = || {
        (
            f.api
                .metric_value("monitor_query_raw_chunks_parsed_total", &[]),
            f.api
                .metric_value("monitor_query_raw_chunks_shared_total", &[]),
        )
    };
    let before = counters();
    f.same_q("SELECT * FROM cpu WHERE \"index\" = 'c1'");
    let after = counters();
    let (parsed, shared) = (after.0 - before.0, after.1 - before.1);
    assert!(
        shared >= 1.0 && shared == parsed,
        "in-sync replicas: every chunk decoded once ({parsed} decoded, {shared} shared)"
    );
    f.same_q("SELECT v FROM big");
    let last = counters();
    let (parsed, shared) = (last.0 - after.0, last.1 - after.1);
    assert!(
        parsed >= 40.0 && shared == 0.0,
        "replicas that differ: each decodes its own 20 chunks ({parsed} decoded, {shared} shared)"
    );
    f.same_q("SELECT v FROM twin");
    f.same_q("SELECT v FROM twin ORDER BY time DESC");

    // The proxy keeps its connections to the replicas: by now far more requests went over kept
    // connections than over new ones, and influxd closed none of them while idle.
    let connections = |event| {
        f.api.metric_value(
            "monitor_query_backend_connections_total",
            &[("event", event)],
        )
    };
    let (opened, reused, replaced) = (
        connections("opened"),
        connections("reused"),
        connections("replaced"),
    );
    assert!(
        opened >= 1.0 && reused > 2.0 * opened && replaced == 0.0,
        "replica connections: {opened} opened, {reused} reused, {replaced} replaced"
    );

    // Several statements, epochs, chunked answers, bound parameters, POST forms.
    f.same_q("SELECT * FROM gappy; SELECT count(value) FROM cpu; SHOW MEASUREMENTS");
    for epoch in ["ns", "u", "ms", "s", "m", "h"] {
        f.same(&[("db", "q"), ("epoch", epoch), ("q", "SELECT * FROM gappy")]);
    }
    f.same(&[
        ("db", "q"),
        ("chunked", "true"),
        ("chunk_size", "2"),
        (
            "q",
            "SELECT * FROM gappy; SELECT v FROM gappy GROUP BY host",
        ),
    ]);
    // One group with one backend: its answer streams through unparsed, chunked or not.
    f.same(&[
        ("db", "q"),
        ("chunked", "true"),
        ("chunk_size", "3"),
        ("q", "SELECT * FROM cpu WHERE \"index\" = 'c3' LIMIT 10"),
    ]);
    f.same(&[
        ("db", "q"),
        ("epoch", "s"),
        (
            "q",
            "SELECT mean(value) FROM cpu WHERE \"index\" = 'c1' GROUP BY host",
        ),
    ]);
    f.same(&[
        ("db", "q"),
        ("q", "SELECT * FROM gappy WHERE host = $h"),
        ("params", "{\"h\":\"a\"}"),
    ]);
    let form = query_string(&[("q", "SELECT * FROM gappy"), ("db", "q")]);
    let posted = |port: u16| {
        http_request(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            "POST",
            "/query",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
        .expect("POST /query")
        .text()
    };
    assert_eq!(posted(f.api.port()), posted(f.oracle()), "POST form body");

    // gzip when the client accepts it.
    let gzipped = http_request(
        f.api.addr(),
        "GET",
        &format!(
            "/query?{}",
            query_string(&[("db", "q"), ("q", "SELECT * FROM gappy")])
        ),
        &[("Accept-Encoding", "gzip")],
        b"",
    )
    .expect("gzip query");
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&gzipped.body[..]),
        &mut text,
    )
    .expect("gunzip the answer");
    assert_eq!(
        text,
        f.get(f.oracle(), &[("db", "q"), ("q", "SELECT * FROM gappy")])
            .text()
    );

    // DDL by GET: applied, with InfluxDB's deprecation warning.
    f.same(&[("q", "CREATE DATABASE extra")]);
    for node in 0..3 {
        assert!(
            f.cluster.databases(node).contains(&"extra".to_owned()),
            "n{node}"
        );
    }

    // Bad queries: InfluxDB's own errors, same status and wording.
    for q in [
        "SELECT * FROM cpu WHERE",
        "SELECT FROM cpu",
        "SELECT * FROM cpu LIMIT",
        "SELECT * FROM cpu GROUP BY",
        "SELECT value FROM cpu WHERE value > 'x' AND",
    ] {
        f.same_q(q);
    }
    f.same(&[("q", "SELECT * FROM cpu")]); // no database: statement error
    f.same(&[("db", "nosuch"), ("q", "SELECT * FROM cpu")]);
    searches_in_a_database_nobody_wrote(&f);

    // What cannot be merged exactly across groups: a 400 that says why.
    for (q, why) in [
        (
            "SELECT percentile(value, 90) FROM cpu",
            "percentile() cannot be merged across shard groups",
        ),
        (
            "SELECT median(value) FROM cpu",
            "median() cannot be merged across shard groups",
        ),
        (
            "SELECT mean(value) * 2 FROM cpu",
            "only plain aggregate calls",
        ),
        (
            "SELECT first(value), last(value) FROM cpu",
            "first()/last() across shard groups",
        ),
        ("SELECT count(*) FROM cpu", "wildcard"),
    ] {
        let answer = f.get(f.api.port(), &[("db", "q"), ("q", q)]);
        assert_eq!(answer.status, 400, "{q}: {}", answer.text());
        let error = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            error.contains(why),
            "{q}: the refusal should say {why:?}, got {error:?}"
        );
    }

    // The `index` parameter narrows to one index (and its group) like WHERE "index" = ...
    let by_param = f.get(
        f.api.port(),
        &[
            ("db", "q"),
            ("index", "c3"),
            ("q", "SELECT percentile(value, 50), count(value) FROM cpu"),
        ],
    );
    let by_where = f.get(
        f.oracle(),
        &[
            ("db", "q"),
            (
                "q",
                "SELECT percentile(value, 50), count(value) FROM cpu WHERE \"index\" = 'c3'",
            ),
        ],
    );
    assert_eq!(by_param.text(), by_where.text(), "index parameter");

    real_clients_agree(&f);
}

/// The `influx` CLI and the Python `influxdb` client get from the proxy what they get from the
/// complete influxd.
/// The search APIs over a database no replica has: nothing found, not a replica failure.
/// InfluxDB 1.6 answers the search's several statements there with one bare "not executed".
fn searches_in_a_database_nobody_wrote(f: &Fixture) {
    let response = f
        .api
        .request("GET", "/api/v1/traces/t1?db=never_written", &[], b"");
    assert_eq!(response.status, 404, "{}", response.text());
    assert_eq!(
        response.json()["error"],
        "trace \"t1\" not found",
        "{}",
        response.text()
    );
    let response = f
        .api
        .request("GET", "/api/v1/logs?db=never_written", &[], b"");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["count"], 0, "{}", response.text());
    assert_eq!(response.json()["partial"], false, "{}", response.text());
}

fn real_clients_agree(f: &Fixture) {
    let influx = |port: u16, args: &[&str], q: &str| {
        let output = Command::new(clients::influx_cli())
            .args([
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
                "-database",
                "q",
            ])
            .args(args)
            .args(["-execute", q])
            .output()
            .expect("run influx");
        clients::expect_success("influx -execute", &output);
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    for q in [
        "SELECT * FROM gappy",
        "SELECT mean(value), spread(value) FROM cpu GROUP BY region",
        "SHOW MEASUREMENTS",
        "SHOW TAG VALUES WITH KEY = host",
    ] {
        for args in [
            &[][..],
            &["-format", "json"][..],
            &["-format", "csv", "-precision", "rfc3339"][..],
        ] {
            let proxy = influx(f.api.port(), args, q);
            let oracle = influx(f.oracle(), args, q);
            assert!(
                !proxy.trim().is_empty(),
                "influx {args:?} -execute {q:?} printed nothing"
            );
            assert_eq!(proxy, oracle, "influx {args:?} -execute {q:?}");
        }
    }

    let script = r#"
import json, sys
from influxdb import InfluxDBClient
port = int(sys.argv[1])
# The client asks for msgpack, which influxd 1.6 speaks and the proxy does not (it answers
# JSON, which the client also reads): ask both for JSON so the answers are comparable.
client = InfluxDBClient(host="127.0.0.1", port=port, database="q", headers={"Accept": "application/json"})
out = []
for q in sys.argv[2:]:
    result = client.query(q)
    out.append({"raw": result.raw, "points": [list(result.get_points(measurement=m)) for m in ["cpu", "gappy", "measurements"]]})
out.append(client.get_list_database())
out.append(client.get_list_measurements())
print(json.dumps(out, sort_keys=True))
"#;
    let queries = [
        "SELECT * FROM gappy",
        "SELECT count(value), mean(value) FROM cpu GROUP BY host",
        &format!("SELECT max(value) FROM cpu WHERE {RANGE} GROUP BY time(20m)"),
        "SHOW MEASUREMENTS",
    ];
    let run = |port: u16| {
        let mut args = vec![port.to_string()];
        args.extend(queries.iter().map(|q| q.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        clients::run_python(script, &args)
    };
    let proxy = run(f.api.port());
    assert!(
        proxy.contains("gappy"),
        "python client saw no data: {proxy}"
    );
    assert_eq!(
        proxy,
        run(f.oracle()),
        "python influxdb client: proxy vs complete influxd"
    );
}
