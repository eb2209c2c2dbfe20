//! A blob body as the cache receives it: a stream of chunks whose read
//! failures are already upstream errors, bounded by the length the upstream
//! announced. reqwest stays inside `upstream/`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt};

use super::budget::{Bandwidth, Slot};
use super::{error_chain, UpstreamError};

/// The body of an upstream blob response, read as it arrives.
pub(crate) struct BlobBody {
    content_length: Option<u64>,
    chunks: BoxStream<'static, Result<Bytes, UpstreamError>>,
    /// Its connection under `max_upstream_connections`, until the body ends.
    _slot: Slot,
    /// Streamed by another cluster member, not the upstream.
    from_member: bool,
}

impl BlobBody {
    pub(super) fn new(
        response: reqwest::Response,
        slot: Slot,
        bandwidth: Option<Arc<Bandwidth>>,
    ) -> BlobBody {
        let content_length = response.content_length();
        let mut received = 0u64;
        let chunks = response
            .bytes_stream()
            .map(move |chunk| {
                let chunk = chunk.map_err(read_error)?;
                received += chunk.len() as u64;
                // Never more than announced: the size the quota made room for.
                if content_length.is_some_and(|total| received > total) {
                    return Err(UpstreamError::rejected(
                        "blob body longer than its Content-Length",
                    ));
                }
                Ok(chunk)
            })
            .boxed();
        // Only a cache with a bandwidth cap pays for the bucket.
        let chunks = match bandwidth {
            Some(bandwidth) => chunks
                .then(move |chunk| {
                    let bandwidth = bandwidth.clone();
                    async move {
                        if let Ok(bytes) = &chunk {
                            bandwidth.take(bytes.len()).await;
                        }
                        chunk
                    }
                })
                .boxed(),
            None => chunks,
        };
        BlobBody {
            content_length,
            chunks,
            _slot: slot,
            from_member: false,
        }
    }

    /// A body that another source (a cluster member) streams, with the same
    /// bound: never more than `content_length`, when announced.
    pub(crate) fn from_stream(
        content_length: Option<u64>,
        chunks: BoxStream<'static, Result<Bytes, UpstreamError>>,
    ) -> BlobBody {
        let mut received = 0u64;
        let chunks = chunks
            .map(move |chunk| {
                let chunk = chunk?;
                received += chunk.len() as u64;
                if content_length.is_some_and(|total| received > total) {
                    return Err(UpstreamError::rejected(
                        "blob body longer than its Content-Length",
                    ));
                }
                Ok(chunk)
            })
            .boxed();
        BlobBody {
            content_length,
            chunks,
            _slot: None,
            from_member: true,
        }
    }

    /// Whether another cluster member sends it (then its bytes are not
    /// upstream traffic).
    pub(crate) fn is_from_member(&self) -> bool {
        self.from_member
    }

    /// The length the upstream announced, if it did.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.content_length
    }
}

impl Stream for BlobBody {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.chunks.poll_next_unpin(cx)
    }
}

/// A failure while the body arrives: a stall past the read timeout, or a
/// body cut off or malformed.
fn read_error(e: reqwest::Error) -> UpstreamError {
    if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Protocol(format!("blob body: {}", error_chain(&e)))
    }
}
