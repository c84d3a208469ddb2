//! The search APIs of `monitor-api`: `GET /api/v1/traces/{traceid}` (every tracelog line of one
//! trace, across groups, oldest first, with its spans) and `GET /api/v1/logs` (log lines by
//! index, host, source, level, substring and time, newest first, as JSON or line protocol).
//!
//! Both ask every reachable replica of every group concerned and merge: union, one copy of each
//! point, sorted, then the limit. A group none of whose replicas answered makes the answer
//! partial (`"partial": true`, `partial_groups`, and an `X-Monitor-Partial` header); it is never
//! passed off as complete. It must never return a line of an index the token may not read, and
//! never put request text into InfluxQL except through the escaping in [`influxql`].
//!
//! Decisions (see the README's "Searching traces and logs"):
//! - `start`/`end`: RFC 3339, integer epoch nanoseconds, or a duration meaning that long before
//!   now (`15m`); a bare integer is never guessed to be milliseconds.
//! - `/api/v1/logs` without `start` covers `search.logs_default_range` (1h) before now; without
//!   `end` it has no upper bound. `limit` defaults to 100 and is lowered to
//!   `search.logs_max_limit`. A trace has no default range (the trace id is an indexed tag).
//! - `db` defaults to `search.database` and is mapped per replica as writes are.
//! - `index` on a trace narrows the search to that index's group (and needs read access to it);
//!   on logs it is a filter. Without `index`, a token that may read only some indexes sees only
//!   lines of those.

pub mod fanout;
pub mod influxql;
pub mod render;
pub mod time;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::ApiConfig;
use crate::shard::{AccessError, Action, Principal, ShardMap};
use crate::telemetry::RequestId;

use super::response::{common_headers, influx_error};
use super::state::AppState;
use fanout::{GroupAnswer, GroupRequest, Row, ask_groups, column_values, rows_of};
use influxql::{Condition, Order, search_statements, tag_values_statement};
use render::{MSG_FIELD, TimeOrder, line_json, line_protocol, merge, spans_json};
use time::{format_rfc3339_nanos, now_ns, parse_time_param};

/// The header that lists the groups missing from a partial answer.
pub const PARTIAL_HEADER: &str = "x-monitor-partial";
/// Default `limit` of `/api/v1/logs`.
pub const DEFAULT_LOGS_LIMIT: usize = 100;
/// Longest trace id accepted (the statement carries it).
const MAX_TRACE_ID_BYTES: usize = 1024;

/// An answer that is not a search result.
struct Failure {
    status: StatusCode,
    /// The metrics label.
    outcome: &'static str,
    message: String,
    partial_groups: Vec<String>,
}

impl Failure {
    fn new(status: StatusCode, outcome: &'static str, message: impl Into<String>) -> Self {
        Failure {
            status,
            outcome,
            message: message.into(),
            partial_groups: Vec::new(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn access(error: &AccessError) -> Self {
        let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::FORBIDDEN);
        let outcome = if status == StatusCode::UNAUTHORIZED {
            "unauthorized"
        } else {
            "forbidden"
        };
        Self::new(status, outcome, error.to_string())
    }

    fn into_response(self, request_id: &str) -> Response {
        let mut response = influx_error(self.status, &self.message, request_id);
        mark_partial(&mut response, &self.partial_groups);
        response
    }
}

fn mark_partial(response: &mut Response, partial_groups: &[String]) {
    if partial_groups.is_empty() {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(&partial_groups.join(",")) {
        response.headers_mut().insert(PARTIAL_HEADER, value);
    }
}

/// Who is asking, for the per-line read check.
struct Reader {
    principal: Principal,
}

impl Reader {
    fn authenticate(
        state: &AppState,
        headers: &HeaderMap,
        params: &HashMap<String, String>,
    ) -> Result<Reader, Failure> {
        let principal = state
            .identify(headers, params.get("p").map(String::as_str))
            .map_err(|e| Failure::access(&e))?;
        Ok(Reader { principal })
    }

    fn reads_everything(&self) -> bool {
        self.principal.reads_everything()
    }

    fn check(&self, index: &str) -> Result<(), Failure> {
        self.principal
            .check(Action::Read, index.as_bytes())
            .map_err(|e| Failure::access(&e))
    }

    fn may_read(&self, index: Option<&String>) -> bool {
        self.reads_everything() || index.is_some_and(|index| self.check(index).is_ok())
    }
}

/// A group to ask, from the shard map.
struct Target {
    group: String,
    replicated: bool,
}

/// The groups a search covers: the index's group, or all.
fn targets(map: &ShardMap, index: Option<&str>) -> Result<Vec<Target>, Failure> {
    let target = |g: &crate::shard::Group| Target {
        group: g.name.clone(),
        replicated: g.replicated,
    };
    match index {
        Some(index) => map
            .route_group(index.as_bytes())
            .map(|g| vec![target(g)])
            .map_err(|e| Failure::bad_request(e.to_string())),
        None => Ok(map.groups().iter().map(target).collect()),
    }
}

fn request_for(state: &AppState, target: &Target, statement: String) -> GroupRequest {
    GroupRequest {
        group: target.group.clone(),
        replicated: target.replicated,
        replicas: state
            .pipeline
            .group(&target.group)
            .map(|g| g.read_replicas())
            .unwrap_or_default(),
        statement,
    }
}

/// The groups that answered and those that did not; a group whose replicas refused the
/// statement fails the whole request (502), as a wrong answer would be worse than none.
struct Gathered {
    answered: Vec<(String, Vec<Row>)>,
    partial_groups: Vec<String>,
}

fn gather(
    answers: Vec<GroupAnswer>,
    parse: impl Fn(&[fanout::StatementResult]) -> Vec<Row>,
    request_id: &str,
) -> Result<Gathered, Failure> {
    let mut gathered = Gathered {
        answered: Vec::new(),
        partial_groups: Vec::new(),
    };
    for answer in answers {
        for failure in &answer.failures {
            tracing::warn!(group = %answer.group, request_id, failure = ?failure, "search: a replica gave no answer");
        }
        if let Some(message) = answer.refusal() {
            return Err(Failure::new(
                StatusCode::BAD_GATEWAY,
                "backend_error",
                format!("a backend refused the search: {message}"),
            ));
        }
        if answer.answers.is_empty() {
            gathered.partial_groups.push(answer.group);
            continue;
        }
        let rows = answer.answers.iter().flat_map(|a| parse(a)).collect();
        gathered.answered.push((answer.group, rows));
    }
    Ok(gathered)
}

fn database(params: &HashMap<String, String>, config: &ApiConfig) -> String {
    params
        .get("db")
        .filter(|db| !db.is_empty())
        .cloned()
        .unwrap_or_else(|| config.search.database.clone())
}

fn non_empty<'a>(params: &'a HashMap<String, String>, key: &str) -> Option<&'a str> {
    params
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn time_range(
    params: &HashMap<String, String>,
    default_start: Option<i64>,
) -> Result<(Option<i64>, Option<i64>), Failure> {
    let now = now_ns();
    let parse = |key: &'static str| {
        non_empty(params, key)
            .map(|v| parse_time_param(key, v, now))
            .transpose()
            .map_err(|e| Failure::bad_request(e.to_string()))
    };
    let start = parse("start")?.or(default_start);
    let end = parse("end")?;
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(Failure::bad_request(format!(
            "start ({}) is after end ({})",
            format_rfc3339_nanos(start),
            format_rfc3339_nanos(end)
        )));
    }
    Ok((start, end))
}

fn time_conditions(start: Option<i64>, end: Option<i64>) -> Vec<Condition> {
    let mut conditions = Vec::new();
    if let Some(start) = start {
        conditions.push(Condition::From(start));
    }
    if let Some(end) = end {
        conditions.push(Condition::Until(end));
    }
    conditions
}

fn finish(
    state: &AppState,
    kind: &'static str,
    started: Instant,
    request_id: &str,
    result: Result<(Response, &'static str), Failure>,
) -> Response {
    let (response, outcome) = match result {
        Ok(answer) => answer,
        Err(failure) => {
            let outcome = failure.outcome;
            (failure.into_response(request_id), outcome)
        }
    };
    state
        .metrics
        .count_search(kind, outcome, started.elapsed().as_secs_f64());
    tracing::debug!(kind, outcome, request_id, status = %response.status(), "search answered");
    response
}

fn json_answer(value: &Value, request_id: &str, partial_groups: &[String]) -> Response {
    let mut headers = common_headers(request_id);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut response = (StatusCode::OK, headers, value.to_string()).into_response();
    mark_partial(&mut response, partial_groups);
    response
}

fn outcome_of(partial_groups: &[String]) -> &'static str {
    if partial_groups.is_empty() {
        "ok"
    } else {
        "partial"
    }
}

/// `GET /api/v1/traces/{traceid}?index=&start=&end=&db=`.
pub async fn trace(
    State(state): State<Arc<AppState>>,
    Path(trace_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let request_id = RequestId::from_headers(&headers);
    let rid = request_id.as_str();
    let result = search_trace(&state, &trace_id, &params, &headers, rid).await;
    finish(&state, "trace", started, rid, result)
}

async fn search_trace(
    state: &AppState,
    trace_id: &str,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<(Response, &'static str), Failure> {
    let reader = Reader::authenticate(state, headers, params)?;
    if trace_id.is_empty() || trace_id.len() > MAX_TRACE_ID_BYTES {
        return Err(Failure::bad_request(format!(
            "the trace id must be 1 to {MAX_TRACE_ID_BYTES} bytes"
        )));
    }
    let index = non_empty(params, "index");
    if let Some(index) = index {
        reader.check(index)?;
    }
    let config = state.config.snapshot();
    let classifier = &state.classifier;
    let index_tag = String::from_utf8_lossy(&classifier.index_tag).into_owned();
    let trace_tag = String::from_utf8_lossy(&classifier.trace_id_tag).into_owned();
    let measurement = String::from_utf8_lossy(&classifier.tracelog_measurement).into_owned();
    let db = database(params, &config);
    let (start, end) = time_range(params, None)?;
    let targets = targets(&state.shardmap.snapshot(), index)?;

    let mut conditions = vec![Condition::Equals(trace_tag.clone(), trace_id.to_owned())];
    conditions.extend(time_conditions(start, end));
    let cap = config.search.trace_max_lines;
    let statement = search_statements(
        &measurement,
        &conditions,
        Order::Ascending,
        cap.saturating_add(1),
    );
    let requests = targets
        .iter()
        .map(|t| request_for(state, t, statement.clone()))
        .collect();
    let answers = ask_groups(requests, &db, request_id).await;
    let gathered = gather(answers, rows_of, request_id)?;
    let all_rows = gathered.answered.into_iter().flat_map(|(_, rows)| rows);
    let readable: Vec<Row> = all_rows
        .filter(|row| reader.may_read(row.tags.get(&index_tag)))
        .collect();
    let mut rows = merge(readable, TimeOrder::OldestFirst);
    let truncated = rows.len() > cap;
    rows.truncate(cap);
    let partial = gathered.partial_groups;
    if rows.is_empty() {
        if partial.is_empty() {
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("trace {trace_id:?} not found"),
            ));
        }
        return Err(Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            outcome: "unavailable",
            message: format!(
                "trace {trace_id:?} not found in the groups that answered; no replica of {} could be reached",
                partial.join(", ")
            ),
            partial_groups: partial,
        });
    }
    let (span, spans) = spans_json(&rows);
    let lines: Vec<Value> = rows
        .iter()
        .map(|row| line_json(row, &index_tag, Some(&trace_tag)))
        .collect();
    let groups: BTreeSet<&str> = targets.iter().map(|t| t.group.as_str()).collect();
    let body = json!({
        "traceid": trace_id,
        "database": db,
        "groups": groups,
        "partial": !partial.is_empty(),
        "partial_groups": partial,
        "truncated": truncated,
        "count": lines.len(),
        "span": span,
        "spans": spans,
        "lines": lines,
    });
    Ok((
        json_answer(&body, request_id, &partial),
        outcome_of(&partial),
    ))
}

/// `GET /api/v1/logs?index=&host=&source=&level=&contains=&start=&end=&limit=&format=&db=`.
pub async fn logs(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let request_id = RequestId::from_headers(&headers);
    let rid = request_id.as_str();
    let result = search_logs(&state, &params, &headers, rid).await;
    finish(&state, "logs", started, rid, result)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    LineProtocol,
}

async fn search_logs(
    state: &AppState,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<(Response, &'static str), Failure> {
    let reader = Reader::authenticate(state, headers, params)?;
    let config = state.config.snapshot();
    let format = match non_empty(params, "format") {
        None | Some("json") => Format::Json,
        Some("lp") => Format::LineProtocol,
        Some(other) => {
            return Err(Failure::bad_request(format!(
                "invalid format {other:?}: use json or lp"
            )));
        }
    };
    let limit = match non_empty(params, "limit") {
        None => DEFAULT_LOGS_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(Failure::bad_request(format!(
                    "invalid limit {text:?}: use a positive integer"
                )));
            }
        },
    }
    .min(config.search.logs_max_limit);
    let index = non_empty(params, "index");
    if let Some(index) = index {
        reader.check(index)?;
    }
    let default_range =
        i64::try_from(config.search.logs_default_range.get().as_nanos()).unwrap_or(i64::MAX);
    let (start, end) = time_range(params, Some(now_ns().saturating_sub(default_range)))?;
    let classifier = &state.classifier;
    let index_tag = String::from_utf8_lossy(&classifier.index_tag).into_owned();
    let measurement = String::from_utf8_lossy(&classifier.log_measurement).into_owned();
    let db = database(params, &config);
    let targets = targets(&state.shardmap.snapshot(), index)?;

    let mut conditions = time_conditions(start, end);
    if let Some(index) = index {
        conditions.push(Condition::Equals(index_tag.clone(), index.to_owned()));
    }
    for key in ["host", "source", "level"] {
        if let Some(value) = non_empty(params, key) {
            conditions.push(Condition::Equals(key.to_owned(), value.to_owned()));
        }
    }
    if let Some(text) = non_empty(params, "contains") {
        conditions.push(Condition::Contains(MSG_FIELD.to_owned(), text.to_owned()));
    }

    let mut partial_groups = Vec::new();
    // A token that may read only some indexes: learn which indexes each group holds and ask for
    // exactly the readable ones, so the backends' LIMIT counts only lines this token may see.
    let mut per_group_indexes: HashMap<String, Vec<String>> = HashMap::new();
    let restricted = index.is_none() && !reader.reads_everything();
    if restricted {
        let statement = tag_values_statement(&measurement, &index_tag);
        let requests = targets
            .iter()
            .map(|t| request_for(state, t, statement.clone()))
            .collect();
        let answers = ask_groups(requests, &db, request_id).await;
        for answer in answers {
            if let Some(message) = answer.refusal() {
                return Err(Failure::new(
                    StatusCode::BAD_GATEWAY,
                    "backend_error",
                    format!("a backend refused the search: {message}"),
                ));
            }
            if answer.answers.is_empty() {
                partial_groups.push(answer.group);
                continue;
            }
            let readable: BTreeSet<String> = answer
                .answers
                .iter()
                .filter_map(|results| results.first())
                .flat_map(|result| column_values(result, "value"))
                .filter(|index| reader.may_read(Some(index)))
                .collect();
            per_group_indexes.insert(answer.group, readable.into_iter().collect());
        }
    }
    let requests = targets
        .iter()
        .filter_map(|target| {
            let mut conditions = conditions.clone();
            if restricted {
                let indexes = per_group_indexes.get(&target.group)?;
                if indexes.is_empty() {
                    return None;
                }
                conditions.push(Condition::OneOf(index_tag.clone(), indexes.clone()));
            }
            let statement = search_statements(&measurement, &conditions, Order::Descending, limit);
            Some(request_for(state, target, statement))
        })
        .collect::<Vec<_>>();
    let answers = ask_groups(requests, &db, request_id).await;
    let gathered = gather(answers, rows_of, request_id)?;
    partial_groups.extend(gathered.partial_groups);
    let answered = gathered.answered.len();
    let readable: Vec<Row> = gathered
        .answered
        .into_iter()
        .flat_map(|(_, rows)| rows)
        .filter(|row| reader.may_read(row.tags.get(&index_tag)))
        .collect();
    let mut rows = merge(readable, TimeOrder::NewestFirst);
    rows.truncate(limit);
    let nothing_answered = answered == 0 && per_group_indexes.is_empty();
    if nothing_answered && !partial_groups.is_empty() {
        return Err(Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            outcome: "unavailable",
            message: format!(
                "no replica of {} could be reached",
                partial_groups.join(", ")
            ),
            partial_groups,
        });
    }
    let outcome = outcome_of(&partial_groups);
    if format == Format::LineProtocol {
        let body = line_protocol(&rows, &measurement);
        let mut headers = common_headers(request_id);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let mut response = (StatusCode::OK, headers, body).into_response();
        mark_partial(&mut response, &partial_groups);
        return Ok((response, outcome));
    }
    let lines: Vec<Value> = rows
        .iter()
        .map(|row| line_json(row, &index_tag, None))
        .collect();
    let groups: BTreeSet<&str> = targets.iter().map(|t| t.group.as_str()).collect();
    let body = json!({
        "database": db,
        "start": start.map(format_rfc3339_nanos),
        "end": end.map(format_rfc3339_nanos),
        "limit": limit,
        "groups": groups,
        "partial": !partial_groups.is_empty(),
        "partial_groups": partial_groups,
        "count": lines.len(),
        "lines": lines,
    });
    Ok((json_answer(&body, request_id, &partial_groups), outcome))
}
