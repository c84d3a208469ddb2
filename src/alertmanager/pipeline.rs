//! The pipeline that turns sightings into the few notifications a person should get:
//! receive → fingerprint → IgnoreAlerts → Occurrences → IssuedAlerts → grouping → outbox, plus
//! the group flush and the SuccessDuration sweep. Each stage is its own module; this one holds
//! their state, applies them in order, and commits every request (or group of concurrent
//! requests, see [`super::ingest`]) or tick as one redb write transaction that also stages the
//! notifications in the outbox.
//!
//! Order: the routes an alert takes are looked up right after IgnoreAlerts (routes carry their
//! own Occurrences and grouping), and IssuedAlerts decides per fingerprint before grouping, so
//! an alert fanned out to two routes by `continue` is issued once and delivered on both.
//!
//! Repeated sightings that change nothing but "last seen" (an alert still ignored, or still
//! inside ReissueDuration) are written at most once per `seen_resolution` (a twentieth of
//! SuccessDuration, at most 5 s): a firing fleet re-sending the same alerts costs memory updates,
//! not a store write per alert. After a crash such an alert's last sighting is at most that much
//! older than it really was, which can only move a Success that much earlier. Such a sighting is
//! recognised without copying the alert's records (the common case of a firing fleet), and
//! applied to memory after the batch committed, like every other change.
//!
//! Persistence (format in [`super::store`]): one record per fingerprint holds its alert record,
//! its IssuedAlerts entry and its memberships of waiting groups; a group is a header written
//! once when it opens. An alert joining a group therefore writes only its own record.
//!
//! It must never change memory before the transaction that records the change has committed
//! (a failed commit leaves state as it was and the request fails; the "last seen" coalescing
//! above is the one bounded exception), and never deliver an alert that an active ignore rule
//! matches.

use std::collections::{BTreeMap, HashSet};

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::alert::Alert;
use super::clock::Clock;
use super::grouping::{Group, PendingAlert, resolved_notifications};
use super::ignore::{IgnoreRule, IgnoreRules, RuleError, validate_rule};
use super::issued::{IssueDecision, IssuedAlert, decide};
use super::metrics::{AlertMetrics, ReceiverLabels, StatusLabels};
use super::notify::{Notification, NotificationStatus};
use super::occurrences::{OccurrenceRule, Sighting, Sightings, duration_ms};
use super::records::{
    AlertContent, FingerprintRecord, PendingRef, decode_content, decode_fingerprint,
    decode_group_header, decode_slot_state, encode_content, encode_group_header, encode_slot_state,
};
use super::routing::{Route, Router};
use super::store::{Batch, LegacyTable, META_NEXT_GROUP_SEQ, SlotTable, Store, StoreError, Table};
use crate::config::alert::AlertManagerConfig;

/// Where notifications go: the durable outbox (or a test double). `enqueue_in` stages inside
/// the pipeline's transaction; `wake` is called after it committed.
pub trait Dispatch: Send + Sync {
    fn enqueue_in(
        &self,
        txn: &redb::WriteTransaction,
        notification: &Notification,
    ) -> Result<(), String>;
    /// Stages several notifications in one go (the outbox opens its tables once for all).
    fn enqueue_all_in(
        &self,
        txn: &redb::WriteTransaction,
        notifications: &[Notification],
    ) -> Result<(), String> {
        notifications
            .iter()
            .try_for_each(|notification| self.enqueue_in(txn, notification))
    }
    fn wake(&self);
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("outbox: {0}")]
    Outbox(String),
    #[error("{0}")]
    Rule(#[from] RuleError),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("ingest: {0}")]
    Ingest(String),
}

/// What the pipeline last did with an alert (shown by `GET /api/v1/alerts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AlertState {
    /// Matched by these ignore rules.
    Ignored { by: Vec<String> },
    /// Below its Occurrences count.
    Waiting { seen: u32, needed: u32 },
    /// Handed to grouping (delivery number).
    Due { delivery: u32 },
    /// Issued, inside ReissueDuration.
    Suppressed { until_ms: u64 },
    /// No route takes it.
    Unrouted,
    /// The sender said it ended.
    Resolved,
}

/// One alert fingerprint as last seen, persisted (its sightings feed Occurrences).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    #[serde(with = "super::alert::shared")]
    pub alert: Arc<Alert>,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// The sender's end (v2 `endsAt`), if given.
    #[serde(default)]
    pub ends_at_ms: Option<u64>,
    #[serde(default)]
    pub sightings: Sightings,
    pub state: AlertState,
    #[serde(default)]
    pub receivers: Vec<String>,
}

/// One received alert, with the sender's end when it gave one.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub alert: Alert,
    pub ends_at_ms: Option<u64>,
}

/// Counts of one request's alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestSummary {
    pub received: usize,
    pub ignored: usize,
    pub waiting: usize,
    pub due: usize,
    pub suppressed: usize,
    pub unrouted: usize,
    pub resolved: usize,
}

impl IngestSummary {
    fn add(&mut self, other: &IngestSummary) {
        self.received += other.received;
        self.ignored += other.ignored;
        self.waiting += other.waiting;
        self.due += other.due;
        self.suppressed += other.suppressed;
        self.unrouted += other.unrouted;
        self.resolved += other.resolved;
    }
}

/// A received alert with the work that needs no pipeline state already done
/// ([`Pipeline::prepare`]): labels completed, name and fingerprint set, the routes that take
/// it (routes are configuration, fixed for the process). Group keys are not computed here:
/// only the alerts that turn out due need one, and a firing fleet re-sending its alerts would
/// pay for them on every sighting. The group
/// commit's handlers prepare their alerts in parallel, before they queue, so the single
/// committer only applies state transitions and writes. Ignore rules are matched by the
/// committer: they change at run time and must be the ones in force at commit.
#[derive(Debug)]
pub struct PreparedAlert {
    alert: Arc<Alert>,
    ends_at_ms: Option<u64>,
    /// [`Route::index`] of each route that takes the alert.
    routes: Vec<usize>,
}

/// One request's batch of sightings, as [`Pipeline::ingest_group`] takes it.
#[derive(Debug)]
pub struct IngestRequest<'a> {
    pub alerts: Vec<PreparedAlert>,
    /// Logged with the alerts that become due, and carried by the groups they open.
    pub request_id: Option<&'a str>,
}

/// Durations of the pipeline in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub reissue_ms: u64,
    pub success_ms: u64,
    pub resolve_timeout_ms: u64,
    pub retention_ms: u64,
    /// "Last seen" alone is persisted at most this often per alert.
    pub seen_resolution_ms: u64,
}

impl Settings {
    pub fn from_config(config: &AlertManagerConfig) -> Self {
        let success_ms = duration_ms(config.success_duration.get());
        Self {
            seen_resolution_ms: (success_ms / 20).min(5_000),
            reissue_ms: duration_ms(config.reissue_duration.get()),
            success_ms,
            resolve_timeout_ms: duration_ms(config.resolve_timeout.get()),
            retention_ms: duration_ms(config.alert_retention.get()),
        }
    }
}

#[derive(Default)]
struct State {
    ignores: IgnoreRules,
    alerts: FxHashMap<String, AlertRecord>,
    issued: FxHashMap<String, IssuedAlert>,
    groups: BTreeMap<String, Group>,
    /// The waiting groups each fingerprint is in (the reverse of `Group::alerts`): its record
    /// carries a reference to each.
    memberships: FxHashMap<String, Vec<String>>,
    /// The sequence number of the next group opened (never reused, see the store format).
    next_group_seq: u64,
    /// The "last seen" of each alert as last written to the store.
    persisted_seen: FxHashMap<String, u64>,
    /// Alerts whose content in memory is newer than their content record (changed by a
    /// sighting that was not written): the next write of their state writes it too.
    content_dirty: FxHashSet<String>,
    /// Where each fingerprint's records are stored (see the store format).
    slots: FxHashMap<String, u64>,
    /// The slot the next new fingerprint gets.
    next_slot: u64,
}

impl State {
    /// The slot of `fingerprint`, given one now if it has none. A slot is only a storage
    /// address, so it is given before the commit: if that commit fails, the fingerprint keeps
    /// a slot with nothing stored at it yet, which its next write fills.
    fn slot_for(&mut self, fingerprint: &str) -> u64 {
        if let Some(&slot) = self.slots.get(fingerprint) {
            return slot;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        self.slots.insert(fingerprint.to_owned(), slot);
        slot
    }

    /// The group references of `fingerprint` as memory holds them.
    fn pending_refs(&self, fingerprint: &str) -> Vec<PendingRef> {
        self.memberships
            .get(fingerprint)
            .into_iter()
            .flatten()
            .filter_map(|key| {
                let group = self.groups.get(key)?;
                let pending = group.alerts.get(fingerprint)?;
                Some(PendingRef {
                    group_key: key.clone(),
                    group_seq: group.seq,
                    delivery: pending.delivery,
                    starts_at_ms: pending.starts_at_ms,
                })
            })
            .collect()
    }

    /// Records that `fingerprint` waits in group `key` (memory only).
    fn join(&mut self, fingerprint: &str, key: &str) {
        let keys = self.memberships.entry(fingerprint.to_owned()).or_default();
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_owned());
        }
    }

    /// Forgets a flushed group and the memberships pointing at it (memory only). Returns the
    /// group, so that the caller can drop it after releasing the lock.
    fn remove_group(&mut self, key: &str) -> Option<Group> {
        let group = self.groups.remove(key)?;
        for fingerprint in group.alerts.keys() {
            if let Some(keys) = self.memberships.get_mut(fingerprint) {
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    self.memberships.remove(fingerprint);
                }
            }
        }
        Some(group)
    }
}

/// Stages the state record of a fingerprint at its slot, and its content record when
/// `content` (or both deletions when nothing is left of it).
fn put_fingerprint(
    batch: &mut Batch,
    slot: u64,
    fingerprint: &str,
    record: Option<&AlertRecord>,
    issued: Option<&IssuedAlert>,
    pending: &[PendingRef],
    content: bool,
) {
    if record.is_none() && issued.is_none() && pending.is_empty() {
        batch.delete_slot(SlotTable::States, slot);
        batch.delete_slot(SlotTable::Contents, slot);
        return;
    }
    let mut bytes = Vec::with_capacity(96);
    encode_slot_state(&mut bytes, fingerprint, record, issued, pending);
    batch.put_slot(SlotTable::States, slot, bytes);
    let alert = record.map(|r| &*r.alert).or(issued.map(|i| &*i.alert));
    if content && let Some(alert) = alert {
        let mut bytes = Vec::with_capacity(320);
        encode_content(&mut bytes, alert, issued.map(|i| &*i.alert));
        batch.put_slot(SlotTable::Contents, slot, bytes);
    }
}

/// A sighting that changes nothing but "last seen" (and the alert's content and sightings),
/// applied to memory after the batch committed.
struct Touch {
    alert: Arc<Alert>,
    ends_at_ms: Option<u64>,
    /// The Occurrences rule to record the sighting under (None: an ignored alert, not sighted).
    sighted: Option<OccurrenceRule>,
}

/// Returns whether the alert's content changed.
fn apply_touch(
    record: &mut AlertRecord,
    issued: Option<&mut IssuedAlert>,
    touch: Touch,
    now: u64,
) -> bool {
    let mut changed = false;
    record.last_seen_ms = now;
    record.ends_at_ms = touch.ends_at_ms;
    if let Some(rule) = touch.sighted {
        record.sightings.sight(now, rule);
    }
    if let Some(issued) = issued {
        issued.last_seen_ms = now;
        issued.success_withheld_since_ms = None;
        if *issued.alert != *touch.alert {
            issued.alert = Arc::clone(&touch.alert);
            changed = true;
        }
    }
    if *record.alert != *touch.alert {
        record.alert = touch.alert;
        changed = true;
    }
    changed
}

/// A host a Success depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostKey {
    pub index: String,
    pub host: String,
}

/// Whether monitor-api says a host is Active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Active,
    Inactive,
    /// Not answerable (monitor-api unreachable, no host label, host unknown): not known active.
    Unknown,
}

/// The pipeline: its state in memory (loaded from the store at start) and the store.
pub struct Pipeline {
    store: Store,
    state: Mutex<State>,
    router: Router,
    dispatch: Arc<dyn Dispatch>,
    clock: Arc<dyn Clock>,
    metrics: AlertMetrics,
    settings: Settings,
    /// Wakes the ticker when a group opened (it may be due before the ticker's next wake).
    pub group_opened: tokio::sync::Notify,
}

/// Adds one stored fingerprint to memory: its alert record, issued entry, and its memberships
/// of the loaded waiting groups (a reference to a flushed group is stale and dropped).
fn attach(state: &mut State, fingerprint: String, stored: FingerprintRecord) {
    let FingerprintRecord {
        record,
        issued,
        pending,
    } = stored;
    for reference in pending {
        let alert = record
            .as_ref()
            .map(|r| &r.alert)
            .or(issued.as_ref().map(|i| &i.alert));
        if let Some(group) = state.groups.get_mut(&reference.group_key)
            && group.seq == reference.group_seq
            && let Some(alert) = alert
        {
            group.alerts.insert(
                fingerprint.clone(),
                PendingAlert {
                    alert: Arc::clone(alert),
                    delivery: reference.delivery,
                    starts_at_ms: reference.starts_at_ms,
                },
            );
            state.join(&fingerprint, &reference.group_key);
        }
    }
    if let Some(record) = record {
        state
            .persisted_seen
            .insert(fingerprint.clone(), record.last_seen_ms);
        state.alerts.insert(fingerprint.clone(), record);
    }
    if let Some(issued) = issued {
        state.issued.insert(fingerprint, issued);
    }
}

/// Loads the group headers and the next group sequence number (past every loaded group's).
fn load_group_headers(store: &Store, state: &mut State) -> Result<(), PipelineError> {
    let mut max_seq = 0;
    for (key, group) in
        store.load_with(Table::GroupHeaders, |_, bytes| decode_group_header(bytes))?
    {
        max_seq = max_seq.max(group.seq);
        state.groups.insert(key, group);
    }
    state.next_group_seq = store
        .meta(META_NEXT_GROUP_SEQ)?
        .unwrap_or(0)
        .max(max_seq + 1);
    Ok(())
}

/// Loads format 3 state: group headers, then the slots' state records with their contents.
fn load_state(store: &Store, state: &mut State) -> Result<(), PipelineError> {
    load_group_headers(store, state)?;
    let contents: FxHashMap<u64, AlertContent> = store
        .load_slots(SlotTable::Contents, |_, bytes| decode_content(bytes))?
        .into_iter()
        .collect();
    let records = store.load_slots(SlotTable::States, |slot, bytes| {
        decode_slot_state(bytes, contents.get(&slot))
    })?;
    drop(contents);
    for (slot, (fingerprint, stored)) in records {
        // Slots load in ascending order: were a fingerprint ever stored at two slots, the later
        // one (its last write) wins, the same way at every start.
        state.slots.insert(fingerprint.clone(), slot);
        state.next_slot = state.next_slot.max(slot + 1);
        attach(state, fingerprint, stored);
    }
    Ok(())
}

/// Reads format 2 (the same records keyed by fingerprint) and rewrites it as format 3.
fn migrate_format_2(store: &mut Store, state: &mut State) -> Result<(), PipelineError> {
    load_group_headers(store, state)?;
    let contents: FxHashMap<String, AlertContent> = store
        .load_legacy_with(LegacyTable::Contents, |_, bytes| decode_content(bytes))?
        .into_iter()
        .collect();
    let records = store.load_legacy_with(LegacyTable::Fingerprints, |fingerprint, bytes| {
        decode_fingerprint(fingerprint, bytes, contents.get(fingerprint))
    })?;
    drop(contents);
    for (fingerprint, stored) in records {
        attach(state, fingerprint, stored);
    }
    rewrite_migrated(store, state, 2)
}

/// Reads format 1 (JSON alert, issued and group records) and rewrites it as format 3.
fn migrate_format_1(store: &mut Store, state: &mut State) -> Result<(), PipelineError> {
    state.alerts = store
        .load_legacy::<AlertRecord>(LegacyTable::Alerts)?
        .into_iter()
        .collect();
    state.issued = store
        .load_legacy::<IssuedAlert>(LegacyTable::Issued)?
        .into_iter()
        .collect();
    for (key, mut group) in store.load_legacy::<Group>(LegacyTable::Groups)? {
        state.next_group_seq += 1;
        group.seq = state.next_group_seq;
        let fingerprints: Vec<String> = group.alerts.keys().cloned().collect();
        state.groups.insert(key.clone(), group);
        for fingerprint in fingerprints {
            state.join(&fingerprint, &key);
        }
    }
    state.next_group_seq += 1;
    for (fingerprint, record) in &state.alerts {
        state
            .persisted_seen
            .insert(fingerprint.clone(), record.last_seen_ms);
    }
    rewrite_migrated(store, state, 1)
}

/// Writes the state loaded from an earlier format as format 3, in one transaction that also
/// drops the earlier tables. Slots are given in order of first sighting, the order in which
/// a running build would have given them.
fn rewrite_migrated(store: &mut Store, state: &mut State, from: u64) -> Result<(), PipelineError> {
    let mut fingerprints: Vec<(u64, String)> = state
        .alerts
        .keys()
        .chain(state.issued.keys())
        .chain(state.memberships.keys())
        .collect::<FxHashSet<&String>>()
        .into_iter()
        .map(|fingerprint| {
            let first = state
                .alerts
                .get(fingerprint)
                .map(|r| r.first_seen_ms)
                .or(state.issued.get(fingerprint).map(|i| i.first_delivered_ms))
                .unwrap_or(0);
            (first, fingerprint.clone())
        })
        .collect();
    fingerprints.sort_unstable();
    let mut batch = Batch::default();
    for (_, fingerprint) in &fingerprints {
        let slot = state.slot_for(fingerprint);
        put_fingerprint(
            &mut batch,
            slot,
            fingerprint,
            state.alerts.get(fingerprint),
            state.issued.get(fingerprint),
            &state.pending_refs(fingerprint),
            true,
        );
    }
    for group in state.groups.values() {
        batch.put_bytes(Table::GroupHeaders, &group.key, encode_group_header(group));
    }
    batch.set_meta(META_NEXT_GROUP_SEQ, state.next_group_seq);
    store.finish_migration(batch)?;
    tracing::info!(
        alerts = state.alerts.len(),
        issued = state.issued.len(),
        groups = state.groups.len(),
        "state database migrated from format {from} to format {}",
        super::store::FORMAT
    );
    Ok(())
}

impl Pipeline {
    /// Loads the persisted state.
    pub fn open(
        mut store: Store,
        config: &AlertManagerConfig,
        dispatch: Arc<dyn Dispatch>,
        clock: Arc<dyn Clock>,
        metrics: AlertMetrics,
    ) -> Result<Self, PipelineError> {
        let mut state = State::default();
        for (_, rule) in store.load::<IgnoreRule>(Table::Ignores)? {
            match validate_rule(&rule, "matchers", "ends_at") {
                Ok(matchers) => state.ignores.upsert(rule, matchers),
                // A stored rule that no longer compiles (a regex engine change) is kept on disk
                // and reported, never silently dropped.
                Err(error) => {
                    tracing::error!(rule = %rule.id, %error, "stored ignore rule does not compile; it is not applied")
                }
            }
        }
        match store.legacy_format() {
            Some(1) => migrate_format_1(&mut store, &mut state)?,
            Some(_) => migrate_format_2(&mut store, &mut state)?,
            None => load_state(&store, &mut state)?,
        }
        metrics.issued.set(state.issued.len() as i64);
        metrics.ignore_rules.set(state.ignores.len() as i64);
        metrics.groups_waiting.set(state.groups.len() as i64);
        Ok(Self {
            store,
            state: Mutex::new(state),
            router: Router::new(config),
            dispatch,
            clock,
            metrics,
            settings: Settings::from_config(config),
            group_opened: tokio::sync::Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn metrics(&self) -> &AlertMetrics {
        &self.metrics
    }

    /// Does the per-alert work that needs no pipeline state (no lock taken): see
    /// [`PreparedAlert`].
    pub fn prepare(&self, incoming: Incoming) -> PreparedAlert {
        let Incoming {
            mut alert,
            ends_at_ms,
        } = incoming;
        alert.complete_labels();
        if alert.name.is_empty()
            && let Some(name) = alert.labels.get("alertname")
        {
            alert.name = name.clone();
        }
        alert.fingerprint = alert.computed_fingerprint();
        let routes = self
            .router
            .routes_for(&alert.labels)
            .into_iter()
            .map(|route| route.index)
            .collect();
        PreparedAlert {
            alert: Arc::new(alert),
            ends_at_ms,
            routes,
        }
    }

    /// [`Pipeline::prepare`] for a batch.
    pub fn prepare_all(&self, batch: Vec<Incoming>) -> Vec<PreparedAlert> {
        batch
            .into_iter()
            .map(|incoming| self.prepare(incoming))
            .collect()
    }

    /// Runs a batch of sightings through the pipeline and commits the result.
    pub fn ingest(
        &self,
        batch: Vec<Incoming>,
        request_id: Option<&str>,
    ) -> Result<IngestSummary, PipelineError> {
        let mut summaries = self.ingest_group(vec![IngestRequest {
            alerts: self.prepare_all(batch),
            request_id,
        }])?;
        Ok(summaries.pop().unwrap_or_default())
    }

    /// Runs several requests' batches through the pipeline in order and commits them all in one
    /// transaction (group commit): one summary per request, in the order given. The outcome is
    /// that of ingesting them one after the other at the same instant; a failed commit fails
    /// them all and changes nothing.
    pub fn ingest_group(
        &self,
        requests: Vec<IngestRequest<'_>>,
    ) -> Result<Vec<IngestSummary>, PipelineError> {
        let mut state = self.lock();
        let now = self.clock.now_ms();
        let mut summaries = vec![IngestSummary::default(); requests.len()];
        // Work on copies of the touched records; memory is updated only after the commit.
        let mut alerts: FxHashMap<String, AlertRecord> = FxHashMap::default();
        let mut issued: FxHashMap<String, Option<IssuedAlert>> = FxHashMap::default();
        // Sightings that change nothing worth writing, by fingerprint (no copy of the records).
        let mut touches: FxHashMap<String, Touch> = FxHashMap::default();
        // Groups opened by this batch, alerts joining groups that were already waiting, and the
        // group references each fingerprint gains.
        let mut opened: FxHashMap<String, Group> = FxHashMap::default();
        let mut joined: Vec<(String, PendingAlert)> = Vec::new();
        let mut new_refs: FxHashMap<String, Vec<PendingRef>> = FxHashMap::default();
        let mut next_group_seq = state.next_group_seq;
        // Fingerprints whose records changed more than their "last seen" in this batch, and
        // those of them whose alert content changed too.
        let mut material: FxHashSet<String> = FxHashSet::default();
        let mut content_changed: FxHashSet<String> = FxHashSet::default();
        for (request, summary) in requests.into_iter().zip(summaries.iter_mut()) {
            let request_id = request.request_id;
            for PreparedAlert {
                alert,
                ends_at_ms,
                routes: prepared_routes,
            } in request.alerts
            {
                summary.received += 1;
                let fingerprint = alert.fingerprint.clone();
                // The router is fixed for the process: the routes found when the alert was
                // prepared are the ones it would find now.
                let routes: Vec<&Route> = prepared_routes
                    .into_iter()
                    .filter_map(|index| self.router.route_at(index))
                    .collect();
                let first_in_batch =
                    !alerts.contains_key(&fingerprint) && !touches.contains_key(&fingerprint);
                if first_in_batch
                    && let Some(quiet) =
                        self.unchanged_sighting(&state, &alert, &routes, ends_at_ms, now)
                {
                    match quiet {
                        None => {
                            summary.ignored += 1;
                            tracing::debug!(fingerprint = %fingerprint, "alert ignored");
                        }
                        Some(_) => summary.suppressed += 1,
                    }
                    touches.insert(
                        fingerprint,
                        Touch {
                            alert,
                            ends_at_ms,
                            sighted: quiet,
                        },
                    );
                    continue;
                }
                let issued_entry = issued
                    .entry(fingerprint.clone())
                    .or_insert_with(|| state.issued.get(&fingerprint).cloned());
                let mut record = match alerts.remove(&fingerprint) {
                    Some(record) => record,
                    None => match state.alerts.get(&fingerprint) {
                        Some(record) => {
                            let mut record = record.clone();
                            // An earlier sighting of this batch that changed nothing: it counts.
                            if let Some(touch) = touches.remove(&fingerprint)
                                && apply_touch(&mut record, issued_entry.as_mut(), touch, now)
                            {
                                content_changed.insert(fingerprint.clone());
                            }
                            record
                        }
                        None => {
                            content_changed.insert(fingerprint.clone());
                            AlertRecord {
                                alert: Arc::clone(&alert),
                                first_seen_ms: now,
                                last_seen_ms: now,
                                ends_at_ms: None,
                                sightings: Sightings::default(),
                                state: AlertState::Unrouted,
                                receivers: Vec::new(),
                            }
                        }
                    },
                };
                let previous_state = record.state.clone();
                // A record made from this very alert (a first sighting) is not compared field by
                // field with itself.
                if !Arc::ptr_eq(&record.alert, &alert) && *record.alert != *alert {
                    record.alert = Arc::clone(&alert);
                    content_changed.insert(fingerprint.clone());
                }
                record.ends_at_ms = ends_at_ms;
                let was_withheld = issued_entry
                    .as_ref()
                    .is_some_and(|i| i.success_withheld_since_ms.is_some());

                if ends_at_ms.is_some_and(|end| end <= now) {
                    summary.resolved += 1;
                    record.state = AlertState::Resolved;
                    material.insert(fingerprint.clone());
                    alerts.insert(fingerprint, record);
                    continue;
                }
                record.last_seen_ms = now;
                if let Some(existing) = issued_entry.as_mut() {
                    // Still firing (even if ignored or below Occurrences): not a recovery.
                    existing.last_seen_ms = now;
                    existing.success_withheld_since_ms = None;
                    if !Arc::ptr_eq(&existing.alert, &alert) && *existing.alert != *alert {
                        existing.alert = Arc::clone(&alert);
                        content_changed.insert(fingerprint.clone());
                    }
                }
                let ignored_by = state.ignores.matching(&alert.labels, now);
                if !ignored_by.is_empty() {
                    summary.ignored += 1;
                    tracing::debug!(fingerprint = %fingerprint, rules = ?ignored_by, "alert ignored");
                    record.state = AlertState::Ignored { by: ignored_by };
                    if record.state != previous_state
                        || was_withheld
                        || !self.seen_recently_persisted(&state, &fingerprint, now)
                    {
                        material.insert(fingerprint.clone());
                    }
                    alerts.insert(fingerprint, record);
                    continue;
                }
                if !routes
                    .iter()
                    .map(|r| &r.receiver)
                    .eq(record.receivers.iter())
                {
                    record.receivers = routes.iter().map(|r| r.receiver.clone()).collect();
                }
                if routes.is_empty() {
                    summary.unrouted += 1;
                    tracing::warn!(fingerprint = %fingerprint, "no route takes the alert and there is no default_receiver");
                    record.state = AlertState::Unrouted;
                    material.insert(fingerprint.clone());
                    alerts.insert(fingerprint, record);
                    continue;
                }
                let rule = self.router.occurrences_for(&routes);
                if let Sighting::Waiting { seen, needed } = record.sightings.sight(now, rule) {
                    summary.waiting += 1;
                    record.state = AlertState::Waiting { seen, needed };
                    material.insert(fingerprint.clone());
                    alerts.insert(fingerprint, record);
                    continue;
                }
                match decide(
                    issued_entry,
                    &fingerprint,
                    &alert,
                    now,
                    self.settings.reissue_ms,
                ) {
                    IssueDecision::Suppressed { until_ms } => {
                        summary.suppressed += 1;
                        record.state = AlertState::Suppressed { until_ms };
                        if record.state != previous_state
                            || was_withheld
                            || !self.seen_recently_persisted(&state, &fingerprint, now)
                        {
                            material.insert(fingerprint.clone());
                        }
                    }
                    IssueDecision::Deliver {
                        delivery,
                        starts_at_ms,
                    } => {
                        summary.due += 1;
                        material.insert(fingerprint.clone());
                        tracing::info!(fingerprint = %fingerprint, delivery, request_id = request_id.unwrap_or(""), "alert due for delivery");
                        record.state = AlertState::Due { delivery };
                        for route in &routes {
                            let key = super::grouping::group_key_only(route, &alert.labels);
                            let pending = PendingAlert {
                                alert: Arc::clone(&alert),
                                delivery,
                                starts_at_ms,
                            };
                            let group_seq = if let Some(group) = opened.get_mut(&key) {
                                group.alerts.insert(fingerprint.clone(), pending);
                                group.seq
                            } else if let Some(group) = state.groups.get(&key) {
                                joined.push((key.clone(), pending));
                                group.seq
                            } else {
                                let mut group = Group::open(
                                    route,
                                    &alert.labels,
                                    now,
                                    request_id.map(str::to_owned),
                                    next_group_seq,
                                );
                                next_group_seq += 1;
                                group.alerts.insert(fingerprint.clone(), pending);
                                opened.insert(key.clone(), group);
                                next_group_seq - 1
                            };
                            let refs = new_refs.entry(fingerprint.clone()).or_default();
                            refs.retain(|r| r.group_key != key);
                            refs.push(PendingRef {
                                group_key: key,
                                group_seq,
                                delivery,
                                starts_at_ms,
                            });
                        }
                    }
                }
                alerts.insert(fingerprint, record);
            }
        }

        let mut batch = Batch::default();
        for fingerprint in &material {
            let slot = state.slot_for(fingerprint);
            let issued_now = match issued.get(fingerprint) {
                Some(entry) => entry.as_ref(),
                None => state.issued.get(fingerprint),
            };
            let mut refs = state.pending_refs(fingerprint);
            if let Some(added) = new_refs.get(fingerprint) {
                refs.retain(|r| !added.iter().any(|a| a.group_key == r.group_key));
                refs.extend(added.iter().cloned());
            }
            let content =
                content_changed.contains(fingerprint) || state.content_dirty.contains(fingerprint);
            put_fingerprint(
                &mut batch,
                slot,
                fingerprint,
                alerts.get(fingerprint),
                issued_now,
                &refs,
                content,
            );
        }
        for (key, group) in &opened {
            batch.put_bytes(Table::GroupHeaders, key, encode_group_header(group));
        }
        if next_group_seq != state.next_group_seq {
            batch.set_meta(META_NEXT_GROUP_SEQ, next_group_seq);
        }
        if let Err(error) = self.store.commit(batch) {
            self.metrics.store_errors.inc();
            return Err(error.into());
        }
        for fingerprint in &material {
            if let Some(record) = alerts.get(fingerprint) {
                state
                    .persisted_seen
                    .insert(fingerprint.clone(), record.last_seen_ms);
            }
            state.content_dirty.remove(fingerprint);
        }
        {
            let State {
                alerts: known,
                issued: known_issued,
                content_dirty,
                ..
            } = &mut *state;
            for (fingerprint, touch) in touches {
                if let Some(record) = known.get_mut(&fingerprint)
                    && apply_touch(record, known_issued.get_mut(&fingerprint), touch, now)
                {
                    content_dirty.insert(fingerprint);
                }
            }
        }
        state.alerts.extend(alerts);
        for (fingerprint, record) in issued {
            if let Some(record) = record {
                state.issued.insert(fingerprint, record);
            }
        }
        let opened_group = !opened.is_empty();
        for (key, group) in opened {
            for fingerprint in group.alerts.keys() {
                state.join(fingerprint, &key);
            }
            state.groups.insert(key, group);
        }
        for (key, pending) in joined {
            state.join(&pending.alert.fingerprint, &key);
            if let Some(group) = state.groups.get_mut(&key) {
                group
                    .alerts
                    .insert(pending.alert.fingerprint.clone(), pending);
            }
        }
        state.next_group_seq = next_group_seq;
        self.metrics.issued.set(state.issued.len() as i64);
        self.metrics.groups_waiting.set(state.groups.len() as i64);
        drop(state);
        let summary = summaries
            .iter()
            .fold(IngestSummary::default(), |mut total, s| {
                total.add(s);
                total
            });
        self.metrics.received.inc_by(summary.received as u64);
        self.metrics.ignored.inc_by(summary.ignored as u64);
        self.metrics
            .waiting_occurrences
            .inc_by(summary.waiting as u64);
        self.metrics.due.inc_by(summary.due as u64);
        self.metrics
            .suppressed_reissue
            .inc_by(summary.suppressed as u64);
        self.metrics.unrouted.inc_by(summary.unrouted as u64);
        self.metrics
            .resolved_by_sender
            .inc_by(summary.resolved as u64);
        if opened_group {
            self.group_opened.notify_one();
        }
        Ok(summaries)
    }

    /// Recognises a sighting that would change nothing but "last seen" (and the alert's content
    /// and sightings) and need not be written: the alert is still ignored by the same rules, or
    /// still suppressed inside ReissueDuration on the same receivers, its Success is not
    /// withheld, and its "last seen" on disk is recent. `Some(None)`: still ignored;
    /// `Some(Some(rule))`: still suppressed, sighted under `rule`. Reads only, so no copy.
    fn unchanged_sighting(
        &self,
        state: &State,
        alert: &Alert,
        routes: &[&Route],
        ends_at_ms: Option<u64>,
        now: u64,
    ) -> Option<Option<OccurrenceRule>> {
        if ends_at_ms.is_some_and(|end| end <= now) {
            return None;
        }
        let fingerprint = alert.fingerprint.as_str();
        let record = state.alerts.get(fingerprint)?;
        let issued = state.issued.get(fingerprint);
        if issued.is_some_and(|i| i.success_withheld_since_ms.is_some())
            || !self.seen_recently_persisted(state, fingerprint, now)
        {
            return None;
        }
        match &record.state {
            AlertState::Ignored { by } => {
                (state.ignores.matching(&alert.labels, now) == *by).then_some(None)
            }
            AlertState::Suppressed { until_ms } => {
                let issued = issued?;
                if now >= *until_ms
                    || issued
                        .last_delivered_ms
                        .saturating_add(self.settings.reissue_ms)
                        != *until_ms
                    || !state.ignores.matching(&alert.labels, now).is_empty()
                {
                    return None;
                }
                if routes.is_empty()
                    || !routes
                        .iter()
                        .map(|r| &r.receiver)
                        .eq(record.receivers.iter())
                {
                    return None;
                }
                let rule = self.router.occurrences_for(routes);
                record
                    .sightings
                    .would_reach(now, rule)
                    .then_some(Some(rule))
            }
            _ => None,
        }
    }

    /// Whether this alert's "last seen" on disk is recent enough not to rewrite it for a
    /// sighting that changes nothing else.
    fn seen_recently_persisted(&self, state: &State, fingerprint: &str, now: u64) -> bool {
        state
            .persisted_seen
            .get(fingerprint)
            .is_some_and(|&at| now.saturating_sub(at) < self.settings.seen_resolution_ms)
    }

    /// The earliest time a waiting group is due.
    pub fn next_group_due_ms(&self) -> Option<u64> {
        self.lock().groups.values().map(|g| g.due_ms).min()
    }

    /// Hands every due group to the outbox (one transaction), returns how many notifications.
    pub fn flush_due_groups(&self) -> Result<usize, PipelineError> {
        let mut state = self.lock();
        let now = self.clock.now_ms();
        let due: Vec<String> = state
            .groups
            .values()
            .filter(|g| g.due_ms <= now)
            .map(|g| g.key.clone())
            .collect();
        if due.is_empty() {
            return Ok(0);
        }
        let mut batch = Batch::default();
        let mut notifications = Vec::new();
        let mut unissue: Vec<String> = Vec::new();
        for key in &due {
            batch.delete(Table::GroupHeaders, key);
            let Some(group) = state.groups.get(key) else {
                continue;
            };
            // A rule added while the group waited still wins: its alerts are not delivered, and
            // a first delivery that never happened is not recorded as issued.
            let ignored: Vec<String> = group
                .alerts
                .iter()
                .filter(|(_, p)| !state.ignores.matching(&p.alert.labels, now).is_empty())
                .map(|(fp, _)| fp.clone())
                .collect();
            for fingerprint in &ignored {
                if group
                    .alerts
                    .get(fingerprint)
                    .is_some_and(|pending| pending.delivery == 1)
                {
                    unissue.push(fingerprint.clone());
                }
            }
            notifications.extend(group.notification_without(&ignored, now));
        }
        // Taken off IssuedAlerts: rewritten without the issued entry and the flushed groups.
        for fingerprint in &unissue {
            let slot = state.slot_for(fingerprint);
            let refs: Vec<PendingRef> = state
                .pending_refs(fingerprint)
                .into_iter()
                .filter(|r| !due.contains(&r.group_key))
                .collect();
            put_fingerprint(
                &mut batch,
                slot,
                fingerprint,
                state.alerts.get(fingerprint),
                None,
                &refs,
                false,
            );
        }
        let txn = self.store.begin()?;
        self.store.write(&txn, batch)?;
        self.dispatch
            .enqueue_all_in(&txn, &notifications)
            .map_err(PipelineError::Outbox)?;
        if let Err(error) = txn.commit() {
            self.metrics.store_errors.inc();
            return Err(super::store::commit_error(error).into());
        }
        // Freed after the lock is released: a thousand groups' alerts take a while to drop.
        let flushed: Vec<Group> = due
            .iter()
            .filter_map(|key| state.remove_group(key))
            .collect();
        for fingerprint in &unissue {
            state.issued.remove(fingerprint);
        }
        self.metrics.groups_waiting.set(state.groups.len() as i64);
        self.metrics.issued.set(state.issued.len() as i64);
        drop(state);
        drop(flushed);
        self.count_sent(&notifications);
        if !notifications.is_empty() {
            self.dispatch.wake();
        }
        Ok(notifications.len())
    }

    fn count_sent(&self, notifications: &[Notification]) {
        for notification in notifications {
            let status = match notification.status {
                NotificationStatus::Firing => "firing",
                NotificationStatus::Resolved => "resolved",
            };
            tracing::info!(
                notification = %notification.id,
                receiver = %notification.receiver,
                group = %notification.group_key,
                status,
                alerts = notification.alerts.len(),
                fingerprints = %notification.alerts.iter().map(|a| a.alert.fingerprint.as_str()).collect::<Vec<_>>().join(","),
                request_id = notification.request_id.as_deref().unwrap_or(""),
                "notification handed to the outbox"
            );
            self.metrics
                .notifications
                .get_or_create(&ReceiverLabels {
                    receiver: notification.receiver.clone(),
                    status,
                })
                .inc();
            self.metrics
                .delivered_alerts
                .get_or_create(&StatusLabels { status })
                .inc_by(notification.alerts.len() as u64);
        }
    }

    /// Issued alerts quiet for SuccessDuration, by the host whose liveness decides them.
    pub fn success_candidates(&self) -> BTreeMap<HostKey, Vec<String>> {
        let state = self.lock();
        let now = self.clock.now_ms();
        let mut candidates: BTreeMap<HostKey, Vec<String>> = BTreeMap::new();
        for (fingerprint, issued) in &state.issued {
            if issued.quiet_for(now, self.settings.success_ms) {
                let labels = &issued.alert.labels;
                let key = HostKey {
                    index: labels.get("index").cloned().unwrap_or_default(),
                    host: labels.get("host").cloned().unwrap_or_default(),
                };
                candidates.entry(key).or_default().push(fingerprint.clone());
            }
        }
        candidates
    }

    /// Sends a Success for each candidate whose host is Active and removes it from IssuedAlerts;
    /// the others stay issued (marked withheld). Returns the number of Success alerts.
    pub fn apply_successes(
        &self,
        liveness: &BTreeMap<HostKey, Liveness>,
    ) -> Result<usize, PipelineError> {
        let mut state = self.lock();
        let now = self.clock.now_ms();
        let mut over: Vec<(Alert, u64, u32, Vec<Route>)> = Vec::new();
        let mut withheld: Vec<IssuedAlert> = Vec::new();
        let mut batch = Batch::default();
        for issued in state.issued.values() {
            if !issued.quiet_for(now, self.settings.success_ms) {
                continue;
            }
            let labels = &issued.alert.labels;
            let key = HostKey {
                index: labels.get("index").cloned().unwrap_or_default(),
                host: labels.get("host").cloned().unwrap_or_default(),
            };
            match liveness.get(&key) {
                Some(Liveness::Active) => {
                    let routes: Vec<Route> = self
                        .router
                        .routes_for(labels)
                        .into_iter()
                        .cloned()
                        .collect();
                    over.push((
                        Alert::clone(&issued.alert),
                        issued.first_delivered_ms,
                        issued.deliveries,
                        routes,
                    ));
                }
                Some(_) if issued.success_withheld_since_ms.is_none() => {
                    let mut marked = issued.clone();
                    marked.success_withheld_since_ms = Some(now);
                    withheld.push(marked);
                }
                _ => {}
            }
        }
        if over.is_empty() && withheld.is_empty() {
            return Ok(0);
        }
        for marked in &withheld {
            let fingerprint = &marked.fingerprint;
            let slot = state.slot_for(fingerprint);
            put_fingerprint(
                &mut batch,
                slot,
                fingerprint,
                state.alerts.get(fingerprint),
                Some(marked),
                &state.pending_refs(fingerprint),
                false,
            );
        }
        let mut records = Vec::new();
        for (alert, _, _, _) in &over {
            let fingerprint = &alert.fingerprint;
            let record = state.alerts.get(fingerprint).map(|record| {
                let mut record = record.clone();
                record.sightings.clear();
                record.state = AlertState::Resolved;
                record
            });
            let slot = state.slot_for(fingerprint);
            put_fingerprint(
                &mut batch,
                slot,
                fingerprint,
                record.as_ref(),
                None,
                &state.pending_refs(fingerprint),
                false,
            );
            records.extend(record);
        }
        let notifications = resolved_notifications(&over, now);
        let txn = self.store.begin()?;
        self.store.write(&txn, batch)?;
        self.dispatch
            .enqueue_all_in(&txn, &notifications)
            .map_err(PipelineError::Outbox)?;
        if let Err(error) = txn.commit() {
            self.metrics.store_errors.inc();
            return Err(super::store::commit_error(error).into());
        }
        for (alert, _, _, _) in &over {
            state.issued.remove(&alert.fingerprint);
            tracing::info!(fingerprint = %alert.fingerprint, "alert over, host active: Success");
        }
        for record in records {
            state
                .alerts
                .insert(record.alert.fingerprint.clone(), record);
        }
        for marked in withheld {
            tracing::info!(fingerprint = %marked.fingerprint, host = %marked.alert.labels.get("host").map(String::as_str).unwrap_or(""), "alert quiet but host not known to be Active: no Success");
            self.metrics.successes_withheld.inc();
            state.issued.insert(marked.fingerprint.clone(), marked);
        }
        self.metrics.issued.set(state.issued.len() as i64);
        drop(state);
        self.metrics.successes.inc_by(over.len() as u64);
        self.count_sent(&notifications);
        if !notifications.is_empty() {
            self.dispatch.wake();
        }
        Ok(over.len())
    }

    /// Forgets alert records not seen for the retention (unless issued) and expired ignore
    /// rules older than it.
    pub fn forget_old(&self) -> Result<(), PipelineError> {
        let mut state = self.lock();
        let now = self.clock.now_ms();
        let horizon = now.saturating_sub(self.settings.retention_ms);
        // A fingerprint whose records were all deleted (its last write found nothing to keep)
        // still holds its slot in memory: let it go, it gets a new one if it comes back.
        let State {
            slots,
            alerts,
            issued,
            memberships,
            ..
        } = &mut *state;
        slots.retain(|fingerprint, _| {
            alerts.contains_key(fingerprint)
                || issued.contains_key(fingerprint)
                || memberships.contains_key(fingerprint)
        });
        let stale_alerts: Vec<String> = state
            .alerts
            .iter()
            .filter(|(fp, r)| r.last_seen_ms < horizon && !state.issued.contains_key(*fp))
            .map(|(fp, _)| fp.clone())
            .collect();
        let stale_rules: Vec<String> = state
            .ignores
            .all()
            .filter(|r| r.ends_at_ms.is_some_and(|end| end < horizon))
            .map(|r| r.id.clone())
            .collect();
        if stale_alerts.is_empty() && stale_rules.is_empty() {
            return Ok(());
        }
        let mut batch = Batch::default();
        for fp in &stale_alerts {
            if let Some(&slot) = state.slots.get(fp) {
                batch.delete_slot(SlotTable::States, slot);
                batch.delete_slot(SlotTable::Contents, slot);
            }
        }
        for id in &stale_rules {
            batch.delete(Table::Ignores, id);
        }
        self.store.commit(batch)?;
        for fp in &stale_alerts {
            state.alerts.remove(fp);
            state.persisted_seen.remove(fp);
            state.content_dirty.remove(fp);
            state.slots.remove(fp);
        }
        for id in &stale_rules {
            state.ignores.remove(id);
        }
        self.metrics.ignore_rules.set(state.ignores.len() as i64);
        Ok(())
    }

    // ------------------------------------------------------------------ operators' views

    /// Validates, persists and applies an ignore rule (new or replacing one with its id).
    pub fn put_ignore(
        &self,
        rule: IgnoreRule,
        matchers_field: &str,
        end_field: &str,
    ) -> Result<IgnoreRule, PipelineError> {
        let matchers = validate_rule(&rule, matchers_field, end_field)?;
        let mut state = self.lock();
        let mut batch = Batch::default();
        batch.put(Table::Ignores, &rule.id, &rule)?;
        self.store.commit(batch)?;
        tracing::info!(rule = %rule.id, author = %rule.author, matchers = %rule.matchers.iter().map(|m| m.text()).collect::<Vec<_>>().join(","), "ignore rule stored");
        state.ignores.upsert(rule.clone(), matchers);
        self.metrics.ignore_rules.set(state.ignores.len() as i64);
        Ok(rule)
    }

    pub fn remove_ignore(&self, id: &str) -> Result<IgnoreRule, PipelineError> {
        let mut state = self.lock();
        if state.ignores.get(id).is_none() {
            return Err(PipelineError::NotFound(format!("ignore rule {id}")));
        }
        let mut batch = Batch::default();
        batch.delete(Table::Ignores, id);
        self.store.commit(batch)?;
        let removed = state
            .ignores
            .remove(id)
            .ok_or_else(|| PipelineError::NotFound(format!("ignore rule {id}")))?;
        self.metrics.ignore_rules.set(state.ignores.len() as i64);
        tracing::info!(rule = %id, "ignore rule removed");
        Ok(removed)
    }

    /// Ends a rule now (Alertmanager's silence expiry): kept, shown as expired.
    pub fn expire_ignore(&self, id: &str) -> Result<IgnoreRule, PipelineError> {
        let now = self.clock.now_ms();
        let mut rule = self
            .ignore(id)
            .ok_or_else(|| PipelineError::NotFound(format!("silence {id}")))?;
        if rule.state(now) != super::ignore::RuleState::Expired {
            rule.ends_at_ms = Some(now.max(rule.starts_at_ms));
            rule.updated_at_ms = now;
        }
        self.put_ignore(rule, "matchers", "endsAt")
    }

    pub fn ignore(&self, id: &str) -> Option<IgnoreRule> {
        self.lock().ignores.get(id).cloned()
    }

    pub fn ignores(&self) -> Vec<IgnoreRule> {
        let mut rules: Vec<IgnoreRule> = self.lock().ignores.all().cloned().collect();
        rules.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        rules
    }

    pub fn issued(&self) -> Vec<IssuedAlert> {
        let mut issued: Vec<IssuedAlert> = self.lock().issued.values().cloned().collect();
        issued.sort_by(|a, b| {
            (a.first_delivered_ms, &a.fingerprint).cmp(&(b.first_delivered_ms, &b.fingerprint))
        });
        issued
    }

    /// An operator declares an issued alert over without a Success message.
    pub fn clear_issued(&self, fingerprint: &str) -> Result<IssuedAlert, PipelineError> {
        let mut state = self.lock();
        if !state.issued.contains_key(fingerprint) {
            return Err(PipelineError::NotFound(format!(
                "issued alert {fingerprint}"
            )));
        }
        let mut batch = Batch::default();
        let slot = state.slot_for(fingerprint);
        put_fingerprint(
            &mut batch,
            slot,
            fingerprint,
            state.alerts.get(fingerprint),
            None,
            &state.pending_refs(fingerprint),
            false,
        );
        self.store.commit(batch)?;
        let removed = state
            .issued
            .remove(fingerprint)
            .ok_or_else(|| PipelineError::NotFound(format!("issued alert {fingerprint}")))?;
        self.metrics.issued.set(state.issued.len() as i64);
        tracing::info!(fingerprint, "issued alert cleared by an operator");
        Ok(removed)
    }

    pub fn alerts(&self) -> Vec<AlertRecord> {
        let mut alerts: Vec<AlertRecord> = self.lock().alerts.values().cloned().collect();
        alerts.sort_by(|a, b| {
            (a.first_seen_ms, &a.alert.fingerprint).cmp(&(b.first_seen_ms, &b.alert.fingerprint))
        });
        alerts
    }

    /// The ignore rules active now that match these labels (for the v2 alert status).
    pub fn active_ignores_for(&self, labels: &BTreeMap<String, String>) -> Vec<String> {
        let now = self.clock.now_ms();
        self.lock().ignores.matching(labels, now)
    }

    pub fn groups(&self) -> Vec<Group> {
        self.lock().groups.values().cloned().collect()
    }

    /// Fingerprints issued now (for the v2 alert list).
    pub fn issued_fingerprints(&self) -> HashSet<String> {
        self.lock().issued.keys().cloned().collect()
    }
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
