//! The Prometheus Alertmanager v2 API (`api/v2/openapi.yaml` of prometheus/alertmanager), so
//! Prometheus and `amtool` work against us unchanged: alerts in and out, silences (which are
//! ignore rules), status, receivers and alert groups, with the same JSON field names.
//!
//! It must never invent state Alertmanager clients would misread: inhibition does not exist
//! here (`inhibitedBy` is always empty), and a rule without an end is shown with the far-future
//! end `9999-12-31T23:59:59.999Z` rather than a missing required field.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::alert::Alert;
use super::api::{ApiError, AppState, CurrentRequest, blocking, new_rule_id, parse_array};
use super::grouping::group_key;
use super::ignore::{IgnoreRule, MatcherSpec};
use super::pipeline::{AlertState, Incoming};
use super::time::parse_rfc3339_ms;
use crate::calendar::rfc3339_ms;
use crate::config::alert::{MatchOp, Matcher};

const FOREVER_MS: u64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(get_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route(
            "/api/v2/silence/{id}",
            get(get_silence).delete(delete_silence),
        )
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers))
}

fn v2(error: ApiError) -> ApiError {
    error.v2()
}

// ------------------------------------------------------------------------------- alerts

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    _generator_url: Option<String>,
}

async fn post_alerts(
    State(state): State<AppState>,
    axum::Extension(CurrentRequest(request_id)): axum::Extension<CurrentRequest>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let posted: Vec<PostableAlert> = parse_array(&body, "postable alerts").map_err(v2)?;
    let now = state.pipeline.now_ms();
    let mut incoming = Vec::with_capacity(posted.len());
    for (position, alert) in posted.into_iter().enumerate() {
        if alert.labels.is_empty() {
            return Err(ApiError::bad_request(
                format!("[{position}].labels"),
                "at least one label pair required",
            )
            .v2());
        }
        let time = |field: &str, text: &Option<String>| -> Result<Option<u64>, ApiError> {
            match text.as_deref() {
                None | Some("") => Ok(None),
                // Go's zero time is how Alertmanager clients say "unset".
                Some(t) if t.starts_with("0001-01-01") => Ok(None),
                Some(t) => parse_rfc3339_ms(t)
                    .map(Some)
                    .map_err(|m| ApiError::bad_request(format!("[{position}].{field}"), m).v2()),
            }
        };
        let starts_at = time("startsAt", &alert.starts_at)?;
        let ends_at = time("endsAt", &alert.ends_at)?;
        if let (Some(start), Some(end)) = (starts_at, ends_at)
            && end < start
        {
            return Err(ApiError::bad_request(
                format!("[{position}].endsAt"),
                "must not be before startsAt",
            )
            .v2());
        }
        let label = |name: &str| alert.labels.get(name).cloned().unwrap_or_default();
        let alert_value = Alert {
            name: label("alertname"),
            index: label("index"),
            host: label("host"),
            source: label("source"),
            severity: label("severity"),
            at: rfc3339_ms(starts_at.unwrap_or(now)),
            labels: alert.labels,
            annotations: alert.annotations,
            value: None,
            fingerprint: String::new(),
        };
        incoming.push(Incoming {
            alert: alert_value,
            ends_at_ms: ends_at,
        });
    }
    let id = request_id.as_str().to_owned();
    state
        .ingest
        .ingest(incoming, Some(id))
        .await
        .map_err(|e| v2(ApiError::from(e)))?;
    Ok(StatusCode::OK.into_response())
}

/// Query parameters that may repeat (`filter=a&filter=b`).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<String>) -> Self {
        Params(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.iter().rev().find(|(k, _)| k == name) {
            None => Ok(true),
            Some((_, v)) => v.parse::<bool>().map_err(|_| {
                ApiError::bad_request(name, format!("expected true or false, got {v:?}")).v2()
            }),
        }
    }

    fn filters(&self) -> Result<Vec<Matcher>, ApiError> {
        self.0
            .iter()
            .filter(|(k, _)| k == "filter")
            .map(|(_, v)| {
                let text = v.trim().trim_start_matches('{').trim_end_matches('}');
                Matcher::parse(text)
                    .map_err(|e| ApiError::bad_request("filter", e.to_string()).v2())
            })
            .collect()
    }

    fn receiver(&self) -> Result<Option<regex::Regex>, ApiError> {
        match self.0.iter().find(|(k, _)| k == "receiver") {
            None => Ok(None),
            Some((_, v)) => regex::Regex::new(&format!("^(?:{v})$"))
                .map(Some)
                .map_err(|e| ApiError::bad_request("receiver", e.to_string()).v2()),
        }
    }
}

/// One alert as `GET /api/v2/alerts` shows it, with its labels (for grouping).
struct Listed {
    value: Value,
    labels: BTreeMap<String, String>,
}

/// A group of `/api/v2/alerts/groups`: receiver, group labels, alerts.
type GroupedAlerts = (String, BTreeMap<String, String>, Vec<Value>);

fn gettable_alerts(state: &AppState, params: &Params) -> Result<Vec<Listed>, ApiError> {
    let show_active = params.flag("active")?;
    let show_silenced = params.flag("silenced")?;
    let _inhibited = params.flag("inhibited")?;
    let show_unprocessed = params.flag("unprocessed")?;
    let filters = params.filters()?;
    let receiver = params.receiver()?;
    let pipeline = &state.pipeline;
    let now = pipeline.now_ms();
    let resolve_ms = pipeline.settings().resolve_timeout_ms;
    let mut out = Vec::new();
    for record in pipeline.alerts() {
        if record.state == AlertState::Resolved {
            continue;
        }
        let ends_at = record
            .ends_at_ms
            .unwrap_or_else(|| record.last_seen_ms.saturating_add(resolve_ms));
        if ends_at <= now {
            continue;
        }
        let labels = &record.alert.labels;
        if !filters
            .iter()
            .all(|m| m.matches(labels.get(&m.name).map(String::as_str)))
        {
            continue;
        }
        let receivers: Vec<String> = pipeline
            .router()
            .routes_for(labels)
            .iter()
            .map(|r| r.receiver.clone())
            .collect();
        if let Some(regex) = &receiver
            && !receivers.iter().any(|r| regex.is_match(r))
        {
            continue;
        }
        let silenced_by = pipeline.active_ignores_for(labels);
        let unprocessed = matches!(record.state, AlertState::Unrouted);
        let state_name = if !silenced_by.is_empty() {
            "suppressed"
        } else if unprocessed {
            "unprocessed"
        } else {
            "active"
        };
        let shown = match state_name {
            "suppressed" => show_silenced,
            "unprocessed" => show_unprocessed,
            _ => show_active,
        };
        if !shown {
            continue;
        }
        let starts_at = parse_rfc3339_ms(&record.alert.at).unwrap_or(record.first_seen_ms);
        let value = json!({
            "labels": labels,
            "annotations": record.alert.annotations,
            "receivers": receivers.iter().map(|name| json!({ "name": name })).collect::<Vec<_>>(),
            "fingerprint": record.alert.fingerprint,
            "startsAt": rfc3339_ms(starts_at),
            "updatedAt": rfc3339_ms(record.last_seen_ms),
            "endsAt": rfc3339_ms(ends_at),
            "status": { "state": state_name, "silencedBy": silenced_by, "inhibitedBy": [] },
        });
        out.push(Listed {
            value,
            labels: labels.clone(),
        });
    }
    Ok(out)
}

async fn get_alerts(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw);
    let alerts: Vec<Value> = gettable_alerts(&state, &params)?
        .into_iter()
        .map(|listed| listed.value)
        .collect();
    Ok(axum::Json(alerts).into_response())
}

async fn get_groups(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw);
    let mut groups: BTreeMap<String, GroupedAlerts> = BTreeMap::new();
    for Listed { value, labels } in gettable_alerts(&state, &params)? {
        for route in state.pipeline.router().routes_for(&labels) {
            let (key, group_labels) = group_key(route, &labels);
            groups
                .entry(key)
                .or_insert_with(|| (route.receiver.clone(), group_labels, Vec::new()))
                .2
                .push(value.clone());
        }
    }
    let answer: Vec<Value> = groups
        .into_values()
        .map(|(receiver, labels, alerts)| json!({ "labels": labels, "receiver": { "name": receiver }, "alerts": alerts }))
        .collect();
    Ok(axum::Json(answer).into_response())
}

// ----------------------------------------------------------------------------- silences

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SilenceMatcher {
    name: String,
    value: String,
    is_regex: bool,
    #[serde(default = "yes")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: Option<String>,
    matchers: Vec<SilenceMatcher>,
    starts_at: String,
    ends_at: String,
    created_by: String,
    comment: String,
}

fn gettable_silence(rule: &IgnoreRule, now_ms: u64) -> Value {
    let matchers: Vec<Value> = rule
        .matchers
        .iter()
        .map(|m| {
            let op = MatchOp::from_str_op(&m.op).unwrap_or(MatchOp::Equal);
            json!({
                "name": m.name,
                "value": m.value,
                "isRegex": matches!(op, MatchOp::Regex | MatchOp::NotRegex),
                "isEqual": matches!(op, MatchOp::Equal | MatchOp::Regex),
            })
        })
        .collect();
    json!({
        "id": rule.id,
        "status": { "state": rule.state(now_ms).as_str() },
        "updatedAt": rfc3339_ms(rule.updated_at_ms),
        "matchers": matchers,
        "startsAt": rfc3339_ms(rule.starts_at_ms),
        "endsAt": rfc3339_ms(rule.ends_at_ms.unwrap_or(FOREVER_MS)),
        "createdBy": rule.author,
        "comment": rule.comment,
    })
}

async fn get_silences(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw);
    let filters = params.filters()?;
    let now = state.pipeline.now_ms();
    let silences: Vec<Value> = state
        .pipeline
        .ignores()
        .iter()
        .filter(|rule| {
            // Alertmanager keeps silences whose matchers would match the filter's label set.
            filters.iter().all(|f| {
                rule.matchers
                    .iter()
                    .any(|m| m.name == f.name && (f.matches(Some(&m.value))))
            })
        })
        .map(|rule| gettable_silence(rule, now))
        .collect();
    Ok(axum::Json(silences).into_response())
}

async fn post_silence(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("body", format!("malformed JSON: {e}")).v2())?;
    let posted: PostableSilence = serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        let field = message.split('`').nth(1).unwrap_or("body").to_owned();
        ApiError::bad_request(field, message).v2()
    })?;
    let now = state.pipeline.now_ms();
    let starts_at = parse_rfc3339_ms(&posted.starts_at)
        .map_err(|m| ApiError::bad_request("startsAt", m).v2())?;
    let ends_at =
        parse_rfc3339_ms(&posted.ends_at).map_err(|m| ApiError::bad_request("endsAt", m).v2())?;
    let matchers = posted
        .matchers
        .into_iter()
        .map(|m| MatcherSpec {
            op: match (m.is_regex, m.is_equal) {
                (false, true) => "=",
                (false, false) => "!=",
                (true, true) => "=~",
                (true, false) => "!~",
            }
            .to_owned(),
            name: m.name,
            value: m.value,
        })
        .collect();
    let (id, created_at_ms) = match posted.id.filter(|id| !id.is_empty()) {
        Some(id) => match state.pipeline.ignore(&id) {
            Some(existing) => (id, existing.created_at_ms),
            None => {
                return Err(ApiError {
                    status: StatusCode::NOT_FOUND,
                    field: None,
                    message: format!("silence {id} not found"),
                    v2: true,
                });
            }
        },
        None => (new_rule_id(), now),
    };
    let rule = IgnoreRule {
        id,
        matchers,
        // Alertmanager moves a start in the past to now; the rule is the same either way.
        starts_at_ms: starts_at,
        ends_at_ms: Some(ends_at),
        author: posted.created_by,
        comment: posted.comment,
        created_at_ms,
        updated_at_ms: now,
    };
    let pipeline = Arc::clone(&state.pipeline);
    let rule = blocking(move || pipeline.put_ignore(rule, "matchers", "endsAt"))
        .await
        .map_err(v2)?;
    Ok(axum::Json(json!({ "silenceID": rule.id })).into_response())
}

async fn get_silence(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let now = state.pipeline.now_ms();
    match state.pipeline.ignore(&id) {
        Some(rule) => axum::Json(gettable_silence(&rule, now)).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_silence(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let pipeline = Arc::clone(&state.pipeline);
    blocking(move || pipeline.expire_ignore(&id))
        .await
        .map_err(v2)?;
    Ok(StatusCode::OK.into_response())
}

// -------------------------------------------------------------------- status, receivers

async fn status(State(state): State<AppState>) -> Response {
    axum::Json(json!({
        "cluster": { "status": "disabled", "peers": [] },
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "monitor-alert-manager",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "none (Rust)",
        },
        "config": { "original": state.config_text.as_str() },
        "uptime": rfc3339_ms(state.started_ms),
    }))
    .into_response()
}

async fn receivers(State(state): State<AppState>) -> Response {
    let names: Vec<Value> = state
        .config
        .receivers
        .iter()
        .map(|r| json!({ "name": r.name }))
        .collect();
    axum::Json(names).into_response()
}
