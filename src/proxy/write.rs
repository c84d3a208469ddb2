//! `POST /write` (InfluxDB v1) and `POST /api/v2/write` (v2): authenticate, read the body under
//! its limits, split it by shard group, append each group's record to its durable log, wait for
//! the consistency level, answer as InfluxDB would.
//!
//! It must never answer 204 for a line that is not in a durable log, never store part of a
//! request whose token may not write one of its indexes, and never accept a record its group's
//! log cannot keep (503 with `Retry-After` instead).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use tracing::Instrument;

use crate::config::Consistency;
use crate::config::api::ConsistencyError;
use crate::protocol::Precision;
use crate::queue::QueueError;
use crate::replication::batcher::{LineError, SplitContext, SplitError, split_by_group_observed};
use crate::shard::AccessError;
use crate::telemetry::RequestId;
use crate::telemetry::metrics::{LineKind, RejectReason, RequestLabels};

use super::body::{BodyLimits, read_body};
use super::response::{influx_error, no_content};
use super::state::AppState;

/// At most this many line errors are spelled out in one answer; the rest are counted.
const MAX_REPORTED_ERRORS: usize = 50;

/// The parameters of either dialect, once normalised.
struct WriteParams {
    database: String,
    retention_policy: String,
    precision: Precision,
    consistency: Option<Consistency>,
    password: Option<String>,
}

impl WriteParams {
    /// `/write?db=&rp=&precision=&consistency=&p=`.
    fn from_v1(params: &HashMap<String, String>) -> Result<Self, String> {
        let database = param(params, "db");
        if database.is_empty() {
            return Err("database is required".to_owned());
        }
        Ok(WriteParams {
            database: database.to_owned(),
            retention_policy: param(params, "rp").to_owned(),
            precision: parse_precision(params, Precision::from_v1, "n, ns, u, us, ms, s, m or h")?,
            consistency: parse_consistency(params)?,
            password: params.get("p").cloned(),
        })
    }

    /// `/api/v2/write?bucket=db[/rp]&precision=&consistency=` (InfluxDB 1.8's compatibility API).
    fn from_v2(params: &HashMap<String, String>) -> Result<Self, String> {
        let bucket = param(params, "bucket");
        if bucket.is_empty() {
            return Err("bucket is required".to_owned());
        }
        let (database, retention_policy) = bucket.split_once('/').unwrap_or((bucket, ""));
        Ok(WriteParams {
            database: database.to_owned(),
            retention_policy: retention_policy.to_owned(),
            precision: parse_precision(params, Precision::from_v2, "ns, us, ms or s")?,
            consistency: parse_consistency(params)?,
            password: None,
        })
    }
}

pub async fn write_v1(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(
        "/write",
        state,
        WriteParams::from_v1(&params),
        headers,
        body,
    )
    .await
}

pub async fn write_v2(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(
        "/api/v2/write",
        state,
        WriteParams::from_v2(&params),
        headers,
        body,
    )
    .await
}

fn param<'a>(params: &'a HashMap<String, String>, key: &str) -> &'a str {
    params.get(key).map_or("", String::as_str)
}

fn parse_precision(
    params: &HashMap<String, String>,
    parse: fn(&str) -> Option<Precision>,
    allowed: &str,
) -> Result<Precision, String> {
    let text = param(params, "precision");
    parse(text).ok_or_else(|| format!("invalid precision {text:?}: use {allowed}"))
}

fn parse_consistency(params: &HashMap<String, String>) -> Result<Option<Consistency>, String> {
    match param(params, "consistency") {
        "" => Ok(None),
        text => text
            .parse()
            .map(Some)
            .map_err(|e: ConsistencyError| e.to_string()),
    }
}

async fn handle(
    endpoint: &'static str,
    state: Arc<AppState>,
    params: Result<WriteParams, String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let request_id = RequestId::from_headers(&headers);
    let rid = request_id.as_str().to_owned();
    let span = tracing::info_span!("write", request_id = %rid, endpoint);
    let response = match params {
        Ok(params) => {
            write(&state, params, &headers, body, &rid)
                .instrument(span)
                .await
        }
        Err(message) => influx_error(StatusCode::BAD_REQUEST, &message, &rid),
    };
    state
        .metrics
        .write_requests
        .get_or_create(&RequestLabels {
            endpoint: endpoint.to_owned(),
            status: response.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .write_duration
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn write(
    state: &AppState,
    params: WriteParams,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
) -> Response {
    let arrived = Instant::now();
    // One snapshot of what a reload may change, kept to the end of the request.
    let config = state.config.snapshot();
    // Authenticate before reading the body: an unauthorised client cannot make us buffer.
    let principal = match state.identify(headers, params.password.as_deref()) {
        Ok(principal) => principal,
        Err(error) => return access_error(&error, request_id),
    };

    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok());
    let body = match read_body(
        body,
        content_length,
        encoding,
        BodyLimits::from(&config.limits),
    )
    .await
    {
        Ok(body) => body,
        Err(error) => {
            if error.status() == 413 {
                state.metrics.count_rejected(RejectReason::BodyTooLarge, 1);
            }
            tracing::warn!(%error, "write body refused");
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return influx_error(status, &error.to_string(), request_id);
        }
    };

    let map = state.shardmap.snapshot();
    let context = SplitContext {
        map: &map,
        principal,
        classifier: &state.classifier,
        precision: params.precision,
        now: params.precision.now(),
        database: &params.database,
        retention_policy: &params.retention_policy,
        request_id,
        max_line_bytes: usize::try_from(config.limits.max_line_bytes.get()).unwrap_or(usize::MAX),
    };
    // Rules and derived metrics see each accepted line as the batcher parses it.
    let mut evaluation = state.rules.evaluation(
        request_id,
        &params.database,
        &params.retention_policy,
        params.precision.to_nanos(context.now),
        arrived,
    );
    let outcome = match split_by_group_observed(&body, &context, &mut |line| {
        if let Some(evaluation) = evaluation.as_mut() {
            evaluation.observe(line);
        }
    }) {
        Ok(outcome) => outcome,
        Err(SplitError::Forbidden(error)) => {
            state.metrics.count_rejected(RejectReason::Forbidden, 1);
            return access_error(&error, request_id);
        }
        Err(SplitError::Header(error)) => {
            return influx_error(StatusCode::BAD_REQUEST, &error.to_string(), request_id);
        }
    };
    count_line_errors(state, &outcome.errors);

    // Append every group's record; each is durable once `append` returns.
    let consistency = params.consistency.unwrap_or(config.consistency);
    // Every group must have room before anything is appended, so that a 503 means "nothing of
    // this request was kept" (a retry then cannot duplicate proxy-stamped lines).
    let mut runtimes = Vec::with_capacity(outcome.records.len());
    for record in &outcome.records {
        let group = map.group(record.group);
        let Some(runtime) = state.pipeline.group(&group.name) else {
            return influx_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("shard group {:?} is not running yet; retry", group.name),
                request_id,
            );
        };
        if let Err(error) = runtime.check_room(record.len()) {
            return queue_error(state, &group.name, &error, record.lines, request_id);
        }
        runtimes.push(runtime);
    }
    let mut waits = Vec::with_capacity(outcome.records.len());
    for (record, runtime) in outcome.records.iter().zip(runtimes) {
        let group = map.group(record.group);
        match runtime.append(&record.parts()).await {
            Ok(receipt) => {
                state
                    .metrics
                    .queue_appended_bytes
                    .get_or_create(&crate::telemetry::metrics::GroupLabels {
                        group: group.name.clone(),
                    })
                    .inc_by(record.len() as u64);
                waits.push((
                    runtime,
                    receipt.start,
                    receipt.end,
                    group.required_acks(consistency),
                ));
            }
            Err(error) => return queue_error(state, &group.name, &error, record.lines, request_id),
        }
    }
    // Rules, host registry and derived metrics see the accepted lines off the request path.
    // Everything is durable: the host registry takes what the batcher collected, and the
    // alerts the lines fired leave.
    state.rules.touch_hosts(&outcome.hosts);
    if let Some(evaluation) = evaluation {
        evaluation.finish();
    }
    state
        .metrics
        .count_received(LineKind::Metric, outcome.accepted[0]);
    state
        .metrics
        .count_received(LineKind::Log, outcome.accepted[1]);
    state
        .metrics
        .count_received(LineKind::Tracelog, outcome.accepted[2]);

    let timeout = config.backend.timeout.get();
    let mut refused = Vec::new();
    for (runtime, start, end, required) in waits {
        let waited = runtime.wait_acks(start, end, required, timeout).await;
        if let Ok(rejections) = &waited {
            refused.extend(rejections.iter().cloned());
        }
        if let Err(timed_out) = waited {
            let message = format!(
                "timeout: the lines are durable in the proxy's log and will reach every replica, but only {} of the {} replicas required by consistency={} of group {:?} acknowledged them within {:?}",
                timed_out.acked,
                timed_out.required,
                consistency.as_str(),
                runtime.name,
                timed_out.waited
            );
            tracing::warn!(group = %runtime.name, acked = timed_out.acked, required = timed_out.required, "consistency not reached in time");
            return influx_error(StatusCode::INTERNAL_SERVER_ERROR, &message, request_id);
        }
    }

    if !refused.is_empty() {
        // What InfluxDB answers for the same lines: they were refused by the backend (and are in
        // the dead-letter file); the rest of the request is stored.
        let dropped: usize =
            refused.iter().map(|r| r.lines).max().unwrap_or(0) + outcome.errors.len();
        let mut reasons: Vec<String> = outcome
            .errors
            .iter()
            .take(MAX_REPORTED_ERRORS)
            .map(LineError::message)
            .collect();
        reasons.extend(refused.iter().take(MAX_REPORTED_ERRORS).map(|r| {
            r.message
                .strip_prefix("partial write: ")
                .unwrap_or(&r.message)
                .to_owned()
        }));
        return influx_error(
            StatusCode::BAD_REQUEST,
            &format!("partial write: {} dropped={dropped}", reasons.join("\n")),
            request_id,
        );
    }
    if outcome.errors.is_empty() {
        return no_content(request_id);
    }
    let message = describe_line_errors(&outcome.errors);
    tracing::info!(
        rejected = outcome.errors.len(),
        accepted = outcome.accepted_lines(),
        "write had bad lines"
    );
    if outcome.accepted_lines() == 0 {
        influx_error(StatusCode::BAD_REQUEST, &message, request_id)
    } else {
        influx_error(
            StatusCode::BAD_REQUEST,
            &format!("partial write: {message} dropped={}", outcome.errors.len()),
            request_id,
        )
    }
}

fn describe_line_errors(errors: &[LineError]) -> String {
    let mut message = errors
        .iter()
        .take(MAX_REPORTED_ERRORS)
        .map(LineError::message)
        .collect::<Vec<_>>()
        .join("\n");
    if errors.len() > MAX_REPORTED_ERRORS {
        message.push_str(&format!(
            "\n... and {} more rejected lines",
            errors.len() - MAX_REPORTED_ERRORS
        ));
    }
    message
}

fn count_line_errors(state: &AppState, errors: &[LineError]) {
    let (mut parse, mut unknown, mut missing) = (0, 0, 0);
    for error in errors {
        match error {
            LineError::Parse(_) => parse += 1,
            LineError::UnknownIndex { .. } => unknown += 1,
            LineError::MissingIndex { .. } => missing += 1,
        }
    }
    state.metrics.count_rejected(RejectReason::Parse, parse);
    state
        .metrics
        .count_rejected(RejectReason::UnknownIndex, unknown);
    state
        .metrics
        .count_rejected(RejectReason::MissingIndex, missing);
}

fn access_error(error: &AccessError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::FORBIDDEN);
    tracing::info!(%error, "write refused by access control");
    influx_error(status, &error.to_string(), request_id)
}

fn queue_error(
    state: &AppState,
    group: &str,
    error: &QueueError,
    lines: usize,
    request_id: &str,
) -> Response {
    match error {
        QueueError::Full { retry_after, .. } => {
            state
                .metrics
                .count_rejected(RejectReason::QueueFull, lines as u64);
            tracing::warn!(group, %error, "durable log full; write refused");
            let mut response = influx_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("shard group {group:?} cannot take more data now: {error}"),
                request_id,
            );
            let seconds = retry_after.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        other => {
            tracing::error!(group, error = %other, "durable log append failed");
            let mut response = influx_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("shard group {group:?} cannot store data: {other}"),
                request_id,
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            response
        }
    }
}
