//! Behaviour of one group's durable log while it is open: append/read/commit, readers at
//! different speeds, group commit under concurrency, caps, rotation and deletion, replicas.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use monitor::queue::{
    Batch, FRAME_HEADER_LEN, FsyncPolicy, FullReason, GroupLog, LogConfig, QueueError, StartAt,
};

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        max_disk_bytes: 1 << 20,
        cursor_sync_interval: Duration::from_secs(3600),
        ..LogConfig::default()
    }
}

fn records(batch: &Batch) -> Vec<String> {
    batch
        .records()
        .map(|r| String::from_utf8(r.to_vec()).unwrap())
        .collect()
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    names
}

fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// Drains everything currently visible to `reader`.
async fn drain(reader: &mut monitor::queue::Reader, max_bytes: usize) -> (Vec<String>, u64) {
    let mut all = Vec::new();
    let mut end = reader.read_position();
    while let Some(batch) = reader.try_next_batch(max_bytes).unwrap() {
        all.extend(records(&batch));
        end = batch.end;
    }
    (all, end)
}

#[tokio::test]
async fn append_read_commit() {
    let dir = tempfile::tempdir().unwrap();
    let log = GroupLog::open(dir.path(), small_config()).unwrap();
    log.add_replica("influx-a", StartAt::Head).unwrap();
    let mut receipts = Vec::new();
    for line in ["cpu v=1 1\n", "cpu v=2 2\n", "mem v=3 3\n"] {
        receipts.push(log.append(line.as_bytes()).await.unwrap());
    }
    assert_eq!(receipts[0].start, 0);
    assert_eq!(receipts[0].end, FRAME_HEADER_LEN + 10);
    assert_eq!(receipts[1].start, receipts[0].end);
    assert_eq!(log.head(), receipts[2].end);

    let mut reader = log.reader("influx-a").unwrap();
    assert_eq!(reader.pending_bytes(), log.head());
    assert!(reader.oldest_pending_age().is_some());
    let batch = reader.next_batch(1 << 20).await.unwrap();
    assert_eq!(
        records(&batch),
        ["cpu v=1 1\n", "cpu v=2 2\n", "mem v=3 3\n"]
    );
    assert_eq!(batch.payload(), b"cpu v=1 1\ncpu v=2 2\nmem v=3 3\n");
    assert_eq!((batch.start, batch.end), (0, log.head()));
    assert!(batch.first_appended_at.is_some());
    // Not committed yet: still pending.
    assert_eq!(log.pending_bytes("influx-a").unwrap(), log.head());
    reader.commit(batch.end).unwrap();
    assert_eq!(reader.pending_bytes(), 0);
    assert_eq!(log.oldest_pending_age("influx-a").unwrap(), None);

    let stats = log.stats();
    assert_eq!(stats.records_appended, 3);
    assert_eq!(stats.bytes_appended, log.head());
    assert_eq!(stats.replicas.len(), 1);
    assert_eq!(stats.replicas[0].pending_bytes, 0);
    assert_eq!(
        stats.replicas[0].persisted, 0,
        "cursor persistence lags until maintenance"
    );
    log.maintain().unwrap();
    assert_eq!(log.stats().replicas[0].persisted, log.head());
}

#[tokio::test]
async fn batches_respect_max_bytes_and_never_split_a_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = GroupLog::open(dir.path(), small_config()).unwrap();
    log.add_replica("r", StartAt::Head).unwrap();
    let big = format!("{}\n", "x".repeat(999));
    for payload in [
        "a\n".repeat(50),
        "b\n".repeat(50),
        "c\n".repeat(50),
        big.clone(),
        "d\n".into(),
    ] {
        log.append(payload.as_bytes()).await.unwrap();
    }
    let mut reader = log.reader("r").unwrap();
    let first = reader.next_batch(250).await.unwrap();
    assert_eq!(
        first.record_count(),
        2,
        "100 + 100 fit in 250, a third would not"
    );
    let second = reader.next_batch(250).await.unwrap();
    assert_eq!(records(&second), ["c\n".repeat(50)]);
    let third = reader.next_batch(250).await.unwrap();
    assert_eq!(
        records(&third),
        [big],
        "a record larger than max_bytes comes alone, whole"
    );
    let fourth = reader.next_batch(250).await.unwrap();
    assert_eq!(records(&fourth), ["d\n"]);
    assert_eq!(fourth.end, log.head());
    // Per-record commit points: each record's end is the next one's start.
    let ends: Vec<u64> = first.records_with_end().map(|(_, end)| end).collect();
    assert_eq!(ends, [FRAME_HEADER_LEN + 100, 2 * (FRAME_HEADER_LEN + 100)]);
    assert_eq!(ends[1], first.end);
    // Commit only the first batch, rewind: the reader resends from there.
    reader.commit(first.end).unwrap();
    reader.rewind();
    let again = reader.next_batch(250).await.unwrap();
    assert_eq!(again.start, first.end);
    assert_eq!(records(&again), records(&second));
}

#[tokio::test]
async fn next_batch_waits_until_a_record_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(GroupLog::open(dir.path(), small_config()).unwrap());
    log.add_replica("r", StartAt::Head).unwrap();
    let mut reader = log.reader("r").unwrap();
    let waiting = tokio::spawn(async move { reader.next_batch(1024).await.map(|b| records(&b)) });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    log.append(b"late v=1\n").await.unwrap();
    assert_eq!(waiting.await.unwrap().unwrap(), ["late v=1\n"]);
}

#[tokio::test]
async fn two_readers_at_different_speeds() {
    let dir = tempfile::tempdir().unwrap();
    let log = GroupLog::open(dir.path(), small_config()).unwrap();
    log.add_replica("fast", StartAt::Head).unwrap();
    log.add_replica("slow", StartAt::Head).unwrap();
    let mut fast = log.reader("fast").unwrap();
    let mut slow = log.reader("slow").unwrap();
    let mut expected = Vec::new();
    for i in 0..200 {
        let line = format!("m,index=i{i} v={i}i {i}\n");
        log.append(line.as_bytes()).await.unwrap();
        expected.push(line);
    }
    // The fast replica takes everything in big batches and acknowledges it.
    let (fast_records, fast_end) = drain(&mut fast, 64 << 10).await;
    fast.commit(fast_end).unwrap();
    assert_eq!(fast_records, expected);
    // The slow one takes small batches and only acknowledges the first 50 records.
    let mut slow_records = Vec::new();
    while slow_records.len() < 50 {
        let batch = slow.next_batch(64).await.unwrap();
        slow_records.extend(records(&batch));
        slow.commit(batch.end).unwrap();
    }
    assert_eq!(slow_records, expected[..slow_records.len()]);
    assert_eq!(log.pending_bytes("fast").unwrap(), 0);
    let slow_pending = log.pending_bytes("slow").unwrap();
    assert_eq!(slow_pending, log.head() - slow.committed());
    assert!(slow_pending > 0);

    // Segments the slow replica still needs are kept; it reads on unaffected.
    log.maintain().unwrap();
    assert!(log.tail() <= slow.committed());
    let (rest, end) = drain(&mut slow, 1 << 20).await;
    assert_eq!([slow_records, rest].concat(), expected);
    slow.commit(end).unwrap();
    assert_eq!(log.pending_bytes("slow").unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_are_all_durable_in_one_consistent_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 64 << 10,
        ..small_config()
    };
    let log = Arc::new(GroupLog::open(dir.path(), config).unwrap());
    log.add_replica("r", StartAt::Head).unwrap();
    let mut tasks = Vec::new();
    for task in 0..8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut receipts = Vec::new();
            for seq in 0..1000 {
                let line = format!("t{task} s={seq}i\n");
                let receipt = log.append(line.as_bytes()).await.unwrap();
                receipts.push((receipt.start, line));
            }
            receipts
        }));
    }
    let mut by_position = Vec::new();
    for task in tasks {
        by_position.extend(task.await.unwrap());
    }
    by_position.sort();
    let stats = log.stats();
    assert_eq!(stats.records_appended, 8000);
    assert!(stats.fsyncs <= stats.writes && stats.writes <= 8000);

    let mut reader = log.reader("r").unwrap();
    let (read, _) = drain(&mut reader, 1 << 20).await;
    // The log order is exactly the order of the positions the appenders were given...
    let expected: Vec<String> = by_position.iter().map(|(_, line)| line.clone()).collect();
    assert_eq!(read, expected);
    // ...and each appender's records appear in the order it appended them.
    let mut next_seq: HashMap<String, u32> = HashMap::new();
    for line in &read {
        let (task, rest) = line.split_once(" s=").unwrap();
        let seq: u32 = rest.trim_end_matches("i\n").parse().unwrap();
        let expected_seq = next_seq.entry(task.to_string()).or_default();
        assert_eq!(seq, *expected_seq, "{task}");
        *expected_seq += 1;
    }
    assert_eq!(next_seq.len(), 8);
    drop(reader);
    // Durable: a fresh open sees all of them.
    let log = Arc::into_inner(log).unwrap();
    log.close().unwrap();
    let log = GroupLog::open(dir.path(), small_config()).unwrap();
    let mut reader = log.reader("r").unwrap();
    assert_eq!(drain(&mut reader, 1 << 20).await.0.len(), 8000);
}

#[tokio::test]
async fn cap_reached_returns_full_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        max_disk_bytes: 3 * 4096,
        full_retry_after: Duration::from_secs(7),
        ..small_config()
    };
    let log = GroupLog::open(dir.path(), config).unwrap();
    log.add_replica("r", StartAt::Head).unwrap();
    let payload = vec![b'x'; 1000];
    let mut accepted = 0;
    let error = loop {
        match log.append(&payload).await {
            Ok(_) => accepted += 1,
            Err(error) => break error,
        }
        assert!(accepted < 100, "cap never reached");
    };
    let QueueError::Full {
        retry_after,
        reason,
    } = error.clone()
    else {
        panic!("expected Full, got {error}");
    };
    assert_eq!(retry_after, Duration::from_secs(7));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert!(matches!(
        reason,
        FullReason::DiskCap {
            cap_bytes: 12288,
            ..
        }
    ));
    // Nothing was written for the refused append, and the next one is refused the same way.
    let head = log.head();
    let on_disk = disk_bytes(dir.path());
    assert!(on_disk <= 3 * 4096);
    assert_eq!(on_disk, accepted * (1000 + FRAME_HEADER_LEN));
    assert!(matches!(
        log.append(&payload).await,
        Err(QueueError::Full { .. })
    ));
    assert_eq!((log.head(), disk_bytes(dir.path())), (head, on_disk));
    assert_eq!(log.stats().full_rejections, 2);
    // Small records are refused too: the cap is on bytes kept, not on one big record.
    assert!(matches!(
        log.append(&payload[..900]).await,
        Err(QueueError::Full { .. })
    ));

    // Once the replica acknowledged and its cursor is persisted, sealed segments go and
    // appends are accepted again.
    let mut reader = log.reader("r").unwrap();
    let (read, end) = drain(&mut reader, 1 << 20).await;
    assert_eq!(read.len() as u64, accepted);
    reader.commit(end).unwrap();
    log.maintain().unwrap();
    assert!(disk_bytes(dir.path()) < on_disk);
    log.append(&payload).await.unwrap();
}

#[tokio::test]
async fn oldest_pending_age_cap_refuses_appends() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_pending_age: Some(Duration::from_millis(5)),
        ..small_config()
    };
    let log = GroupLog::open(dir.path(), config).unwrap();
    log.add_replica("r", StartAt::Head).unwrap();
    log.append(b"old v=1\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    log.maintain().unwrap();
    let error = log.append(b"new v=1\n").await.unwrap_err();
    assert!(
        matches!(
            error,
            QueueError::Full {
                reason: FullReason::PendingAge { .. },
                ..
            }
        ),
        "{error}"
    );
    let mut reader = log.reader("r").unwrap();
    let batch = reader.next_batch(1024).await.unwrap();
    assert_eq!(
        records(&batch),
        ["old v=1\n"],
        "the refused record was not written"
    );
    reader.commit(batch.end).unwrap();
    log.maintain().unwrap();
    log.append(b"new v=1\n").await.unwrap();
}

#[tokio::test]
async fn segments_rotate_and_are_deleted_once_every_cursor_passed() {
    let dir = tempfile::tempdir().unwrap();
    let log = GroupLog::open(dir.path(), small_config()).unwrap();
    log.add_replica("a", StartAt::Head).unwrap();
    log.add_replica("b", StartAt::Head).unwrap();
    let payload = vec![b'y'; 1000 - FRAME_HEADER_LEN as usize];
    for _ in 0..20 {
        log.append(&payload).await.unwrap();
    }
    // 4 records of 1000 bytes per 4096-byte segment: 5 segments, named by base position.
    assert_eq!(
        segment_files(dir.path()),
        [
            "00000000000000000000.seg",
            "00000000000000004000.seg",
            "00000000000000008000.seg",
            "00000000000000012000.seg",
            "00000000000000016000.seg"
        ]
    );
    assert_eq!(log.stats().segments_created, 4);

    let mut a = log.reader("a").unwrap();
    let (all, end) = drain(&mut a, 1 << 20).await;
    assert_eq!(all.len(), 20);
    a.commit(end).unwrap();
    log.maintain().unwrap();
    assert_eq!(
        segment_files(dir.path()).len(),
        5,
        "b has not passed anything"
    );

    let mut b = log.reader("b").unwrap();
    let mut taken = 0;
    while taken < 9 {
        let batch = b.next_batch(1000).await.unwrap();
        taken += batch.record_count();
        b.commit(batch.end).unwrap();
    }
    assert_eq!(b.committed(), 9000);
    log.maintain().unwrap();
    assert_eq!(
        segment_files(dir.path()),
        [
            "00000000000000008000.seg",
            "00000000000000012000.seg",
            "00000000000000016000.seg"
        ]
    );
    assert_eq!(log.tail(), 8000);
    assert_eq!(log.stats().segments_deleted, 2);
    assert_eq!(log.stats().disk_bytes, disk_bytes(dir.path()));

    // Even when everyone passed everything, the active segment stays.
    let (_, end) = drain(&mut b, 1 << 20).await;
    b.commit(end).unwrap();
    log.maintain().unwrap();
    assert_eq!(segment_files(dir.path()), ["00000000000000016000.seg"]);
}

#[tokio::test]
async fn replicas_added_at_head_or_tail_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let log = GroupLog::open(dir.path(), small_config()).unwrap();
    log.add_replica("a", StartAt::Head).unwrap();
    log.append(b"before v=1\n").await.unwrap();
    assert_eq!(log.add_replica("late", StartAt::Head).unwrap(), log.head());
    assert_eq!(log.add_replica("full", StartAt::Tail).unwrap(), 0);
    assert!(matches!(
        log.add_replica("a", StartAt::Head),
        Err(QueueError::ReplicaExists(_))
    ));
    assert!(matches!(
        log.add_replica("../x", StartAt::Head),
        Err(QueueError::InvalidReplicaName(_))
    ));
    assert_eq!(log.ensure_replica("a").unwrap(), 0);
    log.append(b"after v=1\n").await.unwrap();

    let mut late = log.reader("late").unwrap();
    assert_eq!(drain(&mut late, 1024).await.0, ["after v=1\n"]);
    let mut full = log.reader("full").unwrap();
    assert_eq!(
        drain(&mut full, 1024).await.0,
        ["before v=1\n", "after v=1\n"]
    );
    assert!(matches!(log.reader("late"), Err(QueueError::ReaderBusy(_))));
    drop(late);
    assert!(log.reader("late").is_ok());
    assert!(matches!(
        log.reader("nope"),
        Err(QueueError::UnknownReplica(_))
    ));
    assert!(dir.path().join("full.cursor").exists());

    log.remove_replica("full").unwrap();
    assert!(!dir.path().join("full.cursor").exists());
    assert_eq!(log.replicas(), ["a", "late"]);
    assert!(matches!(
        full.try_next_batch(1024),
        Err(QueueError::ReplicaRemoved(_))
    ));
    assert!(matches!(
        full.next_batch(1024).await,
        Err(QueueError::ReplicaRemoved(_))
    ));
}

#[tokio::test]
async fn commit_outside_what_was_handed_out_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = GroupLog::open(dir.path(), small_config()).unwrap();
    log.add_replica("r", StartAt::Head).unwrap();
    log.append(b"a v=1\n").await.unwrap();
    log.append(b"b v=1\n").await.unwrap();
    let mut reader = log.reader("r").unwrap();
    assert!(
        matches!(reader.commit(1), Err(QueueError::InvalidCommit { .. })),
        "nothing read yet"
    );
    let batch = reader.next_batch(1).await.unwrap();
    assert!(reader.commit(batch.end + 1).is_err());
    reader.commit(batch.end).unwrap();
    assert!(
        reader.commit(batch.end - 1).is_err(),
        "cursors never move back"
    );
}

#[tokio::test]
async fn oversized_record_and_double_open_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_record_bytes: 100,
        ..small_config()
    };
    let log = GroupLog::open(dir.path(), config).unwrap();
    let error = log.append(&[b'z'; 101]).await.unwrap_err();
    assert!(matches!(
        error,
        QueueError::RecordTooLarge {
            size: 101,
            limit: 100
        }
    ));
    assert_eq!(log.head(), 0);
    assert!(matches!(
        GroupLog::open(dir.path(), small_config()),
        Err(QueueError::Locked { .. })
    ));
    log.close().unwrap();
    assert!(GroupLog::open(dir.path(), small_config()).is_ok());
}

#[tokio::test]
async fn invalid_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tiny_cap = LogConfig {
        segment_bytes: 1 << 20,
        max_disk_bytes: 1 << 20,
        ..small_config()
    };
    assert!(matches!(
        GroupLog::open(dir.path(), tiny_cap),
        Err(QueueError::InvalidConfig(_))
    ));
    let zero = LogConfig {
        fsync: FsyncPolicy::Interval(Duration::ZERO),
        ..small_config()
    };
    assert!(matches!(
        GroupLog::open(dir.path(), zero),
        Err(QueueError::InvalidConfig(_))
    ));
    assert_eq!(
        "always".parse::<FsyncPolicy>().unwrap(),
        FsyncPolicy::Always
    );
    assert_eq!("never".parse::<FsyncPolicy>().unwrap(), FsyncPolicy::Never);
    assert_eq!(
        "interval:250".parse::<FsyncPolicy>().unwrap(),
        FsyncPolicy::Interval(Duration::from_millis(250))
    );
    assert!("sometimes".parse::<FsyncPolicy>().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fsync_policy_keeps_acknowledged_records_across_a_clean_restart() {
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(5)),
        FsyncPolicy::Never,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            fsync: policy,
            ..small_config()
        };
        let log = Arc::new(GroupLog::open(dir.path(), config.clone()).unwrap());
        log.add_replica("r", StartAt::Head).unwrap();
        let mut tasks = Vec::new();
        for task in 0..4 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for seq in 0..100 {
                    log.append(format!("p{task} s={seq}\n").as_bytes())
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let stats = log.stats();
        match policy {
            FsyncPolicy::Always => {
                assert!(stats.fsyncs >= 1);
                assert_eq!(
                    stats.synced, stats.head,
                    "always acknowledges only synced records"
                );
            }
            FsyncPolicy::Never => assert_eq!(stats.fsyncs, 0),
            FsyncPolicy::Interval(_) => {}
        }
        Arc::into_inner(log).unwrap().close().unwrap();
        let log = GroupLog::open(dir.path(), config).unwrap();
        assert_eq!(log.recovery_report().torn_bytes_truncated, 0);
        let mut reader = log.reader("r").unwrap();
        assert_eq!(drain(&mut reader, 1 << 20).await.0.len(), 400, "{policy:?}");
    }
}

#[tokio::test]
async fn the_background_thread_persists_cursors_and_deletes_passed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cursor_sync_interval: Duration::from_millis(10),
        ..small_config()
    };
    let log = GroupLog::open(dir.path(), config).unwrap();
    log.add_replica("r", StartAt::Head).unwrap();
    let payload = vec![b'w'; 2000];
    for _ in 0..6 {
        log.append(&payload).await.unwrap();
    }
    let mut reader = log.reader("r").unwrap();
    let (_, end) = drain(&mut reader, 1 << 20).await;
    reader.commit(end).unwrap();
    // Liveness, not speed: wait (up to a generous bound) for the maintenance thread to act.
    for _ in 0..1000 {
        let stats = log.stats();
        if stats.replicas[0].persisted == end && stats.segments == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = log.stats();
    assert_eq!(stats.replicas[0].persisted, end);
    assert_eq!(stats.segments, 1);
    assert_eq!(segment_files(dir.path()).len(), 1);
}

#[tokio::test]
async fn interval_policy_fsyncs_on_its_timer() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        fsync: FsyncPolicy::Interval(Duration::from_millis(20)),
        ..small_config()
    };
    let log = GroupLog::open(dir.path(), config).unwrap();
    log.append(b"a v=1\n").await.unwrap();
    log.append(b"b v=1\n").await.unwrap();
    // Liveness, not speed: the writer syncs without further appends or a close.
    for _ in 0..1000 {
        if log.stats().synced == log.head() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = log.stats();
    assert_eq!(stats.synced, stats.head);
    assert!(stats.fsyncs >= 1);
}

#[tokio::test]
async fn a_failed_write_stops_the_log_instead_of_acknowledging() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("group");
    let log = GroupLog::open(&log_dir, small_config()).unwrap();
    log.add_replica("r", StartAt::Head).unwrap();
    let payload = vec![b'f'; 1000];
    log.append(&payload).await.unwrap();
    // The directory disappears: the next segment cannot be created.
    std::fs::remove_dir_all(&log_dir).unwrap();
    let mut failure = None;
    for _ in 0..10 {
        if let Err(error) = log.append(&payload).await {
            failure = Some(error);
            break;
        }
    }
    let failure = failure.expect("rotation into a missing directory must fail");
    assert!(
        matches!(failure, QueueError::Io { ref path, .. } if path.starts_with(&log_dir)),
        "{failure}"
    );
    // Sticky: later appends get the same error, nothing more is acknowledged.
    let head = log.head();
    assert!(matches!(
        log.append(b"x\n").await,
        Err(QueueError::Io { .. })
    ));
    assert_eq!(log.head(), head);
    assert_eq!(log.stats().write_errors, 1);
    assert!(log.close().is_err());
}

/// Readers that keep up are served from the in-memory tail, readers that fell behind from the
/// files: both must see exactly the same records, ends and batch limits, also across the point
/// where the memory window stops.
#[tokio::test]
async fn memory_tail_and_files_hand_out_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        read_cache_bytes: 3000, // far less than what is appended: early records fall out
        ..small_config()
    };
    let log = GroupLog::open(dir.path(), config.clone()).unwrap();
    log.add_replica("keeps-up", StartAt::Tail).unwrap();
    log.add_replica("behind", StartAt::Tail).unwrap();
    let mut keeps_up = log.reader("keeps-up").unwrap();
    let mut expected = Vec::new();
    let mut served_from_memory = Vec::new();
    for i in 0..200 {
        let record = format!("cpu,host=h{i} v={} {i}\n", "x".repeat(i % 37));
        log.append(record.as_bytes()).await.unwrap();
        expected.push(record);
        // Read right away, while the record is still in the memory window.
        let (got, _) = drain(&mut keeps_up, 1 << 20).await;
        served_from_memory.extend(got);
    }
    assert!(log.stats().read_cache_bytes > 0);
    assert!(log.stats().read_cache_bytes <= 3000);
    assert_eq!(served_from_memory, expected);
    // Small batches cross from files into the memory window mid-way.
    let mut behind = log.reader("behind").unwrap();
    let mut ends_behind = Vec::new();
    let mut all_behind = Vec::new();
    while let Some(batch) = behind.try_next_batch(700).unwrap() {
        assert!(batch.payload_len() <= 700 || batch.record_count() == 1);
        all_behind.extend(records(&batch));
        ends_behind.extend(batch.records_with_end().map(|(_, end)| end));
    }
    assert_eq!(all_behind, expected);
    // The same positions as a reader of a reopened log (files only).
    drop(keeps_up);
    drop(behind);
    log.close().unwrap();
    let reopened = GroupLog::open(dir.path(), config).unwrap();
    reopened.add_replica("fresh", StartAt::Tail).unwrap();
    let mut fresh = reopened.reader("fresh").unwrap();
    let mut ends_fresh = Vec::new();
    while let Some(batch) = fresh.try_next_batch(700).unwrap() {
        ends_fresh.extend(batch.records_with_end().map(|(_, end)| end));
    }
    assert_eq!(ends_fresh, ends_behind);
}
