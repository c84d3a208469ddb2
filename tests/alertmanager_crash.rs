//! `kill -9` in the middle of a timeline, then a restart on the same data directory: the
//! messages still owed arrive exactly once (a group that was waiting, a Success that was owed),
//! nothing is re-delivered inside ReissueDuration, and no ignore rule is lost.
//!
//! Host liveness comes from a stand-in for monitor-api's `GET /api/v1/hosts`.

mod alertmanager_support;
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertmanager_support::{
    AlertManager, alert, host_registry, notifications, wait_notifications, webhook_sink,
};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn after_kill_9_the_remaining_messages_arrive_exactly_once() {
    let hosts = Arc::new(Mutex::new(HashMap::from([("h1".to_string(), true)])));
    let registry = host_registry(Arc::clone(&hosts));
    let sink = webhook_sink();
    let am = AlertManager::start(&format!(
        r#"
monitor_api: ["{}"]
reissue_duration: "1h"
success_duration: "2s"
group_wait: "1500ms"
sweep_interval: "100ms"
host_cache_ttl: "50ms"
receivers:
  - {{ name: hook, webhook: {{ url: "{}/hook" }} }}
default_receiver: hook
"#,
        registry.url(),
        sink.url()
    ));
    let rule = am.request(
        "POST",
        "/api/v1/ignores",
        json!({"matchers": ["host=\"quiet\""], "author": "ops", "comment": "kept across kill -9"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(rule.status, 201, "{}", rule.text());
    let rule_id = rule.json()["id"].as_str().unwrap().to_owned();

    // Due, but group_wait (1.5 s) has not passed: the crash comes while the group waits.
    let a = json!([alert("HighMem", "c1", "h1", "warning")]);
    assert_eq!(am.post_alerts(&a)["summary"]["due"], 1);
    am.kill9();
    assert!(
        notifications(&sink).is_empty(),
        "nothing sent before the crash"
    );
    am.restart();

    // The waiting group is delivered once.
    let got = wait_notifications(&sink, 1, LIMIT);
    assert_eq!(got, vec![("firing".to_string(), vec!["h1".to_string()])]);

    // The ignore rule survived; the issued alert is suppressed inside ReissueDuration.
    let rules = am.get_json("/api/v1/ignores");
    assert_eq!(rules["ignores"][0]["id"], rule_id.as_str());
    assert_eq!(am.post_alerts(&a)["summary"]["suppressed"], 1);
    assert_eq!(
        am.post_alerts(&json!([alert("X", "c1", "quiet", "critical")]))["summary"]["ignored"],
        1
    );

    // Crash again while the Success is not yet due (quiet < 2 s); restart: it is still owed.
    am.kill9();
    am.restart();
    assert_eq!(
        am.post_alerts(&a)["summary"]["suppressed"],
        1,
        "still inside ReissueDuration after a restart"
    );
    let got = wait_notifications(&sink, 2, LIMIT);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1], ("resolved".to_string(), vec!["h1".to_string()]));

    // Once delivered and recorded, a crash and restart sends nothing again. The outbox records
    // a delivery shortly after the receiver's 2xx (at least once, by design: a crash in that
    // window sends it again with the same id), so wait until `/health` owes nothing.
    let deadline = std::time::Instant::now() + LIMIT;
    while am.get_json("/health")["outbox"]["owed"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the delivered Success is still owed after {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    am.kill9();
    am.restart();
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(
        notifications(&sink).len(),
        2,
        "exactly once: {:?}",
        notifications(&sink)
    );
    let ids: Vec<String> = sink
        .received()
        .iter()
        .filter_map(|r| r.header("idempotency-key").map(str::to_owned))
        .collect();
    assert_eq!(ids.len(), 2, "every webhook carries an idempotency key");
    assert_ne!(ids[0], ids[1]);
}
