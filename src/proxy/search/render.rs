//! Merging the rows of every replica and group (sort, then drop the copies of one point) and
//! shaping them for the client: JSON lines with the well-known tags lifted out, the span of a
//! trace per source, and line protocol for `format=lp`.
//!
//! It must never drop a point that only one replica holds, and never return a point twice.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::protocol::point::{OwnedFieldValue, Point};

use super::fanout::Row;
use super::time::{format_duration_ns, format_rfc3339_nanos};

/// The message field of log and tracelog lines (the line protocol convention).
pub const MSG_FIELD: &str = "msg";
/// Tags lifted to the top of a JSON line besides the index tag.
const HOST_TAG: &str = "host";
const SOURCE_TAG: &str = "source";
const LEVEL_KEY: &str = "level";

/// Oldest first (traces) or newest first (logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOrder {
    OldestFirst,
    NewestFirst,
}

/// Sorts by time in `order` (ties by tags, so the output is stable across runs) and keeps one
/// copy of every point.
pub fn merge(mut rows: Vec<Row>, order: TimeOrder) -> Vec<Row> {
    match order {
        TimeOrder::OldestFirst => rows.sort_by(|a, b| (a.time, &a.tags).cmp(&(b.time, &b.tags))),
        TimeOrder::NewestFirst => {
            rows.sort_by(|a, b| (Reverse(a.time), &a.tags).cmp(&(Reverse(b.time), &b.tags)))
        }
    }
    rows.dedup_by(|later, earlier| later.same_point(earlier));
    rows
}

fn field_json(value: &OwnedFieldValue) -> Value {
    match value {
        OwnedFieldValue::Float(f) => json!(f),
        OwnedFieldValue::Integer(i) => json!(i),
        OwnedFieldValue::Unsigned(u) => json!(u),
        OwnedFieldValue::String(s) => json!(s),
        OwnedFieldValue::Boolean(b) => json!(b),
    }
}

/// One line as JSON: `time` (RFC 3339, nanoseconds), `time_ns`, `index`, `host`, `source`,
/// `msg` (null when absent), `level` when present (tag or field), then the other `tags` and
/// `fields`. `omit_tag` (the trace id on trace lines) is left out.
pub fn line_json(row: &Row, index_tag: &str, omit_tag: Option<&str>) -> Value {
    let mut tags = row.tags.clone();
    let mut fields = row.fields.clone();
    if let Some(tag) = omit_tag {
        tags.remove(tag);
    }
    let mut take_tag = |key: &str| tags.remove(key).map_or(Value::Null, Value::String);
    let index = take_tag(index_tag);
    let host = take_tag(HOST_TAG);
    let source = take_tag(SOURCE_TAG);
    let level = take_tag(LEVEL_KEY);
    let level = if level.is_null() {
        fields
            .remove(LEVEL_KEY)
            .map_or(Value::Null, |v| field_json(&v))
    } else {
        level
    };
    let msg = fields
        .remove(MSG_FIELD)
        .map_or(Value::Null, |v| field_json(&v));
    let mut line = Map::new();
    line.insert("time".into(), json!(format_rfc3339_nanos(row.time)));
    line.insert("time_ns".into(), json!(row.time));
    line.insert("index".into(), index);
    line.insert("host".into(), host);
    line.insert("source".into(), source);
    if !level.is_null() {
        line.insert("level".into(), level);
    }
    line.insert("msg".into(), msg);
    line.insert("tags".into(), json!(tags));
    let fields: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), field_json(v)))
        .collect();
    line.insert("fields".into(), Value::Object(fields));
    Value::Object(line)
}

/// First and last time of a set of lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub first: i64,
    pub last: i64,
    pub lines: usize,
}

impl Span {
    fn new(time: i64) -> Self {
        Span {
            first: time,
            last: time,
            lines: 1,
        }
    }

    fn add(&mut self, time: i64) {
        self.first = self.first.min(time);
        self.last = self.last.max(time);
        self.lines += 1;
    }

    pub fn duration_ns(&self) -> i64 {
        self.last.saturating_sub(self.first)
    }

    fn to_json(self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("first".into(), json!(format_rfc3339_nanos(self.first)));
        out.insert("last".into(), json!(format_rfc3339_nanos(self.last)));
        out.insert("duration_ns".into(), json!(self.duration_ns()));
        out.insert(
            "duration".into(),
            json!(format_duration_ns(self.duration_ns())),
        );
        out.insert("lines".into(), json!(self.lines));
        out
    }
}

/// The overall span and one per `source` tag value (lines without one count under `null`),
/// ordered by first time, then source.
pub fn spans(rows: &[Row]) -> (Option<Span>, Vec<(Option<String>, Span)>) {
    let mut overall: Option<Span> = None;
    let mut by_source: BTreeMap<Option<String>, Span> = BTreeMap::new();
    for row in rows {
        match &mut overall {
            Some(span) => span.add(row.time),
            None => overall = Some(Span::new(row.time)),
        }
        by_source
            .entry(row.tags.get(SOURCE_TAG).cloned())
            .and_modify(|span| span.add(row.time))
            .or_insert_with(|| Span::new(row.time));
    }
    let mut sources: Vec<(Option<String>, Span)> = by_source.into_iter().collect();
    sources.sort_by(|(a_name, a), (b_name, b)| (a.first, a_name).cmp(&(b.first, b_name)));
    (overall, sources)
}

/// `spans` as JSON: `(span, [{"source": …, "first", "last", "duration_ns", "duration", "lines"}])`.
pub fn spans_json(rows: &[Row]) -> (Value, Value) {
    let (overall, sources) = spans(rows);
    let overall = overall.map_or(Value::Null, |span| Value::Object(span.to_json()));
    let sources = sources
        .into_iter()
        .map(|(source, span)| {
            let mut entry = Map::new();
            entry.insert("source".into(), json!(source));
            entry.extend(span.to_json());
            Value::Object(entry)
        })
        .collect();
    (overall, Value::Array(sources))
}

/// The rows as line protocol of `measurement`, nanosecond timestamps, in the given order.
/// Rows without any field (which InfluxDB cannot store) are skipped.
pub fn line_protocol(rows: &[Row], measurement: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for row in rows {
        if row.fields.is_empty() {
            continue;
        }
        let point = Point {
            measurement: measurement.to_owned(),
            tags: row
                .tags
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            fields: row
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timestamp: Some(row.time),
        };
        point.write_line_protocol(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(time: i64, tags: &[(&str, &str)], msg: &str) -> Row {
        Row {
            time,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            fields: [(
                MSG_FIELD.to_owned(),
                OwnedFieldValue::String(msg.to_owned()),
            )]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn merging_keeps_one_copy_of_each_point_in_order() {
        let a = row(2, &[("source", "api")], "two");
        let b = row(1, &[("source", "db")], "one");
        let c = row(2, &[("source", "db")], "two on db");
        let rows = vec![a.clone(), b.clone(), a.clone(), c.clone(), b.clone()];
        let oldest = merge(rows.clone(), TimeOrder::OldestFirst);
        assert_eq!(oldest, vec![b.clone(), a.clone(), c.clone()]);
        let newest = merge(rows, TimeOrder::NewestFirst);
        assert_eq!(newest, vec![a, c, b]);
    }

    #[test]
    fn spans_per_source_and_overall() {
        let rows = vec![
            row(100, &[("source", "api")], "a"),
            row(150, &[("source", "db")], "b"),
            row(400, &[("source", "api")], "c"),
            row(170, &[("source", "db")], "d"),
        ];
        let (overall, sources) = spans(&rows);
        assert_eq!(
            overall,
            Some(Span {
                first: 100,
                last: 400,
                lines: 4
            })
        );
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].0.as_deref(), Some("api"));
        assert_eq!(sources[0].1.duration_ns(), 300);
        assert_eq!(sources[1].0.as_deref(), Some("db"));
        assert_eq!(sources[1].1.duration_ns(), 20);
        assert_eq!(sources[1].1.lines, 2);
    }

    #[test]
    fn json_lines_lift_the_well_known_keys() {
        let mut r = row(
            1_000_000_001,
            &[
                ("index", "a"),
                ("host", "h"),
                ("source", "s"),
                ("traceid", "t"),
                ("dc", "x"),
            ],
            "hi",
        );
        r.fields
            .insert("level".into(), OwnedFieldValue::String("warn".into()));
        r.fields.insert("code".into(), OwnedFieldValue::Integer(3));
        let line = line_json(&r, "index", Some("traceid"));
        assert_eq!(line["time"], "1970-01-01T00:00:01.000000001Z");
        assert_eq!(line["index"], "a");
        assert_eq!(line["host"], "h");
        assert_eq!(line["level"], "warn");
        assert_eq!(line["msg"], "hi");
        assert_eq!(line["tags"], json!({"dc": "x"}));
        assert_eq!(line["fields"], json!({"code": 3}));
    }

    #[test]
    fn line_protocol_output_escapes_and_types() {
        let mut r = row(5, &[("host", "a b"), ("index", "i,1")], r#"say "hi" \o/"#);
        r.fields.insert("n".into(), OwnedFieldValue::Integer(-2));
        let text = String::from_utf8(line_protocol(&[r], "log")).unwrap();
        assert_eq!(
            text,
            "log,host=a\\ b,index=i\\,1 msg=\"say \\\"hi\\\" \\\\o/\",n=-2i 5\n"
        );
    }
}
