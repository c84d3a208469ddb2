//! End-to-end timelines through the real `monitor-alert-manager` binary, asserted message by
//! message on a webhook receiver in the test: Occurrences, ReissueDuration, SuccessDuration with
//! the host active and inactive, ignore rules until they expire, and bad input.
//!
//! Host liveness comes from a real `monitor-api` (one for the whole file): a host is made Active
//! by writing lines for it through monitor-api's write path, which feeds its host registry, and
//! turns inactive once it stops for `host_active_window`. Its replicas are loopback ports nothing
//! listens on: the lines are written with `consistency=any` (acknowledged once durable in the
//! proxy's log), and the registry is all these timelines need. Durations are milliseconds so
//! each timeline runs in seconds. Waits are bounded polls for outcomes, never timing assertions.

mod alertmanager_support;
mod support;

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alertmanager_support::{
    AlertManager, StandIn, alert, notifications, wait_notifications, webhook_sink,
};
use serde_json::{Value, json};
use support::api::{FAST_TIMINGS, MonitorApi, groups_yaml};

const LIMIT: Duration = Duration::from_secs(15);

/// The monitor-api every alert manager of this file asks about hosts (started once; its
/// watchdog stops it when the test process exits).
fn monitor_api() -> &'static MonitorApi {
    static API: OnceLock<MonitorApi> = OnceLock::new();
    API.get_or_init(|| {
        let replicas = (0..2)
            .map(|i| {
                let url = format!("http://127.0.0.1:{}", support::free_port(None));
                (format!("r{i}"), url)
            })
            .collect();
        MonitorApi::start(&format!(
            "{}indexes:\n  mail: g1\n  c1: g1\nopen_access: true\nhost_active_window: \"1s\"\n{FAST_TIMINGS}",
            groups_yaml(&[("g1", replicas)])
        ))
    })
}

/// One line for `host` through monitor-api's write path: the host reports.
fn report(index: &str, host: &str) {
    let line = format!("cpu,index={index},host={host} usage=1\n");
    let response = monitor_api().write("telegraf", &[("consistency", "any")], line.as_bytes());
    assert_eq!(response.status, 204, "{}", response.text());
}

/// What monitor-api's host registry says about `host`: `None` while it does not know it.
fn registry_active(index: &str, host: &str) -> Option<bool> {
    let answer = monitor_api()
        .request(
            "GET",
            &format!("/api/v1/hosts?index={index}&host={host}"),
            &[],
            b"",
        )
        .json();
    answer["hosts"][0]["active"].as_bool()
}

/// Keeps a host reporting (a line every 200 ms) until dropped.
struct Reporting {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reporting {
    fn start(index: &'static str, host: &'static str) -> Reporting {
        report(index, host);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                report(index, host);
            }
        });
        Reporting {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Reporting {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn config(sink: &StandIn, registry: &str, smtp_port: u16) -> String {
    format!(
        r#"
monitor_api: ["{registry}"]
reissue_duration: "3s"
success_duration: "1500ms"
occurrences: {{ count: 2, window: "2s" }}
group_wait: "200ms"
sweep_interval: "100ms"
host_cache_ttl: "50ms"
receivers:
  - name: hook
    webhook: {{ url: "{sink}/hook" }}
  - name: mail
    email: {{ to: ["ops@example.com"], from: "am@example.com", smarthost: "127.0.0.1:{smtp_port}", tls: none }}
routes:
  - {{ receiver: mail, matchers: ['index="mail"'], continue: true }}
  - {{ receiver: hook }}
default_receiver: hook
"#,
        sink = sink.url()
    )
}

struct Rig {
    sink: StandIn,
    smtp: support::SmtpSink,
    am: AlertManager,
}

fn rig() -> Rig {
    let sink = webhook_sink();
    let smtp = support::SmtpSink::start();
    let am = AlertManager::start(&config(&sink, &monitor_api().url(), smtp.port()));
    Rig { sink, smtp, am }
}

fn summary(answer: &Value, key: &str) -> u64 {
    answer["summary"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("no summary.{key} in {answer}"))
}

#[test]
fn occurrences_then_reissue_then_one_success_when_the_host_is_active() {
    let rig = rig();
    // h1 keeps reporting through monitor-api for the whole timeline: Active.
    let _h1 = Reporting::start("mail", "h1");
    // index "mail": the mail route takes it too (continue), then the default webhook.
    let a = json!([alert("HighMem", "mail", "h1", "warning")]);

    // First sighting, below Occurrences (2): nothing.
    assert_eq!(summary(&rig.am.post_alerts(&a), "waiting"), 1);
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        notifications(&rig.sink).is_empty(),
        "nothing below Occurrences"
    );

    // Second sighting reaches it: one message.
    assert_eq!(summary(&rig.am.post_alerts(&a), "due"), 1);
    let got = wait_notifications(&rig.sink, 1, LIMIT);
    assert_eq!(got, vec![("firing".to_string(), vec!["h1".to_string()])]);

    // Repeats inside ReissueDuration: nothing.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(summary(&rig.am.post_alerts(&a), "suppressed"), 1);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        notifications(&rig.sink).len(),
        1,
        "no message inside ReissueDuration"
    );

    // Still firing after ReissueDuration: one more.
    let reissued = support::wait_for(LIMIT, || {
        std::thread::sleep(Duration::from_millis(250));
        (summary(&rig.am.post_alerts(&a), "due") == 1).then_some(())
    });
    assert!(reissued.is_some(), "never reissued");
    let got = wait_notifications(&rig.sink, 2, LIMIT);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1], ("firing".to_string(), vec!["h1".to_string()]));

    // Quiet for SuccessDuration, host active: one Success.
    let got = wait_notifications(&rig.sink, 3, LIMIT);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[2], ("resolved".to_string(), vec!["h1".to_string()]));
    assert!(
        rig.am.get_json("/api/v1/issued")["issued"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(notifications(&rig.sink).len(), 3, "exactly one Success");
    let metrics = rig.am.metrics();
    assert!(
        metrics.contains("monitor_am_successes_total 1"),
        "{metrics}"
    );
    let mut families: Vec<&str> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let total = families.len();
    families.sort_unstable();
    families.dedup();
    assert_eq!(
        families.len(),
        total,
        "a metric family is registered twice:\n{metrics}"
    );

    // The same three messages as mails on a real SMTP server, in order.
    let mails = rig.smtp.wait_for_messages(3, LIMIT);
    let subjects: Vec<String> = mails
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect();
    assert_eq!(mails.len(), 3, "{subjects:?}");
    assert!(
        subjects[0].contains("FIRING") && subjects[0].contains("HighMem"),
        "{subjects:?}"
    );
    assert!(subjects[1].contains("FIRING"), "{subjects:?}");
    assert!(subjects[2].contains("RESOLVED"), "{subjects:?}");
    assert!(
        mails
            .iter()
            .all(|m| m.rcpt_to == vec!["ops@example.com".to_string()])
    );
}

#[test]
fn no_success_while_the_host_is_inactive_then_one_when_it_reports_again() {
    let rig = rig();
    // h2 reported once, then went quiet for longer than host_active_window: known, inactive.
    report("c1", "h2");
    let inactive = support::wait_for(LIMIT, || {
        (registry_active("c1", "h2") == Some(false)).then_some(())
    });
    assert!(
        inactive.is_some(),
        "h2 never became inactive in monitor-api"
    );
    let b = json!([alert("DiskFull", "c1", "h2", "critical")]);
    rig.am.post_alerts(&b);
    assert_eq!(summary(&rig.am.post_alerts(&b), "due"), 1);
    assert_eq!(wait_notifications(&rig.sink, 1, LIMIT).len(), 1);

    // Quiet, host inactive: withheld, stays issued, no Success.
    let withheld = support::wait_for(LIMIT, || {
        let issued = rig.am.get_json("/api/v1/issued");
        issued["issued"][0]["success_withheld_since"]
            .as_str()
            .map(str::to_owned)
    });
    assert!(withheld.is_some(), "Success never considered");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        notifications(&rig.sink).len(),
        1,
        "no Success for an inactive host"
    );
    assert_eq!(
        rig.am.get_json("/api/v1/issued")["issued"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The host reports again through monitor-api: the owed Success goes out.
    let _h2 = Reporting::start("c1", "h2");
    let got = wait_notifications(&rig.sink, 2, LIMIT);
    assert_eq!(got[1], ("resolved".to_string(), vec!["h2".to_string()]));
}

#[test]
fn an_ignore_rule_holds_alerts_until_it_expires() {
    let rig = rig();
    let rule = rig.am.request(
        "POST",
        "/api/v1/ignores",
        json!({"matchers": ["host=\"h3\""], "duration": "1500ms", "author": "ops", "comment": "maintenance"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(rule.status, 201, "{}", rule.text());
    let id = rule.json()["id"].as_str().unwrap().to_owned();
    let c = json!([alert("Load", "c1", "h3", "warning")]);
    assert_eq!(summary(&rig.am.post_alerts(&c), "ignored"), 1);
    assert_eq!(summary(&rig.am.post_alerts(&c), "ignored"), 1);
    std::thread::sleep(Duration::from_millis(500));
    assert!(notifications(&rig.sink).is_empty(), "nothing while ignored");
    let listed = rig.am.get_json("/api/v1/alerts");
    assert_eq!(listed["alerts"][0]["state"], "ignored");
    assert_eq!(listed["alerts"][0]["by"][0], id.as_str());

    let expired = support::wait_for(LIMIT, || {
        let rules = rig.am.get_json("/api/v1/ignores");
        (rules["ignores"][0]["state"] == "expired").then_some(())
    });
    assert!(expired.is_some());
    rig.am.post_alerts(&c);
    assert_eq!(summary(&rig.am.post_alerts(&c), "due"), 1);
    let got = wait_notifications(&rig.sink, 1, LIMIT);
    assert_eq!(got, vec![("firing".to_string(), vec!["h3".to_string()])]);
}

#[test]
fn bad_input_is_a_400_naming_the_field() {
    let rig = rig();
    let check = |method: &str, path: &str, body: &str, field: &str| {
        let response = rig.am.request(method, path, body.as_bytes());
        assert_eq!(
            response.status,
            400,
            "{method} {path} {body}: {}",
            response.text()
        );
        assert!(
            response.text().contains(field),
            "{method} {path} {body}: {} does not name {field}",
            response.text()
        );
    };
    check("POST", "/api/v1/alerts", "[{\"name\": \"x\",", "body");
    check("POST", "/api/v1/alerts", "[{\"name\": \"x\"}]", "[0].at");
    check(
        "POST",
        "/api/v1/alerts",
        "[{\"name\": \"x\", \"at\": \"yesterday\"}]",
        "[0].at",
    );
    check(
        "POST",
        "/api/v1/ignores",
        "{\"matchers\": [\"host>h1\"]}",
        "matchers[0]",
    );
    check(
        "POST",
        "/api/v1/ignores",
        "{\"matchers\": [{\"name\": \"host\", \"op\": \"~=\", \"value\": \"h1\"}]}",
        "matchers[0]",
    );
    check(
        "POST",
        "/api/v1/ignores",
        "{\"matchers\": [\"host=h1\"], \"starts_at\": \"2026-11-21T12:00:00Z\", \"ends_at\": \"2026-11-21T11:00:00Z\"}",
        "ends_at",
    );
    check(
        "POST",
        "/api/v2/silences",
        r#"{"matchers":[{"name":"host","value":"h1","isRegex":false}],"startsAt":"2026-11-21T12:00:00Z","endsAt":"2026-11-21T11:00:00Z","createdBy":"ops","comment":"x"}"#,
        "endsAt",
    );
    check("POST", "/api/v2/alerts", "[{\"labels\": {}}]", "[0].labels");
    assert!(
        rig.am.get_json("/api/v1/ignores")["ignores"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing stored"
    );
}

#[test]
fn a_bad_config_file_exits_2_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("am.yaml");
    std::fs::write(
        &path,
        "listen: \"127.0.0.1:1\"\nreissue_duration: \"soon\"\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_monitor-alert-manager"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(":2") && stderr.contains("reissue_duration"),
        "{stderr}"
    );
}

fn monitorctl(am: &AlertManager, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_monitorctl"))
        .env("MONITOR_AM_URL", am.url())
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "monitorctl {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn monitorctl_manages_ignores_and_shows_alerts_and_issued() {
    let rig = rig();
    let id = monitorctl(
        &rig.am,
        &[
            "ignores",
            "add",
            "host=\"h9\"",
            "--duration",
            "1h",
            "--comment",
            "disk swap",
        ],
    )
    .trim()
    .to_owned();
    assert!(monitorctl(&rig.am, &["ignores", "list"]).contains(&id));
    rig.am
        .post_alerts(&json!([alert("Swap", "c1", "h9", "warning")]));
    let table = monitorctl(&rig.am, &["alerts"]);
    assert!(
        table.contains("Swap") && table.contains("ignored"),
        "{table}"
    );
    monitorctl(&rig.am, &["ignores", "rm", &id]);
    assert!(!monitorctl(&rig.am, &["ignores", "list"]).contains(&id));

    let swap = json!([alert("Swap", "c1", "h9", "warning")]);
    rig.am.post_alerts(&swap);
    assert_eq!(summary(&rig.am.post_alerts(&swap), "due"), 1);
    let issued: Value = serde_json::from_str(&monitorctl(&rig.am, &["issued", "--json"])).unwrap();
    let fingerprint = issued["issued"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(monitorctl(&rig.am, &["issued"]).contains(&fingerprint));
    monitorctl(&rig.am, &["issued", "--clear", &fingerprint]);
    assert!(
        rig.am.get_json("/api/v1/issued")["issued"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A bad matcher is refused with the field named, and monitorctl exits non-zero.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_monitorctl"))
        .env("MONITOR_AM_URL", rig.am.url())
        .args(["ignores", "add", "host>h1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("matchers[0]"));
}
