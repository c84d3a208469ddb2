//! Parse errors: where a line went wrong (line, byte column), why, and the offending line,
//! ready to become InfluxDB's `unable to parse '<line>': <reason>` answer.
//!
//! Must never hold a reference into the request body (errors outlive it) and never carry more
//! than a bounded snippet of the line, however long the line is.

use thiserror::Error;

/// Longest snippet of the offending line kept in an error, in bytes.
pub const MAX_SNIPPET_BYTES: usize = 256;

/// Why a line was refused. `Display` is the reason text used in error bodies.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    #[error("missing measurement")]
    MissingMeasurement,
    #[error("invalid character {0} in {1}")]
    InvalidCharacter(ByteName, &'static str),
    #[error("invalid character in comment line")]
    InvalidComment,
    #[error("missing tag key")]
    MissingTagKey,
    #[error("missing tag value")]
    MissingTagValue,
    #[error("expected '=' after tag key")]
    MissingTagEquals,
    #[error("duplicate tags")]
    DuplicateTag,
    #[error("missing fields")]
    MissingFields,
    #[error("missing field key")]
    MissingFieldKey,
    #[error("expected '=' after field key")]
    MissingFieldEquals,
    #[error("missing field value")]
    MissingFieldValue,
    #[error("invalid field value: unrecognized type")]
    InvalidFieldValue,
    #[error("invalid number")]
    InvalidNumber,
    #[error("invalid float")]
    InvalidFloat,
    #[error("float value is NaN or infinite")]
    NonFiniteFloat,
    #[error("integer out of range")]
    IntegerOutOfRange,
    #[error("unsigned integers (u suffix) are not supported by InfluxDB 1.x")]
    UnsignedNotSupported,
    #[error("invalid boolean")]
    InvalidBoolean,
    #[error("unbalanced quotes: string field value has no closing quote")]
    UnterminatedString,
    #[error("string field value longer than {0} bytes")]
    StringTooLong(usize),
    #[error("field type conflict: the same field key with two value types in one line")]
    FieldTypeConflict,
    #[error("unexpected character {0} after field value")]
    UnexpectedAfterField(ByteName),
    #[error(
        "backslashes before a delimiter in {0}: InfluxDB 1.x reads them differently (drops the point, refuses it or joins it with the next line)"
    )]
    AmbiguousBackslashes(&'static str),
    #[error("reserved key {0:?}: InfluxDB refuses tag and field keys named time")]
    ReservedKey(&'static str),
    #[error("max key length exceeded: {0} > {1}")]
    KeyTooLong(usize, usize),
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("invalid utf-8")]
    InvalidUtf8,
    #[error("bad timestamp")]
    InvalidTimestamp,
    #[error("time outside range {min} - {max}")]
    TimestampOutOfRange { min: i64, max: i64 },
    #[error("unexpected text after timestamp")]
    TrailingGarbage,
    #[error("unexpected newline: more than one line given")]
    MultipleLines,
}

/// A byte printed for humans: `'a'`, `'\t'`, `0x00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteName(pub u8);

impl std::fmt::Display for ByteName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            b'\t' => f.write_str("'\\t'"),
            b'\r' => f.write_str("'\\r'"),
            b'\n' => f.write_str("'\\n'"),
            0x20..=0x7e => write!(f, "'{}'", self.0 as char),
            b => write!(f, "0x{b:02x}"),
        }
    }
}

/// A refused line. `line` and `column` are 1-based; `column` counts bytes.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unable to parse '{snippet}': {kind} (line {line}, column {column})")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub kind: ParseErrorKind,
    /// The offending line (lossy UTF-8, at most [`MAX_SNIPPET_BYTES`] bytes, `...` when cut).
    pub snippet: String,
}

impl ParseError {
    /// Builds an error, cutting the snippet from `line_bytes` (the physical line).
    pub fn new(line: usize, column: usize, kind: ParseErrorKind, line_bytes: &[u8]) -> Self {
        ParseError {
            line,
            column,
            kind,
            snippet: snippet_of(line_bytes),
        }
    }

    /// The message InfluxDB itself would give: `unable to parse '<line>': <reason>`.
    pub fn influx_message(&self) -> String {
        format!("unable to parse '{}': {}", self.snippet, self.kind)
    }
}

fn snippet_of(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() <= MAX_SNIPPET_BYTES {
        return String::from_utf8_lossy(line).into_owned();
    }
    let mut cut = String::from_utf8_lossy(&line[..MAX_SNIPPET_BYTES]).into_owned();
    cut.push_str("...");
    cut
}
