//! `monitorctl shardmap get|set FILE`, `monitorctl replicas` and `monitorctl check-config`:
//! the operator's view of a running `monitor-api` and an offline config check. Output is for
//! people (tables) unless `--json` is asked for; errors say which URL or file failed and why.
//! It never prints a secret: the API redacts them and this code never asks for them.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::config::{CheckReport, ConfigError, ConfigKind, check_config_file};
use crate::telemetry::error_chain;

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// How long one request of the CLI may take, unless a command says otherwise.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP client with `timeout`; failing to build one is reported against `url`.
pub(super) fn http_client(url: &str, timeout: Duration) -> Result<reqwest::Client, CtlError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|e| CtlError::Http {
            url: url.to_owned(),
            message: e.to_string(),
        })
}

/// An answer's body as JSON, or as a JSON string when it is not JSON.
pub(super) fn answer_json(body: String) -> Value {
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

/// A refused request: the server's `error` message, or its whole answer when it gave none.
pub(super) fn refused(url: String, status: u16, answer: &Value) -> CtlError {
    let message = answer
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| answer.to_string());
    CtlError::Status {
        url,
        status,
        message,
    }
}

/// Where `monitor-api` is and how to authenticate.
#[derive(Debug, Clone)]
pub struct ApiTarget {
    pub url: String,
    pub token: Option<String>,
}

impl ApiTarget {
    fn client(&self) -> Result<reqwest::Client, CtlError> {
        http_client(&self.url, REQUEST_TIMEOUT)
    }

    /// `request` with this target's token, if it has one.
    pub(super) fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Token {token}")),
            None => request,
        }
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }

    async fn send(&self, request: reqwest::RequestBuilder, url: &str) -> Result<Value, CtlError> {
        let request = self.authorized(request);
        let response = request.send().await.map_err(|e| CtlError::Http {
            url: url.to_owned(),
            message: format!("cannot reach monitor-api: {}", error_chain(&e)),
        })?;
        let status = response.status().as_u16();
        let value = answer_json(response.text().await.unwrap_or_default());
        // /health answers 503 with a full body when a group is down: still a report.
        if (200..300).contains(&status) || (status == 503 && value.get("groups").is_some()) {
            Ok(value)
        } else {
            Err(refused(url.to_owned(), status, &value))
        }
    }

    async fn get(&self, path: &str) -> Result<Value, CtlError> {
        let url = self.endpoint(path);
        let client = self.client()?;
        self.send(client.get(&url), &url).await
    }
}

/// `shardmap get`: the live map as pretty JSON.
pub async fn shardmap_get(target: &ApiTarget) -> Result<String, CtlError> {
    let value = target.get("/api/v1/shardmap").await?;
    Ok(serde_json::to_string_pretty(&value).unwrap_or_default())
}

/// `shardmap set FILE`: PUT a map written as JSON or YAML; prints the new live map.
pub async fn shardmap_set(target: &ApiTarget, file: &Path) -> Result<String, CtlError> {
    let file_error = |message: String| CtlError::File {
        path: file.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(file).map_err(|e| file_error(e.to_string()))?;
    // YAML is a superset of JSON: one parser takes both.
    let doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| file_error(e.to_string()))?;
    let url = target.endpoint("/api/v1/shardmap");
    let client = target.client()?;
    let value = target.send(client.put(&url).json(&doc), &url).await?;
    Ok(serde_json::to_string_pretty(&value).unwrap_or_default())
}

/// `replicas`: one row per replica from `/health`.
pub async fn replicas(target: &ApiTarget, as_json: bool) -> Result<String, CtlError> {
    let health = target.get("/health").await?;
    if as_json {
        return Ok(serde_json::to_string_pretty(&health).unwrap_or_default());
    }
    Ok(replicas_table(&health))
}

/// Renders `/health` as a table.
pub fn replicas_table(health: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "status: {}  shard map version: {}",
        health["status"].as_str().unwrap_or("?"),
        health["shardmap_version"]
    );
    let _ = writeln!(
        out,
        "{:<12} {:<28} {:<5} {:<9} {:>14} {:>12} {:>12} {:<7}",
        "GROUP", "REPLICA", "UP", "CIRCUIT", "PENDING_BYTES", "OLDEST_S", "DEAD_LINES", "IN_SYNC"
    );
    for group in health["groups"].as_array().into_iter().flatten() {
        for replica in group["replicas"].as_array().into_iter().flatten() {
            let oldest = replica["oldest_pending_seconds"]
                .as_f64()
                .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"));
            let _ = writeln!(
                out,
                "{:<12} {:<28} {:<5} {:<9} {:>14} {:>12} {:>12} {:<7}",
                group["group"].as_str().unwrap_or("?"),
                replica["replica"].as_str().unwrap_or("?"),
                replica["up"].as_bool().unwrap_or(false),
                replica["circuit"].as_str().unwrap_or("?"),
                replica["pending_bytes"].as_u64().unwrap_or(0),
                oldest,
                replica["dead_letter_lines"].as_u64().unwrap_or(0),
                replica["in_sync"].as_bool().unwrap_or(false),
            );
            if let Some(error) = replica["last_error"].as_str() {
                let _ = writeln!(out, "{:<12} last error: {error}", "");
            }
        }
    }
    out
}

/// `check-config FILE [--kind api|alert-manager|rules]`.
pub fn check_config(file: &Path, kind: Option<ConfigKind>) -> Result<CheckReport, CtlError> {
    Ok(check_config_file(file, kind)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replicas_table_shows_backlog_and_errors() {
        let health = serde_json::json!({
            "status": "warn", "shardmap_version": 3,
            "groups": [{"group": "g1", "replicas": [
                {"replica": "r1", "up": true, "circuit": "closed", "pending_bytes": 0, "oldest_pending_seconds": null, "dead_letter_lines": 2, "in_sync": true, "last_error": null},
                {"replica": "r2", "up": false, "circuit": "open", "pending_bytes": 4096, "oldest_pending_seconds": 12.5, "dead_letter_lines": 0, "in_sync": false, "last_error": "connection refused"}
            ]}]
        });
        let table = replicas_table(&health);
        assert!(
            table.starts_with("status: warn  shard map version: 3\n"),
            "{table}"
        );
        assert!(
            table.contains("g1           r2                           false open"),
            "{table}"
        );
        assert!(table.contains("4096"), "{table}");
        assert!(table.contains("12.5"), "{table}");
        assert!(table.contains("last error: connection refused"), "{table}");
    }
}
