//! Reading InfluxDB 1.x's MessagePack `/query` answers (`Accept: application/x-msgpack`, 1.4+)
//! into the raw merge's [`Chunk`]s, each row re-encoded as the JSON InfluxDB would have written
//! for it (Go's `encoding/json`: shortest floats, `e` notation below 1e-6 and from 1e21, HTML-safe
//! string escapes), so what the client gets is byte for byte the JSON answer.
//!
//! Why: InfluxDB produces MessagePack in about 55–70% of the time it takes for JSON (measured in
//! BENCHMARKS.md, "Query path"), and every raw merge at RF=2 makes every replica produce its
//! answer; re-encoding here costs less than the JSON encoding saved there. A chunked MessagePack
//! answer is a sequence of objects with no separator ([`object_len`] finds where each ends).
//! It must never guess a value it cannot encode exactly as Go would (non-finite floats, binary,
//! extensions): those are errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use smallvec::SmallVec;

use super::chunk::{Chunk, Row, SeriesHeader, SeriesPart};
use crate::influxql::result::Message;

/// The length of the first complete object in `buf`; `None` when more bytes are needed.
pub fn object_len(buf: &[u8]) -> Result<Option<usize>, String> {
    Framer::default().advance(buf)
}

/// Finds where the objects of a MessagePack stream end as its bytes arrive, resuming where it
/// stopped (each byte is looked at once, however the stream is cut).
#[derive(Debug)]
pub struct Framer {
    pos: usize,
    pending: usize,
}

impl Default for Framer {
    fn default() -> Self {
        Framer { pos: 0, pending: 1 }
    }
}

impl Framer {
    /// The length of the object at the start of `buf` (the same buffer, grown, on every call
    /// until it returns `Some`), then ready for the next object.
    pub fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, String> {
        let mut reader = Reader { buf, pos: self.pos };
        while self.pending > 0 {
            let at = reader.pos;
            match reader.value() {
                Ok(Value::Array(n)) => self.pending += n,
                Ok(Value::Map(n)) => self.pending += n.saturating_mul(2),
                Ok(_) => {}
                Err(Short::Incomplete) => {
                    self.pos = at;
                    return Ok(None);
                }
                Err(Short::Invalid(error)) => return Err(error),
            }
            self.pending -= 1;
            self.pos = reader.pos;
        }
        let len = self.pos;
        *self = Framer::default();
        Ok(Some(len))
    }
}

/// Reads one MessagePack answer object.
pub fn parse_msgpack_chunk(document: &[u8]) -> Result<Chunk, String> {
    let mut reader = Reader {
        buf: document,
        pos: 0,
    };
    let mut chunk = Chunk::default();
    // Rows re-encoded take about as many bytes as they came in (times are not re-encoded):
    // one allocation, no growth by copying.
    let mut rows = RowBuffer {
        json: Vec::with_capacity(document.len()),
        rows: Vec::new(),
    };
    read_answer(&mut reader, &mut chunk, &mut rows).map_err(Short::text)?;
    rows.attach(&mut chunk);
    Ok(chunk)
}

enum Short {
    Incomplete,
    Invalid(String),
}

impl Short {
    fn text(self) -> String {
        match self {
            Short::Incomplete => "truncated MessagePack answer".to_owned(),
            Short::Invalid(error) => error,
        }
    }
}

/// Every row of a document written into one buffer, cut into `Row`s at the end (one allocation
/// per document, not per row).
#[derive(Default)]
struct RowBuffer {
    json: Vec<u8>,
    /// (series part index, start, time end, end, time, timed)
    rows: Vec<(usize, usize, usize, usize, i64, bool)>,
}

impl RowBuffer {
    fn attach(self, chunk: &mut Chunk) {
        let bytes = Bytes::from(self.json);
        for (part, start, time_end, end, time, timed) in self.rows {
            if let Some(series) = chunk.series.get_mut(part) {
                series.rows.push(Row::from_parts(
                    bytes.slice(start..end),
                    time,
                    time_end - start,
                    timed,
                ));
            }
        }
    }
}

enum Value<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(&'a [u8]),
    Array(usize),
    Map(usize),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Short> {
        let end = self.pos.checked_add(n).ok_or(Short::Incomplete)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Short::Incomplete)?;
        self.pos = end;
        Ok(bytes)
    }

    /// A big-endian unsigned integer of `N` (1 to 8) bytes.
    fn be<const N: usize>(&mut self) -> Result<u64, Short> {
        let bytes = self.take(N)?;
        let mut wide = [0u8; 8];
        wide[8 - N..].copy_from_slice(bytes);
        Ok(u64::from_be_bytes(wide))
    }

    fn value(&mut self) -> Result<Value<'a>, Short> {
        let marker = self.take(1)?[0];
        Ok(match marker {
            0x00..=0x7f => Value::Int(i64::from(marker)),
            0xe0..=0xff => Value::Int(i64::from(marker as i8)),
            0x80..=0x8f => Value::Map(usize::from(marker & 0x0f)),
            0x90..=0x9f => Value::Array(usize::from(marker & 0x0f)),
            0xa0..=0xbf => Value::Str(self.take(usize::from(marker & 0x1f))?),
            0xc0 => Value::Nil,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xca => Value::Float(f64::from(f32::from_bits(self.be::<4>()? as u32))),
            0xcb => Value::Float(f64::from_bits(self.be::<8>()?)),
            0xcc => Value::Int(self.be::<1>()? as i64),
            0xcd => Value::Int(self.be::<2>()? as i64),
            0xce => Value::Int(self.be::<4>()? as i64),
            0xcf => Value::Uint(self.be::<8>()?),
            0xd0 => Value::Int(i64::from(self.be::<1>()? as u8 as i8)),
            0xd1 => Value::Int(i64::from(self.be::<2>()? as u16 as i16)),
            0xd2 => Value::Int(i64::from(self.be::<4>()? as u32 as i32)),
            0xd3 => Value::Int(self.be::<8>()? as i64),
            0xd9 => {
                let n = self.be::<1>()? as usize;
                Value::Str(self.take(n)?)
            }
            0xda => {
                let n = self.be::<2>()? as usize;
                Value::Str(self.take(n)?)
            }
            0xdb => {
                let n = self.be::<4>()? as usize;
                Value::Str(self.take(n)?)
            }
            0xdc => Value::Array(self.be::<2>()? as usize),
            0xdd => Value::Array(self.be::<4>()? as usize),
            0xde => Value::Map(self.be::<2>()? as usize),
            0xdf => Value::Map(self.be::<4>()? as usize),
            other => {
                return Err(Short::Invalid(format!(
                    "unsupported MessagePack type 0x{other:02x} at byte {}",
                    self.pos - 1
                )));
            }
        })
    }

    fn skip(&mut self) -> Result<(), Short> {
        let mut pending: usize = 1;
        while pending > 0 {
            pending -= 1;
            match self.value()? {
                Value::Array(n) => pending = pending.saturating_add(n),
                Value::Map(n) => pending = pending.saturating_add(n.saturating_mul(2)),
                _ => {}
            }
        }
        Ok(())
    }

    fn string(&mut self) -> Result<String, Short> {
        match self.value()? {
            Value::Str(bytes) => Ok(String::from_utf8_lossy(bytes).into_owned()),
            _ => Err(self.invalid("expected a string")),
        }
    }

    fn invalid(&self, what: &str) -> Short {
        Short::Invalid(format!("{what} at byte {}", self.pos))
    }

    fn map_len(&mut self) -> Result<usize, Short> {
        match self.value()? {
            Value::Map(n) => Ok(n),
            _ => Err(self.invalid("expected a map")),
        }
    }

    /// An array's length; `nil` counts as empty.
    fn array_len(&mut self) -> Result<usize, Short> {
        match self.value()? {
            Value::Array(n) => Ok(n),
            Value::Nil => Ok(0),
            _ => Err(self.invalid("expected an array")),
        }
    }
}

fn read_answer(r: &mut Reader<'_>, chunk: &mut Chunk, rows: &mut RowBuffer) -> Result<(), Short> {
    for _ in 0..r.map_len()? {
        match r.string()?.as_str() {
            "results" => {
                for _ in 0..r.array_len()? {
                    read_result(r, chunk, rows)?;
                }
            }
            "error" => chunk.error = Some(r.string()?),
            _ => r.skip()?,
        }
    }
    Ok(())
}

fn read_result(r: &mut Reader<'_>, chunk: &mut Chunk, rows: &mut RowBuffer) -> Result<(), Short> {
    for _ in 0..r.map_len()? {
        match r.string()?.as_str() {
            "series" => {
                for _ in 0..r.array_len()? {
                    read_series(r, chunk, rows)?;
                }
            }
            "messages" => {
                for _ in 0..r.array_len()? {
                    let mut message = Message {
                        level: String::new(),
                        text: String::new(),
                    };
                    for _ in 0..r.map_len()? {
                        match r.string()?.as_str() {
                            "level" => message.level = r.string()?,
                            "text" => message.text = r.string()?,
                            _ => r.skip()?,
                        }
                    }
                    chunk.messages.push(message);
                }
            }
            "error" => chunk.error = Some(r.string()?),
            _ => r.skip()?,
        }
    }
    Ok(())
}

fn read_series(r: &mut Reader<'_>, chunk: &mut Chunk, rows: &mut RowBuffer) -> Result<(), Short> {
    let part = chunk.series.len();
    let mut header = SeriesHeader::default();
    for _ in 0..r.map_len()? {
        match r.string()?.as_str() {
            "name" => header.name = r.string()?,
            "tags" => {
                let mut tags = BTreeMap::new();
                for _ in 0..r.map_len()? {
                    let key = r.string()?;
                    tags.insert(key, r.string()?);
                }
                header.tags = Some(tags);
            }
            "columns" => {
                for _ in 0..r.array_len()? {
                    header.columns.push(r.string()?);
                }
            }
            "values" => {
                for _ in 0..r.array_len()? {
                    read_row(r, part, rows)?;
                }
            }
            _ => r.skip()?,
        }
    }
    chunk.series.push(SeriesPart {
        header: Arc::new(header),
        rows: Vec::new(),
    });
    Ok(())
}

fn read_row(r: &mut Reader<'_>, part: usize, rows: &mut RowBuffer) -> Result<(), Short> {
    let cells = r.array_len()?;
    let out = &mut rows.json;
    let start = out.len();
    out.push(b'[');
    let mut time = i64::MIN;
    let mut timed = false;
    let mut time_end = out.len();
    for i in 0..cells {
        if i > 0 {
            out.push(b',');
        }
        let value = r.value()?;
        if i == 0
            && let Value::Int(t) = value
        {
            // Kept as a number only: the writer formats times in the client's epoch anyway.
            time = t;
            timed = true;
        } else {
            write_value(out, value).map_err(|e| r.invalid(&e))?;
        }
        if i == 0 {
            time_end = out.len();
        }
    }
    out.push(b']');
    rows.rows
        .push((part, start, time_end, out.len(), time, timed));
    Ok(())
}

fn write_value(out: &mut Vec<u8>, value: Value<'_>) -> Result<(), String> {
    match value {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(n) => write_int(out, n),
        Value::Uint(n) => write_int(out, n),
        Value::Float(f) => write_go_float(out, f)?,
        Value::Str(bytes) => write_go_string(out, bytes),
        Value::Array(_) | Value::Map(_) => {
            return Err("a nested array or map where a value was expected".to_owned());
        }
    }
    Ok(())
}

/// A float64 as Go's `encoding/json` writes it: the shortest decimal that reads back the same
/// (the even one when two are equally close, as Go rounds), plain notation from 1e-6 up to
/// 1e21, else `1e-7` / `1e+21`.
pub fn write_go_float(out: &mut Vec<u8>, f: f64) -> Result<(), String> {
    if !f.is_finite() {
        return Err(format!("{f} has no JSON form"));
    }
    let abs = f.abs();
    let plain = abs == 0.0 || (1e-6..1e21).contains(&abs);
    if abs == 0.0 {
        out.extend_from_slice(if f.is_sign_negative() { b"-0" } else { b"0" });
        return Ok(());
    }
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(abs).as_bytes();
    // ryu writes plain notation from 1e-5 up to 1e16, inside Go's plain range; Go only drops
    // the `.0` of whole numbers. The common case, without taking the digits apart.
    if !text.contains(&b'e') {
        let text = text.strip_suffix(b".0").unwrap_or(text);
        let zeros = text.iter().take_while(|&&b| b == b'0' || b == b'.').count();
        let significant = text.len() - zeros - usize::from(text[zeros..].contains(&b'.'));
        if significant < 16 {
            if f.is_sign_negative() {
                out.push(b'-');
            }
            out.extend_from_slice(text);
            return Ok(());
        }
    }
    let (digits, exponent) = shortest_digits(text);
    // Below 16 digits no two shortest candidates can tie, so ryu's choice is Go's.
    if digits.len() < 16 {
        lay_out_go(out, f.is_sign_negative(), &digits, exponent, plain);
        return Ok(());
    }
    // ryu and Rust break a tie between two shortest candidates upwards, Go to the even digit:
    // round to the same number of digits half-to-even, keep it if it reads back the same.
    let shortest = format!("{abs:e}");
    let even = format!("{abs:.*e}", digits.len() - 1);
    let chosen = if even.parse::<f64>() == Ok(abs) {
        even
    } else {
        shortest
    };
    let (digits, exponent) = shortest_digits(chosen.as_bytes());
    lay_out_go(out, f.is_sign_negative(), &digits, exponent, plain);
    Ok(())
}

/// The significant digits of a positive decimal written as `int[.frac][e[-]exp]` (ryu's and
/// Rust's forms), without leading or trailing zeros, and the power of ten of the first one.
fn shortest_digits(text: &[u8]) -> (SmallVec<[u8; 24]>, i32) {
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (&text[..at], parse_exponent(&text[at + 1..])),
        None => (text, 0),
    };
    let whole = mantissa
        .iter()
        .position(|&b| b == b'.')
        .unwrap_or(mantissa.len());
    let mut digits: SmallVec<[u8; 24]> = SmallVec::new();
    let mut leading_zeros = 0i32;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if digits.is_empty() && b == b'0' {
            leading_zeros += 1;
        } else {
            digits.push(b);
        }
    }
    while digits.len() > 1 && digits.last() == Some(&b'0') {
        digits.pop();
    }
    let whole = i32::try_from(whole).unwrap_or(i32::MAX);
    (digits, whole + exponent - leading_zeros - 1)
}

fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let magnitude = digits.iter().fold(0i32, |n, &d| {
        n.saturating_mul(10).saturating_add(i32::from(d - b'0'))
    });
    if negative { -magnitude } else { magnitude }
}

/// Writes `digits` × 10^(`exponent` of the first digit) in Go's layout.
fn lay_out_go(out: &mut Vec<u8>, negative: bool, digits: &[u8], exponent: i32, plain: bool) {
    if negative {
        out.push(b'-');
    }
    if plain {
        if exponent >= 0 {
            let whole = exponent as usize + 1;
            for i in 0..whole {
                out.push(digits.get(i).copied().unwrap_or(b'0'));
            }
            if digits.len() > whole {
                out.push(b'.');
                out.extend_from_slice(&digits[whole..]);
            }
        } else {
            out.extend_from_slice(b"0.");
            out.extend(std::iter::repeat_n(b'0', (-exponent - 1) as usize));
            out.extend_from_slice(digits);
        }
    } else {
        out.push(digits.first().copied().unwrap_or(b'0'));
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exponent < 0 { b'-' } else { b'+' });
        // Go writes at least two exponent digits, then trims `e-07` to `e-7` (not `e+07`).
        if (0..10).contains(&exponent) {
            out.push(b'0');
        }
        write_int(out, exponent.unsigned_abs());
    }
}

/// An integer in decimal (what `write!` does, without the formatting machinery).
pub fn write_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A string as Go's `encoding/json` writes it (HTML-safe: `<`, `>`, `&`, U+2028 and U+2029
/// escaped; invalid UTF-8 as U+FFFD).
pub fn write_go_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut i = 0;
    let mut clean = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b < 0x80 {
            let escape: Option<&[u8]> = match b {
                b'"' => Some(b"\\\""),
                b'\\' => Some(b"\\\\"),
                b'\n' => Some(b"\\n"),
                b'\r' => Some(b"\\r"),
                b'\t' => Some(b"\\t"),
                b'<' | b'>' | b'&' | 0x00..=0x1f => Some(b""),
                _ => None,
            };
            if let Some(escape) = escape {
                out.extend_from_slice(&bytes[clean..i]);
                if escape.is_empty() {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0x0f)]);
                } else {
                    out.extend_from_slice(escape);
                }
                clean = i + 1;
            }
            i += 1;
            continue;
        }
        let width = match b {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => 0,
        };
        let valid = width > 0
            && bytes
                .get(i..i + width)
                .is_some_and(|s| std::str::from_utf8(s).is_ok());
        if !valid {
            out.extend_from_slice(&bytes[clean..i]);
            out.extend_from_slice(b"\\ufffd");
            i += 1;
            clean = i;
            continue;
        }
        if width == 3 && b == 0xe2 && bytes[i + 1] == 0x80 && matches!(bytes[i + 2], 0xa8 | 0xa9) {
            out.extend_from_slice(&bytes[clean..i]);
            out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            clean = i + 3;
        }
        i += width;
    }
    out.extend_from_slice(&bytes[clean..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(f: f64) -> String {
        let mut out = Vec::new();
        write_go_float(&mut out, f).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn string(s: &[u8]) -> String {
        let mut out = Vec::new();
        write_go_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_as_go_writes_them() {
        for (value, go) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.0, "1"),
            (0.1, "0.1"),
            (123.25, "123.25"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (-2.5e-10, "-2.5e-10"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            // Two shortest candidates equally close: Go takes the even one.
            (202_587_763_289_869.0 + 0.625, "202587763289869.62"),
            (12315947843530.592, "12315947843530.592"),
            (1234567890123456.8, "1234567890123456.8"),
        ] {
            assert_eq!(float(value), go, "{value:?}");
        }
        assert!(write_go_float(&mut Vec::new(), f64::NAN).is_err());
    }

    #[test]
    fn strings_as_go_writes_them() {
        assert_eq!(string(b"plain"), r#""plain""#);
        assert_eq!(
            string(b"a<b>&\"\\\n\t\x01\x7f"),
            format!("{}\x7f\"", r#""a\u003cb\u003e\u0026\"\\\n\t\u0001"#)
        );
        assert_eq!(
            string("é\u{2028}x\u{2029}".as_bytes()),
            "\"é\\u2028x\\u2029\""
        );
        assert_eq!(string(b"a\xffb"), r#""a\ufffdb""#);
    }

    #[test]
    fn reads_an_influxdb_msgpack_chunk() {
        // {"results":[{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"h1"},
        //   "columns":["time","value","n"],"values":[[T,0.0,0],[T+60ms,0.1,1]]}],"partial":true}]}
        let doc: &[u8] = &[
            0x81, 0xa7, b'r', b'e', b's', b'u', b'l', b't', b's', 0x91, 0x83, 0xac, b's', b't',
            b'a', b't', b'e', b'm', b'e', b'n', b't', b'_', b'i', b'd', 0x00, 0xa6, b's', b'e',
            b'r', b'i', b'e', b's', 0x91, 0x84, 0xa4, b'n', b'a', b'm', b'e', 0xa3, b'c', b'p',
            b'u', 0xa4, b't', b'a', b'g', b's', 0x81, 0xa4, b'h', b'o', b's', b't', 0xa2, b'h',
            b'1', 0xa7, b'c', b'o', b'l', b'u', b'm', b'n', b's', 0x93, 0xa4, b't', b'i', b'm',
            b'e', 0xa5, b'v', b'a', b'l', b'u', b'e', 0xa1, b'n', 0xa6, b'v', b'a', b'l', b'u',
            b'e', b's', 0x92, 0x93, 0xd3, 0x17, 0x97, 0x9c, 0xfe, 0x36, 0x2a, 0x00, 0x00, 0xcb, 0,
            0, 0, 0, 0, 0, 0, 0, 0x00, 0x93, 0xd3, 0x17, 0x97, 0x9c, 0xfe, 0x39, 0xbd, 0x87, 0x00,
            0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a, 0x01, 0xa7, b'p', b'a', b'r',
            b't', b'i', b'a', b'l', 0xc3,
        ];
        assert_eq!(object_len(doc).unwrap(), Some(doc.len()));
        assert_eq!(object_len(&doc[..doc.len() - 1]).unwrap(), None);
        let chunk = parse_msgpack_chunk(doc).unwrap();
        let part = &chunk.series[0];
        assert_eq!(part.header.name, "cpu");
        assert_eq!(part.header.tags.as_ref().unwrap()["host"], "h1");
        assert_eq!(part.header.columns, vec!["time", "value", "n"]);
        assert_eq!(part.rows.len(), 2);
        assert_eq!(part.rows[0].time(), 1_700_000_000_000_000_000);
        // An integer time is kept as a number, not as text.
        assert!(part.rows[0].timed());
        assert_eq!(part.rows[0].time_text(), b"");
        assert_eq!(part.rows[0].cells(), b",0,0");
        assert_eq!(part.rows[1].cells(), b",0.1,1");
        let mut both = doc.to_vec();
        both.extend_from_slice(doc);
        assert_eq!(object_len(&both).unwrap(), Some(doc.len()));
    }

    /// The formatter before ryu (Rust's `Display` and `{:e}`), kept as the reference the fast
    /// path must agree with.
    fn reference_go_float(f: f64) -> String {
        let abs = f.abs();
        let plain = abs == 0.0 || (1e-6..1e21).contains(&abs);
        if plain {
            let text = format!("{f}");
            let significant = text
                .bytes()
                .skip_while(|b| matches!(b, b'-' | b'0' | b'.'))
                .filter(u8::is_ascii_digit)
                .count();
            if significant < 16 {
                return text;
            }
        }
        let shortest = format!("{f:e}");
        let (mantissa, _) = shortest.split_once('e').unwrap();
        let count = mantissa.bytes().filter(u8::is_ascii_digit).count().max(1);
        let even = format!("{f:.*e}", count - 1);
        let chosen = if even.parse::<f64>() == Ok(f) {
            even
        } else {
            shortest
        };
        let (mantissa, exponent) = chosen.split_once('e').unwrap();
        let exponent: i32 = exponent.parse().unwrap();
        let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        while digits.len() > 1 && digits.last() == Some(&b'0') {
            digits.pop();
        }
        let mut out = Vec::new();
        lay_out_go(&mut out, f.is_sign_negative(), &digits, exponent, plain);
        String::from_utf8(out).unwrap()
    }

    proptest::proptest! {
        /// The ryu fast path writes what the formatter it replaced wrote, for any bits ...
        #[test]
        fn fast_floats_match_the_reference(bits in proptest::prelude::any::<u64>()) {
            let f = f64::from_bits(bits);
            proptest::prop_assume!(f.is_finite());
            proptest::prop_assert_eq!(float(f), reference_go_float(f));
        }

        /// ... and for the short decimals metrics mostly carry (the fast path itself).
        #[test]
        fn short_decimals_match_the_reference(
            mantissa in -10_000_000_000i64..10_000_000_000,
            scale in -30i32..30,
        ) {
            let f = mantissa as f64 * 10f64.powi(scale);
            proptest::prop_assume!(f.is_finite());
            proptest::prop_assert_eq!(float(f), reference_go_float(f));
        }

        /// Whatever the float, what is written reads back as the same float, in the notation Go
        /// picks for its magnitude.
        #[test]
        fn every_float_reads_back(bits in proptest::prelude::any::<u64>()) {
            let f = f64::from_bits(bits);
            proptest::prop_assume!(f.is_finite());
            let text = float(f);
            proptest::prop_assert_eq!(text.parse::<f64>().unwrap(), f, "{}", text);
            let abs = f.abs();
            let exponent = text.contains('e');
            proptest::prop_assert_eq!(exponent, abs != 0.0 && !(1e-6..1e21).contains(&abs), "{}", text);
        }
    }
}
