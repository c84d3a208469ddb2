//! The HTTP client for one InfluxDB replica, speaking the v1 (`/write`) or v2 (`/api/v2/write`)
//! dialect, and the classification of its answers into "stored", "rejected for these lines"
//! (never retried as is) and "try again later".
//!
//! It must never alter the line-protocol bytes it forwards, and never treat a transient failure
//! (5xx, 429, timeout, refused connection) as a rejection: only a rejection may dead-letter data.

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, RETRY_AFTER};

use super::chunks::Chunks;
use super::query_http::{AnswerBody, ConnectionCounters, QueryHttp, QueryHttpError};
use crate::protocol::Precision;
use crate::telemetry::error_chain;

pub use crate::config::Dialect;

/// Where and how to reach one replica.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL without a trailing slash, e.g. `http://127.0.0.1:18086`.
    pub url: String,
    pub dialect: Dialect,
    pub username: Option<String>,
    pub password: Option<String>,
    /// v2 token (`Authorization: Token ...`).
    pub token: Option<String>,
    /// v2 organisation.
    pub org: Option<String>,
    /// Gzip write bodies.
    pub gzip: bool,
}

/// What a batch is written into.
#[derive(Debug, Clone, Copy)]
pub struct WriteTarget<'a> {
    pub database: &'a str,
    pub retention_policy: Option<&'a str>,
    pub precision: Precision,
}

/// One InfluxQL request to a replica (`/query` parameters, already mapped to the replica's
/// database).
#[derive(Debug, Clone, Copy, Default)]
pub struct QueryRequest<'a> {
    pub statement: &'a str,
    pub database: Option<&'a str>,
    pub retention_policy: Option<&'a str>,
    /// `epoch=ns|u|ms|s|m|h`; absent means RFC 3339 times.
    pub epoch: Option<&'a str>,
    /// Bound parameters as the client sent them (JSON object text).
    pub params: Option<&'a str>,
    /// Ask the replica for a chunked answer of this many rows per chunk.
    pub chunk_size: Option<&'a str>,
    /// `Accept` header (`application/x-msgpack`: InfluxDB's MessagePack answers); absent: JSON.
    pub accept: Option<&'a str>,
}

/// A replica's answer to `/query`: status (2xx or 4xx) and body as received.
#[derive(Debug, Clone)]
pub struct QueryAnswer {
    pub status: u16,
    pub body: bytes::Bytes,
}

/// A replica's `/query` reply: an error answer read whole, or a successful one to read by line.
#[derive(Debug)]
pub enum QueryReply {
    Answer(QueryAnswer),
    Lines(Box<QueryLines>),
}

/// A successful `/query` answer, read one newline-delimited JSON document at a time.
#[derive(Debug)]
pub struct QueryLines {
    body: ReplyBody,
    buffer: bytes::BytesMut,
    finished: bool,
    client: BackendClient,
}

impl QueryLines {
    /// The next bytes of the answer as they arrive (what `next_line` buffered first), or `None`
    /// at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, BackendError> {
        if !self.buffer.is_empty() {
            return Ok(Some(self.buffer.split().freeze()));
        }
        if self.finished {
            return Ok(None);
        }
        match self.body.chunk(&self.client).await? {
            Some(chunk) => Ok(Some(chunk)),
            None => {
                self.finished = true;
                Ok(None)
            }
        }
    }

    /// The next non-empty line, or `None` at the end of the answer.
    pub async fn next_line(&mut self) -> Result<Option<bytes::Bytes>, BackendError> {
        loop {
            if let Some(at) = memchr::memchr(b'\n', &self.buffer) {
                let line = self.buffer.split_to(at + 1).freeze();
                let line = line.slice(..at);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            if self.finished {
                if self.buffer.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                return Ok(Some(self.buffer.split().freeze()));
            }
            match self.body.chunk(&self.client).await? {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => self.finished = true,
            }
        }
    }
}

/// The body of a replica's `/query` answer, from whichever client sent the request.
#[derive(Debug)]
enum ReplyBody {
    Pooled(reqwest::Response),
    Direct(AnswerBody),
}

impl ReplyBody {
    async fn chunk(
        &mut self,
        client: &BackendClient,
    ) -> Result<Option<bytes::Bytes>, BackendError> {
        match self {
            ReplyBody::Pooled(response) => {
                response.chunk().await.map_err(|e| client.unreachable(e))
            }
            ReplyBody::Direct(body) => body.chunk().await.map_err(|e| client.unreachable_direct(e)),
        }
    }

    async fn all(self, client: &BackendClient) -> Result<bytes::Bytes, BackendError> {
        match self {
            ReplyBody::Pooled(response) => {
                response.bytes().await.map_err(|e| client.unreachable(e))
            }
            ReplyBody::Direct(body) => body.all().await.map_err(|e| client.unreachable_direct(e)),
        }
    }
}

/// Why a backend refused lines. A rejection is about the data and is never retried as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    FieldTypeConflict,
    DatabaseNotFound,
    /// The write names a retention policy the backend does not have.
    RetentionPolicyNotFound,
    /// The backend could not parse a line (should not happen: the proxy validates first).
    Unparsable,
    BeyondRetentionPolicy,
    /// A backend limit such as `max-values-per-tag`.
    LimitExceeded,
    Other,
}

impl RejectReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectReason::FieldTypeConflict => "field_type_conflict",
            RejectReason::DatabaseNotFound => "database_not_found",
            RejectReason::RetentionPolicyNotFound => "retention_policy_not_found",
            RejectReason::Unparsable => "unparsable",
            RejectReason::BeyondRetentionPolicy => "beyond_retention_policy",
            RejectReason::LimitExceeded => "limit_exceeded",
            RejectReason::Other => "other",
        }
    }

    fn from_message(message: &str) -> RejectReason {
        if message.contains("field type conflict") {
            RejectReason::FieldTypeConflict
        } else if message.contains("database not found") {
            RejectReason::DatabaseNotFound
        } else if message.contains("retention policy not found") {
            RejectReason::RetentionPolicyNotFound
        } else if message.contains("unable to parse") {
            RejectReason::Unparsable
        } else if message.contains("beyond retention policy") {
            RejectReason::BeyondRetentionPolicy
        } else if message.contains("limit exceeded") || message.contains("max-values-per-tag") {
            RejectReason::LimitExceeded
        } else {
            RejectReason::Other
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend refused (some of) the lines: bisect, dead-letter, move on.
    #[error("{url} rejected the batch ({status}): {message}")]
    Rejected {
        url: String,
        status: u16,
        reason: RejectReason,
        /// The backend's own error text.
        message: String,
    },
    /// The body is larger than the backend accepts: split it and retry the halves.
    #[error("{url} refused the batch as too large (413)")]
    TooLarge { url: String },
    /// Credentials refused: a configuration problem, retried (never dead-lettered) and alarmed.
    #[error("{url} refused our credentials ({status}): {message}")]
    Unauthorized {
        url: String,
        status: u16,
        message: String,
    },
    /// Overloaded or failing backend (429, 5xx): retry after `retry_after` or a backoff.
    #[error("{url} is unavailable ({status}): {message}")]
    Unavailable {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    /// Connection refused, reset, timed out.
    #[error("{url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    /// A request this dialect cannot express (e.g. minute precision on a v2 backend).
    #[error("{url}: {message}")]
    Unsupported { url: String, message: String },
}

impl BackendError {
    /// Whether the same request may succeed later unchanged.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BackendError::Unavailable { .. }
                | BackendError::Unreachable { .. }
                | BackendError::Unauthorized { .. }
        )
    }

    /// The `outcome` label of `monitor_backend_requests_total` for this failure.
    pub fn outcome_label(&self) -> &'static str {
        match self {
            BackendError::Rejected { .. } => "rejected",
            BackendError::TooLarge { .. } => "too_large",
            BackendError::Unauthorized { .. } => "unauthorized",
            BackendError::Unavailable { .. } => "unavailable",
            BackendError::Unreachable { .. } => "unreachable",
            BackendError::Unsupported { .. } => "unsupported",
        }
    }

    /// The wait the backend asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            BackendError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// One replica's HTTP client. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct BackendClient {
    http: reqwest::Client,
    /// The replica's `/query` over connections of its own (plain HTTP replicas).
    query_http: Option<std::sync::Arc<QueryHttp>>,
    endpoint: Endpoint,
    write_url: String,
}

impl BackendClient {
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Result<Self, BackendError> {
        Self::counted(endpoint, timeout, ConnectionCounters::default())
    }

    /// [`Self::new`], with the replica's `/query` connections counted into `counters`.
    pub fn counted(
        endpoint: Endpoint,
        timeout: Duration,
        counters: ConnectionCounters,
    ) -> Result<Self, BackendError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(8)
            .build()
            .map_err(|e| BackendError::Unsupported {
                url: endpoint.url.clone(),
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        let query_http =
            QueryHttp::for_url(&endpoint.url, timeout, timeout.min(Duration::from_secs(5)))
                .map(|http| std::sync::Arc::new(http.counting(counters)));
        let base = endpoint.url.trim_end_matches('/');
        let write_url = match endpoint.dialect {
            Dialect::V1 => format!("{base}/write"),
            Dialect::V2 => format!("{base}/api/v2/write"),
        };
        Ok(BackendClient {
            http,
            query_http,
            endpoint,
            write_url,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Writes `body` (newline-separated line protocol) gzip-compressed, tagged with the
    /// client's request id so backend logs can be matched with ours.
    pub async fn write(
        &self,
        target: WriteTarget<'_>,
        body: impl Into<Chunks>,
        request_id: &str,
    ) -> Result<(), BackendError> {
        let body: Chunks = body.into();
        let query = self.write_query(target)?;
        let mut request = self
            .http
            .post(&self.write_url)
            .query(&query)
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .header("X-Request-Id", request_id);
        request = if self.endpoint.gzip {
            let compressed = gzip(&body).map_err(|e| BackendError::Unsupported {
                url: self.endpoint.url.clone(),
                message: format!("cannot gzip the batch: {e}"),
            })?;
            request.header(CONTENT_ENCODING, "gzip").body(compressed)
        } else {
            request.body(reqwest::Body::wrap(body))
        };
        request = self.authorize(request);
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = parse_retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        Err(self.classify_failure(status, retry_after, &text))
    }

    /// `CREATE DATABASE` through the v1 query API (a v2 backend's buckets are not ours to
    /// create: that is refused as unsupported).
    pub async fn create_database(
        &self,
        database: &str,
        request_id: &str,
    ) -> Result<(), BackendError> {
        if self.endpoint.dialect == Dialect::V2 {
            return Err(BackendError::Unsupported {
                url: self.endpoint.url.clone(),
                message: format!(
                    "bucket {database:?} does not exist and v2 buckets are not created by the proxy"
                ),
            });
        }
        let url = format!("{}/query", self.endpoint.url.trim_end_matches('/'));
        let statement = format!(
            "CREATE DATABASE \"{}\"",
            database.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let request = self
            .http
            .post(url)
            .query(&[("q", statement.as_str())])
            .header("X-Request-Id", request_id);
        let response = self
            .authorize(request)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() && !text.contains("\"error\"") {
            Ok(())
        } else {
            Err(self.classify_failure(status, None, &text))
        }
    }

    /// Sends an InfluxQL request to the replica's v1 `/query` endpoint (InfluxDB 2 serves it too,
    /// through its DBRP mapping) and returns the status and the raw body, which the caller
    /// parses: a 200 may still carry a per-statement `"error"` that only the merger can judge.
    /// Only transport failures and 5xx/429 become `Err`; a 4xx comes back as an answer so the
    /// client sees InfluxDB's own message.
    pub async fn query(
        &self,
        request: &QueryRequest<'_>,
        request_id: &str,
    ) -> Result<QueryAnswer, BackendError> {
        let (status, body) = self.send_query(request, request_id).await?;
        let body = body.all(self).await?;
        Ok(QueryAnswer { status, body })
    }

    /// Like [`Self::query`], but a 2xx answer is read line by line as it arrives (ask with
    /// `chunk_size` for InfluxDB's newline-delimited chunks), so the caller can stop reading
    /// (and drop the connection) once it has seen enough. A non-2xx answer comes back whole.
    pub async fn query_lines(
        &self,
        request: &QueryRequest<'_>,
        request_id: &str,
    ) -> Result<QueryReply, BackendError> {
        let (status, body) = self.send_query(request, request_id).await?;
        if !(200..300).contains(&status) {
            let body = body.all(self).await?;
            return Ok(QueryReply::Answer(QueryAnswer { status, body }));
        }
        Ok(QueryReply::Lines(Box::new(QueryLines {
            body,
            buffer: bytes::BytesMut::new(),
            finished: false,
            client: self.clone(),
        })))
    }

    /// POSTs the request to `/query`; a 5xx or 429 becomes the failure it stands for.
    async fn send_query(
        &self,
        request: &QueryRequest<'_>,
        request_id: &str,
    ) -> Result<(u16, ReplyBody), BackendError> {
        let mut form: Vec<(&str, &str)> = vec![("q", request.statement)];
        if let Some(db) = request.database {
            form.push(("db", db));
        }
        if let Some(rp) = request.retention_policy {
            form.push(("rp", rp));
        }
        if let Some(epoch) = request.epoch {
            form.push(("epoch", epoch));
        }
        if let Some(params) = request.params {
            form.push(("params", params));
        }
        if let Some(chunk_size) = request.chunk_size {
            form.push(("chunked", "true"));
            form.push(("chunk_size", chunk_size));
        }
        // POST with a form body: statements can be long, and POST is what InfluxDB requires
        // for statements that change data (DDL); it accepts it for SELECT/SHOW too.
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let (status, headers, body) = match &self.query_http {
            Some(http) => {
                self.send_query_direct(http, request, request_id, &form)
                    .await?
            }
            None => {
                let url = format!("{}/query", self.endpoint.url.trim_end_matches('/'));
                let mut builder = self
                    .http
                    .post(url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header("X-Request-Id", request_id)
                    .body(form);
                if let Some(accept) = request.accept {
                    builder = builder.header(reqwest::header::ACCEPT, accept);
                }
                let response = self
                    .authorize(builder)
                    .send()
                    .await
                    .map_err(|e| self.unreachable(e))?;
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                (status, headers, ReplyBody::Pooled(response))
            }
        };
        if status >= 500 || status == StatusCode::TOO_MANY_REQUESTS.as_u16() {
            let retry_after = parse_retry_after(&headers);
            let text = body.all(self).await.unwrap_or_default();
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            return Err(self.classify_failure(
                status,
                retry_after,
                &String::from_utf8_lossy(&text),
            ));
        }
        Ok((status, body))
    }

    /// [`Self::send_query`] over the replica's own connections (`query_http`).
    async fn send_query_direct(
        &self,
        http: &std::sync::Arc<QueryHttp>,
        request: &QueryRequest<'_>,
        request_id: &str,
        form: &str,
    ) -> Result<(u16, HeaderMap, ReplyBody), BackendError> {
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(3);
        // A request id is ours (hex and dashes) or the client's; a header value must not break
        // the request's framing whatever the client sent.
        let request_id = if request_id.bytes().all(|b| b.is_ascii_graphic()) {
            request_id
        } else {
            "-"
        };
        headers.push(("X-Request-Id", request_id));
        if let Some(accept) = request.accept {
            headers.push(("Accept", accept));
        }
        let authorization = self.authorization_value();
        if let Some(value) = authorization.as_deref() {
            if !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                return Err(BackendError::Unsupported {
                    url: self.endpoint.url.clone(),
                    message: "the replica's username, password or token holds a character an \
                              HTTP header cannot carry"
                        .to_owned(),
                });
            }
            headers.push(("Authorization", value));
        }
        let answer = http
            .post_form(&headers, form)
            .await
            .map_err(|e| self.unreachable_direct(e))?;
        Ok((
            answer.status,
            answer.headers,
            ReplyBody::Direct(answer.body),
        ))
    }

    /// `GET /ping`: whether the replica answers at all.
    pub async fn ping(&self) -> Result<(), BackendError> {
        let url = format!("{}/ping", self.endpoint.url.trim_end_matches('/'));
        let response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            let text = response.text().await.unwrap_or_default();
            Err(self.classify_failure(status, None, &text))
        }
    }

    fn write_query(
        &self,
        target: WriteTarget<'_>,
    ) -> Result<Vec<(&'static str, String)>, BackendError> {
        let mut query = Vec::with_capacity(4);
        match self.endpoint.dialect {
            Dialect::V1 => {
                query.push(("db", target.database.to_owned()));
                if let Some(rp) = target.retention_policy {
                    query.push(("rp", rp.to_owned()));
                }
                query.push(("precision", v1_precision(target.precision).to_owned()));
            }
            Dialect::V2 => {
                let Some(precision) = v2_precision(target.precision) else {
                    return Err(BackendError::Unsupported {
                        url: self.endpoint.url.clone(),
                        message: format!(
                            "the v2 write API has no {:?} precision",
                            target.precision
                        ),
                    });
                };
                if let Some(org) = &self.endpoint.org {
                    query.push(("org", org.clone()));
                }
                let bucket = match target.retention_policy {
                    Some(rp) => format!("{}/{rp}", target.database),
                    None => target.database.to_owned(),
                };
                query.push(("bucket", bucket));
                query.push(("precision", precision.to_owned()));
            }
        }
        Ok(query)
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let Some(value) = self.authorization_value() else {
            return request;
        };
        match reqwest::header::HeaderValue::from_str(&value) {
            Ok(mut header) => {
                // Kept out of debug output, as reqwest's own `basic_auth` does.
                header.set_sensitive(true);
                request.header(AUTHORIZATION, header)
            }
            // reqwest refuses the request when it is sent, as for any invalid header.
            Err(_) => request.header(AUTHORIZATION, value),
        }
    }

    /// The `Authorization` header value the replica's credentials call for.
    fn authorization_value(&self) -> Option<String> {
        use base64::Engine as _;
        match (&self.endpoint.token, &self.endpoint.username) {
            (Some(token), _) => Some(format!("Token {token}")),
            (None, Some(user)) => {
                let credentials =
                    format!("{user}:{}", self.endpoint.password.as_deref().unwrap_or(""));
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(credentials)
                ))
            }
            (None, None) => None,
        }
    }

    fn unreachable_direct(&self, error: QueryHttpError) -> BackendError {
        BackendError::Unreachable {
            url: self.endpoint.url.clone(),
            message: error.to_string(),
        }
    }

    fn unreachable(&self, error: reqwest::Error) -> BackendError {
        BackendError::Unreachable {
            url: self.endpoint.url.clone(),
            message: error_chain(&error),
        }
    }

    fn classify_failure(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &str,
    ) -> BackendError {
        let url = self.endpoint.url.clone();
        let message = influx_error_message(body);
        // influxd 1.x answers 500 for an unknown `rp`: the same request can never succeed, and
        // retrying it as a transient failure would block the group's log forever.
        if status.is_server_error() && message.contains("retention policy not found") {
            return BackendError::Rejected {
                url,
                status: status.as_u16(),
                reason: RejectReason::RetentionPolicyNotFound,
                message,
            };
        }
        match status.as_u16() {
            401 | 403 => BackendError::Unauthorized {
                url,
                status: status.as_u16(),
                message,
            },
            413 => BackendError::TooLarge { url },
            400 | 404 | 422 => BackendError::Rejected {
                url,
                status: status.as_u16(),
                reason: RejectReason::from_message(&message),
                message,
            },
            code => BackendError::Unavailable {
                url,
                status: code,
                retry_after,
                message,
            },
        }
    }
}

/// InfluxDB's JSON error body (`{"error": "..."}`), or the raw text when it is not JSON.
fn influx_error_message(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct InfluxError {
        error: String,
    }
    #[derive(serde::Deserialize)]
    struct V2Error {
        message: String,
    }
    if let Ok(e) = serde_json::from_str::<InfluxError>(body) {
        return e.error;
    }
    if let Ok(e) = serde_json::from_str::<V2Error>(body) {
        return e.message;
    }
    body.trim().chars().take(1024).collect()
}

fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

fn v1_precision(precision: Precision) -> &'static str {
    match precision {
        Precision::Nanosecond => "n",
        Precision::Microsecond => "u",
        Precision::Millisecond => "ms",
        Precision::Second => "s",
        Precision::Minute => "m",
        Precision::Hour => "h",
    }
}

fn v2_precision(precision: Precision) -> Option<&'static str> {
    match precision {
        Precision::Nanosecond => Some("ns"),
        Precision::Microsecond => Some("us"),
        Precision::Millisecond => Some("ms"),
        Precision::Second => Some("s"),
        Precision::Minute | Precision::Hour => None,
    }
}

fn gzip(body: &Chunks) -> std::io::Result<Vec<u8>> {
    // Level 1: the link is loopback or LAN; CPU matters more than bytes.
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(body.len() as usize / 4),
        Compression::fast(),
    );
    for part in body.parts() {
        encoder.write_all(part)?;
    }
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(dialect: Dialect) -> BackendClient {
        BackendClient::new(
            Endpoint {
                url: "http://127.0.0.1:9".into(),
                dialect,
                username: None,
                password: None,
                token: None,
                org: Some("acme".into()),
                gzip: true,
            },
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn influxdb_error_bodies_are_classified_by_reason() {
        let c = client(Dialect::V1);
        let conflict = r#"{"error":"partial write: field type conflict: input field \"used\" on measurement \"mem\" is type float, already exists as type integer dropped=1"}"#;
        match c.classify_failure(StatusCode::BAD_REQUEST, None, conflict) {
            BackendError::Rejected {
                reason, message, ..
            } => {
                assert_eq!(reason, RejectReason::FieldTypeConflict);
                assert!(message.starts_with("partial write: field type conflict"));
            }
            other => panic!("{other:?}"),
        }
        match c.classify_failure(
            StatusCode::NOT_FOUND,
            None,
            r#"{"error":"database not found: \"x\""}"#,
        ) {
            BackendError::Rejected { reason, .. } => {
                assert_eq!(reason, RejectReason::DatabaseNotFound)
            }
            other => panic!("{other:?}"),
        }
        match c.classify_failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            r#"{"error":"retention policy not found: nope"}"#,
        ) {
            BackendError::Rejected { reason, .. } => {
                assert_eq!(reason, RejectReason::RetentionPolicyNotFound)
            }
            other => panic!("{other:?}"),
        }
        let busy = c.classify_failure(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(Duration::from_secs(3)),
            "",
        );
        assert!(busy.is_transient());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(3)));
        assert!(
            c.classify_failure(StatusCode::UNAUTHORIZED, None, "")
                .is_transient()
        );
        assert!(
            !c.classify_failure(StatusCode::PAYLOAD_TOO_LARGE, None, "")
                .is_transient()
        );
    }

    #[test]
    fn v2_queries_name_org_bucket_and_refuse_minute_precision() {
        let c = client(Dialect::V2);
        let q = c
            .write_query(WriteTarget {
                database: "telegraf",
                retention_policy: Some("autogen"),
                precision: Precision::Millisecond,
            })
            .unwrap();
        assert_eq!(
            q,
            vec![
                ("org", "acme".to_string()),
                ("bucket", "telegraf/autogen".to_string()),
                ("precision", "ms".to_string())
            ]
        );
        assert!(
            c.write_query(WriteTarget {
                database: "telegraf",
                retention_policy: None,
                precision: Precision::Minute,
            })
            .is_err()
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let c = BackendClient::new(
            Endpoint {
                url: format!("http://127.0.0.1:{port}"),
                dialect: Dialect::V1,
                username: None,
                password: None,
                token: None,
                org: None,
                gzip: true,
            },
            Duration::from_secs(2),
        )
        .unwrap();
        let target = WriteTarget {
            database: "db",
            retention_policy: None,
            precision: Precision::Nanosecond,
        };
        let error = c
            .write(target, bytes::Bytes::from_static(b"m f=1\n"), "req-1")
            .await
            .unwrap_err();
        assert!(
            matches!(error, BackendError::Unreachable { .. }),
            "{error:?}"
        );
        assert!(error.is_transient());
    }
}
