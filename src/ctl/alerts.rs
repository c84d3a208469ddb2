//! `monitorctl ignores list|add|rm`, `monitorctl issued [--clear FP]` and `monitorctl alerts`:
//! the operator's view of a running `monitor-alert-manager` (`--am-url` / `MONITOR_AM_URL`).
//! Tables for people, `--json` for scripts; errors name the URL and the server's message (which
//! names the offending field on a 400).
//!
//! It never changes anything the operator did not ask for: `rm` and `--clear` act on one id.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Value, json};

use super::admin::CtlError;
use crate::telemetry::error_chain;

/// Where the alert manager is.
#[derive(Debug, Clone)]
pub struct AmTarget {
    pub url: String,
}

/// `ignores add` arguments.
#[derive(Debug, Clone, Default)]
pub struct NewIgnore {
    /// Alertmanager matcher syntax, e.g. `host="h1"`, `alertname=~"Disk.*"`.
    pub matchers: Vec<String>,
    /// RFC 3339; default now.
    pub starts_at: Option<String>,
    /// RFC 3339; default none (until removed).
    pub ends_at: Option<String>,
    /// Instead of `ends_at`, e.g. `2h`.
    pub duration: Option<String>,
    pub author: String,
    pub comment: String,
}

impl AmTarget {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CtlError> {
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CtlError::Http {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let mut request = client.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| CtlError::Http {
            url: url.clone(),
            message: format!("cannot reach monitor-alert-manager: {}", error_chain(&e)),
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            let message = value
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            Err(CtlError::Status {
                url,
                status,
                message,
            })
        }
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `ignores list`.
pub async fn ignores_list(target: &AmTarget, as_json: bool) -> Result<String, CtlError> {
    let answer = target
        .call(reqwest::Method::GET, "/api/v1/ignores", None)
        .await?;
    if as_json {
        return Ok(pretty(&answer));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36}  {:<8}  {:<24}  {:<24}  {:<10}  {:<30}  COMMENT",
        "ID", "STATE", "STARTS", "ENDS", "AUTHOR", "MATCHERS"
    );
    for rule in answer["ignores"].as_array().into_iter().flatten() {
        let matchers = rule["matchers"]
            .as_array()
            .map(|m| m.iter().map(text).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<36}  {:<8}  {:<24}  {:<24}  {:<10}  {:<30}  {}",
            text(&rule["id"]),
            text(&rule["state"]),
            text(&rule["starts_at"]),
            text(&rule["ends_at"]),
            text(&rule["author"]),
            matchers,
            text(&rule["comment"])
        );
    }
    Ok(out)
}

/// `ignores add`: prints the new rule's id.
pub async fn ignores_add(target: &AmTarget, rule: &NewIgnore) -> Result<String, CtlError> {
    let mut body =
        json!({ "matchers": rule.matchers, "author": rule.author, "comment": rule.comment });
    for (key, value) in [
        ("starts_at", &rule.starts_at),
        ("ends_at", &rule.ends_at),
        ("duration", &rule.duration),
    ] {
        if let Some(value) = value {
            body[key] = Value::String(value.clone());
        }
    }
    let answer = target
        .call(reqwest::Method::POST, "/api/v1/ignores", Some(body))
        .await?;
    Ok(format!("{}\n", text(&answer["id"])))
}

/// `ignores rm ID`.
pub async fn ignores_rm(target: &AmTarget, id: &str) -> Result<String, CtlError> {
    target
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/ignores/{id}"),
            None,
        )
        .await?;
    Ok(format!("removed {id}\n"))
}

/// `issued`, or `issued --clear FP`.
pub async fn issued(
    target: &AmTarget,
    clear: Option<&str>,
    as_json: bool,
) -> Result<String, CtlError> {
    if let Some(fingerprint) = clear {
        target
            .call(
                reqwest::Method::DELETE,
                &format!("/api/v1/issued/{fingerprint}"),
                None,
            )
            .await?;
        return Ok(format!("cleared {fingerprint}\n"));
    }
    let answer = target
        .call(reqwest::Method::GET, "/api/v1/issued", None)
        .await?;
    if as_json {
        return Ok(pretty(&answer));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16}  {:<20}  {:<12}  {:<12}  {:>5}  {:<24}  {:<24}  SUCCESS_WITHHELD",
        "FINGERPRINT", "NAME", "INDEX", "HOST", "SENT", "LAST_SEEN", "REISSUE_AFTER"
    );
    for issued in answer["issued"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<16}  {:<20}  {:<12}  {:<12}  {:>5}  {:<24}  {:<24}  {}",
            text(&issued["fingerprint"]),
            text(&issued["name"]),
            text(&issued["labels"]["index"]),
            text(&issued["labels"]["host"]),
            text(&issued["deliveries"]),
            text(&issued["last_seen"]),
            text(&issued["reissue_after"]),
            text(&issued["success_withheld_since"])
        );
    }
    Ok(out)
}

/// `alerts`: every alert the pipeline knows and what it did with it.
pub async fn alerts(target: &AmTarget, as_json: bool) -> Result<String, CtlError> {
    let answer = target
        .call(reqwest::Method::GET, "/api/v1/alerts", None)
        .await?;
    if as_json {
        return Ok(pretty(&answer));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16}  {:<20}  {:<12}  {:<12}  {:<10}  {:<10}  {:<24}  RECEIVERS",
        "FINGERPRINT", "NAME", "INDEX", "HOST", "SEVERITY", "STATE", "LAST_SEEN"
    );
    for alert in answer["alerts"].as_array().into_iter().flatten() {
        let receivers = alert["receivers"]
            .as_array()
            .map(|r| r.iter().map(text).collect::<Vec<_>>().join(","))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<16}  {:<20}  {:<12}  {:<12}  {:<10}  {:<10}  {:<24}  {}",
            text(&alert["fingerprint"]),
            text(&alert["name"]),
            text(&alert["labels"]["index"]),
            text(&alert["labels"]["host"]),
            text(&alert["labels"]["severity"]),
            text(&alert["state"]),
            text(&alert["last_seen"]),
            receivers
        );
    }
    Ok(out)
}
