//! `monitorctl hosts [--index X] [--host H] [--json]`: the host registry of a running
//! `monitor-api` (`GET /api/v1/hosts`) as a table (INDEX, HOST, LAST SEEN, ACTIVE) or as the API's
//! JSON. It never guesses liveness itself: `active` is what the proxy answered.

use std::fmt::Write as _;

use serde_json::Value;

use super::admin::{ApiTarget, CtlError, REQUEST_TIMEOUT, http_client};
use crate::telemetry::error_chain;

/// Fetches and renders the registry.
pub async fn hosts(
    target: &ApiTarget,
    index: Option<&str>,
    host: Option<&str>,
    as_json: bool,
) -> Result<String, CtlError> {
    let url = format!("{}/api/v1/hosts", target.url.trim_end_matches('/'));
    let http = |message: String| CtlError::Http {
        url: url.clone(),
        message,
    };
    let client = http_client(&url, REQUEST_TIMEOUT)?;
    let mut query: Vec<(&str, &str)> = Vec::new();
    if let Some(index) = index {
        query.push(("index", index));
    }
    if let Some(host) = host {
        query.push(("host", host));
    }
    let request = target.authorized(client.get(&url).query(&query));
    let response = request
        .send()
        .await
        .map_err(|e| http(format!("cannot reach monitor-api: {}", error_chain(&e))))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| http(e.to_string()))?;
    if !status.is_success() {
        return Err(CtlError::Status {
            url,
            status: status.as_u16(),
            message: text,
        });
    }
    let value: Value =
        serde_json::from_str(&text).map_err(|e| http(format!("answer is not JSON: {e}")))?;
    if as_json {
        return Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or(text)
        ));
    }
    Ok(render(&value))
}

/// The table, with the active window as a footer.
pub fn render(value: &Value) -> String {
    let rows: Vec<[String; 4]> = value["hosts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|h| {
            [
                h["index"].as_str().unwrap_or_default().to_owned(),
                h["host"].as_str().unwrap_or_default().to_owned(),
                h["last_seen"].as_str().unwrap_or_default().to_owned(),
                if h["active"].as_bool().unwrap_or(false) {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                },
            ]
        })
        .collect();
    let header = ["INDEX", "HOST", "LAST SEEN", "ACTIVE"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    let _ = writeln!(
        out,
        "{} hosts; active = reported within {}s",
        rows.len(),
        value["active_window_seconds"].as_u64().unwrap_or(0)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_table() {
        let value = serde_json::json!({"active_window_seconds": 300, "hosts": [
            {"index": "cluster1", "host": "host1", "last_seen": "2026-11-21T12:00:00.000Z", "active": true},
            {"index": "cluster1", "host": "h2", "last_seen": "2026-11-20T12:00:00.000Z", "active": false}]});
        let text = render(&value);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "INDEX     HOST   LAST SEEN                 ACTIVE"
        );
        assert_eq!(lines[1], "cluster1  host1  2026-11-21T12:00:00.000Z  yes");
        assert_eq!(lines[2], "cluster1  h2     2026-11-20T12:00:00.000Z  no");
        assert_eq!(lines[3], "2 hosts; active = reported within 300s");
    }
}
