//! Invariants 1 and 2 of the write path under faults, with real processes: a replica killed
//! (`kill -9`) or hung (`SIGSTOP`) during a sustained write, and the proxy itself killed while a
//! replica is down. After recovery every replica must hold every acknowledged line, and all
//! replicas the same lines, checked by counting each batch's series on each influxd directly.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use support::api::{FAST_TIMINGS, MonitorApi, one_group_yaml, tail};
use support::{InfluxCluster, wait_for};

const LINES_PER_BATCH: usize = 500;
const DRAIN: Duration = Duration::from_secs(120);
const PROGRESS: Duration = Duration::from_secs(90);

/// One batch: its own series (`batch=bNNNN`), `LINES_PER_BATCH` points with unique timestamps.
fn batch_body(batch: usize) -> String {
    let mut body = String::with_capacity(LINES_PER_BATCH * 64);
    for i in 0..LINES_PER_BATCH {
        let ts = 1_600_000_000_000_000_000u64 + (batch * LINES_PER_BATCH + i) as u64;
        body.push_str(&format!("w,index=cluster1,batch=b{batch:04} v={i}i {ts}\n"));
    }
    body
}

fn batch_name(batch: usize) -> String {
    format!("b{batch:04}")
}

/// What a writer thread saw, per batch.
#[derive(Debug, Default)]
struct WriteLog {
    /// Answered 204.
    acked: Vec<usize>,
    /// Answered something else (status and body) or not answered at all (status 0).
    failed: Vec<(usize, u16, String)>,
}

/// A thread writing batches `first..first+count` one after another.
struct Writer {
    acked: Arc<AtomicUsize>,
    handle: JoinHandle<WriteLog>,
}

impl Writer {
    /// Starts writing to `port`; with `stop_on_connection_error` the first connection failure
    /// ends the run (a killed proxy), otherwise it is recorded and the writer goes on.
    fn start(
        port: u16,
        db: &'static str,
        consistency: &'static str,
        first: usize,
        count: usize,
        stop_on_connection_error: bool,
    ) -> Writer {
        let acked = Arc::new(AtomicUsize::new(0));
        let acked_in = acked.clone();
        let handle = std::thread::spawn(move || {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let path = format!(
                "/write?{}",
                support::query_string(&[("db", db), ("consistency", consistency)])
            );
            let mut log = WriteLog::default();
            for batch in first..first + count {
                let body = batch_body(batch);
                match support::http_request(addr, "POST", &path, &[], body.as_bytes()) {
                    Ok(response) if response.status == 204 => {
                        log.acked.push(batch);
                        acked_in.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(response) => log.failed.push((batch, response.status, response.text())),
                    Err(error) => {
                        log.failed.push((batch, 0, error.to_string()));
                        if stop_on_connection_error {
                            break;
                        }
                    }
                }
            }
            log
        });
        Writer { acked, handle }
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until at least `n` batches were acknowledged.
    fn wait_acked(&self, n: usize, api: &MonitorApi) {
        let reached = wait_for(PROGRESS, || (self.acked() >= n).then_some(()));
        assert!(
            reached.is_some(),
            "only {} batches acknowledged, waited for {n}; /health: {}\n{}",
            self.acked(),
            api.health(),
            tail(&api.log(), 30)
        );
    }

    fn finish(self) -> WriteLog {
        self.handle.join().expect("writer thread panicked")
    }
}

/// Points per batch on node `i`.
fn stored_batches(cluster: &InfluxCluster, i: usize, db: &str) -> BTreeMap<String, u64> {
    cluster.count_by_tag(i, db, "w", "v", "batch")
}

/// Every acknowledged batch is complete on every replica, replicas hold the same batches, and
/// a batch is never stored in part.
fn assert_converged(cluster: &InfluxCluster, db: &str, acked: &[usize]) {
    let reference = stored_batches(cluster, 0, db);
    for i in 0..cluster.len() {
        let stored = if i == 0 {
            reference.clone()
        } else {
            stored_batches(cluster, i, db)
        };
        for batch in acked {
            assert_eq!(
                stored.get(&batch_name(*batch)).copied(),
                Some(LINES_PER_BATCH as u64),
                "acknowledged batch {batch} is not complete on node {i}"
            );
        }
        for (batch, count) in &stored {
            assert_eq!(
                *count, LINES_PER_BATCH as u64,
                "batch {batch} stored in part on node {i}"
            );
        }
        assert_eq!(stored, reference, "node {i} differs from node 0");
    }
}

fn pending_of(api: &MonitorApi, replica: &str) -> u64 {
    api.replica_states()
        .into_iter()
        .find(|(_, name, _, _)| name == replica)
        .map_or(0, |(_, _, pending, _)| pending)
}

#[test]
fn a_replica_killed_during_a_sustained_write_catches_up() {
    let cluster = InfluxCluster::start_in_memory(3);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\n{FAST_TIMINGS}",
        one_group_yaml(&cluster)
    ));
    let writer = Writer::start(api.port(), "k9", "quorum", 0, 120, false);
    writer.wait_acked(15, &api);
    cluster.kill9(2);
    let at_kill = writer.acked();
    writer.wait_acked(at_kill + 40, &api);
    // /health tells: r2 down, its circuit open, its backlog growing.
    let seen_down = wait_for(Duration::from_secs(20), || {
        let r2 = api.replica_health("g1", "r2");
        (r2["up"] == false && r2["circuit"] == "open" && r2["pending_bytes"].as_u64() > Some(0))
            .then_some(())
    });
    assert!(
        seen_down.is_some(),
        "/health never showed r2 down with an open circuit: {}",
        api.health()
    );
    cluster.restart(2);
    let log = writer.finish();
    assert!(
        log.failed.iter().all(|(_, status, _)| *status == 500),
        "writes failed other than by a consistency timeout: {:?}",
        log.failed
    );
    assert!(log.acked.len() >= 60, "{} acknowledged", log.acked.len());
    eprintln!(
        "kill -9 replica: {} acked ({} before the kill), {} failed",
        log.acked.len(),
        at_kill,
        log.failed.len()
    );
    api.wait_drained(DRAIN);
    assert_converged(&cluster, "k9", &log.acked);
}

#[test]
fn quorum_writes_go_on_while_a_replica_hangs() {
    let cluster = InfluxCluster::start_in_memory(3);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\n{FAST_TIMINGS}",
        one_group_yaml(&cluster)
    ));
    let writer = Writer::start(api.port(), "hang", "quorum", 0, 60, false);
    writer.wait_acked(10, &api);
    cluster.sigstop(2);
    let at_stop = writer.acked();
    writer.wait_acked(at_stop + 30, &api);
    // consistency=all cannot be met while r2 hangs: a timeout answer, but the lines are durable
    // and reach every replica later, as the answer says.
    let response = api.write(
        "hang",
        &[("consistency", "all")],
        batch_body(5000).as_bytes(),
    );
    assert_eq!(response.status, 500, "{}", response.text());
    assert!(response.text().contains("timeout"), "{}", response.text());
    let pending = pending_of(&api, "r2");
    cluster.sigcont(2);
    assert!(pending > 0, "r2 was stopped but had nothing pending");
    let log = writer.finish();
    assert!(
        log.failed.is_empty(),
        "quorum writes failed while one of three replicas hung: {:?}",
        log.failed
    );
    assert_eq!(log.acked.len(), 60);
    eprintln!(
        "SIGSTOP replica: {} acked ({at_stop} before the stop), r2 had {pending} bytes pending",
        log.acked.len()
    );
    api.wait_drained(DRAIN);
    let mut delivered = log.acked.clone();
    delivered.push(5000);
    assert_converged(&cluster, "hang", &delivered);
}

#[test]
fn a_proxy_killed_with_a_replica_down_delivers_every_acknowledged_line() {
    let cluster = InfluxCluster::start_in_memory(3);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\n{FAST_TIMINGS}",
        one_group_yaml(&cluster)
    ));
    cluster.kill9(2);
    // consistency=any: acknowledged means durable in the proxy's log, maybe in no backend yet.
    let writer = Writer::start(api.port(), "crash", "any", 0, 200, true);
    writer.wait_acked(40, &api);
    api.kill9();
    let mut log = writer.finish();
    writer_stopped_by_the_crash(&log);

    api.restart();
    cluster.restart(2);
    // The restarted proxy takes new writes behind the replayed ones.
    let after = Writer::start(api.port(), "crash", "any", 1000, 10, false).finish();
    assert!(after.failed.is_empty(), "{:?}", after.failed);
    log.acked.extend(after.acked);

    eprintln!(
        "proxy kill -9: {} acked, {} unanswered",
        log.acked.len(),
        log.failed.len()
    );
    api.wait_drained(DRAIN);
    assert_converged(&cluster, "crash", &log.acked);
}

fn writer_stopped_by_the_crash(log: &WriteLog) {
    let refused: Vec<_> = log
        .failed
        .iter()
        .filter(|(_, status, _)| *status != 0)
        .collect();
    assert!(
        refused.is_empty(),
        "writes refused before the crash: {refused:?}"
    );
}

#[test]
fn a_graceful_stop_with_a_hung_replica_exits_and_loses_nothing() {
    let cluster = InfluxCluster::start_in_memory(3);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\n{FAST_TIMINGS}",
        one_group_yaml(&cluster)
    ));
    cluster.sigstop(2);
    let log = Writer::start(api.port(), "term", "quorum", 0, 20, false).finish();
    assert!(log.failed.is_empty(), "{:?}", log.failed);
    // r2's sender is inside a request to a process that answers nothing.
    let status = api.stop(Duration::from_secs(20));
    let status = status.unwrap_or_else(|| {
        panic!(
            "monitor-api did not exit within 20 s of SIGTERM:\n{}",
            tail(&api.log(), 20)
        )
    });
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        tail(&api.log(), 20)
    );
    // Starting must not wait for a backend that answers nothing.
    api.restart();
    cluster.sigcont(2);
    api.wait_drained(DRAIN);
    assert_converged(&cluster, "term", &log.acked);
}

#[test]
fn a_proxy_killed_repeatedly_mid_write_never_stores_a_batch_in_part() {
    let cluster = InfluxCluster::start_in_memory(2);
    let api = MonitorApi::start(&format!(
        "{}indexes:\n  cluster1: g1\nopen_access: true\n{FAST_TIMINGS}",
        one_group_yaml(&cluster)
    ));
    let mut acked = Vec::new();
    for cycle in 0..3 {
        // Two writers at once, so that the kill often lands inside an append.
        let first = cycle * 10_000;
        let writers = [
            Writer::start(api.port(), "again", "any", first, 400, true),
            Writer::start(api.port(), "again", "any", first + 5_000, 400, true),
        ];
        for writer in &writers {
            writer.wait_acked(10, &api);
        }
        api.kill9();
        for writer in writers {
            let log = writer.finish();
            writer_stopped_by_the_crash(&log);
            acked.extend(log.acked);
        }
        api.restart();
    }
    api.wait_drained(DRAIN);
    eprintln!(
        "repeated proxy kill -9: {} batches acknowledged, {} torn-tail recoveries",
        acked.len(),
        api.log().matches("recovered from a crash").count()
    );
    assert_converged(&cluster, "again", &acked);
    assert!(
        !api.log().contains("undecodable queue record"),
        "{}",
        tail(&api.log(), 30)
    );
}
