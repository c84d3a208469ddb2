//! Clients that nobody here wrote, writing through a real `monitor-api` into real backends
//! (issue 3): the Python `influxdb` (v1) and `influxdb-client` (v2) packages, `influx -import`,
//! curl with a gzip body, and a group of v2-dialect replicas (VictoriaMetrics) beside a group of
//! influxd 1.6.7 replicas. Every test reads the data back from EVERY replica of the group the
//! `index` tag routes to, directly (not through the proxy), and checks the other group got none.
//!
//! These tests must never skip: a missing client is a failure saying how to install it. Each test
//! starts its own servers and proxy, so they share nothing mutable and run in parallel.

mod support;

#[path = "support/clients.rs"]
mod clients;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use clients::{VictoriaMetrics, expect_success, v1_replicas_yaml};
use serde_json::{Value, json};
use support::InfluxCluster;
use support::api::MonitorApi;

const V1_CLIENT: &str = include_str!("clients/influxdb_v1_client.py");
const V2_CLIENT: &str = include_str!("clients/influxdb_v2_client.py");

/// Recent whole seconds: VictoriaMetrics keeps one month, influxd's autogen everything.
fn base_seconds() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    now.as_secs() as i64 - 60
}

/// Groups g1 (influxd nodes 0, 1) and g2 (nodes 2, 3); index c1 -> g1, c2 -> g2, no default
/// group. `consistency: all`: a 204 means every replica acknowledged.
fn two_group_config(cluster: &InfluxCluster, access: &str) -> String {
    let urls = cluster.urls();
    format!(
        "consistency: all\ngroups:\n  g1:\n    replicas:\n{}  g2:\n    replicas:\n{}indexes:\n  c1: g1\n  c2: g2\n{access}",
        v1_replicas_yaml(&urls[0..2]),
        v1_replicas_yaml(&urls[2..4]),
    )
}

const OPEN: &str = "open_access: true\n";

/// Tokens: `writer-token` may write c1 and c2.
const TOKENS: &str =
    "tokens:\n  - token: \"writer-token\"\n    name: \"clients\"\n    write: [\"c1\", \"c2\"]\n";

fn group_of(index: &str) -> [usize; 2] {
    match index {
        "c1" => [0, 1],
        "c2" => [2, 3],
        other => panic!("no group for {other}"),
    }
}

fn other_group(index: &str) -> [usize; 2] {
    match index {
        "c1" => group_of("c2"),
        _ => group_of("c1"),
    }
}

/// Asserts that `q` gives exactly `expected` rows (as JSON) on every replica of `index`'s group,
/// and that the other group holds no row of that index.
fn assert_on_every_replica(
    cluster: &InfluxCluster,
    api: &MonitorApi,
    db: &str,
    index: &str,
    q: &str,
    expected: &[Value],
) {
    for node in group_of(index) {
        let rows: Vec<Value> = cluster
            .query_rows(node, db, q)
            .into_iter()
            .map(|row| normalize(Value::Array(row)))
            .collect();
        let expected: Vec<Value> = expected.iter().cloned().map(normalize).collect();
        assert_eq!(
            rows,
            expected,
            "{q} on replica {node} ({}) of {index}'s group; proxy log:\n{}",
            cluster.url(node),
            api.log()
        );
    }
    let stray = format!("SELECT count(*) FROM /.*/ WHERE \"index\" = '{index}'");
    for node in other_group(index) {
        let answer = cluster.query(node, db, &stray);
        assert!(
            answer["results"][0]["series"].is_null(),
            "index {index} leaked to node {node} of the other group: {answer}"
        );
    }
}

/// Numbers compared by value: influxd's JSON writes the float 12.0 as `12`. Whole floats become
/// integers; integers stay exact (nanosecond timestamps do not fit an f64).
fn normalize(value: Value) -> Value {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                json!(f as i64)
            } else {
                Value::Number(n)
            }
        }
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        other => other,
    }
}

/// The point both Python scripts write with characters a line-protocol writer must escape.
fn assert_tricky_point(
    cluster: &InfluxCluster,
    api: &MonitorApi,
    db: &str,
    index: &str,
    base: i64,
) {
    let expected = [json!([
        base * 1_000_000_000,
        r"C:\dir with space,comma=eq",
        r#"say "hi" \ back\slash, ünï=ok"#,
        -7
    ])];
    let q = "SELECT path, msg, n FROM \"we ird,meas\"";
    assert_on_every_replica(cluster, api, db, index, q, &expected);
}

fn cpu_rows(index_base: i64, count: i64) -> Vec<Value> {
    // ORDER BY time ascending: the oldest point (largest i) first
    (0..count)
        .rev()
        .map(|i| {
            json!([
                (index_base - i) * 1_000_000_000,
                format!("h{i}"),
                i,
                i as f64 * 1.5
            ])
        })
        .collect()
}

#[test]
fn python_influxdb_v1_client_writes_land_on_every_replica() {
    let cluster = InfluxCluster::start_in_memory(4);
    let api = MonitorApi::start(&two_group_config(&cluster, TOKENS));
    let base = base_seconds();
    let version = clients::run_python(
        V1_CLIENT,
        &[
            &api.port().to_string(),
            "pyv1",
            "writer-token",
            &base.to_string(),
            &cluster.http_port(0).to_string(),
        ],
    );
    assert!(
        version.trim().starts_with('1'),
        "ping() should report an InfluxDB 1.x version, got {version:?}"
    );

    let cpu = "SELECT host, n, usage FROM cpu WHERE \"index\" = '%' ORDER BY time";
    for (index, count) in [("c1", 10), ("c2", 5)] {
        let q = cpu.replace('%', index);
        assert_on_every_replica(&cluster, &api, "pyv1", index, &q, &cpu_rows(base, count));
        let mem: Vec<Value> = (0..count)
            .rev()
            .map(|i| json!([(base - i) * 1_000_000_000, i * 10, "x y"]))
            .collect();
        let q = format!("SELECT free, note FROM mem WHERE \"index\" = '{index}' ORDER BY time");
        assert_on_every_replica(&cluster, &api, "pyv1", index, &q, &mem);
    }
    // points without a time: the proxy stamps them once, so every replica holds the same time
    let stamped_after = base_seconds() + 60;
    let q = "SELECT k, v FROM stamp ORDER BY time";
    let stamps = cluster.query_rows(0, "pyv1", q);
    assert_eq!(stamps.len(), 3, "unstamped points on replica 0: {stamps:?}");
    for row in &stamps {
        let ns = row[0].as_i64().expect("time");
        assert!(
            ns >= (stamped_after - 600) * 1_000_000_000,
            "proxy-assigned time {ns} is not recent"
        );
    }
    let stamps: Vec<Value> = stamps.into_iter().map(Value::Array).collect();
    assert_on_every_replica(&cluster, &api, "pyv1", "c1", q, &stamps);

    // influxd 1.x keeps a tag value's `\\` as two backslashes, and this client doubles every
    // backslash in tags: so the reference is what influxd stores from this client directly
    let q = "SELECT path, msg, n FROM \"we ird,meas\"";
    let direct: Vec<Value> = cluster
        .query_rows(0, "direct", q)
        .into_iter()
        .map(Value::Array)
        .collect();
    assert_eq!(
        direct.len(),
        1,
        "direct write of the tricky point: {direct:?}"
    );
    assert_eq!(direct[0][1], json!(r"C:\\dir with space,comma=eq"));
    assert_eq!(direct[0][2], json!(r#"say "hi" \ back\slash, ünï=ok"#));
    assert_on_every_replica(&cluster, &api, "pyv1", "c1", q, &direct);

    let disk: Vec<Value> = (0..4)
        .rev()
        .map(|i| json!([(base - i) * 1_000_000_000, 0.25 * i as f64]))
        .collect();
    assert_on_every_replica(
        &cluster,
        &api,
        "pyv1",
        "c1",
        "SELECT used FROM autogen.disk ORDER BY time",
        &disk,
    );
}

#[test]
fn python_influxdb_v2_client_writes_land_on_v1_replicas() {
    let cluster = InfluxCluster::start_in_memory(4);
    // the v2 client authenticates with `Authorization: Token x`
    let access = "tokens:\n  - token: \"x\"\n    write: [\"*\"]\n";
    let api = MonitorApi::start(&two_group_config(&cluster, access));
    let base = base_seconds();
    let out = clients::run_python(V2_CLIENT, &[&api.url(), "x", "pyv2", &base.to_string()]);
    assert_eq!(out.trim(), "ok");

    for (index, count) in [("c1", 10), ("c2", 5)] {
        let q = format!(
            "SELECT host, n, usage FROM autogen.cpu WHERE \"index\" = '{index}' ORDER BY time"
        );
        assert_on_every_replica(&cluster, &api, "pyv2", index, &q, &cpu_rows(base, count));
        let mem: Vec<Value> = (0..count)
            .map(|i| json!([base * 1_000_000_000 + i * 1001, format!("h{i}"), i * 10]))
            .collect();
        let q = format!("SELECT host, free FROM mem WHERE \"index\" = '{index}' ORDER BY time");
        assert_on_every_replica(&cluster, &api, "pyv2", index, &q, &mem);
    }

    let net: Vec<Value> = (0..3)
        .map(|i| json!([(base * 1000 + i) * 1_000_000, 100 + i]))
        .collect();
    assert_on_every_replica(
        &cluster,
        &api,
        "pyv2",
        "c1",
        "SELECT bytes FROM net ORDER BY time",
        &net,
    );

    assert_tricky_point(&cluster, &api, "pyv2", "c2", base);

    // a token the proxy does not know is refused, and nothing lands
    let refused = Command::new(clients::python_clients_venv().join("bin/python"))
        .args(["-c", V2_CLIENT, &api.url(), "wrong", "refused", "0"])
        .output()
        .expect("run python");
    assert!(
        !refused.status.success(),
        "an unknown token must be refused"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("401") || stderr.contains("403"),
        "expected an auth error, got:\n{stderr}"
    );
    for node in 0..4 {
        let dbs = cluster.query(node, "", "SHOW DATABASES");
        assert!(
            !dbs.to_string().contains("\"refused\""),
            "refused write created a database on node {node}: {dbs}"
        );
    }
}

#[test]
fn influx_cli_import_lands_on_every_replica() {
    let cluster = InfluxCluster::start_in_memory(4);
    let api = MonitorApi::start(&two_group_config(&cluster, TOKENS));
    let base = base_seconds();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut file = String::from(
        "# DML\n# CONTEXT-DATABASE: imported\n# CONTEXT-RETENTION-POLICY: autogen\n\n",
    );
    for (index, count) in [("c1", 10), ("c2", 5)] {
        for i in 0..count {
            file.push_str(&format!(
                "cpu,index={index},host=h{i} usage={},n={i}i {}\n",
                i as f64 * 1.5,
                base - i
            ));
        }
    }
    file.push_str("# a comment line in the middle\n");
    file.push_str(&format!("load,index=c1 avg=0.5 {base}\n"));
    let path = dir.path().join("import.txt");
    std::fs::write(&path, &file).expect("write import file");

    let said = influx_import(&api, &path, Some(("importer", "writer-token")));
    assert!(
        said.contains("Processed 16 inserts") && said.contains("Failed 0 inserts"),
        "influx -import reported:\n{said}"
    );

    for (index, count) in [("c1", 10), ("c2", 5)] {
        let q = format!("SELECT host, n, usage FROM cpu WHERE \"index\" = '{index}' ORDER BY time");
        assert_on_every_replica(
            &cluster,
            &api,
            "imported",
            index,
            &q,
            &cpu_rows(base, count),
        );
    }
    assert_on_every_replica(
        &cluster,
        &api,
        "imported",
        "c1",
        "SELECT avg FROM load",
        &[json!([base * 1_000_000_000, 0.5])],
    );

    // without the token the proxy refuses, the CLI says so, and nothing lands
    let anonymous = dir.path().join("anonymous.txt");
    let lines = format!("# DML\n# CONTEXT-DATABASE: imported\nanon,index=c1 v=1 {base}\n");
    std::fs::write(&anonymous, lines).expect("write import file");
    let output = Command::new(clients::influx_cli())
        .args(["-import", "-path"])
        .arg(&anonymous)
        .args(["-host", "127.0.0.1", "-port", &api.port().to_string()])
        .args(["-precision", "s"])
        .output()
        .expect("run influx");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success()
            && said.contains("1 point was not inserted")
            && said.contains("authorization failed"),
        "an import without credentials must fail ({}):\n{said}",
        output.status
    );
    for node in 0..4 {
        let stray = cluster.query(node, "imported", "SELECT count(*) FROM anon");
        assert!(
            stray["results"][0]["series"].is_null(),
            "refused import landed on node {node}: {stray}"
        );
    }
}

/// `influx -import -path FILE -host 127.0.0.1 -port <proxy> -precision s`; returns what it said.
/// With `credentials` (user, token) the CLI sends them as InfluxDB 1.x credentials.
fn influx_import(
    api: &MonitorApi,
    path: &std::path::Path,
    credentials: Option<(&str, &str)>,
) -> String {
    let output = influx_import_output(api, path, credentials);
    expect_success("influx -import", &output);
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn influx_import_output(
    api: &MonitorApi,
    path: &std::path::Path,
    credentials: Option<(&str, &str)>,
) -> std::process::Output {
    let mut command = Command::new(clients::influx_cli());
    if let Some((user, token)) = credentials {
        command.args(["-username", user, "-password", token]);
    }
    command
        .args(["-import", "-path"])
        .arg(path)
        .args(["-host", "127.0.0.1", "-port", &api.port().to_string()])
        .args(["-precision", "s"])
        .output()
        .expect("run influx")
}

/// An export from another server names its retention policy; the DDL that would create it cannot
/// run through the proxy (no query path), so influxd answers "retention policy not found" (a 500).
/// Those lines must go to the dead letters, not block the group: later imports still land. The
/// importer is told, as influxd itself would tell it (consistency waits for the replicas).
#[test]
fn influx_import_into_a_missing_retention_policy_does_not_block_the_group() {
    let cluster = InfluxCluster::start_in_memory(4);
    let api = MonitorApi::start(&two_group_config(&cluster, OPEN));
    let base = base_seconds();
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing-rp.txt");
    std::fs::write(
        &missing,
        format!(
            "# DML\n# CONTEXT-DATABASE: exported\n# CONTEXT-RETENTION-POLICY: oneday\n\
             cpu,index=c1 v=1 {base}\ncpu,index=c1 v=2 {}\n",
            base - 1
        ),
    )
    .expect("write import file");
    let refused = influx_import_output(&api, &missing, None);
    let said = String::from_utf8_lossy(&refused.stdout).into_owned()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("retention policy not found: oneday")
            && said.contains("2 points were not inserted"),
        "influx -import into a missing retention policy reported:\n{said}"
    );

    let later = dir.path().join("later.txt");
    std::fs::write(
        &later,
        format!(
            "# DML\n# CONTEXT-DATABASE: exported\n# CONTEXT-RETENTION-POLICY: autogen\n\
             after,index=c1 v=3 {base}\nafter,index=c2 v=4 {base}\n"
        ),
    )
    .expect("write import file");
    let said = influx_import(&api, &later, None);
    assert!(
        said.contains("Processed 2 inserts") && said.contains("Failed 0 inserts"),
        "influx -import after the refused one reported:\n{said}\nproxy log:\n{}",
        api.log()
    );
    for (index, v) in [("c1", 3), ("c2", 4)] {
        let q = format!("SELECT v FROM after WHERE \"index\" = '{index}'");
        let expected = [json!([base * 1_000_000_000, v])];
        assert_on_every_replica(&cluster, &api, "exported", index, &q, &expected);
    }

    // every replica of g1 dead-lettered both lines with the reason
    let letters = api.data_dir().join("dead-letter").join("g1");
    let files: Vec<_> = std::fs::read_dir(&letters)
        .unwrap_or_else(|e| panic!("{}: {e}; proxy log:\n{}", letters.display(), api.log()))
        .map(|entry| entry.expect("dir entry").path())
        .collect();
    assert_eq!(
        files.len(),
        2,
        "one dead-letter file per g1 replica: {files:?}"
    );
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read dead letters");
        assert_eq!(
            text.matches("retention_policy_not_found").count(),
            2,
            "{}:\n{text}",
            file.display()
        );
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

/// `curl --data-binary @file.gz -H 'Content-Encoding: gzip' URL`; returns (HTTP status, body).
fn curl_gzip(url: &str, gz: &std::path::Path, extra_header: Option<&str>) -> (String, String) {
    let mut command = clients::curl();
    command
        .args([
            "-sS",
            "-w",
            "\n%{http_code}",
            "-H",
            "Content-Encoding: gzip",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", gz.display()));
    if let Some(header) = extra_header {
        command.args(["-H", header]);
    }
    let output = command.arg(url).output().expect("run curl");
    expect_success("curl", &output);
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_owned(), body.to_owned())
}

#[test]
fn curl_gzip_bodies_land_on_every_replica() {
    let cluster = InfluxCluster::start_in_memory(4);
    let api = MonitorApi::start(&two_group_config(&cluster, OPEN));
    let base_ms = base_seconds() * 1000;
    let dir = tempfile::tempdir().expect("temp dir");

    // 2,000 lines so the compressed body is clearly not the raw one
    let mut v1_body = String::new();
    for i in 0..2000i64 {
        let index = if i % 2 == 0 { "c1" } else { "c2" };
        v1_body.push_str(&format!(
            "req,index={index},path=/p{} ms={i}i {}\n",
            i % 7,
            base_ms - i
        ));
    }
    // two gzip members back to back, as `gzip -c part >> file.gz` makes
    let (first, second) = v1_body.split_at(v1_body.len() / 2);
    let split = first.rfind('\n').map_or(0, |n| n + 1);
    let (first, second) = (&v1_body[..split], format!("{}{second}", &first[split..]));
    let mut members = gzip(first.as_bytes());
    members.extend(gzip(second.as_bytes()));
    let v1_gz = dir.path().join("v1.lp.gz");
    std::fs::write(&v1_gz, members).expect("write gz");
    let (status, body) = curl_gzip(
        &format!("{}/write?db=curled&precision=ms", api.url()),
        &v1_gz,
        None,
    );
    assert_eq!(status, "204", "v1 gzip write answered: {body}");

    let v2_body = format!("ver,index=c2 v=2i {base_ms}\nver,index=c1 v=1i {base_ms}\n");
    let v2_gz = dir.path().join("v2.lp.gz");
    std::fs::write(&v2_gz, gzip(v2_body.as_bytes())).expect("write gz");
    let (status, body) = curl_gzip(
        &format!(
            "{}/api/v2/write?org=any&bucket=curled/autogen&precision=ms",
            api.url()
        ),
        &v2_gz,
        Some("Authorization: Token whatever"),
    );
    assert_eq!(status, "204", "v2 gzip write answered: {body}");

    // chunked upload (no Content-Length), as streaming agents send
    let chunked_gz = dir.path().join("chunked.lp.gz");
    let chunked_body = format!("chunk,index=c1 v=7i {base_ms}\nchunk,index=c2 v=8i {base_ms}\n");
    std::fs::write(&chunked_gz, gzip(chunked_body.as_bytes())).expect("write gz");
    let (status, body) = curl_gzip(
        &format!("{}/write?db=curled&precision=ms", api.url()),
        &chunked_gz,
        Some("Transfer-Encoding: chunked"),
    );
    assert_eq!(status, "204", "chunked gzip write answered: {body}");

    let head = clients::curl()
        .args(["-sS", "-I"])
        .arg(format!("{}/ping", api.url()))
        .output()
        .expect("run curl");
    expect_success("curl -I /ping", &head);
    let head = String::from_utf8_lossy(&head.stdout).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 204") && head.contains("x-influxdb-version: 1."),
        "HEAD /ping answered:\n{head}"
    );

    for (index, parity) in [("c1", 0), ("c2", 1)] {
        let q = format!("SELECT count(ms), sum(ms) FROM req WHERE \"index\" = '{index}'");
        let sum: i64 = (0..2000).filter(|i| i % 2 == parity).sum();
        assert_on_every_replica(
            &cluster,
            &api,
            "curled",
            index,
            &q,
            &[json!([0, 1000, sum])],
        );
        let q = format!("SELECT v FROM chunk WHERE \"index\" = '{index}'");
        let v = if index == "c1" { 7 } else { 8 };
        assert_on_every_replica(
            &cluster,
            &api,
            "curled",
            index,
            &q,
            &[json!([base_ms * 1_000_000, v])],
        );
        let q = format!("SELECT v FROM ver WHERE \"index\" = '{index}'");
        let v = if index == "c1" { 1 } else { 2 };
        assert_on_every_replica(
            &cluster,
            &api,
            "curled",
            index,
            &q,
            &[json!([base_ms * 1_000_000, v])],
        );
    }
    let first = format!(
        "SELECT path, ms FROM req WHERE \"index\" = 'c1' AND time = {}ms",
        base_ms
    );
    assert_on_every_replica(
        &cluster,
        &api,
        "curled",
        "c1",
        &first,
        &[json!([base_ms * 1_000_000, "/p0", 0])],
    );
}

/// Labels of a VictoriaMetrics export row without `__name__`.
fn labels(row: &Value) -> Value {
    let mut metric = row["metric"].clone();
    if let Some(map) = metric.as_object_mut() {
        map.remove("__name__");
    }
    metric
}

#[test]
fn v2_dialect_group_on_victoria_metrics_beside_influxd_group() {
    let cluster = InfluxCluster::start_in_memory(2);
    let vms = [VictoriaMetrics::start(), VictoriaMetrics::start()];
    let v2_replicas: String = vms
        .iter()
        .map(|vm| {
            format!(
                "      - url: \"{}\"\n        dialect: v2\n        org: \"monitor\"\n        token: \"vm-token\"\n        bucket: \"metrics\"\n",
                vm.url()
            )
        })
        .collect();
    let config = format!(
        "consistency: all\ngroups:\n  g1:\n    replicas:\n{}  g2:\n    replicas:\n{v2_replicas}indexes:\n  c1: g1\n  c2: g2\n{OPEN}",
        v1_replicas_yaml(&cluster.urls())
    );
    let api = MonitorApi::start(&config);
    let base = base_seconds();

    let mut body = String::new();
    for i in 0..6i64 {
        body.push_str(&format!(
            "cpu,index=c1,host=h{i} usage={}.5,n={i}i {}\n",
            i,
            base - i
        ));
        body.push_str(&format!(
            "cpu,index=c2,host=h{i} usage={}.5,n={i}i {}\n",
            i,
            base - i
        ));
    }
    body.push_str(&format!("disk,index=c2,dev=sda used=0.75 {base}\n"));
    let response = support::http_post(api.port(), "/write?db=mixed&precision=s", body.as_bytes());
    assert_eq!(response.status, 204, "write answered: {}", response.text());
    // v2 in, v2 out: the v2 endpoint with bucket db/rp and microseconds
    let micros = base * 1_000_000 + 250_000;
    let response = support::http_request(
        std::net::SocketAddr::from(([127, 0, 0, 1], api.port())),
        "POST",
        "/api/v2/write?org=o&bucket=mixed/autogen&precision=us",
        &[("Authorization", "Token anything")],
        format!("net,index=c2 bytes=5i {micros}\nnet,index=c1 bytes=6i {micros}\n").as_bytes(),
    )
    .expect("POST /api/v2/write");
    assert_eq!(
        response.status,
        204,
        "v2 write answered: {}",
        response.text()
    );
    // minutes: the v2 write API has no such precision, so the proxy must convert for g2
    let minute = base / 60;
    let body = format!("slow,index=c2 v=1i {minute}\nslow,index=c1 v=1i {minute}\n");
    let response = support::http_post(api.port(), "/write?db=mixed&precision=m", body.as_bytes());
    assert_eq!(response.status, 204, "write answered: {}", response.text());

    // g1: influxd replicas
    let influx_rows: Vec<Value> = (0..6)
        .rev()
        .map(|i| {
            json!([
                (base - i) * 1_000_000_000,
                format!("h{i}"),
                i,
                i as f64 + 0.5
            ])
        })
        .collect();
    for node in 0..2 {
        let rows: Vec<Value> = cluster
            .query_rows(
                node,
                "mixed",
                "SELECT host, n, usage FROM cpu ORDER BY time",
            )
            .into_iter()
            .map(Value::Array)
            .collect();
        assert_eq!(
            rows,
            influx_rows,
            "influxd replica {node}; proxy log:\n{}",
            api.log()
        );
        let net = cluster.query_rows(node, "mixed", "SELECT bytes FROM net");
        assert_eq!(
            net,
            vec![vec![json!(micros * 1000), json!(6)]],
            "v2-endpoint line on influxd replica {node}"
        );
        let slow = cluster.query_rows(node, "mixed", "SELECT v FROM slow");
        assert_eq!(
            slow,
            vec![vec![json!(minute * 60_000_000_000), json!(1)]],
            "minute-precision line on influxd replica {node}"
        );
        let stray = cluster.query(node, "mixed", "SELECT count(*) FROM disk");
        assert!(
            stray["results"][0]["series"].is_null(),
            "index c2 reached influxd node {node}: {stray}"
        );
    }

    // g2: both VictoriaMetrics replicas, names measurement_field, tags as labels, ms timestamps
    for (n, vm) in vms.iter().enumerate() {
        let rows = vm.wait_for_series("{index=\"c2\"}", 15);
        let mut got: Vec<(String, Value, Vec<Value>, Vec<Value>)> = rows
            .iter()
            .map(|row| {
                (
                    row["metric"]["__name__"].as_str().unwrap_or("").to_owned(),
                    labels(row),
                    normalize(row["values"].clone())
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                    row["timestamps"].as_array().cloned().unwrap_or_default(),
                )
            })
            .collect();
        got.sort_by(|a, b| (&a.0, a.1.to_string()).cmp(&(&b.0, b.1.to_string())));
        let mut expected = Vec::new();
        for i in 0..6i64 {
            let labels = json!({"index": "c2", "host": format!("h{i}")});
            let ts = vec![json!((base - i) * 1000)];
            expected.push((
                "cpu_n".to_owned(),
                labels.clone(),
                vec![json!(i)],
                ts.clone(),
            ));
            expected.push((
                "cpu_usage".to_owned(),
                labels,
                vec![json!(i as f64 + 0.5)],
                ts,
            ));
        }
        expected.push((
            "disk_used".to_owned(),
            json!({"index": "c2", "dev": "sda"}),
            vec![json!(0.75)],
            vec![json!(base * 1000)],
        ));
        expected.push((
            "net_bytes".to_owned(),
            json!({"index": "c2"}),
            vec![json!(5)],
            vec![json!(micros / 1000)],
        ));
        expected.push((
            "slow_v".to_owned(),
            json!({"index": "c2"}),
            vec![json!(1)],
            vec![json!(minute * 60_000)],
        ));
        expected.sort_by(|a, b| (&a.0, a.1.to_string()).cmp(&(&b.0, b.1.to_string())));
        assert_eq!(
            got,
            expected,
            "VictoriaMetrics replica {n} ({}); proxy log:\n{}",
            vm.url(),
            api.log()
        );
        let stray = vm.export("{index=\"c1\"}");
        assert!(
            stray.is_empty(),
            "index c1 reached VictoriaMetrics {n}: {stray:?}"
        );
    }
}
