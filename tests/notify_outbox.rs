//! The alert manager's delivery half against real receivers: a real SMTP server (aiosmtpd),
//! a webhook receiver written here (scripted answers: 429 + Retry-After, 5xx, 4xx), a fake
//! SMTP server that refuses recipients for good, and a redb file reopened to simulate kill -9.
//!
//! Timing checks are lower bounds only (a retry that honours `Retry-After: 1` cannot come
//! sooner than a second later; a slow machine only makes the gap larger).

mod support;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use monitor::alertmanager::alert::Alert;
use monitor::alertmanager::clock::SystemClock;
use monitor::alertmanager::notify::{ChannelKind, Notification, NotificationStatus, NotifiedAlert};
use monitor::alertmanager::outbox::{DeadLetter, Outbox};
use monitor::config::alert::AlertManagerConfig;
use prometheus_client::registry::Registry;
use support::{SmtpSink, free_port};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(20);
const STARTS_AT_MS: u64 = 1_795_262_400_000; // 2026-11-21T12:00:00Z

// ------------------------------------------------------------------------------------------
// fixtures

fn alert(host: &str, value: f64, status: NotificationStatus) -> NotifiedAlert {
    let mut alert = Alert {
        name: "HighMem".into(),
        index: "cluster1".into(),
        host: host.into(),
        source: "api".into(),
        severity: "warning".into(),
        labels: BTreeMap::new(),
        annotations: [(
            "summary".to_owned(),
            format!("mem used {value} > 90 on {host}"),
        )]
        .into(),
        value: Some(value),
        at: "2026-11-21T12:00:00.000Z".into(),
        fingerprint: String::new(),
    };
    alert.complete_labels();
    alert.fingerprint = alert.computed_fingerprint();
    NotifiedAlert {
        alert: std::sync::Arc::new(alert),
        status,
        starts_at_ms: STARTS_AT_MS,
        ends_at_ms: (status == NotificationStatus::Resolved).then_some(STARTS_AT_MS + 600_000),
        delivery: 1,
    }
}

fn notification(id: &str, receiver: &str, alerts: Vec<NotifiedAlert>) -> Notification {
    let status = if alerts
        .iter()
        .any(|a| a.status == NotificationStatus::Firing)
    {
        NotificationStatus::Firing
    } else {
        NotificationStatus::Resolved
    };
    Notification {
        id: id.to_owned(),
        receiver: receiver.to_owned(),
        group_key: "{}:{alertname=\"HighMem\", index=\"cluster1\"}".to_owned(),
        group_labels: [
            ("alertname".to_owned(), "HighMem".to_owned()),
            ("index".to_owned(), "cluster1".to_owned()),
        ]
        .into(),
        status,
        alerts,
        created_at_ms: STARTS_AT_MS,
        request_id: None,
    }
}

fn firing(id: &str, receiver: &str) -> Notification {
    notification(
        id,
        receiver,
        vec![alert("host1", 93.0, NotificationStatus::Firing)],
    )
}

/// One outbox on one redb file, delivering in the background.
struct Running {
    db: Arc<redb::Database>,
    outbox: Arc<Outbox>,
    registry: Registry,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The temp dir of the redb file when `start_fresh` made it.
    _dir: Option<tempfile::TempDir>,
}

fn open(path: &Path, yaml: &str) -> (Arc<redb::Database>, Arc<Outbox>, Registry) {
    let config = AlertManagerConfig::from_yaml_str(yaml, "test.yaml").unwrap();
    let db = Arc::new(redb::Database::create(path).unwrap());
    let mut registry = Registry::with_prefix("monitor");
    let outbox = Outbox::open(db.clone(), &config, Arc::new(SystemClock), &mut registry).unwrap();
    (db, outbox, registry)
}

impl Running {
    fn start(path: &Path, yaml: &str) -> Running {
        let (db, outbox, registry) = open(path, yaml);
        let (shutdown, receiver) = watch::channel(false);
        let task = Some(tokio::spawn(outbox.clone().run(receiver)));
        Running {
            db,
            outbox,
            registry,
            shutdown,
            task,
            _dir: None,
        }
    }

    /// Starts on a new redb file in a temp dir of its own.
    fn start_fresh(yaml: &str) -> Running {
        let (dir, path) = fresh_db();
        Running {
            _dir: Some(dir),
            ..Running::start(&path, yaml)
        }
    }

    /// Waits until nothing is owed (every notification delivered or dead-lettered).
    async fn drained(&self, what: &str) {
        until(|| (self.outbox.snapshot().owed() == 0).then_some(()))
            .await
            .unwrap_or_else(|| panic!("{what}: still owed: {:?}", self.outbox.snapshot()));
    }

    /// Waits until at least `n` notifications are dead-lettered, returns the dead letters.
    async fn dead_letters_at_least(&self, n: usize) -> Vec<DeadLetter> {
        until(|| {
            let letters = self.outbox.dead_letters().unwrap();
            (letters.len() >= n).then_some(letters)
        })
        .await
        .unwrap_or_else(|| panic!("fewer than {n} dead letters: {:?}", self.outbox.snapshot()))
    }

    fn enqueue(&self, notification: &Notification) {
        enqueue(&self.db, &self.outbox, notification);
    }

    fn metrics(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }

    /// Stops delivery and returns the metrics. Workers only stop at an await point, and
    /// none lies between a settled delivery and its metric updates, so the text is final.
    async fn stop(mut self) -> String {
        self.shutdown.send(true).unwrap();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
        }
        self.metrics()
    }
}

/// A path for a new redb file in its own temp dir (removed when the dir drops).
fn fresh_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("am.redb");
    (dir, path)
}

fn enqueue(db: &redb::Database, outbox: &Outbox, notification: &Notification) {
    let txn = db.begin_write().unwrap();
    outbox.enqueue_in(&txn, notification).unwrap();
    txn.commit().unwrap();
    outbox.wake();
}

async fn until<T>(mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The mail body as the reader sees it: quoted-printable decoded (lettre picks it for lines
/// over 76 characters), CRLF turned into LF.
fn readable_body(mail: &support::Mail) -> String {
    let raw = mail.body().replace("\r\n", "\n");
    let encoding = mail.header("Content-Transfer-Encoding").unwrap_or_default();
    if !encoding.eq_ignore_ascii_case("quoted-printable") {
        return raw;
    }
    let unfolded = raw.replace("=\n", "");
    let bytes = unfolded.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn metric_line(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// `monitor_am_notifications_total` of one receiver, channel kind and outcome.
fn notifications_total(metrics: &str, receiver: &str, kind: &str, outcome: &str) -> Option<f64> {
    metric_line(
        metrics,
        &format!(
            "monitor_am_notifications_total{{receiver=\"{receiver}\",kind=\"{kind}\",outcome=\"{outcome}\"}}"
        ),
    )
}

// ------------------------------------------------------------------------------------------
// a scripted webhook receiver

#[derive(Debug, Clone)]
struct Received {
    path: String,
    at: Instant,
    idempotency_key: Option<String>,
    body: serde_json::Value,
}

#[derive(Debug, Clone, Copy)]
struct Reply {
    status: u16,
    retry_after: Option<&'static str>,
}

impl Reply {
    /// `status` without `Retry-After`.
    const fn status(status: u16) -> Reply {
        Reply {
            status,
            retry_after: None,
        }
    }
}

const OK: Reply = Reply::status(200);

#[derive(Clone, Default)]
struct Hook {
    received: Arc<Mutex<Vec<Received>>>,
    /// Per path: answers to give in turn, then `always` (default 200).
    script: Arc<Mutex<HashMap<String, VecDeque<Reply>>>>,
    always: Arc<Mutex<HashMap<String, Reply>>>,
    port: u16,
}

impl Hook {
    async fn start() -> Hook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hook = Hook {
            port: listener.local_addr().unwrap().port(),
            ..Hook::default()
        };
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(hook.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        hook
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn script(&self, path: &str, replies: &[Reply]) {
        self.script
            .lock()
            .unwrap()
            .insert(path.to_owned(), replies.iter().copied().collect());
    }

    fn always(&self, path: &str, reply: Reply) {
        self.always.lock().unwrap().insert(path.to_owned(), reply);
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        until(|| {
            let got = self.received(path);
            (got.len() >= n).then_some(got)
        })
        .await
        .unwrap_or_else(|| panic!("{path}: fewer than {n} requests: {:?}", self.received(path)))
    }
}

async fn answer(State(hook): State<Hook>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_owned();
    hook.received.lock().unwrap().push(Received {
        path: path.clone(),
        at: Instant::now(),
        idempotency_key: headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    let scripted = hook
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let reply = scripted
        .or_else(|| hook.always.lock().unwrap().get(&path).copied())
        .unwrap_or(OK);
    let status = StatusCode::from_u16(reply.status).unwrap();
    match reply.retry_after {
        Some(after) => (status, [("retry-after", after)], "scripted").into_response(),
        None => (status, "scripted").into_response(),
    }
}

// ------------------------------------------------------------------------------------------
// email

fn email_receiver(name: &str, port: u16, extra: &str) -> String {
    format!(
        r#"
  - name: {name}
    email:
      to: ["oncall@example.org", "Team Lead <lead@example.org>"]
      from: "Monitor <monitor@example.org>"
      smarthost: "127.0.0.1:{port}"
      tls: none
      timeout: 5s
{extra}"#
    )
}

fn config(receivers: &str, outbox: &str) -> String {
    format!(
        "listen: \"127.0.0.1:19500\"\nexternal_url: \"http://am.example.org:9193\"\nreceivers:{receivers}\noutbox:\n{outbox}\n"
    )
}

const FAST_RETRIES: &str = "  retry_backoff_min: 50ms\n  retry_backoff_max: 200ms\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_firing_and_resolved_arrive_exactly_as_rendered() {
    let sink = SmtpSink::start();
    let yaml = config(&email_receiver("mail", sink.port(), ""), FAST_RETRIES);
    let running = Running::start_fresh(&yaml);

    running.enqueue(&notification(
        "n-firing",
        "mail",
        vec![
            alert("host1", 93.0, NotificationStatus::Firing),
            alert("host2", 95.5, NotificationStatus::Firing),
        ],
    ));
    let mails = sink.wait_for_messages(1, LIMIT);
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("[FIRING:2] HighMem cluster1")
    );
    assert_eq!(
        mail.header("From").as_deref(),
        Some("Monitor <monitor@example.org>")
    );
    assert_eq!(
        mail.header("To").as_deref(),
        Some("oncall@example.org, \"Team Lead\" <lead@example.org>")
    );
    assert_eq!(mail.mail_from, "monitor@example.org");
    assert_eq!(
        mail.rcpt_to,
        vec![
            "oncall@example.org".to_owned(),
            "lead@example.org".to_owned()
        ]
    );
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some("<n-firing@monitor-alert-manager>")
    );
    let body = readable_body(mail);
    let expected = "\
[FIRING] HighMem on host1 (cluster1)
mem used 93 > 90 on host1
value: 93
severity: warning
started: 2026-11-21T12:00:00.000Z
labels: alertname=HighMem, host=host1, index=cluster1, severity=warning, source=api

[FIRING] HighMem on host2 (cluster1)
mem used 95.5 > 90 on host2
value: 95.5
severity: warning
started: 2026-11-21T12:00:00.000Z
labels: alertname=HighMem, host=host2, index=cluster1, severity=warning, source=api";
    // SMTP framing adds a line end before the final dot; the rest is byte for byte.
    assert_eq!(body.trim_end(), expected);

    running.enqueue(&notification(
        "n-resolved",
        "mail",
        vec![alert("host1", 93.0, NotificationStatus::Resolved)],
    ));
    let mails = sink.wait_for_messages(2, LIMIT);
    assert_eq!(mails.len(), 2);
    assert_eq!(
        mails[1].header("Subject").as_deref(),
        Some("[RESOLVED] HighMem cluster1")
    );
    let body = readable_body(&mails[1]);
    assert!(
        body.starts_with("[RESOLVED] HighMem on host1 (cluster1)\n"),
        "{body}"
    );
    assert!(body.contains("ended: 2026-11-21T12:10:00.000Z\n"), "{body}");
    running
        .drained("the mail server's acknowledgement is recorded")
        .await;
    let metrics = running.stop().await;
    assert_eq!(
        notifications_total(&metrics, "mail", "email", "delivered"),
        Some(2.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_templates_render_labels_value_and_status() {
    let sink = SmtpSink::start();
    let extra = r#"      subject: "{{ status | upper }} {{ labels.alertname }} on {{ labels.host }}"
      body: "{{ range alerts }}{{ host }}={{ value }} ({{ annotations.summary }});{{ end }}""#;
    let yaml = config(&email_receiver("mail", sink.port(), extra), FAST_RETRIES);
    let running = Running::start_fresh(&yaml);
    running.enqueue(&firing("n1", "mail"));
    let mails = sink.wait_for_messages(1, LIMIT);
    assert_eq!(
        mails[0].header("Subject").as_deref(),
        Some("FIRING HighMem on host1")
    );
    assert_eq!(
        readable_body(&mails[0]).trim_end(),
        "host1=93 (mem used 93 > 90 on host1);"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_server_down_then_back_gets_the_mail_exactly_once() {
    let port = free_port(None);
    // One permanent refusal would dead-letter: a refused connection must not count as one.
    let outbox = format!("{FAST_RETRIES}  permanent_failure_attempts: 1\n");
    let running = Running::start_fresh(&config(&email_receiver("mail", port, ""), &outbox));
    running.enqueue(&firing("n-down", "mail"));
    let retries = "monitor_am_notification_retries_total{receiver=\"mail\",kind=\"email\"}";
    until(|| metric_line(&running.metrics(), retries).filter(|n| *n >= 3.0))
        .await
        .expect("at least three failed attempts while the server is down");
    let snapshot = running.outbox.snapshot();
    assert_eq!(snapshot.owed(), 1, "{snapshot:?}");
    assert_eq!(snapshot.channels[0].in_retry, 1);
    assert!(snapshot.channels[0].oldest_owed_at_ms.is_some());
    assert_eq!(snapshot.dead_lettered(), 0);
    assert!(
        snapshot.channels[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(&port.to_string())),
        "{snapshot:?}"
    );

    let sink = SmtpSink::start_on(port);
    let mails = sink.wait_for_messages(1, LIMIT);
    assert_eq!(mails.len(), 1);
    running.drained("the queue drains").await;
    // Exactly once: a second notification behind it in the same queue arrives second.
    running.enqueue(&firing("n-after", "mail"));
    let mails = sink.wait_for_messages(2, LIMIT);
    assert_eq!(mails.len(), 2);
    assert_eq!(
        mails[1].header("Message-ID").as_deref(),
        Some("<n-after@monitor-alert-manager>")
    );
    assert!(
        running
            .outbox
            .was_delivered("n-down", ChannelKind::Email)
            .unwrap()
    );
    running.stop().await;
}

/// An SMTP server that greets and then refuses every recipient with 550; counts RCPTs.
async fn refusing_smtp_server() -> (u16, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let refusals = Arc::new(Mutex::new(0usize));
    let counter = refusals.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 refuser ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-refuser\r\n250 8BITMIME\r\n",
                        "RCPT" => {
                            *counter.lock().unwrap() += 1;
                            b"550 5.1.1 mailbox unavailable\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 OK\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, refusals)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_smtp_refusal_is_dead_lettered_not_retried_forever() {
    let (port, refusals) = refusing_smtp_server().await;
    let outbox = format!("{FAST_RETRIES}  permanent_failure_attempts: 2\n");
    let running = Running::start_fresh(&config(&email_receiver("mail", port, ""), &outbox));
    running.enqueue(&firing("n-refused", "mail"));
    let letters = running.dead_letters_at_least(1).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].attempts, 2);
    assert_eq!(letters[0].notification.id, "n-refused");
    assert!(letters[0].reason.contains("550"), "{}", letters[0].reason);
    // Two attempts, each refused at the first recipient.
    assert_eq!(*refusals.lock().unwrap(), 2);
    let snapshot = running.outbox.snapshot();
    assert_eq!((snapshot.owed(), snapshot.dead_lettered()), (0, 1));
    running.stop().await;
}

// ------------------------------------------------------------------------------------------
// webhook and chat

fn webhook_receiver(name: &str, url: &str, extra: &str) -> String {
    format!("\n  - name: {name}\n    webhook:\n      url: \"{url}\"\n      timeout: 5s\n{extra}")
}

/// A config with the one webhook receiver `name`, posting to `hook` at `/<name>`.
fn webhook_config(hook: &Hook, name: &str, outbox: &str) -> String {
    config(
        &webhook_receiver(name, &hook.url(&format!("/{name}")), ""),
        outbox,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_honours_retry_after_retries_5xx_and_sends_the_v4_payload() {
    let hook = Hook::start().await;
    hook.script(
        "/hook",
        &[
            Reply {
                status: 429,
                retry_after: Some("1"),
            },
            Reply::status(503),
            OK,
        ],
    );
    let running = Running::start_fresh(&webhook_config(&hook, "hook", FAST_RETRIES));
    running.enqueue(&notification(
        "n-hook",
        "hook",
        vec![
            alert("host1", 93.0, NotificationStatus::Firing),
            alert("host2", 95.5, NotificationStatus::Resolved),
        ],
    ));
    let got = hook.wait_for("/hook", 3).await;
    running.drained("delivered").await;
    assert_eq!(
        hook.received("/hook").len(),
        3,
        "delivered once, after two failures"
    );
    assert!(
        got[1].at.duration_since(got[0].at) >= Duration::from_secs(1),
        "Retry-After: 1 not honoured: {:?}",
        got[1].at.duration_since(got[0].at)
    );
    for request in &got {
        assert_eq!(request.idempotency_key.as_deref(), Some("n-hook"));
        assert_eq!(request.body, got[0].body);
    }
    let body = &got[2].body;
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "hook");
    assert_eq!(
        body["groupKey"],
        "{}:{alertname=\"HighMem\", index=\"cluster1\"}"
    );
    assert_eq!(
        body["groupLabels"],
        serde_json::json!({"alertname": "HighMem", "index": "cluster1"})
    );
    assert_eq!(
        body["commonLabels"],
        serde_json::json!({"alertname": "HighMem", "index": "cluster1", "severity": "warning", "source": "api"})
    );
    assert_eq!(body["commonAnnotations"], serde_json::json!({}));
    assert_eq!(body["externalURL"], "http://am.example.org:9193");
    let alerts = body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["labels"]["host"], "host1");
    assert_eq!(
        alerts[0]["annotations"]["summary"],
        "mem used 93 > 90 on host1"
    );
    assert_eq!(alerts[0]["startsAt"], "2026-11-21T12:00:00.000Z");
    assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(alerts[1]["status"], "resolved");
    assert_eq!(alerts[1]["endsAt"], "2026-11-21T12:10:00.000Z");
    assert_eq!(
        alerts[0]["fingerprint"],
        alert("host1", 93.0, NotificationStatus::Firing)
            .alert
            .fingerprint
    );
    let metrics = running.stop().await;
    let line = |outcome: &str| notifications_total(&metrics, "hook", "webhook", outcome);
    assert_eq!(line("failed"), Some(2.0), "{metrics}");
    assert_eq!(line("delivered"), Some(1.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_4xx_and_endless_5xx_are_dead_lettered_listed_and_counted() {
    let hook = Hook::start().await;
    hook.always("/bad", Reply::status(400));
    hook.always("/down", Reply::status(503));
    let receivers = format!(
        "{}{}",
        webhook_receiver("bad", &hook.url("/bad"), ""),
        webhook_receiver("down", &hook.url("/down"), "")
    );
    let outbox = format!("{FAST_RETRIES}  give_up_after: 1s\n  permanent_failure_attempts: 3\n");
    let running = Running::start_fresh(&config(&receivers, &outbox));
    running.enqueue(&firing("n-bad", "bad"));
    running.enqueue(&firing("n-down", "down"));
    let letters = running.dead_letters_at_least(2).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let bad = letters.iter().find(|l| l.receiver == "bad").unwrap();
    assert_eq!(bad.attempts, 3);
    assert!(bad.reason.starts_with("refused: "), "{}", bad.reason);
    assert!(bad.reason.contains("400"), "{}", bad.reason);
    assert_eq!(hook.received("/bad").len(), 3);
    let down = letters.iter().find(|l| l.receiver == "down").unwrap();
    assert!(down.attempts >= 2, "{down:?}");
    assert!(
        down.reason.starts_with("undelivered past give_up_after"),
        "{}",
        down.reason
    );
    assert!(down.dead_at_ms - down.enqueued_at_ms >= 1000);
    let snapshot = running.outbox.snapshot();
    assert_eq!((snapshot.owed(), snapshot.dead_lettered()), (0, 2));
    let metrics = running.stop().await;
    for receiver in ["bad", "down"] {
        assert_eq!(
            notifications_total(&metrics, receiver, "webhook", "dead_lettered"),
            Some(1.0),
            "{metrics}"
        );
        assert_eq!(
            metric_line(
                &metrics,
                &format!(
                    "monitor_am_outbox_dead_letter_depth{{receiver=\"{receiver}\",kind=\"webhook\"}}"
                )
            ),
            Some(1.0),
            "{metrics}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_gets_a_slack_message() {
    let hook = Hook::start().await;
    let receivers = format!(
        "\n  - name: chat\n    chat:\n      url: \"{}\"\n      channel: \"#ops\"\n",
        hook.url("/slack")
    );
    let running = Running::start_fresh(&config(&receivers, FAST_RETRIES));
    running.enqueue(&firing("n-chat", "chat"));
    let got = hook.wait_for("/slack", 1).await;
    let body = &got[0].body;
    assert_eq!(
        body["text"],
        "*[FIRING:1] HighMem cluster1*\nFIRING HighMem on host1: mem used 93 > 90 on host1\n"
    );
    assert_eq!(body["channel"], "#ops");
    assert_eq!(body["attachments"][0]["color"], "danger");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_receiver_spaces_deliveries() {
    let hook = Hook::start().await;
    let receivers = format!(
        "{}{}",
        webhook_receiver(
            "slow",
            &hook.url("/slow"),
            "    rate_limit: { count: 2, per: 1s }\n"
        ),
        webhook_receiver("fast", &hook.url("/fast"), "")
    );
    let running = Running::start_fresh(&config(&receivers, FAST_RETRIES));
    for n in 0..5 {
        running.enqueue(&firing(&format!("slow-{n}"), "slow"));
        running.enqueue(&firing(&format!("fast-{n}"), "fast"));
    }
    let slow = hook.wait_for("/slow", 5).await;
    let fast = hook.wait_for("/fast", 5).await;
    let ids = |got: &[Received]| {
        got.iter()
            .map(|r| r.idempotency_key.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&slow),
        ["slow-0", "slow-1", "slow-2", "slow-3", "slow-4"],
        "in order"
    );
    assert_eq!(
        ids(&fast),
        ["fast-0", "fast-1", "fast-2", "fast-3", "fast-4"],
        "in order"
    );
    // A token bucket of 2 refilled at 2/s lets through at most 2 + 2·T sends in T seconds:
    // k+1 consecutive sends span at least (k - 1) / 2 s (minus a margin for the receiving
    // side's scheduling).
    let margin = Duration::from_millis(60);
    for k in 2..5 {
        for i in 0..5 - k {
            let span = slow[i + k].at.duration_since(slow[i].at);
            let floor = Duration::from_millis(500 * (k as u64 - 1));
            assert!(span + margin >= floor, "{} sends within {span:?}", k + 1);
        }
    }
    running.stop().await;
}

// ------------------------------------------------------------------------------------------
// crash safety

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owed_notifications_survive_a_crash_and_are_delivered_exactly_once() {
    let hook = Hook::start().await;
    let (_dir, path) = fresh_db();
    let yaml = webhook_config(&hook, "hook", FAST_RETRIES);

    // Enqueue and "kill -9": the outbox never runs, nothing is shut down cleanly.
    {
        let (db, outbox, _registry) = open(&path, &yaml);
        for n in 0..3 {
            enqueue(&db, &outbox, &firing(&format!("crash-{n}"), "hook"));
        }
        // Enqueue is idempotent by id.
        enqueue(&db, &outbox, &firing("crash-1", "hook"));
        assert_eq!(outbox.snapshot().owed(), 3);
    }
    assert!(hook.received("/hook").is_empty());
    {
        let (_db, _outbox, registry) = open(&path, &yaml);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert_eq!(
            metric_line(
                &text,
                "monitor_am_outbox_queue_depth{receiver=\"hook\",kind=\"webhook\"}"
            ),
            Some(3.0),
            "{text}"
        );
    }

    let running = Running::start(&path, &yaml);
    let got = hook.wait_for("/hook", 3).await;
    running.drained("drained").await;
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.idempotency_key.clone().unwrap())
        .collect();
    assert_eq!(ids, ["crash-0", "crash-1", "crash-2"]);
    running.stop().await;

    // Restart again; the pipeline replays notifications the log shows as delivered: not resent.
    let running = Running::start(&path, &yaml);
    running.enqueue(&firing("crash-0", "hook"));
    running.enqueue(&firing("crash-2", "hook"));
    running.enqueue(&firing("fresh", "hook"));
    let got = hook.wait_for("/hook", 4).await;
    running.drained("drained").await;
    // Per-channel FIFO: had a replay been sent, it would have arrived before `fresh`.
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.idempotency_key.clone().unwrap())
        .collect();
    assert_eq!(ids, ["crash-0", "crash-1", "crash-2", "fresh"]);
    assert_eq!(hook.received("/hook").len(), 4);
    let metrics = running.stop().await;
    assert_eq!(
        notifications_total(&metrics, "hook", "webhook", "duplicate"),
        Some(2.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_removed_from_the_config_has_its_queue_dead_lettered() {
    let hook = Hook::start().await;
    let (_dir, path) = fresh_db();
    let both = format!(
        "{}{}",
        webhook_receiver("keep", &hook.url("/keep"), ""),
        webhook_receiver("gone", &hook.url("/gone"), "")
    );
    {
        let (db, outbox, _registry) = open(&path, &config(&both, FAST_RETRIES));
        enqueue(&db, &outbox, &firing("to-gone", "gone"));
    }
    let running = Running::start(&path, &webhook_config(&hook, "keep", FAST_RETRIES));
    let letters = running.dead_letters_at_least(1).await;
    assert_eq!(letters[0].notification.id, "to-gone");
    assert!(letters[0].reason.contains("no longer configured"));
    assert!(hook.received("/gone").is_empty());
    let snapshot = running.outbox.snapshot();
    assert_eq!((snapshot.owed(), snapshot.dead_lettered()), (0, 1));
    running.stop().await;
}

// ------------------------------------------------------------------------------------------
// config

#[test]
fn template_and_receiver_option_errors_name_the_key_and_line() {
    let yaml = r#"listen: "127.0.0.1:9193"
receivers:
  - name: mail
    email:
      to: ["a@example.org"]
      from: "m@example.org"
      smarthost: "127.0.0.1:25"
      subject: "{{ lables.host }} is down"
      body: "{{ range alerts }}{{ value }}"
    chat:
      url: "http://127.0.0.1:1/x"
      text: "{{ value | shout }}"
    rate_limit: { count: 0, per: 1m }
outbox:
  permanent_failure_attempts: 0
  record_batch: 0
"#;
    let error = AlertManagerConfig::from_yaml_str(yaml, "am.yaml")
        .unwrap_err()
        .to_string();
    for expected in [
        "am.yaml:8: receivers[0].email.subject: template error at character 1: unknown name `lables.host`",
        "am.yaml:9: receivers[0].email.body: template error at character 1: `{{ range }}` is never closed by `{{ end }}`",
        "am.yaml:12: receivers[0].chat.text: template error at character 1: unknown filter `shout`",
        "am.yaml:13: receivers[0].rate_limit.count: must be at least 1",
        "am.yaml:15: outbox.permanent_failure_attempts: must be at least 1",
        "am.yaml:16: outbox.record_batch: must be at least 1 (1 records every delivery before the next is sent)",
    ] {
        assert!(
            error.contains(expected),
            "missing {expected:?} in:\n{error}"
        );
    }
}

#[test]
fn the_readme_receiver_example_is_a_valid_config() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Alert delivery: receivers and guarantees")
        .nth(1)
        .expect("README section");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("yaml block");
    let config = AlertManagerConfig::from_yaml_str(yaml, "README.md").unwrap();
    assert_eq!(config.receivers[0].rate_limit.unwrap().count, 10);
    assert_eq!(config.outbox.permanent_failure_attempts, 3);
    assert_eq!(config.outbox.record_batch, 32);
    assert_eq!(config.outbox.record_within.get(), Duration::from_millis(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_can_be_requeued_once_the_receiver_is_fixed_or_discarded() {
    let hook = Hook::start().await;
    hook.always("/fixme", Reply::status(404));
    let outbox = format!("{FAST_RETRIES}  permanent_failure_attempts: 1\n");
    let running = Running::start_fresh(&webhook_config(&hook, "fixme", &outbox));
    running.enqueue(&firing("keep", "fixme"));
    running.enqueue(&firing("drop", "fixme"));
    let letters = running.dead_letters_at_least(2).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(hook.received("/fixme").len(), 2);

    hook.always("/fixme", OK);
    let keep = letters
        .iter()
        .find(|l| l.notification.id == "keep")
        .unwrap();
    let dropped = letters
        .iter()
        .find(|l| l.notification.id == "drop")
        .unwrap();
    assert!(
        running
            .outbox
            .requeue_dead_letter("fixme", ChannelKind::Webhook, keep.seq)
            .unwrap()
    );
    assert!(
        running
            .outbox
            .discard_dead_letter("fixme", ChannelKind::Webhook, dropped.seq)
            .unwrap()
    );
    assert!(
        !running
            .outbox
            .discard_dead_letter("fixme", ChannelKind::Webhook, dropped.seq)
            .unwrap()
    );
    let got = hook.wait_for("/fixme", 3).await;
    assert_eq!(got[2].idempotency_key.as_deref(), Some("keep"));
    running.drained("delivered").await;
    assert!(running.outbox.dead_letters().unwrap().is_empty());
    assert!(
        running
            .outbox
            .was_delivered("keep", ChannelKind::Webhook)
            .unwrap()
    );
    running.stop().await;
}

/// Writes `value` as the first owed entry of receiver `hook` (white box: the outbox table's
/// name and key), as another build might have left it.
fn put_owed_entry(path: &Path, yaml: &str, value: &[u8]) {
    let (db, _outbox, _registry) = open(path, yaml);
    let owed: redb::TableDefinition<(&str, &str, u64), &[u8]> =
        redb::TableDefinition::new("outbox_owed");
    let txn = db.begin_write().unwrap();
    txn.open_table(owed)
        .unwrap()
        .insert(("hook", "webhook", 0), value)
        .unwrap();
    txn.commit().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_no_longer_decodes_is_set_aside_not_blocking_its_queue() {
    let hook = Hook::start().await;
    let (_dir, path) = fresh_db();
    let yaml = webhook_config(&hook, "hook", FAST_RETRIES);
    // As an incompatible older version might have left it.
    put_owed_entry(&path, &yaml, b"{\"not\": \"a record\"}");
    {
        let (_db, outbox, _registry) = open(&path, &yaml);
        assert_eq!(outbox.snapshot().owed(), 1, "counted until set aside");
    }
    let running = Running::start(&path, &yaml);
    running.enqueue(&firing("behind-it", "hook"));
    let got = hook.wait_for("/hook", 1).await;
    assert_eq!(got[0].idempotency_key.as_deref(), Some("behind-it"));
    running.drained("drained").await;
    let metrics = running.stop().await;
    assert_eq!(
        notifications_total(&metrics, "hook", "webhook", "undecodable"),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_entry_left_by_an_earlier_build_is_still_delivered() {
    let hook = Hook::start().await;
    let (_dir, path) = fresh_db();
    let yaml = webhook_config(&hook, "hook", FAST_RETRIES);
    // Builds before the binary records wrote owed entries as JSON.
    let record = serde_json::json!({
        "notification": firing("from-json", "hook"),
        "enqueued_at_ms": 1,
        "attempts": 0,
        "permanent_failures": 0,
        "next_attempt_ms": 0,
        "last_error": null,
    });
    put_owed_entry(&path, &yaml, &serde_json::to_vec(&record).unwrap());
    let running = Running::start(&path, &yaml);
    running.enqueue(&firing("binary", "hook"));
    let got = hook.wait_for("/hook", 2).await;
    assert_eq!(got[0].idempotency_key.as_deref(), Some("from-json"));
    assert_eq!(got[1].idempotency_key.as_deref(), Some("binary"));
    running.drained("drained").await;
    let metrics = running.stop().await;
    assert_eq!(
        notifications_total(&metrics, "hook", "webhook", "undecodable"),
        None,
        "{metrics}"
    );
}

/// aiosmtpd that insists on STARTTLS and AUTH (user `monitor`, password `s3cret`).
const STARTTLS_AUTH_SERVER: &str = r#"
import os, signal, ssl, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

mail_dir, port, cert, key, owner = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])

class Handler:
    seq = 0
    async def handle_DATA(self, server, session, envelope):
        Handler.seq += 1
        path = os.path.join(mail_dir, "%06d.eml" % Handler.seq)
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 OK"

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"monitor" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)

context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(cert, key)
controller = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=context,
                        require_starttls=True, authenticator=authenticator,
                        auth_required=True, auth_require_tls=True)
controller.start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
while not stop.is_set():
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        break
    stop.wait(1)
controller.stop()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_starttls_with_auth_delivers_and_a_wrong_password_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    std::fs::create_dir(&mail_dir).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let script = dir.path().join("server.py");
    std::fs::write(&script, STARTTLS_AUTH_SERVER).unwrap();
    let port = free_port(None);
    let _server = support::ProcessGuard::spawn(
        std::process::Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(&mail_dir)
            .arg(port.to_string())
            .arg(&cert)
            .arg(&key)
            .arg(std::process::id().to_string()),
    );
    support::wait_for(LIMIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("the STARTTLS server listens");

    let receiver = |name: &str, password: &str| {
        format!(
            r#"
  - name: {name}
    email:
      to: ["oncall@example.org"]
      from: "monitor@example.org"
      smarthost: "127.0.0.1:{port}"
      tls: starttls
      tls_insecure_skip_verify: true
      username: monitor
      password: "{password}"
      timeout: 5s
"#
        )
    };
    let receivers = format!("{}{}", receiver("good", "s3cret"), receiver("bad", "wrong"));
    let outbox = format!("{FAST_RETRIES}  permanent_failure_attempts: 2\n");
    let running = Running::start_fresh(&config(&receivers, &outbox));
    running.enqueue(&firing("n-good", "good"));
    running.enqueue(&firing("n-bad", "bad"));

    let letters = running.dead_letters_at_least(1).await;
    assert_eq!(letters[0].receiver, "bad");
    assert!(letters[0].reason.contains("535"), "{}", letters[0].reason);
    running.drained("the good one is delivered").await;
    let mails: Vec<_> = std::fs::read_dir(&mail_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    assert_eq!(mails.len(), 1);
    let mail = std::fs::read_to_string(&mails[0]).unwrap();
    assert!(
        mail.contains("Message-ID: <n-good@monitor-alert-manager>"),
        "{mail}"
    );
    running.stop().await;
}
