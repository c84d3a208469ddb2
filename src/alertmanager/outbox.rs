//! The durable outbox: every notification the pipeline owes a receiver, persisted in redb
//! until delivered or dead-lettered, retried with backoff, delivered in order per receiver.
//! (Skeleton: the API is final, the delivery loop is being written on branch `notify`.)
//!
//! It must never forget an owed notification across a crash, and never send one again that
//! the notification log records as delivered.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::Notify;

use super::clock::Clock;
use super::notify::Notification;
use crate::config::alert::AlertManagerConfig;

/// What can go wrong in the outbox's own bookkeeping (delivery failures are not errors here:
/// they are retried, then dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox store: {0}")]
    Store(String),
    #[error("outbox record does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("notification {id:?} names unknown receiver {receiver:?}")]
    UnknownReceiver { id: String, receiver: String },
    #[error("receiver {receiver:?}: {message}")]
    Notifier { receiver: String, message: String },
}

/// Delivery state of one receiver's channel (email, webhook or chat).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelSnapshot {
    pub receiver: String,
    /// `email`, `webhook` or `chat`.
    pub kind: String,
    /// Notifications waiting to be delivered (in retry included).
    pub owed: u64,
    /// Of those, how many failed at least once.
    pub in_retry: u64,
    /// Notifications given up on, kept in the dead-letter table.
    pub dead_lettered: u64,
    /// Last delivery error of the head of the queue, if it failed.
    pub last_error: Option<String>,
}

/// Delivery state of every receiver, for `/health` and the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OutboxSnapshot {
    pub channels: Vec<ChannelSnapshot>,
}

/// The outbox. Open once per process, share the `Arc`.
pub struct Outbox {
    db: Arc<redb::Database>,
    clock: Arc<dyn Clock>,
    wakeup: Notify,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

impl Outbox {
    /// Opens (creating if needed) the outbox tables in `db`, builds the notifiers of every
    /// receiver in `config`, and registers the outbox metrics (`am_*` names: give it a
    /// registry prefixed `monitor`).
    pub fn open(
        db: Arc<redb::Database>,
        config: &AlertManagerConfig,
        clock: Arc<dyn Clock>,
        registry: &mut Registry,
    ) -> Result<Arc<Outbox>, OutboxError> {
        let _ = (config, registry);
        Ok(Arc::new(Outbox {
            db,
            clock,
            wakeup: Notify::new(),
        }))
    }

    /// Stages a notification inside the caller's write transaction (atomic with the
    /// pipeline's state change); the caller calls [`Outbox::wake`] after commit.
    pub fn enqueue_in(
        &self,
        txn: &redb::WriteTransaction,
        notification: &Notification,
    ) -> Result<(), OutboxError> {
        let _ = (txn, notification, &self.db, &self.clock);
        Ok(())
    }

    /// Tells the delivery loop that something was committed.
    pub fn wake(&self) {
        self.wakeup.notify_one();
    }

    /// Delivers until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    }

    /// Owed / in retry / dead-lettered per receiver and channel.
    pub fn snapshot(&self) -> OutboxSnapshot {
        OutboxSnapshot::default()
    }
}
