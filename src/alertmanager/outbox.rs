//! The durable outbox: every notification the pipeline owes a receiver, persisted in redb
//! until it is delivered or dead-lettered; retried with exponential backoff and jitter,
//! honouring `Retry-After`; rate-limited and strictly ordered per receiver channel.
//!
//! Each receiver channel (receiver × email/webhook/chat) is its own FIFO queue with its own
//! worker, so a dead webhook never delays the same receiver's email. The pipeline stages a
//! notification inside its own write transaction ([`Outbox::enqueue_in`]), so the state change
//! that made the notification due and the debt to deliver it commit together.
//!
//! Delivery guarantee: at least once, deduplicated by id. Success is recorded (entry removed,
//! `(id, channel)` written to the notification log) in one durable transaction shortly after
//! the receiver acknowledged: a busy channel records its deliveries in batches (at most
//! `outbox.record_batch` of them, default 32, or `outbox.record_within` old, default 50 ms, and
//! always before its worker waits), so that a burst of a thousand notifications costs a few
//! dozen commits instead of a thousand fsyncs, each holding the database's single write lock
//! against the alert ingests. Until then the channel's worker skips those entries (they are
//! delivered). A crash in that window sends the message again after restart, carrying the
//! same id (`Idempotency-Key` header, mail `Message-ID`); `record_batch: 1` narrows the window
//! to the one delivery being recorded, as before batching, at one fsync per notification. A notification the log already shows as
//! delivered is never sent again, whether it is still queued or enqueued a second time.
//!
//! It must never forget an owed notification across a crash, never send one the notification
//! log records as delivered, and never drop one silently: a notification leaves the queue
//! only delivered (logged) or dead-lettered (kept, listed, counted).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use super::clock::Clock;
use super::notify::{ChannelKind, DeliveryError, Notification, Notifier, build_notifiers};
use super::records::{self, DecodeError, OwedFields};
use crate::config::alert::{AlertManagerConfig, OutboxConfig, RateLimitConfig};

/// Owed notifications: (receiver, channel, sequence) -> [`OwedRecord`], binary
/// ([`records::encode_owed`], first byte [`records::OWED_BINARY_V1`]) or, as builds before it
/// wrote them, JSON (first byte `{`); both are read. The sequence is global and monotonic, so a
/// range over one (receiver, channel) is that queue in order.
const OWED: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("outbox_owed");
/// (notification id, channel) -> sequence of the owed entry: makes enqueue idempotent.
const OWED_IDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("outbox_owed_ids");
/// The notification log: (notification id, channel) -> (receiver, delivered at, ms).
const LOG: TableDefinition<(&str, &str), (&str, u64)> = TableDefinition::new("notification_log");
/// Dead letters: (receiver, channel, sequence) -> JSON [`DeadLetter`].
const DEAD: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("outbox_dead_letters");
/// Owed entries that no longer decode, set aside so they do not block their queue.
const UNDECODABLE: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("outbox_undecodable");
/// Counters: `next_seq`.
const META: TableDefinition<&str, u64> = TableDefinition::new("outbox_meta");

const NEXT_SEQ: &str = "next_seq";
/// Longest sleep without looking at the clock again (a manual clock may have jumped).
const MAX_IDLE: Duration = Duration::from_secs(1);
/// Least interval between two recounts of a queue's depth.
const GAUGE_REFRESH: Duration = Duration::from_secs(1);
/// How often an empty queue is looked at without a wake-up.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How often delivered ids older than `log_retention` are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What can go wrong in the outbox's own bookkeeping. Delivery failures are not errors here:
/// they are retried, then dead-lettered.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox store: {0}")]
    Store(Box<redb::Error>),
    #[error("outbox record does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("outbox record does not decode: {0}")]
    Record(#[from] DecodeError),
    #[error("notification {id:?} names unknown receiver {receiver:?}")]
    UnknownReceiver { id: String, receiver: String },
    #[error("receiver {receiver:?}: {message}")]
    Notifier { receiver: String, message: String },
    #[error("outbox worker: {0}")]
    Worker(String),
}

macro_rules! store_error {
    ($($source:ty),*) => {$(
        impl From<$source> for OutboxError {
            fn from(error: $source) -> Self {
                OutboxError::Store(Box::new(error.into()))
            }
        }
    )*};
}
store_error!(
    redb::Error,
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

/// One owed notification on one channel, as persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct OwedRecord {
    notification: Notification,
    enqueued_at_ms: u64,
    /// Failed attempts so far.
    attempts: u32,
    /// Of those, refusals that retrying should not cure.
    permanent_failures: u32,
    next_attempt_ms: u64,
    last_error: Option<String>,
}

impl OwedRecord {
    /// A notification owed from now, not yet attempted.
    fn fresh_fields(now_ms: u64) -> OwedFields {
        OwedFields {
            enqueued_at_ms: now_ms,
            attempts: 0,
            permanent_failures: 0,
            next_attempt_ms: now_ms,
            last_error: None,
        }
    }

    /// The binary encoding (what this build writes).
    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(256 + 320 * self.notification.alerts.len());
        let fields = OwedFields {
            enqueued_at_ms: self.enqueued_at_ms,
            attempts: self.attempts,
            permanent_failures: self.permanent_failures,
            next_attempt_ms: self.next_attempt_ms,
            last_error: self.last_error.clone(),
        };
        records::encode_owed(&mut bytes, &self.notification, &fields);
        bytes
    }

    /// Reads either encoding: JSON (written by earlier builds, starts with `{`) or binary.
    fn decode(bytes: &[u8]) -> Result<Self, OutboxError> {
        if bytes.first() == Some(&b'{') {
            return Ok(serde_json::from_slice(bytes)?);
        }
        let (notification, fields) = records::decode_owed(bytes)?;
        Ok(OwedRecord {
            notification,
            enqueued_at_ms: fields.enqueued_at_ms,
            attempts: fields.attempts,
            permanent_failures: fields.permanent_failures,
            next_attempt_ms: fields.next_attempt_ms,
            last_error: fields.last_error,
        })
    }
}

/// A notification given up on, kept for inspection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub receiver: String,
    pub kind: ChannelKind,
    pub seq: u64,
    pub notification: Notification,
    pub enqueued_at_ms: u64,
    pub dead_at_ms: u64,
    pub attempts: u32,
    /// The last delivery error, or why it could not be attempted.
    pub reason: String,
}

/// Delivery state of one receiver's channel (email, webhook or chat).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelSnapshot {
    pub receiver: String,
    /// `email`, `webhook` or `chat`.
    pub kind: String,
    /// Notifications waiting to be delivered (those in retry included).
    pub owed: u64,
    /// Of those, how many failed at least once.
    pub in_retry: u64,
    /// Notifications given up on, kept in the dead-letter table.
    pub dead_lettered: u64,
    /// Last delivery error of the head of the queue, if it failed.
    pub last_error: Option<String>,
    /// When the head of the queue was enqueued (ms since the epoch): how stuck the queue is.
    pub oldest_owed_at_ms: Option<u64>,
}

/// Delivery state of every receiver channel, for `/health` and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxSnapshot {
    pub channels: Vec<ChannelSnapshot>,
}

impl OutboxSnapshot {
    /// Notifications owed across all channels.
    pub fn owed(&self) -> u64 {
        self.channels.iter().map(|c| c.owed).sum()
    }

    /// Dead letters across all channels.
    pub fn dead_lettered(&self) -> u64 {
        self.channels.iter().map(|c| c.dead_lettered).sum()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    receiver: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    receiver: String,
    kind: &'static str,
    /// `delivered`, `failed` (an attempt failed, will retry), `dead_lettered`, `duplicate`
    /// (already in the notification log: not sent again), `undecodable` (set aside).
    outcome: &'static str,
}

struct OutboxMetrics {
    notifications: Family<OutcomeLabels, Counter>,
    retries: Family<ChannelLabels, Counter>,
    dead_letters: Family<ChannelLabels, Counter>,
    queue_depth: Family<ChannelLabels, Gauge>,
    dead_letter_depth: Family<ChannelLabels, Gauge>,
    duration: Family<ChannelLabels, Histogram, fn() -> Histogram>,
}

fn delivery_histogram() -> Histogram {
    // 1 ms .. ~65 s
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

impl OutboxMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = OutboxMetrics {
            notifications: Family::default(),
            retries: Family::default(),
            dead_letters: Family::default(),
            queue_depth: Family::default(),
            dead_letter_depth: Family::default(),
            duration: Family::new_with_constructor(delivery_histogram),
        };
        registry.register(
            "am_notifications",
            "Notification delivery outcomes per receiver channel (delivered, failed, dead_lettered, duplicate)",
            metrics.notifications.clone(),
        );
        registry.register(
            "am_notification_retries",
            "Retries scheduled after a failed delivery attempt",
            metrics.retries.clone(),
        );
        registry.register(
            "am_notification_dead_letters",
            "Notifications given up on and moved to the dead-letter table",
            metrics.dead_letters.clone(),
        );
        registry.register(
            "am_outbox_queue_depth",
            "Notifications owed per receiver channel",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "am_outbox_dead_letter_depth",
            "Dead letters kept per receiver channel",
            metrics.dead_letter_depth.clone(),
        );
        registry.register(
            "am_notification_duration_seconds",
            "Time of one delivery attempt",
            metrics.duration.clone(),
        );
        metrics
    }
}

/// What a channel's queue head asks for.
enum Due {
    /// Nothing to send before this (or before a wake-up).
    Wait(Duration),
    /// Send this entry now.
    Now(u64, Box<OwedRecord>),
}

/// A token bucket in milliseconds of the outbox clock.
#[derive(Debug)]
struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_ms: f64,
    last_ms: u64,
}

impl TokenBucket {
    fn new(config: &RateLimitConfig, now_ms: u64) -> Self {
        let capacity = f64::from(config.count.max(1));
        TokenBucket {
            capacity,
            tokens: capacity,
            per_ms: capacity / (config.per.0.as_millis().max(1) as f64),
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.tokens = (self.tokens + elapsed * self.per_ms).min(self.capacity);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// When the next message may go.
    fn ready_at(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            now_ms
        } else {
            now_ms + ((1.0 - self.tokens) / self.per_ms).ceil() as u64
        }
    }

    fn take(&mut self, now_ms: u64) {
        self.refill(now_ms);
        self.tokens -= 1.0;
    }
}

/// One receiver channel: its notifier, its queue's wake-up and its rate limit.
struct Channel {
    receiver: String,
    kind: ChannelKind,
    notifier: Notifier,
    wakeup: Notify,
    limiter: Mutex<Option<TokenBucket>>,
    /// When the queue depth gauge was last recounted.
    depth_counted: Mutex<Option<Instant>>,
    labels: ChannelLabels,
    /// Acknowledged by the receiver, not yet recorded (see the module doc). Only the channel's
    /// own worker (and the outbox after every worker stopped) touches it.
    delivered: Mutex<Delivered>,
}

/// A channel's deliveries waiting to be recorded: (sequence, notification id, delivered at).
#[derive(Default)]
struct Delivered {
    entries: Vec<(u64, String, u64)>,
    since: Option<Instant>,
}

impl Channel {
    fn outcome(&self, outcome: &'static str) -> OutcomeLabels {
        OutcomeLabels {
            receiver: self.receiver.clone(),
            kind: self.kind.as_str(),
            outcome,
        }
    }
}

/// The outbox. Open once per process, share the `Arc`.
pub struct Outbox {
    db: Arc<redb::Database>,
    clock: Arc<dyn Clock>,
    config: OutboxConfig,
    channels: Vec<Channel>,
    metrics: OutboxMetrics,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (creating if needed) the outbox tables in `db`, builds the notifiers of every
    /// receiver in `config`, and registers the outbox metrics under `am_*` names (give it the
    /// registry prefixed `monitor`: `monitor_am_notifications_total`, ...). It commits a write
    /// transaction of its own: call it while no other write transaction on `db` is open.
    pub fn open(
        db: Arc<redb::Database>,
        config: &AlertManagerConfig,
        clock: Arc<dyn Clock>,
        registry: &mut Registry,
    ) -> Result<Arc<Outbox>, OutboxError> {
        let txn = db.begin_write()?;
        {
            txn.open_table(OWED)?;
            txn.open_table(OWED_IDS)?;
            txn.open_table(LOG)?;
            txn.open_table(DEAD)?;
            txn.open_table(UNDECODABLE)?;
            txn.open_table(META)?;
        }
        txn.commit()?;
        let external_url = config.external_url();
        let now_ms = clock.now_ms();
        let mut channels = Vec::new();
        for receiver in &config.receivers {
            let notifiers = build_notifiers(receiver, &external_url).map_err(|error| {
                OutboxError::Notifier {
                    receiver: receiver.name.clone(),
                    message: error.0,
                }
            })?;
            for notifier in notifiers {
                let kind = notifier.kind();
                channels.push(Channel {
                    receiver: receiver.name.clone(),
                    kind,
                    notifier,
                    wakeup: Notify::new(),
                    limiter: Mutex::new(
                        receiver
                            .rate_limit
                            .as_ref()
                            .map(|limit| TokenBucket::new(limit, now_ms)),
                    ),
                    depth_counted: Mutex::new(None),
                    delivered: Mutex::new(Delivered::default()),
                    labels: ChannelLabels {
                        receiver: receiver.name.clone(),
                        kind: kind.as_str(),
                    },
                });
            }
        }
        let outbox = Arc::new(Outbox {
            db,
            clock,
            config: config.outbox.clone(),
            channels,
            metrics: OutboxMetrics::register(registry),
        });
        outbox.refresh_gauges()?;
        Ok(outbox)
    }

    /// Stages a notification inside the caller's write transaction (atomic with the
    /// pipeline's state change): one queue entry per channel of its receiver. The caller calls
    /// [`Outbox::wake`] after commit. Idempotent: an id already owed, or already delivered
    /// according to the notification log, is not staged again (counted as `duplicate` even if
    /// the caller then aborts). Cheap: a few B-tree lookups and one binary encoding per channel.
    pub fn enqueue_in(
        &self,
        txn: &redb::WriteTransaction,
        notification: &Notification,
    ) -> Result<(), OutboxError> {
        self.enqueue_all_in(txn, std::slice::from_ref(notification))
    }

    /// [`Outbox::enqueue_in`] for several notifications, opening the tables once (a flush of a
    /// thousand due groups stages a thousand notifications in one transaction).
    pub fn enqueue_all_in(
        &self,
        txn: &redb::WriteTransaction,
        notifications: &[Notification],
    ) -> Result<(), OutboxError> {
        if notifications.is_empty() {
            return Ok(());
        }
        let now_ms = self.clock.now_ms();
        let mut owed = txn.open_table(OWED)?;
        let mut owed_ids = txn.open_table(OWED_IDS)?;
        let log = txn.open_table(LOG)?;
        let mut meta = txn.open_table(META)?;
        let first_seq = meta.get(NEXT_SEQ)?.map_or(1, |v| v.value());
        let mut seq = first_seq;
        let fields = OwedRecord::fresh_fields(now_ms);
        let mut bytes = Vec::new();
        for notification in notifications {
            let mut channels = self
                .channels
                .iter()
                .filter(|c| c.receiver == notification.receiver)
                .peekable();
            if channels.peek().is_none() {
                return Err(OutboxError::UnknownReceiver {
                    id: notification.id.clone(),
                    receiver: notification.receiver.clone(),
                });
            }
            for channel in channels {
                let kind = channel.kind.as_str();
                let key = (notification.id.as_str(), kind);
                if log.get(key)?.is_some() {
                    self.metrics
                        .notifications
                        .get_or_create(&channel.outcome("duplicate"))
                        .inc();
                    continue;
                }
                if owed_ids.get(key)?.is_some() {
                    continue;
                }
                bytes.clear();
                records::encode_owed(&mut bytes, notification, &fields);
                owed.insert(
                    (notification.receiver.as_str(), kind, seq),
                    bytes.as_slice(),
                )?;
                owed_ids.insert(key, seq)?;
                seq += 1;
            }
        }
        if seq != first_seq {
            meta.insert(NEXT_SEQ, seq)?;
        }
        Ok(())
    }

    /// Tells the delivery workers that something was committed.
    pub fn wake(&self) {
        for channel in &self.channels {
            channel.wakeup.notify_one();
        }
    }

    /// Delivers until `shutdown` turns true (or its sender is dropped): one worker per receiver
    /// channel, plus the pruning of old notification-log entries. A delivery in flight at
    /// shutdown is abandoned and stays owed.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        if let Err(error) = self.blocking(|outbox| outbox.reap_orphans()).await {
            tracing::error!(%error, "outbox: cannot dead-letter entries of removed receivers");
        }
        let mut workers = tokio::task::JoinSet::new();
        for index in 0..self.channels.len() {
            let outbox = Arc::clone(&self);
            let shutdown = shutdown.clone();
            workers.spawn(async move { outbox.work(index, shutdown).await });
        }
        let outbox = Arc::clone(&self);
        let mut prune_shutdown = shutdown.clone();
        workers.spawn(async move {
            loop {
                if let Err(error) = outbox.blocking(|outbox| outbox.prune_log()).await {
                    tracing::warn!(%error, "outbox: notification log pruning failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(PRUNE_EVERY) => {}
                    _ = stopped(&mut prune_shutdown) => return,
                }
            }
        });
        while workers.join_next().await.is_some() {}
        let recorded = self
            .blocking(|outbox| {
                for channel in &outbox.channels {
                    outbox.record_delivered(channel)?;
                }
                Ok(())
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!(%error, "outbox: last deliveries not recorded (they will be sent again)");
        }
    }

    /// Owed / in retry / dead-lettered per receiver channel (configured channels always
    /// appear; channels of removed receivers appear while they hold dead letters).
    pub fn snapshot(&self) -> OutboxSnapshot {
        match self.try_snapshot() {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::error!(%error, "outbox: snapshot failed");
                OutboxSnapshot::default()
            }
        }
    }

    /// Every dead letter, oldest first per channel.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, OutboxError> {
        let txn = self.db.begin_read()?;
        let dead = txn.open_table(DEAD)?;
        let mut letters = Vec::new();
        for entry in dead.iter()? {
            let (_, value) = entry?;
            letters.push(serde_json::from_slice(value.value())?);
        }
        Ok(letters)
    }

    /// Moves a dead letter back to the end of its channel's queue with a fresh retry budget
    /// (for after the receiver was fixed). False when there is no such dead letter.
    pub fn requeue_dead_letter(
        &self,
        receiver: &str,
        kind: ChannelKind,
        seq: u64,
    ) -> Result<bool, OutboxError> {
        let Some(channel) = self
            .channels
            .iter()
            .find(|c| c.receiver == receiver && c.kind == kind)
        else {
            return Err(OutboxError::UnknownReceiver {
                id: format!("dead letter {seq}"),
                receiver: format!("{receiver}/{kind}"),
            });
        };
        let now_ms = self.clock.now_ms();
        let txn = self.db.begin_write()?;
        {
            let mut dead = txn.open_table(DEAD)?;
            let Some(letter) = dead.remove((receiver, kind.as_str(), seq))? else {
                return Ok(false);
            };
            let letter: DeadLetter = serde_json::from_slice(letter.value())?;
            let mut meta = txn.open_table(META)?;
            let new_seq = meta.get(NEXT_SEQ)?.map_or(1, |v| v.value());
            meta.insert(NEXT_SEQ, new_seq + 1)?;
            let record = OwedRecord {
                notification: letter.notification,
                enqueued_at_ms: now_ms,
                attempts: 0,
                permanent_failures: 0,
                next_attempt_ms: now_ms,
                last_error: None,
            };
            txn.open_table(OWED_IDS)?
                .insert((record.notification.id.as_str(), kind.as_str()), new_seq)?;
            txn.open_table(OWED)?.insert(
                (receiver, kind.as_str(), new_seq),
                record.encode().as_slice(),
            )?;
        }
        txn.commit()?;
        self.gauge(&self.metrics.dead_letter_depth, channel).dec();
        self.gauge(&self.metrics.queue_depth, channel).inc();
        channel.wakeup.notify_one();
        Ok(true)
    }

    /// Deletes a dead letter for good. False when there is no such dead letter.
    pub fn discard_dead_letter(
        &self,
        receiver: &str,
        kind: ChannelKind,
        seq: u64,
    ) -> Result<bool, OutboxError> {
        let txn = self.db.begin_write()?;
        let removed = txn
            .open_table(DEAD)?
            .remove((receiver, kind.as_str(), seq))?
            .is_some();
        txn.commit()?;
        if removed
            && let Some(channel) = self
                .channels
                .iter()
                .find(|c| c.receiver == receiver && c.kind == kind)
        {
            self.gauge(&self.metrics.dead_letter_depth, channel).dec();
        }
        Ok(removed)
    }

    /// Whether the notification log records `id` as delivered on `kind`.
    pub fn was_delivered(&self, id: &str, kind: ChannelKind) -> Result<bool, OutboxError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        Ok(log.get((id, kind.as_str()))?.is_some())
    }

    fn try_snapshot(&self) -> Result<OutboxSnapshot, OutboxError> {
        let mut channels: BTreeMap<(String, String), ChannelSnapshot> = self
            .channels
            .iter()
            .map(|c| {
                let key = (c.receiver.clone(), c.kind.as_str().to_owned());
                let snapshot = ChannelSnapshot {
                    receiver: c.receiver.clone(),
                    kind: c.kind.as_str().to_owned(),
                    ..ChannelSnapshot::default()
                };
                (key, snapshot)
            })
            .collect();
        let txn = self.db.begin_read()?;
        let owed = txn.open_table(OWED)?;
        for entry in owed.iter()? {
            let (key, value) = entry?;
            let (receiver, kind, _) = key.value();
            // An entry that does not decode is still owed until its worker sets it aside.
            let record: Option<OwedRecord> = OwedRecord::decode(value.value()).ok();
            let snapshot = channels
                .entry((receiver.to_owned(), kind.to_owned()))
                .or_insert_with(|| ChannelSnapshot {
                    receiver: receiver.to_owned(),
                    kind: kind.to_owned(),
                    ..ChannelSnapshot::default()
                });
            if snapshot.owed == 0 {
                // Entries come in queue order: the first one seen is the head.
                snapshot.last_error = record.as_ref().and_then(|r| r.last_error.clone());
                snapshot.oldest_owed_at_ms = record.as_ref().map(|r| r.enqueued_at_ms);
            }
            snapshot.owed += 1;
            if record.is_some_and(|r| r.attempts > 0) {
                snapshot.in_retry += 1;
            }
        }
        let dead = txn.open_table(DEAD)?;
        for entry in dead.iter()? {
            let (key, _) = entry?;
            let (receiver, kind, _) = key.value();
            channels
                .entry((receiver.to_owned(), kind.to_owned()))
                .or_insert_with(|| ChannelSnapshot {
                    receiver: receiver.to_owned(),
                    kind: kind.to_owned(),
                    ..ChannelSnapshot::default()
                })
                .dead_lettered += 1;
        }
        Ok(OutboxSnapshot {
            channels: channels.into_values().collect(),
        })
    }

    /// Counts every channel's queue and dead letters (at open and after reaping orphans).
    fn refresh_gauges(&self) -> Result<(), OutboxError> {
        let txn = self.db.begin_read()?;
        let owed = txn.open_table(OWED)?;
        let dead = txn.open_table(DEAD)?;
        for channel in &self.channels {
            let range = queue_range(channel);
            let owed_count = owed.range(range.clone())?.count();
            let dead_count = dead.range(range)?.count();
            self.gauge(&self.metrics.queue_depth, channel)
                .set(owed_count as i64);
            self.gauge(&self.metrics.dead_letter_depth, channel)
                .set(dead_count as i64);
            *lock(&channel.depth_counted) = Some(Instant::now());
        }
        Ok(())
    }

    fn gauge<'a>(
        &self,
        family: &'a Family<ChannelLabels, Gauge>,
        channel: &Channel,
    ) -> impl std::ops::Deref<Target = Gauge> + 'a {
        family.get_or_create(&channel.labels)
    }

    /// Recounts one queue, at most once a second: counting is linear in the backlog, and a
    /// backlog drained back to back would otherwise cost quadratic time.
    fn refresh_queue_depth(&self, channel: &Channel) -> Result<(), OutboxError> {
        {
            let mut counted = lock(&channel.depth_counted);
            if counted.is_some_and(|at| at.elapsed() < GAUGE_REFRESH) {
                return Ok(());
            }
            *counted = Some(Instant::now());
        }
        let txn = self.db.begin_read()?;
        let owed = txn.open_table(OWED)?.range(queue_range(channel))?.count();
        self.gauge(&self.metrics.queue_depth, channel)
            .set(owed as i64);
        Ok(())
    }

    /// Entries whose receiver channel is no longer configured cannot be delivered: they go to
    /// the dead letters (visible and counted) instead of waiting forever.
    fn reap_orphans(&self) -> Result<(), OutboxError> {
        let now_ms = self.clock.now_ms();
        let txn = self.db.begin_write()?;
        let mut reaped = 0usize;
        {
            let mut owed = txn.open_table(OWED)?;
            let mut owed_ids = txn.open_table(OWED_IDS)?;
            let mut dead = txn.open_table(DEAD)?;
            let orphans = owed.extract_if(|(receiver, kind, _), _| {
                !self
                    .channels
                    .iter()
                    .any(|c| c.receiver == receiver && c.kind.as_str() == kind)
            })?;
            let mut moved = Vec::new();
            for entry in orphans {
                let (key, value) = entry?;
                let (receiver, kind, seq) = key.value();
                moved.push((
                    receiver.to_owned(),
                    kind.to_owned(),
                    seq,
                    value.value().to_vec(),
                ));
            }
            for (receiver, kind, seq, bytes) in moved {
                let record = OwedRecord::decode(&bytes)?;
                let Some(kind_value) = ChannelKind::parse(&kind) else {
                    continue;
                };
                owed_ids.remove((record.notification.id.as_str(), kind.as_str()))?;
                let letter = DeadLetter {
                    receiver: receiver.clone(),
                    kind: kind_value,
                    seq,
                    enqueued_at_ms: record.enqueued_at_ms,
                    dead_at_ms: now_ms,
                    attempts: record.attempts,
                    reason: "the receiver channel is no longer configured".to_owned(),
                    notification: record.notification,
                };
                dead.insert(
                    (receiver.as_str(), kind.as_str(), seq),
                    serde_json::to_vec(&letter)?.as_slice(),
                )?;
                reaped += 1;
            }
        }
        txn.commit()?;
        if reaped > 0 {
            self.refresh_gauges()?;
            tracing::warn!(
                count = reaped,
                "outbox: notifications for removed receivers moved to the dead letters"
            );
        }
        Ok(())
    }

    fn prune_log(&self) -> Result<(), OutboxError> {
        let horizon = self
            .clock
            .now_ms()
            .saturating_sub(self.config.log_retention.0.as_millis() as u64);
        let txn = self.db.begin_write()?;
        {
            let mut log = txn.open_table(LOG)?;
            log.retain(|_, (_, delivered_at_ms)| delivered_at_ms >= horizon)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// The head of a channel's queue.
    fn head(&self, channel: &Channel) -> Result<Option<(u64, OwedRecord)>, OutboxError> {
        // Delivered but not yet recorded: not the head any more.
        let delivered: Vec<u64> = lock(&channel.delivered)
            .entries
            .iter()
            .map(|(seq, _, _)| *seq)
            .collect();
        loop {
            let (seq, bytes) = {
                let txn = self.db.begin_read()?;
                let owed = txn.open_table(OWED)?;
                let mut range = owed.range(queue_range(channel))?;
                let (key, value) = loop {
                    let Some(entry) = range.next() else {
                        return Ok(None);
                    };
                    let (key, value) = entry?;
                    if !delivered.contains(&key.value().2) {
                        break (key, value);
                    }
                };
                match OwedRecord::decode(value.value()) {
                    Ok(record) => return Ok(Some((key.value().2, record))),
                    Err(_) => (key.value().2, value.value().to_vec()),
                }
            };
            self.set_aside(channel, seq, &bytes)?;
        }
    }

    /// An entry that no longer decodes (written by an incompatible version) would block its
    /// queue forever: it is moved, bytes intact, to `outbox_undecodable` and logged.
    fn set_aside(&self, channel: &Channel, seq: u64, bytes: &[u8]) -> Result<(), OutboxError> {
        let key = (channel.receiver.as_str(), channel.kind.as_str(), seq);
        let txn = self.db.begin_write()?;
        {
            txn.open_table(OWED)?.remove(key)?;
            txn.open_table(UNDECODABLE)?.insert(key, bytes)?;
        }
        txn.commit()?;
        tracing::error!(
            receiver = %channel.receiver,
            kind = %channel.kind,
            seq,
            "outbox: an owed entry does not decode; moved to the outbox_undecodable table"
        );
        self.metrics
            .notifications
            .get_or_create(&channel.outcome("undecodable"))
            .inc();
        Ok(())
    }

    /// Runs store work off the async threads (a commit waits for fsync).
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Outbox) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let outbox = Arc::clone(self);
        tokio::task::spawn_blocking(move || work(&outbox))
            .await
            .map_err(|error| OutboxError::Worker(error.to_string()))?
    }

    /// One channel's delivery loop.
    async fn work(self: Arc<Self>, index: usize, mut shutdown: watch::Receiver<bool>) {
        let channel = &self.channels[index];
        loop {
            if *shutdown.borrow() {
                return;
            }
            let wait = match self.step(index, &mut shutdown).await {
                Ok(wait) => wait,
                Err(error) => {
                    tracing::error!(
                        receiver = %channel.receiver,
                        kind = %channel.kind,
                        %error,
                        "outbox: store error, retrying shortly"
                    );
                    Some(MAX_IDLE)
                }
            };
            if let Some(wait) = wait {
                tokio::select! {
                    _ = channel.wakeup.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped(&mut shutdown) => return,
                }
            }
        }
    }

    /// Handles the head of one channel's queue once. Returns how long to wait before the next
    /// look (None: look again at once).
    async fn step(
        self: &Arc<Self>,
        index: usize,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Option<Duration>, OutboxError> {
        let (seq, record) = match self.blocking(move |outbox| outbox.next_due(index)).await? {
            Due::Wait(wait) => return Ok(Some(wait)),
            Due::Now(seq, record) => (seq, record),
        };
        let channel = &self.channels[index];
        let started = Instant::now();
        let result = tokio::select! {
            result = channel.notifier.send(&record.notification) => result,
            _ = stopped(shutdown) => return Ok(None),
        };
        self.metrics
            .duration
            .get_or_create(&channel.labels)
            .observe(started.elapsed().as_secs_f64());
        self.blocking(move |outbox| {
            let channel = &outbox.channels[index];
            outbox.settle(channel, seq, *record, result)?;
            outbox.refresh_queue_depth(channel)
        })
        .await?;
        // Whatever happened, the head may have changed: look again at once.
        Ok(None)
    }

    /// The head of the queue if it is due now (a token taken from the rate limit), else how
    /// long to wait. Settles heads the notification log already shows as delivered.
    fn next_due(&self, index: usize) -> Result<Due, OutboxError> {
        let channel = &self.channels[index];
        self.refresh_queue_depth(channel)?;
        loop {
            let Some((seq, record)) = self.head(channel)? else {
                self.record_delivered(channel)?;
                self.gauge(&self.metrics.queue_depth, channel).set(0);
                // Enqueuers call wake(); the poll only covers one that forgot.
                return Ok(Due::Wait(IDLE_POLL));
            };
            if self.was_delivered(&record.notification.id, channel.kind)? {
                self.remove_owed(channel, seq, &record, None)?;
                self.metrics
                    .notifications
                    .get_or_create(&channel.outcome("duplicate"))
                    .inc();
                continue;
            }
            let now_ms = self.clock.now_ms();
            let mut limiter = lock(&channel.limiter);
            let rate_ready_ms = limiter
                .as_mut()
                .map_or(now_ms, |bucket| bucket.ready_at(now_ms));
            let ready_ms = record.next_attempt_ms.max(rate_ready_ms);
            if ready_ms > now_ms {
                drop(limiter);
                self.record_delivered(channel)?;
                let wait = Duration::from_millis(ready_ms - now_ms).min(MAX_IDLE);
                return Ok(Due::Wait(wait));
            }
            if let Some(bucket) = limiter.as_mut() {
                bucket.take(now_ms);
            }
            return Ok(Due::Now(seq, Box::new(record)));
        }
    }

    fn remove_owed(
        &self,
        channel: &Channel,
        seq: u64,
        record: &OwedRecord,
        delivered_at_ms: Option<u64>,
    ) -> Result<(), OutboxError> {
        let kind = channel.kind.as_str();
        let id = record.notification.id.as_str();
        let txn = self.db.begin_write()?;
        {
            txn.open_table(OWED)?
                .remove((channel.receiver.as_str(), kind, seq))?;
            txn.open_table(OWED_IDS)?.remove((id, kind))?;
            if let Some(at_ms) = delivered_at_ms {
                txn.open_table(LOG)?
                    .insert((id, kind), (channel.receiver.as_str(), at_ms))?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Records the channel's acknowledged deliveries (owed entries removed, notification log
    /// written) in one transaction. On failure they stay waiting (and skipped) for the next try.
    fn record_delivered(&self, channel: &Channel) -> Result<(), OutboxError> {
        let mut delivered = lock(&channel.delivered);
        if delivered.entries.is_empty() {
            return Ok(());
        }
        let kind = channel.kind.as_str();
        let receiver = channel.receiver.as_str();
        let txn = self.db.begin_write()?;
        {
            let mut owed = txn.open_table(OWED)?;
            let mut owed_ids = txn.open_table(OWED_IDS)?;
            let mut log = txn.open_table(LOG)?;
            for (seq, id, at_ms) in &delivered.entries {
                owed.remove((receiver, kind, *seq))?;
                owed_ids.remove((id.as_str(), kind))?;
                log.insert((id.as_str(), kind), (receiver, *at_ms))?;
            }
        }
        txn.commit()?;
        *delivered = Delivered::default();
        Ok(())
    }

    /// Records the outcome of one attempt: delivered (logged), retry later, or dead letter.
    fn settle(
        &self,
        channel: &Channel,
        seq: u64,
        mut record: OwedRecord,
        result: Result<(), DeliveryError>,
    ) -> Result<(), OutboxError> {
        let now_ms = self.clock.now_ms();
        let error = match result {
            Ok(()) => {
                let batch_full = {
                    let mut delivered = lock(&channel.delivered);
                    delivered
                        .entries
                        .push((seq, record.notification.id.clone(), now_ms));
                    let since = *delivered.since.get_or_insert_with(Instant::now);
                    delivered.entries.len() >= self.config.record_batch as usize
                        || since.elapsed() >= self.config.record_within.get()
                };
                if batch_full {
                    self.record_delivered(channel)?;
                }
                self.metrics
                    .notifications
                    .get_or_create(&channel.outcome("delivered"))
                    .inc();
                tracing::info!(
                    receiver = %channel.receiver,
                    kind = %channel.kind,
                    id = %record.notification.id,
                    attempts = record.attempts + 1,
                    "notification delivered"
                );
                return Ok(());
            }
            Err(error) => error,
        };
        record.attempts += 1;
        if error.is_permanent() {
            record.permanent_failures += 1;
        }
        record.last_error = Some(error.to_string());
        self.metrics
            .notifications
            .get_or_create(&channel.outcome("failed"))
            .inc();
        let age_ms = now_ms.saturating_sub(record.enqueued_at_ms);
        let expired = age_ms >= self.config.give_up_after.0.as_millis() as u64;
        let refused = record.permanent_failures >= self.config.permanent_failure_attempts;
        let kind = channel.kind.as_str();
        if expired || refused {
            let why = if refused {
                "refused"
            } else {
                "undelivered past give_up_after"
            };
            tracing::error!(
                receiver = %channel.receiver,
                kind,
                id = %record.notification.id,
                attempts = record.attempts,
                %error,
                "notification dead-lettered ({why})"
            );
            let letter = DeadLetter {
                receiver: channel.receiver.clone(),
                kind: channel.kind,
                seq,
                enqueued_at_ms: record.enqueued_at_ms,
                dead_at_ms: now_ms,
                attempts: record.attempts,
                reason: format!("{why}: {error}"),
                notification: record.notification,
            };
            let txn = self.db.begin_write()?;
            {
                txn.open_table(OWED)?
                    .remove((channel.receiver.as_str(), kind, seq))?;
                txn.open_table(OWED_IDS)?
                    .remove((letter.notification.id.as_str(), kind))?;
                txn.open_table(DEAD)?.insert(
                    (channel.receiver.as_str(), kind, seq),
                    serde_json::to_vec(&letter)?.as_slice(),
                )?;
            }
            txn.commit()?;
            self.metrics
                .notifications
                .get_or_create(&channel.outcome("dead_lettered"))
                .inc();
            self.metrics
                .dead_letters
                .get_or_create(&channel.labels)
                .inc();
            self.gauge(&self.metrics.dead_letter_depth, channel).inc();
            self.gauge(&self.metrics.queue_depth, channel).dec();
            return Ok(());
        }
        let mut delay = backoff(&self.config, record.attempts);
        if let DeliveryError::Transient {
            retry_after: Some(retry_after),
            ..
        } = &error
        {
            delay = delay.max(*retry_after);
        }
        record.next_attempt_ms = now_ms + delay.as_millis() as u64;
        tracing::warn!(
            receiver = %channel.receiver,
            kind,
            id = %record.notification.id,
            attempts = record.attempts,
            retry_in_ms = delay.as_millis() as u64,
            %error,
            "notification delivery failed, will retry"
        );
        let txn = self.db.begin_write()?;
        {
            txn.open_table(OWED)?.insert(
                (channel.receiver.as_str(), kind, seq),
                record.encode().as_slice(),
            )?;
        }
        txn.commit()?;
        self.metrics.retries.get_or_create(&channel.labels).inc();
        Ok(())
    }
}

/// Exponential backoff from `retry_backoff_min`, doubling per failed attempt up to
/// `retry_backoff_max`, with ±25 % jitter (clamped to the bounds) so that receivers that came
/// back are not hit by every queue at the same instant.
fn backoff(config: &OutboxConfig, attempts: u32) -> Duration {
    let min = config.retry_backoff_min.0;
    let max = config.retry_backoff_max.0.max(min);
    let exponent = attempts.saturating_sub(1).min(30);
    let base = min.saturating_mul(1u32 << exponent).min(max);
    let jittered = base.mul_f64(0.75 + fastrand::f64() * 0.5);
    jittered.clamp(min, max)
}

fn queue_range(channel: &Channel) -> std::ops::RangeInclusive<(&str, &str, u64)> {
    let receiver = channel.receiver.as_str();
    let kind = channel.kind.as_str();
    (receiver, kind, 0)..=(receiver, kind, u64::MAX)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Resolves when shutdown is requested or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::HumanDuration;

    #[test]
    fn backoff_doubles_within_bounds() {
        let config = OutboxConfig {
            retry_backoff_min: HumanDuration::from_secs(1),
            retry_backoff_max: HumanDuration::from_secs(60),
            ..OutboxConfig::default()
        };
        for _ in 0..100 {
            let first = backoff(&config, 1);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1250));
            let fourth = backoff(&config, 4);
            assert!(fourth >= Duration::from_secs(6) && fourth <= Duration::from_secs(10));
            let capped = backoff(&config, 40);
            assert!(capped >= Duration::from_secs(45) && capped <= Duration::from_secs(60));
        }
    }

    #[test]
    fn token_bucket_spaces_messages() {
        let limit = RateLimitConfig {
            count: 2,
            per: HumanDuration::from_secs(10),
        };
        let mut bucket = TokenBucket::new(&limit, 0);
        assert_eq!(bucket.ready_at(0), 0);
        bucket.take(0);
        bucket.take(0);
        // One token back after 5 s.
        assert_eq!(bucket.ready_at(0), 5000);
        assert_eq!(bucket.ready_at(5000), 5000);
        bucket.take(5000);
        assert_eq!(bucket.ready_at(6000), 10_000);
    }
}
