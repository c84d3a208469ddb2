//! Durable queue throughput: appends under group commit (fsync always / interval / never) with
//! 1, 8 and 64 concurrent appenders for ~64 KiB and ~1 MiB batches, and reader throughput from the page
//! cache. Run with `cargo bench --bench queue`; results and their reading are in BENCHMARKS.md.
//! Every log lives in a fresh temp dir under /tmp, removed after each measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use monitor::queue::{FsyncPolicy, GroupLog, LogConfig, StartAt};

const KIB: usize = 1024;

fn config(fsync: FsyncPolicy) -> LogConfig {
    LogConfig {
        fsync,
        max_disk_bytes: 64 << 30,
        cursor_sync_interval: Duration::from_secs(3600),
        ..LogConfig::default()
    }
}

/// A batch of ~100-byte line-protocol lines, as the proxy appends per group.
fn batch_of(bytes: usize) -> Vec<u8> {
    let mut batch = Vec::with_capacity(bytes + 128);
    let mut i = 0u64;
    while batch.len() < bytes {
        batch.extend_from_slice(
            format!(
                "cpu,index=cluster1,host=host{:04},region=eu usage_user={}.5,usage_system=3i {}\n",
                i % 1000,
                i % 97,
                1_700_000_000_000_000_000u64 + i
            )
            .as_bytes(),
        );
        i += 1;
    }
    batch
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Times `iters` appends of `batch` spread over `appenders` tasks on a fresh log.
fn time_appends(
    rt: &tokio::runtime::Runtime,
    fsync: FsyncPolicy,
    appenders: u64,
    batch: &Arc<Vec<u8>>,
    iters: u64,
) -> Duration {
    let dir = tempfile::Builder::new()
        .prefix("queue-bench-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let log = Arc::new(GroupLog::open(dir.path(), config(fsync)).expect("open log"));
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..appenders)
            .map(|task| {
                let count = iters / appenders + u64::from(task < iters % appenders);
                let (log, batch) = (log.clone(), batch.clone());
                tokio::spawn(async move {
                    for _ in 0..count {
                        log.append(&batch).await.expect("append");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("appender task");
        }
        start.elapsed()
    });
    let stats = log.stats();
    if iters >= 50 {
        eprintln!(
            "    [{fsync:?} x{appenders}] {} records, {} writes, {} fsyncs ({:.1} records/fsync)",
            stats.records_appended,
            stats.writes,
            stats.fsyncs,
            stats.records_appended as f64 / stats.fsyncs.max(1) as f64
        );
    }
    drop(log);
    elapsed
}

fn append_throughput(c: &mut Criterion) {
    let rt = runtime();
    let cases: &[(&str, FsyncPolicy, &[u64])] = &[
        ("always", FsyncPolicy::Always, &[1, 8, 64]),
        (
            "interval_100ms",
            FsyncPolicy::Interval(Duration::from_millis(100)),
            &[8],
        ),
        ("never", FsyncPolicy::Never, &[1, 8]),
    ];
    for &(size_name, size) in &[("64KiB", 64 * KIB), ("1MiB", 1024 * KIB)] {
        let batch = Arc::new(batch_of(size));
        let mut group = c.benchmark_group(format!("queue_append_{size_name}"));
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
        group.throughput(Throughput::Bytes(batch.len() as u64));
        for &(policy_name, policy, appender_counts) in cases {
            for &appenders in appender_counts {
                group.bench_function(
                    BenchmarkId::new(policy_name, format!("{appenders}_appenders")),
                    |b| b.iter_custom(|iters| time_appends(&rt, policy, appenders, &batch, iters)),
                );
            }
        }
        group.finish();
    }
}

fn read_throughput(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::Builder::new()
        .prefix("queue-bench-read-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let log = GroupLog::open(dir.path(), config(FsyncPolicy::Never)).expect("open log");
    log.add_replica("replica", StartAt::Head).expect("replica");
    let batch = batch_of(64 * KIB);
    let total_bytes: u64 = 128 << 20;
    rt.block_on(async {
        let mut written = 0;
        while written < total_bytes {
            written += log.append(&batch).await.expect("append").end - written;
        }
    });
    let mut reader = log.reader("replica").expect("reader");
    let mut group = c.benchmark_group("queue_read");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    group.throughput(Throughput::Bytes(log.head()));
    for max_bytes in [1 << 20, 4 << 20] {
        group.bench_function(
            BenchmarkId::new(
                "whole_log_128MiB",
                format!("batches_of_{}MiB", max_bytes >> 20),
            ),
            |b| {
                b.iter(|| {
                    reader.rewind();
                    rt.block_on(async {
                        let mut records = 0;
                        while reader.read_position() < log.head() {
                            records += reader
                                .next_batch(max_bytes)
                                .await
                                .expect("read")
                                .record_count();
                        }
                        records
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, append_throughput, read_throughput);
criterion_main!(benches);
