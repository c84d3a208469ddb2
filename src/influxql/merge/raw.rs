//! Raw `SELECT` merge: the union of every answer's series (replicas of one group and all
//! groups alike), rows deduplicated and sorted by time, then OFFSET/LIMIT per series and
//! SOFFSET/SLIMIT over series. Replicas are asked for LIMIT+OFFSET rows without OFFSET (see
//! [`replica_select`]) so the merge is exact. It never drops a row one replica has and another
//! lacks.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::influxql::ast::Select;
use crate::influxql::result::{Series, SeriesKey, StatementResult};

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

fn time_of(row: &[Value]) -> i64 {
    row.first().and_then(Value::as_i64).unwrap_or(i64::MIN)
}

/// Aligns contributors whose columns differ (a replica that lacks a field answers `SELECT *`
/// without its column): `time` first, then the union of the others sorted, as InfluxDB orders
/// wildcard columns.
fn unify_columns(parts: &mut [Series]) -> Vec<String> {
    let first = parts.first().map(|s| s.columns.clone()).unwrap_or_default();
    if parts.iter().all(|s| s.columns == first) {
        return first;
    }
    let mut others: Vec<String> = parts
        .iter()
        .flat_map(|s| s.columns.iter().skip(1).cloned())
        .collect();
    others.sort();
    others.dedup();
    let mut columns = vec!["time".to_owned()];
    columns.extend(others);
    for part in parts.iter_mut() {
        if part.columns == columns {
            continue;
        }
        let positions: Vec<Option<usize>> = columns
            .iter()
            .map(|c| part.columns.iter().position(|p| p == c))
            .collect();
        for row in &mut part.values {
            let old = std::mem::take(row);
            *row = positions
                .iter()
                .map(|p| p.and_then(|i| old.get(i).cloned()).unwrap_or(Value::Null))
                .collect();
        }
        part.columns = columns.clone();
    }
    columns
}

/// Merges one series' contributors: rows in time order (largest contributor first on ties, so
/// its order of same-time rows is kept) with duplicates (same time, same values) dropped. Each
/// contributor is already in time order (InfluxDB answers so), so this is a k-way merge that
/// moves rows instead of copying them and never holds a concatenation of all contributors.
fn merge_rows(mut parts: Vec<Series>, descending: bool) -> Series {
    let columns = unify_columns(&mut parts);
    parts.sort_by_key(|p| std::cmp::Reverse(p.values.len()));
    let in_order = |rows: &[Vec<Value>]| {
        rows.windows(2).all(|pair| {
            let (a, b) = (time_of(&pair[0]), time_of(&pair[1]));
            if descending { a >= b } else { a <= b }
        })
    };
    if !parts.iter().all(|p| in_order(&p.values)) {
        // Not expected from InfluxDB; sort each contributor (stable) rather than mis-merge.
        for part in &mut parts {
            if descending {
                part.values
                    .sort_by_key(|row| std::cmp::Reverse(time_of(row)));
            } else {
                part.values.sort_by_key(|row| time_of(row));
            }
        }
    }
    let mut iter = parts.into_iter();
    let Some(mut merged) = iter.next() else {
        return Series::default();
    };
    merged.columns = columns;
    merged.partial = false;
    let extra: Vec<Series> = iter.filter(|s| !s.values.is_empty()).collect();
    if extra.is_empty() {
        return merged;
    }
    let mut sources: Vec<std::iter::Peekable<std::vec::IntoIter<Vec<Value>>>> =
        std::iter::once(std::mem::take(&mut merged.values))
            .chain(extra.into_iter().map(|s| s.values))
            .map(|rows| rows.into_iter().peekable())
            .collect();
    let mut out: Vec<Vec<Value>> = Vec::with_capacity(sources[0].len());
    let mut run_start = 0;
    loop {
        let mut best: Option<(usize, i64)> = None;
        for (i, source) in sources.iter_mut().enumerate() {
            let Some(row) = source.peek() else { continue };
            let time = time_of(row);
            let better = match best {
                None => true,
                Some((_, t)) if descending => time > t,
                Some((_, t)) => time < t,
            };
            if better {
                best = Some((i, time));
            }
        }
        let Some((i, time)) = best else { break };
        let Some(row) = sources[i].next() else { break };
        if out.last().is_none_or(|last| time_of(last) != time) {
            run_start = out.len();
        }
        if !out[run_start..].contains(&row) {
            out.push(row);
        }
    }
    merged.values = out;
    merged
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

/// The raw merge of `answers` (each a successful statement result), as one statement result.
pub fn merge_raw(answers: Vec<StatementResult>, window: &Window) -> StatementResult {
    let mut messages = Vec::new();
    for answer in &answers {
        for message in &answer.messages {
            if !messages.contains(message) {
                messages.push(message.clone());
            }
        }
    }
    let merged: Vec<Series> = collect_series(answers)
        .into_values()
        .map(|parts| merge_rows(parts, window.descending))
        .collect();
    StatementResult {
        statement_id: 0,
        series: apply_window(merged, window),
        messages,
        partial: false,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let a = answer(
            (0..5)
                .map(|t| vec![json!(t * 2), json!("a"), json!(t)])
                .collect(),
        );
        let b = answer(
            (0..5)
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
