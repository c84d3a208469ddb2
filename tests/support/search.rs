//! Setup shared by the search API tests (`search_api.rs`, `search_faults.rs`, each including it
//! with `#[path = "support/search.rs"] mod search;` next to `mod support;`): three in-memory
//! influxd, two shard groups sharing the middle node (each group in its own backend database
//! through the replicas' `database` mapping), a real `monitor-api` over them, and the seeding of
//! trace and log lines through the proxy to every replica.
//!
//! It must never write around the proxy (a test that wants a line on one replica only writes it
//! itself) and never leaves processes behind (the cluster and proxy fixtures stop them on `Drop`).
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;

use crate::support::InfluxCluster;
use crate::support::api::{FAST_TIMINGS, MonitorApi};

/// 2026-01-01T00:00:00Z: trace lines live in the past, beyond any default range.
pub const TRACE_T0: i64 = 1_767_225_600_000_000_000;
pub const MS: i64 = 1_000_000;
pub const S: i64 = 1_000_000_000;

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// The proxy config: g1 on nodes 0 and 1 (database `g1db`), g2 on nodes 1 and 2 (`g2db`),
/// indexes `cluster1` -> g1 and `cluster2` -> g2 plus `extra_indexes` (lines such as
/// `"  secret: g2\n"`), then `access` (`tokens:` or `open_access: true`) and fast timings.
pub fn config(cluster: &InfluxCluster, extra_indexes: &str, access: &str) -> String {
    format!(
        r#"groups:
  g1:
    replicas:
      - url: "{n0}"
        name: "g1-a"
        database: "g1db"
      - url: "{n1}"
        name: "g1-b"
        database: "g1db"
  g2:
    replicas:
      - url: "{n1}"
        name: "g2-a"
        database: "g2db"
      - url: "{n2}"
        name: "g2-b"
        database: "g2db"
indexes:
  cluster1: g1
  cluster2: g2
{extra_indexes}{access}
{FAST_TIMINGS}"#,
        n0 = cluster.url(0),
        n1 = cluster.url(1),
        n2 = cluster.url(2),
    )
}

/// Three in-memory influxd (with `influxd_env`, e.g. `INFLUXDB_HTTP_LOG_ENABLED`) and a
/// `monitor-api` over them with [`config`].
pub fn start(
    influxd_env: &[(&str, &str)],
    extra_indexes: &str,
    access: &str,
) -> (InfluxCluster, MonitorApi) {
    let cluster = InfluxCluster::start_in_memory_with_env(3, influxd_env);
    let api = MonitorApi::start(&config(&cluster, extra_indexes, access));
    (cluster, api)
}

/// One `tracelog` line (with its line end): `fields` as written in line protocol.
pub fn tracelog(
    index: &str,
    traceid: &str,
    host: &str,
    source: &str,
    fields: &str,
    ns: i64,
) -> String {
    format!("tracelog,index={index},traceid={traceid},host={host},source={source} {fields} {ns}\n")
}

/// Writes `body` through the proxy with `consistency=all` (and `headers`), asserts the 204 and
/// waits until every replica holds it.
pub fn seed(api: &MonitorApi, headers: &[(&str, &str)], body: &str) {
    let response = api
        .try_write(
            "monitor",
            &[("consistency", "all")],
            headers,
            body.as_bytes(),
        )
        .expect("write through the proxy");
    assert_eq!(response.status, 204, "{}", response.text());
    api.wait_drained(Duration::from_secs(60));
}

/// The `msg` of every line of a search answer, in answer order.
pub fn msgs(value: &Value) -> Vec<String> {
    value["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines in {value}"))
        .iter()
        .map(|l| l["msg"].as_str().unwrap_or_default().to_owned())
        .collect()
}
