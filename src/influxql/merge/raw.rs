//! Raw `SELECT` merge: the union of every answer's series (replicas of one group and all
//! groups alike), rows deduplicated and sorted by time, then OFFSET/LIMIT per series and
//! SOFFSET/SLIMIT over series. Replicas are asked for LIMIT+OFFSET rows without OFFSET (see
//! [`replica_select`]) so the merge is exact. The merge itself is the streaming one
//! ([`super::stream`]); [`merge_raw`] and [`merge_chunks`] run it over whole answers. It never
//! drops a row one replica has and another lacks.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::chunk::{Chunk, parse_chunk};
use super::stream::{Progress, RawMerge};
use super::writer::{Layout, StatementWriter};
use crate::influxql::ast::Select;
use crate::influxql::result::{QueryResponse, Series, SeriesKey, StatementResult, TimeFormat};

/// The statement replicas get for a raw merge: `LIMIT l OFFSET o` becomes `LIMIT l+o` (each
/// replica's first l+o rows contain the merged first l+o rows), likewise SLIMIT/SOFFSET.
pub fn replica_select(select: &Select) -> Select {
    let mut rewritten = select.clone();
    rewritten.limit = select
        .limit
        .map(|limit| limit.saturating_add(select.offset.unwrap_or(0)));
    rewritten.offset = None;
    rewritten.slimit = select
        .slimit
        .map(|limit| limit.saturating_add(select.soffset.unwrap_or(0)));
    rewritten.soffset = None;
    rewritten
}

/// Limits applied after a merge.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub descending: bool,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
    pub slimit: Option<u64>,
    pub soffset: Option<u64>,
}

impl Window {
    pub fn of(select: &Select) -> Window {
        Window {
            descending: select.order_desc,
            limit: select.limit,
            offset: select.offset,
            slimit: select.slimit,
            soffset: select.soffset,
        }
    }
}

/// Collects the series of several answers by key, keeping every contributor's rows.
pub fn collect_series(answers: Vec<StatementResult>) -> BTreeMap<SeriesKey, Vec<Series>> {
    let mut by_key: BTreeMap<SeriesKey, Vec<Series>> = BTreeMap::new();
    for answer in answers {
        for series in answer.series {
            by_key.entry(series.key()).or_default().push(series);
        }
    }
    by_key
}

/// Applies OFFSET/LIMIT to rows and SOFFSET/SLIMIT to series.
pub fn apply_window(series: Vec<Series>, window: &Window) -> Vec<Series> {
    let skip = window.soffset.unwrap_or(0) as usize;
    let take = window.slimit.map_or(usize::MAX, |l| l as usize);
    series
        .into_iter()
        .skip(skip)
        .take(take)
        .filter_map(|mut s| {
            let offset = window.offset.unwrap_or(0) as usize;
            if offset > 0 {
                s.values.drain(..offset.min(s.values.len()));
            }
            if let Some(limit) = window.limit {
                s.values.truncate(limit as usize);
            }
            // InfluxDB leaves out a series that OFFSET emptied.
            (!s.values.is_empty()).then_some(s)
        })
        .collect()
}

/// The raw merge of whole `answers` (each a successful statement result), as one statement
/// result: each answer fed as a single chunk to the streaming merge ([`super::stream`]), so it
/// is the same merge the query path runs on chunks as they arrive.
pub fn merge_raw(answers: Vec<StatementResult>, window: &Window) -> StatementResult {
    let chunks: Vec<Vec<Bytes>> = answers.iter().map(|a| vec![answer_document(a)]).collect();
    match merge_chunks(&chunks, window) {
        Ok(result) => result,
        Err(error) => StatementResult::error(0, error),
    }
}

/// `{"results":[answer]}`, as a replica would send it.
pub fn answer_document(answer: &StatementResult) -> Bytes {
    let document = QueryResponse {
        results: vec![answer.clone()],
        error: None,
    };
    Bytes::from(serde_json::to_vec(&document).unwrap_or_default())
}

/// The merge of replicas' answers given as their documents (chunks), as one statement result
/// with nanosecond times.
pub fn merge_chunks(replicas: &[Vec<Bytes>], window: &Window) -> Result<StatementResult, String> {
    let bytes = merge_chunks_to_json(replicas, window, Layout::Whole, TimeFormat::Epoch(1))?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// The merge of replicas' answers (their documents) written as the statement's JSON.
pub fn merge_chunks_to_json(
    replicas: &[Vec<Bytes>],
    window: &Window,
    layout: Layout,
    format: TimeFormat,
) -> Result<Vec<u8>, String> {
    let mut merge = RawMerge::new(replicas.len(), *window);
    let mut writer = StatementWriter::new(0, format, layout);
    let mut next = vec![0usize; replicas.len()];
    let mut decoded: Vec<BTreeMap<usize, Chunk>> = vec![BTreeMap::new(); replicas.len()];
    loop {
        match merge.drain(&mut writer)? {
            Progress::Done => break,
            Progress::Need(i) => match replicas[i].get(next[i]) {
                Some(document) => {
                    let position = next[i];
                    next[i] += 1;
                    // A document another replica has alike at the same position is decoded
                    // once, as the streaming readers do (`proxy::query::twins`); the answers
                    // are in memory already, their decoded chunks share their bytes.
                    let twin = (0..replicas.len()).find_map(|j| {
                        (j != i && replicas[j].get(position) == Some(document))
                            .then(|| decoded[j].remove(&position))
                            .flatten()
                    });
                    let mut chunk = match twin {
                        Some(chunk) => chunk,
                        None => parse_chunk(document)?,
                    };
                    // Kept only for a replica that has the same document there and has not
                    // come to it yet.
                    let awaited = (0..replicas.len()).any(|j| {
                        j != i && next[j] <= position && replicas[j].get(position) == Some(document)
                    });
                    if awaited {
                        decoded[i].insert(position, chunk.clone());
                    }
                    for message in std::mem::take(&mut chunk.messages) {
                        writer.add_message(message);
                    }
                    merge.push(i, chunk);
                }
                None => merge.finish(i),
            },
        }
    }
    writer.finish(None);
    Ok(writer.take())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn time_of(row: &[Value]) -> i64 {
        row.first().and_then(Value::as_i64).unwrap_or(i64::MIN)
    }

    fn series(rows: Vec<Vec<Value>>) -> Series {
        Series {
            name: "cpu".into(),
            tags: None,
            columns: vec!["time".into(), "host".into(), "v".into()],
            values: rows,
            partial: false,
        }
    }

    fn answer(rows: Vec<Vec<Value>>) -> StatementResult {
        StatementResult {
            series: vec![series(rows)],
            ..StatementResult::default()
        }
    }

    #[test]
    fn union_dedups_and_sorts() {
        let a = answer(vec![
            vec![json!(1), json!("a"), json!(1)],
            vec![json!(3), json!("a"), json!(3)],
        ]);
        let b = answer(vec![
            vec![json!(1), json!("a"), json!(1)],
            vec![json!(2), json!("b"), json!(2)],
            vec![json!(3), json!("a"), json!(3)],
        ]);
        let merged = merge_raw(vec![a, b], &Window::default());
        let times: Vec<i64> = merged.series[0].values.iter().map(|r| time_of(r)).collect();
        assert_eq!(times, vec![1, 2, 3]);
    }

    #[test]
    fn same_time_different_series_are_kept() {
        let a = answer(vec![
            vec![json!(1), json!("a"), json!(1)],
            vec![json!(1), json!("b"), json!(5)],
        ]);
        let b = answer(vec![vec![json!(1), json!("b"), json!(5)]]);
        let merged = merge_raw(vec![a, b], &Window::default());
        assert_eq!(merged.series[0].values.len(), 2);
    }

    #[test]
    fn window_after_merge() {
        // ORDER BY time DESC: replicas answer newest first.
        let a = answer(
            (0..5)
                .rev()
                .map(|t| vec![json!(t * 2), json!("a"), json!(t)])
                .collect(),
        );
        let b = answer(
            (0..5)
                .rev()
                .map(|t| vec![json!(t * 2 + 1), json!("a"), json!(t)])
                .collect(),
        );
        let window = Window {
            descending: true,
            limit: Some(3),
            offset: Some(2),
            ..Window::default()
        };
        let merged = merge_raw(vec![a, b], &window);
        let times: Vec<i64> = merged.series[0].values.iter().map(|r| time_of(r)).collect();
        assert_eq!(times, vec![7, 6, 5]);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn as_answer(rows: &[(i64, i64)]) -> StatementResult {
        StatementResult {
            series: vec![Series {
                name: "m".into(),
                columns: vec!["time".into(), "v".into()],
                values: rows.iter().map(|(t, v)| vec![json!(t), json!(v)]).collect(),
                ..Series::default()
            }],
            ..StatementResult::default()
        }
    }

    proptest! {
        /// Whatever subset of the points each replica holds (every point held by at least one),
        /// the merge equals the complete set, sorted, windowed.
        #[test]
        fn union_of_divergent_replicas_equals_the_complete_answer(
            points in proptest::collection::btree_map(0i64..500, 0i64..5, 0..60),
            holders in proptest::collection::vec(1u8..8, 60),
            descending in any::<bool>(),
            limit in proptest::option::of(0u64..20),
            offset in proptest::option::of(0u64..20),
        ) {
            let all: Vec<(i64, i64)> = points.into_iter().collect();
            let mut replicas = vec![Vec::new(), Vec::new(), Vec::new()];
            for (i, point) in all.iter().enumerate() {
                let mask = holders[i % holders.len()];
                for (r, replica) in replicas.iter_mut().enumerate() {
                    if mask & (1 << r) != 0 {
                        replica.push(*point);
                    }
                }
            }
            let order = |rows: &mut Vec<(i64, i64)>| {
                if descending {
                    rows.reverse();
                }
            };
            let mut expected = all.clone();
            order(&mut expected);
            let skip = offset.unwrap_or(0) as usize;
            let expected: Vec<(i64, i64)> = expected
                .into_iter()
                .skip(skip)
                .take(limit.map_or(usize::MAX, |l| l as usize))
                .collect();
            let answers = replicas
                .into_iter()
                .map(|mut rows| {
                    order(&mut rows);
                    as_answer(&rows)
                })
                .collect();
            let window = Window { descending, limit, offset, ..Window::default() };
            let merged = merge_raw(answers, &window);
            let got: Vec<(i64, i64)> = merged
                .series
                .first()
                .map(|s| {
                    s.values
                        .iter()
                        .map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap()))
                        .collect()
                })
                .unwrap_or_default();
            prop_assert_eq!(got, expected);
        }
    }
}
