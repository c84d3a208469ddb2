//! `GET /api/v1/hosts?index=...[&host=...]`: the host registry, as the alert manager and
//! `monitorctl hosts` read it. The answer's shape is a contract with the alert manager:
//! `{"active_window_seconds": N, "hosts": [{"index", "host", "last_seen", "active"}]}`. It must
//! never change that shape, and never answer for hosts it has not seen (an unknown host is an
//! empty list, not an inactive row).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::telemetry::RequestId;

use super::response::json;
use super::state::AppState;

pub async fn list_hosts(
    State(state): State<Arc<AppState>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let rid = RequestId::from_headers(&headers).as_str().to_owned();
    let filter = |key: &str| {
        params
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let window_ms = state.rules.active_window_ms();
    let hosts = state.rules.hosts().list(
        filter("index"),
        filter("host"),
        state.rules.now_ms(),
        window_ms,
    );
    json(
        StatusCode::OK,
        &json!({ "active_window_seconds": window_ms / 1000, "hosts": hosts }),
        &rid,
    )
}
