//! The JSON shapes of InfluxDB 1.x `/query` answers (`results`, `series`, `messages`), read from
//! the replicas and written back to clients with the same field order and omissions as
//! InfluxDB's Go structs. Times inside are nanosecond integers until [`convert_times`] turns them
//! into what the client asked for; it never reorders or drops a value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::time::{format_rfc3339_nanos, scale_epoch};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueryResponse {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<StatementResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub level: String,
    pub text: String,
}

impl Message {
    pub fn warning(text: impl Into<String>) -> Self {
        Message {
            level: "warning".to_owned(),
            text: text.into(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatementResult {
    #[serde(default)]
    pub statement_id: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StatementResult {
    pub fn error(statement_id: usize, message: impl Into<String>) -> Self {
        StatementResult {
            statement_id,
            error: Some(message.into()),
            ..StatementResult::default()
        }
    }

    pub fn row_count(&self) -> usize {
        self.series.iter().map(|s| s.values.len()).sum()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Vec<Value>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// What identifies a series across answers: its name and tag set.
pub type SeriesKey = (String, Vec<(String, String)>);

impl Series {
    pub fn key(&self) -> SeriesKey {
        (
            self.name.clone(),
            self.tags
                .as_ref()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        )
    }

    /// Position of the `time` column, when it is the first (as in every SELECT answer).
    pub fn has_time(&self) -> bool {
        self.columns.first().is_some_and(|c| c == "time")
    }
}

/// How the client wants times: RFC 3339 (no `epoch`) or integers in a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    Rfc3339,
    /// Nanoseconds per unit.
    Epoch(i64),
}

impl TimeFormat {
    /// `epoch=ns|n|u|µ|ms|s|m|h`, as InfluxDB reads it (unknown units mean nanoseconds).
    pub fn from_epoch(epoch: Option<&str>) -> TimeFormat {
        match epoch {
            None | Some("") => TimeFormat::Rfc3339,
            Some("u") | Some("µ") | Some("us") => TimeFormat::Epoch(1_000),
            Some("ms") => TimeFormat::Epoch(1_000_000),
            Some("s") => TimeFormat::Epoch(1_000_000_000),
            Some("m") => TimeFormat::Epoch(60_000_000_000),
            Some("h") => TimeFormat::Epoch(3_600_000_000_000),
            Some(_) => TimeFormat::Epoch(1),
        }
    }
}

/// Rewrites the `time` column of every series from nanoseconds to `format`.
pub fn convert_times(result: &mut StatementResult, format: TimeFormat) {
    if format == TimeFormat::Epoch(1) {
        return;
    }
    for series in &mut result.series {
        if !series.has_time() {
            continue;
        }
        for row in &mut series.values {
            let Some(cell) = row.first_mut() else {
                continue;
            };
            let Some(nanos) = cell.as_i64() else {
                continue;
            };
            *cell = match format {
                TimeFormat::Rfc3339 => Value::String(format_rfc3339_nanos(nanos)),
                TimeFormat::Epoch(unit) => Value::from(scale_epoch(nanos, unit)),
            };
        }
    }
}
