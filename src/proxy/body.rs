//! Reading a write request's body: the wire-size limit is enforced while the bytes arrive,
//! BEFORE any decompression, and the decompressed size has its own limit, so neither an
//! oversized upload nor a gzip bomb can make the proxy allocate more than its configured caps.
//!
//! It must never buffer more than `max_wire_bytes` of a request, nor inflate more than
//! `max_decoded_bytes + 1` bytes of it.

use std::io::Read;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use flate2::read::MultiGzDecoder;
use http_body_util::BodyExt;

use crate::config::api::LimitsConfig;

/// Limits applied to one request body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Bytes on the wire (compressed or not).
    pub max_wire_bytes: usize,
    /// Bytes after decompression.
    pub max_decoded_bytes: usize,
}

impl From<&LimitsConfig> for BodyLimits {
    fn from(limits: &LimitsConfig) -> Self {
        BodyLimits {
            max_wire_bytes: usize::try_from(limits.max_body_bytes.get()).unwrap_or(usize::MAX),
            max_decoded_bytes: usize::try_from(limits.max_decompressed_bytes.get())
                .unwrap_or(usize::MAX),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    #[error("request body too large: more than {limit} bytes (limit max_body_bytes)")]
    TooLarge { limit: usize },
    #[error(
        "request body too large: more than {limit} bytes after gzip decompression (limit max_decompressed_bytes)"
    )]
    DecompressedTooLarge { limit: usize },
    #[error("invalid gzip body: {0}")]
    InvalidGzip(String),
    #[error("unsupported Content-Encoding {0:?}: use gzip or identity")]
    UnsupportedEncoding(String),
    #[error("reading the request body failed: {0}")]
    Read(String),
}

impl BodyError {
    /// The HTTP status InfluxDB uses for the same failure.
    pub fn status(&self) -> u16 {
        match self {
            BodyError::TooLarge { .. } | BodyError::DecompressedTooLarge { .. } => 413,
            BodyError::UnsupportedEncoding(_) => 415,
            BodyError::InvalidGzip(_) | BodyError::Read(_) => 400,
        }
    }
}

/// Collects `body` under `limits`, decompressing it when `content_encoding` says gzip.
pub async fn read_body(
    body: Body,
    content_length: Option<u64>,
    content_encoding: Option<&str>,
    limits: BodyLimits,
) -> Result<Bytes, BodyError> {
    let gzipped = match content_encoding.map(str::trim) {
        None | Some("") | Some("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") || e.eq_ignore_ascii_case("x-gzip") => true,
        Some(other) => return Err(BodyError::UnsupportedEncoding(other.to_owned())),
    };
    if content_length.is_some_and(|n| n > limits.max_wire_bytes as u64) {
        return Err(BodyError::TooLarge {
            limit: limits.max_wire_bytes,
        });
    }
    let wire = collect_limited(body, content_length, limits.max_wire_bytes).await?;
    if gzipped {
        gunzip_limited(&wire, limits.max_decoded_bytes)
    } else if wire.len() > limits.max_decoded_bytes {
        Err(BodyError::TooLarge {
            limit: limits.max_decoded_bytes,
        })
    } else {
        Ok(wire)
    }
}

async fn collect_limited(
    mut body: Body,
    content_length: Option<u64>,
    limit: usize,
) -> Result<Bytes, BodyError> {
    // Trust Content-Length only for the initial capacity, never for the limit.
    let capacity = content_length.map_or(64 * 1024, |n| n as usize).min(limit);
    let mut buffer = BytesMut::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > limit {
                return Err(BodyError::TooLarge { limit });
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

fn gunzip_limited(compressed: &[u8], limit: usize) -> Result<Bytes, BodyError> {
    let decoder = MultiGzDecoder::new(compressed);
    // Reading one byte past the limit tells "exactly at the limit" from "over it".
    let mut limited = decoder.take(limit as u64 + 1);
    let mut decoded = Vec::with_capacity((compressed.len() * 4).min(limit));
    limited
        .read_to_end(&mut decoded)
        .map_err(|e| BodyError::InvalidGzip(e.to_string()))?;
    if decoded.len() > limit {
        return Err(BodyError::DecompressedTooLarge { limit });
    }
    Ok(Bytes::from(decoded))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_wire_bytes: 64 * 1024,
        max_decoded_bytes: 1024 * 1024,
    };

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[tokio::test]
    async fn plain_and_gzip_bodies_are_returned_decoded() {
        let text = b"m,index=a f=1 1\n".repeat(100);
        let plain = read_body(Body::from(text.clone()), None, None, LIMITS)
            .await
            .unwrap();
        assert_eq!(&plain[..], &text[..]);
        let zipped = read_body(Body::from(gzip(&text)), None, Some("gzip"), LIMITS)
            .await
            .unwrap();
        assert_eq!(&zipped[..], &text[..]);
    }

    #[tokio::test]
    async fn an_oversized_body_is_refused_before_it_is_buffered() {
        let big = vec![b'a'; LIMITS.max_wire_bytes + 1];
        let err = read_body(Body::from(big.clone()), None, None, LIMITS)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            BodyError::TooLarge {
                limit: LIMITS.max_wire_bytes
            }
        );
        assert_eq!(err.status(), 413);
        let declared = read_body(Body::from(big), Some(10 << 30), None, LIMITS)
            .await
            .unwrap_err();
        assert_eq!(declared.status(), 413);
    }

    #[tokio::test]
    async fn a_gzip_bomb_stops_at_the_decompressed_limit() {
        // 16 MiB of zeros compress to ~16 KiB: under the wire limit, far over the decoded one.
        let bomb = gzip(&vec![0u8; 16 * 1024 * 1024]);
        assert!(
            bomb.len() < LIMITS.max_wire_bytes,
            "bomb is {} bytes",
            bomb.len()
        );
        let err = read_body(Body::from(bomb), None, Some("gzip"), LIMITS)
            .await
            .unwrap_err();
        assert_eq!(
            err,
            BodyError::DecompressedTooLarge {
                limit: LIMITS.max_decoded_bytes
            }
        );
        assert_eq!(err.status(), 413);
    }

    #[tokio::test]
    async fn broken_gzip_and_unknown_encodings_are_client_errors() {
        let err = read_body(Body::from("not gzip"), None, Some("gzip"), LIMITS)
            .await
            .unwrap_err();
        assert!(matches!(err, BodyError::InvalidGzip(_)));
        assert_eq!(err.status(), 400);
        let err = read_body(Body::from("x"), None, Some("br"), LIMITS)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 415);
    }
}
