//! Aggregates across shard groups: a plan that rewrites what cannot be combined from per-group
//! results into what can (`mean` into `sum` and `count`, `spread` into `max` and `min`), and the
//! recombination of the groups' rows by series and time bucket. Within one group no merge
//! happens at all (one in-sync replica answers). It never combines what is not exactly
//! combinable: percentile, median, distinct, top/bottom, arithmetic over aggregates... are
//! refused with the reason, and so is `first`/`last` when the point time is not in the answer.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::influxql::ast::{Expr, Field, Fill, Select};
use crate::influxql::merge::raw::{Window, apply_window, collect_series};
use crate::influxql::result::{Series, StatementResult};

/// Why a statement cannot be answered exactly across groups.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unmergeable(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combine {
    Count,
    Sum,
    Min,
    Max,
    First,
    Last,
    Spread,
    Mean,
}

#[derive(Debug, Clone)]
struct Output {
    name: String,
    combine: Combine,
    /// Positions of this output's parts in the replicas' rows (0 is time).
    parts: Vec<usize>,
}

/// How one cross-group aggregate is asked and recombined.
#[derive(Debug, Clone)]
pub struct AggregatePlan {
    /// What every group's replica is asked.
    pub group_select: Select,
    outputs: Vec<Output>,
    /// One selector alone without `GROUP BY time()`: the row time is the selected point's.
    sole_selector: bool,
    fill: Option<Fill>,
    window: Window,
}

/// Column names as InfluxDB gives them: the alias, else the function name, `_1`, `_2` on
/// repeats.
fn column_names(fields: &[Field]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    fields
        .iter()
        .map(|field| {
            let base = field.alias.clone().unwrap_or_else(|| match &field.expr {
                Expr::Call { name, .. } => name.to_ascii_lowercase(),
                Expr::VarRef { name, .. } => name.clone(),
                _ => String::new(),
            });
            let count = seen.entry(base.clone()).or_insert(0);
            let name = if *count == 0 {
                base.clone()
            } else {
                format!("{base}_{count}")
            };
            *count += 1;
            name
        })
        .collect()
}

fn call(name: &str, arg: &Expr, alias: String) -> Field {
    Field {
        expr: Expr::Call {
            name: name.to_owned(),
            args: vec![arg.clone()],
        },
        alias: Some(alias),
    }
}

fn refusal(function: &str) -> Unmergeable {
    match function {
        "median" | "percentile" | "mode" | "stddev" | "distinct" | "top" | "bottom" | "sample"
        | "integral" => Unmergeable(format!(
            "{function}() cannot be merged across shard groups: it needs every point of a series in one place and the series' points are spread over several groups; name one index (index parameter or WHERE \"index\" = '...') so one group answers"
        )),
        _ => Unmergeable(format!(
            "{function}() is not merged across shard groups (only count, sum, mean, min, max, first, last and spread are); name one index so one group answers"
        )),
    }
}

/// Plans `select` (an aggregate over several groups) or says why it cannot be merged.
pub fn plan(select: &Select) -> Result<AggregatePlan, Unmergeable> {
    if select.into.is_some() {
        return Err(Unmergeable(
            "SELECT INTO across shard groups is not supported: each group would write its own partial aggregates; name one index".to_owned(),
        ));
    }
    let names = column_names(&select.fields);
    let mut group_fields = Vec::new();
    let mut outputs = Vec::new();
    for (field, name) in select.fields.iter().zip(names) {
        let Expr::Call {
            name: function,
            args,
        } = &field.expr
        else {
            return Err(Unmergeable(format!(
                "cannot merge {} across shard groups: only plain aggregate calls (count, sum, mean, min, max, first, last, spread) can be combined exactly; name one index to run it on one group",
                crate::influxql::render::render_expr(&field.expr)
            )));
        };
        let function = function.to_ascii_lowercase();
        if !matches!(
            function.as_str(),
            "count" | "sum" | "min" | "max" | "first" | "last" | "spread" | "mean"
        ) {
            return Err(refusal(&function));
        }
        let arg = match args.as_slice() {
            [arg @ Expr::VarRef { .. }] => arg,
            [Expr::Wildcard { .. }] | [Expr::Regex(_)] => {
                return Err(Unmergeable(format!(
                    "cannot merge {function}() over a wildcard or regex across shard groups: the field set may differ per group; list the fields, or name one index"
                )));
            }
            _ => {
                return Err(Unmergeable(format!(
                    "cannot merge {} across shard groups: only aggregates of a single field can be combined exactly; name one index to run it on one group",
                    crate::influxql::render::render_expr(&field.expr)
                )));
            }
        };
        let first_part = group_fields.len() + 1;
        let (combine, parts) = match function.as_str() {
            "count" | "sum" | "min" | "max" | "first" | "last" => {
                group_fields.push(call(&function, arg, format!("m{}", group_fields.len())));
                let combine = match function.as_str() {
                    "count" => Combine::Count,
                    "sum" => Combine::Sum,
                    "min" => Combine::Min,
                    "max" => Combine::Max,
                    "first" => Combine::First,
                    _ => Combine::Last,
                };
                (combine, vec![first_part])
            }
            "spread" => {
                group_fields.push(call("max", arg, format!("m{}", group_fields.len())));
                group_fields.push(call("min", arg, format!("m{}", group_fields.len())));
                (Combine::Spread, vec![first_part, first_part + 1])
            }
            "mean" => {
                group_fields.push(call("sum", arg, format!("m{}", group_fields.len())));
                group_fields.push(call("count", arg, format!("m{}", group_fields.len())));
                (Combine::Mean, vec![first_part, first_part + 1])
            }
            _ => return Err(refusal(&function)),
        };
        outputs.push(Output {
            name,
            combine,
            parts,
        });
    }
    let has_time_buckets = select.time_interval().is_some();
    let sole_selector = !has_time_buckets
        && outputs.len() == 1
        && matches!(
            outputs[0].combine,
            Combine::Min | Combine::Max | Combine::First | Combine::Last
        );
    if !sole_selector
        && outputs
            .iter()
            .any(|o| matches!(o.combine, Combine::First | Combine::Last))
    {
        return Err(Unmergeable(
            "first()/last() across shard groups need the time of each group's point, which InfluxDB gives only for a single selector without GROUP BY time(); select it alone, or name one index".to_owned(),
        ));
    }
    let mut group_select = select.clone();
    group_select.fields = group_fields;
    group_select.limit = None;
    group_select.offset = None;
    group_select.slimit = None;
    group_select.soffset = None;
    group_select.fill = match &select.fill {
        Some(Fill::None) => Some(Fill::None),
        _ => None,
    };
    Ok(AggregatePlan {
        group_select,
        outputs,
        sole_selector,
        fill: select.fill.clone(),
        window: Window::of(select),
    })
}

/// A number of a JSON answer, kept integral when it is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn of(value: &Value) -> Option<Num> {
        if let Some(i) = value.as_i64() {
            Some(Num::Int(i))
        } else {
            value.as_f64().map(Num::Float)
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a
                .checked_add(b)
                .map_or(Num::Float(a as f64 + b as f64), Num::Int),
            (a, b) => Num::Float(a.as_f64() + b.as_f64()),
        }
    }

    fn sub(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a
                .checked_sub(b)
                .map_or(Num::Float(a as f64 - b as f64), Num::Int),
            (a, b) => Num::Float(a.as_f64() - b.as_f64()),
        }
    }

    fn greater(self, other: Num) -> bool {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a > b,
            (a, b) => a.as_f64() > b.as_f64(),
        }
    }

    fn into_value(self) -> Value {
        match self {
            Num::Int(i) => Value::from(i),
            Num::Float(f) => float_value(f),
        }
    }
}

/// A float as Go's JSON encoder writes it: integral values without a fraction.
pub fn float_value(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

/// One output's running state.
#[derive(Debug, Clone, Default)]
struct Acc {
    a: Option<Num>,
    b: Option<Num>,
    /// Selected point time (sole selectors), or the value for first/last.
    time: Option<i64>,
    value: Option<Value>,
}

fn add_opt(acc: &mut Option<Num>, value: Option<Num>) {
    if let Some(v) = value {
        *acc = Some(acc.map_or(v, |a| a.add(v)));
    }
}

fn extreme(acc: &mut Option<Num>, value: Option<Num>, want_greater: bool) -> bool {
    let Some(v) = value else { return false };
    let better = match acc {
        None => true,
        Some(current) => {
            if want_greater {
                v.greater(*current)
            } else {
                current.greater(v)
            }
        }
    };
    if better {
        *acc = Some(v);
    }
    better
}

impl AggregatePlan {
    /// Recombines the groups' answers (each a successful result of [`Self::group_select`]).
    pub fn merge(&self, answers: Vec<StatementResult>) -> StatementResult {
        let mut messages = Vec::new();
        for answer in &answers {
            for message in &answer.messages {
                if !messages.contains(message) {
                    messages.push(message.clone());
                }
            }
        }
        let mut columns = vec!["time".to_owned()];
        columns.extend(self.outputs.iter().map(|o| o.name.clone()));
        let mut merged = Vec::new();
        for (_, parts) in collect_series(answers) {
            let Some(first) = parts.first() else {
                continue;
            };
            let (name, tags) = (first.name.clone(), first.tags.clone());
            let mut buckets: BTreeMap<i64, Vec<Acc>> = BTreeMap::new();
            for part in &parts {
                for row in &part.values {
                    let time = row.first().and_then(Value::as_i64).unwrap_or(0);
                    let key = if self.sole_selector { 0 } else { time };
                    let accs = buckets
                        .entry(key)
                        .or_insert_with(|| vec![Acc::default(); self.outputs.len()]);
                    for (output, acc) in self.outputs.iter().zip(accs.iter_mut()) {
                        self.accumulate(output, acc, row, time);
                    }
                }
            }
            let mut rows: Vec<Vec<Value>> = buckets
                .into_iter()
                .map(|(time, accs)| {
                    let row_time = if self.sole_selector {
                        accs.first().and_then(|a| a.time).unwrap_or(time)
                    } else {
                        time
                    };
                    let mut row = vec![Value::from(row_time)];
                    row.extend(
                        self.outputs
                            .iter()
                            .zip(accs)
                            .map(|(output, acc)| finish(output.combine, acc)),
                    );
                    row
                })
                .collect();
            self.apply_fill(&mut rows);
            if self.window.descending {
                rows.reverse();
            }
            merged.push(Series {
                name,
                tags,
                columns: columns.clone(),
                values: rows,
                partial: false,
            });
        }
        // InfluxDB orders series by name and tags, descending with ORDER BY time DESC.
        if self.window.descending {
            merged.reverse();
        }
        StatementResult {
            statement_id: 0,
            series: apply_window(merged, &self.window),
            messages,
            partial: false,
            error: None,
        }
    }

    fn accumulate(&self, output: &Output, acc: &mut Acc, row: &[Value], time: i64) {
        let num = |i: usize| row.get(output.parts[i]).and_then(Num::of);
        match output.combine {
            Combine::Count | Combine::Sum => add_opt(&mut acc.a, num(0)),
            Combine::Mean => {
                add_opt(&mut acc.a, num(0));
                add_opt(&mut acc.b, num(1));
            }
            Combine::Min | Combine::Max => {
                let value = num(0);
                let want_greater = output.combine == Combine::Max;
                let tie = matches!((acc.a, value), (Some(a), Some(v)) if a == v);
                if extreme(&mut acc.a, value, want_greater)
                    || (tie && acc.time.is_some_and(|t| time < t))
                {
                    acc.time = Some(time);
                }
            }
            Combine::Spread => {
                extreme(&mut acc.a, num(0), true);
                extreme(&mut acc.b, num(1), false);
            }
            Combine::First | Combine::Last => {
                let Some(value) = row.get(output.parts[0]).filter(|v| !v.is_null()) else {
                    return;
                };
                let better = match acc.time {
                    None => true,
                    Some(t) if output.combine == Combine::First => time < t,
                    Some(t) => time > t,
                };
                if better {
                    acc.time = Some(time);
                    acc.value = Some(value.clone());
                }
            }
        }
    }

    fn apply_fill(&self, rows: &mut [Vec<Value>]) {
        if matches!(
            self.fill,
            Some(Fill::Number(_)) | Some(Fill::Previous) | Some(Fill::Linear)
        ) {
            // count() answers 0, not null, for an empty bucket; InfluxDB fills those too.
            for row in rows.iter_mut() {
                for (output, cell) in self.outputs.iter().zip(row.iter_mut().skip(1)) {
                    if output.combine == Combine::Count && cell.as_i64() == Some(0) {
                        *cell = Value::Null;
                    }
                }
            }
        }
        match &self.fill {
            Some(Fill::Number(text)) => {
                let fill = text
                    .parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| text.parse::<f64>().map(float_value))
                    .unwrap_or(Value::Null);
                for row in rows.iter_mut() {
                    for cell in row.iter_mut().skip(1) {
                        if cell.is_null() {
                            *cell = fill.clone();
                        }
                    }
                }
            }
            Some(Fill::Previous) => {
                let width = rows.first().map_or(0, Vec::len);
                let mut previous = vec![Value::Null; width];
                for row in rows.iter_mut() {
                    for (i, cell) in row.iter_mut().enumerate().skip(1) {
                        if cell.is_null() {
                            *cell = previous[i].clone();
                        } else {
                            previous[i] = cell.clone();
                        }
                    }
                }
            }
            Some(Fill::Linear) => {
                let width = rows.first().map_or(0, Vec::len);
                for column in 1..width {
                    interpolate_column(rows, column);
                }
            }
            _ => {}
        }
    }
}

/// `fill(linear)` on one column: nulls between two values get the value on the line between
/// them (integer arithmetic for integers, as InfluxDB does); leading and trailing nulls stay.
fn interpolate_column(rows: &mut [Vec<Value>], column: usize) {
    let time = |row: &Vec<Value>| row.first().and_then(Value::as_i64).unwrap_or(0);
    let mut previous: Option<usize> = None;
    for i in 0..rows.len() {
        if rows[i][column].is_null() {
            continue;
        }
        if let Some(p) = previous
            && i > p + 1
        {
            let (t0, t1) = (time(&rows[p]), time(&rows[i]));
            let (v0, v1) = (Num::of(&rows[p][column]), Num::of(&rows[i][column]));
            for row in &mut rows[p + 1..i] {
                let t = time(row);
                row[column] = match (v0, v1) {
                    (Some(Num::Int(a)), Some(Num::Int(b))) if t1 != t0 => {
                        Value::from(a + (b - a) * (t - t0) / (t1 - t0))
                    }
                    (Some(a), Some(b)) if t1 != t0 => {
                        let (a, b) = (a.as_f64(), b.as_f64());
                        float_value(a + (b - a) * ((t - t0) as f64 / (t1 - t0) as f64))
                    }
                    _ => Value::Null,
                };
            }
        }
        previous = Some(i);
    }
}

fn finish(combine: Combine, acc: Acc) -> Value {
    match combine {
        Combine::Count | Combine::Sum | Combine::Min | Combine::Max => {
            acc.a.map_or(Value::Null, Num::into_value)
        }
        Combine::Spread => match (acc.a, acc.b) {
            (Some(max), Some(min)) => max.sub(min).into_value(),
            _ => Value::Null,
        },
        Combine::Mean => match (acc.a, acc.b) {
            (Some(sum), Some(count)) if count.as_f64() > 0.0 => {
                float_value(sum.as_f64() / count.as_f64())
            }
            _ => Value::Null,
        },
        Combine::First | Combine::Last => acc.value.unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::influxql::ast::Statement;
    use crate::influxql::parser::parse_query;
    use serde_json::json;

    fn select(q: &str) -> Select {
        match parse_query(q).unwrap().remove(0) {
            Statement::Select(s) => *s,
            _ => panic!(),
        }
    }

    fn answer(rows: Vec<Vec<Value>>) -> StatementResult {
        StatementResult {
            series: vec![Series {
                name: "cpu".into(),
                tags: None,
                columns: vec![],
                values: rows,
                partial: false,
            }],
            ..StatementResult::default()
        }
    }

    #[test]
    fn mean_becomes_sum_and_count() {
        let plan = plan(&select(
            "SELECT mean(v), count(v), spread(v) FROM cpu GROUP BY time(1m)",
        ))
        .unwrap();
        let rendered =
            crate::influxql::render::render_select(&plan.group_select, &|d: &str| d.to_owned());
        assert_eq!(
            rendered,
            "SELECT sum(\"v\") AS \"m0\", count(\"v\") AS \"m1\", count(\"v\") AS \"m2\", max(\"v\") AS \"m3\", min(\"v\") AS \"m4\" FROM \"cpu\" GROUP BY time(1m)"
        );
        let a = answer(vec![vec![
            json!(0),
            json!(10),
            json!(2),
            json!(2),
            json!(6),
            json!(4),
        ]]);
        let b = answer(vec![vec![
            json!(0),
            json!(5),
            json!(3),
            json!(3),
            json!(9),
            json!(1),
        ]]);
        let merged = plan.merge(vec![a, b]);
        assert_eq!(
            merged.series[0].columns,
            vec!["time", "mean", "count", "spread"]
        );
        assert_eq!(
            merged.series[0].values[0],
            vec![json!(0), json!(3), json!(5), json!(8)]
        );
    }

    #[test]
    fn refusals_say_why() {
        let error = plan(&select("SELECT percentile(v, 95) FROM cpu")).unwrap_err();
        assert!(error.0.contains("percentile() cannot be merged"), "{error}");
        assert!(plan(&select("SELECT mean(v) * 2 FROM cpu")).is_err());
        assert!(plan(&select("SELECT first(v), last(v) FROM cpu")).is_err());
        assert!(plan(&select("SELECT first(v) FROM cpu")).is_ok());
    }

    #[test]
    fn sole_selector_keeps_the_point_time() {
        let plan = plan(&select("SELECT max(v) FROM cpu")).unwrap();
        let a = answer(vec![vec![json!(100), json!(7)]]);
        let b = answer(vec![vec![json!(50), json!(9)]]);
        let merged = plan.merge(vec![a, b]);
        assert_eq!(merged.series[0].values[0], vec![json!(50), json!(9)]);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::influxql::ast::Statement;
    use crate::influxql::parser::parse_query;
    use proptest::prelude::*;
    use serde_json::json;

    /// What one group's replica answers to the rewritten statement, for its own points: one
    /// row per 10 ns bucket holding points (count, sum, min, max, sum, count, max, min).
    fn group_answer(points: &[(i64, i64)]) -> StatementResult {
        let mut buckets: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for (t, v) in points {
            buckets.entry(t - t % 10).or_default().push(*v);
        }
        let values = buckets
            .into_iter()
            .map(|(bucket, vs)| {
                let (count, sum) = (vs.len() as i64, vs.iter().sum::<i64>());
                let (min, max) = (*vs.iter().min().unwrap(), *vs.iter().max().unwrap());
                vec![
                    json!(bucket),
                    json!(count),
                    json!(sum),
                    json!(min),
                    json!(max),
                    json!(sum),
                    json!(count),
                    json!(max),
                    json!(min),
                ]
            })
            .collect();
        StatementResult {
            series: vec![Series {
                name: "m".into(),
                values,
                ..Series::default()
            }],
            ..StatementResult::default()
        }
    }

    proptest! {
        /// Points spread over groups in any way: the recombined buckets equal the buckets of
        /// all points in one place.
        #[test]
        fn recombined_buckets_equal_one_complete_answer(
            points in proptest::collection::btree_map(0i64..200, -50i64..50, 1..80),
            groups in proptest::collection::vec(0usize..3, 80),
        ) {
            let Statement::Select(select) = parse_query(
                "SELECT count(v), sum(v), min(v), max(v), mean(v), spread(v) FROM m GROUP BY time(10ns) fill(none)",
            ).unwrap().remove(0) else { unreachable!() };
            let plan = plan(&select).unwrap();
            let all: Vec<(i64, i64)> = points.into_iter().collect();
            let mut parts = [Vec::new(), Vec::new(), Vec::new()];
            for (i, point) in all.iter().enumerate() {
                parts[groups[i % groups.len()]].push(*point);
            }
            let answers = parts.iter().filter(|p| !p.is_empty()).map(|p| group_answer(p)).collect();
            let merged = plan.merge(answers);
            let complete = group_answer(&all);
            let expected: Vec<Vec<Value>> = complete.series[0]
                .values
                .iter()
                .map(|row| {
                    let count = row[1].as_i64().unwrap();
                    let sum = row[2].as_i64().unwrap();
                    let (min, max) = (row[3].as_i64().unwrap(), row[4].as_i64().unwrap());
                    vec![
                        row[0].clone(),
                        json!(count),
                        json!(sum),
                        json!(min),
                        json!(max),
                        float_value(sum as f64 / count as f64),
                        json!(max - min),
                    ]
                })
                .collect();
            prop_assert_eq!(&merged.series[0].values, &expected);
        }
    }
}
