//! `SHOW` merge: the union of every replica's and group's answer, deduplicated and sorted the way
//! InfluxDB sorts each kind (databases and retention policies keep the first answer's order,
//! which is creation order; the rest are sorted), then LIMIT/OFFSET. Replicas are asked without
//! LIMIT/OFFSET so nothing a lagging replica lacks can shift the window.

use serde_json::Value;

use crate::influxql::ast::{Show, ShowKind};
use crate::influxql::merge::raw::collect_series;
use crate::influxql::result::StatementResult;

/// The statement replicas get: LIMIT and OFFSET are applied after the union.
pub fn replica_show(show: &Show) -> Show {
    let mut rewritten = show.clone();
    rewritten.limit = None;
    rewritten.offset = None;
    rewritten
}

fn cell_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Merges successful answers to `show`.
pub fn merge_show(show: &Show, answers: Vec<StatementResult>) -> StatementResult {
    // Databases, retention policies and field keys: one row per name (first column).
    let dedup_on_first = matches!(
        show.kind,
        ShowKind::Databases | ShowKind::RetentionPolicies | ShowKind::FieldKeys
    );
    let keep_order = matches!(show.kind, ShowKind::Databases | ShowKind::RetentionPolicies);
    let mut merged = Vec::new();
    for (_, parts) in collect_series(answers) {
        let mut iter = parts.into_iter();
        let Some(mut series) = iter.next() else {
            continue;
        };
        let mut rows = std::mem::take(&mut series.values);
        for part in iter {
            rows.extend(part.values);
        }
        let mut seen = std::collections::HashSet::new();
        rows.retain(|row| {
            let key: Vec<String> = if dedup_on_first {
                row.iter().take(1).map(cell_text).collect()
            } else {
                row.iter().map(cell_text).collect()
            };
            seen.insert(key)
        });
        if !keep_order {
            rows.sort_by_cached_key(|row| row.iter().map(cell_text).collect::<Vec<_>>());
        }
        let offset = show.offset.unwrap_or(0) as usize;
        rows.drain(..offset.min(rows.len()));
        if let Some(limit) = show.limit {
            rows.truncate(limit as usize);
        }
        series.values = rows;
        if !series.values.is_empty() || keep_order {
            merged.push(series);
        }
    }
    StatementResult {
        statement_id: 0,
        series: merged,
        ..StatementResult::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::influxql::ast::Statement;
    use crate::influxql::parser::parse_query;
    use crate::influxql::result::Series;
    use serde_json::json;

    #[test]
    fn union_sorted_and_limited() {
        let Statement::Show(show) = parse_query("SHOW MEASUREMENTS LIMIT 2").unwrap().remove(0)
        else {
            panic!()
        };
        let answer = |names: &[&str]| StatementResult {
            series: vec![Series {
                name: "measurements".into(),
                columns: vec!["name".into()],
                values: names.iter().map(|n| vec![json!(n)]).collect(),
                ..Series::default()
            }],
            ..StatementResult::default()
        };
        let merged = merge_show(
            &show,
            vec![answer(&["cpu", "mem"]), answer(&["disk", "mem"])],
        );
        assert_eq!(
            merged.series[0].values,
            vec![vec![json!("cpu")], vec![json!("disk")]]
        );
    }
}
