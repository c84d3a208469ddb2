//! Writing one statement's merged rows as InfluxDB 1.x JSON while they are decided: the whole
//! statement object (`{"statement_id":N,"series":[...],"messages":[...]}`, for a one-document
//! answer) or `chunked=true` documents of at most `chunk_size` rows, with InfluxDB's `partial`
//! flags. Field order and omissions are those of `result::StatementResult`'s serialization;
//! cells are InfluxDB's bytes, times converted to the client's epoch. It never holds more than
//! one chunk of rows, and never writes a document whose `partial` flag it does not know yet.

use std::io::Write;
use std::sync::Arc;

use super::chunk::{Row, SeriesHeader};
use super::msgpack::write_int;
use crate::influxql::result::{Message, TimeFormat};
use crate::influxql::time::{format_rfc3339_nanos, scale_epoch};

/// The rows per internal chunk InfluxDB 1.x emits a non-chunked answer in. It joins the chunks
/// into one document but keeps the first piece's `"partial":true`, so a series of more rows
/// than this says `"partial":true` in a whole answer; the merge says it too, to answer the same.
const INFLUXDB_EMIT_ROWS: usize = 10_000;

/// How the statement is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One statement object, inside the caller's `{"results":[...]}`.
    Whole,
    /// Complete `{"results":[...]}\n` documents of at most this many rows.
    Chunked(usize),
}

pub struct StatementWriter {
    out: Vec<u8>,
    statement_id: usize,
    format: TimeFormat,
    layout: Layout,
    messages: Vec<Message>,
    messages_written: usize,
    /// Whole: `{"statement_id":N,"series":[` written.
    series_started: bool,
    /// The open series (whole) or piece (chunked).
    open: Option<Arc<SeriesHeader>>,
    rows_in_piece: usize,
    /// Chunked: the open piece's text.
    piece: Vec<u8>,
    /// Chunked: a finished piece whose document waits to know whether more follows.
    pending: Option<Vec<u8>>,
    documents: usize,
}

impl StatementWriter {
    pub fn new(statement_id: usize, format: TimeFormat, layout: Layout) -> Self {
        StatementWriter {
            out: Vec::with_capacity(64 << 10),
            statement_id,
            format,
            layout,
            messages: Vec::new(),
            messages_written: 0,
            series_started: false,
            open: None,
            rows_in_piece: 0,
            piece: Vec::new(),
            pending: None,
            documents: 0,
        }
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Bytes written so far.
    pub fn buffered(&self) -> usize {
        self.out.len()
    }

    /// Takes what was written so far.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.out, Vec::with_capacity(64 << 10))
    }

    /// Whether anything of the statement went out already (after [`Self::take`]).
    pub fn started(&self) -> bool {
        self.series_started || self.documents > 0 || self.open.is_some()
    }

    pub fn add_message(&mut self, message: Message) {
        if !self.messages.contains(&message) {
            self.messages.push(message);
        }
    }

    pub fn row(&mut self, header: &Arc<SeriesHeader>, row: &Row) {
        match self.layout {
            Layout::Whole => {
                if self.open.is_none() {
                    if self.series_started {
                        self.out.push(b',');
                    } else {
                        let _ = write!(
                            self.out,
                            "{{\"statement_id\":{},\"series\":[",
                            self.statement_id
                        );
                        self.series_started = true;
                    }
                    write_head(&mut self.out, header);
                    self.open = Some(header.clone());
                    self.rows_in_piece = 0;
                } else {
                    self.out.push(b',');
                }
                write_row(&mut self.out, header, row, self.format);
                self.rows_in_piece += 1;
            }
            Layout::Chunked(rows) => {
                if let Some(pending) = self.pending.take() {
                    self.write_document(&pending, true);
                }
                if self.open.is_some() && self.rows_in_piece >= rows.max(1) {
                    // The piece is full and its series goes on.
                    self.piece.extend_from_slice(b"],\"partial\":true}");
                    let piece = std::mem::take(&mut self.piece);
                    self.write_document(&piece, true);
                    self.open = None;
                }
                if self.open.is_none() {
                    self.piece.clear();
                    write_head(&mut self.piece, header);
                    self.open = Some(header.clone());
                    self.rows_in_piece = 0;
                } else {
                    self.piece.push(b',');
                }
                write_row(&mut self.piece, header, row, self.format);
                self.rows_in_piece += 1;
            }
        }
    }

    pub fn close_series(&mut self) {
        if self.open.take().is_none() {
            return;
        }
        match self.layout {
            Layout::Whole if self.rows_in_piece > INFLUXDB_EMIT_ROWS => {
                self.out.extend_from_slice(b"],\"partial\":true}");
            }
            Layout::Whole => self.out.extend_from_slice(b"]}"),
            Layout::Chunked(_) => {
                self.piece.extend_from_slice(b"]}");
                self.pending = Some(std::mem::take(&mut self.piece));
            }
        }
    }

    /// Ends the statement, with an error after what was written (`error`), if any.
    pub fn finish(&mut self, error: Option<&str>) {
        self.close_series();
        match self.layout {
            Layout::Whole => {
                if self.series_started {
                    self.out.push(b']');
                } else {
                    let _ = write!(self.out, "{{\"statement_id\":{}", self.statement_id);
                }
                self.write_messages();
                write_error(&mut self.out, error);
                self.out.push(b'}');
            }
            Layout::Chunked(_) => {
                if let Some(pending) = self.pending.take() {
                    self.write_document(&pending, error.is_some());
                }
                if self.documents == 0
                    || error.is_some()
                    || self.messages_written < self.messages.len()
                {
                    let _ = write!(
                        self.out,
                        "{{\"results\":[{{\"statement_id\":{}",
                        self.statement_id
                    );
                    self.write_messages();
                    write_error(&mut self.out, error);
                    self.out.extend_from_slice(b"}]}\n");
                    self.documents += 1;
                }
            }
        }
    }

    fn write_messages(&mut self) {
        let unwritten = &self.messages[self.messages_written..];
        if !unwritten.is_empty() {
            self.out.extend_from_slice(b",\"messages\":");
            let _ = serde_json::to_writer(&mut self.out, unwritten);
            self.messages_written = self.messages.len();
        }
    }

    fn write_document(&mut self, piece: &[u8], partial: bool) {
        let _ = write!(
            self.out,
            "{{\"results\":[{{\"statement_id\":{},\"series\":[",
            self.statement_id
        );
        self.out.extend_from_slice(piece);
        self.out.push(b']');
        self.write_messages();
        if partial {
            self.out.extend_from_slice(b",\"partial\":true");
        }
        self.out.extend_from_slice(b"}]}\n");
        self.documents += 1;
    }
}

fn write_error(out: &mut Vec<u8>, error: Option<&str>) {
    if let Some(error) = error {
        out.extend_from_slice(b",\"error\":");
        let _ = serde_json::to_writer(&mut *out, error);
    }
}

/// `{"name":...,"tags":...,"columns":[...],"values":[` (name and tags left out when absent).
fn write_head(out: &mut Vec<u8>, header: &SeriesHeader) {
    out.push(b'{');
    if !header.name.is_empty() {
        out.extend_from_slice(b"\"name\":");
        let _ = serde_json::to_writer(&mut *out, &header.name);
        out.push(b',');
    }
    if let Some(tags) = &header.tags {
        out.extend_from_slice(b"\"tags\":");
        let _ = serde_json::to_writer(&mut *out, tags);
        out.push(b',');
    }
    out.extend_from_slice(b"\"columns\":");
    let _ = serde_json::to_writer(&mut *out, &header.columns);
    out.extend_from_slice(b",\"values\":[");
}

fn write_row(out: &mut Vec<u8>, header: &SeriesHeader, row: &Row, format: TimeFormat) {
    out.push(b'[');
    let has_time = header.columns.first().is_some_and(|c| c == "time");
    match format {
        TimeFormat::Epoch(unit) if unit > 1 && has_time && row.timed() => {
            write_int(out, scale_epoch(row.time(), unit));
        }
        TimeFormat::Rfc3339 if has_time && row.timed() => {
            out.push(b'"');
            out.extend_from_slice(format_rfc3339_nanos(row.time()).as_bytes());
            out.push(b'"');
        }
        // An integer first cell may be kept only as a number (see `Row::time_text`).
        _ if row.timed() => write_int(out, row.time()),
        _ => out.extend_from_slice(row.time_text()),
    }
    out.extend_from_slice(row.cells());
    out.push(b']');
}
