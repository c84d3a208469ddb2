//! The answer the client gets: InfluxDB's JSON shape, cut into chunks for `chunked=true`,
//! gzip-compressed when accepted, `X-Monitor-Partial` when a group is missing, and errors with
//! InfluxDB's trailing newline. It never drops the partial marking.

use std::io::Write;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::influxql::result::{QueryResponse, Series, StatementResult};

use super::super::response::common_headers;
use super::params::{DEFAULT_CHUNK_ROWS, QueryParams};
use super::plan::Refusal;

/// `{"error": message}` followed by a newline, as InfluxDB's query handler writes it.
pub(super) fn influx_error(status: StatusCode, message: &str, rid: &str) -> Response {
    let response = super::super::response::influx_error(status, message, rid);
    let (parts, _) = response.into_parts();
    let mut body = serde_json::json!({ "error": message }).to_string();
    body.push('\n');
    Response::from_parts(parts, Body::from(body))
}

pub(super) fn refuse(refusal: &Refusal, rid: &str) -> Response {
    influx_error(refusal.status, &refusal.message, rid)
}

pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
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
pub(super) fn chunked_documents(
    results: Vec<StatementResult>,
    chunk_rows: usize,
) -> Vec<QueryResponse> {
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

pub(super) fn respond(
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
    respond_bytes(body, partial, accepts_gzip(request_headers), rid)
}

/// The headers of a JSON answer: request id, content type, and `X-Monitor-Partial` when a group
/// could not answer.
pub(super) fn json_headers(rid: &str, partial: bool) -> HeaderMap {
    let mut headers = common_headers(rid);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if partial {
        headers.insert("x-monitor-partial", HeaderValue::from_static("true"));
    }
    headers
}

/// A complete JSON answer body, gzip-compressed when `gzip`.
pub(super) fn respond_bytes(body: Vec<u8>, partial: bool, gzip: bool, rid: &str) -> Response {
    let mut headers = json_headers(rid, partial);
    if gzip {
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
