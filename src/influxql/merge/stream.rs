//! The raw `SELECT` merge as a stream: a k-way merge driven straight from the replicas' chunked
//! answers (`chunk::Chunk`s pushed as they arrive), rows deduplicated by time and written out
//! (InfluxDB's JSON, `writer::StatementWriter`) as soon as every replica's next row is known.
//! It holds at most what the replicas sent and it has not decided yet (about one chunk per
//! replica), never a whole answer. Rows keep InfluxDB's own bytes; only times are rewritten.
//!
//! Order and dedup: series by name then tags, inside a series rows by time (both descending for
//! `ORDER BY time DESC`, as InfluxDB orders them). At one time, the
//! replica with the most rows at that time is taken as is, then rows the others have and it
//! lacks are added (multiset: two equal rows of different underlying series are both kept when
//! one replica has both). It never drops a row one replica has and the others lack.

use std::collections::VecDeque;
use std::sync::Arc;

use super::chunk::{Chunk, Row, SeriesHeader, split_cells};
use super::raw::Window;
use super::writer::StatementWriter;

/// What the merge needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The next chunk (or the end) of this replica.
    Need(usize),
    /// Everything decided and written.
    Done,
}

struct Segment {
    header: Arc<SeriesHeader>,
    rows: VecDeque<Row>,
}

#[derive(Default)]
struct Source {
    segments: VecDeque<Segment>,
    finished: bool,
}

impl Source {
    /// Drops exhausted segments; `false` when more must be read before the head is known.
    fn settle(&mut self) -> bool {
        while let Some(head) = self.segments.front() {
            if !head.rows.is_empty() {
                return true;
            }
            if self.segments.len() == 1 && !self.finished {
                return false;
            }
            self.segments.pop_front();
        }
        self.finished
    }

    fn head(&self) -> Option<&Segment> {
        self.segments.front()
    }
}

/// The series being merged.
struct Current {
    header: Arc<SeriesHeader>,
    /// Merged rows so far (before OFFSET).
    rows: u64,
    /// Skipped by SOFFSET.
    skipped: bool,
}

/// One statement's raw merge over `replicas` answers.
pub struct RawMerge {
    sources: Vec<Source>,
    window: Window,
    current: Option<Current>,
    /// Series opened so far (SOFFSET/SLIMIT count them).
    series_seen: u64,
    /// Rows written to the writer.
    written: u64,
    runs: Vec<(usize, usize)>,
    taken: Vec<Row>,
    matched: Vec<bool>,
    /// Most rows written; one more ends the merge (`over_cap`).
    cap: u64,
    over_cap: bool,
}

impl RawMerge {
    pub fn new(replicas: usize, window: Window) -> Self {
        RawMerge {
            sources: (0..replicas).map(|_| Source::default()).collect(),
            window,
            current: None,
            series_seen: 0,
            written: 0,
            runs: Vec::new(),
            taken: Vec::new(),
            matched: Vec::new(),
            cap: u64::MAX,
            over_cap: false,
        }
    }

    /// Writes at most `cap` rows: the merge ends when one more would be written.
    pub fn with_row_cap(mut self, cap: u64) -> Self {
        self.cap = cap;
        self
    }

    /// Whether the merge ended because more than the cap would have been written.
    pub fn over_cap(&self) -> bool {
        self.over_cap
    }

    /// Rows written so far (after the window).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// A replica's next chunk (its series parts; messages and errors are the caller's).
    pub fn push(&mut self, replica: usize, chunk: Chunk) {
        let Some(source) = self.sources.get_mut(replica) else {
            return;
        };
        for part in chunk.series {
            if part.rows.is_empty() {
                continue;
            }
            if let Some(last) = source.segments.back_mut()
                && (Arc::ptr_eq(&last.header, &part.header) || *last.header == *part.header)
            {
                last.rows.extend(part.rows);
                continue;
            }
            source.segments.push_back(Segment {
                header: part.header,
                rows: part.rows.into(),
            });
        }
    }

    /// A replica's answer ended (completely or not: what it sent is merged either way).
    pub fn finish(&mut self, replica: usize) {
        if let Some(source) = self.sources.get_mut(replica) {
            source.finished = true;
        }
    }

    fn before(&self, a: i64, b: i64) -> bool {
        if self.window.descending { a > b } else { a < b }
    }

    /// Merges and writes what can be decided with the rows received so far.
    pub fn drain(&mut self, out: &mut StatementWriter) -> Result<Progress, String> {
        loop {
            if self.over_cap {
                return Ok(Progress::Done);
            }
            for (i, source) in self.sources.iter_mut().enumerate() {
                if !source.settle() {
                    return Ok(Progress::Need(i));
                }
            }
            let Some(current) = &self.current else {
                if !self.open_next(out) {
                    return Ok(Progress::Done);
                }
                continue;
            };
            let header = current.header.clone();
            if self.sources.len() > 1
                && let Some(row) = self.take_shared_row(&header)
            {
                self.emit(out, &header, &row);
                continue;
            }
            // The earliest next time among the replicas now at this series.
            let mut best: Option<i64> = None;
            for source in &self.sources {
                if let Some(head) = source.head()
                    && (Arc::ptr_eq(&head.header, &header) || head.header.same_key(&header))
                    && let Some(row) = head.rows.front()
                    && best.is_none_or(|t| self.before(row.time(), t))
                {
                    best = Some(row.time());
                }
            }
            let Some(time) = best else {
                self.close(out);
                continue;
            };
            // Each contributor's rows at that time; a run that may go on in a chunk not yet
            // received must be read first.
            // Buffers reused from row to row (this runs once per merged row).
            let mut runs = std::mem::take(&mut self.runs);
            let mut taken = std::mem::take(&mut self.taken);
            let mut matched = std::mem::take(&mut self.matched);
            runs.clear();
            for (i, source) in self.sources.iter().enumerate() {
                let Some(head) = source.head() else { continue };
                if !Arc::ptr_eq(&head.header, &header) && !head.header.same_key(&header) {
                    continue;
                }
                let run = head.rows.iter().take_while(|r| r.time() == time).count();
                if run == 0 {
                    continue;
                }
                if run == head.rows.len() && source.segments.len() == 1 && !source.finished {
                    self.runs = runs;
                    self.taken = taken;
                    self.matched = matched;
                    return Ok(Progress::Need(i));
                }
                runs.push((i, run));
            }
            // The longest run first (the first replica on ties), as it is.
            if runs.len() > 1 {
                runs.sort_by_key(|&(i, run)| (std::cmp::Reverse(run), i));
            }
            taken.clear();
            for (k, &(i, run)) in runs.iter().enumerate() {
                let Some(head) = self.sources[i].segments.front_mut() else {
                    continue;
                };
                let remap =
                    !Arc::ptr_eq(&head.header, &header) && head.header.columns != header.columns;
                let first_new = taken.len();
                matched.clear();
                matched.resize(first_new, false);
                for row in head.rows.drain(..run) {
                    let row = if remap {
                        remap_row(&row, &head.header.columns, &header.columns)?
                    } else {
                        row
                    };
                    if k == 0 {
                        taken.push(row);
                        continue;
                    }
                    // Multiset difference: each row already taken matches one of these.
                    let twin =
                        (0..first_new).find(|&j| !matched[j] && taken[j].cells() == row.cells());
                    match twin {
                        Some(j) => matched[j] = true,
                        None => taken.push(row),
                    }
                }
            }
            self.runs = runs;
            self.matched = matched;
            for row in taken.drain(..) {
                self.emit(out, &header, &row);
            }
            self.taken = taken;
        }
    }

    /// The next row when it is the very same row (one decoded buffer) at the head of every
    /// replica, as when in-sync replicas sent a chunk alike and it was decoded once: it is the
    /// union by itself, taken off every replica without comparing runs. `None` otherwise (the
    /// general merge decides).
    fn take_shared_row(&mut self, header: &Arc<SeriesHeader>) -> Option<Row> {
        let mut first: Option<&Row> = None;
        for source in &self.sources {
            let head = source.head()?;
            let aligned = Arc::ptr_eq(&head.header, header)
                || (head.header.same_key(header) && head.header.columns == header.columns);
            if !aligned {
                return None;
            }
            let row = head.rows.front()?;
            match first {
                None => first = Some(row),
                Some(first) if first.is_same(row) => {}
                Some(_) => return None,
            }
        }
        let mut taken = None;
        for source in &mut self.sources {
            taken = source.segments.front_mut()?.rows.pop_front();
        }
        taken
    }

    /// Opens the first series (in the answer's order) among the replicas' heads; `false` when
    /// there is none.
    fn open_next(&mut self, out: &mut StatementWriter) -> bool {
        // InfluxDB orders series by name and tags, descending with ORDER BY time DESC.
        let descending = self.window.descending;
        let mut smallest: Option<&Arc<SeriesHeader>> = None;
        for source in &self.sources {
            if let Some(head) = source.head()
                && smallest.is_none_or(|s| {
                    let order = head.header.key_cmp(s);
                    if descending {
                        order.is_gt()
                    } else {
                        order.is_lt()
                    }
                })
            {
                smallest = Some(&head.header);
            }
        }
        let Some(smallest) = smallest.cloned() else {
            return false;
        };
        let contributors: Vec<&Arc<SeriesHeader>> = self
            .sources
            .iter()
            .filter_map(|s| s.head().map(|h| &h.header))
            .filter(|h| h.same_key(&smallest))
            .collect();
        let header = if contributors.iter().all(|h| h.columns == smallest.columns) {
            smallest
        } else {
            Arc::new(SeriesHeader {
                columns: unified_columns(&contributors),
                ..(*smallest).clone()
            })
        };
        self.series_seen += 1;
        let skipped = self.series_seen <= self.window.soffset.unwrap_or(0);
        if let Some(slimit) = self.window.slimit
            && self.series_seen > self.window.soffset.unwrap_or(0).saturating_add(slimit)
        {
            // SLIMIT reached: nothing after this is written.
            for source in &mut self.sources {
                source.segments.clear();
                source.finished = true;
            }
            return false;
        }
        let _ = out;
        self.current = Some(Current {
            header,
            rows: 0,
            skipped,
        });
        true
    }

    fn close(&mut self, out: &mut StatementWriter) {
        if self.current.take().is_some() {
            out.close_series();
        }
    }

    fn emit(&mut self, out: &mut StatementWriter, header: &Arc<SeriesHeader>, row: &Row) {
        let Some(current) = &mut self.current else {
            return;
        };
        let n = current.rows;
        current.rows += 1;
        if current.skipped {
            return;
        }
        let offset = self.window.offset.unwrap_or(0);
        if n < offset {
            return;
        }
        if let Some(limit) = self.window.limit
            && n - offset >= limit
        {
            return;
        }
        if self.written >= self.cap {
            self.over_cap = true;
            return;
        }
        self.written += 1;
        out.row(header, row);
    }
}

/// `time` first, then the union of the other columns sorted, as InfluxDB orders wildcard
/// columns (a replica that lacks a field answers `SELECT *` without its column).
fn unified_columns(headers: &[&Arc<SeriesHeader>]) -> Vec<String> {
    let mut others: Vec<String> = headers
        .iter()
        .flat_map(|h| h.columns.iter().skip(1).cloned())
        .collect();
    others.sort();
    others.dedup();
    let mut columns = vec!["time".to_owned()];
    columns.extend(others);
    columns
}

fn remap_row(row: &Row, from: &[String], to: &[String]) -> Result<Row, String> {
    let cells = split_cells(row.cells())?;
    let mut out = Vec::with_capacity(row.cells().len() + 8 * to.len());
    for column in to.iter().skip(1) {
        out.push(b',');
        let at = from.iter().skip(1).position(|c| c == column);
        match at.and_then(|i| cells.get(i)) {
            Some(cell) => out.extend_from_slice(cell),
            None => out.extend_from_slice(b"null"),
        }
    }
    Ok(row.with_cells(&out))
}

#[cfg(test)]
mod tests {
    use super::super::raw::{answer_document, merge_chunks_to_json};
    use super::*;
    use crate::influxql::merge::writer::Layout;
    use crate::influxql::result::{Series, StatementResult, TimeFormat};
    use bytes::Bytes;
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    /// A replica's answer cut into documents after the given row counts (as a chunked answer).
    fn documents(series: &[Series], cuts: &[usize]) -> Vec<Bytes> {
        let rows: Vec<(usize, &Vec<Value>)> = series
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.values.iter().map(move |r| (i, r)))
            .collect();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (rows.len() + 1)).collect();
        bounds.push(0);
        bounds.push(rows.len());
        bounds.sort_unstable();
        bounds.dedup();
        let mut out = Vec::new();
        for pair in bounds.windows(2) {
            let mut parts: Vec<Series> = Vec::new();
            for (i, row) in &rows[pair[0]..pair[1]] {
                match parts.last_mut() {
                    Some(last) if last.name == series[*i].name && last.tags == series[*i].tags => {
                        last.values.push((*row).clone())
                    }
                    _ => parts.push(Series {
                        values: vec![(*row).clone()],
                        ..series[*i].clone()
                    }),
                }
            }
            out.push(answer_document(&StatementResult {
                series: parts,
                ..StatementResult::default()
            }));
        }
        if out.is_empty() {
            out.push(answer_document(&StatementResult::default()));
        }
        out
    }

    fn series(host: &str, rows: Vec<Vec<Value>>) -> Series {
        Series {
            name: "cpu".into(),
            tags: Some(BTreeMap::from([("host".to_owned(), host.to_owned())])),
            columns: vec!["time".into(), "v".into()],
            values: rows,
            partial: false,
        }
    }

    fn merged(replicas: &[Vec<Bytes>], window: Window) -> String {
        String::from_utf8(
            merge_chunks_to_json(replicas, &window, Layout::Whole, TimeFormat::Epoch(1)).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn same_time_rows_keep_the_most_complete_run_and_duplicates_of_distinct_points() {
        // No GROUP BY: two hosts with equal values at the same time are two rows.
        let complete = series(
            "",
            vec![
                vec![json!(5), json!(1)],
                vec![json!(5), json!(1)],
                vec![json!(5), json!(2)],
            ],
        );
        let lagging = series("", vec![vec![json!(5), json!(2)]]);
        let out = merged(
            &[documents(&[lagging], &[]), documents(&[complete], &[])],
            Window::default(),
        );
        assert!(out.contains(r#""values":[[5,1],[5,1],[5,2]]"#), "{out}");
    }

    #[test]
    fn a_chunk_both_replicas_sent_alike_then_different_chunks_still_merge_to_the_union() {
        // The first document is byte for byte the same on both replicas (decoded once, its rows
        // taken off both without comparing); the run at time 3 goes on in documents that differ.
        let shared = series(
            "a",
            vec![vec![json!(1), json!(1)], vec![json!(3), json!(1)]],
        );
        let only_a = series(
            "a",
            vec![vec![json!(3), json!(2)], vec![json!(4), json!(4)]],
        );
        let only_b = series(
            "a",
            vec![vec![json!(3), json!(3)], vec![json!(5), json!(5)]],
        );
        let first = documents(&[shared], &[]);
        let replica_a = [first.clone(), documents(&[only_a], &[])].concat();
        let replica_b = [first, documents(&[only_b], &[])].concat();
        let out = merged(&[replica_a, replica_b], Window::default());
        assert!(
            out.contains(r#""values":[[1,1],[3,1],[3,2],[3,3],[4,4],[5,5]]"#),
            "{out}"
        );
    }

    #[test]
    fn missing_columns_are_aligned_and_rows_deduplicated_across_them() {
        let mut narrow = series("a", vec![vec![json!(1), json!(1)]]);
        narrow.columns = vec!["time".into(), "v".into()];
        let mut wide = series(
            "a",
            vec![
                vec![json!(1), json!(null), json!(1)],
                vec![json!(2), json!(3), json!(4)],
            ],
        );
        wide.columns = vec!["time".into(), "u".into(), "v".into()];
        let out = merged(
            &[documents(&[narrow], &[]), documents(&[wide], &[])],
            Window::default(),
        );
        assert!(
            out.contains(r#""columns":["time","u","v"],"values":[[1,null,1],[2,3,4]]"#),
            "{out}"
        );
    }

    #[test]
    fn chunked_layout_cuts_series_like_influxdb() {
        let a = series("a", (0..5).map(|t| vec![json!(t), json!(t)]).collect());
        let b = series("b", vec![vec![json!(9), json!(9)]]);
        let out = merge_chunks_to_json(
            &[documents(&[a, b], &[2])],
            &Window::default(),
            Layout::Chunked(2),
            TimeFormat::Epoch(1),
        )
        .unwrap();
        let shapes: Vec<(usize, bool, bool)> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| {
                let doc: Value = serde_json::from_str(line).unwrap();
                let result = &doc["results"][0];
                let series = &result["series"][0];
                (
                    series["values"].as_array().unwrap().len(),
                    series["partial"].as_bool().unwrap_or(false),
                    result["partial"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        assert_eq!(
            shapes,
            vec![
                (2, true, true),
                (2, true, true),
                (1, false, true),
                (1, false, false)
            ]
        );
    }

    #[test]
    fn the_row_cap_stops_the_merge_and_a_late_error_ends_the_statement() {
        let rows = series("a", (0..5).map(|t| vec![json!(t), json!(t)]).collect());
        let chunk = super::super::chunk::parse_chunk(&documents(&[rows], &[])[0]).unwrap();
        let mut merge = RawMerge::new(1, Window::default()).with_row_cap(3);
        let mut writer = StatementWriter::new(0, TimeFormat::Epoch(1), Layout::Whole);
        merge.push(0, chunk);
        merge.finish(0);
        assert_eq!(merge.drain(&mut writer).unwrap(), Progress::Done);
        assert!(merge.over_cap());
        assert_eq!(merge.written(), 3);
        // Streaming had begun: the error goes after the rows already sent.
        writer.finish(Some("too many rows"));
        let text = String::from_utf8(writer.take()).unwrap();
        let result: StatementResult = serde_json::from_str(&text).unwrap();
        assert_eq!(result.series[0].values.len(), 3);
        assert_eq!(result.error.as_deref(), Some("too many rows"));
    }

    proptest! {
        /// However each replica's answer is cut into chunks, the streaming merge writes the same
        /// bytes as when every answer comes whole, in every layout and time format; and it equals
        /// the complete answer.
        #[test]
        fn chunking_never_changes_the_merged_bytes(
            points in proptest::collection::btree_map((0usize..3, 0i64..200), 0i64..4, 0..80),
            holders in proptest::collection::vec(1u8..8, 80),
            cuts in proptest::collection::vec(proptest::collection::vec(0usize..200, 0..6), 3),
            descending in any::<bool>(),
            limit in proptest::option::of(0u64..10),
            offset in proptest::option::of(0u64..10),
            slimit in proptest::option::of(0u64..3),
            soffset in proptest::option::of(0u64..3),
            chunk_rows in 1usize..7,
            epoch in proptest::sample::select(vec![None, Some("ns"), Some("ms"), Some("h")]),
        ) {
            let hosts = ["a", "b", "c"];
            let all: Vec<((usize, i64), i64)> = points.into_iter().collect();
            let mut replicas: Vec<Vec<Series>> = vec![Vec::new(), Vec::new(), Vec::new()];
            for (r, replica) in replicas.iter_mut().enumerate() {
                for (h, host) in hosts.iter().enumerate() {
                    let mut rows: Vec<Vec<Value>> = all
                        .iter()
                        .enumerate()
                        .filter(|(i, ((hh, _), _))| *hh == h && holders[i % holders.len()] & (1 << r) != 0)
                        .map(|(_, ((_, t), v))| vec![json!(t), json!(v)])
                        .collect();
                    if descending {
                        rows.reverse();
                    }
                    if !rows.is_empty() {
                        replica.push(series(host, rows));
                    }
                }
                if descending {
                    replica.reverse();
                }
            }
            let window = Window { descending, limit, offset, slimit, soffset };
            let whole: Vec<Vec<Bytes>> = replicas.iter().map(|s| documents(s, &[])).collect();
            let cut: Vec<Vec<Bytes>> = replicas.iter().zip(&cuts).map(|(s, c)| documents(s, c)).collect();
            let format = TimeFormat::from_epoch(epoch);
            for layout in [Layout::Whole, Layout::Chunked(chunk_rows)] {
                prop_assert_eq!(
                    merge_chunks_to_json(&whole, &window, layout, format).unwrap(),
                    merge_chunks_to_json(&cut, &window, layout, format).unwrap()
                );
            }
            // The complete answer: every point once, series in host order, windowed.
            let mut expected: Vec<Series> = Vec::new();
            for (h, host) in hosts.iter().enumerate() {
                let mut rows: Vec<Vec<Value>> = all
                    .iter()
                    .filter(|((hh, _), _)| *hh == h)
                    .map(|((_, t), v)| vec![json!(t), json!(v)])
                    .collect();
                if descending {
                    rows.reverse();
                }
                if !rows.is_empty() {
                    expected.push(series(host, rows));
                }
            }
            if descending {
                expected.reverse();
            }
            let expected = super::super::raw::apply_window(expected, &window);
            let got = super::super::raw::merge_chunks(&cut, &window).unwrap();
            prop_assert_eq!(got.series, expected);
        }

        /// One series holding several hosts (no GROUP BY): rows at the same time from different
        /// hosts. Chunking still never changes the bytes, every point is there once, in time
        /// order.
        #[test]
        fn same_time_rows_survive_any_chunking(
            points in proptest::collection::btree_set((0i64..40, 0usize..3), 0..90),
            holders in proptest::collection::vec(1u8..4, 90),
            cuts in proptest::collection::vec(proptest::collection::vec(0usize..120, 0..8), 2),
            descending in any::<bool>(),
            chunk_rows in 1usize..5,
        ) {
            let all: Vec<(i64, usize)> = points.into_iter().collect();
            let row = |(t, h): &(i64, usize)| vec![json!(t), json!(format!("h{h}")), json!(h)];
            let mut replicas: Vec<Vec<Series>> = Vec::new();
            for r in 0..2 {
                let mut rows: Vec<Vec<Value>> = all
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| holders[i % holders.len()] & (1 << r) != 0)
                    .map(|(_, p)| row(p))
                    .collect();
                if descending {
                    // Newest first; InfluxDB keeps its series order inside one time.
                    rows.sort_by_key(|r| std::cmp::Reverse(r[0].as_i64().unwrap()));
                }
                let mut s = series("", rows);
                s.tags = None;
                s.columns = vec!["time".into(), "host".into(), "v".into()];
                replicas.push(if s.values.is_empty() { vec![] } else { vec![s] });
            }
            let window = Window { descending, ..Window::default() };
            let whole: Vec<Vec<Bytes>> = replicas.iter().map(|s| documents(s, &[])).collect();
            let cut: Vec<Vec<Bytes>> = replicas.iter().zip(&cuts).map(|(s, c)| documents(s, c)).collect();
            for layout in [Layout::Whole, Layout::Chunked(chunk_rows)] {
                prop_assert_eq!(
                    merge_chunks_to_json(&whole, &window, layout, TimeFormat::Epoch(1)).unwrap(),
                    merge_chunks_to_json(&cut, &window, layout, TimeFormat::Epoch(1)).unwrap()
                );
            }
            let got = super::super::raw::merge_chunks(&cut, &window).unwrap();
            let mut rows: Vec<Vec<Value>> = got.series.into_iter().flat_map(|s| s.values).collect();
            let times: Vec<i64> = rows.iter().map(|r| r[0].as_i64().unwrap()).collect();
            let mut sorted = times.clone();
            sorted.sort_unstable();
            if descending {
                sorted.reverse();
            }
            prop_assert_eq!(times, sorted);
            rows.sort_by_key(|r| (r[0].as_i64().unwrap(), r[2].as_u64().unwrap()));
            let expected: Vec<Vec<Value>> = all.iter().map(row).collect();
            prop_assert_eq!(rows, expected);
        }
    }
}
