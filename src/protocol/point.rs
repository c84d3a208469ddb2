//! The owned form of a parsed line, for tests, `monitorctl lp parse` output and round trips,
//! and its serialisation back to line protocol.
//!
//! Must never be used on the write path (it allocates per line); the proxy forwards the raw
//! bytes of a [`Line`] instead.

use super::escape::{escape_field_key, escape_key, escape_measurement, escape_string_field};
use super::parse::{FieldValue, Line};
use super::precision::write_i64;

#[derive(Debug, Clone, PartialEq)]
pub enum OwnedFieldValue {
    Float(f64),
    Integer(i64),
    Unsigned(u64),
    String(String),
    Boolean(bool),
}

impl From<FieldValue<'_>> for OwnedFieldValue {
    fn from(v: FieldValue<'_>) -> Self {
        match v {
            FieldValue::Float(f) => OwnedFieldValue::Float(f),
            FieldValue::Integer(i) => OwnedFieldValue::Integer(i),
            FieldValue::Unsigned(u) => OwnedFieldValue::Unsigned(u),
            FieldValue::String(s) => OwnedFieldValue::String(s.as_str().into_owned()),
            FieldValue::Boolean(b) => OwnedFieldValue::Boolean(b),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, OwnedFieldValue)>,
    /// As written, in the precision the line was parsed with.
    pub timestamp: Option<i64>,
}

impl Point {
    pub fn from_line(line: &Line<'_>) -> Point {
        Point {
            measurement: line.measurement().as_str().into_owned(),
            tags: line
                .tags()
                .map(|(k, v)| (k.as_str().into_owned(), v.as_str().into_owned()))
                .collect(),
            fields: line
                .fields()
                .map(|(k, v)| (k.as_str().into_owned(), v.into()))
                .collect(),
            timestamp: line.timestamp(),
        }
    }

    /// Appends the point as one line of line protocol, with a trailing `\n`. Floats are
    /// written in the shortest form that reads back to the same value.
    pub fn write_line_protocol(&self, out: &mut Vec<u8>) {
        escape_measurement(&self.measurement, out);
        for (k, v) in &self.tags {
            out.push(b',');
            escape_key(k, out);
            out.push(b'=');
            escape_key(v, out);
        }
        for (i, (k, v)) in self.fields.iter().enumerate() {
            out.push(if i == 0 { b' ' } else { b',' });
            escape_field_key(k, out);
            out.push(b'=');
            match v {
                OwnedFieldValue::Float(f) => write_float(*f, out),
                OwnedFieldValue::Integer(n) => {
                    write_i64(*n, out);
                    out.push(b'i');
                }
                OwnedFieldValue::Unsigned(n) => {
                    out.extend_from_slice(n.to_string().as_bytes());
                    out.push(b'u');
                }
                OwnedFieldValue::String(s) => {
                    out.push(b'"');
                    escape_string_field(s, out);
                    out.push(b'"');
                }
                OwnedFieldValue::Boolean(b) => {
                    out.extend_from_slice(if *b { b"true" } else { b"false" })
                }
            }
        }
        if let Some(ts) = self.timestamp {
            out.push(b' ');
            write_i64(ts, out);
        }
        out.push(b'\n');
    }
}

/// Rust's `Display` for f64 is the shortest round-trip form without exponent (`1e300` prints
/// 301 digits), which InfluxDB's float grammar accepts; `{:e}` is used for very large or
/// small magnitudes to keep lines short.
fn write_float(f: f64, out: &mut Vec<u8>) {
    let a = f.abs();
    let s = if a != 0.0 && !(1e-5..1e16).contains(&a) {
        format!("{f:e}")
    } else {
        format!("{f}")
    };
    out.extend_from_slice(s.as_bytes());
}
