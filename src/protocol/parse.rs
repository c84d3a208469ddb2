//! The zero-copy line-protocol parser: splits a request body into lines, validates each line
//! against everything an InfluxDB 1.x backend would refuse, and hands out [`Line`]s that borrow
//! every part of themselves from the body.
//!
//! Structure: hand-written loops scan the hot tokens eight bytes at a time (keys, tag values,
//! numbers; string fields via memchr); nom parses the float grammar. Must never panic, never
//! allocate for a line without escapes (only lines with more than [`INLINE_TAGS`] tags or fields,
//! or with escaped field keys, use a heap buffer for the duplicate check), and never accept a
//! line that InfluxDB 1.6 refuses for its syntax or silently loses (see `proto-spec/README.md`).
//! Token ends follow InfluxDB 1.x's scanner, which differs by section: byte by byte in the
//! measurement and tags, backslash pairs in the field section (`Context::hides`).

use memchr::{memchr, memchr2};
use nom::{
    IResult, Parser,
    branch::alt,
    character::complete::{char, digit0, digit1, one_of},
    combinator::{opt, recognize},
};
use smallvec::SmallVec;

use super::classify::{Classifier, Kind};
use super::error::{ByteName, ParseError, ParseErrorKind};
use super::escape::{Context, Escaped};
use super::precision::{MAX_NANOS, MIN_NANOS, Precision};

/// Longest accepted line (an entry, including string fields that span several physical lines).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
/// Longest accepted string field value, unescaped (InfluxDB's documented 64 KiB limit).
pub const MAX_STRING_FIELD_BYTES: usize = 64 * 1024;
/// InfluxDB's `MaxKeyLength`: measurement + tags + `#!~#` + field key, as written.
pub const MAX_SERIES_KEY_BYTES: usize = 65535;
/// Tag and field keys InfluxDB 1.x refuses (partial write, `invalid tag key` / `field name`).
pub const RESERVED_KEYS: &[&str] = &["time"];
/// The tag naming the machine a line comes from (the host registry's key).
pub const HOST_TAG: &[u8] = b"host";
/// Tags (and fields) per line checked for duplicates without a heap allocation.
pub const INLINE_TAGS: usize = 32;

/// A typed field value, borrowed from the body when it is a string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    Integer(i64),
    Unsigned(u64),
    String(Escaped<'a>),
    Boolean(bool),
}

/// One accepted line. Everything is borrowed from the request body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line<'a> {
    number: usize,
    raw: &'a [u8],
    measurement: Escaped<'a>,
    tags: &'a [u8],
    tags_escaped: bool,
    fields: &'a [u8],
    fields_end: usize,
    timestamp: Option<i64>,
    precision: Precision,
    kind: Kind,
    index: Option<Escaped<'a>>,
    trace_id: Option<Escaped<'a>>,
    host: Option<Escaped<'a>>,
}

impl<'a> Line<'a> {
    /// 1-based number of the (first) physical line within the body.
    pub fn number(&self) -> usize {
        self.number
    }

    /// The line without line terminator and leading whitespace. May contain newlines inside
    /// string field values.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn measurement(&self) -> Escaped<'a> {
        self.measurement
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Value of the index tag (the classifier's `index_tag`), found while parsing.
    pub fn index(&self) -> Option<Escaped<'a>> {
        self.index
    }

    /// Value of the trace id tag (the classifier's `trace_id_tag`), found while parsing.
    pub fn trace_id(&self) -> Option<Escaped<'a>> {
        self.trace_id
    }

    /// Value of the `host` tag (what the host registry keys on), found while parsing.
    pub fn host(&self) -> Option<Escaped<'a>> {
        self.host
    }

    /// Tags in body order.
    pub fn tags(&self) -> Tags<'a> {
        Tags {
            rest: self.tags,
            escaped: self.tags_escaped,
        }
    }

    /// Value of the first tag with that (unescaped) key.
    pub fn tag(&self, key: &[u8]) -> Option<Escaped<'a>> {
        self.tags()
            .find(|(k, _)| k.eq_unescaped(key))
            .map(|(_, v)| v)
    }

    /// Fields in body order (duplicates included, as written).
    pub fn fields(&self) -> Fields<'a> {
        Fields { rest: self.fields }
    }

    /// The value InfluxDB stores for that (unescaped) field key: with duplicate keys, the
    /// last one wins, as in InfluxDB 1.x.
    pub fn field(&self, key: &[u8]) -> Option<FieldValue<'a>> {
        self.fields()
            .filter(|(k, _)| k.eq_unescaped(key))
            .last()
            .map(|(_, v)| v)
    }

    /// The timestamp as written, in the request's precision.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The timestamp in nanoseconds (already range-checked while parsing).
    pub fn timestamp_nanos(&self) -> Option<i64> {
        self.timestamp.and_then(|ts| self.precision.to_nanos(ts))
    }

    /// The precision the line was parsed with.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The raw line minus ` <timestamp>` (and any trailing spaces).
    pub fn without_timestamp(&self) -> &'a [u8] {
        &self.raw[..self.fields_end]
    }

    /// The raw field section (`k=v,k2=v2`).
    pub fn fields_raw(&self) -> &'a [u8] {
        self.fields
    }
}

/// Iterator over a line's tags.
#[derive(Debug, Clone)]
pub struct Tags<'a> {
    rest: &'a [u8],
    escaped: bool,
}

impl<'a> Iterator for Tags<'a> {
    type Item = (Escaped<'a>, Escaped<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = self.rest;
        let (key_end, key_esc) = if self.escaped {
            find_unescaped(rest, 0, b'=', Context::Tag)
        } else {
            (find_byte(rest, 0, b'='), false)
        };
        let value_start = (key_end + 1).min(rest.len());
        let (value_end, value_esc) = if self.escaped {
            find_unescaped(rest, value_start, b',', Context::Tag)
        } else {
            (find_byte(rest, value_start, b','), false)
        };
        self.rest = rest.get(value_end + 1..).unwrap_or(&[]);
        Some((
            Escaped::from_parts(&rest[..key_end], key_esc, Context::Tag),
            Escaped::from_parts(&rest[value_start..value_end], value_esc, Context::Tag),
        ))
    }
}

/// Iterator over a line's fields with typed values.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Fields<'a> {
    type Item = (Escaped<'a>, FieldValue<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        if rest.is_empty() {
            return None;
        }
        let (key_end, key_esc) = find_unescaped(rest, 0, b'=', Context::FieldKey);
        let key = Escaped::from_parts(&rest[..key_end], key_esc, Context::FieldKey);
        let v = (key_end + 1).min(rest.len());
        let (value, next) = if rest.get(v) == Some(&b'"') {
            let (close, esc) = find_string_end(rest, v + 1).unwrap_or((rest.len(), true));
            let s = Escaped::from_parts(&rest[v + 1..close], esc, Context::StringField);
            (FieldValue::String(s), close + 2)
        } else {
            let end = find_byte(rest, v, b',');
            (typed_value(&rest[v..end]), end + 1)
        };
        self.rest = rest.get(next..).unwrap_or(&[]);
        Some((key, value))
    }
}

/// Splits `body` into lines (memchr on `\n`, string fields may span lines) and parses each.
pub fn lines<'a, 'c>(body: &'a [u8], classifier: &'c Classifier) -> Lines<'a, 'c> {
    Lines {
        body,
        pos: 0,
        line: 1,
        classifier,
        precision: Precision::Nanosecond,
    }
}

/// Iterator over the lines of a body: `Ok` for each accepted line, `Err` for each refused
/// one; it always continues with the next line after an error. Blank and comment lines are
/// skipped.
#[derive(Debug, Clone)]
pub struct Lines<'a, 'c> {
    body: &'a [u8],
    pos: usize,
    line: usize,
    classifier: &'c Classifier,
    precision: Precision,
}

impl<'a, 'c> Lines<'a, 'c> {
    /// Timestamps are interpreted (and range-checked) in this precision (default ns).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Byte offset in the body where the next line starts.
    pub fn offset(&self) -> usize {
        self.pos
    }
}

impl<'a, 'c> Iterator for Lines<'a, 'c> {
    type Item = Result<Line<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let body = self.body;
        loop {
            let start = skip_spaces(body, self.pos);
            match body.get(start) {
                None => {
                    self.pos = body.len();
                    return None;
                }
                Some(b'\n') => {
                    self.pos = start + 1;
                    self.line += 1;
                    continue;
                }
                Some(b'\r') if start + 1 == body.len() => {
                    self.pos = body.len();
                    return None;
                }
                Some(b'\r') if body.get(start + 1) == Some(&b'\n') => {
                    self.pos = start + 2;
                    self.line += 1;
                    continue;
                }
                Some(b'#') => {
                    let end = memchr(b'\n', &body[start..]).map_or(body.len(), |p| start + p);
                    let bad = invalid_comment_byte(&body[start..end]);
                    let line = self.line;
                    let line_start = self.pos;
                    self.pos = (end + 1).min(body.len());
                    self.line += 1;
                    if let Some(col) = bad {
                        let off = start + col;
                        return Some(Err(ParseError::new(
                            line,
                            off - line_start + 1,
                            ParseErrorKind::InvalidComment,
                            &body[line_start..end],
                        )));
                    }
                    continue;
                }
                Some(_) => {
                    let line_start = self.pos;
                    let number = self.line;
                    let input = &body[start..];
                    let parsed = parse_entry(input, self.classifier, self.precision);
                    return Some(match parsed {
                        Ok((mut line, next, newlines)) => {
                            line.number = number;
                            self.pos = start + next;
                            self.line +=
                                newlines + usize::from(next > 0 && input[next - 1] == b'\n');
                            Ok(line)
                        }
                        Err((off, kind)) => {
                            let err_abs = start + off;
                            let resume = memchr(b'\n', &body[err_abs.min(body.len())..])
                                .map_or(body.len(), |p| err_abs + p + 1);
                            let err = error_at(body, line_start, number, err_abs, kind);
                            self.line += count_newlines(&body[line_start..resume]);
                            self.pos = resume;
                            Err(err)
                        }
                    });
                }
            }
        }
    }
}

/// Parses a single line (a trailing `\n` or `\r\n` is allowed). `Ok(None)` for blank and
/// comment lines. Timestamps are taken as nanoseconds.
pub fn parse_line<'a>(
    line: &'a [u8],
    number: usize,
    classifier: &Classifier,
) -> Result<Option<Line<'a>>, ParseError> {
    parse_line_with_precision(line, number, classifier, Precision::Nanosecond)
}

/// [`parse_line`] with timestamps in `precision`.
pub fn parse_line_with_precision<'a>(
    line: &'a [u8],
    number: usize,
    classifier: &Classifier,
    precision: Precision,
) -> Result<Option<Line<'a>>, ParseError> {
    let mut it = lines(line, classifier).with_precision(precision);
    it.line = number;
    match it.next() {
        None => Ok(None),
        Some(Err(e)) => Err(e),
        Some(Ok(parsed)) => {
            let rest = skip_blank_tail(&line[it.pos..]);
            if rest.is_empty() {
                Ok(Some(parsed))
            } else {
                let off = it.pos - usize::from(it.pos > 0);
                Err(error_at(
                    line,
                    0,
                    number,
                    off,
                    ParseErrorKind::MultipleLines,
                ))
            }
        }
    }
}

fn skip_blank_tail(rest: &[u8]) -> &[u8] {
    rest.iter()
        .position(|&b| !matches!(b, b' ' | b'\r' | b'\n'))
        .map_or(&rest[rest.len()..], |p| &rest[p..])
}

fn count_newlines(b: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', b).count()
}

fn error_at(
    body: &[u8],
    entry_line_start: usize,
    entry_number: usize,
    err_abs: usize,
    kind: ParseErrorKind,
) -> ParseError {
    let err_abs = err_abs.min(body.len());
    let before = &body[entry_line_start..err_abs];
    let newlines = count_newlines(before);
    let phys_start =
        memchr::memrchr(b'\n', before).map_or(entry_line_start, |p| entry_line_start + p + 1);
    let entry_end =
        memchr(b'\n', &body[entry_line_start..]).map_or(body.len(), |p| entry_line_start + p);
    ParseError::new(
        entry_number + newlines,
        err_abs - phys_start + 1,
        kind,
        &body[entry_line_start..entry_end],
    )
}

fn invalid_comment_byte(comment: &[u8]) -> Option<usize> {
    let comment = comment.strip_suffix(b"\r").unwrap_or(comment);
    comment.iter().position(|&b| is_nonprintable(b))
}

#[inline]
fn skip_spaces(body: &[u8], mut i: usize) -> usize {
    while i < body.len() && body[i] == b' ' {
        i += 1;
    }
    i
}

#[inline]
const fn is_nonprintable(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

const fn table(specials: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = is_nonprintable(b as u8);
        b += 1;
    }
    let mut i = 0;
    while i < specials.len() {
        t[specials[i] as usize] = true;
        i += 1;
    }
    t
}

/// Bytes that end (or need a closer look inside) a measurement.
static MEASUREMENT_STOP: [bool; 256] = table(b", \\");
/// Bytes that end (or need a closer look inside) a tag key, tag value or field key.
static KEY_STOP: [bool; 256] = table(b",= \\");

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// High bit set in every byte of `w` equal to `b` (exact up to the first match, which is all
/// the callers look at).
#[inline(always)]
fn bytes_equal(w: u64, b: u8) -> u64 {
    let x = w ^ (LOW_BITS * u64::from(b));
    x.wrapping_sub(LOW_BITS) & !x & HIGH_BITS
}

/// High bit set in every byte of `w` below `n` (`n` <= 0x80; exact up to the first match).
#[inline(always)]
fn bytes_below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(LOW_BITS * u64::from(n)) & !w & HIGH_BITS
}

#[inline(always)]
fn word_at(buf: &[u8], i: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&buf[i..i + 8]);
    u64::from_le_bytes(word)
}

/// Skips bytes that are not in `stop`, eight at a time. `KEY` adds `=` to the measurement's
/// stop bytes (`,`, space, backslash, control characters).
#[inline(always)]
fn skip_plain<const KEY: bool>(buf: &[u8], mut i: usize, stop: &[bool; 256]) -> usize {
    while i + 8 <= buf.len() {
        let w = word_at(buf, i);
        let mut m = bytes_below(w, 0x20)
            | bytes_equal(w, b',')
            | bytes_equal(w, b' ')
            | bytes_equal(w, b'\\')
            | bytes_equal(w, 0x7f);
        if KEY {
            m |= bytes_equal(w, b'=');
        }
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < buf.len() && !stop[buf[i] as usize] {
        i += 1;
    }
    i
}

/// End of a non-string field value: the next `,`, space, `\r` or `\n`.
#[inline(always)]
fn skip_value(buf: &[u8], mut i: usize) -> usize {
    while i + 8 <= buf.len() {
        let w = word_at(buf, i);
        let m = bytes_equal(w, b',')
            | bytes_equal(w, b' ')
            | bytes_equal(w, b'\r')
            | bytes_equal(w, b'\n');
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < buf.len() && !matches!(buf[i], b',' | b' ' | b'\r' | b'\n') {
        i += 1;
    }
    i
}

/// Scans a token from `i` up to the first stop byte not hidden by a backslash (see
/// [`Context::hides`]). Returns the end and whether the token contains a backslash.
#[inline(always)]
fn scan_token<const KEY: bool>(
    buf: &[u8],
    mut i: usize,
    stop: &[bool; 256],
    ctx: Context,
) -> (usize, bool) {
    let mut escaped = false;
    loop {
        i = skip_plain::<KEY>(buf, i, stop);
        if i < buf.len() && buf[i] == b'\\' {
            escaped = true;
            i += if i + 1 < buf.len() && ctx.hides(buf[i + 1]) {
                2
            } else {
                1
            };
            continue;
        }
        return (i, escaped);
    }
}

/// Where a run of two or more backslashes is directly followed by `,`, space, `=` or `"` in a
/// measurement. influxd 1.6.7 answers 204 for such a line but unescapes the name twice when it
/// indexes the series, so the point is filed under another measurement than its fields and no
/// query finds it. A single backslash before those bytes (an escape) is fine.
fn backslashes_before_escapable(raw: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = memchr(b'\\', &raw[i..]) {
        let start = i + p;
        let mut end = start;
        while end < raw.len() && raw[end] == b'\\' {
            end += 1;
        }
        if end - start >= 2 && matches!(raw.get(end), Some(b',' | b' ' | b'=' | b'"')) {
            return Some(start);
        }
        i = end;
    }
    None
}

/// Whether influxd would cut a body containing this line at another place than its end.
/// influxd 1.x splits a body into lines before parsing them (`models.scanLine`): backslashes
/// skip in pairs, the first space not skipped starts the "fields", and from there a `"` after
/// more `=` than `,` opens or closes a quote, inside which a newline does not end the line.
/// Without backslashes in the measurement and tags that first space is where our field section
/// starts and the quotes are exactly our string values; with a tag like `t\\ x="`, influxd's
/// splitter starts the fields inside the tags, opens a quote at the tag value and joins the
/// next line of the batch to this one (both refused: `point is invalid`), although the line
/// alone is stored. Returns where the splitter starts the fields in such a case.
fn influxd_splits_elsewhere(raw: &[u8]) -> Option<usize> {
    let mut fields_at = None;
    let (mut quoted, mut equals, mut commas) = (false, 0usize, 0usize);
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'\\' {
            i += 2;
            continue;
        }
        if b == b' ' && fields_at.is_none() {
            fields_at = Some(i);
        }
        if fields_at.is_some() {
            match b {
                b'=' if !quoted => equals += 1,
                b',' if !quoted => commas += 1,
                b'"' if equals > commas => quoted = !quoted,
                _ => {}
            }
        }
        if b == b'\n' && !quoted {
            return fields_at;
        }
        i += 1;
    }
    if quoted { fields_at } else { None }
}

/// Index of the first `b` at or after `i` (or the end), eight bytes at a time: tokens are
/// short, so this beats memchr's setup.
#[inline(always)]
fn find_byte(buf: &[u8], mut i: usize, b: u8) -> usize {
    while i + 8 <= buf.len() {
        let m = bytes_equal(word_at(buf, i), b);
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < buf.len() && buf[i] != b {
        i += 1;
    }
    i
}

/// Index of the first `stop` or backslash at or after `i` (or the end).
#[inline(always)]
fn find_byte_or_backslash(buf: &[u8], mut i: usize, stop: u8) -> usize {
    while i + 8 <= buf.len() {
        let w = word_at(buf, i);
        let m = bytes_equal(w, stop) | bytes_equal(w, b'\\');
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < buf.len() && buf[i] != stop && buf[i] != b'\\' {
        i += 1;
    }
    i
}

/// Finds the first `stop` byte not hidden by a backslash under `ctx` (validated input only).
#[inline]
fn find_unescaped(buf: &[u8], mut i: usize, stop: u8, ctx: Context) -> (usize, bool) {
    let mut escaped = false;
    loop {
        i = find_byte_or_backslash(buf, i, stop);
        match buf.get(i) {
            Some(&b) if b == stop => return (i, escaped),
            Some(_) => {
                escaped = true;
                i += if i + 1 < buf.len() && ctx.hides(buf[i + 1]) {
                    2
                } else {
                    1
                };
            }
            None => return (buf.len(), escaped),
        }
    }
}

/// Finds the closing quote of a string field whose content starts at `i`. Returns its index
/// and whether the content contains a backslash; `None` when unterminated.
#[inline]
fn find_string_end(buf: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    loop {
        let p = i + memchr2(b'"', b'\\', buf.get(i..)?)?;
        if buf[p] == b'"' {
            return Some((p, escaped));
        }
        escaped = true;
        i = p + 2;
    }
}

/// Type of a validated non-string field value.
fn typed_value(tok: &[u8]) -> FieldValue<'_> {
    match tok.first() {
        Some(b't' | b'T') => FieldValue::Boolean(true),
        Some(b'f' | b'F') => FieldValue::Boolean(false),
        _ => match tok.last() {
            Some(b'i') => FieldValue::Integer(parse_i64(&tok[..tok.len() - 1]).unwrap_or(0)),
            Some(b'u') => FieldValue::Unsigned(parse_u64(&tok[..tok.len() - 1]).unwrap_or(0)),
            _ => FieldValue::Float(parse_f64(tok).unwrap_or(0.0)),
        },
    }
}

#[derive(Debug, PartialEq, Eq)]
enum IntError {
    Syntax,
    Range,
}

/// `-?[0-9]+` as i64.
#[inline]
fn parse_i64(tok: &[u8]) -> Result<i64, IntError> {
    let (neg, digits) = match tok.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, tok),
    };
    if digits.is_empty() {
        return Err(IntError::Syntax);
    }
    // Up to 18 digits cannot overflow: no per-digit overflow checks on the common path. A 19th
    // digit (every nanosecond timestamp has 19) takes one checked step in u64.
    if digits.len() <= 19 {
        let (head, last) = digits.split_at(digits.len().min(18));
        let mut v: i64 = 0;
        for &d in head {
            let d = d.wrapping_sub(b'0');
            if d > 9 {
                return Err(IntError::Syntax);
            }
            v = v * 10 + i64::from(d);
        }
        let Some(&d) = last.first() else {
            return Ok(if neg { -v } else { v });
        };
        let d = d.wrapping_sub(b'0');
        if d > 9 {
            return Err(IntError::Syntax);
        }
        let magnitude = v as u64 * 10 + u64::from(d);
        return match (neg, i64::try_from(magnitude)) {
            (false, Ok(v)) => Ok(v),
            (true, Ok(v)) => Ok(-v),
            (true, Err(_)) if magnitude == i64::MIN.unsigned_abs() => Ok(i64::MIN),
            _ => Err(IntError::Range),
        };
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(IntError::Syntax);
        }
        let d = i64::from(d - b'0');
        v = v
            .checked_mul(10)
            .and_then(|v| {
                if neg {
                    v.checked_sub(d)
                } else {
                    v.checked_add(d)
                }
            })
            .ok_or(IntError::Range)?;
    }
    Ok(v)
}

fn parse_u64(tok: &[u8]) -> Result<u64, IntError> {
    if tok.is_empty() {
        return Err(IntError::Syntax);
    }
    let mut v: u64 = 0;
    for &d in tok {
        if !d.is_ascii_digit() {
            return Err(IntError::Syntax);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(IntError::Range)?;
    }
    Ok(v)
}

/// Exact powers of ten as f64 (all representable without rounding).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

#[inline]
fn parse_f64(tok: &[u8]) -> Option<f64> {
    simple_decimal(tok).or_else(|| std::str::from_utf8(tok).ok()?.parse::<f64>().ok())
}

/// Fast path for `-?digits[.digits]` with at most 15 significant digits: the mantissa and the
/// power of ten are exact in f64, so one division gives the correctly rounded result (Clinger's
/// fast path); anything else goes to the standard parser.
#[inline]
fn simple_decimal(tok: &[u8]) -> Option<f64> {
    let (neg, digits) = match tok.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, tok),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut count = 0usize;
    let mut frac: Option<usize> = None;
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
            }
            b'.' if frac.is_none() => frac = Some(count),
            _ => return None,
        }
    }
    if count == 0 || count > 15 {
        return None;
    }
    let scale = count - frac.unwrap_or(count);
    let v = mantissa as f64 / POW10[scale];
    Some(if neg { -v } else { v })
}

/// The float grammar InfluxDB 1.x accepts: `-?(digits[.digits?]|.digits)([eE][+-]?digits)?`.
fn float_literal(input: &[u8]) -> IResult<&[u8], &[u8]> {
    recognize((
        opt(char('-')),
        alt((
            recognize((digit1, opt((char('.'), digit0)))),
            recognize((char('.'), digit1)),
        )),
        opt((one_of("eE"), opt(one_of("+-")), digit1)),
    ))
    .parse(input)
}

/// Validates a float token; `Ok(())` when InfluxDB 1.x would store it.
fn check_float(tok: &[u8]) -> Result<(), ParseErrorKind> {
    match float_literal(tok) {
        Ok((b"", _)) => {}
        _ => return Err(ParseErrorKind::InvalidNumber),
    }
    // Without an exponent, fewer than 300 digits cannot overflow f64.
    let has_exponent = memchr2(b'e', b'E', tok).is_some();
    if has_exponent || tok.len() >= 300 {
        match parse_f64(tok) {
            Some(v) if v.is_finite() => {}
            Some(_) => return Err(ParseErrorKind::InvalidFloat),
            None => return Err(ParseErrorKind::InvalidFloat),
        }
    }
    Ok(())
}

type ParseFail = (usize, ParseErrorKind);

#[inline]
fn at_eol(buf: &[u8], i: usize) -> bool {
    matches!(buf.get(i), None | Some(b'\n' | b'\r'))
}

/// Where an entry ends: `Some((end, next))` when `i` is at a line end (`\n`, `\r\n`, end of
/// input, or `\r` at end of input).
#[inline]
fn line_end(buf: &[u8], i: usize) -> Option<(usize, usize)> {
    match buf.get(i) {
        None => Some((i, i)),
        Some(b'\n') => Some((i, i + 1)),
        Some(b'\r') => match buf.get(i + 1) {
            None => Some((i, i + 1)),
            Some(b'\n') => Some((i, i + 2)),
            Some(_) => None,
        },
        Some(_) => None,
    }
}

/// Duplicate detection for one section (tags or fields): the first [`INLINE_TAGS`] keys are
/// remembered on the stack behind a 128-bit bloom filter of their fingerprints, so a key is
/// compared with earlier ones only when the filter says it may repeat. Past that many keys the
/// section is checked once at its end by sorting (the only allocation, and only for such lines).
struct SeenKeys {
    bloom: u128,
    count: usize,
    /// (start, end, value kind) of the first `INLINE_TAGS` keys. A `SmallVec` because its inline
    /// storage is left uninitialised: zeroing a fixed array cost 3% of the write path's CPU.
    spans: SmallVec<[(u32, u32, u8); INLINE_TAGS]>,
}

/// A key met twice in one section.
enum Clash {
    /// With the same value type (always the case for tags).
    Same,
    /// With different value types.
    Conflict,
}

impl SeenKeys {
    fn new() -> Self {
        SeenKeys {
            bloom: 0,
            count: 0,
            spans: SmallVec::new(),
        }
    }

    #[inline(always)]
    fn push(&mut self, buf: &[u8], start: usize, end: usize, kind: u8) -> Option<Clash> {
        let n = self.count;
        self.count += 1;
        let key = &buf[start..end];
        let mask = 1u128 << (fingerprint(key).wrapping_mul(0x9E37_79B1) >> 25);
        let maybe_seen = self.bloom & mask != 0;
        self.bloom |= mask;
        if n >= INLINE_TAGS || end > u32::MAX as usize {
            self.count = self.count.max(INLINE_TAGS + 1);
            return None;
        }
        let found = if maybe_seen {
            self.spans
                .iter()
                .find(|&&(s, e, _)| &buf[s as usize..e as usize] == key)
                .map(|&(_, _, seen_kind)| seen_kind)
        } else {
            None
        };
        self.spans.push((start as u32, end as u32, kind));
        found.map(|seen_kind| {
            if seen_kind == kind {
                Clash::Same
            } else {
                Clash::Conflict
            }
        })
    }

    fn many(&self) -> bool {
        self.count > INLINE_TAGS
    }
}

/// Keys (raw) of a validated tag section with their offsets in it.
fn tag_keys(section: &[u8]) -> impl Iterator<Item = (&[u8], usize)> {
    let base = section.as_ptr() as usize;
    Tags {
        rest: section,
        escaped: true,
    }
    .map(move |(k, _)| (k.raw(), k.raw().as_ptr() as usize - base))
}

/// Keys (raw) of a validated field section with their value type and offset in it.
fn field_keys(section: &[u8]) -> impl Iterator<Item = (&[u8], u8, usize)> {
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= section.len() {
            return None;
        }
        let start = i;
        let (key_end, _) = find_unescaped(section, i, b'=', Context::FieldKey);
        let v = key_end + 1;
        let (kind, next) = match section.get(v) {
            Some(b'"') => (
                TYPE_STRING,
                find_string_end(section, v + 1).map_or(section.len(), |(close, _)| close + 2),
            ),
            first => {
                let end = find_byte(section, v.min(section.len()), b',');
                let kind = match (first, section.get(end.wrapping_sub(1))) {
                    (Some(b't' | b'T' | b'f' | b'F'), _) => TYPE_BOOLEAN,
                    (_, Some(b'i')) => TYPE_INTEGER,
                    _ => TYPE_FLOAT,
                };
                (kind, end + 1)
            }
        };
        i = next;
        Some((&section[start..key_end], kind, start))
    })
}

/// Offset (in the section) of the second occurrence of a repeated tag key.
fn duplicate_tag(section: &[u8]) -> Option<usize> {
    let mut keys: Vec<_> = tag_keys(section).collect();
    keys.sort_unstable();
    keys.windows(2).find(|w| w[0].0 == w[1].0).map(|w| w[1].1)
}

/// Offset (in the section) of a field key repeated with another value type; `unescape`
/// compares the keys as InfluxDB stores them.
fn conflicting_field(section: &[u8], unescape: bool) -> Option<usize> {
    let mut keys: Vec<(std::borrow::Cow<'_, [u8]>, u8, usize)> = field_keys(section)
        .map(|(k, kind, at)| {
            let key = if unescape {
                Escaped::new(k, Context::FieldKey).unescaped()
            } else {
                std::borrow::Cow::Borrowed(k)
            };
            (key, kind, at)
        })
        .collect();
    keys.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
    keys.windows(2)
        .find(|w| w[0].0 == w[1].0 && w[0].1 != w[1].1)
        .map(|w| w[1].2)
}

/// Length and first, middle and last byte: different keys rarely share all four.
#[inline]
fn fingerprint(key: &[u8]) -> u32 {
    let n = key.len();
    if n == 0 {
        return 0;
    }
    ((n as u32 & 0xff) << 24)
        | (u32::from(key[0]) << 16)
        | (u32::from(key[n / 2]) << 8)
        | u32::from(key[n - 1])
}

#[inline]
fn is_reserved(key: &Escaped<'_>) -> Option<&'static str> {
    RESERVED_KEYS
        .iter()
        .copied()
        .find(|r| key.eq_unescaped(r.as_bytes()))
}

fn invalid_char(buf: &[u8], i: usize, what: &'static str) -> ParseErrorKind {
    ParseErrorKind::InvalidCharacter(ByteName(buf.get(i).copied().unwrap_or(0)), what)
}

/// Parses one entry starting at `buf[0]` (not a space, not a comment). Returns the line, the
/// offset just past its terminator, and how many newlines its string fields contain.
///
/// When the line fails after a string field that spans physical lines, the likely cause is a
/// missing closing quote: the error is reported at that string's opening quote, so parsing
/// resumes on the next physical line instead of losing every line up to the next quote.
fn parse_entry<'a>(
    buf: &'a [u8],
    classifier: &Classifier,
    precision: Precision,
) -> Result<(Line<'a>, usize, usize), ParseFail> {
    let mut multiline_quote = None;
    parse_entry_inner(buf, classifier, precision, &mut multiline_quote).map_err(|(off, kind)| {
        match multiline_quote {
            Some(quote) if off > quote => (quote, ParseErrorKind::UnterminatedString),
            _ => (off, kind),
        }
    })
}

fn parse_entry_inner<'a>(
    buf: &'a [u8],
    classifier: &Classifier,
    precision: Precision,
    multiline_quote: &mut Option<usize>,
) -> Result<(Line<'a>, usize, usize), ParseFail> {
    // An entry ends only at a newline or the end of input: without a newline in the first
    // MAX_LINE_BYTES, it is too long, and a 10 MB line is refused before it is scanned.
    if buf.len() > MAX_LINE_BYTES && memchr(b'\n', &buf[..=MAX_LINE_BYTES]).is_none() {
        return Err((MAX_LINE_BYTES, ParseErrorKind::LineTooLong(MAX_LINE_BYTES)));
    }

    // Measurement.
    let (m_end, m_esc) = scan_token::<false>(buf, 0, &MEASUREMENT_STOP, Context::Measurement);
    if m_end == 0 {
        return Err((
            0,
            if at_eol(buf, 0) {
                ParseErrorKind::MissingMeasurement
            } else {
                invalid_char(buf, 0, "measurement")
            },
        ));
    }
    if m_esc && let Some(at) = backslashes_before_escapable(&buf[..m_end]) {
        return Err((at, ParseErrorKind::AmbiguousBackslashes("measurement")));
    }
    let measurement = Escaped::from_parts(&buf[..m_end], m_esc, Context::Measurement);

    // Tags.
    let mut i = m_end;
    let mut tags_start = m_end;
    let mut tags_escaped = false;
    let mut index = None;
    let mut trace_id = None;
    let mut host = None;
    let mut keys = SeenKeys::new();
    match buf.get(i) {
        Some(b',') => {
            tags_start = i + 1;
            loop {
                i += 1; // past the comma
                let k_start = i;
                if matches!(buf.get(i), None | Some(b' ' | b'\r' | b'\n' | b',' | b'=')) {
                    return Err((i, ParseErrorKind::MissingTagKey));
                }
                let (k_end, k_esc) = scan_token::<true>(buf, i, &KEY_STOP, Context::Tag);
                if k_end == k_start {
                    return Err((i, invalid_char(buf, i, "tag key")));
                }
                match buf.get(k_end) {
                    Some(b'=') => {}
                    Some(&b) if is_nonprintable(b) && b != b'\r' && b != b'\n' => {
                        return Err((k_end, invalid_char(buf, k_end, "tag key")));
                    }
                    _ => return Err((k_end, ParseErrorKind::MissingTagEquals)),
                }
                let key = Escaped::from_parts(&buf[k_start..k_end], k_esc, Context::Tag);
                if let Some(r) = is_reserved(&key) {
                    return Err((k_start, ParseErrorKind::ReservedKey(r)));
                }
                if keys.push(buf, k_start, k_end, 0).is_some() {
                    return Err((k_start, ParseErrorKind::DuplicateTag));
                }
                let v_start = k_end + 1;
                let (v_end, v_esc) = scan_token::<true>(buf, v_start, &KEY_STOP, Context::Tag);
                if v_end == v_start {
                    return Err((
                        v_start,
                        match buf.get(v_start) {
                            Some(&b) if is_nonprintable(b) && b != b'\r' && b != b'\n' => {
                                invalid_char(buf, v_start, "tag value")
                            }
                            _ => ParseErrorKind::MissingTagValue,
                        },
                    ));
                }
                tags_escaped |= k_esc | v_esc;
                let value = Escaped::from_parts(&buf[v_start..v_end], v_esc, Context::Tag);
                if key.eq_unescaped(&classifier.index_tag) {
                    index = Some(value);
                } else if key.eq_unescaped(HOST_TAG) {
                    host = Some(value);
                } else if key.eq_unescaped(&classifier.trace_id_tag) {
                    trace_id = Some(value);
                }
                i = v_end;
                match buf.get(i) {
                    Some(b',') => continue,
                    Some(b' ') => break,
                    None | Some(b'\n' | b'\r') => return Err((i, ParseErrorKind::MissingFields)),
                    Some(_) => return Err((i, invalid_char(buf, i, "tag value"))),
                }
            }
            if keys.many()
                && let Some(dup) = duplicate_tag(&buf[tags_start..i])
            {
                return Err((tags_start + dup, ParseErrorKind::DuplicateTag));
            }
        }
        Some(b' ') => {}
        None | Some(b'\n' | b'\r') => return Err((i, ParseErrorKind::MissingFields)),
        Some(_) => return Err((i, invalid_char(buf, i, "measurement"))),
    }
    let tags_end = i;
    let tags = if tags_start < tags_end {
        &buf[tags_start..tags_end]
    } else {
        &buf[..0]
    };
    let series_key_len = tags_end;

    // Fields.
    i = skip_spaces(buf, i);
    if at_eol(buf, i) {
        return Err((i, ParseErrorKind::MissingFields));
    }
    let fields_start = i;
    let mut newlines = 0usize;
    let mut seen_fields = SeenKeys::new();
    let mut field_keys_escaped = false;
    let fields_end;
    loop {
        let k_start = i;
        let (k_end, k_esc) = scan_token::<true>(buf, i, &KEY_STOP, Context::FieldKey);
        field_keys_escaped |= k_esc;
        if k_end == k_start {
            return Err((
                i,
                match buf.get(i) {
                    Some(&b) if is_nonprintable(b) && b != b'\r' && b != b'\n' => {
                        invalid_char(buf, i, "field key")
                    }
                    _ => ParseErrorKind::MissingFieldKey,
                },
            ));
        }
        match buf.get(k_end) {
            Some(b'=') => {}
            Some(&b) if is_nonprintable(b) && b != b'\r' && b != b'\n' => {
                return Err((k_end, invalid_char(buf, k_end, "field key")));
            }
            _ => return Err((k_end, ParseErrorKind::MissingFieldEquals)),
        }
        // Backslashes scan in pairs here, so a key ending in one ends in `\\`: influxd's field
        // iterator then takes the `=` as escaped and refuses the line.
        if k_esc && buf[k_end - 1] == b'\\' {
            return Err((k_end - 1, ParseErrorKind::AmbiguousBackslashes("field key")));
        }
        let key = Escaped::from_parts(&buf[k_start..k_end], k_esc, Context::FieldKey);
        if let Some(r) = is_reserved(&key) {
            return Err((k_start, ParseErrorKind::ReservedKey(r)));
        }
        let key_size = series_key_len + 4 + (k_end - k_start);
        if key_size > MAX_SERIES_KEY_BYTES {
            return Err((
                k_start,
                ParseErrorKind::KeyTooLong(key_size, MAX_SERIES_KEY_BYTES),
            ));
        }
        let v = k_end + 1;
        let (v_end, value_type) = match buf.get(v) {
            None | Some(b'\n' | b'\r' | b' ' | b',') => {
                return Err((v, ParseErrorKind::MissingFieldValue));
            }
            Some(b'"') => {
                let Some((close, esc)) = find_string_end(buf, v + 1) else {
                    return Err((v, ParseErrorKind::UnterminatedString));
                };
                let content = &buf[v + 1..close];
                if content.len() > MAX_STRING_FIELD_BYTES {
                    let unescaped_len = if esc {
                        Escaped::from_parts(content, true, Context::StringField)
                            .unescaped()
                            .len()
                    } else {
                        content.len()
                    };
                    if unescaped_len > MAX_STRING_FIELD_BYTES {
                        return Err((v, ParseErrorKind::StringTooLong(MAX_STRING_FIELD_BYTES)));
                    }
                }
                if memchr(b'\n', content).is_some() {
                    newlines += count_newlines(content);
                    multiline_quote.get_or_insert(v);
                }
                (close + 1, TYPE_STRING)
            }
            Some(&first) => {
                let e = skip_value(buf, v);
                let tok = &buf[v..e];
                (e, check_value(first, tok).map_err(|k| (v, k))?)
            }
        };
        if let Some(Clash::Conflict) = seen_fields.push(buf, k_start, k_end, value_type) {
            return Err((k_start, ParseErrorKind::FieldTypeConflict));
        }
        i = v_end;
        match buf.get(i) {
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(b' ') | None | Some(b'\n') => {
                fields_end = i;
                break;
            }
            Some(b'\r') if line_end(buf, i).is_some() => {
                fields_end = i;
                break;
            }
            Some(&b) => return Err((i, ParseErrorKind::UnexpectedAfterField(ByteName(b)))),
        }
    }

    // Escaped keys can name the same field in two spellings (`a\"b` and `a"b`): compare
    // those unescaped, as InfluxDB will.
    if (seen_fields.many() || field_keys_escaped)
        && let Some(at) = conflicting_field(&buf[fields_start..fields_end], field_keys_escaped)
    {
        return Err((fields_start + at, ParseErrorKind::FieldTypeConflict));
    }

    // Timestamp.
    let mut timestamp = None;
    i = skip_spaces(buf, i);
    let (end, next) = match line_end(buf, i) {
        Some(found) => found,
        None => {
            let t_start = i;
            while i < buf.len() && matches!(buf[i], b'-' | b'0'..=b'9') {
                i += 1;
            }
            if !matches!(buf.get(i), None | Some(b' ' | b'\r' | b'\n')) {
                return Err((t_start, ParseErrorKind::InvalidTimestamp));
            }
            let ts = match parse_i64(&buf[t_start..i]) {
                Ok(ts) => ts,
                Err(IntError::Syntax) => return Err((t_start, ParseErrorKind::InvalidTimestamp)),
                Err(IntError::Range) => return Err((t_start, out_of_range())),
            };
            if precision.to_nanos(ts).is_none() {
                return Err((t_start, out_of_range()));
            }
            timestamp = Some(ts);
            i = skip_spaces(buf, i);
            line_end(buf, i).ok_or((i, ParseErrorKind::TrailingGarbage))?
        }
    };

    if end > MAX_LINE_BYTES {
        return Err((MAX_LINE_BYTES, ParseErrorKind::LineTooLong(MAX_LINE_BYTES)));
    }
    let raw = &buf[..end];
    // The SIMD check answers the common (valid) case; the std one finds where it broke.
    if simdutf8::basic::from_utf8(raw).is_err()
        && let Err(e) = std::str::from_utf8(raw)
    {
        return Err((e.valid_up_to(), ParseErrorKind::InvalidUtf8));
    }
    if (m_esc || tags_escaped)
        && let Some(at) = influxd_splits_elsewhere(raw)
    {
        return Err((at, ParseErrorKind::AmbiguousBackslashes("tags")));
    }

    let kind = if m_esc {
        classifier.classify(&measurement.unescaped())
    } else {
        classifier.classify(measurement.raw())
    };
    let line = Line {
        number: 0,
        raw,
        measurement,
        tags,
        tags_escaped,
        fields: &buf[fields_start..fields_end],
        fields_end,
        timestamp,
        precision,
        kind,
        index,
        trace_id,
        host,
    };
    Ok((line, next, newlines))
}

fn out_of_range() -> ParseErrorKind {
    ParseErrorKind::TimestampOutOfRange {
        min: MIN_NANOS,
        max: MAX_NANOS,
    }
}

const TYPE_FLOAT: u8 = 0;
const TYPE_INTEGER: u8 = 1;
const TYPE_STRING: u8 = 2;
const TYPE_BOOLEAN: u8 = 3;

/// Validates a non-string field value token starting with `first`; returns its type.
fn check_value(first: u8, tok: &[u8]) -> Result<u8, ParseErrorKind> {
    match first {
        b't' | b'T' | b'f' | b'F' => match tok {
            b"t" | b"T" | b"true" | b"True" | b"TRUE" | b"f" | b"F" | b"false" | b"False"
            | b"FALSE" => Ok(TYPE_BOOLEAN),
            _ => Err(ParseErrorKind::InvalidBoolean),
        },
        b'-' | b'0'..=b'9' | b'.' => match tok.last() {
            Some(b'i') => match parse_i64(&tok[..tok.len() - 1]) {
                Ok(_) => Ok(TYPE_INTEGER),
                Err(IntError::Syntax) => Err(ParseErrorKind::InvalidNumber),
                Err(IntError::Range) => Err(ParseErrorKind::IntegerOutOfRange),
            },
            Some(b'u') => match parse_u64(&tok[..tok.len() - 1]) {
                Ok(_) => Err(ParseErrorKind::UnsignedNotSupported),
                Err(IntError::Syntax) => Err(ParseErrorKind::InvalidNumber),
                Err(IntError::Range) => Err(ParseErrorKind::IntegerOutOfRange),
            },
            _ => check_float(tok).map(|()| TYPE_FLOAT),
        },
        _ => Err(ParseErrorKind::InvalidFieldValue),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &[u8]) -> Result<Line<'_>, ParseError> {
        let c = Classifier::default();
        match parse_line(s, 1, &c) {
            Ok(Some(l)) => Ok(l),
            Ok(None) => panic!("blank"),
            Err(e) => Err(e),
        }
    }

    #[test]
    fn fast_float_path_matches_std() {
        for t in [
            "0.07",
            "-12.5",
            "1.",
            ".5",
            "123456789012345",
            "0.000000000000001",
            "99.99",
            "-0",
        ] {
            let std: f64 = t.parse().unwrap();
            assert_eq!(parse_f64(t.as_bytes()), Some(std), "{t}");
        }
        assert_eq!(simple_decimal(b"1234567890123456"), None);
        assert_eq!(simple_decimal(b"1e5"), None);
    }

    #[test]
    fn integer_paths() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), Err(IntError::Range));
        assert_eq!(parse_i64(b"9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775809"), Err(IntError::Range));
        assert_eq!(parse_i64(b"9999999999999999999"), Err(IntError::Range));
        assert_eq!(
            parse_i64(b"1700000000000000001"),
            Ok(1_700_000_000_000_000_001)
        );
        assert_eq!(
            parse_i64(b"-1700000000000000001"),
            Ok(-1_700_000_000_000_000_001)
        );
        assert_eq!(parse_i64(b"0000000000000000042"), Ok(42));
        assert_eq!(parse_i64(b"170000000000000000x"), Err(IntError::Syntax));
        assert_eq!(parse_i64(b"99999999999999999999"), Err(IntError::Range));
        assert_eq!(
            parse_i64(b"999999999999999999"),
            Ok(999_999_999_999_999_999)
        );
        assert_eq!(parse_i64(b"12a"), Err(IntError::Syntax));
        assert_eq!(parse_i64(b"-"), Err(IntError::Syntax));
    }

    #[test]
    fn float_grammar() {
        for ok in [
            "1", "1.", ".5", "-.5", "1.e5", "1E+5", "-0", "007", "1.5e-3",
        ] {
            assert!(check_float(ok.as_bytes()).is_ok(), "{ok}");
        }
        for bad in [
            ".", "-", "-.", ".e5", "1e", "1e+", "1.2.3", "0x10", "1_0", "1e5.0", "--1", "1e400",
        ] {
            assert!(check_float(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn backslash_runs_before_delimiters_in_measurements() {
        assert_eq!(backslashes_before_escapable(br"m\\ y"), Some(1));
        assert_eq!(backslashes_before_escapable(br"ab\\\\\\\\\\=x"), Some(2));
        assert_eq!(backslashes_before_escapable(br"\\\\"), None);
        assert_eq!(backslashes_before_escapable(br"m\\y\ z\,w"), None);
        assert_eq!(backslashes_before_escapable(br#"m\"y\\"#), None);
        assert_eq!(backslashes_before_escapable(br#"m\\x\\""#), Some(4));
    }

    #[test]
    fn field_keys_scan_backslashes_in_pairs() {
        let (end, escaped) = scan_token::<true>(br"f\\ y=1", 0, &KEY_STOP, Context::FieldKey);
        assert_eq!((end, escaped), (3, true));
        let (end, _) = scan_token::<true>(br"f\\\ y=1", 0, &KEY_STOP, Context::FieldKey);
        assert_eq!(end, 6);
        let (end, _) = scan_token::<true>(br"a\\ b=v", 0, &KEY_STOP, Context::Tag);
        assert_eq!(end, 5);
        let (end, _) = find_unescaped(br"f\\=1", 0, b'=', Context::FieldKey);
        assert_eq!(end, 3);
    }

    #[test]
    fn metric_line() {
        let l =
            one(b"mem,index=cluster1,host=h1 used=12i,free=3.5,ok=t,s=\"x\" 1465839830100400200")
                .unwrap();
        assert_eq!(l.kind(), Kind::Metric);
        assert_eq!(l.index().unwrap().raw(), b"cluster1");
        assert_eq!(l.timestamp(), Some(1465839830100400200));
        assert_eq!(l.field(b"used"), Some(FieldValue::Integer(12)));
        assert_eq!(l.field(b"free"), Some(FieldValue::Float(3.5)));
        assert_eq!(l.field(b"ok"), Some(FieldValue::Boolean(true)));
        assert_eq!(l.tags().count(), 2);
        assert_eq!(
            l.without_timestamp(),
            &b"mem,index=cluster1,host=h1 used=12i,free=3.5,ok=t,s=\"x\""[..]
        );
    }
}
