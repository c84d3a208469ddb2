//! The operational endpoints of `monitor-api`: `/ping` (what client libraries probe), `/health`
//! (every replica: up, circuit, backlog, dead letters), `/ready`, `/metrics`, the shard map API
//! and `/-/reload`. Changing endpoints require an admin token unless access is open; none of
//! them ever returns a secret.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::shard::ShardMapDoc;
use crate::telemetry::RequestId;

use super::response::{INFLUXDB_VERSION, influx_error, json, no_content};
use super::state::AppState;

fn request_id(headers: &HeaderMap) -> String {
    RequestId::from_headers(headers).as_str().to_owned()
}

/// `GET|HEAD /ping`: 204 with `X-Influxdb-Version`; `?verbose=true` answers 200 with JSON.
pub async fn ping(Query(params): Query<HashMap<String, String>>, headers: HeaderMap) -> Response {
    let rid = request_id(&headers);
    if params.get("verbose").is_some_and(|v| v == "true") {
        return json(
            StatusCode::OK,
            &json!({ "version": INFLUXDB_VERSION }),
            &rid,
        );
    }
    no_content(&rid)
}

/// `GET /health`: InfluxDB's health shape plus every group's replicas. `pass` when every replica
/// is up, `warn` when some are down (writes are still taken into the durable log), `fail`
/// (503) when a group has no replica up.
pub async fn health(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let rid = request_id(&headers);
    let reports = state.pipeline.reports();
    let all_up = reports
        .iter()
        .all(|g| g.replicas.iter().all(|r| r.health.up));
    let some_group_down = reports
        .iter()
        .any(|g| !g.replicas.iter().any(|r| r.health.up));
    let (status, code, message) = if some_group_down {
        (
            "fail",
            StatusCode::SERVICE_UNAVAILABLE,
            "a shard group has no reachable replica; its writes wait in the durable log",
        )
    } else if all_up {
        ("pass", StatusCode::OK, "ready for queries and writes")
    } else {
        (
            "warn",
            StatusCode::OK,
            "some replicas are down; their writes wait in the durable log",
        )
    };
    json(
        code,
        &json!({
            "name": "monitor-api",
            "message": message,
            "status": status,
            "version": INFLUXDB_VERSION,
            "shardmap_version": state.shardmap.snapshot().version(),
            "groups": reports,
        }),
        &rid,
    )
}

/// `GET /ready`: the proxy serves (logs open, senders started).
pub async fn ready(headers: HeaderMap) -> Response {
    let rid = request_id(&headers);
    json(StatusCode::OK, &json!({ "status": "ready" }), &rid)
}

/// `GET /metrics`: Prometheus text (OpenMetrics).
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.pipeline.refresh_gauges();
    let body = state.metrics.encode();
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

fn check_admin(
    state: &AppState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    rid: &str,
) -> Result<(), Box<Response>> {
    let refuse = |status: u16, message: String| {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        Box::new(influx_error(status, &message, rid))
    };
    state
        .identify(headers, params.get("p").map(String::as_str))
        .and_then(|principal| principal.check_admin())
        .map_err(|e| refuse(e.http_status(), e.to_string()))
}

/// `GET /api/v1/shardmap`: the live map, secrets redacted.
pub async fn get_shardmap(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let rid = request_id(&headers);
    let map = state.shardmap.snapshot();
    match serde_json::to_value(map.doc().redacted()) {
        Ok(value) => json(StatusCode::OK, &value, &rid),
        Err(error) => influx_error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string(), &rid),
    }
}

/// `PUT /api/v1/shardmap`: validate, persist, swap. Writes in flight finish on the old map.
pub async fn put_shardmap(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let rid = request_id(&headers);
    if let Err(response) = check_admin(&state, &headers, &params, &rid) {
        return *response;
    }
    let doc = match ShardMapDoc::from_json(&body) {
        Ok(doc) => doc,
        Err(error) => {
            return influx_error(
                StatusCode::BAD_REQUEST,
                &format!("invalid shard map JSON: {error}"),
                &rid,
            );
        }
    };
    match state.shardmap.replace(doc) {
        Ok(map) => {
            if let Err(error) = state.pipeline.apply_map(&map) {
                return influx_error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string(), &rid);
            }
            tracing::info!(version = map.version(), request_id = %rid, "shard map replaced through the API");
            match serde_json::to_value(map.doc().redacted()) {
                Ok(value) => json(StatusCode::OK, &value, &rid),
                Err(error) => {
                    influx_error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string(), &rid)
                }
            }
        }
        Err(error) => {
            let status =
                StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            influx_error(status, &error.to_string(), &rid)
        }
    }
}

/// `POST /-/reload`: re-read the config file (as SIGHUP does).
pub async fn reload(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let rid = request_id(&headers);
    if let Err(response) = check_admin(&state, &headers, &params, &rid) {
        return *response;
    }
    match state.reload() {
        Ok(message) => {
            tracing::info!(request_id = %rid, "{message}");
            json(
                StatusCode::OK,
                &json!({ "status": "reloaded", "message": message }),
                &rid,
            )
        }
        Err(message) => {
            tracing::warn!(request_id = %rid, "reload refused: {message}");
            influx_error(
                StatusCode::BAD_REQUEST,
                &format!("reload refused, the running configuration is unchanged: {message}"),
                &rid,
            )
        }
    }
}
