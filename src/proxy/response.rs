//! HTTP answers shaped as InfluxDB 1.x shapes them (`{"error": "..."}` bodies, the
//! `X-Influxdb-Version` and `X-Influxdb-Error` headers), so client libraries surface our errors
//! as they would InfluxDB's. It never puts a secret into an error body.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The version we announce. Clients gate features on it (the v2 write API needs >= 1.8); the
/// backends behind us are 1.x.
pub const INFLUXDB_VERSION: &str = "1.8.10";

/// Headers every answer carries.
pub fn common_headers(request_id: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-influxdb-version",
        HeaderValue::from_static(INFLUXDB_VERSION),
    );
    headers.insert("x-influxdb-build", HeaderValue::from_static("OSS"));
    headers.insert(
        "x-monitor-version",
        HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), value.clone());
        headers.insert(HeaderName::from_static("request-id"), value);
    }
    headers
}

/// `{"error": message}` with `status`, InfluxDB style.
pub fn influx_error(status: StatusCode, message: &str, request_id: &str) -> Response {
    let mut headers = common_headers(request_id);
    // Header values must be one visible line; the body carries the full text.
    let first_line: String = message
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .take(512)
        .collect();
    if let Ok(value) = HeaderValue::from_str(&first_line) {
        headers.insert("x-influxdb-error", value);
    }
    let body = serde_json::json!({ "error": message }).to_string();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (status, headers, body).into_response()
}

/// `204 No Content` with the common headers.
pub fn no_content(request_id: &str) -> Response {
    (StatusCode::NO_CONTENT, common_headers(request_id)).into_response()
}

/// JSON body with the common headers.
pub fn json(status: StatusCode, value: &serde_json::Value, request_id: &str) -> Response {
    let mut headers = common_headers(request_id);
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (status, headers, value.to_string()).into_response()
}
