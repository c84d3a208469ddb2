//! A request body made of several byte slices sent back to back, with an exact length (so the
//! backend sees `Content-Length`, not chunked encoding). It lets a sender write a batch of queue
//! records without first copying their lines into one buffer. It never reorders or alters them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Slices sent in order as one body.
#[derive(Debug, Clone, Default)]
pub struct Chunks {
    parts: VecDeque<Bytes>,
    remaining: u64,
}

impl Chunks {
    pub fn new(parts: impl IntoIterator<Item = Bytes>) -> Self {
        let parts: VecDeque<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let remaining = parts.iter().map(|p| p.len() as u64).sum();
        Chunks { parts, remaining }
    }

    pub fn len(&self) -> u64 {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    pub fn parts(&self) -> impl Iterator<Item = &Bytes> {
        self.parts.iter()
    }

    /// One contiguous copy (for compression or for splitting a rejected batch).
    pub fn concat(&self) -> Bytes {
        if self.parts.len() == 1 {
            return self.parts[0].clone();
        }
        let mut joined = Vec::with_capacity(self.remaining as usize);
        for part in &self.parts {
            joined.extend_from_slice(part);
        }
        Bytes::from(joined)
    }
}

impl From<Bytes> for Chunks {
    fn from(bytes: Bytes) -> Self {
        Chunks::new([bytes])
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.parts.pop_front() {
            Some(part) => {
                self.remaining -= part.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(part))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn parts_come_out_in_order_with_an_exact_length() {
        let chunks = Chunks::new([
            Bytes::from_static(b"a f=1 1\n"),
            Bytes::new(),
            Bytes::from_static(b"b f=2 2\n"),
        ]);
        assert_eq!(chunks.size_hint().exact(), Some(16));
        assert_eq!(&chunks.concat()[..], b"a f=1 1\nb f=2 2\n");
        let collected = chunks.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"a f=1 1\nb f=2 2\n");
    }
}
