//! The search APIs against real processes: three influxd, two shard groups sharing the middle
//! node (each group in its own backend database through the replicas' `database` mapping), a
//! real `monitor-api`, and the real `monitorctl`. One set of processes serves every check, in
//! phases that only read after the data is written.
//!
//! Checked: a trace spread over two groups comes back whole, once per line, oldest first, with
//! its spans; a line only one replica holds is in the answer (union); log filters, time range,
//! limit and newest-first order; `format=lp` re-parses with a parser we did not write; user
//! text with quotes, backslashes, slashes and regex characters is found literally; access
//! (401, 403, a reader limited to one index); 404 and 400 answers naming what is wrong; the
//! request id reaching the backends; the CLI's tables.

mod support;

#[path = "support/search.rs"]
mod search;

use std::process::Command;

use search::{MS, S, TRACE_T0, msgs as msgs_of, now_ns, tracelog};
use serde_json::Value;
use support::api::{MonitorApi, tail};
use support::{HttpResponse, InfluxCluster, query_string, url_encode};

const ADMIN: &str = "admin-token";
const LIMITED: &str = "limited-token";
const TRACE: &str = "trace-abc";

/// The reader tokens (the config's `access` part).
fn tokens() -> String {
    format!(
        r#"tokens:
  - token: "{ADMIN}"
    name: admin
    write: ["*"]
    read: ["*"]
    admin: true
  - token: "{LIMITED}"
    name: limited
    read: ["cluster1"]"#
    )
}

/// The log lines: `(offset from t0 in seconds, line protocol without timestamp)`.
const LOGS: &[(i64, &str)] = &[
    (
        1,
        r#"log,index=cluster1,host=h1,source=api,level=info msg="user login ok""#,
    ),
    (
        2,
        r#"log,index=cluster1,host=h2,source=api,level=error msg="it's a \"quote\"""#,
    ),
    (
        3,
        r#"log,index=cluster2,host=h1,source=db,level=warn msg="back\\slash C:\\temp""#,
    ),
    (
        4,
        r#"log,index=cluster2,host=h3,source=db,level=info msg="path /var/log/app.log rotated""#,
    ),
    (
        5,
        r#"log,index=cluster1,host=h1,source=web,level=info msg="regex chars .* (a|b) [x]""#,
    ),
    (
        6,
        r#"log,index=cluster2,host=h2,source=api,level=error msg="x' OR '1'='1""#,
    ),
    (
        7,
        r#"log,index=secret,host=h9,source=vault,level=info msg="secret stuff""#,
    ),
];

/// The messages of `LOGS` as stored (unescaped).
const MSGS: &[&str] = &[
    "user login ok",
    "it's a \"quote\"",
    r"back\slash C:\temp",
    "path /var/log/app.log rotated",
    "regex chars .* (a|b) [x]",
    "x' OR '1'='1",
    "secret stuff",
];

const TICKS: usize = 10;

struct Fixture {
    cluster: InfluxCluster,
    api: MonitorApi,
    /// Time of the log lines' offset 0.
    t0: i64,
}

impl Fixture {
    fn get(&self, path: &str, params: &[(&str, &str)], token: Option<&str>) -> HttpResponse {
        let authorization = token.map(|t| format!("Token {t}"));
        let mut headers = vec![("X-Request-Id", "search-rid-7d41")];
        if let Some(value) = &authorization {
            headers.push(("Authorization", value.as_str()));
        }
        let path = if params.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", query_string(params))
        };
        self.api.request("GET", &path, &headers, b"")
    }

    fn logs(&self, params: &[(&str, &str)]) -> Value {
        let response = self.get("/api/v1/logs", params, Some(ADMIN));
        assert_eq!(response.status, 200, "{params:?}: {}", response.text());
        assert_eq!(response.header("x-monitor-partial"), None);
        let value = response.json();
        assert_eq!(value["partial"], false, "{value}");
        value
    }

    fn msgs(&self, params: &[(&str, &str)]) -> Vec<String> {
        msgs_of(&self.logs(params))
    }

    fn ctl(&self, args: &[&str]) -> (String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_monitorctl"))
            .args(["--url", &self.api.url(), "--token", ADMIN])
            .args(args)
            .env_remove("MONITOR_API_URL")
            .env_remove("MONITOR_TOKEN")
            .output()
            .expect("run monitorctl");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(
            output.status.success(),
            "monitorctl {args:?} failed: {stderr}{stdout}"
        );
        (stdout, stderr)
    }
}

fn start() -> Fixture {
    let (cluster, api) = search::start(
        &[("INFLUXDB_HTTP_LOG_ENABLED", "true")],
        "  secret: g2\n",
        &tokens(),
    );
    let t0 = now_ns() - 30 * 60 * S;
    let mut body = String::new();
    for (offset, line) in LOGS {
        body.push_str(&format!("{line} {}\n", t0 + offset * S));
    }
    for i in 0..TICKS {
        body.push_str(&format!(
            "log,index=cluster1,host=h4,source=batch,level=debug msg=\"tick {i}\",n={i}i {}\n",
            t0 + (10 + i as i64) * S
        ));
    }
    body.push_str(&format!(
        "log,index=cluster1,host=h1,source=api,level=info msg=\"two hours old\" {}\n",
        now_ns() - 2 * 3600 * S
    ));
    // The trace, out of order, across cluster1 (g1) and cluster2 (g2), plus another trace.
    let trace_lines = [
        (40, "cluster1", "h1", "api", r#"msg="response sent""#),
        (5, "cluster2", "h2", "db", r#"msg="query start""#),
        (0, "cluster1", "h1", "api", r#"msg="request received""#),
        (25, "cluster2", "h2", "db", r#"msg="query done",rows=42i"#),
        (2, "cluster1", "h1", "cache", r#"msg="cache miss""#),
    ];
    for (ms, index, host, source, fields) in trace_lines {
        body.push_str(&tracelog(
            index,
            TRACE,
            host,
            source,
            fields,
            TRACE_T0 + ms * MS,
        ));
    }
    body.push_str(&tracelog(
        "cluster1",
        "trace-other",
        "h1",
        "api",
        r#"msg="other""#,
        TRACE_T0 + 3 * MS,
    ));
    let authorization = format!("Token {ADMIN}");
    search::seed(&api, &[("Authorization", &authorization)], &body);
    // A line only replica g1-a holds (as if g1-b had missed it).
    let only_a = tracelog(
        "cluster1",
        TRACE,
        "h1",
        "api",
        r#"msg="only on g1-a""#,
        TRACE_T0 + 30 * MS,
    );
    let direct = cluster.write(0, "g1db", only_a.as_bytes());
    assert_eq!(direct.status, 204, "{}", direct.text());
    Fixture { cluster, api, t0 }
}

#[test]
fn search_traces_and_logs_end_to_end() {
    let f = start();
    trace_across_groups(&f);
    trace_access_and_errors(&f);
    logs_filters_and_order(&f);
    logs_injection_is_literal(&f);
    logs_line_protocol_reparses(&f);
    logs_access_and_errors(&f);
    request_id_reaches_the_backends(&f);
    monitorctl_trace_and_logs(&f);
    let metrics = f.api.metrics();
    assert!(
        support::api::sum_metric(
            &metrics,
            "monitor_search_requests_total",
            &[("kind", "trace"), ("outcome", "ok")]
        ) >= 2.0,
        "{metrics}"
    );
    assert!(
        support::api::sum_metric(
            &metrics,
            "monitor_search_requests_total",
            &[("kind", "logs"), ("outcome", "forbidden")]
        ) >= 1.0
    );
}

fn trace_across_groups(f: &Fixture) {
    let response = f.get(&format!("/api/v1/traces/{TRACE}"), &[], Some(ADMIN));
    assert_eq!(response.status, 200, "{}", response.text());
    let trace = response.json();
    assert_eq!(
        msgs_of(&trace),
        [
            "request received",
            "cache miss",
            "query start",
            "query done",
            "only on g1-a",
            "response sent"
        ],
        "whole, once per line, oldest first: {trace}"
    );
    assert_eq!(trace["traceid"], TRACE);
    assert_eq!(trace["partial"], false);
    assert_eq!(trace["groups"], serde_json::json!(["g1", "g2"]));
    let lines = trace["lines"].as_array().unwrap();
    assert_eq!(lines[0]["time"], "2026-01-01T00:00:00.000000000Z");
    assert_eq!(lines[0]["time_ns"], TRACE_T0);
    assert_eq!(lines[0]["index"], "cluster1");
    assert_eq!(lines[0]["host"], "h1");
    assert_eq!(lines[0]["source"], "api");
    assert_eq!(lines[3]["index"], "cluster2");
    assert_eq!(lines[3]["fields"], serde_json::json!({"rows": 42}));
    assert!(lines[3]["tags"].get("traceid").is_none(), "{}", lines[3]);

    assert_eq!(trace["span"]["first"], "2026-01-01T00:00:00.000000000Z");
    assert_eq!(trace["span"]["last"], "2026-01-01T00:00:00.040000000Z");
    assert_eq!(trace["span"]["duration_ns"], 40 * MS);
    assert_eq!(trace["span"]["duration"], "40ms");
    let spans: Vec<(String, i64, i64)> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap().to_owned(),
                s["lines"].as_i64().unwrap(),
                s["duration_ns"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [
            ("api".to_owned(), 3, 40 * MS),
            ("cache".to_owned(), 1, 0),
            ("db".to_owned(), 2, 20 * MS)
        ]
    );

    // index narrows to its group; a time range narrows further.
    let response = f.get(
        &format!("/api/v1/traces/{TRACE}"),
        &[("index", "cluster2")],
        Some(ADMIN),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(msgs_of(&response.json()), ["query start", "query done"]);
    let end = (TRACE_T0 + 10 * MS).to_string();
    let response = f.get(
        &format!("/api/v1/traces/{TRACE}"),
        &[("start", "2026-01-01T00:00:00.002Z"), ("end", &end)],
        Some(ADMIN),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(msgs_of(&response.json()), ["cache miss", "query start"]);
}

fn trace_access_and_errors(f: &Fixture) {
    // A reader of cluster1 only sees the cluster1 lines of the trace.
    let response = f.get(&format!("/api/v1/traces/{TRACE}"), &[], Some(LIMITED));
    assert_eq!(response.status, 200, "{}", response.text());
    let trace = response.json();
    assert_eq!(
        msgs_of(&trace),
        [
            "request received",
            "cache miss",
            "only on g1-a",
            "response sent"
        ]
    );
    let response = f.get(
        &format!("/api/v1/traces/{TRACE}"),
        &[("index", "cluster2")],
        Some(LIMITED),
    );
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .contains("\"cluster2\"")
    );
    let response = f.get(&format!("/api/v1/traces/{TRACE}"), &[], None);
    assert_eq!(response.status, 401, "{}", response.text());

    let response = f.get("/api/v1/traces/no-such-trace", &[], Some(ADMIN));
    assert_eq!(response.status, 404, "{}", response.text());
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .contains("\"no-such-trace\""),
        "{}",
        response.text()
    );
    // An id made to break out of its literal is just an id nobody used.
    let hostile = "x' OR traceid =~ /.*/ OR traceid = 'y";
    let response = f.get(
        &format!("/api/v1/traces/{}", url_encode(hostile)),
        &[],
        Some(ADMIN),
    );
    assert_eq!(response.status, 404, "{}", response.text());

    let response = f.get(
        &format!("/api/v1/traces/{TRACE}"),
        &[("start", "last tuesday")],
        Some(ADMIN),
    );
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid start \"last tuesday\"")
    );
    let response = f.get(
        &format!("/api/v1/traces/{TRACE}"),
        &[("index", "nowhere")],
        Some(ADMIN),
    );
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.text().contains("nowhere"));
}

fn logs_filters_and_order(f: &Fixture) {
    let all = f.logs(&[]);
    let mut expected: Vec<String> = (0..TICKS).rev().map(|i| format!("tick {i}")).collect();
    expected.extend(MSGS.iter().rev().map(|m| (*m).to_owned()));
    assert_eq!(
        msgs_of(&all),
        expected,
        "the last hour, newest first, each line once (both replicas hold each)"
    );
    assert_eq!(all["limit"], 100);
    assert_eq!(all["count"], expected.len());
    let times: Vec<i64> = all["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["time_ns"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]), "{times:?}");
    let first_tick = &all["lines"][0];
    assert_eq!(first_tick["level"], "debug");
    assert_eq!(first_tick["fields"], serde_json::json!({"n": 9}));

    assert_eq!(f.msgs(&[("limit", "3")]), ["tick 9", "tick 8", "tick 7"]);
    assert_eq!(
        f.msgs(&[("host", "h1")]),
        [MSGS[4], MSGS[2], MSGS[0]],
        "the two-hour-old line of h1 is outside the default hour"
    );
    assert_eq!(
        f.msgs(&[("host", "h1"), ("start", "3h")]),
        [MSGS[4], MSGS[2], MSGS[0], "two hours old"]
    );
    assert_eq!(f.msgs(&[("source", "db")]), [MSGS[3], MSGS[2]]);
    assert_eq!(f.msgs(&[("level", "error")]), [MSGS[5], MSGS[1]]);
    assert_eq!(
        f.msgs(&[("index", "cluster2")]),
        [MSGS[5], MSGS[3], MSGS[2]]
    );
    assert_eq!(
        f.msgs(&[("index", "cluster2"), ("level", "info"), ("host", "h3")]),
        [MSGS[3]]
    );
    let from = f.t0 + 2 * S;
    let until = f.t0 + 4 * S;
    let from_text = support_rfc3339(from);
    assert_eq!(
        f.msgs(&[("start", &from_text), ("end", &until.to_string())]),
        [MSGS[3], MSGS[2], MSGS[1]],
        "start and end are inclusive, RFC 3339 or epoch ns"
    );
}

/// RFC 3339 with nanoseconds, by way of the proxy's own answer for a known line (so the test
/// does not need a date library): the time of `MSGS[1]` is t0 + 2 s.
fn support_rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(S);
    let nanos = ns.rem_euclid(S);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn logs_injection_is_literal(f: &Fixture) {
    for (needle, expected) in [
        ("'", vec![MSGS[5], MSGS[1]]),
        ("\"quote\"", vec![MSGS[1]]),
        ("\\", vec![MSGS[2]]),
        ("C:\\temp", vec![MSGS[2]]),
        ("/var/log/", vec![MSGS[3]]),
        (".*", vec![MSGS[4]]),
        ("(a|b)", vec![MSGS[4]]),
        ("[x]", vec![MSGS[4]]),
        ("x' OR '1'='1", vec![MSGS[5]]),
        (".*x", vec![]),
        ("/", vec![MSGS[3]]),
        ("' OR msg =~ /.*/ OR msg = '", vec![]),
        ("\n", vec![]),
    ] {
        assert_eq!(
            f.msgs(&[("contains", needle)]),
            expected,
            "contains {needle:?} is matched literally"
        );
    }
    // Hostile values in equality filters are literals too.
    assert!(
        f.msgs(&[("host", "h1' OR host =~ /.*/ OR host = '")])
            .is_empty()
    );
    assert!(f.msgs(&[("source", "\\")]).is_empty());
}

fn logs_line_protocol_reparses(f: &Fixture) {
    let response = f.get(
        "/api/v1/logs",
        &[("format", "lp"), ("host", "h1")],
        Some(ADMIN),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    let text = response.text();
    let parsed: Vec<_> = influxdb_line_protocol::parse_lines(&text)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(parsed.len(), 3, "{text}");
    let mut times = Vec::new();
    for line in &parsed {
        assert_eq!(line.series.measurement.as_str(), "log");
        let tags: Vec<(String, String)> = line
            .series
            .tag_set
            .as_ref()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(
            tags.contains(&("host".to_owned(), "h1".to_owned())),
            "{tags:?}"
        );
        times.push(line.timestamp.unwrap());
    }
    assert_eq!(times, [f.t0 + 5 * S, f.t0 + 3 * S, f.t0 + S]);
    let msg = |i: usize| {
        parsed[i]
            .field_set
            .iter()
            .find(|(k, _)| k.as_str() == "msg")
            .map(|(_, v)| v.to_string())
            .unwrap()
    };
    assert_eq!(msg(1), MSGS[2], "the parser unescapes what we escaped");
    assert_eq!(msg(0), MSGS[4]);
    // And influxd itself takes the output back unchanged.
    f.cluster.create_database(2, "reparsed");
    let copy = f.cluster.write(2, "reparsed", text.as_bytes());
    assert_eq!(copy.status, 204, "{}", copy.text());
    let rows = f
        .cluster
        .query_rows(2, "reparsed", "SELECT msg FROM log ORDER BY time ASC");
    let stored: Vec<&str> = rows.iter().map(|r| r[1].as_str().unwrap()).collect();
    assert_eq!(stored, [MSGS[0], MSGS[2], MSGS[4]]);
}

fn logs_access_and_errors(f: &Fixture) {
    let response = f.get("/api/v1/logs", &[("index", "cluster2")], Some(LIMITED));
    assert_eq!(response.status, 403, "{}", response.text());
    assert!(response.text().contains("cluster2"), "{}", response.text());
    let response = f.get("/api/v1/logs", &[], Some(LIMITED));
    assert_eq!(response.status, 200, "{}", response.text());
    let value = response.json();
    let indexes: std::collections::BTreeSet<&str> = value["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["index"].as_str().unwrap())
        .collect();
    assert_eq!(indexes.into_iter().collect::<Vec<_>>(), ["cluster1"]);
    assert_eq!(value["count"], 3 + TICKS);
    // The limit counts only readable lines.
    let response = f.get("/api/v1/logs", &[("limit", "11")], Some(LIMITED));
    let msgs = msgs_of(&response.json());
    assert_eq!(msgs.len(), 11);
    assert_eq!(msgs[10], MSGS[4]);

    for (params, name) in [
        (vec![("start", "noon")], "start"),
        (vec![("end", "2026-02-30T00:00:00Z")], "end"),
        (vec![("limit", "many")], "limit"),
        (vec![("limit", "0")], "limit"),
        (vec![("format", "xml")], "format"),
    ] {
        let response = f.get("/api/v1/logs", &params, Some(ADMIN));
        assert_eq!(response.status, 400, "{params:?}: {}", response.text());
        let error = response.json()["error"].as_str().unwrap().to_owned();
        assert!(error.starts_with(&format!("invalid {name} ")), "{error}");
    }
    let response = f.get(
        "/api/v1/logs",
        &[("start", "1h"), ("end", "2h")],
        Some(ADMIN),
    );
    assert_eq!(response.status, 400, "{}", response.text());
    assert!(response.text().contains("after end"));
    // A huge limit is lowered to the configured cap.
    assert_eq!(f.logs(&[("limit", "99999999")])["limit"], 10_000);
}

fn request_id_reaches_the_backends(f: &Fixture) {
    let response = f.get(&format!("/api/v1/traces/{TRACE}"), &[], Some(ADMIN));
    assert_eq!(response.header("x-request-id"), Some("search-rid-7d41"));
    let logged = (0..3).any(|i| {
        f.cluster
            .log(i)
            .lines()
            .any(|l| l.contains("/query") && l.contains("search-rid-7d41"))
    });
    assert!(logged, "{}", tail(&f.cluster.log(1), 20));
}

fn monitorctl_trace_and_logs(f: &Fixture) {
    let (out, _) = f.ctl(&["trace", TRACE]);
    assert!(
        out.starts_with(&format!(
            "trace {TRACE}: 6 line(s) from 3 source(s) over 40ms (2026-01-01T00:00:00.000000000Z .. 2026-01-01T00:00:00.040000000Z)\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(
            "db      2      2026-01-01T00:00:00.005000000Z  2026-01-01T00:00:00.025000000Z  20ms\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "2026-01-01T00:00:00.025000000Z  cluster2  h2    db      -      query done  [rows=42]\n"
        ),
        "{out}"
    );
    let (out, _) = f.ctl(&["trace", TRACE, "--json"]);
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(value["count"], 6);

    let (out, _) = f.ctl(&["logs", "--host", "h1", "--since", "1h"]);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 5, "{out}");
    assert!(rows[0].starts_with("TIME  "), "{out}");
    let msg_column = rows[0].find("MSG").unwrap();
    assert_eq!(&rows[1][msg_column..], MSGS[4], "{out}");
    assert_eq!(&rows[3][msg_column..], MSGS[0], "{out}");
    assert!(rows[2].contains(" cluster2 "), "{out}");
    assert!(
        rows[4].starts_with("3 line(s), newest first (limit 100"),
        "{out}"
    );

    let (out, _) = f.ctl(&["logs", "--contains", "/var/log", "--format", "lp"]);
    let parsed: Vec<_> = influxdb_line_protocol::parse_lines(&out)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(parsed.len(), 1, "{out}");
    let (out, _) = f.ctl(&["logs", "--index", "cluster1", "--limit", "2", "--json"]);
    let value: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(msgs_of(&value), ["tick 9", "tick 8"]);
}
