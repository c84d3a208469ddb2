//! `monitorctl ignores list|add|rm`, `monitorctl issued [--clear FP]` and `monitorctl alerts`:
//! the operator's view of a running `monitor-alert-manager` (`--am-url` / `MONITOR_AM_URL`).
//! Tables for people, `--json` for scripts; errors name the URL and the server's message (which
//! names the offending field on a 400).
//!
//! It never changes anything the operator did not ask for: `rm` and `--clear` act on one id.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::admin::{CtlError, REQUEST_TIMEOUT, answer_json, http_client, refused};
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
        let client = http_client(&url, REQUEST_TIMEOUT)?;
        let mut request = client.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| CtlError::Http {
            url: url.clone(),
            message: format!("cannot reach monitor-alert-manager: {}", error_chain(&e)),
        })?;
        let status = response.status().as_u16();
        let value = answer_json(response.text().await.unwrap_or_default());
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(refused(url, status, &value))
        }
    }

    /// `GET /api/v1/<key>`: the answer as pretty JSON, or its `key` list as a table.
    async fn list(&self, key: &str, columns: &[Column], as_json: bool) -> Result<String, CtlError> {
        let answer = self
            .call(reqwest::Method::GET, &format!("/api/v1/{key}"), None)
            .await?;
        if as_json {
            return Ok(pretty(&answer));
        }
        Ok(table(columns, &answer[key]))
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
    target.list("ignores", IGNORE_COLUMNS, as_json).await
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
    target.list("issued", ISSUED_COLUMNS, as_json).await
}

/// `alerts`: every alert the pipeline knows and what it did with it.
pub async fn alerts(target: &AmTarget, as_json: bool) -> Result<String, CtlError> {
    target.list("alerts", ALERT_COLUMNS, as_json).await
}

/// One column of a table for people: its heading, the width its cells are padded to (never cut),
/// whether they are right-aligned (counts) and how a row's JSON becomes its cell. The last column
/// is never padded.
struct Column {
    heading: &'static str,
    width: usize,
    align_right: bool,
    cell: fn(&Value) -> String,
}

const fn left(heading: &'static str, width: usize, cell: fn(&Value) -> String) -> Column {
    Column {
        heading,
        width,
        align_right: false,
        cell,
    }
}

const fn right(heading: &'static str, width: usize, cell: fn(&Value) -> String) -> Column {
    Column {
        heading,
        width,
        align_right: true,
        cell,
    }
}

/// The heading line, then a line an item of the `rows` array, cells two spaces apart.
fn table(columns: &[Column], rows: &Value) -> String {
    let headings: Vec<String> = columns.iter().map(|c| c.heading.to_owned()).collect();
    let items = rows.as_array().into_iter().flatten();
    let cells = items.map(|row| columns.iter().map(|c| (c.cell)(row)).collect());
    let last = columns.len().saturating_sub(1);
    let mut out = String::new();
    for line in std::iter::once(headings).chain(cells) {
        let padded: Vec<String> = columns
            .iter()
            .zip(line)
            .enumerate()
            .map(
                |(position, (column, cell))| match (position == last, column.align_right) {
                    (true, _) => cell,
                    (false, true) => format!("{cell:>width$}", width = column.width),
                    (false, false) => format!("{cell:<width$}", width = column.width),
                },
            )
            .collect();
        let _ = writeln!(out, "{}", padded.join("  "));
    }
    out
}

/// The items of a JSON array as text, comma-separated (empty when it is not an array).
fn comma_list(value: &Value) -> String {
    value
        .as_array()
        .map(|items| items.iter().map(text).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

const IGNORE_COLUMNS: &[Column] = &[
    left("ID", 36, |rule| text(&rule["id"])),
    left("STATE", 8, |rule| text(&rule["state"])),
    left("STARTS", 24, |rule| text(&rule["starts_at"])),
    left("ENDS", 24, |rule| text(&rule["ends_at"])),
    left("AUTHOR", 10, |rule| text(&rule["author"])),
    left("MATCHERS", 30, |rule| comma_list(&rule["matchers"])),
    left("COMMENT", 0, |rule| text(&rule["comment"])),
];

const ISSUED_COLUMNS: &[Column] = &[
    left("FINGERPRINT", 16, |issued| text(&issued["fingerprint"])),
    left("NAME", 20, |issued| text(&issued["name"])),
    left("INDEX", 12, |issued| text(&issued["labels"]["index"])),
    left("HOST", 12, |issued| text(&issued["labels"]["host"])),
    right("SENT", 5, |issued| text(&issued["deliveries"])),
    left("LAST_SEEN", 24, |issued| text(&issued["last_seen"])),
    left("REISSUE_AFTER", 24, |issued| text(&issued["reissue_after"])),
    left("SUCCESS_WITHHELD", 0, |issued| {
        text(&issued["success_withheld_since"])
    }),
];

const ALERT_COLUMNS: &[Column] = &[
    left("FINGERPRINT", 16, |alert| text(&alert["fingerprint"])),
    left("NAME", 20, |alert| text(&alert["name"])),
    left("INDEX", 12, |alert| text(&alert["labels"]["index"])),
    left("HOST", 12, |alert| text(&alert["labels"]["host"])),
    left("SEVERITY", 10, |alert| text(&alert["labels"]["severity"])),
    left("STATE", 10, |alert| text(&alert["state"])),
    left("LAST_SEEN", 24, |alert| text(&alert["last_seen"])),
    left("RECEIVERS", 0, |alert| comma_list(&alert["receivers"])),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables as the format strings they replaced printed them.
    #[test]
    fn tables_keep_their_layout() {
        let ignores = json!({"ignores": [{"id": "i1", "state": "active", "starts_at": "s",
            "ends_at": null, "author": "ops", "matchers": ["host=\"h1\"", "a=~\"b\""],
            "comment": ""}]});
        let expected = format!(
            "{:<36}  {:<8}  {:<24}  {:<24}  {:<10}  {:<30}  COMMENT\n\
             {:<36}  {:<8}  {:<24}  {:<24}  {:<10}  {:<30}  {}\n",
            "ID",
            "STATE",
            "STARTS",
            "ENDS",
            "AUTHOR",
            "MATCHERS",
            "i1",
            "active",
            "s",
            "-",
            "ops",
            "host=\"h1\",a=~\"b\"",
            ""
        );
        assert_eq!(table(IGNORE_COLUMNS, &ignores["ignores"]), expected);

        let issued = json!({"issued": [{"fingerprint": "f1", "name": "HighMem",
            "labels": {"index": "c1", "host": "h1"}, "deliveries": 3, "last_seen": "t",
            "reissue_after": "r", "success_withheld_since": null}]});
        let expected = format!(
            "{:<16}  {:<20}  {:<12}  {:<12}  {:>5}  {:<24}  {:<24}  SUCCESS_WITHHELD\n\
             {:<16}  {:<20}  {:<12}  {:<12}  {:>5}  {:<24}  {:<24}  {}\n",
            "FINGERPRINT",
            "NAME",
            "INDEX",
            "HOST",
            "SENT",
            "LAST_SEEN",
            "REISSUE_AFTER",
            "f1",
            "HighMem",
            "c1",
            "h1",
            "3",
            "t",
            "r",
            "-"
        );
        assert_eq!(table(ISSUED_COLUMNS, &issued["issued"]), expected);

        let alerts = json!({"alerts": [{"fingerprint": "f1", "name": "HighMem",
            "labels": {"index": "c1", "host": "h1", "severity": "page"}, "state": "issued",
            "last_seen": "t", "receivers": ["mail", "chat"]}]});
        let expected = format!(
            "{:<16}  {:<20}  {:<12}  {:<12}  {:<10}  {:<10}  {:<24}  RECEIVERS\n\
             {:<16}  {:<20}  {:<12}  {:<12}  {:<10}  {:<10}  {:<24}  {}\n",
            "FINGERPRINT",
            "NAME",
            "INDEX",
            "HOST",
            "SEVERITY",
            "STATE",
            "LAST_SEEN",
            "f1",
            "HighMem",
            "c1",
            "h1",
            "page",
            "issued",
            "t",
            "mail,chat"
        );
        assert_eq!(table(ALERT_COLUMNS, &alerts["alerts"]), expected);
        assert_eq!(
            table(ALERT_COLUMNS, &Value::Null),
            expected.lines().next().unwrap().to_owned() + "\n"
        );
    }
}
