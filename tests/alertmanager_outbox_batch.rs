//! The outbox records a busy channel's deliveries in batches (one transaction for many): a
//! burst of notifications still arrives exactly once each, every one ends up in the durable
//! notification log with nothing left owed, and a reopened database re-sends none of them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use monitor::alertmanager::alert::Alert;
use monitor::alertmanager::clock::SystemClock;
use monitor::alertmanager::notify::{ChannelKind, Notification, NotificationStatus, NotifiedAlert};
use monitor::alertmanager::outbox::Outbox;
use monitor::config::alert::{AlertManagerConfig, OutboxConfig};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(20);
/// Several batches' worth, not a multiple of the batch size.
fn burst() -> usize {
    OutboxConfig::default().record_batch as usize * 4 + 7
}

type Received = Arc<Mutex<HashMap<String, usize>>>;

async fn webhook_sink(received: Received) -> String {
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap| {
            let received = Arc::clone(&received);
            async move {
                let id = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                *received.lock().unwrap().entry(id).or_default() += 1;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

fn notification(id: &str) -> Notification {
    let mut alert = Alert {
        name: "Burst".into(),
        index: "cluster1".into(),
        host: "host1".into(),
        source: String::new(),
        severity: "warning".into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        value: None,
        at: "2026-11-21T12:00:00.000Z".into(),
        fingerprint: String::new(),
    };
    alert.complete_labels();
    alert.fingerprint = alert.computed_fingerprint();
    Notification {
        id: id.to_owned(),
        receiver: "hook".to_owned(),
        group_key: format!("{{}}:{{alertname=\"Burst\", id=\"{id}\"}}"),
        group_labels: [("alertname".to_owned(), "Burst".to_owned())].into(),
        status: NotificationStatus::Firing,
        alerts: vec![NotifiedAlert {
            alert: std::sync::Arc::new(alert),
            status: NotificationStatus::Firing,
            starts_at_ms: 1_795_262_400_000,
            ends_at_ms: None,
            delivery: 1,
        }],
        created_at_ms: 1_795_262_400_000,
        request_id: None,
    }
}

fn open(path: &Path, url: &str) -> (Arc<redb::Database>, Arc<Outbox>) {
    let yaml = format!(
        "receivers:\n  - {{ name: hook, webhook: {{ url: \"{url}\" }} }}\ndefault_receiver: hook\n"
    );
    let config = AlertManagerConfig::from_yaml_str(&yaml, "test.yaml").unwrap();
    let db = Arc::new(redb::Database::create(path).unwrap());
    let mut registry = Registry::with_prefix("monitor");
    let outbox = Outbox::open(db.clone(), &config, Arc::new(SystemClock), &mut registry).unwrap();
    (db, outbox)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < LIMIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_delivered_once_each_and_every_delivery_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let received: Received = Arc::default();
    let url = webhook_sink(Arc::clone(&received)).await;
    let ids: Vec<String> = (0..burst()).map(|i| format!("burst-{i}")).collect();
    {
        let (db, outbox) = open(&path, &url);
        let txn = db.begin_write().unwrap();
        for id in &ids {
            outbox.enqueue_in(&txn, &notification(id)).unwrap();
        }
        txn.commit().unwrap();
        let (stop, shutdown) = watch::channel(false);
        let running = tokio::spawn(Arc::clone(&outbox).run(shutdown));
        outbox.wake();
        wait_until("every notification delivered", || {
            received.lock().unwrap().len() == burst()
        })
        .await;
        wait_until("nothing owed", || outbox.snapshot().owed() == 0).await;
        for id in &ids {
            assert!(
                outbox.was_delivered(id, ChannelKind::Webhook).unwrap(),
                "{id} not in the notification log"
            );
        }
        stop.send(true).unwrap();
        running.await.unwrap();
    }
    // Reopened (what a restart sees): all recorded, nothing owed, nothing sent again.
    let (_db, outbox) = open(&path, &url);
    assert_eq!(outbox.snapshot().owed(), 0);
    for id in &ids {
        assert!(outbox.was_delivered(id, ChannelKind::Webhook).unwrap());
    }
    let (stop, shutdown) = watch::channel(false);
    let running = tokio::spawn(Arc::clone(&outbox).run(shutdown));
    outbox.wake();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).unwrap();
    running.await.unwrap();
    let received = received.lock().unwrap();
    assert_eq!(received.len(), burst());
    let repeated: Vec<_> = received.iter().filter(|(_, n)| **n != 1).collect();
    assert!(repeated.is_empty(), "sent more than once: {repeated:?}");
    for id in &ids {
        assert!(received.contains_key(id), "{id} never arrived");
    }
}
