//! The alert manager's own HTTP API (`/api/v1/...`), `/metrics`, `/health`, `/ready`, and what
//! the v2 (Alertmanager-compatible) API shares with it: the state, error answers and request ids.
//!
//! It must never answer a bad request with a 500 or a vague message: malformed JSON, an unknown
//! matcher operator, an end before a start are 400s that name the field. State-changing work
//! runs on the blocking pool (it commits to redb), never on the async workers.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;

use super::alert::Alert;
use super::ignore::{IgnoreRule, MatcherSpec, RuleError};
use super::issued::IssuedAlert;
use super::pipeline::{AlertRecord, Incoming, Pipeline, PipelineError};
use super::time::parse_rfc3339_ms;
use crate::calendar::rfc3339_ms;
use crate::config::alert::{AlertManagerConfig, Matcher};
use crate::telemetry::RequestId;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub pipeline: Arc<Pipeline>,
    pub registry: Arc<Registry>,
    pub config: Arc<AlertManagerConfig>,
    /// The config file as read (for `/api/v2/status`).
    pub config_text: Arc<String>,
    pub started_ms: u64,
    pub outbox: Arc<super::outbox::Outbox>,
    /// Where validated alert batches wait for their (group) commit.
    pub ingest: Arc<super::ingest::IngestQueue>,
}

/// An error answer. v1 answers `{"error": ..., "field": ...}`; v2 a JSON string, as Alertmanager.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub field: Option<String>,
    pub message: String,
    pub v2: bool,
}

impl ApiError {
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            field: Some(field.into()),
            message: message.into(),
            v2: false,
        }
    }

    pub fn v2(mut self) -> Self {
        self.v2 = true;
        self
    }
}

impl From<PipelineError> for ApiError {
    fn from(error: PipelineError) -> Self {
        match error {
            PipelineError::Rule(RuleError { field, message }) => Self::bad_request(field, message),
            PipelineError::NotFound(what) => Self {
                status: StatusCode::NOT_FOUND,
                field: None,
                message: format!("{what} not found"),
                v2: false,
            },
            other => {
                tracing::error!(error = %other, "request failed");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    field: None,
                    message: other.to_string(),
                    v2: false,
                }
            }
        }
    }
}

impl From<Arc<PipelineError>> for ApiError {
    /// The failure of a group commit, shared by every request in the group: the commit itself
    /// failed (the requests were validated before they joined), so a 500 for each.
    fn from(error: Arc<PipelineError>) -> Self {
        tracing::error!(error = %error, "alert batch not committed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            field: None,
            message: error.to_string(),
            v2: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let text = match &self.field {
            Some(field) => format!("{field}: {}", self.message),
            None => self.message.clone(),
        };
        if self.v2 {
            (self.status, axum::Json(Value::String(text))).into_response()
        } else {
            let mut body = json!({ "error": text });
            if let Some(field) = self.field {
                body["field"] = Value::String(field);
            }
            (self.status, axum::Json(body)).into_response()
        }
    }
}

/// Runs pipeline work on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, ApiError> {
    // The request's span (and its request id) follows the work onto the blocking pool.
    let span = tracing::Span::current();
    match tokio::task::spawn_blocking(move || span.in_scope(work)).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(error) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            field: None,
            message: format!("task failed: {error}"),
            v2: false,
        }),
    }
}

/// The request id of the current request (set by [`request_id_layer`]).
#[derive(Clone)]
pub struct CurrentRequest(pub RequestId);

/// Gives every request an id (the client's `X-Request-Id` when sane), a log span carrying it,
/// and echoes it in the answer.
pub async fn request_id_layer(mut request: Request, next: Next) -> Response {
    let id = RequestId::from_headers(request.headers());
    let span = tracing::info_span!("request", request_id = %id.as_str(), method = %request.method(), path = %request.uri().path());
    request.extensions_mut().insert(CurrentRequest(id.clone()));
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// `/api/v1`, `/metrics`, `/health`, `/ready`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alerts", get(list_alerts).post(post_alerts))
        .route(
            "/api/v1/ignores",
            get(list_ignores)
                .post(post_ignore)
                .delete(delete_ignore_query),
        )
        .route(
            "/api/v1/ignores/{id}",
            delete(delete_ignore).get(get_ignore),
        )
        .route(
            "/api/v1/issued",
            get(list_issued).delete(delete_issued_query),
        )
        .route("/api/v1/issued/{fingerprint}", delete(delete_issued))
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
}

// ------------------------------------------------------------------------------- alerts

/// The smallest JSON an element of a posted array takes in practice (`{"name":"x","at":""}`
/// and up): the body length divided by it bounds the elements without counting them.
const MIN_ITEM_BYTES: usize = 64;
/// The most elements a vector is sized for before parsing (a larger body grows it as usual).
const MAX_PRESIZED_ITEMS: usize = 16_384;

/// A JSON array into a vector allocated with the given capacity.
struct SizedArray<T>(usize, std::marker::PhantomData<T>);

impl<'de, T: serde::Deserialize<'de>> serde::de::DeserializeSeed<'de> for SizedArray<T> {
    type Value = Vec<T>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Vec<T>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for SizedArray<T> {
    type Value = Vec<T>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::with_capacity(self.0);
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

/// Parses a JSON array body element by element, so an error names `[i].field`.
pub fn parse_array<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<Vec<T>, ApiError> {
    // The common case in one pass, into a vector sized from the body up front (growing it
    // element by element moves every parsed item several times); the element-by-element pass
    // below only runs to name the field of a request that is refused anyway.
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let capacity = (body.len() / MIN_ITEM_BYTES).min(MAX_PRESIZED_ITEMS);
    if let Ok(items) = serde::de::DeserializeSeed::deserialize(
        SizedArray::<T>(capacity, std::marker::PhantomData),
        &mut deserializer,
    ) && deserializer.end().is_ok()
    {
        return Ok(items);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("body", format!("malformed JSON: {e}")))?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(_) => vec![value],
        _ => {
            return Err(ApiError::bad_request(
                "body",
                format!("expected a JSON array of {what}"),
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(position, item)| {
            serde_json::from_value(item).map_err(|e| {
                let message = e.to_string();
                // serde names missing/unknown fields in backticks: lift that into the field.
                let field = message
                    .split('`')
                    .nth(1)
                    .filter(|_| message.contains("field"))
                    .map_or_else(
                        || format!("[{position}]"),
                        |name| format!("[{position}].{name}"),
                    );
                ApiError::bad_request(field, message)
            })
        })
        .collect()
}

async fn post_alerts(
    State(state): State<AppState>,
    axum::Extension(CurrentRequest(request_id)): axum::Extension<CurrentRequest>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let alerts: Vec<Alert> = parse_array(&body, "alerts")?;
    let mut incoming = Vec::with_capacity(alerts.len());
    for (position, alert) in alerts.into_iter().enumerate() {
        if alert.name.is_empty() && !alert.labels.contains_key("alertname") {
            return Err(ApiError::bad_request(
                format!("[{position}].name"),
                "an alert needs a name (or an alertname label)",
            ));
        }
        if !alert.at.is_empty() {
            parse_rfc3339_ms(&alert.at)
                .map_err(|m| ApiError::bad_request(format!("[{position}].at"), m))?;
        }
        incoming.push(Incoming {
            alert,
            ends_at_ms: None,
        });
    }
    let id = request_id.as_str().to_owned();
    let summary = state.ingest.ingest(incoming, Some(id)).await?;
    Ok(
        axum::Json(json!({ "request_id": request_id.as_str(), "summary": summary }))
            .into_response(),
    )
}

#[derive(Serialize)]
struct AlertView<'a> {
    fingerprint: &'a str,
    name: &'a str,
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    value: Option<f64>,
    at: &'a str,
    first_seen: String,
    last_seen: String,
    #[serde(flatten)]
    state: &'a super::pipeline::AlertState,
    receivers: &'a [String],
    issued: bool,
}

fn alert_view<'a>(record: &'a AlertRecord, issued: bool) -> AlertView<'a> {
    AlertView {
        fingerprint: &record.alert.fingerprint,
        name: &record.alert.name,
        labels: &record.alert.labels,
        annotations: &record.alert.annotations,
        value: record.alert.value,
        at: &record.alert.at,
        first_seen: rfc3339_ms(record.first_seen_ms),
        last_seen: rfc3339_ms(record.last_seen_ms),
        state: &record.state,
        receivers: &record.receivers,
        issued,
    }
}

async fn list_alerts(State(state): State<AppState>) -> Response {
    let records = state.pipeline.alerts();
    let issued = state.pipeline.issued_fingerprints();
    let views: Vec<AlertView<'_>> = records
        .iter()
        .map(|r| alert_view(r, issued.contains(&r.alert.fingerprint)))
        .collect();
    axum::Json(json!({ "alerts": views })).into_response()
}

// ------------------------------------------------------------------------------ ignores

#[derive(Deserialize)]
#[serde(untagged)]
enum MatcherInput {
    Text(String),
    Spec(MatcherSpec),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreInput {
    matchers: Vec<MatcherInput>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    /// Instead of `ends_at`: how long from the start (`"2h"`).
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    author: String,
    #[serde(default)]
    comment: String,
}

/// The JSON shape of an ignore rule in v1 answers.
pub fn rule_view(rule: &IgnoreRule, now_ms: u64) -> Value {
    json!({
        "id": rule.id,
        "matchers": rule.matchers.iter().map(MatcherSpec::text).collect::<Vec<_>>(),
        "starts_at": rfc3339_ms(rule.starts_at_ms),
        "ends_at": rule.ends_at_ms.map(rfc3339_ms),
        "author": rule.author,
        "comment": rule.comment,
        "created_at": rfc3339_ms(rule.created_at_ms),
        "updated_at": rfc3339_ms(rule.updated_at_ms),
        "state": rule.state(now_ms).as_str(),
    })
}

/// A new rule id, UUID-shaped (amtool expects one).
pub fn new_rule_id() -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        fastrand::u32(..),
        fastrand::u16(..),
        fastrand::u16(..0x1000),
        0x8000 | fastrand::u16(..0x4000),
        fastrand::u64(..1 << 48)
    )
}

async fn post_ignore(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("body", format!("malformed JSON: {e}")))?;
    let input: IgnoreInput = serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        let field = message.split('`').nth(1).unwrap_or("body").to_owned();
        ApiError::bad_request(field, message)
    })?;
    let now = state.pipeline.now_ms();
    let mut matchers = Vec::with_capacity(input.matchers.len());
    for (position, matcher) in input.matchers.into_iter().enumerate() {
        matchers.push(match matcher {
            MatcherInput::Spec(spec) => spec,
            MatcherInput::Text(text) => Matcher::parse(&text)
                .map(|m| MatcherSpec::from_matcher(&m))
                .map_err(|e| {
                    ApiError::bad_request(format!("matchers[{position}]"), e.to_string())
                })?,
        });
    }
    let starts_at_ms = match input.starts_at.as_deref() {
        None | Some("") => now,
        Some(text) => parse_rfc3339_ms(text).map_err(|m| ApiError::bad_request("starts_at", m))?,
    };
    let ends_at_ms = match (input.ends_at.as_deref(), input.duration.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "duration",
                "give ends_at or duration, not both",
            ));
        }
        (Some(text), None) if !text.is_empty() => {
            Some(parse_rfc3339_ms(text).map_err(|m| ApiError::bad_request("ends_at", m))?)
        }
        (None, Some(text)) => {
            let duration = crate::config::parse_duration(text)
                .map_err(|e| ApiError::bad_request("duration", e.to_string()))?;
            Some(starts_at_ms.saturating_add(super::occurrences::duration_ms(duration)))
        }
        _ => None,
    };
    let rule = IgnoreRule {
        id: new_rule_id(),
        matchers,
        starts_at_ms,
        ends_at_ms,
        author: input.author,
        comment: input.comment,
        created_at_ms: now,
        updated_at_ms: now,
    };
    let pipeline = Arc::clone(&state.pipeline);
    let rule = blocking(move || pipeline.put_ignore(rule, "matchers", "ends_at")).await?;
    Ok((StatusCode::CREATED, axum::Json(rule_view(&rule, now))).into_response())
}

async fn list_ignores(State(state): State<AppState>) -> Response {
    let now = state.pipeline.now_ms();
    let rules: Vec<Value> = state
        .pipeline
        .ignores()
        .iter()
        .map(|r| rule_view(r, now))
        .collect();
    axum::Json(json!({ "ignores": rules })).into_response()
}

async fn get_ignore(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now = state.pipeline.now_ms();
    let rule = state
        .pipeline
        .ignore(&id)
        .ok_or_else(|| ApiError::from(PipelineError::NotFound(format!("ignore rule {id}"))))?;
    Ok(axum::Json(rule_view(&rule, now)).into_response())
}

async fn delete_ignore(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let pipeline = Arc::clone(&state.pipeline);
    let now = pipeline.now_ms();
    let removed = blocking(move || pipeline.remove_ignore(&id)).await?;
    Ok(axum::Json(json!({ "removed": rule_view(&removed, now) })).into_response())
}

#[derive(Deserialize)]
struct IdQuery {
    id: Option<String>,
    fingerprint: Option<String>,
}

async fn delete_ignore_query(
    state: State<AppState>,
    Query(query): Query<IdQuery>,
) -> Result<Response, ApiError> {
    let id = query.id.ok_or_else(|| {
        ApiError::bad_request(
            "id",
            "give the rule id: DELETE /api/v1/ignores/{id} or ?id=",
        )
    })?;
    delete_ignore(state, Path(id)).await
}

// ------------------------------------------------------------------------------- issued

fn issued_view(issued: &IssuedAlert, reissue_ms: u64, success_ms: u64) -> Value {
    json!({
        "fingerprint": issued.fingerprint,
        "name": issued.alert.name,
        "labels": issued.alert.labels,
        "annotations": issued.alert.annotations,
        "first_delivered": rfc3339_ms(issued.first_delivered_ms),
        "last_delivered": rfc3339_ms(issued.last_delivered_ms),
        "last_seen": rfc3339_ms(issued.last_seen_ms),
        "deliveries": issued.deliveries,
        "reissue_after": rfc3339_ms(issued.last_delivered_ms.saturating_add(reissue_ms)),
        "success_after": rfc3339_ms(issued.last_seen_ms.saturating_add(success_ms)),
        "success_withheld_since": issued.success_withheld_since_ms.map(rfc3339_ms),
    })
}

async fn list_issued(State(state): State<AppState>) -> Response {
    let settings = state.pipeline.settings();
    let issued: Vec<Value> = state
        .pipeline
        .issued()
        .iter()
        .map(|i| issued_view(i, settings.reissue_ms, settings.success_ms))
        .collect();
    axum::Json(json!({ "issued": issued })).into_response()
}

async fn delete_issued(
    State(state): State<AppState>,
    Path(fingerprint): Path<String>,
) -> Result<Response, ApiError> {
    let pipeline = Arc::clone(&state.pipeline);
    let settings = pipeline.settings();
    let removed = blocking(move || pipeline.clear_issued(&fingerprint)).await?;
    Ok(axum::Json(
        json!({ "cleared": issued_view(&removed, settings.reissue_ms, settings.success_ms) }),
    )
    .into_response())
}

async fn delete_issued_query(
    state: State<AppState>,
    Query(query): Query<IdQuery>,
) -> Result<Response, ApiError> {
    let fingerprint = query.fingerprint.ok_or_else(|| {
        ApiError::bad_request(
            "fingerprint",
            "give the fingerprint: DELETE /api/v1/issued/{fingerprint} or ?fingerprint=",
        )
    })?;
    delete_issued(state, Path(fingerprint)).await
}

// ------------------------------------------------------------------------ observability

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    let pipeline = &state.pipeline;
    let snapshot = state.outbox.snapshot();
    let dead: u64 = snapshot.channels.iter().map(|c| c.dead_lettered).sum();
    let owed: u64 = snapshot.channels.iter().map(|c| c.owed).sum();
    axum::Json(json!({
        "status": "ok",
        "started_at": rfc3339_ms(state.started_ms),
        "issued": pipeline.issued().len(),
        "ignore_rules": pipeline.ignores().len(),
        "groups_waiting": pipeline.groups().len(),
        "outbox": { "owed": owed, "dead_lettered": dead, "channels": snapshot.channels },
    }))
    .into_response()
}

async fn ready() -> Response {
    // State is loaded before the listener is bound: answering at all means ready.
    (StatusCode::OK, "ready\n").into_response()
}
