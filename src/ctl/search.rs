//! `monitorctl trace ID` and `monitorctl logs ...`: the search APIs of `monitor-api` for people
//! at a terminal (aligned columns, the spans of a trace per source) or, on request, the raw JSON
//! or line protocol. A partial answer is always said so on standard error.
//!
//! It must never print a backend's or a user's control characters raw (a log message could
//! otherwise move the cursor or forge lines): they are shown escaped.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::admin::{ApiTarget, CtlError, http_client};
use crate::telemetry::error_chain;

/// How to print an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned columns.
    Table,
    /// The API's JSON, pretty-printed.
    Json,
    /// Line protocol (logs only).
    LineProtocol,
}

/// What to print: the answer, and warnings for standard error.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    pub warnings: Vec<String>,
}

/// The filters of `monitorctl logs`.
#[derive(Debug, Clone, Default)]
pub struct LogsQuery {
    pub index: Option<String>,
    pub host: Option<String>,
    pub source: Option<String>,
    pub level: Option<String>,
    pub contains: Option<String>,
    /// `start`: RFC 3339, epoch nanoseconds, or a duration before now (`--since 1h`).
    pub start: Option<String>,
    pub end: Option<String>,
    pub limit: Option<usize>,
    pub db: Option<String>,
}

/// `GET path?params`, answering the body and the groups a partial answer lacks.
async fn get(
    target: &ApiTarget,
    path: &str,
    params: &[(&str, String)],
) -> Result<(String, Vec<String>), CtlError> {
    let url = format!("{}{path}", target.url.trim_end_matches('/'));
    let http_error = |message: String| CtlError::Http {
        url: url.clone(),
        message,
    };
    let client = http_client(&url, Duration::from_secs(60))?;
    let request = target.authorized(client.get(&url).query(params));
    let response = request
        .send()
        .await
        .map_err(|e| http_error(format!("cannot reach monitor-api: {}", error_chain(&e))))?;
    let status = response.status().as_u16();
    let partial: Vec<String> = response
        .headers()
        .get("x-monitor-partial")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let text = response
        .text()
        .await
        .map_err(|e| http_error(format!("reading the answer: {}", error_chain(&e))))?;
    if (200..300).contains(&status) {
        return Ok((text, partial));
    }
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or(text);
    Err(CtlError::Status {
        url,
        status,
        message,
    })
}

fn partial_warning(groups: &[String]) -> Vec<String> {
    if groups.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "partial answer: no replica of group(s) {} could be reached; their lines are missing",
        groups.join(", ")
    )]
}

fn parse_json(text: &str) -> Result<Value, CtlError> {
    serde_json::from_str(text).map_err(|e| CtlError::Http {
        url: String::new(),
        message: format!("the answer is not JSON: {e}"),
    })
}

/// `monitorctl trace ID [--index I] [--db D]`.
pub async fn trace(
    target: &ApiTarget,
    trace_id: &str,
    index: Option<&str>,
    db: Option<&str>,
    format: OutputFormat,
) -> Result<Output, CtlError> {
    let mut params = Vec::new();
    if let Some(index) = index {
        params.push(("index", index.to_owned()));
    }
    if let Some(db) = db {
        params.push(("db", db.to_owned()));
    }
    let path = format!("/api/v1/traces/{}", encode_path_segment(trace_id));
    let (text, partial) = get(target, &path, &params).await?;
    let value = parse_json(&text)?;
    let stdout = match format {
        OutputFormat::Table => trace_table(&value),
        OutputFormat::Json | OutputFormat::LineProtocol => {
            serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
        }
    };
    Ok(Output {
        stdout,
        warnings: partial_warning(&partial),
    })
}

/// `monitorctl logs [filters] [--format table|json|lp]`.
pub async fn logs(
    target: &ApiTarget,
    query: &LogsQuery,
    format: OutputFormat,
) -> Result<Output, CtlError> {
    let mut params: Vec<(&str, String)> = [
        ("index", &query.index),
        ("host", &query.host),
        ("source", &query.source),
        ("level", &query.level),
        ("contains", &query.contains),
        ("start", &query.start),
        ("end", &query.end),
        ("db", &query.db),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.clone().map(|v| (key, v)))
    .collect();
    if let Some(limit) = query.limit {
        params.push(("limit", limit.to_string()));
    }
    if format == OutputFormat::LineProtocol {
        params.push(("format", "lp".to_owned()));
    }
    let (text, partial) = get(target, "/api/v1/logs", &params).await?;
    let stdout = match format {
        OutputFormat::LineProtocol => text,
        OutputFormat::Json => {
            serde_json::to_string_pretty(&parse_json(&text)?).unwrap_or_default() + "\n"
        }
        OutputFormat::Table => logs_table(&parse_json(&text)?),
    };
    Ok(Output {
        stdout,
        warnings: partial_warning(&partial),
    })
}

/// Percent-encodes everything but unreserved characters, so any trace id is one path segment.
fn encode_path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Text for a terminal: control characters escaped (`\n`, `\u{1b}`).
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A JSON value as a table cell: strings unquoted, null as `-`.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => printable(text),
        other => printable(&other.to_string()),
    }
}

/// Rows of cells, every column but the last padded to its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == columns {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The extra tags and fields of a line, `k=v` separated by spaces.
fn extras(line: &Value) -> String {
    let mut parts = Vec::new();
    for key in ["tags", "fields"] {
        if let Some(map) = line[key].as_object() {
            for (k, v) in map {
                parts.push(format!("{}={}", printable(k), cell(v)));
            }
        }
    }
    parts.join(" ")
}

fn line_cells(line: &Value) -> Vec<String> {
    let mut msg = cell(&line["msg"]);
    let extra = extras(line);
    if !extra.is_empty() {
        msg = format!("{msg}  [{extra}]");
    }
    vec![
        cell(&line["time"]),
        cell(&line["index"]),
        cell(&line["host"]),
        cell(&line["source"]),
        cell(&line["level"]),
        msg,
    ]
}

const LINE_HEADER: [&str; 6] = ["TIME", "INDEX", "HOST", "SOURCE", "LEVEL", "MSG"];

/// `/api/v1/logs` JSON as a table, newest first as the API orders it.
pub fn logs_table(value: &Value) -> String {
    let lines = value["lines"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = lines.iter().map(line_cells).collect();
    let mut out = table(&LINE_HEADER, &rows);
    let _ = writeln!(
        out,
        "{} line(s), newest first (limit {}, from {} to {})",
        lines.len(),
        cell(&value["limit"]),
        cell(&value["start"]),
        if value["end"].is_null() {
            "now".to_owned()
        } else {
            cell(&value["end"])
        }
    );
    out
}

/// `/api/v1/traces/{id}` JSON: a summary, the span per source, then every line oldest first.
pub fn trace_table(value: &Value) -> String {
    let mut out = String::new();
    let span = &value["span"];
    let sources = value["spans"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(
        out,
        "trace {}: {} line(s) from {} source(s) over {} ({} .. {})",
        cell(&value["traceid"]),
        cell(&value["count"]),
        sources.len(),
        cell(&span["duration"]),
        cell(&span["first"]),
        cell(&span["last"]),
    );
    if value["truncated"].as_bool() == Some(true) {
        out.push_str("(truncated: the trace has more lines than the server returns)\n");
    }
    out.push('\n');
    let span_rows: Vec<Vec<String>> = sources
        .iter()
        .map(|s| {
            vec![
                cell(&s["source"]),
                cell(&s["lines"]),
                cell(&s["first"]),
                cell(&s["last"]),
                cell(&s["duration"]),
            ]
        })
        .collect();
    out.push_str(&table(
        &["SOURCE", "LINES", "FIRST", "LAST", "DURATION"],
        &span_rows,
    ));
    out.push('\n');
    let lines = value["lines"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = lines.iter().map(line_cells).collect();
    out.push_str(&table(&LINE_HEADER, &rows));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_trace_table_shows_spans_per_source_and_aligned_lines() {
        let value = json!({
            "traceid": "t1", "count": 3, "truncated": false,
            "span": {"first": "2026-11-21T12:00:00.000000000Z", "last": "2026-11-21T12:00:01.500000000Z", "duration": "1.5s"},
            "spans": [
                {"source": "api", "lines": 2, "first": "2026-11-21T12:00:00.000000000Z", "last": "2026-11-21T12:00:01.500000000Z", "duration": "1.5s"},
                {"source": "database", "lines": 1, "first": "2026-11-21T12:00:00.500000000Z", "last": "2026-11-21T12:00:00.500000000Z", "duration": "0ns"}
            ],
            "lines": [
                {"time": "2026-11-21T12:00:00.000000000Z", "index": "c1", "host": "h1", "source": "api", "msg": "start", "tags": {}, "fields": {}},
                {"time": "2026-11-21T12:00:00.500000000Z", "index": "c2", "host": "host-two", "source": "database", "level": "warn", "msg": "slow\nquery", "tags": {"dc": "x"}, "fields": {"ms": 12}},
                {"time": "2026-11-21T12:00:01.500000000Z", "index": "c1", "host": "h1", "source": "api", "msg": "done", "tags": {}, "fields": {}}
            ]
        });
        let text = trace_table(&value);
        assert!(
            text.starts_with("trace t1: 3 line(s) from 2 source(s) over 1.5s (2026-11-21T12:00:00.000000000Z .. 2026-11-21T12:00:01.500000000Z)\n"),
            "{text}"
        );
        assert!(
            text.contains("api       2      2026-11-21T12:00:00.000000000Z  2026-11-21T12:00:01.500000000Z  1.5s"),
            "{text}"
        );
        assert!(
            text.contains("2026-11-21T12:00:00.500000000Z  c2     host-two  database  warn   slow\\nquery  [dc=x ms=12]"),
            "{text}"
        );
        assert!(
            text.contains(
                "2026-11-21T12:00:01.500000000Z  c1     h1        api       -      done\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(printable("a\u{1b}[2Jb\tc"), "a\\u{1b}[2Jb\\tc");
        assert_eq!(encode_path_segment("a b/c"), "a%20b%2Fc");
    }
}
