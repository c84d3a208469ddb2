//! Crash simulation: a child process (this test binary, re-run with an environment variable)
//! appends from several tasks and prints every acknowledged sequence number; the parent kills it
//! with SIGKILL mid-stream, reopens the log and checks that every acknowledged record is there,
//! in per-appender order, with no gaps. Rounds use `fsync = always`, then `interval` and `never`,
//! whose acknowledgements must survive a process crash too (the data is in the page cache).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use monitor::queue::{GroupLog, LogConfig, StartAt};

const CHILD_DIR_ENV: &str = "MONITOR_QUEUE_CRASH_CHILD_DIR";
const CHILD_ROUND_ENV: &str = "MONITOR_QUEUE_CRASH_CHILD_ROUND";
const TASKS: usize = 8;
const ROUND_POLICIES: [&str; 5] = ["always", "always", "always", "interval:1000", "never"];

fn config(round: usize) -> LogConfig {
    LogConfig {
        fsync: ROUND_POLICIES[round].parse().unwrap(),
        // Small segments so that kills also land around rotations.
        segment_bytes: 16 << 10,
        max_disk_bytes: 1 << 30,
        cursor_sync_interval: Duration::from_millis(50),
        ..LogConfig::default()
    }
}

/// The child's body; a no-op unless started by `acknowledged_records_survive_sigkill`.
#[test]
fn crash_child_appender() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return;
    };
    let round: usize = std::env::var(CHILD_ROUND_ENV).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let log = Arc::new(GroupLog::open(&dir, config(round)).unwrap());
        if !log.replicas().contains(&"checker".to_string()) {
            log.add_replica("checker", StartAt::Tail).unwrap();
        }
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                // Varying sizes so records straddle page and segment boundaries.
                let padding = "p".repeat(100 + task * 37);
                for seq in 0.. {
                    let record =
                        format!("crash,round={round},task={task} seq={seq}i,pad=\"{padding}\"\n");
                    log.append(record.as_bytes()).await.unwrap();
                    println!("ACK {round} {task} {seq}");
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
}

fn parse_record(record: &[u8]) -> (usize, usize, usize) {
    let text = std::str::from_utf8(record).unwrap();
    let field = |key: &str| -> usize {
        let start = text.find(key).unwrap() + key.len();
        let digits: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_digit())
            .collect();
        digits.parse().unwrap()
    };
    (field("round="), field("task="), field("seq="))
}

#[tokio::test]
async fn acknowledged_records_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: Vec<(usize, usize, usize)> = Vec::new();
    for (round, policy) in ROUND_POLICIES.iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child_appender",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut acks_this_round = 0;
        for line in stdout.lines() {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("ACK ") else {
                continue;
            };
            let numbers: Vec<usize> = rest.split(' ').map(|n| n.parse().unwrap()).collect();
            acknowledged.push((numbers[0], numbers[1], numbers[2]));
            acks_this_round += 1;
            if acks_this_round == 1500 + round * 500 {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        child.wait().unwrap();
        assert!(
            acks_this_round >= 1500,
            "child stopped early in round {round}"
        );

        let log = GroupLog::open(dir.path(), config(round)).unwrap();
        let mut reader = log.reader("checker").unwrap();
        let mut present: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        while let Some(batch) = reader.try_next_batch(4 << 20).unwrap() {
            assert_eq!(
                batch.skipped_corrupt_bytes, 0,
                "a torn tail is truncated, never skipped"
            );
            for record in batch.records() {
                let (r, task, seq) = parse_record(record);
                present.entry((r, task)).or_default().push(seq);
            }
        }
        // Each appender's records form a gap-free prefix 0..n in append order: a record is only
        // appended after the previous one was acknowledged, and the log keeps staging order.
        for ((r, task), seqs) in &present {
            let expected: Vec<usize> = (0..seqs.len()).collect();
            assert_eq!(seqs, &expected, "round {r} task {task}");
        }
        for &(r, task, seq) in &acknowledged {
            let kept = present.get(&(r, task)).map_or(0, Vec::len);
            assert!(
                seq < kept,
                "acknowledged record round {r} task {task} seq {seq} lost (kept {kept})"
            );
        }
        let report = log.recovery_report();
        eprintln!(
            "round {round} ({}): {} acks, head {}, torn bytes {}, segments {}",
            policy,
            acknowledged.len(),
            report.head,
            report.torn_bytes_truncated,
            report.segments
        );
    }
}
