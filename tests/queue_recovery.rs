//! Reopening a group's log: replay from persisted cursors, torn tails, damaged records in the
//! middle, short sealed segments, and damaged or impossible cursor files.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use monitor::queue::{FRAME_HEADER_LEN, GroupLog, LogConfig, Reader, StartAt};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        max_disk_bytes: 1 << 20,
        cursor_sync_interval: Duration::from_secs(3600),
        ..LogConfig::default()
    }
}

fn line(i: usize) -> String {
    format!("cpu,index=c1,host=h{i} usage={i} {i}\n")
}

fn drain(reader: &mut Reader) -> (Vec<String>, u64) {
    let mut all = Vec::new();
    let mut skipped = 0;
    while let Some(batch) = reader.try_next_batch(1 << 20).unwrap() {
        all.extend(
            batch
                .records()
                .map(|r| String::from_utf8(r.to_vec()).unwrap()),
        );
        skipped += batch.skipped_corrupt_bytes;
    }
    (all, skipped)
}

/// Writes `count` records through a log with one replica "r" starting at 0, then closes it.
async fn write_records(dir: &Path, count: usize) -> Vec<(u64, u64)> {
    let log = GroupLog::open(dir, config()).unwrap();
    log.ensure_replica("r").unwrap();
    let mut positions = Vec::new();
    for i in 0..count {
        let receipt = log.append(line(i).as_bytes()).await.unwrap();
        positions.push((receipt.start, receipt.end));
    }
    log.close().unwrap();
    positions
}

fn segment(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn restart_replays_exactly_the_uncommitted_records() {
    let dir = tempfile::tempdir().unwrap();
    let positions = write_records(dir.path(), 10).await;
    {
        let log = GroupLog::open(dir.path(), config()).unwrap();
        log.add_replica("other", StartAt::Tail).unwrap();
        let mut reader = log.reader("r").unwrap();
        let batch = reader.next_batch(1 << 20).await.unwrap();
        assert_eq!(batch.record_count(), 10);
        // The backend acknowledged the first four records only.
        reader.commit(positions[3].1).unwrap();
        // Dropping the log persists committed cursors.
    }
    let log = GroupLog::open(dir.path(), config()).unwrap();
    let report = log.recovery_report();
    assert_eq!(
        report.cursors,
        [("other".to_string(), 0), ("r".to_string(), positions[3].1)]
    );
    assert_eq!(report.torn_bytes_truncated, 0);
    let mut reader = log.reader("r").unwrap();
    let expected: Vec<String> = (4..10).map(line).collect();
    assert_eq!(drain(&mut reader).0, expected);
    let mut other = log.reader("other").unwrap();
    assert_eq!(drain(&mut other).0.len(), 10);
}

#[tokio::test]
async fn a_torn_tail_loses_only_the_last_record() {
    for cut in [1, FRAME_HEADER_LEN - 3, FRAME_HEADER_LEN + 5] {
        let dir = tempfile::tempdir().unwrap();
        let positions = write_records(dir.path(), 5).await;
        let (last_start, last_end) = positions[4];
        // The crash hit while the last record was being written: only `cut` bytes of it landed.
        let file = OpenOptions::new()
            .write(true)
            .open(segment(dir.path(), 0))
            .unwrap();
        file.set_len(last_start + cut).unwrap();
        drop(file);

        let log = GroupLog::open(dir.path(), config()).unwrap();
        let report = log.recovery_report().clone();
        assert_eq!(report.torn_tail_at, Some(last_start), "cut {cut}");
        assert_eq!(report.torn_bytes_truncated, cut);
        assert_eq!(report.head, last_start);
        assert_eq!(log.stats().torn_tails_truncated, 1);
        assert_eq!(
            std::fs::metadata(segment(dir.path(), 0)).unwrap().len(),
            last_start
        );
        let mut reader = log.reader("r").unwrap();
        assert_eq!(drain(&mut reader).0, (0..4).map(line).collect::<Vec<_>>());
        // The log goes on from the cut.
        let receipt = log.append(b"next v=1\n").await.unwrap();
        assert_eq!(receipt.start, last_start);
        assert!(receipt.end < last_end);
        assert_eq!(drain(&mut reader).0, ["next v=1\n"]);
    }
}

#[tokio::test]
async fn garbage_after_the_last_record_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let positions = write_records(dir.path(), 5).await;
    let mut file = OpenOptions::new()
        .append(true)
        .open(segment(dir.path(), 0))
        .unwrap();
    file.write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(25))
        .unwrap();
    file.write_all(&[0; 300]).unwrap();
    drop(file);
    let log = GroupLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.recovery_report().torn_bytes_truncated, 400);
    assert_eq!(log.head(), positions[4].1);
    let mut reader = log.reader("r").unwrap();
    assert_eq!(drain(&mut reader).0, (0..5).map(line).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_flipped_byte_in_the_middle_skips_only_that_record_and_counts_it() {
    // Flip a payload byte, a length byte and a checksum byte of the third record.
    for offset_in_frame in [FRAME_HEADER_LEN + 3, 5, 0] {
        let dir = tempfile::tempdir().unwrap();
        let positions = write_records(dir.path(), 5).await;
        let (start, end) = positions[2];
        flip_byte(&segment(dir.path(), 0), start + offset_in_frame);

        let log = GroupLog::open(dir.path(), config()).unwrap();
        let report = log.recovery_report().clone();
        assert_eq!(
            report.corrupt_ranges,
            [(start, end)],
            "flip at +{offset_in_frame}"
        );
        assert_eq!(
            report.torn_bytes_truncated, 0,
            "valid records follow: not a torn tail"
        );
        assert_eq!(log.head(), positions[4].1);
        let mut reader = log.reader("r").unwrap();
        let (read, skipped) = drain(&mut reader);
        assert_eq!(read, [line(0), line(1), line(3), line(4)]);
        assert_eq!(skipped, end - start);
        let stats = log.stats();
        assert_eq!(
            (stats.corrupt_regions_skipped, stats.corrupt_bytes_skipped),
            (1, end - start)
        );
    }
}

#[tokio::test]
async fn damage_in_a_sealed_segment_is_skipped_up_to_the_next_valid_record() {
    let dir = tempfile::tempdir().unwrap();
    let payload = vec![b'q'; 984];
    let log = GroupLog::open(dir.path(), config()).unwrap();
    log.ensure_replica("r").unwrap();
    for _ in 0..12 {
        log.append(&payload).await.unwrap();
    }
    log.close().unwrap();
    // Segments 0, 4000, 8000 of four 1000-byte records each. Damage the first segment's second
    // record and cut the second segment short (as a machine crash under `never` could).
    flip_byte(&segment(dir.path(), 0), 1000 + 100);
    let short = OpenOptions::new()
        .write(true)
        .open(segment(dir.path(), 4000))
        .unwrap();
    short.set_len(2500).unwrap();
    drop(short);

    let log = GroupLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.recovery_report().short_segments, [(4000, 1500)]);
    let mut reader = log.reader("r").unwrap();
    let (read, skipped) = drain(&mut reader);
    // Lost: record 1 (flipped), record 6 (half of it is gone) and record 7 (gone).
    assert_eq!(read.len(), 12 - 3);
    assert_eq!(skipped, 1000 + 2000);
    assert_eq!(reader.read_position(), 12_000);
}

#[tokio::test]
async fn damaged_cursor_replays_from_the_tail_and_impossible_cursors_are_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let positions = write_records(dir.path(), 6).await;
    std::fs::write(dir.path().join("r.cursor"), b"not a cursor file").unwrap();
    // A cursor beyond the head: the replica acknowledged records a machine crash took back.
    let mut beyond = b"MQC1".to_vec();
    beyond.extend_from_slice(&1_000_000u64.to_le_bytes());
    beyond.extend_from_slice(&crc32fast::hash(&beyond).to_le_bytes());
    std::fs::write(dir.path().join("ahead.cursor"), &beyond).unwrap();
    // A cursor in the middle of a record (only a bug could do that): moved back onto its start.
    let mut inside = b"MQC1".to_vec();
    inside.extend_from_slice(&(positions[2].0 + 7).to_le_bytes());
    inside.extend_from_slice(&crc32fast::hash(&inside).to_le_bytes());
    std::fs::write(dir.path().join("inside.cursor"), &inside).unwrap();

    let log = GroupLog::open(dir.path(), config()).unwrap();
    let report = log.recovery_report();
    assert_eq!(report.cursors_damaged, ["r"]);
    assert_eq!(report.cursors_adjusted, ["ahead", "inside"]);
    let head = positions[5].1;
    assert_eq!(
        report.cursors,
        [
            ("ahead".into(), head),
            ("inside".into(), positions[2].0),
            ("r".into(), 0)
        ]
    );
    let mut reader = log.reader("r").unwrap();
    assert_eq!(drain(&mut reader).0.len(), 6);
    let mut inside = log.reader("inside").unwrap();
    assert_eq!(drain(&mut inside).0, (2..6).map(line).collect::<Vec<_>>());
    assert_eq!(log.pending_bytes("ahead").unwrap(), 0);
    // New appends reach the clamped replica.
    let mut ahead = log.reader("ahead").unwrap();
    log.append(b"x v=1\n").await.unwrap();
    assert_eq!(drain(&mut ahead).0, ["x v=1\n"]);
}

#[tokio::test]
async fn record_commit_points_step_over_skipped_damage() {
    let dir = tempfile::tempdir().unwrap();
    let positions = write_records(dir.path(), 4).await;
    flip_byte(&segment(dir.path(), 0), positions[1].0 + FRAME_HEADER_LEN);
    let log = GroupLog::open(dir.path(), config()).unwrap();
    let mut reader = log.reader("r").unwrap();
    let batch = reader.next_batch(1 << 20).await.unwrap();
    let ends: Vec<u64> = batch.records_with_end().map(|(_, end)| end).collect();
    assert_eq!(ends, [positions[0].1, positions[2].1, positions[3].1]);
    // Committing after the record that follows the damage also passes the damage.
    reader.commit(ends[1]).unwrap();
    drop(reader);
    drop(log);
    let log = GroupLog::open(dir.path(), config()).unwrap();
    let mut reader = log.reader("r").unwrap();
    assert_eq!(drain(&mut reader).0, [line(3)]);
}
