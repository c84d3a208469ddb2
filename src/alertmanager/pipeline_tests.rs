//! Timelines of the pipeline with a manual clock and a recording outbox: every stage's
//! decision, message by message, and the state a restart finds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::*;
use crate::alertmanager::clock::ManualClock;

#[derive(Default)]
struct Recorder(Mutex<Vec<Notification>>);

impl Dispatch for Recorder {
    fn enqueue_in(
        &self,
        _txn: &redb::WriteTransaction,
        notification: &Notification,
    ) -> Result<(), String> {
        self.0.lock().unwrap().push(notification.clone());
        Ok(())
    }
    fn wake(&self) {}
}

impl Recorder {
    fn take(&self) -> Vec<Notification> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

const CONFIG: &str = r#"
reissue_duration: "10s"
success_duration: "5s"
occurrences: { count: 2, window: "1s" }
group_wait: "100ms"
receivers:
  - { name: hook, webhook: { url: "http://127.0.0.1:1/hook" } }
  - { name: pager, webhook: { url: "http://127.0.0.1:1/pager" } }
routes:
  - { receiver: pager, matchers: ['severity="critical"'], continue: true, occurrences: { count: 1, window: "1s" } }
  - { receiver: hook, matchers: ['index="c1"'] }
default_receiver: hook
"#;

struct Harness {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    clock: Arc<ManualClock>,
    sent: Arc<Recorder>,
    pipeline: Pipeline,
}

impl Harness {
    /// The same store, clock and recorder after the pipeline is dropped and opened again (a
    /// restart).
    fn reopened(self) -> Harness {
        let Harness {
            _dir,
            path,
            clock,
            sent,
            pipeline,
        } = self;
        drop(pipeline);
        Harness {
            pipeline: open(&path, clock.clone(), sent.clone()),
            _dir,
            path,
            clock,
            sent,
        }
    }
}

fn open(path: &std::path::Path, clock: Arc<ManualClock>, sent: Arc<Recorder>) -> Pipeline {
    let config = AlertManagerConfig::from_yaml_str(CONFIG, "test.yaml").unwrap();
    let store = Store::open(path).unwrap();
    Pipeline::open(store, &config, sent, clock, AlertMetrics::default()).unwrap()
}

/// An operator's rule on one `host` label (`op` `value`), starting at `starts_at_ms`, open-ended.
fn host_rule(id: &str, op: &str, value: &str, starts_at_ms: u64) -> IgnoreRule {
    IgnoreRule {
        id: id.into(),
        matchers: vec![super::super::ignore::MatcherSpec {
            name: "host".into(),
            op: op.into(),
            value: value.into(),
        }],
        starts_at_ms,
        ends_at_ms: None,
        author: "ops".into(),
        comment: String::new(),
        created_at_ms: 0,
        updated_at_ms: 0,
    }
}
/// The tables of the state file in the store directory `path`.
fn table_names(path: &std::path::Path) -> Vec<String> {
    let db = redb::Database::open(path.join("state.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    txn.list_tables()
        .unwrap()
        .map(|t| redb::TableHandle::name(&t).to_owned())
        .collect()
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let clock = Arc::new(ManualClock::new(
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
    ));
    let sent = Arc::new(Recorder::default());
    let pipeline = open(&path, clock.clone(), sent.clone());
    Harness {
        _dir: dir,
        path,
        clock,
        sent,
        pipeline,
    }
}

fn alert(name: &str, host: &str, severity: &str) -> Incoming {
    Incoming {
        alert: Alert {
            name: name.into(),
            index: "c1".into(),
            host: host.into(),
            source: "api".into(),
            severity: severity.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            value: Some(93.0),
            at: "2026-11-21T12:00:00.000Z".into(),
            fingerprint: String::new(),
        },
        ends_at_ms: None,
    }
}

impl Harness {
    fn see(&self, a: Incoming) -> IngestSummary {
        self.pipeline.ingest(vec![a], Some("req")).unwrap()
    }
    fn at(&self, ms: u64) {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        self.clock.set(base + Duration::from_millis(ms));
    }
    fn flush(&self) -> Vec<Notification> {
        self.pipeline.flush_due_groups().unwrap();
        self.sent.take()
    }
    fn sweep(&self, liveness: Liveness) -> Vec<Notification> {
        let candidates = self.pipeline.success_candidates();
        let answers = candidates.into_keys().map(|k| (k, liveness)).collect();
        self.pipeline.apply_successes(&answers).unwrap();
        self.sent.take()
    }
}

#[test]
fn occurrences_reissue_and_success_message_by_message() {
    let h = harness();
    h.at(0);
    assert_eq!(
        h.see(alert("HighMem", "h1", "warning")).waiting,
        1,
        "first sighting below Occurrences"
    );
    h.at(500);
    assert!(h.flush().is_empty());
    h.at(600);
    assert_eq!(
        h.see(alert("HighMem", "h1", "warning")).due,
        1,
        "second sighting reaches it"
    );
    h.at(650);
    assert!(h.flush().is_empty(), "group_wait not over");
    h.at(700);
    let first = h.flush();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].receiver, "hook");
    assert_eq!(first[0].status, NotificationStatus::Firing);
    assert_eq!(first[0].alerts[0].delivery, 1);
    assert_eq!(first[0].request_id.as_deref(), Some("req"));

    for t in (1_000..10_600).step_by(900) {
        h.at(t);
        let summary = h.see(alert("HighMem", "h1", "warning"));
        assert_eq!(summary.suppressed, 1, "inside ReissueDuration at {t}");
        h.at(t + 200);
        assert!(h.flush().is_empty());
    }
    h.at(10_600);
    assert_eq!(
        h.see(alert("HighMem", "h1", "warning")).due,
        1,
        "still firing after ReissueDuration"
    );
    h.at(10_700);
    let second = h.flush();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].alerts[0].delivery, 2);
    assert_ne!(second[0].id, first[0].id);

    h.at(15_599);
    assert!(
        h.sweep(Liveness::Active).is_empty(),
        "not quiet for SuccessDuration yet"
    );
    h.at(15_600);
    let success = h.sweep(Liveness::Active);
    assert_eq!(success.len(), 1);
    assert_eq!(success[0].status, NotificationStatus::Resolved);
    assert!(h.pipeline.issued().is_empty());
    h.at(30_000);
    assert!(h.sweep(Liveness::Active).is_empty(), "one Success only");
}

#[test]
fn no_success_while_the_host_is_not_active_then_one_when_it_is() {
    let h = harness();
    h.at(0);
    h.see(alert("Disk", "h2", "critical"));
    h.at(100);
    assert_eq!(h.flush().len(), 2, "pager (continue) and the default hook");
    h.at(6_000);
    assert!(h.sweep(Liveness::Inactive).is_empty());
    assert!(h.sweep(Liveness::Unknown).is_empty());
    assert_eq!(h.pipeline.issued().len(), 1, "stays issued");
    assert!(h.pipeline.issued()[0].success_withheld_since_ms.is_some());
    h.at(60_000);
    let success = h.sweep(Liveness::Active);
    assert_eq!(success.len(), 2, "one Success per route");
    assert!(
        success
            .iter()
            .all(|n| n.status == NotificationStatus::Resolved)
    );
}

#[test]
fn an_ignore_rule_holds_alerts_back_until_it_expires() {
    let h = harness();
    h.at(0);
    let rule = IgnoreRule {
        ends_at_ms: Some(h.pipeline.now_ms() + 2_000),
        comment: "maintenance".into(),
        ..host_rule("r1", "=", "h3", h.pipeline.now_ms())
    };
    h.pipeline.put_ignore(rule, "matchers", "ends_at").unwrap();
    for t in [0, 500, 1_000, 1_999] {
        h.at(t);
        assert_eq!(h.see(alert("Disk", "h3", "critical")).ignored, 1);
        h.at(t + 150);
        assert!(h.flush().is_empty(), "nothing while ignored");
    }
    h.at(2_000);
    assert_eq!(
        h.see(alert("Disk", "h3", "critical")).due,
        1,
        "after expiry"
    );
    h.at(2_100);
    assert_eq!(h.flush().len(), 2);
}

#[test]
fn a_rule_added_while_a_group_waits_still_wins() {
    let h = harness();
    h.at(0);
    h.see(alert("Disk", "h4", "critical"));
    let rule = host_rule("r2", "=", "h4", h.pipeline.now_ms());
    h.pipeline.put_ignore(rule, "matchers", "ends_at").unwrap();
    h.at(200);
    assert!(h.flush().is_empty());
    assert!(
        h.pipeline.issued().is_empty(),
        "never delivered, so not issued"
    );
}

#[test]
fn a_restart_keeps_rules_issued_alerts_and_waiting_groups() {
    let h = harness();
    h.at(0);
    h.see(alert("Disk", "h5", "critical"));
    h.at(100);
    assert_eq!(h.flush().len(), 2);
    h.see(alert("Other", "h6", "critical"));
    let rule = host_rule("r3", "=~", "h7|h8", h.pipeline.now_ms());
    h.pipeline.put_ignore(rule, "matchers", "ends_at").unwrap();
    let h = h.reopened();
    assert_eq!(h.pipeline.ignores().len(), 1);
    h.at(1_000);
    assert_eq!(
        h.see(alert("Disk", "h5", "critical")).suppressed,
        1,
        "no re-delivery inside ReissueDuration"
    );
    assert_eq!(h.see(alert("Disk", "h7", "critical")).ignored, 1);
    let owed = h.flush();
    assert_eq!(owed.len(), 2, "the group that waited across the restart");
    assert_eq!(owed[0].alerts[0].alert.labels["alertname"], "Other");
    assert!(h.flush().is_empty(), "exactly once");
}

#[test]
fn sender_resolved_alerts_are_not_sightings() {
    let h = harness();
    h.at(0);
    let mut resolved = alert("Gone", "h9", "critical");
    resolved.ends_at_ms = Some(h.pipeline.now_ms() - 1);
    let summary = h.see(resolved);
    assert_eq!(summary.resolved, 1);
    h.at(1_000);
    assert!(h.flush().is_empty());
}

#[test]
fn last_seen_alone_is_persisted_at_most_once_per_resolution() {
    // success_duration 5 s: "last seen" alone is written at most every 250 ms.
    let h = harness();
    let on_disk = |h: &Harness| {
        let store = &h.pipeline.store;
        let contents = store
            .load_slots(SlotTable::Contents, |_, b| decode_content(b))
            .unwrap();
        let stored = store
            .load_slots(SlotTable::States, |_, b| {
                decode_slot_state(b, contents.first().map(|(_, c)| c))
            })
            .unwrap();
        stored[0].1.1.issued.as_ref().unwrap().last_seen_ms - 1_000_000_000
    };
    let in_memory = |h: &Harness| h.pipeline.issued()[0].last_seen_ms - 1_000_000_000;
    h.at(0);
    h.see(alert("Disk", "h10", "critical"));
    h.at(100);
    assert_eq!(h.see(alert("Disk", "h10", "critical")).suppressed, 1);
    assert_eq!(on_disk(&h), 100, "due -> suppressed is a change: written");
    h.at(200);
    h.see(alert("Disk", "h10", "critical"));
    assert_eq!(
        (on_disk(&h), in_memory(&h)),
        (100, 200),
        "only last seen changed: memory only"
    );
    h.at(400);
    h.see(alert("Disk", "h10", "critical"));
    assert_eq!(
        on_disk(&h),
        400,
        "250 ms after the last write it is written"
    );
    h.at(500);
    h.see(alert("Disk", "h10", "critical"));
    assert_eq!((on_disk(&h), in_memory(&h)), (400, 500));
}

#[test]
fn a_group_joined_over_several_batches_and_a_restart_is_delivered_once_whole() {
    let h = harness();
    h.at(0);
    // Two hosts of one alertname share the hook group; each joins in its own batch.
    h.see(alert("Swap", "h20", "warning"));
    h.see(alert("Swap", "h20", "warning"));
    h.at(10);
    h.see(alert("Swap", "h21", "warning"));
    h.see(alert("Swap", "h21", "warning"));
    let h = h.reopened();
    assert_eq!(h.pipeline.groups().len(), 1);
    h.at(20);
    h.see(alert("Swap", "h22", "warning"));
    assert_eq!(h.see(alert("Swap", "h22", "warning")).due, 1);
    h.at(200);
    let sent = h.flush();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let mut hosts: Vec<&str> = sent[0]
        .alerts
        .iter()
        .map(|a| a.alert.labels["host"].as_str())
        .collect();
    hosts.sort_unstable();
    assert_eq!(hosts, ["h20", "h21", "h22"]);
    // The flushed group's references are stale: a restart does not resurrect it.
    let h = h.reopened();
    assert!(h.pipeline.groups().is_empty());
    h.at(400);
    assert!(h.flush().is_empty(), "exactly once");
    assert_eq!(h.pipeline.issued().len(), 3);
}

#[test]
fn a_format_1_state_file_is_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let h = harness();
    h.at(0);
    h.see(alert("Disk", "h30", "critical"));
    let alert_record = h.pipeline.alerts()[0].clone();
    let issued = h.pipeline.issued()[0].clone();
    let mut groups = h.pipeline.groups();
    groups.sort_by(|a, b| a.key.cmp(&b.key));
    // Write them as format 1 did: JSON in am_alerts, am_issued, am_groups, no am_meta.
    std::fs::create_dir_all(&path).unwrap();
    {
        let db = redb::Database::create(path.join("state.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        for (name, key, value) in std::iter::once((
            "am_alerts",
            alert_record.alert.fingerprint.clone(),
            serde_json::to_vec(&alert_record).unwrap(),
        ))
        .chain(std::iter::once((
            "am_issued",
            issued.fingerprint.clone(),
            serde_json::to_vec(&issued).unwrap(),
        )))
        .chain(groups.iter().map(|g| {
            let mut json = serde_json::to_value(g).unwrap();
            json.as_object_mut().unwrap().remove("seq");
            (
                "am_groups",
                g.key.clone(),
                serde_json::to_vec(&json).unwrap(),
            )
        })) {
            let definition: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new(name);
            let mut table = txn.open_table(definition).unwrap();
            table.insert(key.as_str(), value.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let clock = h.clock.clone();
    let sent = Arc::new(Recorder::default());
    for _ in 0..2 {
        let migrated = open(&path, clock.clone(), sent.clone());
        assert_eq!(migrated.alerts(), vec![alert_record.clone()]);
        assert_eq!(migrated.issued(), vec![issued.clone()]);
        let mut loaded = migrated.groups();
        loaded.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(loaded.len(), 2, "the pager and hook groups");
        for (loaded, original) in loaded.iter().zip(&groups) {
            assert_eq!(loaded.alerts, original.alerts);
            assert_eq!(loaded.due_ms, original.due_ms);
        }
    }
    let names = table_names(&path);
    assert!(
        !names
            .iter()
            .any(|n| n == "am_alerts" || n == "am_issued" || n == "am_groups"),
        "{names:?}"
    );
}

/// A state file of format 2 (the records keyed by fingerprint string), as the previous build
/// left it, read by this build: no ignore rule lost, no alert re-delivered inside
/// ReissueDuration, the waiting group delivered once, and the file rewritten as format 3 once.
#[test]
fn a_format_2_state_file_is_migrated_once_and_keeps_its_promises() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    let h = harness();
    h.at(0);
    // Issued and flushed (pager + hook), then a second alert waiting in its groups.
    h.see(alert("Disk", "h40", "critical"));
    h.at(100);
    assert_eq!(h.flush().len(), 2);
    h.see(alert("Load", "h41", "critical"));
    let rule = host_rule("r40", "=", "h42", h.pipeline.now_ms());
    h.pipeline
        .put_ignore(rule.clone(), "matchers", "ends_at")
        .unwrap();
    let groups = h.pipeline.groups();
    assert_eq!(groups.len(), 2);
    // Write the same state as format 2 did: records keyed by fingerprint, format 2 in am_meta.
    std::fs::create_dir_all(&path).unwrap();
    {
        let db = redb::Database::create(path.join("state.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table =
                |name| -> redb::TableDefinition<&str, &[u8]> { redb::TableDefinition::new(name) };
            let mut states = txn.open_table(table("am_fingerprints")).unwrap();
            let mut contents = txn.open_table(table("am_alert_content")).unwrap();
            let state = h.pipeline.lock();
            for (fingerprint, record) in &state.alerts {
                let issued = state.issued.get(fingerprint);
                let mut bytes = Vec::new();
                super::super::records::encode_fingerprint(
                    &mut bytes,
                    Some(record),
                    issued,
                    &state.pending_refs(fingerprint),
                );
                states
                    .insert(fingerprint.as_str(), bytes.as_slice())
                    .unwrap();
                let mut bytes = Vec::new();
                encode_content(&mut bytes, &record.alert, issued.map(|i| &*i.alert));
                contents
                    .insert(fingerprint.as_str(), bytes.as_slice())
                    .unwrap();
            }
            let mut headers = txn.open_table(table("am_group_headers")).unwrap();
            for group in state.groups.values() {
                headers
                    .insert(group.key.as_str(), encode_group_header(group).as_slice())
                    .unwrap();
            }
            let mut ignores = txn.open_table(table("am_ignores")).unwrap();
            ignores
                .insert("r40", serde_json::to_vec(&rule).unwrap().as_slice())
                .unwrap();
            let mut meta = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("am_meta"))
                .unwrap();
            meta.insert("format", 2).unwrap();
            meta.insert("next_group_seq", state.next_group_seq).unwrap();
        }
        txn.commit().unwrap();
    }
    let expected_alerts = h.pipeline.alerts();
    let expected_issued = h.pipeline.issued();
    let clock = h.clock.clone();
    let sent = Arc::new(Recorder::default());
    for _ in 0..2 {
        let migrated = open(&path, clock.clone(), sent.clone());
        assert_eq!(migrated.alerts(), expected_alerts);
        assert_eq!(migrated.issued(), expected_issued);
        assert_eq!(
            migrated.ignores(),
            vec![rule.clone()],
            "no ignore rule lost"
        );
        assert_eq!(migrated.groups(), groups);
    }
    let migrated = open(&path, clock.clone(), sent.clone());
    h.at(1_000);
    assert_eq!(
        migrated
            .ingest(vec![alert("Disk", "h40", "critical")], None)
            .unwrap()
            .suppressed,
        1,
        "no re-delivery inside ReissueDuration"
    );
    assert_eq!(
        migrated
            .ingest(vec![alert("Disk", "h42", "critical")], None)
            .unwrap()
            .ignored,
        1,
        "the rule still applies"
    );
    migrated.flush_due_groups().unwrap();
    let owed = sent.take();
    assert_eq!(owed.len(), 2, "the groups that waited across the migration");
    assert!(
        owed.iter()
            .all(|n| n.alerts[0].alert.labels["alertname"] == "Load")
    );
    migrated.flush_due_groups().unwrap();
    assert!(sent.take().is_empty(), "exactly once");
    drop(migrated);
    let names = table_names(&path);
    assert!(
        !names
            .iter()
            .any(|n| n == "am_fingerprints" || n == "am_alert_content"),
        "{names:?}"
    );
    let db = redb::Database::open(path.join("state.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn
        .open_table(redb::TableDefinition::<&str, u64>::new("am_meta"))
        .unwrap();
    assert_eq!(meta.get("format").unwrap().unwrap().value(), 3);
}
