//! Reading a blob: from the store, or from the temp file of a download
//! under way while it grows.
//!
//! A reader never receives the final byte of its response (the whole blob
//! or a range of it) before the blob's digest was checked, so a client can
//! never see a complete-looking wrong body: on a mismatch or a cut-off
//! upstream its response is aborted instead.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::watch;

use super::Progress;
use crate::metrics::METRICS;

/// Largest read of a growing file handed to a client in one chunk.
const READ_CHUNK: usize = 256 * 1024;
/// Largest read of a stored blob: large reads, few hand-offs.
const STORED_CHUNK: usize = 1024 * 1024;

/// A blob to send: stored, or still arriving.
pub(crate) struct Blob {
    pub(super) file: Arc<File>,
    pub(super) size: Option<u64>,
    pub(super) progress: Option<watch::Receiver<Progress>>,
}

impl Blob {
    pub(crate) fn stored(file: File, size: u64) -> Blob {
        Blob {
            file: Arc::new(file),
            size: Some(size),
            progress: None,
        }
    }

    /// Whether it comes from the store (not from a download under way).
    pub(crate) fn is_stored(&self) -> bool {
        self.progress.is_none()
    }

    /// The full size, when known (always, unless upstream sent no length).
    pub(crate) fn size(&self) -> Option<u64> {
        self.size
    }

    /// Another reader of the same blob, for another part of the same
    /// response. The parts of a response are read one after another, never
    /// at once, so a stored blob's file handle (read with seek-then-read)
    /// still has one reader at a time.
    pub(crate) fn share(&self) -> Blob {
        Blob {
            file: self.file.clone(),
            size: self.size,
            progress: self.progress.clone(),
        }
    }

    /// The bytes from `start` up to `end` (exclusive; `None`: to the end).
    pub(crate) fn stream(
        self,
        start: u64,
        end: Option<u64>,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        self.stream_part(start, end, true)
    }

    /// Like `stream`, for one part of a response; `last`: the part that
    /// ends the response. Only that part holds back its last byte until the
    /// digest is verified: the response cannot look complete before its
    /// own last byte, so the parts before it go out as they arrive.
    pub(crate) fn stream_part(
        self,
        start: u64,
        end: Option<u64>,
        last: bool,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        // A stored blob ends at its size; a growing one learns its end.
        let end = if self.progress.is_none() {
            end.or(self.size)
        } else {
            end
        };
        let reader = Reader {
            file: self.file,
            pos: start,
            end,
            progress: self.progress,
            hold_back: last,
        };
        futures_util::stream::unfold(reader, |mut r| async move {
            let chunk = r.next_chunk().await?;
            if let Ok(bytes) = &chunk {
                METRICS.served(bytes.len() as u64);
            }
            Some((chunk, r))
        })
    }
}

struct Reader {
    file: Arc<File>,
    pos: u64,
    end: Option<u64>,
    progress: Option<watch::Receiver<Progress>>,
    /// Hold back the last byte until verified (see `Blob::stream_part`).
    hold_back: bool,
}

impl Reader {
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            // How far the file may be read now, and whether that is final.
            let (readable, complete) = match &mut self.progress {
                None => (self.end.unwrap_or(0), true),
                Some(rx) => match &*rx.borrow_and_update() {
                    Progress::Starting => (0, false),
                    // Hold back the last byte of this response (of a range
                    // as of the whole blob) until the digest is verified.
                    Progress::Receiving { file, written, .. } => {
                        self.file = file.clone();
                        let arrived = self.end.map_or(*written, |e| e.min(*written));
                        if self.hold_back {
                            (arrived.saturating_sub(1), false)
                        } else {
                            (arrived, false)
                        }
                    }
                    Progress::Done { file, size } => {
                        self.file = file.clone();
                        self.end = Some(self.end.map_or(*size, |e| e.min(*size)));
                        (*size, true)
                    }
                    Progress::Failed(e) => return Some(Err(io::Error::other(e.to_string()))),
                },
            };
            let stop = self.end.map_or(readable, |e| e.min(readable));
            if self.pos < stop {
                let chunk = if self.progress.is_none() {
                    STORED_CHUNK
                } else {
                    READ_CHUNK
                };
                let len = (stop - self.pos).min(chunk as u64) as usize;
                return Some(self.read(len).await);
            }
            if complete {
                return None;
            }
            let rx = self.progress.as_mut()?;
            if rx.changed().await.is_err() {
                return Some(Err(io::Error::other("download ended without a result")));
            }
        }
    }

    async fn read(&mut self, len: usize) -> io::Result<Bytes> {
        let (file, pos) = (self.file.clone(), self.pos);
        // A stored blob's handle is this reader's alone: read it
        // sequentially into fresh capacity (no zero-filling). A growing
        // file is shared with other readers: positional reads.
        let exclusive = self.progress.is_none();
        let bytes = tokio::task::spawn_blocking(move || {
            let buf = if exclusive {
                let mut handle = &*file;
                handle.seek(io::SeekFrom::Start(pos))?;
                let mut buf = Vec::with_capacity(len);
                handle.take(len as u64).read_to_end(&mut buf)?;
                Bytes::from(buf)
            } else {
                let mut buf = BytesMut::zeroed(len);
                let n = file.read_at(&mut buf, pos)?;
                buf.truncate(n);
                buf.freeze()
            };
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "blob file shorter than expected",
                ));
            }
            Ok(buf)
        })
        .await
        .map_err(io::Error::other)??;
        self.pos += bytes.len() as u64;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures_util::FutureExt;

    use super::*;
    use crate::cache::CacheError;
    use crate::domain::Digest;

    /// A download that has written `data` (of a larger blob) so far.
    fn arriving(data: &[u8]) -> (watch::Sender<Progress>, Arc<File>) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(data).unwrap();
        let file = Arc::new(file);
        let (tx, _) = watch::channel(Progress::Receiving {
            file: file.clone(),
            written: data.len() as u64,
            total: Some(1000),
        });
        (tx, file)
    }

    fn reader(
        tx: &watch::Sender<Progress>,
        file: &Arc<File>,
        start: u64,
        end: Option<u64>,
    ) -> Reader {
        Reader {
            file: file.clone(),
            pos: start,
            end,
            progress: Some(tx.subscribe()),
            hold_back: true,
        }
    }

    /// Reads `len` bytes, then checks the reader waits for more.
    async fn read_then_wait(reader: &mut Reader, len: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < len {
            got.extend_from_slice(&reader.next_chunk().await.unwrap().unwrap());
        }
        assert!(reader.next_chunk().now_or_never().is_none(), "did not wait");
        got
    }

    #[tokio::test]
    async fn a_range_already_arrived_keeps_its_last_byte_until_verified() {
        let data: Vec<u8> = (0..=255).cycle().take(600).map(|b| b as u8).collect();
        let (tx, file) = arriving(&data);
        for (start, end) in [(100, Some(300)), (0, Some(600)), (500, None)] {
            let mut r = reader(&tx, &file, start, end);
            let stop = end.unwrap_or(600) as usize - 1;
            let got = read_then_wait(&mut r, stop - start as usize).await;
            assert_eq!(got, data[start as usize..stop]);
        }
        // Verified: the rest follows.
        let mut r = reader(&tx, &file, 100, Some(300));
        read_then_wait(&mut r, 199).await;
        tx.send_replace(Progress::Done {
            file: file.clone(),
            size: 600,
        });
        assert_eq!(r.next_chunk().await.unwrap().unwrap(), data[299..300]);
        assert!(r.next_chunk().await.is_none());
    }

    #[tokio::test]
    async fn a_part_before_the_last_goes_out_whole_as_it_arrives() {
        let data: Vec<u8> = (0..=255).cycle().take(600).map(|b| b as u8).collect();
        let (tx, file) = arriving(&data);
        let mut inner = reader(&tx, &file, 100, Some(300));
        inner.hold_back = false;
        let got = read_then_wait(&mut inner, 200).await;
        assert_eq!(got, data[100..300]);
        tx.send_replace(Progress::Done {
            file: file.clone(),
            size: 600,
        });
        assert!(inner.next_chunk().await.is_none());
    }

    #[tokio::test]
    async fn a_range_of_a_failed_download_ends_in_an_error() {
        let (tx, file) = arriving(&[7; 600]);
        let mut r = reader(&tx, &file, 100, Some(300));
        read_then_wait(&mut r, 199).await;
        tx.send_replace(Progress::Failed(CacheError::DigestMismatch(
            Digest::sha256_of(b"x"),
        )));
        assert!(matches!(r.next_chunk().await, Some(Err(_))));
    }
}
