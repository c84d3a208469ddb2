//! Group commit of concurrent `POST /api/v1/alerts` against the real binary: requests sent at
//! the same time (which the alert manager commits together when they wait for the same
//! transaction) are each answered with their own summary and request id, an invalid request
//! among them gets its own 400 and ingests nothing, and every answered alert survives `kill -9`.

mod alertmanager_support;
mod support;

use alertmanager_support::AlertManager;
use serde_json::{Value, json};

/// Port 9 (discard) refuses: deliveries are retried later, which this test never waits for;
/// group_wait of an hour keeps every alert in its group anyway.
const CONFIG: &str = r#"log_level: warn
reissue_duration: "1h"
success_duration: "1h"
group_wait: "1h"
receivers:
  - { name: hook, webhook: { url: "http://127.0.0.1:9/hook" } }
default_receiver: hook
"#;

fn alert(name: &str, host: &str) -> Value {
    json!({ "name": name, "index": "cluster1", "host": host, "severity": "warning",
            "at": "2026-11-21T12:00:00.000Z" })
}

/// What one request got back.
struct Answer {
    status: u16,
    body: Value,
}

async fn post(client: &reqwest::Client, url: &str, request_id: &str, body: &Value) -> Answer {
    let response = client
        .post(format!("{url}/api/v1/alerts"))
        .header("x-request-id", request_id)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let echoed = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(echoed.as_deref(), Some(request_id));
    Answer {
        status,
        body: response.json().await.unwrap(),
    }
}

async fn issued_names(client: &reqwest::Client, url: &str) -> Vec<String> {
    let issued: Value = client
        .get(format!("{url}/api/v1/issued"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = issued["issued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn metric(client: &reqwest::Client, url: &str, name: &str) -> f64 {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_get_their_own_answers_and_an_invalid_one_fails_alone() {
    let am = AlertManager::start(CONFIG);
    let url = am.url();
    let client = reqwest::Client::new();
    const ROUNDS: usize = 3;
    const VALID: usize = 6;
    let mut expected = Vec::new();
    for round in 0..ROUNDS {
        let mut tasks = Vec::new();
        for request in 0..=VALID {
            let client = client.clone();
            let url = url.clone();
            let id = format!("round{round}-request{request}");
            let body = if request == VALID {
                // Valid alerts first: none of them may be ingested when a later one is bad.
                json!([
                    alert(&format!("Bad{round}A"), "hb"),
                    alert(&format!("Bad{round}B"), "hb"),
                    { "name": format!("Bad{round}C"), "host": "hb", "at": "yesterday" },
                ])
            } else {
                // Sizes differ per request (1..=VALID alerts) so that summaries can't be swapped;
                // the last alert of every request repeats one of request 0's, shared state.
                let mut alerts: Vec<Value> = (0..request)
                    .map(|i| alert(&format!("R{round}Q{request}A{i}"), "h1"))
                    .collect();
                alerts.push(alert(&format!("Shared{round}"), "h1"));
                json!(alerts)
            };
            tasks.push(tokio::spawn(async move {
                (request, id.clone(), post(&client, &url, &id, &body).await)
            }));
        }
        let mut due_shared = 0;
        for task in tasks {
            let (request, id, answer) = task.await.unwrap();
            if request == VALID {
                assert_eq!(answer.status, 400, "{}", answer.body);
                assert_eq!(answer.body["field"], "[2].at", "{}", answer.body);
                assert_eq!(
                    answer.body["error"],
                    "[2].at: \"yesterday\" is not an RFC 3339 time such as 2026-11-21T12:00:00.000Z"
                );
                continue;
            }
            assert_eq!(answer.status, 200, "{}", answer.body);
            assert_eq!(answer.body["request_id"], id.as_str());
            let summary = &answer.body["summary"];
            assert_eq!(summary["received"], request + 1, "{id}: {summary}");
            // Its own alerts are new (due); the shared one is due in exactly one request, and
            // a sighting inside ReissueDuration in every other.
            let due = summary["due"].as_u64().unwrap() as usize;
            let suppressed = summary["suppressed"].as_u64().unwrap() as usize;
            assert!(due == request || due == request + 1, "{id}: {summary}");
            assert_eq!(due + suppressed, request + 1, "{id}: {summary}");
            due_shared += due - request;
            expected.push(format!("Shared{round}"));
            for i in 0..request {
                expected.push(format!("R{round}Q{request}A{i}"));
            }
        }
        assert_eq!(due_shared, 1, "round {round}: the shared alert is due once");
    }
    expected.sort();
    expected.dedup();
    assert_eq!(issued_names(&client, &url).await, expected);
    let requests = metric(
        &client,
        &url,
        "monitor_am_ingest_group_committed_requests_total",
    )
    .await;
    let commits = metric(&client, &url, "monitor_am_ingest_group_commits_total").await;
    assert_eq!(requests, (ROUNDS * VALID) as f64);
    assert!(commits >= 1.0 && commits <= requests, "{commits} commits");

    // Every answered request was durable before its answer.
    am.restart();
    assert_eq!(issued_names(&client, &url).await, expected);
}
