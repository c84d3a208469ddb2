//! The durable log writing with `O_DIRECT`: every group commit padded to a block boundary, every
//! record read back exactly once and in order (from memory and from the files), across segment
//! rotation and a reopen, and the files never longer than the log.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use monitor::queue::{GroupLog, LogConfig, StartAt};

/// Every commit padded and written direct (`direct_io_min_bytes: 0`), the worst case for padding.
fn direct_config(read_cache_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        max_disk_bytes: 64 << 20,
        cursor_sync_interval: Duration::from_secs(3600),
        read_cache_bytes,
        direct_io: true,
        direct_io_min_bytes: 0,
        ..LogConfig::default()
    }
}

/// Record `i`: a few lines, of a length that varies so commits end anywhere in a block.
fn record(i: usize) -> String {
    let lines = 1 + i % 7;
    (0..lines)
        .map(|l| {
            format!(
                "cpu,index=a,host=h{i} v={l}i,pad=\"{}\" {i}\n",
                "x".repeat(i % 97)
            )
        })
        .collect()
}

fn segment_lengths(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    files.sort();
    files
}

async fn read_all(log: &GroupLog, replica: &str, expected: usize) -> Vec<String> {
    let mut reader = log.reader(replica).unwrap();
    let mut seen = Vec::new();
    while seen.len() < expected {
        let batch = tokio::time::timeout(Duration::from_secs(10), reader.next_batch(10_000))
            .await
            .expect("records arrive")
            .unwrap();
        assert_eq!(
            batch.skipped_corrupt_bytes, 0,
            "no padding taken for damage"
        );
        seen.extend(
            batch
                .records()
                .map(|r| String::from_utf8(r.to_vec()).unwrap()),
        );
        reader.commit(batch.end).unwrap();
    }
    assert!(
        reader
            .try_next_batch(10_000)
            .unwrap()
            .is_none_or(|b| b.is_empty()),
        "nothing but padding after the last record"
    );
    seen
}

async fn append_concurrently(log: &Arc<GroupLog>, range: std::ops::Range<usize>) {
    // Appenders in waves so group commits hold varying numbers of records.
    for wave in range.collect::<Vec<_>>().chunks(9) {
        let tasks: Vec<_> = wave
            .iter()
            .map(|&i| {
                let log = log.clone();
                tokio::spawn(async move { log.append(record(i).as_bytes()).await.unwrap() })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }
}

#[tokio::test]
async fn direct_writes_pad_commits_and_readers_see_every_record_once() {
    for read_cache_bytes in [32 << 20, 0] {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(GroupLog::open(dir.path(), direct_config(read_cache_bytes)).unwrap());
        log.add_replica("r", StartAt::Head).unwrap();
        append_concurrently(&log, 0..400).await;

        let stats = log.stats();
        assert!(stats.direct_writes > 0, "{stats:?}");
        assert!(stats.padding_bytes > 0, "{stats:?}");
        assert_eq!(stats.records_appended, 400);
        assert!(stats.segments > 1, "rotation is exercised: {stats:?}");

        let mut got = read_all(&log, "r", 400).await;
        let mut want: Vec<String> = (0..400).map(record).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "read_cache_bytes {read_cache_bytes}");

        // The files hold the log and nothing more: their lengths add up to head - tail, and the
        // active one ends on a block (every commit was padded).
        let files = segment_lengths(dir.path());
        let total: u64 = files.iter().map(|(_, len)| len).sum();
        let stats = log.stats();
        assert_eq!(total, stats.head - stats.tail, "{files:?}");
        assert_eq!(files.last().unwrap().1 % 4096, 0, "{files:?}");
    }
}

#[tokio::test]
async fn small_commits_stay_buffered_and_unpadded_large_ones_go_direct() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4 << 20,
        direct_io_min_bytes: LogConfig::default().direct_io_min_bytes,
        ..direct_config(0)
    };
    let log = GroupLog::open(dir.path(), config).unwrap();
    log.add_replica("r", StartAt::Head).unwrap();
    for i in 0..20 {
        log.append(record(i).as_bytes()).await.unwrap();
    }
    let stats = log.stats();
    assert_eq!(
        (stats.direct_writes, stats.padding_bytes),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.head, stats.bytes_appended, "no byte but the records'");
    // A commit above the threshold: the block the small ones started is completed buffered,
    // the rest goes direct and the commit ends on a block.
    let big = "x".repeat(300 << 10);
    log.append(big.as_bytes()).await.unwrap();
    let stats = log.stats();
    assert_eq!(stats.direct_writes, 1, "{stats:?}");
    assert!(stats.padding_bytes > 0);
    assert_eq!(stats.head % 4096, 0);
    log.append(record(20).as_bytes()).await.unwrap();
    let mut want: Vec<String> = (0..20).map(record).collect();
    want.push(big);
    want.push(record(20));
    assert_eq!(read_all(&log, "r", 22).await, want);
}

#[tokio::test]
async fn a_reopened_direct_log_replays_every_record_and_keeps_appending() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Arc::new(GroupLog::open(dir.path(), direct_config(0)).unwrap());
        log.add_replica("r", StartAt::Head).unwrap();
        append_concurrently(&log, 0..150).await;
        Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    }
    // An unaligned tail left by buffered writes: the next commit must still line up.
    {
        let log = Arc::new(
            GroupLog::open(
                dir.path(),
                LogConfig {
                    direct_io: false,
                    ..direct_config(0)
                },
            )
            .unwrap(),
        );
        append_concurrently(&log, 150..160).await;
        assert_eq!(log.stats().direct_writes, 0);
        Arc::try_unwrap(log).ok().unwrap().close().unwrap();
    }
    let log = Arc::new(GroupLog::open(dir.path(), direct_config(0)).unwrap());
    let report = log.recovery_report().clone();
    assert_eq!(report.torn_tail_at, None, "padding is not a torn tail");
    append_concurrently(&log, 160..300).await;
    assert!(log.stats().direct_writes > 0);
    let mut got = read_all(&log, "r", 300).await;
    let mut want: Vec<String> = (0..300).map(record).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}
