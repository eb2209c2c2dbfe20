//! `206 multipart/byteranges` bodies (RFC 9110 §14.6): each range of a
//! blob as a part with its own Content-Range and Content-Type, streamed
//! from the blob one part after another (stored or still arriving).
//!
//! The framing is byte for byte what Go's `http.ServeContent` (and so the
//! distribution registry) writes, which containers/image parses.

use std::future::ready;
use std::io;
use std::ops::Range;

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};

use crate::cache::Blob;

/// The content type of every part: a blob's.
const PART_TYPE: &str = "application/octet-stream";

#[derive(Clone)]
pub(super) struct Multipart {
    /// Random per response, so a blob's bytes cannot be crafted to contain
    /// it and fake a part boundary.
    boundary: String,
    ranges: Vec<Range<u64>>,
    size: u64,
}

impl Multipart {
    /// `ranges`: non-empty, disjoint, within a blob of `size` bytes.
    pub(super) fn new(ranges: Vec<Range<u64>>, size: u64) -> Multipart {
        Multipart {
            boundary: uuid::Uuid::new_v4().simple().to_string(),
            ranges,
            size,
        }
    }

    pub(super) fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The length of the whole body: known before the first byte.
    pub(super) fn content_length(&self) -> u64 {
        let parts: u64 = (0..self.ranges.len())
            .map(|i| self.head(i).len() as u64 + range_len(&self.ranges[i]))
            .sum();
        parts + self.tail().len() as u64
    }

    /// The body, part by part; only the last part's reader holds back the
    /// blob's unverified last byte (see `Blob::stream_part`).
    pub(super) fn body(
        &self,
        blob: Blob,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let this = self.clone();
        let last = this.ranges.len().saturating_sub(1);
        let tail = Bytes::from(this.tail());
        let parts = (0..this.ranges.len()).map(move |i| {
            let range = this.ranges[i].clone();
            let head = Bytes::from(this.head(i));
            let part = blob
                .share()
                .stream_part(range.start, Some(range.end), i == last);
            stream::once(ready(Ok(head))).chain(part)
        });
        stream::iter(parts)
            .flatten()
            .chain(stream::once(ready(Ok(tail))))
    }

    /// The delimiter and headers before part `i`.
    fn head(&self, i: usize) -> String {
        let r = &self.ranges[i];
        let before = if i == 0 { "" } else { "\r\n" };
        format!(
            "{before}--{}\r\nContent-Range: bytes {}-{}/{}\r\nContent-Type: {PART_TYPE}\r\n\r\n",
            self.boundary,
            r.start,
            r.end - 1,
            self.size
        )
    }

    fn tail(&self) -> String {
        format!("\r\n--{}--\r\n", self.boundary)
    }
}

fn range_len(r: &Range<u64>) -> u64 {
    r.end - r.start
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures_util::TryStreamExt;

    use super::*;

    #[tokio::test]
    async fn the_body_is_as_long_as_announced_and_framed_like_go() {
        let data = b"0123456789abcdefghij";
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(data).unwrap();
        let m = Multipart::new(vec![4..6, 0..2], 20);
        let parts: Vec<Bytes> = m.body(Blob::stored(file, 20)).try_collect().await.unwrap();
        let body = parts.concat();
        assert_eq!(body.len() as u64, m.content_length());
        let b = &m.boundary;
        let expected = format!(
            "--{b}\r\nContent-Range: bytes 4-5/20\r\nContent-Type: application/octet-stream\r\n\r\n45\
             \r\n--{b}\r\nContent-Range: bytes 0-1/20\r\nContent-Type: application/octet-stream\r\n\r\n01\
             \r\n--{b}--\r\n"
        );
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        assert_eq!(
            m.content_type(),
            format!("multipart/byteranges; boundary={b}")
        );
    }
}
