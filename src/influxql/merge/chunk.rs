//! Reading one document of an InfluxDB 1.x `/query` answer (one line of a chunked answer) for the
//! raw merge, without a `serde_json::Value` per cell: each row is kept as the bytes InfluxDB
//! wrote (a slice of the received buffer, no copy) with its time parsed, so merged rows go back
//! to the client exactly as InfluxDB formatted their values. Series headers, messages and errors
//! are decoded. It must never guess: a document it cannot read is an error, not a partial read.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use crate::influxql::result::Message;

/// One row as InfluxDB wrote it: `[time,cell,cell]`.
#[derive(Debug, Clone)]
pub struct Row {
    bytes: Bytes,
    time: i64,
    /// Where the time cell ends (at the `,` or `]` after it).
    time_end: u32,
    /// Whether the time cell is an integer (always, for the nanosecond epochs replicas are asked).
    timed: bool,
}

impl Row {
    /// Reads `[time,...]` (the whole row, brackets included).
    pub fn parse(bytes: Bytes) -> Result<Row, String> {
        let mut scanner = Scanner::new(&bytes);
        scanner.expect(b'[')?;
        scanner.ws();
        let start = scanner.pos;
        scanner.skip_value()?;
        let time_end = scanner.pos;
        let time = std::str::from_utf8(&bytes[start..time_end])
            .ok()
            .and_then(|text| text.parse::<i64>().ok());
        Ok(Row {
            time: time.unwrap_or(i64::MIN),
            timed: time.is_some(),
            time_end: u32::try_from(time_end).map_err(|_| "row too long".to_owned())?,
            bytes,
        })
    }

    /// A row already written as JSON (`[time,...]`), its time cell ending at `time_end`.
    pub fn from_parts(bytes: Bytes, time: i64, time_end: usize, timed: bool) -> Row {
        Row {
            bytes,
            time,
            time_end: u32::try_from(time_end).unwrap_or(u32::MAX),
            timed,
        }
    }

    /// Nanoseconds since the epoch; `i64::MIN` when the time cell is not an integer.
    pub fn time(&self) -> i64 {
        self.time
    }

    /// The time as an integer, when it is one.
    pub fn timed(&self) -> bool {
        self.timed
    }

    /// The time cell as written: empty when the row came as MessagePack with an integer time,
    /// which is kept only as [`Row::time`] (the same digits).
    pub fn time_text(&self) -> &[u8] {
        &self.bytes[1..self.time_end as usize]
    }

    /// Everything after the time cell, before the closing `]`: `,cell,cell` (empty for a row
    /// with only a time).
    pub fn cells(&self) -> &[u8] {
        let end = self
            .bytes
            .len()
            .saturating_sub(1)
            .max(self.time_end as usize);
        &self.bytes[self.time_end as usize..end]
    }

    /// The very same row: the same bytes of the same decoded buffer (not merely equal ones).
    pub fn is_same(&self, other: &Row) -> bool {
        self.time == other.time
            && self.bytes.len() == other.bytes.len()
            && std::ptr::eq(self.bytes.as_ptr(), other.bytes.as_ptr())
    }

    /// The same time with other cells (`,cell,cell`).
    pub fn with_cells(&self, cells: &[u8]) -> Row {
        let mut bytes = Vec::with_capacity(self.time_end as usize + cells.len() + 1);
        bytes.extend_from_slice(&self.bytes[..self.time_end as usize]);
        bytes.extend_from_slice(cells);
        bytes.push(b']');
        Row {
            bytes: Bytes::from(bytes),
            time: self.time,
            time_end: self.time_end,
            timed: self.timed,
        }
    }
}

/// A series' identity and columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SeriesHeader {
    pub name: String,
    pub tags: Option<BTreeMap<String, String>>,
    pub columns: Vec<String>,
}

impl SeriesHeader {
    /// The order of series in a merged answer: by name, then tag set (as the whole-answer merge
    /// orders its `SeriesKey`s, and as InfluxDB emits them).
    pub fn key_cmp(&self, other: &SeriesHeader) -> Ordering {
        self.name
            .cmp(&other.name)
            .then_with(|| self.tags.iter().flatten().cmp(other.tags.iter().flatten()))
    }

    pub fn same_key(&self, other: &SeriesHeader) -> bool {
        self.key_cmp(other) == Ordering::Equal
    }
}

/// A run of one series' rows in one document.
#[derive(Debug, Clone)]
pub struct SeriesPart {
    pub header: Arc<SeriesHeader>,
    pub rows: Vec<Row>,
}

/// One document of an answer to ONE statement (what replicas are asked), its results flattened.
#[derive(Debug, Clone, Default)]
pub struct Chunk {
    pub series: Vec<SeriesPart>,
    pub messages: Vec<Message>,
    /// The statement's or the whole answer's error.
    pub error: Option<String>,
}

impl Chunk {
    pub fn rows(&self) -> usize {
        self.series.iter().map(|s| s.rows.len()).sum()
    }
}

/// Reads one JSON document of a `/query` answer.
pub fn parse_chunk(document: &Bytes) -> Result<Chunk, String> {
    let mut chunk = Chunk::default();
    let mut scanner = Scanner::new(document);
    scanner.object(|s, key| match key {
        "results" => s.array(|s| parse_result(s, document, &mut chunk)),
        "error" => {
            chunk.error = Some(s.string()?);
            Ok(())
        }
        _ => s.skip_value(),
    })?;
    scanner.ws();
    if scanner.pos != document.len() {
        return Err(format!("trailing bytes at {}", scanner.pos));
    }
    Ok(chunk)
}

fn parse_result(s: &mut Scanner<'_>, document: &Bytes, chunk: &mut Chunk) -> Result<(), String> {
    s.object(|s, key| match key {
        "series" => s.array(|s| {
            let part = parse_series(s, document)?;
            chunk.series.push(part);
            Ok(())
        }),
        "messages" => s.array(|s| {
            let mut level = String::new();
            let mut text = String::new();
            s.object(|s, key| match key {
                "level" => {
                    level = s.string()?;
                    Ok(())
                }
                "text" => {
                    text = s.string()?;
                    Ok(())
                }
                _ => s.skip_value(),
            })?;
            chunk.messages.push(Message { level, text });
            Ok(())
        }),
        "error" => {
            chunk.error = Some(s.string()?);
            Ok(())
        }
        _ => s.skip_value(),
    })
}

fn parse_series(s: &mut Scanner<'_>, document: &Bytes) -> Result<SeriesPart, String> {
    let mut header = SeriesHeader::default();
    let mut rows = Vec::new();
    s.object(|s, key| match key {
        "name" => {
            header.name = s.string()?;
            Ok(())
        }
        "tags" => {
            let mut tags = BTreeMap::new();
            s.object(|s, key| {
                let key = key.to_owned();
                tags.insert(key, s.string()?);
                Ok(())
            })?;
            header.tags = Some(tags);
            Ok(())
        }
        "columns" => s.array(|s| {
            header.columns.push(s.string()?);
            Ok(())
        }),
        "values" => s.array(|s| {
            let start = s.pos;
            s.skip_value()?;
            rows.push(Row::parse(document.slice(start..s.pos))?);
            Ok(())
        }),
        _ => s.skip_value(),
    })?;
    Ok(SeriesPart {
        header: Arc::new(header),
        rows,
    })
}

/// Splits `,cell,cell` into the cells' bytes.
pub fn split_cells(cells: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut scanner = Scanner::new(cells);
    let mut out = Vec::new();
    loop {
        scanner.ws();
        if scanner.pos >= cells.len() {
            return Ok(out);
        }
        scanner.expect(b',')?;
        scanner.ws();
        let start = scanner.pos;
        scanner.skip_value()?;
        out.push(&cells[start..scanner.pos]);
    }
}

/// A minimal JSON reader over the shapes InfluxDB writes.
struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Scanner { buf, pos: 0 }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.buf.get(self.pos) {
            self.pos += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.ws();
        if self.buf.get(self.pos) == Some(&byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", byte as char)))
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.buf.get(self.pos).copied()
    }

    /// The span of a string, quotes included.
    fn string_span(&mut self) -> Result<(usize, usize, bool), String> {
        self.expect(b'"')?;
        let start = self.pos - 1;
        let mut escaped = false;
        loop {
            let Some(at) = memchr::memchr2(b'"', b'\\', &self.buf[self.pos..]) else {
                return Err(self.error("unterminated string"));
            };
            self.pos += at;
            if self.buf[self.pos] == b'\\' {
                escaped = true;
                self.pos += 2;
                if self.pos > self.buf.len() {
                    return Err(self.error("unterminated string"));
                }
                continue;
            }
            self.pos += 1;
            return Ok((start, self.pos, escaped));
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let (start, end, escaped) = self.string_span()?;
        if !escaped && let Ok(text) = std::str::from_utf8(&self.buf[start + 1..end - 1]) {
            return Ok(text.to_owned());
        }
        serde_json::from_slice(&self.buf[start..end]).map_err(|e| self.error(&e.to_string()))
    }

    fn skip_value(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b'"') => self.string_span().map(|_| ()),
            Some(b'[' | b'{') => {
                let mut depth = 0usize;
                loop {
                    match self.buf.get(self.pos) {
                        None => return Err(self.error("unterminated value")),
                        Some(b'"') => {
                            self.string_span()?;
                            continue;
                        }
                        Some(b'[' | b'{') => depth += 1,
                        Some(b']' | b'}') => {
                            depth -= 1;
                            if depth == 0 {
                                self.pos += 1;
                                return Ok(());
                            }
                        }
                        Some(_) => {}
                    }
                    self.pos += 1;
                }
            }
            Some(_) => {
                let start = self.pos;
                while let Some(byte) = self.buf.get(self.pos) {
                    if matches!(byte, b',' | b']' | b'}' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.error("expected a value"));
                }
                Ok(())
            }
            None => Err(self.error("expected a value")),
        }
    }

    fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &str) -> Result<(), String>,
    ) -> Result<(), String> {
        self.expect(b'{')?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            field(self, &key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn array(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        self.expect(b'[')?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            item(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_influxdb_documents() {
        let doc = Bytes::from_static(
            br#"{"results":[{"statement_id":0,"series":[{"name":"cpu","tags":{"host":"h\"1"},"columns":["time","v","s"],"values":[[10,1.5,"a,]b"],[20,null,"x\\"]],"partial":true}],"messages":[{"level":"warning","text":"w"}],"partial":true}]}"#,
        );
        let chunk = parse_chunk(&doc).unwrap();
        assert_eq!(chunk.series.len(), 1);
        let part = &chunk.series[0];
        assert_eq!(part.header.name, "cpu");
        assert_eq!(part.header.tags.as_ref().unwrap()["host"], "h\"1");
        assert_eq!(part.header.columns, vec!["time", "v", "s"]);
        assert_eq!(part.rows[0].time(), 10);
        assert_eq!(part.rows[0].cells(), br#",1.5,"a,]b""#);
        assert_eq!(part.rows[1].time(), 20);
        assert_eq!(
            split_cells(part.rows[1].cells()).unwrap(),
            vec![&b"null"[..], &br#""x\\""#[..]]
        );
        assert_eq!(chunk.messages, vec![Message::warning("w")]);
        assert!(chunk.error.is_none());
    }

    #[test]
    fn errors_and_garbage() {
        let doc = Bytes::from_static(br#"{"results":[{"statement_id":0,"error":"boom"}]}"#);
        assert_eq!(parse_chunk(&doc).unwrap().error.as_deref(), Some("boom"));
        let doc = Bytes::from_static(br#"{"error":"bad"}"#);
        assert_eq!(parse_chunk(&doc).unwrap().error.as_deref(), Some("bad"));
        assert!(
            parse_chunk(&Bytes::from_static(
                br#"{"results":[{"series":[{"values":[[1,2]"#
            ))
            .is_err()
        );
        assert!(parse_chunk(&Bytes::from_static(b"{} x")).is_err());
    }
}
