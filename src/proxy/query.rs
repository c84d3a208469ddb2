//! `GET|POST /query`: InfluxDB 1.x's query API in front of the shard groups. Each statement is
//! parsed, its groups found (the `index` parameter, or `WHERE "index" = ...` / `=~`), read
//! access checked, then fanned out and merged:
//! - raw `SELECT`: every reachable replica of every group, union (`influxql::merge::raw`);
//! - aggregates: one in-sync replica per group, failing over; several groups are recombined
//!   (`influxql::merge::aggregate`) or refused with a 400 saying why;
//! - `SHOW`: every reachable replica, union, dedup, sort;
//! - DDL: every replica of every group, queued (`query::ddl`) for those that are down;
//! - anything else: only when the map has one group with one backend, else a 400.
//!
//! Replicas are always asked for nanosecond epochs in chunks, read as they arrive and cut off at
//! `query.max_rows`; times are converted to the client's `epoch` at the end. A request that is
//! one raw `SELECT` needing a merge is merged while the replicas answer (`query::stream`, replicas
//! asked in MessagePack) and, past 1 MiB, streamed to the client in bounded memory. A group that no
//! replica of answered makes the answer partial: an `X-Monitor-Partial` header and a warning in
//! the statement's `messages`. It must never pass a partial answer off as complete, nor merge
//! what it cannot merge exactly.

mod answer;
pub mod ddl;
mod fanout;
mod params;
mod plan;
mod stream;
mod twins;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;

use crate::influxql::parse_query;
use crate::influxql::result::{Message, TimeFormat, convert_times};
use crate::telemetry::RequestId;

use super::body::{BodyLimits, read_body};
use super::state::AppState;
use answer::{influx_error, refuse, respond};
use ddl::DdlQueue;
use fanout::Executor;
use params::QueryParams;
use plan::{Plan, Planner, Refusal};

/// Largest `q` body accepted.
const MAX_QUERY_BODY: usize = 16 << 20;

/// What the query path keeps between requests: the pending DDL list.
pub struct QueryRuntime {
    /// Absent only when its file could not be opened at start (logged).
    pub ddl: Option<Arc<DdlQueue>>,
}

impl QueryRuntime {
    /// Opens the pending DDL list under `<data_dir>/query/` and, inside a tokio runtime,
    /// starts its retry task.
    pub fn start(state: &Arc<AppState>) -> Result<Arc<QueryRuntime>, ddl::DdlQueueError> {
        let config = state.config.snapshot();
        let queue = Arc::new(DdlQueue::open(&config.data_dir.join("query"))?);
        if tokio::runtime::Handle::try_current().is_ok() {
            queue.clone().spawn(
                state.pipeline.clone(),
                config.query.ddl_retry_interval.get(),
                state.metrics.clone(),
            );
        }
        Ok(Arc::new(QueryRuntime { ddl: Some(queue) }))
    }

    /// A runtime that cannot queue DDL (its file could not be opened).
    pub fn without_queue() -> Arc<QueryRuntime> {
        Arc::new(QueryRuntime { ddl: None })
    }
}

/// `GET|POST /query`.
pub async fn handle(
    State(state): State<Arc<AppState>>,
    Extension(runtime): Extension<Arc<QueryRuntime>>,
    method: Method,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let rid = RequestId::from_headers(&headers);
    let rid = rid.as_str();
    let config = state.config.snapshot();
    // As Go's `FormValue`: the form body's values first, then the URL's; the first one wins.
    let mut pairs: Vec<(String, String)> = Vec::new();
    if method == Method::POST {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let limits = BodyLimits {
            max_wire_bytes: MAX_QUERY_BODY,
            max_decoded_bytes: MAX_QUERY_BODY,
        };
        let content_length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let encoding = headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok());
        match read_body(body, content_length, encoding, limits).await {
            Ok(bytes) if is_form && !bytes.is_empty() => {
                pairs.extend(url::form_urlencoded::parse(&bytes).into_owned());
            }
            Ok(_) => {}
            Err(error) => {
                let status =
                    StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
                return influx_error(status, &error.to_string(), rid);
            }
        }
    }
    if let Some(query) = raw_query.as_deref() {
        pairs.extend(url::form_urlencoded::parse(query.as_bytes()).into_owned());
    }
    let params = match QueryParams::from_pairs(pairs) {
        Ok(params) => params,
        Err(message) => return influx_error(StatusCode::BAD_REQUEST, &message, rid),
    };
    if params.q.trim().is_empty() {
        return influx_error(
            StatusCode::BAD_REQUEST,
            "missing required parameter \"q\"",
            rid,
        );
    }
    let bound = match params.params_json() {
        Ok(bound) => bound,
        Err(message) => return influx_error(StatusCode::BAD_REQUEST, &message, rid),
    };
    let statements = match parse_query(&params.q) {
        Ok(statements) => statements,
        Err(error) => {
            state.metrics.query.count_statement("unparsed", "refused");
            return influx_error(StatusCode::BAD_REQUEST, &error.to_string(), rid);
        }
    };
    let principal = match state.identify(&headers, params.password.as_deref()) {
        Ok(principal) => principal,
        Err(error) => return refuse(&Refusal::access(&error), rid),
    };
    let map = state.shardmap.snapshot();
    let planner = Planner {
        map: &map,
        index_tag: &config.index_tag,
        params: &params,
        bound: bound.as_ref(),
        principal: &principal,
    };
    let mut plans = Vec::with_capacity(statements.len());
    for statement in statements {
        match planner.plan(statement) {
            Ok(plan) => plans.push(plan),
            Err(refusal) => {
                state.metrics.query.count_statement("unplanned", "refused");
                return refuse(&refusal, rid);
            }
        }
    }
    let executor = Executor {
        state: &state,
        runtime: &runtime,
        params: &params,
        rid,
        max_rows: config.query.max_rows,
    };
    if let [plan] = plans.as_slice()
        && let Some(response) = executor.answer_directly(plan, &headers).await
    {
        state.metrics.query.count_statement(plan.kind(), "ok");
        return response;
    }
    if let [
        Plan::Raw {
            select,
            window,
            groups,
            ..
        },
    ] = plans.as_slice()
        && !params.pretty
    {
        return executor
            .respond_raw(select, *window, groups, &headers)
            .await;
    }
    let mut results = Vec::with_capacity(plans.len());
    let mut partial = false;
    let format = TimeFormat::from_epoch(params.epoch.as_deref());
    for (statement_id, plan) in plans.iter().enumerate() {
        let kind = plan.kind();
        let mut result = executor.execute(plan).await;
        result.statement_id = statement_id;
        if let Plan::Ddl(ddl) = plan
            && method == Method::GET
            && result.error.is_none()
        {
            // What InfluxDB says when DDL comes by GET (it still applies it).
            result.messages.insert(
                0,
                Message::warning(format!(
                    "deprecated use of '{}' in a read only context, please use a POST request instead",
                    ddl.text
                )),
            );
        }
        let outcome = if result.error.is_some() {
            "error"
        } else if result.partial {
            "partial"
        } else {
            "ok"
        };
        state.metrics.query.count_statement(kind, outcome);
        if result.partial {
            partial = true;
            // InfluxDB's `partial` flag means "more chunks follow"; ours is the header and message.
            result.partial = false;
        }
        convert_times(&mut result, format);
        results.push(result);
    }
    if partial {
        state.metrics.query.partial_answers.inc();
    }
    respond(&params, &headers, results, partial, rid)
}

#[cfg(test)]
mod tests {
    use super::answer::{accepts_gzip, chunked_documents};
    use super::plan::and_index;
    use super::*;
    use crate::influxql::ast::Expr;
    use crate::influxql::result::{Series, StatementResult};
    use axum::http::{HeaderValue, header};
    use serde_json::json;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn first_value_of_a_parameter_wins_and_bad_chunk_sizes_are_refused() {
        let params = QueryParams::from_pairs(pairs(&[
            ("q", "SHOW DATABASES"),
            ("db", "form"),
            ("db", "url"),
            ("chunked", "true"),
            ("chunk_size", "5"),
        ]))
        .unwrap();
        assert_eq!(params.db.as_deref(), Some("form"));
        assert!(params.chunked);
        assert_eq!(params.chunk_size, Some(5));
        assert!(QueryParams::from_pairs(pairs(&[("chunk_size", "0")])).is_err());
        assert!(QueryParams::from_pairs(pairs(&[("chunk_size", "x")])).is_err());
    }

    #[test]
    fn chunks_cut_series_as_influxdb_does() {
        let result = StatementResult {
            statement_id: 1,
            series: vec![Series {
                name: "cpu".into(),
                columns: vec!["time".into(), "v".into()],
                values: (0..5).map(|i| vec![json!(i), json!(i)]).collect(),
                ..Series::default()
            }],
            ..StatementResult::default()
        };
        let documents = chunked_documents(vec![result], 2);
        let shapes: Vec<(usize, bool, bool)> = documents
            .iter()
            .map(|d| {
                let r = &d.results[0];
                (r.series[0].values.len(), r.series[0].partial, r.partial)
            })
            .collect();
        assert_eq!(
            shapes,
            vec![(2, true, true), (2, true, true), (1, false, false)]
        );
    }

    #[test]
    fn gzip_only_when_accepted() {
        let mut headers = HeaderMap::new();
        assert!(!accepts_gzip(&headers));
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("deflate, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&headers));
    }

    #[test]
    fn index_parameter_narrows_the_condition() {
        let narrowed = and_index(Some(Expr::Bool(true)), "index", "c1");
        assert_eq!(
            crate::influxql::render::render_expr(&narrowed),
            "\"index\" = 'c1' AND (true)"
        );
    }
}
