//! `monitorctl lp parse`: the line-protocol lint operators run on their agents' output.
//!
//! One JSON object per input line (blank and comment lines print nothing), in input order, with
//! the line number, the classification and the typed fields, or the parse error. It must never
//! stop at the first bad line: every line is reported, and the caller learns whether any failed.

use std::io::{self, Write};

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::protocol::{Classifier, FieldValue, Kind, Line, Precision, lines};

/// Counts of what a lint run saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LintSummary {
    pub accepted: usize,
    pub rejected: usize,
}

impl LintSummary {
    pub fn any_failed(&self) -> bool {
        self.rejected > 0
    }
}

/// Lints `body` (line protocol in `precision`) and writes one JSON object per line to `out`.
pub fn lint(
    body: &[u8],
    precision: Precision,
    classifier: &Classifier,
    out: &mut impl Write,
) -> io::Result<LintSummary> {
    let mut summary = LintSummary::default();
    for result in lines(body, classifier) {
        match result {
            Ok(line) => {
                summary.accepted += 1;
                let json = AcceptedLine::new(&line, precision);
                serde_json::to_writer(&mut *out, &json)?;
            }
            Err(error) => {
                summary.rejected += 1;
                let json = RejectedLine {
                    line: error.line,
                    ok: false,
                    error: error.to_string(),
                };
                serde_json::to_writer(&mut *out, &json)?;
            }
        }
        out.write_all(b"\n")?;
    }
    Ok(summary)
}

#[derive(Serialize)]
struct RejectedLine {
    line: usize,
    ok: bool,
    error: String,
}

#[derive(Serialize)]
struct AcceptedLine<'l, 'a> {
    line: usize,
    ok: bool,
    kind: &'static str,
    measurement: String,
    tags: TagsJson<'l, 'a>,
    fields: FieldsJson<'l, 'a>,
    /// Nanoseconds since the epoch; `null` when the line has none (the proxy stamps it).
    timestamp: Option<i64>,
}

impl<'l, 'a> AcceptedLine<'l, 'a> {
    fn new(line: &'l Line<'a>, precision: Precision) -> Self {
        AcceptedLine {
            line: line.number(),
            ok: true,
            kind: kind_name(line.kind()),
            measurement: line.measurement().as_str().into_owned(),
            tags: TagsJson(line),
            fields: FieldsJson(line),
            // The parser has already refused timestamps that do not fit in nanoseconds.
            timestamp: line.timestamp().and_then(|ts| precision.to_nanos(ts)),
        }
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Metric => "metric",
        Kind::Log => "log",
        Kind::Tracelog => "tracelog",
    }
}

/// Tags as a JSON object in the order they were written.
struct TagsJson<'l, 'a>(&'l Line<'a>);

impl Serialize for TagsJson<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0.tags() {
            map.serialize_entry(&key.as_str(), &value.as_str())?;
        }
        map.end()
    }
}

/// Fields as `{"key": {"type": .., "value": ..}}` in the order they were written.
struct FieldsJson<'l, 'a>(&'l Line<'a>);

impl Serialize for FieldsJson<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0.fields() {
            map.serialize_entry(&key.as_str(), &TypedValue(value))?;
        }
        map.end()
    }
}

struct TypedValue<'a>(FieldValue<'a>);

impl Serialize for TypedValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        match &self.0 {
            FieldValue::Float(v) => {
                map.serialize_entry("type", "float")?;
                map.serialize_entry("value", v)?;
            }
            FieldValue::Integer(v) => {
                map.serialize_entry("type", "integer")?;
                map.serialize_entry("value", v)?;
            }
            FieldValue::Unsigned(v) => {
                map.serialize_entry("type", "unsigned")?;
                map.serialize_entry("value", v)?;
            }
            FieldValue::String(v) => {
                map.serialize_entry("type", "string")?;
                map.serialize_entry("value", &v.as_str())?;
            }
            FieldValue::Boolean(v) => {
                map.serialize_entry("type", "boolean")?;
                map.serialize_entry("value", v)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_to_lines(body: &[u8], precision: Precision) -> (Vec<serde_json::Value>, LintSummary) {
        let mut out = Vec::new();
        let summary = lint(body, precision, &Classifier::default(), &mut out).unwrap();
        let values = out
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        (values, summary)
    }

    #[test]
    fn accepted_lines_print_kind_typed_fields_and_nanosecond_time() {
        let body = b"# a comment\n\nlog,index=cluster1,source=api,host=h1 msg=\"create resource\",n=3i,ok=T,x=1.5 1465839830\n";
        let (values, summary) = lint_to_lines(body, Precision::Second);
        assert_eq!(
            summary,
            LintSummary {
                accepted: 1,
                rejected: 0
            }
        );
        assert_eq!(
            values,
            vec![serde_json::json!({
                "line": 3, "ok": true, "kind": "log", "measurement": "log",
                "tags": {"index": "cluster1", "source": "api", "host": "h1"},
                "fields": {
                    "msg": {"type": "string", "value": "create resource"},
                    "n": {"type": "integer", "value": 3},
                    "ok": {"type": "boolean", "value": true},
                    "x": {"type": "float", "value": 1.5}
                },
                "timestamp": 1_465_839_830_000_000_000i64
            })]
        );
    }

    #[test]
    fn a_bad_line_is_reported_and_the_next_lines_still_parse() {
        let body =
            b"mem,index=c1 used=1\nmem,index=c1 used=1i2\ntracelog,index=c1,traceid=t1 msg=\"x\"\n";
        let (values, summary) = lint_to_lines(body, Precision::Nanosecond);
        assert_eq!(
            summary,
            LintSummary {
                accepted: 2,
                rejected: 1
            }
        );
        assert_eq!(values[0]["kind"], "metric");
        assert_eq!(values[0]["timestamp"], serde_json::Value::Null);
        assert_eq!(values[1]["line"], 2);
        assert_eq!(values[1]["ok"], false);
        assert!(values[1]["error"].as_str().unwrap().contains("line 2"));
        assert_eq!(values[2]["kind"], "tracelog");
        assert!(summary.any_failed());
    }
}
