//! Asking replicas: every reachable one (raw, SHOW), one in-sync one per group with failover
//! (aggregates), every one with a queue for the down ones (DDL), or one in-sync replica whose
//! answer streams to the client untouched. Replica answers are read chunk by chunk and cut off
//! at the row limit. It never counts a group as answered when none of its replicas answered.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinSet;

use crate::backend::client::{BackendError, QueryReply, QueryRequest};
use crate::influxql::ast::Ddl;
use crate::influxql::merge::{self};
use crate::influxql::render::{render_ddl, render_select, render_show};
use crate::influxql::result::{Message, QueryResponse, Series, StatementResult};
use crate::replication::pipeline::{ReadReplica, replicas_worth_asking};
use crate::telemetry::metrics::ReplicaLabels;

use super::super::response::common_headers;
use super::super::state::AppState;
use super::QueryRuntime;
use super::answer::accepts_gzip;
use super::params::DEFAULT_CHUNK_ROWS;
use super::params::QueryParams;
use super::plan::Plan;

/// Rows per chunk asked of the replicas (their answers are read chunk by chunk). Small enough
/// that the merge works on one chunk while the replicas compute the next (at 10,000 a 10,000-row
/// answer came as one chunk and the merge started only after both replicas had finished: the
/// RF=2 raw merge of 10,000 rows took 17-21 ms against 14-15 ms at 1,000, BENCHMARKS.md); large
/// enough that a 1,000,000-row answer is not slower for it.
pub(super) const REPLICA_CHUNK_ROWS: &str = "1000";

/// One replica's answer to one statement.
pub(super) enum Answer {
    Result(StatementResult),
    TooManyRows,
}

pub(super) struct Executor<'a> {
    pub(super) state: &'a Arc<AppState>,
    pub(super) runtime: &'a QueryRuntime,
    pub(super) params: &'a QueryParams,
    pub(super) rid: &'a str,
    pub(super) max_rows: u64,
}

/// What a fan-out collected.
#[derive(Default)]
pub(super) struct Collected {
    results: Vec<StatementResult>,
    errors: Vec<String>,
    too_many_rows: bool,
    unreachable_groups: Vec<String>,
    messages: Vec<Message>,
}

pub(super) fn too_many_rows(max_rows: u64) -> String {
    format!(
        "the answer has more than {max_rows} rows (query.max_rows): narrow the time range, add a LIMIT, or raise query.max_rows"
    )
}

impl Executor<'_> {
    pub(super) fn replicas(&self, group: &str) -> Vec<ReadReplica> {
        self.state
            .pipeline
            .group(group)
            .map(|g| g.read_replicas())
            .unwrap_or_default()
    }

    /// The replicas a union (raw SELECT, SHOW) asks.
    pub(super) fn union_replicas(&self, group: &str) -> Vec<ReadReplica> {
        replicas_worth_asking(self.replicas(group))
    }

    /// What asking `replica` of `group` needs besides the statement.
    pub(super) fn ask_context(&self, replica: &ReadReplica, group: &str) -> AskContext {
        AskContext {
            database: self.database_for(replica),
            retention_policy: self.params.rp.clone(),
            params: self.params.params.clone(),
            rid: self.rid.to_owned(),
            max_rows: self.max_rows,
            metrics: self.state.metrics.clone(),
            group: group.to_owned(),
        }
    }

    pub(super) async fn execute(&self, plan: &Plan) -> StatementResult {
        match plan {
            Plan::Raw {
                select,
                window,
                groups,
                ..
            } => self.execute_raw(select, *window, groups).await,
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
    pub(super) async fn answer_directly(
        &self,
        plan: &Plan,
        headers: &HeaderMap,
    ) -> Option<Response> {
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
            accept: None,
        };
        let started = Instant::now();
        let reply = replica.client.query_lines(&request, self.rid).await;
        self.observe(group, &replica.id, started, reply.is_ok());
        let lines = match reply.ok()? {
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
        let body = PulledBody::new(
            PassThrough {
                lines,
                encoder: gzip.then(|| {
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())
                }),
                replica_id: replica.id.clone(),
                done: false,
            },
            |state| Box::pin(state.next()),
        );
        let mut response_headers = common_headers(self.rid);
        response_headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if gzip {
            response_headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Some((StatusCode::OK, response_headers, Body::new(body)).into_response())
    }

    /// Turns what a fan-out collected into the statement's result.
    pub(super) fn finish(
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

    pub(super) fn database_for(&self, replica: &ReadReplica) -> Option<String> {
        self.params
            .db
            .as_deref()
            .map(|db| replica.config.backend_database(db).to_owned())
    }

    /// Every reachable replica of every group (raw SELECT, SHOW).
    pub(super) async fn fan_out_all(
        &self,
        groups: &[String],
        render: impl Fn(&dyn Fn(&str) -> String) -> String,
    ) -> Collected {
        let mut tasks = JoinSet::new();
        for group in groups {
            for replica in self.union_replicas(group) {
                let map_db = |db: &str| replica.config.backend_database(db).to_owned();
                let statement = render(&map_db);
                let context = self.ask_context(&replica, group);
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
    pub(super) async fn fan_out_one(
        &self,
        groups: &[String],
        render: impl Fn(&dyn Fn(&str) -> String) -> String,
    ) -> Collected {
        let mut collected = Collected::default();
        // One task per group, so that several groups are asked in parallel; within a group the
        // replicas are tried one after the other.
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
    pub(super) async fn apply_ddl(&self, statement: &Ddl) -> StatementResult {
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

    pub(super) fn queue_ddl(&self, group: &str, replica: &str, text: &str) -> String {
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

    pub(super) fn observe(&self, group: &str, replica: &str, started: Instant, ok: bool) {
        observe(&self.state.metrics, group, replica, started, ok);
    }
}

pub(super) fn observe(
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

pub(super) fn collect(collected: &mut Collected, result: StatementResult) {
    match result.error {
        Some(error) => collected.errors.push(error),
        None => collected.results.push(result),
    }
}

/// Everything one backend call needs, owned so it can run in its own task.
pub(super) struct AskContext {
    pub(super) database: Option<String>,
    pub(super) retention_policy: Option<String>,
    pub(super) params: Option<String>,
    pub(super) rid: String,
    pub(super) max_rows: u64,
    pub(super) metrics: Arc<crate::telemetry::metrics::ApiMetrics>,
    pub(super) group: String,
}

pub(super) async fn ask_replica(
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
        accept: None,
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

pub(super) async fn read_answer(
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
pub(super) fn append_series(all: &mut Vec<Series>, mut series: Series) {
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
pub(super) fn parse_whole_answer(body: &[u8]) -> Result<StatementResult, String> {
    let response: QueryResponse = serde_json::from_slice(body)
        .map_err(|e| format!("unreadable answer from a replica: {e}"))?;
    if let Some(error) = response.error {
        return Err(error);
    }
    Ok(response.results.into_iter().next().unwrap_or_default())
}

/// One replica's answer on its way to the client as it arrives, gzipped if the client asked.
struct PassThrough {
    lines: Box<crate::backend::client::QueryLines>,
    encoder: Option<flate2::write::GzEncoder<Vec<u8>>>,
    replica_id: String,
    done: bool,
}

impl PassThrough {
    async fn next(mut self) -> (Option<Result<bytes::Bytes, std::io::Error>>, Self) {
        while !self.done {
            match self.lines.next_chunk().await {
                Ok(Some(chunk)) => {
                    let Some(encoder) = self.encoder.as_mut() else {
                        return (Some(Ok(chunk)), self);
                    };
                    if let Err(error) = encoder.write_all(&chunk).and_then(|()| encoder.flush()) {
                        self.done = true;
                        return (Some(Err(error)), self);
                    }
                    let out = std::mem::take(encoder.get_mut());
                    if !out.is_empty() {
                        return (Some(Ok(bytes::Bytes::from(out))), self);
                    }
                }
                Ok(None) => {
                    self.done = true;
                    if let Some(encoder) = self.encoder.take() {
                        return (
                            encoder
                                .finish()
                                .map(bytes::Bytes::from)
                                .map(Some)
                                .transpose(),
                            self,
                        );
                    }
                }
                Err(error) => {
                    tracing::info!(replica = %self.replica_id, %error, "replica answer cut off while streaming it");
                    self.done = true;
                    return (Some(Err(std::io::Error::other(error.to_string()))), self);
                }
            }
        }
        (None, self)
    }
}

type NextFrame<S> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Option<Result<bytes::Bytes, std::io::Error>>, S)> + Send>,
>;

/// A response body whose frames are pulled from its state by the task sending the response
/// (hyper's connection task): nothing sits between the replica's socket and the client's.
pub(super) struct PulledBody<S> {
    state: Option<S>,
    next: fn(S) -> NextFrame<S>,
    pending: Option<NextFrame<S>>,
}

impl<S> PulledBody<S> {
    pub(super) fn new(state: S, next: fn(S) -> NextFrame<S>) -> Self {
        PulledBody {
            state: Some(state),
            next,
            pending: None,
        }
    }
}

impl<S: Unpin> http_body::Body for PulledBody<S> {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let pending = match &mut this.pending {
            Some(pending) => pending,
            None => {
                let Some(state) = this.state.take() else {
                    return std::task::Poll::Ready(None);
                };
                this.pending.insert((this.next)(state))
            }
        };
        let (item, state) = std::task::ready!(pending.as_mut().poll(cx));
        this.pending = None;
        if item.is_some() {
            this.state = Some(state);
        }
        std::task::Poll::Ready(item.map(|result| result.map(http_body::Frame::data)))
    }
}

/// A response body fed by a channel (the task streaming a replica's answer).
pub(super) struct ChannelBody(
    pub(super) tokio::sync::mpsc::Receiver<Result<bytes::Bytes, std::io::Error>>,
);

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
