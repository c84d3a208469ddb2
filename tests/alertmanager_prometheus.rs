//! Prometheus (Debian's `prometheus`) and `amtool` (Debian's `prometheus-alertmanager`) against
//! the real `monitor-alert-manager`, unchanged: Prometheus's `alerting:` section points at us and
//! its alerts reach the webhook receiver; `amtool silence add` creates an ignore rule that
//! suppresses them; `amtool alert query` lists them.
//!
//! Both programs are installed by `integration/install-deps.sh prometheus amtool` when missing;
//! the test fails (it never skips) when they cannot be.

mod alertmanager_support;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use alertmanager_support::{AlertManager, wait_notifications, webhook_sink};
use support::{ProcessGuard, free_port, wait_for};

const LIMIT: Duration = Duration::from_secs(40);

fn ensure_installed() {
    let present = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if present("prometheus") && present("amtool") {
        return;
    }
    let status = Command::new(support::integration_dir().join("install-deps.sh"))
        .args(["prometheus", "amtool"])
        .status()
        .expect("run integration/install-deps.sh");
    assert!(
        status.success() && present("prometheus") && present("amtool"),
        "prometheus and amtool are needed: run `integration/install-deps.sh prometheus amtool` \
         as root (Debian packages prometheus and prometheus-alertmanager)"
    );
}

fn amtool(am: &AlertManager, args: &[&str]) -> String {
    let output = Command::new("amtool")
        .arg(format!("--alertmanager.url={}", am.url()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run amtool");
    assert!(
        output.status.success(),
        "amtool {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn start_prometheus(dir: &Path, am_port: u16) -> ProcessGuard {
    std::fs::write(
        dir.join("rules.yml"),
        r#"groups:
  - name: always
    interval: 1s
    rules:
      - alert: AlwaysFiring
        expr: vector(1)
        labels: { severity: critical, index: c1, host: h1 }
        annotations: { summary: "always firing on h1" }
"#,
    )
    .expect("write rules");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            r#"global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
rule_files: ["{}"]
alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: ["127.0.0.1:{am_port}"]
"#,
            dir.join("rules.yml").display()
        ),
    )
    .expect("write config");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    ProcessGuard::spawn(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!(
                "--web.listen-address=127.0.0.1:{}",
                free_port(None)
            ))
            .arg("--rules.alert.resend-delay=1s")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log),
    )
}

#[test]
fn prometheus_delivers_through_us_and_amtool_silences_and_lists() {
    ensure_installed();
    let sink = webhook_sink();
    let am = AlertManager::start(&format!(
        r#"
reissue_duration: "1s"
group_wait: "100ms"
receivers:
  - {{ name: hook, webhook: {{ url: "{}/hook" }} }}
default_receiver: hook
"#,
        sink.url()
    ));
    let dir = tempfile::tempdir().expect("temp dir");
    let _prometheus = start_prometheus(dir.path(), am.port());

    // Prometheus's alert reaches the webhook through the v2 API.
    let got = wait_notifications(&sink, 1, LIMIT);
    assert!(
        !got.is_empty(),
        "no notification; prometheus log:\n{}",
        std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
    );
    assert_eq!(got[0].0, "firing");
    let body = sink.received()[0].json();
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "AlwaysFiring");

    // amtool lists it.
    let listed = amtool(&am, &["alert", "query", "-o", "json"]);
    let alerts: serde_json::Value = serde_json::from_str(&listed).expect("amtool json");
    assert_eq!(alerts[0]["labels"]["alertname"], "AlwaysFiring", "{listed}");
    assert_eq!(alerts[0]["status"]["state"], "active");

    // amtool silence add: an ignore rule.
    let id = amtool(
        &am,
        &[
            "silence",
            "add",
            "alertname=AlwaysFiring",
            "--author=ops",
            "--comment=maintenance",
            "--duration=1h",
        ],
    )
    .trim()
    .to_owned();
    let rules = am.get_json("/api/v1/ignores");
    assert_eq!(rules["ignores"][0]["id"], id.as_str(), "{rules}");
    assert_eq!(rules["ignores"][0]["author"], "ops");
    assert!(amtool(&am, &["silence", "query"]).contains(&id));

    // Suppressed: Prometheus keeps sending (resend 1 s, reissue 1 s), nothing more is delivered.
    let ignored = wait_for(LIMIT, || {
        let metrics = am.metrics();
        support::api::sum_metric(&metrics, "monitor_am_alerts_ignored_total", &[])
            .ge(&2.0)
            .then_some(())
    });
    assert!(
        ignored.is_some(),
        "Prometheus's alerts never met the silence"
    );
    let delivered = support::wait_for(Duration::from_secs(5), || {
        let before = sink.received().len();
        std::thread::sleep(Duration::from_millis(2_500));
        (sink.received().len() == before).then_some(before)
    });
    assert!(
        delivered.is_some(),
        "deliveries did not stop under the silence"
    );
    let suppressed = amtool(&am, &["alert", "query", "--silenced", "-o", "json"]);
    let alerts: serde_json::Value = serde_json::from_str(&suppressed).expect("amtool json");
    assert_eq!(alerts[0]["status"]["state"], "suppressed", "{suppressed}");
    assert_eq!(alerts[0]["status"]["silencedBy"][0], id.as_str());
    assert_eq!(
        amtool(&am, &["alert", "query", "-o", "json"]).trim(),
        "[]",
        "active-only query hides it"
    );

    // amtool silence expire ends it; deliveries resume.
    amtool(&am, &["silence", "expire", &id]);
    let before = sink.received().len();
    let resumed = wait_for(LIMIT, || (sink.received().len() > before).then_some(()));
    assert!(resumed.is_some(), "no delivery after the silence expired");
}
