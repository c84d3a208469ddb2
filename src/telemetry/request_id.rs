//! Request ids: taken from the client's `X-Request-Id` when it is sane, generated otherwise, and
//! then carried to every log line, backend request and alert that the request causes. A client
//! value is never trusted blindly: it is length-limited and restricted to visible ASCII so it
//! cannot forge log lines or headers.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The header clients and backends see.
pub const REQUEST_ID_HEADER: &str = "X-Request-Id";
const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// The client's id when it is 1..=128 visible ASCII characters, a new one otherwise.
    pub fn from_client(header: Option<&[u8]>) -> RequestId {
        match header {
            Some(value)
                if !value.is_empty()
                    && value.len() <= MAX_LEN
                    && value.iter().all(|b| b.is_ascii_graphic()) =>
            {
                // Visible ASCII is valid UTF-8.
                RequestId(String::from_utf8_lossy(value).into_owned())
            }
            _ => RequestId::generate(),
        }
    }

    /// The id of a request with these headers: its `X-Request-Id` (or InfluxDB's `Request-Id`)
    /// when sane, a new one otherwise.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> RequestId {
        RequestId::from_client(
            headers
                .get("x-request-id")
                .or_else(|| headers.get("request-id"))
                .map(axum::http::HeaderValue::as_bytes),
        )
    }

    /// A new id: 16 hex digits, unique within the process and unlikely to repeat across
    /// restarts (time-seeded).
    pub fn generate() -> RequestId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mixed = xxhash_rust::xxh3::xxh3_64(&[nanos.to_le_bytes(), n.to_le_bytes()].concat());
        RequestId(format!("{mixed:016x}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_client_id_is_kept() {
        assert_eq!(RequestId::from_client(Some(b"abc-123")).as_str(), "abc-123");
    }

    #[test]
    fn unsafe_or_missing_client_ids_are_replaced() {
        for bad in [
            &b""[..],
            b"has space",
            b"new\nline",
            &[b'a'; 129][..],
            b"\xff",
        ] {
            let id = RequestId::from_client(Some(bad));
            assert_eq!(id.as_str().len(), 16, "{bad:?}");
            assert!(id.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(RequestId::generate(), RequestId::generate());
    }
}
