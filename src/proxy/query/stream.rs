//! Running a raw `SELECT` merge while the replicas answer: one reader per replica reads its
//! chunked answer and parses each chunk (on the merge's task while the answer is short, on a
//! task of its own, in parallel with the others and with the merge, once it is long: see
//! [`Readers`]; a chunk a sibling replica sent byte for byte alike is parsed once, see `twins`),
//! handing it over through a channel of [`FEED_DEPTH`] chunks; the merge
//! (`influxql::merge::stream`) writes rows as soon as they are decided. A one-statement answer
//! is held until it is complete or [`COMMIT_BYTES`] long: a complete one is sent exactly as
//! before (partial header, row-limit error); a longer one streams from then on, so memory stays
//! at about a chunk per replica plus [`COMMIT_BYTES`] whatever the answer's size.
//!
//! Once streaming, what is learnt later can only go in the body: a group whose every replica
//! fails mid-answer gets the partial warning in the statement's `messages` (the header went out
//! without it), and going over `query.max_rows` ends the series there with the row-limit error in
//! the statement. It must never pass a partial answer off as complete: both are always said.

use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::backend::client::{QueryReply, QueryRequest};
use crate::config::Dialect;
use crate::influxql::ast::Select;
use crate::influxql::merge::Window;
use crate::influxql::merge::chunk::{Chunk, parse_chunk};
use crate::influxql::merge::msgpack::{Framer, parse_msgpack_chunk};
use crate::influxql::merge::stream::{Progress, RawMerge};
use crate::influxql::merge::writer::{Layout, StatementWriter};
use crate::influxql::render::render_select;
use crate::influxql::result::{Message, StatementResult, TimeFormat};
use crate::replication::pipeline::ReadReplica;

use super::answer::{accepts_gzip, json_headers};
use super::fanout::{
    AskContext, ChannelBody, Executor, REPLICA_CHUNK_ROWS, observe, too_many_rows,
};
use super::params::DEFAULT_CHUNK_ROWS;
use super::twins::Twins;

/// What InfluxDB 1.x replicas are asked to answer in: MessagePack, cheaper for InfluxDB to write
/// than JSON (see `influxql::merge::msgpack`); a replica that ignores it answers JSON, read as
/// well; v2 backends are asked for JSON.
const REPLICA_ACCEPT: &str = "application/x-msgpack";
/// Parsed chunks waiting per replica: enough to overlap reading and merging, few enough to
/// bound memory.
const FEED_DEPTH: usize = 2;
/// A one-statement answer up to this size is sent whole (with everything known in its headers).
const COMMIT_BYTES: usize = 1 << 20;
/// Bytes per body frame once streaming.
const FRAME_BYTES: usize = 64 << 10;
/// Rows handed over by all replicas together after which an answer counts as long and its
/// readers move to tasks of their own (about one replica chunk, [`REPLICA_CHUNK_ROWS`]).
const DETACH_ROWS: usize = 1000;

/// What a replica's reader hands over.
enum Event {
    Chunk(Chunk),
    /// The answer ended (an error answer included).
    End,
    /// The replica could not be reached or broke off (transport).
    Failed,
    /// It sent more than `query.max_rows` rows.
    TooManyRows,
}

struct Feed {
    group: String,
    events: mpsc::Receiver<Event>,
    /// Something came from it.
    started: bool,
    ended: bool,
    failed: bool,
    erred: bool,
}

/// A replica's reader, polled by the merge's own task (see [`Readers`]).
type ReaderFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The readers of one merge. They start on the merge's task: a short answer (a trace, a short
/// SELECT) is then read, parsed and merged without a task switch or a cross-thread wake-up,
/// which on such an answer cost more than the work. Once the replicas have handed over
/// [`DETACH_ROWS`] rows the answer is a long one, and every reader moves to a task of its own,
/// to parse in parallel with the others and with the merge. Counted in rows, not chunks: InfluxDB
/// sends a chunk per series, and many one-row series are cheaper parsed on one task.
struct Readers {
    inline: Vec<Option<ReaderFuture>>,
    rows_seen: usize,
}

impl Readers {
    /// Moves the readers still on the merge's task to tasks of their own.
    fn detach(&mut self) {
        for reader in self.inline.drain(..).flatten() {
            tokio::spawn(reader);
        }
    }

    /// Counts the rows of a chunk handed over; detaches once the answer proves long.
    fn saw_rows(&mut self, rows: usize) {
        self.rows_seen += rows;
        if self.rows_seen >= DETACH_ROWS && !self.inline.is_empty() {
            self.detach();
        }
    }

    /// The next event of `events`, driving the inline readers meanwhile.
    async fn next_event(&mut self, events: &mut mpsc::Receiver<Event>) -> Option<Event> {
        std::future::poll_fn(|cx| {
            for slot in self.inline.iter_mut() {
                if let Some(reader) = slot
                    && reader.as_mut().poll(cx).is_ready()
                {
                    *slot = None;
                }
            }
            events.poll_recv(cx)
        })
        .await
    }
}

/// One raw statement's merge, from the first chunk to the last byte.
pub(super) struct RawRun {
    feeds: Vec<Feed>,
    readers: Readers,
    groups: Vec<String>,
    merge: RawMerge,
    writer: StatementWriter,
    max_rows: u64,
    errors: Vec<String>,
    too_many_rows: bool,
    warned: Vec<String>,
    done: bool,
}

/// How far [`RawRun::advance`] got.
#[derive(PartialEq, Eq)]
enum Stage {
    /// At least this many bytes are waiting to be sent.
    Buffered,
    Complete,
}

impl Executor<'_> {
    /// Starts a reader for every reachable replica of every group (every replica of a group
    /// none of which is known up).
    pub(super) fn start_raw(
        &self,
        select: &Select,
        window: Window,
        groups: &[String],
        statement_id: usize,
        format: TimeFormat,
        layout: Layout,
    ) -> RawRun {
        let mut feeds = Vec::new();
        let mut inline: Vec<Option<ReaderFuture>> = Vec::new();
        for group in groups {
            let replicas = self.union_replicas(group);
            let twins = (replicas.len() > 1).then(|| Arc::new(Twins::new(replicas.len())));
            for replica in replicas {
                let statement = {
                    let map_db = |db: &str| replica.config.backend_database(db).to_owned();
                    render_select(select, &map_db)
                };
                let (sender, events) = mpsc::channel(FEED_DEPTH);
                let reader = Reader {
                    context: self.ask_context(&replica, group),
                    statement,
                    twins: twins.clone(),
                };
                inline.push(Some(Box::pin(reader.run(replica, sender))));
                feeds.push(Feed {
                    group: group.clone(),
                    events,
                    started: false,
                    ended: false,
                    failed: false,
                    erred: false,
                });
            }
        }
        RawRun {
            merge: RawMerge::new(feeds.len(), window).with_row_cap(self.max_rows),
            feeds,
            readers: Readers {
                inline,
                rows_seen: 0,
            },
            groups: groups.to_vec(),
            writer: StatementWriter::new(statement_id, format, layout),
            max_rows: self.max_rows,
            errors: Vec::new(),
            too_many_rows: false,
            warned: Vec::new(),
            done: false,
        }
    }

    /// A raw statement merged into a result (several statements, `pretty`): the merge writes
    /// nanosecond times, converted afterwards like every other result.
    pub(super) async fn execute_raw(
        &self,
        select: &Select,
        window: Window,
        groups: &[String],
    ) -> StatementResult {
        let mut run = self.start_raw(
            select,
            window,
            groups,
            0,
            TimeFormat::Epoch(1),
            Layout::Whole,
        );
        let (bytes, partial) = run.complete().await;
        match serde_json::from_slice::<StatementResult>(&bytes) {
            Ok(mut result) => {
                result.partial = partial;
                result
            }
            Err(error) => {
                StatementResult::error(0, format!("cannot read the merged answer: {error}"))
            }
        }
    }

    /// A one-statement raw merge as the response: whole when it is short, streamed otherwise.
    pub(super) async fn respond_raw(
        &self,
        select: &Select,
        window: Window,
        groups: &[String],
        request_headers: &HeaderMap,
    ) -> Response {
        let format = TimeFormat::from_epoch(self.params.epoch.as_deref());
        let layout = if self.params.chunked {
            Layout::Chunked(self.params.chunk_size.unwrap_or(DEFAULT_CHUNK_ROWS))
        } else {
            Layout::Whole
        };
        let mut run = self.start_raw(select, window, groups, 0, format, layout);
        let gzip = accepts_gzip(request_headers);
        let metrics = &self.state.metrics.query;
        if run.advance(COMMIT_BYTES).await == Stage::Complete {
            let (statement, partial) = run.finish_whole();
            metrics.count_statement("select_raw", run.outcome(partial));
            if partial {
                metrics.partial_answers.inc();
            }
            let body = wrap(layout, statement);
            return super::answer::respond_bytes(body, partial, gzip, self.rid);
        }
        // Streaming from here: the header says what is known now.
        let partial = !run.unreachable().is_empty();
        metrics.count_statement("select_raw", if partial { "partial" } else { "ok" });
        if partial {
            metrics.partial_answers.inc();
        }
        let (sender, receiver) = mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        let first = run.writer.take();
        let rid = self.rid.to_owned();
        tokio::spawn(async move {
            let mut frames = Frames::new(gzip);
            if layout == Layout::Whole {
                frames.push(b"{\"results\":[");
            }
            frames.push(&first);
            drop(first);
            loop {
                if frames.ready() && !frames.send(&sender).await {
                    // The client left: dropping the run closes the replica connections.
                    return;
                }
                if run.done {
                    break;
                }
                run.advance(FRAME_BYTES).await;
                let bytes = run.writer.take();
                frames.push(&bytes);
            }
            run.finish_streamed();
            let rest = run.writer.take();
            frames.push(&rest);
            if layout == Layout::Whole {
                frames.push(b"]}\n");
            }
            if run.too_many_rows || (!partial && !run.unreachable().is_empty()) {
                tracing::info!(request_id = %rid, too_many_rows = run.too_many_rows, unreachable = ?run.unreachable(), "a streamed raw answer ended short; said in its body");
            }
            frames.finish(&sender).await;
        });
        let mut headers = json_headers(self.rid, partial);
        if gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        (StatusCode::OK, headers, Body::new(ChannelBody(receiver))).into_response()
    }
}

/// `{"results":[statement]}\n` around a whole statement; chunked documents are complete.
fn wrap(layout: Layout, statement: Vec<u8>) -> Vec<u8> {
    match layout {
        Layout::Chunked(_) => statement,
        Layout::Whole => {
            let mut body = Vec::with_capacity(statement.len() + 16);
            body.extend_from_slice(b"{\"results\":[");
            body.extend_from_slice(&statement);
            body.extend_from_slice(b"]}\n");
            body
        }
    }
}

impl RawRun {
    /// Groups none of whose replicas answered (so far).
    fn unreachable(&self) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| !self.feeds.iter().any(|f| &f.group == *g && !f.failed))
            .cloned()
            .collect()
    }

    fn outcome(&self, partial: bool) -> &'static str {
        if self.too_many_rows
            || (!self.writer.started() && self.succeeded() == 0 && !self.errors.is_empty())
        {
            "error"
        } else if partial {
            "partial"
        } else {
            "ok"
        }
    }

    fn succeeded(&self) -> usize {
        self.feeds.iter().filter(|f| f.ended && !f.erred).count()
    }

    fn warn_unreachable(&mut self) {
        let missing: Vec<String> = self
            .unreachable()
            .into_iter()
            .filter(|g| !self.warned.contains(g))
            .collect();
        if missing.is_empty() {
            return;
        }
        self.writer.add_message(Message::warning(format!(
            "partial answer: no replica of shard group(s) {} could be reached; their data is missing",
            missing.join(", ")
        )));
        self.warned.extend(missing);
    }

    /// Reads and merges until the writer holds `bytes` or the merge is complete.
    async fn advance(&mut self, bytes: usize) -> Stage {
        while !self.done {
            if self.writer.buffered() >= bytes {
                return Stage::Buffered;
            }
            if matches!(self.layout(), Layout::Chunked(_))
                && !self.writer.started()
                && self.feeds.iter().all(|f| f.started)
            {
                // Known before the first row: the warning goes in the first document, with the
                // replicas' messages, as the whole-answer path puts it.
                self.warn_unreachable();
            }
            let progress = self.merge.drain(&mut self.writer);
            if self.merge.over_cap() {
                self.too_many_rows = true;
                self.done = true;
                break;
            }
            let replica = match progress {
                Ok(Progress::Need(replica)) => replica,
                Ok(Progress::Done) => {
                    self.done = true;
                    break;
                }
                Err(error) => {
                    self.errors
                        .push(format!("unreadable answer from a replica: {error}"));
                    self.done = true;
                    break;
                }
            };
            let Some(feed) = self.feeds.get_mut(replica) else {
                self.done = true;
                break;
            };
            let event = self.readers.next_event(&mut feed.events).await;
            feed.started = true;
            match event {
                Some(Event::Chunk(mut chunk)) => {
                    self.readers.saw_rows(chunk.rows());
                    for message in std::mem::take(&mut chunk.messages) {
                        self.writer.add_message(message);
                    }
                    if let Some(error) = chunk.error.take() {
                        feed.erred = true;
                        self.errors.push(error);
                    }
                    self.merge.push(replica, chunk);
                }
                Some(Event::End) => {
                    feed.ended = true;
                    self.merge.finish(replica);
                }
                Some(Event::Failed) | None => {
                    feed.failed = true;
                    self.merge.finish(replica);
                }
                Some(Event::TooManyRows) => {
                    feed.ended = true;
                    self.too_many_rows = true;
                    self.done = true;
                }
            }
        }
        Stage::Complete
    }

    /// Runs to the end and returns the statement (`Layout::Whole`) and whether it is partial.
    async fn complete(&mut self) -> (Vec<u8>, bool) {
        self.advance(usize::MAX).await;
        self.finish_whole()
    }

    /// The whole statement once the merge is complete and nothing was sent: exactly what the
    /// whole-answer path answered (an error alone, without rows or messages, when it failed).
    fn finish_whole(&mut self) -> (Vec<u8>, bool) {
        let error = if self.too_many_rows {
            Some(too_many_rows(self.max_rows))
        } else if self.merge.written() == 0 && self.succeeded() == 0 {
            self.errors.first().cloned()
        } else {
            None
        };
        if let Some(error) = error {
            let mut writer = StatementWriter::new(0, TimeFormat::Epoch(1), self.layout());
            writer.finish(Some(&error));
            return (writer.take(), false);
        }
        self.warn_unreachable();
        self.writer.finish(None);
        let partial = !self.warned.is_empty();
        let mut bytes = self.writer.take();
        bytes.shrink_to_fit();
        (bytes, partial)
    }

    /// Ends a streamed statement, saying in it what went wrong after the headers.
    fn finish_streamed(&mut self) {
        self.warn_unreachable();
        let error = if self.too_many_rows {
            Some(too_many_rows(self.max_rows))
        } else {
            None
        };
        self.writer.finish(error.as_deref());
    }

    fn layout(&self) -> Layout {
        self.writer.layout()
    }
}

/// Body frames, gzip-compressed when the client accepts it.
struct Frames {
    pending: Vec<u8>,
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
}

impl Frames {
    fn new(gzip: bool) -> Self {
        Frames {
            pending: Vec::new(),
            gzip: gzip
                .then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())),
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        match &mut self.gzip {
            Some(encoder) => {
                let _ = encoder.write_all(bytes);
            }
            None => self.pending.extend_from_slice(bytes),
        }
    }

    fn ready(&self) -> bool {
        match &self.gzip {
            Some(encoder) => !encoder.get_ref().is_empty(),
            None => self.pending.len() >= FRAME_BYTES,
        }
    }

    async fn send(&mut self, sender: &mpsc::Sender<Result<bytes::Bytes, std::io::Error>>) -> bool {
        let frame = match &mut self.gzip {
            Some(encoder) => std::mem::take(encoder.get_mut()),
            None => std::mem::take(&mut self.pending),
        };
        frame.is_empty() || sender.send(Ok(bytes::Bytes::from(frame))).await.is_ok()
    }

    async fn finish(mut self, sender: &mpsc::Sender<Result<bytes::Bytes, std::io::Error>>) {
        let last = match self.gzip.take() {
            Some(encoder) => encoder.finish().unwrap_or_default(),
            None => std::mem::take(&mut self.pending),
        };
        if !last.is_empty() {
            let _ = sender.send(Ok(bytes::Bytes::from(last))).await;
        }
    }
}

/// One document of a replica's answer, JSON or MessagePack (told apart by its first byte: a
/// JSON answer starts with `{`, a MessagePack one with a map marker).
fn read_document(document: &bytes::Bytes) -> Result<Chunk, String> {
    if document.first() == Some(&b'{') {
        parse_chunk(document)
    } else {
        parse_msgpack_chunk(document)
    }
}

/// Cuts a chunked answer into its documents as its bytes arrive: lines for JSON, whole objects
/// for MessagePack.
#[derive(Default)]
struct Documents {
    buffer: bytes::BytesMut,
    /// How far the buffer was searched for a newline (JSON).
    searched: usize,
    framer: Framer,
    /// The answer's bytes all arrived.
    ended: bool,
}

impl Documents {
    fn next(&mut self) -> Result<Option<Result<bytes::Bytes, String>>, String> {
        let blank = self
            .buffer
            .iter()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
        if blank > 0 && self.searched == 0 {
            let _ = self.buffer.split_to(blank);
        }
        let Some(&first) = self.buffer.first() else {
            return Ok(None);
        };
        if first == b'{' {
            if let Some(at) = memchr::memchr(b'\n', &self.buffer[self.searched..]) {
                let line = self.buffer.split_to(self.searched + at + 1).freeze();
                self.searched = 0;
                return Ok(Some(Ok(line.slice(..line.len() - 1))));
            }
            self.searched = self.buffer.len();
            if self.ended {
                self.searched = 0;
                return Ok(Some(Ok(self.buffer.split().freeze())));
            }
            return Ok(None);
        }
        match self.framer.advance(&self.buffer)? {
            Some(len) => Ok(Some(Ok(self.buffer.split_to(len).freeze()))),
            None if self.ended => Err("the MessagePack answer ends inside an object".to_owned()),
            None => Ok(None),
        }
    }
}

/// One replica's answer, read chunk by chunk.
struct Reader {
    context: AskContext,
    statement: String,
    /// Shared with the other replicas of its group, when there are others.
    twins: Option<Arc<Twins>>,
}

impl Reader {
    async fn run(self, replica: ReadReplica, events: mpsc::Sender<Event>) {
        let started = Instant::now();
        let ok = self.read(&replica, &events).await;
        observe(
            &self.context.metrics,
            &self.context.group,
            &replica.id,
            started,
            ok,
        );
        if !ok {
            let _ = events.send(Event::Failed).await;
        }
    }

    /// `false` when the replica could not be reached or broke off.
    async fn read(&self, replica: &ReadReplica, events: &mpsc::Sender<Event>) -> bool {
        let request = QueryRequest {
            statement: &self.statement,
            database: self.context.database.as_deref(),
            retention_policy: self.context.retention_policy.as_deref(),
            epoch: Some("ns"),
            params: self.context.params.as_deref(),
            chunk_size: Some(REPLICA_CHUNK_ROWS),
            // InfluxDB 1.x is known to answer it (1.4+); a v2 backend's compatibility API gets
            // the JSON it certainly serves.
            accept: (replica.client.endpoint().dialect == Dialect::V1).then_some(REPLICA_ACCEPT),
        };
        let reply = match replica
            .client
            .query_lines(&request, &self.context.rid)
            .await
        {
            Ok(reply) => reply,
            Err(error) => {
                tracing::info!(group = %self.context.group, replica = %replica.id, %error, request_id = %self.context.rid, "replica did not answer a query");
                return false;
            }
        };
        let mut lines = match reply {
            QueryReply::Answer(answer) => {
                let chunk = read_document(&answer.body).unwrap_or_else(|error| Chunk {
                    error: Some(format!(
                        "unreadable answer from replica {}: {error}",
                        replica.id
                    )),
                    ..Chunk::default()
                });
                let _ = events.send(Event::Chunk(chunk)).await;
                let _ = events.send(Event::End).await;
                return true;
            }
            QueryReply::Lines(lines) => lines,
        };
        let mut documents = Documents::default();
        let mut rows: u64 = 0;
        let mut position: u64 = 0;
        loop {
            let document = match documents.next() {
                Ok(Some(document)) => Some(document),
                Ok(None) if documents.ended => break,
                Ok(None) => None,
                Err(error) => Some(Err(error)),
            };
            let Some(document) = document else {
                match lines.next_chunk().await {
                    Ok(Some(bytes)) => documents.buffer.extend_from_slice(&bytes),
                    Ok(None) => documents.ended = true,
                    Err(error) => {
                        tracing::info!(group = %self.context.group, replica = %replica.id, %error, request_id = %self.context.rid, "replica answer cut off");
                        return false;
                    }
                }
                continue;
            };
            let parsed = match document {
                Ok(document) => self.parse(position, &document).await,
                Err(error) => Err(error),
            };
            position += 1;
            let chunk = match parsed {
                Ok(chunk) => chunk,
                Err(error) => Chunk {
                    error: Some(format!(
                        "unreadable answer from replica {}: {error}",
                        replica.id
                    )),
                    ..Chunk::default()
                },
            };
            rows += chunk.rows() as u64;
            let last = chunk.error.is_some();
            if events.send(Event::Chunk(chunk)).await.is_err() {
                // The merge is over (the client left, or the row limit): stop reading.
                return true;
            }
            if rows > self.context.max_rows {
                let _ = events.send(Event::TooManyRows).await;
                return true;
            }
            if last {
                break;
            }
        }
        let _ = events.send(Event::End).await;
        true
    }

    /// The document at `position` of the answer, parsed once for every sibling replica that
    /// sent the same bytes there (the first one to get to it parses, the others wait for it).
    async fn parse(&self, position: u64, document: &bytes::Bytes) -> Result<Chunk, String> {
        let counters = &self.context.metrics.query;
        let Some(cell) = self.twins.as_ref().and_then(|t| t.cell(position, document)) else {
            counters.raw_chunks_parsed.inc();
            return read_document(document);
        };
        let parsed_here = std::sync::atomic::AtomicBool::new(false);
        cell.get_or_try_init(|| async {
            parsed_here.store(true, std::sync::atomic::Ordering::Relaxed);
            read_document(document)
        })
        .await?;
        if parsed_here.load(std::sync::atomic::Ordering::Relaxed) {
            counters.raw_chunks_parsed.inc();
        } else {
            counters.raw_chunks_shared.inc();
        }
        // The last reader to hold the cell (the others and `Twins` let go of it) takes the
        // chunk itself; the others copy it (rows are shared bytes, the copy is their list).
        let chunk = match Arc::try_unwrap(cell) {
            Ok(cell) => cell.into_inner(),
            Err(cell) => cell.get().cloned(),
        };
        chunk.ok_or_else(|| "a shared chunk was not filled".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reader that hands over `chunks` empty chunks, then the end.
    fn reader_of(events: mpsc::Sender<Event>, chunks: usize) -> ReaderFuture {
        Box::pin(async move {
            for _ in 0..chunks {
                if events.send(Event::Chunk(Chunk::default())).await.is_err() {
                    return;
                }
            }
            let _ = events.send(Event::End).await;
        })
    }

    #[tokio::test]
    async fn readers_run_on_the_merge_task_until_an_answer_proves_long() {
        let (long_sender, mut long) = mpsc::channel(FEED_DEPTH);
        let (short_sender, mut short) = mpsc::channel(FEED_DEPTH);
        let mut readers = Readers {
            inline: vec![
                Some(reader_of(long_sender, 4)),
                Some(reader_of(short_sender, 1)),
            ],
            rows_seen: 0,
        };
        let inline = |readers: &Readers| readers.inline.iter().flatten().count();
        // Waiting for one replica drives the other too: both are polled by this task alone.
        assert!(matches!(
            readers.next_event(&mut short).await,
            Some(Event::Chunk(_))
        ));
        readers.saw_rows(10);
        assert!(matches!(
            readers.next_event(&mut short).await,
            Some(Event::End)
        ));
        // Many short chunks (a chunk per series) keep it on this task.
        assert!(matches!(
            readers.next_event(&mut long).await,
            Some(Event::Chunk(_))
        ));
        readers.saw_rows(DETACH_ROWS - 11);
        assert_eq!(
            inline(&readers),
            1,
            "the short reader finished, the long one waits"
        );
        // The rows that make the answer long: the reader moves to a task of its own.
        assert!(matches!(
            readers.next_event(&mut long).await,
            Some(Event::Chunk(_))
        ));
        readers.saw_rows(1);
        assert_eq!(inline(&readers), 0);
        // Nobody drives it here any more, and its answer still comes to the end.
        let rest = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            let mut events = Vec::new();
            while let Some(event) = long.recv().await {
                events.push(matches!(event, Event::Chunk(_)));
            }
            events
        })
        .await
        .expect("a detached reader runs on its own task");
        assert_eq!(rest, [true, true, false]);
    }

    /// Every document of `stream` when its bytes arrive cut at `cuts`.
    fn cut_into_documents(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        bounds.extend([0, stream.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        let mut documents = Documents::default();
        let mut out = Vec::new();
        for pair in bounds.windows(2) {
            documents
                .buffer
                .extend_from_slice(&stream[pair[0]..pair[1]]);
            while let Some(document) = documents.next().unwrap() {
                out.push(document.unwrap().to_vec());
            }
        }
        documents.ended = true;
        while let Some(document) = documents.next().unwrap() {
            out.push(document.unwrap().to_vec());
        }
        out
    }

    /// `{"results":[{"statement_id":N}]}` as MessagePack.
    fn msgpack_document(n: u8, padding: usize) -> Vec<u8> {
        let mut doc = vec![0x82, 0xa7];
        doc.extend_from_slice(b"results");
        doc.extend_from_slice(&[0x91, 0x81, 0xac]);
        doc.extend_from_slice(b"statement_id");
        doc.push(n & 0x7f);
        doc.push(0xa3);
        doc.extend_from_slice(b"pad");
        doc.push(0xd9);
        doc.push(padding as u8);
        doc.extend(std::iter::repeat_n(b'\n', padding));
        doc
    }

    proptest! {
        /// However the bytes of a chunked answer arrive, the same documents come out.
        #[test]
        fn documents_do_not_depend_on_how_bytes_arrive(
            sizes in proptest::collection::vec(0usize..200, 1..6),
            cuts in proptest::collection::vec(0usize..2000, 0..12),
        ) {
            let json: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{{\"results\":[{{\"statement_id\":{i},\"x\":\"{}\"}}]}}", "y".repeat(*n)).into_bytes())
                .collect();
            let mut stream = json.join(&b'\n');
            stream.push(b'\n');
            prop_assert_eq!(cut_into_documents(&stream, &cuts), json.clone());
            // The last document without its newline still comes out.
            stream.pop();
            prop_assert_eq!(cut_into_documents(&stream, &cuts), json);
            let msgpack: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| msgpack_document(i as u8, *n))
                .collect();
            let stream = msgpack.concat();
            prop_assert_eq!(cut_into_documents(&stream, &cuts), msgpack);
        }
    }
}
