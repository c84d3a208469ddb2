//! Influx line protocol as `monitor-api` accepts it: parsing, escaping, classification
//! (metric, log, tracelog) and precision handling.
//!
//! The parser is zero-copy: a [`Line`] borrows every part of itself from the request body and
//! unescapes lazily. It accepts only what an InfluxDB 1.x backend accepts (see
//! `proto-spec/README.md` for the rules and every deviation from the upstream corpus), so a line
//! accepted here is never refused by a backend for its syntax, nor answered 204 and lost. It must never panic on any input
//! and never allocate per line for lines without escapes.

pub mod classify;
pub mod error;
pub mod escape;
pub mod parse;
pub mod point;
pub mod precision;

pub use classify::{Classifier, Kind};
pub use error::{ParseError, ParseErrorKind};
pub use escape::{Context, Escaped};
pub use parse::{
    FieldValue, Fields, Line, Lines, MAX_LINE_BYTES, MAX_SERIES_KEY_BYTES, MAX_STRING_FIELD_BYTES,
    Tags, lines, parse_line, parse_line_with_precision,
};
pub use point::{OwnedFieldValue, Point};
pub use precision::{Precision, write_timestamp};
