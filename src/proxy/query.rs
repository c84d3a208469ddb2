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
//! `query.max_rows`; times are converted to the client's `epoch` at the end. A group that no
//! replica of answered makes the answer partial: an `X-Monitor-Partial` header and a warning in
//! the statement's `messages`. It must never pass a partial answer off as complete, nor merge
//! what it cannot merge exactly.

pub mod ddl;

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Extension, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::task::JoinSet;

use crate::backend::client::{BackendError, QueryReply, QueryRequest};
use crate::influxql::ast::{BinaryOp, Ddl, Expr, Select, Show, ShowKind, Source, Statement};
use crate::influxql::index::{IndexSelection, index_selection};
use crate::influxql::merge::{self, AggregatePlan, Window};
use crate::influxql::parse_query;
use crate::influxql::render::{render_ddl, render_select, render_show};
use crate::influxql::result::{
    Message, QueryResponse, Series, StatementResult, TimeFormat, convert_times,
};
use crate::replication::pipeline::ReadReplica;
use crate::shard::{AccessError, Action, Principal, ShardMap, extract_token};
use crate::telemetry::RequestId;
use crate::telemetry::metrics::ReplicaLabels;

use super::body::{BodyLimits, read_body};
use super::response::common_headers;
use super::state::AppState;
use ddl::DdlQueue;

/// Rows per chunk asked of the replicas (their answers are read chunk by chunk).
const REPLICA_CHUNK_ROWS: &str = "10000";
/// Rows per chunk of a `chunked=true` answer when the client gives no `chunk_size`.
const DEFAULT_CHUNK_ROWS: usize = 10_000;
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

/// The request's parameters (URL, then form body, which wins as in InfluxDB).
#[derive(Debug, Default)]
struct QueryParams {
    q: String,
    db: Option<String>,
    rp: Option<String>,
    epoch: Option<String>,
    chunked: bool,
    chunk_size: Option<usize>,
    params: Option<String>,
    index: Option<String>,
    pretty: bool,
    password: Option<String>,
}

impl QueryParams {
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, String> {
        let mut p = QueryParams::default();
        let mut seen = std::collections::HashSet::new();
        for (key, value) in pairs {
            if !seen.insert(key.clone()) {
                continue;
            }
            let non_empty = (!value.is_empty()).then(|| value.clone());
            match key.as_str() {
                "q" => p.q = value,
                "db" => p.db = non_empty,
                "rp" => p.rp = non_empty,
                "epoch" => p.epoch = non_empty,
                "chunked" => p.chunked = value == "true",
                "chunk_size" => {
                    p.chunk_size = match value.parse::<usize>() {
                        Ok(0) | Err(_) if !value.is_empty() => {
                            return Err(format!("invalid chunk_size {value:?}"));
                        }
                        Ok(n) => Some(n),
                        Err(_) => None,
                    }
                }
                "params" => p.params = non_empty,
                "index" => p.index = non_empty,
                "pretty" => p.pretty = value == "true",
                "p" => p.password = non_empty,
                _ => {}
            }
        }
        Ok(p)
    }

    fn params_json(&self) -> Result<Option<Value>, String> {
        match &self.params {
            None => Ok(None),
            Some(text) => serde_json::from_str::<Value>(text)
                .map(Some)
                .map_err(|e| format!("error parsing query parameters: {e}")),
        }
    }
}

/// How one statement is answered.
enum Plan {
    Raw {
        /// What replicas are asked when several answer (LIMIT+OFFSET, no OFFSET).
        select: Box<Select>,
        /// The statement as the client meant it, for a group with a single replica.
        original: Box<Select>,
        window: Window,
        groups: Vec<String>,
    },
    AggregateOne {
        select: Box<Select>,
        group: String,
    },
    AggregateMany {
        plan: Box<AggregatePlan>,
        groups: Vec<String>,
    },
    Show {
        original: Box<Show>,
        replica_show: Box<Show>,
        groups: Vec<String>,
    },
    Ddl(Ddl),
    PassThrough {
        text: String,
        group: String,
    },
}

impl Plan {
    fn kind(&self) -> &'static str {
        match self {
            Plan::Raw { .. } => "select_raw",
            Plan::AggregateOne { .. } | Plan::AggregateMany { .. } => "select_aggregate",
            Plan::Show { .. } => "show",
            Plan::Ddl(_) => "ddl",
            Plan::PassThrough { .. } => "other",
        }
    }
}

/// A refusal before any backend is asked.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn access(error: &AccessError) -> Self {
        Refusal {
            status: StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::FORBIDDEN),
            message: error.to_string(),
        }
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
    let access = state.access.snapshot();
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = match extract_token(authorization, params.password.as_deref()) {
        Ok(token) => token,
        Err(error) => return refuse(&Refusal::access(&error), rid),
    };
    let principal = match access.authenticate(token.as_deref()) {
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
        admin: || access.check_admin(token.as_deref()),
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

/// `{"error": message}` followed by a newline, as InfluxDB's query handler writes it.
fn influx_error(status: StatusCode, message: &str, rid: &str) -> Response {
    let response = super::response::influx_error(status, message, rid);
    let (parts, _) = response.into_parts();
    let mut body = serde_json::json!({ "error": message }).to_string();
    body.push('\n');
    Response::from_parts(parts, Body::from(body))
}

fn refuse(refusal: &Refusal, rid: &str) -> Response {
    influx_error(refusal.status, &refusal.message, rid)
}

struct Planner<'a, F: Fn() -> Result<(), AccessError>> {
    map: &'a ShardMap,
    index_tag: &'a str,
    params: &'a QueryParams,
    bound: Option<&'a Value>,
    principal: &'a Principal<'a>,
    admin: F,
}

fn index_condition(index_tag: &str, index: &str) -> Expr {
    Expr::Binary {
        op: BinaryOp::Eq,
        lhs: Box::new(Expr::VarRef {
            name: index_tag.to_owned(),
            cast: None,
        }),
        rhs: Box::new(Expr::String(index.to_owned())),
    }
}

/// `index_tag = 'index' AND (condition)`.
fn and_index(condition: Option<Expr>, index_tag: &str, index: &str) -> Expr {
    let narrowing = index_condition(index_tag, index);
    match condition {
        None => narrowing,
        Some(existing) => Expr::Binary {
            op: BinaryOp::And,
            lhs: Box::new(narrowing),
            rhs: Box::new(Expr::Paren(Box::new(existing))),
        },
    }
}

impl<F: Fn() -> Result<(), AccessError>> Planner<'_, F> {
    fn plan(&self, statement: Statement) -> Result<Plan, Refusal> {
        match statement {
            Statement::Select(select) => self.plan_select(*select),
            Statement::Show(show) => self.plan_show(show),
            Statement::Ddl(ddl) => {
                (self.admin)().map_err(|e| Refusal::access(&e))?;
                Ok(Plan::Ddl(ddl))
            }
            Statement::Other(text) => {
                (self.admin)().map_err(|e| Refusal::access(&e))?;
                match self.map.groups() {
                    [group] if group.replicated || group.replicas.len() == 1 => {
                        Ok(Plan::PassThrough {
                            text,
                            group: group.name.clone(),
                        })
                    }
                    _ => Err(Refusal::bad_request(format!(
                        "statement not supported through monitor-api with several shard groups or replicas (its answer could not be merged correctly): {text}"
                    ))),
                }
            }
        }
    }

    /// The groups a condition (plus the `index` parameter) reaches, with access checked.
    fn groups_for(&self, condition: Option<&Expr>) -> Result<Vec<String>, Refusal> {
        let selection = match &self.params.index {
            Some(index) => Some(IndexSelection {
                names: vec![index.clone()],
                regexes: Vec::new(),
            }),
            None => index_selection(condition, self.index_tag, self.bound),
        };
        let everything = || self.map.groups().iter().map(|g| g.name.clone()).collect();
        let Some(selection) = selection else {
            self.principal
                .check(Action::Read, b"*")
                .map_err(|_| Refusal {
                    status: StatusCode::FORBIDDEN,
                    message: format!(
                        "this token may read only some indexes: name one with the index parameter or WHERE \"{}\" = '...'",
                        self.index_tag
                    ),
                })?;
            return Ok(everything());
        };
        for name in &selection.names {
            self.principal
                .check(Action::Read, name.as_bytes())
                .map_err(|e| Refusal::access(&e))?;
        }
        let mut groups: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if !groups.iter().any(|g| g == name) {
                groups.push(name.to_owned());
            }
        };
        for name in &selection.names {
            // An index no group takes has no data: it narrows to nothing.
            if let Ok(group) = self.map.route_group(name.as_bytes()) {
                add(&group.name);
            }
        }
        if !selection.regexes.is_empty() {
            self.principal
                .check(Action::Read, b"*")
                .map_err(|_| Refusal {
                    status: StatusCode::FORBIDDEN,
                    message: "this token may read only some indexes: a regex on the index tag needs read access to every index; name them".to_owned(),
                })?;
            let doc = self.map.doc();
            let only_exact = doc.default_group.is_none()
                && doc.indexes.keys().all(|k| {
                    matches!(
                        crate::config::parse_selector(k),
                        Ok(crate::config::SelectorKind::Exact(_))
                    )
                });
            if !only_exact {
                return Ok(everything());
            }
            for pattern in &selection.regexes {
                let regex = regex::Regex::new(pattern).map_err(|e| {
                    Refusal::bad_request(format!("invalid regex /{pattern}/ on the index tag: {e}"))
                })?;
                for (index, group) in doc.indexes.iter() {
                    if regex.is_match(index) {
                        add(group);
                    }
                }
            }
        }
        Ok(groups)
    }

    fn plan_select(&self, mut select: Select) -> Result<Plan, Refusal> {
        if select
            .sources
            .iter()
            .any(|s| matches!(s, Source::Subquery(_)))
        {
            return self.single_backend_or(
                render_select(&select, &|db: &str| db.to_owned()),
                "subqueries are not merged across shard groups or replicas",
            );
        }
        if select.into.is_some() {
            return self.single_backend_or(
                render_select(&select, &|db: &str| db.to_owned()),
                "SELECT INTO is not supported through monitor-api with several shard groups or replicas",
            );
        }
        let groups = self.groups_for(select.condition.as_ref())?;
        if let Some(index) = &self.params.index {
            select.condition = Some(and_index(select.condition.take(), self.index_tag, index));
        }
        if !select.is_aggregate() {
            let window = Window::of(&select);
            return Ok(Plan::Raw {
                select: Box::new(merge::replica_select(&select)),
                original: Box::new(select),
                window,
                groups,
            });
        }
        if groups.len() <= 1 {
            let Some(group) = groups.into_iter().next() else {
                // No group holds the index: an empty answer, from no replica.
                return Ok(Plan::Raw {
                    window: Window::of(&select),
                    original: Box::new(select.clone()),
                    select: Box::new(select),
                    groups: Vec::new(),
                });
            };
            return Ok(Plan::AggregateOne {
                select: Box::new(select),
                group,
            });
        }
        let plan = merge::aggregate::plan(&select).map_err(|e| Refusal::bad_request(e.0))?;
        Ok(Plan::AggregateMany {
            plan: Box::new(plan),
            groups,
        })
    }

    fn single_backend_or(&self, text: String, why: &str) -> Result<Plan, Refusal> {
        match self.map.groups() {
            [group] if group.replicated || group.replicas.len() == 1 => Ok(Plan::PassThrough {
                text,
                group: group.name.clone(),
            }),
            _ => Err(Refusal::bad_request(why)),
        }
    }

    fn plan_show(&self, mut show: Show) -> Result<Plan, Refusal> {
        let groups = match show.kind {
            // Schema of the databases themselves: every group, no index involved.
            ShowKind::Databases | ShowKind::RetentionPolicies => {
                self.map.groups().iter().map(|g| g.name.clone()).collect()
            }
            _ => {
                let groups = self.groups_for(show.condition.as_ref())?;
                if let Some(index) = &self.params.index
                    && show.kind != ShowKind::FieldKeys
                {
                    show.condition = Some(and_index(show.condition.take(), self.index_tag, index));
                }
                groups
            }
        };
        Ok(Plan::Show {
            replica_show: Box::new(merge::replica_show(&show)),
            original: Box::new(show),
            groups,
        })
    }
}

/// One replica's answer to one statement.
enum Answer {
    Result(StatementResult),
    TooManyRows,
}

struct Executor<'a> {
    state: &'a Arc<AppState>,
    runtime: &'a QueryRuntime,
    params: &'a QueryParams,
    rid: &'a str,
    max_rows: u64,
}

/// What a fan-out collected.
#[derive(Default)]
struct Collected {
    results: Vec<StatementResult>,
    errors: Vec<String>,
    too_many_rows: bool,
    unreachable_groups: Vec<String>,
    messages: Vec<Message>,
}

fn too_many_rows(max_rows: u64) -> String {
    format!(
        "the answer has more than {max_rows} rows (query.max_rows): narrow the time range, add a LIMIT, or raise query.max_rows"
    )
}

impl Executor<'_> {
    fn replicas(&self, group: &str) -> Vec<ReadReplica> {
        self.state
            .pipeline
            .group(group)
            .map(|g| g.read_replicas())
            .unwrap_or_default()
    }

    async fn execute(&self, plan: &Plan) -> StatementResult {
        match plan {
            Plan::Raw {
                select,
                window,
                groups,
                ..
            } => {
                let collected = self
                    .fan_out_all(groups, |db| render_select(select, db))
                    .await;
                self.finish(collected, |results| merge::merge_raw(results, window))
            }
            Plan::AggregateOne { select, group } => {
                let collected = self
                    .fan_out_one(std::slice::from_ref(group), |db| render_select(select, db))
                    .await;
                self.finish(collected, |mut results| results.pop().unwrap_or_default())
            }
            Plan::AggregateMany { plan, groups } => {
                let collected = self
                    .fan_out_one(groups, |db| render_select(&plan.group_select, db))
                    .await;
                self.finish(collected, |results| plan.merge(results))
            }
            Plan::Show {
                original,
                replica_show,
                groups,
            } => {
                let collected = self
                    .fan_out_all(groups, |db| render_show(replica_show, db))
                    .await;
                self.finish(collected, |results| merge::merge_show(original, results))
            }
            Plan::Ddl(ddl) => self.apply_ddl(ddl).await,
            Plan::PassThrough { text, group } => {
                let collected = self
                    .fan_out_one(std::slice::from_ref(group), |_| text.clone())
                    .await;
                self.finish(collected, |mut results| results.pop().unwrap_or_default())
            }
        }
    }

    /// One statement that one in-sync replica answers whole (an aggregate over one group, a
    /// raw SELECT over a group with one backend, a pass-through): its answer streams to the
    /// client as the replica sends it, in the client's epoch and chunking, with no parse and no
    /// copy of the whole. `None` when the statement needs a merge, the replica is not in sync
    /// (the answer must carry a warning) or does not answer: the merging path takes over.
    async fn answer_directly(&self, plan: &Plan, headers: &HeaderMap) -> Option<Response> {
        if self.params.pretty {
            return None;
        }
        let group: &str = match plan {
            Plan::AggregateOne { group, .. } | Plan::PassThrough { group, .. } => group,
            Plan::Raw { groups, .. } if groups.len() == 1 => &groups[0],
            _ => return None,
        };
        let replicas = self.replicas(group);
        if matches!(plan, Plan::Raw { .. }) && replicas.len() != 1 {
            return None;
        }
        let replica = replicas.into_iter().find(|r| r.in_sync)?;
        let text = {
            let map_db = |db: &str| replica.config.backend_database(db).to_owned();
            match plan {
                Plan::AggregateOne { select, .. } => render_select(select, &map_db),
                Plan::Raw { original, .. } => render_select(original, &map_db),
                Plan::PassThrough { text, .. } => text.clone(),
                _ => return None,
            }
        };
        let database = self.database_for(&replica);
        let chunk_size = self.params.chunked.then(|| {
            self.params
                .chunk_size
                .unwrap_or(DEFAULT_CHUNK_ROWS)
                .to_string()
        });
        let request = QueryRequest {
            statement: &text,
            database: database.as_deref(),
            retention_policy: self.params.rp.as_deref(),
            epoch: self.params.epoch.as_deref(),
            params: self.params.params.as_deref(),
            chunk_size: chunk_size.as_deref(),
        };
        let started = Instant::now();
        let reply = replica.client.query_lines(&request, self.rid).await;
        self.observe(group, &replica.id, started, reply.is_ok());
        let mut lines = match reply.ok()? {
            QueryReply::Answer(answer) => {
                // InfluxDB's own refusal (a 4xx), as it gave it.
                let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST);
                let mut response_headers = common_headers(self.rid);
                response_headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return Some((status, response_headers, answer.body).into_response());
            }
            QueryReply::Lines(lines) => lines,
        };
        let gzip = accepts_gzip(headers);
        let (sender, receiver) =
            tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        let replica_id = replica.id.clone();
        tokio::spawn(async move {
            let mut encoder = gzip
                .then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
            loop {
                let chunk = match lines.next_chunk().await {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) => break,
                    Err(error) => {
                        tracing::info!(replica = %replica_id, %error, "replica answer cut off while streaming it");
                        let _ = sender
                            .send(Err(std::io::Error::other(error.to_string())))
                            .await;
                        return;
                    }
                };
                let out = match encoder.as_mut() {
                    None => chunk,
                    Some(encoder) => {
                        if encoder
                            .write_all(&chunk)
                            .and_then(|()| encoder.flush())
                            .is_err()
                        {
                            return;
                        }
                        bytes::Bytes::from(std::mem::take(encoder.get_mut()))
                    }
                };
                if !out.is_empty() && sender.send(Ok(out)).await.is_err() {
                    // The client left: dropping `lines` closes the replica connection.
                    return;
                }
            }
            if let Some(encoder) = encoder
                && let Ok(rest) = encoder.finish()
            {
                let _ = sender.send(Ok(bytes::Bytes::from(rest))).await;
            }
        });
        let mut response_headers = common_headers(self.rid);
        response_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if gzip {
            response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Some(
            (
                StatusCode::OK,
                response_headers,
                Body::new(ChannelBody(receiver)),
            )
                .into_response(),
        )
    }

    /// Turns what a fan-out collected into the statement's result.
    fn finish(
        &self,
        collected: Collected,
        merge: impl FnOnce(Vec<StatementResult>) -> StatementResult,
    ) -> StatementResult {
        if collected.too_many_rows {
            return StatementResult::error(0, too_many_rows(self.max_rows));
        }
        if collected.results.is_empty()
            && let Some(error) = collected.errors.into_iter().next()
        {
            return StatementResult::error(0, error);
        }
        let mut result = merge(collected.results);
        if result.row_count() as u64 > self.max_rows {
            return StatementResult::error(0, too_many_rows(self.max_rows));
        }
        for message in collected.messages {
            if !result.messages.contains(&message) {
                result.messages.push(message);
            }
        }
        if !collected.unreachable_groups.is_empty() {
            result.partial = true;
            result.messages.push(Message::warning(format!(
                "partial answer: no replica of shard group(s) {} could be reached; their data is missing",
                collected.unreachable_groups.join(", ")
            )));
        }
        result
    }

    fn database_for(&self, replica: &ReadReplica) -> Option<String> {
        self.params
            .db
            .as_deref()
            .map(|db| replica.config.backend_database(db).to_owned())
    }

    /// Every reachable replica of every group (raw SELECT, SHOW).
    async fn fan_out_all(
        &self,
        groups: &[String],
        render: impl Fn(&dyn Fn(&str) -> String) -> String,
    ) -> Collected {
        let mut tasks = JoinSet::new();
        for group in groups {
            let replicas = self.replicas(group);
            let any_up = replicas.iter().any(|r| r.up);
            for replica in replicas.into_iter().filter(|r| r.up || !any_up) {
                let map_db = |db: &str| replica.config.backend_database(db).to_owned();
                let statement = render(&map_db);
                let context = AskContext {
                    database: self.database_for(&replica),
                    retention_policy: self.params.rp.clone(),
                    params: self.params.params.clone(),
                    rid: self.rid.to_owned(),
                    max_rows: self.max_rows,
                    metrics: self.state.metrics.clone(),
                    group: group.clone(),
                };
                let group = group.clone();
                tasks.spawn(async move {
                    let answer = ask_replica(context, replica, statement).await;
                    (group, answer)
                });
            }
        }
        let mut answered: Vec<String> = Vec::new();
        let mut collected = Collected::default();
        while let Some(joined) = tasks.join_next().await {
            let Ok((group, answer)) = joined else {
                continue;
            };
            match answer {
                Ok(Answer::Result(result)) => {
                    answered.push(group);
                    collect(&mut collected, result);
                }
                Ok(Answer::TooManyRows) => {
                    answered.push(group);
                    collected.too_many_rows = true;
                }
                Err(_) => {}
            }
        }
        collected.unreachable_groups = groups
            .iter()
            .filter(|g| !answered.contains(g))
            .cloned()
            .collect();
        collected
    }

    /// One replica per group: in-sync ones first, failing over (aggregates, pass-through).
    async fn fan_out_one(
        &self,
        groups: &[String],
        render: impl Fn(&dyn Fn(&str) -> String) -> String,
    ) -> Collected {
        let mut collected = Collected::default();
        // Groups are asked one after the other only when there is one; several go in parallel
        // through one task per group.
        let mut tasks = JoinSet::new();
        for group in groups {
            let mut replicas = self.replicas(group);
            // In sync first, then up (least behind first), then the rest.
            replicas.sort_by_key(|r| (!r.in_sync, !r.up, r.pending_bytes));
            let statements: Vec<(ReadReplica, String, AskContext)> = replicas
                .into_iter()
                .map(|replica| {
                    let map_db = |db: &str| replica.config.backend_database(db).to_owned();
                    let statement = render(&map_db);
                    let context = AskContext {
                        database: self.database_for(&replica),
                        retention_policy: self.params.rp.clone(),
                        params: self.params.params.clone(),
                        rid: self.rid.to_owned(),
                        max_rows: self.max_rows,
                        metrics: self.state.metrics.clone(),
                        group: group.clone(),
                    };
                    (replica, statement, context)
                })
                .collect();
            let group = group.clone();
            tasks.spawn(async move {
                for (replica, statement, context) in statements {
                    let in_sync = replica.in_sync;
                    let id = replica.id.clone();
                    let pending = replica.pending_bytes;
                    if let Ok(answer) = ask_replica(context, replica, statement).await {
                        let warning = (!in_sync).then(|| {
                            Message::warning(format!(
                                "no replica of shard group {group} was in sync; answered by {id}, which has {pending} bytes of acknowledged writes not yet stored, so this answer may be incomplete"
                            ))
                        });
                        return (group, Some((answer, warning)));
                    }
                }
                (group, None)
            });
        }
        let mut answered = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok((group, outcome)) = joined else {
                continue;
            };
            let Some((answer, warning)) = outcome else {
                continue;
            };
            answered.push(group);
            if let Some(warning) = warning {
                collected.messages.push(warning);
            }
            match answer {
                Answer::Result(result) => collect(&mut collected, result),
                Answer::TooManyRows => collected.too_many_rows = true,
            }
        }
        // Keep the groups' order stable for the merge (the join order is arbitrary).
        collected.unreachable_groups = groups
            .iter()
            .filter(|g| !answered.contains(g))
            .cloned()
            .collect();
        collected
    }

    /// Every replica of every group; replicas that are down (or still have DDL waiting) get
    /// it queued.
    async fn apply_ddl(&self, statement: &Ddl) -> StatementResult {
        let map = self.state.shardmap.snapshot();
        let mut errors = Vec::new();
        let mut applied = 0usize;
        let mut queued = Vec::new();
        for group in map.groups() {
            for replica in self.replicas(&group.name) {
                let map_db = |db: &str| replica.config.backend_database(db).to_owned();
                let text = render_ddl(statement, &map_db);
                // Older DDL still waiting for this replica: queue behind it (order matters).
                // A replica merely marked down is still tried: health starts "down" until the
                // first check, and a refused connection costs little.
                if self
                    .runtime
                    .ddl
                    .as_ref()
                    .is_some_and(|q| q.has_pending(&group.name, &replica.id))
                {
                    queued.push(self.queue_ddl(&group.name, &replica.id, &text));
                    continue;
                }
                let request = QueryRequest {
                    statement: &text,
                    ..QueryRequest::default()
                };
                let started = Instant::now();
                let outcome = replica.client.query(&request, self.rid).await;
                self.observe(&group.name, &replica.id, started, outcome.is_ok());
                match outcome {
                    Ok(answer) => match parse_whole_answer(&answer.body) {
                        Ok(result) => match result.error {
                            Some(error) => errors.push(error),
                            None => applied += 1,
                        },
                        Err(error) => errors.push(error),
                    },
                    Err(_) => queued.push(self.queue_ddl(&group.name, &replica.id, &text)),
                }
            }
        }
        if let Some(error) = errors.into_iter().next() {
            return StatementResult::error(0, error);
        }
        let mut result = StatementResult::default();
        if !queued.is_empty() {
            result.messages.push(Message::warning(format!(
                "applied on {applied} replica(s); queued for {} that could not be reached, which get it when they are back: {}",
                queued.len(),
                queued.join(", ")
            )));
        }
        result
    }

    fn queue_ddl(&self, group: &str, replica: &str, text: &str) -> String {
        let Some(queue) = &self.runtime.ddl else {
            return format!(
                "{group}/{replica} (NOT queued: the pending DDL list could not be opened at start)"
            );
        };
        match queue.push(group, replica, text) {
            Ok(()) => format!("{group}/{replica}"),
            Err(error) => {
                tracing::error!(%error, group, replica, statement = text, "cannot queue DDL for a replica that is down");
                format!("{group}/{replica} (NOT queued: {error})")
            }
        }
    }

    fn observe(&self, group: &str, replica: &str, started: Instant, ok: bool) {
        observe(&self.state.metrics, group, replica, started, ok);
    }
}

fn observe(
    metrics: &crate::telemetry::metrics::ApiMetrics,
    group: &str,
    replica: &str,
    started: Instant,
    ok: bool,
) {
    let labels = ReplicaLabels {
        group: group.to_owned(),
        replica: replica.to_owned(),
    };
    metrics
        .query
        .backend_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    if !ok {
        metrics.query.backend_failures.get_or_create(&labels).inc();
    }
}

fn collect(collected: &mut Collected, result: StatementResult) {
    match result.error {
        Some(error) => collected.errors.push(error),
        None => collected.results.push(result),
    }
}

/// Everything one backend call needs, owned so it can run in its own task.
struct AskContext {
    database: Option<String>,
    retention_policy: Option<String>,
    params: Option<String>,
    rid: String,
    max_rows: u64,
    metrics: Arc<crate::telemetry::metrics::ApiMetrics>,
    group: String,
}

async fn ask_replica(
    context: AskContext,
    replica: ReadReplica,
    statement: String,
) -> Result<Answer, BackendError> {
    let request = QueryRequest {
        statement: &statement,
        database: context.database.as_deref(),
        retention_policy: context.retention_policy.as_deref(),
        epoch: Some("ns"),
        params: context.params.as_deref(),
        chunk_size: Some(REPLICA_CHUNK_ROWS),
    };
    let started = Instant::now();
    let outcome = read_answer(&replica, &request, &context).await;
    observe(
        &context.metrics,
        &context.group,
        &replica.id,
        started,
        outcome.is_ok(),
    );
    if let Err(error) = &outcome {
        tracing::info!(group = %context.group, replica = %replica.id, %error, request_id = %context.rid, "replica did not answer a query");
    }
    outcome
}

async fn read_answer(
    replica: &ReadReplica,
    request: &QueryRequest<'_>,
    context: &AskContext,
) -> Result<Answer, BackendError> {
    let mut lines = match replica.client.query_lines(request, &context.rid).await? {
        QueryReply::Answer(answer) => {
            return Ok(Answer::Result(match parse_whole_answer(&answer.body) {
                Ok(result) => result,
                Err(error) => StatementResult::error(0, error),
            }));
        }
        QueryReply::Lines(lines) => lines,
    };
    let mut result = StatementResult::default();
    let mut rows: u64 = 0;
    while let Some(line) = lines.next_line().await? {
        let chunk: QueryResponse = match serde_json::from_slice(&line) {
            Ok(chunk) => chunk,
            Err(error) => {
                return Ok(Answer::Result(StatementResult::error(
                    0,
                    format!("unreadable answer from replica {}: {error}", replica.id),
                )));
            }
        };
        if let Some(error) = chunk.error {
            return Ok(Answer::Result(StatementResult::error(0, error)));
        }
        for part in chunk.results {
            if let Some(error) = part.error {
                return Ok(Answer::Result(StatementResult::error(0, error)));
            }
            for message in part.messages {
                if !result.messages.contains(&message) {
                    result.messages.push(message);
                }
            }
            for mut series in part.series {
                rows += series.values.len() as u64;
                // serde grows each row's Vec to 4 cells; at a million rows that doubles memory.
                for row in &mut series.values {
                    row.shrink_to_fit();
                }
                append_series(&mut result.series, series);
            }
            if rows > context.max_rows {
                // Dropping `lines` closes the connection: the replica stops sending.
                return Ok(Answer::TooManyRows);
            }
        }
    }
    Ok(Answer::Result(result))
}

/// Appends a chunk's series, continuing the previous one when it is the same series.
fn append_series(all: &mut Vec<Series>, mut series: Series) {
    if let Some(last) = all.last_mut()
        && last.name == series.name
        && last.tags == series.tags
        && last.columns == series.columns
    {
        last.values.append(&mut series.values);
        return;
    }
    series.partial = false;
    all.push(series);
}

/// A whole (non-chunked) answer's first statement result, or its top-level error.
fn parse_whole_answer(body: &[u8]) -> Result<StatementResult, String> {
    let response: QueryResponse = serde_json::from_slice(body)
        .map_err(|e| format!("unreadable answer from a replica: {e}"))?;
    if let Some(error) = response.error {
        return Err(error);
    }
    Ok(response.results.into_iter().next().unwrap_or_default())
}

/// A response body fed by a channel (the task streaming a replica's answer).
struct ChannelBody(tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|item| item.map(|result| result.map(http_body::Frame::data)))
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let e = e.trim();
            e.eq_ignore_ascii_case("gzip") || e.to_ascii_lowercase().starts_with("gzip;")
        })
}

/// The chunks of a `chunked=true` answer: each statement's series cut into pieces of at most
/// `chunk_rows` rows, `partial` set on a series continued in the next chunk and on a result
/// with more chunks to come, as InfluxDB does.
fn chunked_documents(results: Vec<StatementResult>, chunk_rows: usize) -> Vec<QueryResponse> {
    let mut documents = Vec::new();
    for result in results {
        if result.error.is_some() || result.series.is_empty() {
            documents.push(QueryResponse {
                results: vec![result],
                error: None,
            });
            continue;
        }
        let mut pieces: Vec<Series> = Vec::new();
        for mut series in result.series {
            let mut values = std::mem::take(&mut series.values);
            while values.len() > chunk_rows {
                let rest = values.split_off(chunk_rows);
                pieces.push(Series {
                    values,
                    partial: true,
                    ..series.clone()
                });
                values = rest;
            }
            pieces.push(Series {
                values,
                partial: false,
                ..series
            });
        }
        let count = pieces.len();
        let mut messages = result.messages;
        for (i, piece) in pieces.into_iter().enumerate() {
            documents.push(QueryResponse {
                results: vec![StatementResult {
                    statement_id: result.statement_id,
                    series: vec![piece],
                    messages: std::mem::take(&mut messages),
                    partial: i + 1 < count,
                    error: None,
                }],
                error: None,
            });
        }
    }
    documents
}

fn respond(
    params: &QueryParams,
    request_headers: &HeaderMap,
    results: Vec<StatementResult>,
    partial: bool,
    rid: &str,
) -> Response {
    // About 24 bytes a cell (a time, a number, a short string) saves the doublings of the body.
    let cells: usize = results
        .iter()
        .flat_map(|r| &r.series)
        .map(|s| s.values.len() * s.columns.len())
        .sum();
    let mut body: Vec<u8> = Vec::with_capacity(cells.saturating_mul(24).saturating_add(256));
    let serialized = if params.chunked {
        let chunk_rows = params.chunk_size.unwrap_or(DEFAULT_CHUNK_ROWS);
        chunked_documents(results, chunk_rows)
            .iter()
            .try_for_each(|document| {
                serde_json::to_writer(&mut body, document)?;
                body.push(b'\n');
                Ok::<(), serde_json::Error>(())
            })
    } else {
        let response = QueryResponse {
            results,
            error: None,
        };
        let written = if params.pretty {
            serde_json::to_writer_pretty(&mut body, &response)
        } else {
            serde_json::to_writer(&mut body, &response)
        };
        body.push(b'\n');
        written
    };
    if let Err(error) = serialized {
        return influx_error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string(), rid);
    }
    let mut headers = common_headers(rid);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if partial {
        headers.insert("x-monitor-partial", HeaderValue::from_static("true"));
    }
    if accepts_gzip(request_headers) {
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(body.len() / 4),
            flate2::Compression::fast(),
        );
        if encoder.write_all(&body).is_ok()
            && let Ok(compressed) = encoder.finish()
        {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            return (StatusCode::OK, headers, compressed).into_response();
        }
    }
    (StatusCode::OK, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
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
