//! Blob downloads: one upstream transfer per digest, written to a temp file
//! while every interested client reads the growing file, verified, then
//! committed to the store.
//!
//! A reader never receives the final byte of its response (the whole blob
//! or a range of it) before the blob's digest was checked, so a client can
//! never see a complete-looking wrong body: on a mismatch or a cut-off
//! upstream its response is aborted instead.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::sync::watch;

use super::error::{blocking, CacheError};
use super::Storage;
use crate::domain::{Digest, RepoName};
use crate::metrics::METRICS;
use crate::store::{unix_now, BlobReader, BlobRecord, OpenBlob, TempBlob};
use crate::upstream::{Upstream, UpstreamError};

/// Bytes gathered from upstream before one write to disk.
const WRITE_BATCH: usize = 256 * 1024;
/// Largest read of a growing file handed to a client in one chunk.
const READ_CHUNK: usize = 256 * 1024;
/// Largest read of a stored blob: large reads, few hand-offs.
const STORED_CHUNK: usize = 1024 * 1024;

#[derive(Clone)]
pub enum Progress {
    /// Waiting for the upstream's answer.
    Starting,
    Receiving {
        file: Arc<File>,
        written: u64,
        total: Option<u64>,
    },
    /// Verified and stored.
    Done {
        file: Arc<File>,
        size: u64,
    },
    Failed(CacheError),
}

/// The downloads under way, by digest.
#[derive(Default)]
pub struct Downloads {
    active: Mutex<HashMap<Digest, Arc<watch::Sender<Progress>>>>,
}

impl Downloads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<watch::Sender<Progress>>>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    /// The digests being downloaded now.
    pub fn digests(&self) -> Vec<Digest> {
        self.lock().keys().cloned().collect()
    }
}

/// A blob to send: stored, or still arriving.
pub struct Blob {
    file: Arc<File>,
    size: Option<u64>,
    progress: Option<watch::Receiver<Progress>>,
}

impl Blob {
    pub fn stored(file: File, size: u64) -> Blob {
        Blob {
            file: Arc::new(file),
            size: Some(size),
            progress: None,
        }
    }

    /// Whether it comes from the store (not from a download under way).
    pub fn is_stored(&self) -> bool {
        self.progress.is_none()
    }

    /// The full size, when known (always, unless upstream sent no length).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The bytes from `start` up to `end` (exclusive; `None`: to the end).
    pub fn stream(
        self,
        start: u64,
        end: Option<u64>,
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
                        (arrived.saturating_sub(1), false)
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

impl Storage {
    /// A blob from the store, or from the one upstream download of it
    /// (started now if none is under way).
    pub async fn blob(
        self: &Arc<Self>,
        upstream: &Arc<Upstream>,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Blob, CacheError> {
        if let Some(blob) = self.stored_blob(digest).await? {
            METRICS.cache("blob", true);
            return Ok(blob);
        }
        METRICS.cache("blob", false);
        let mut rx = self.join_or_start(upstream, repo, digest);
        loop {
            let ready = match &*rx.borrow_and_update() {
                Progress::Starting => None,
                Progress::Receiving { file, total, .. } => Some((file.clone(), *total)),
                Progress::Done { file, size } => Some((file.clone(), Some(*size))),
                Progress::Failed(e) => return Err(e.clone()),
            };
            if let Some((file, size)) = ready {
                return Ok(Blob {
                    file,
                    size,
                    progress: Some(rx),
                });
            }
            rx.changed()
                .await
                .map_err(|_| CacheError::Internal("download vanished".into()))?;
        }
    }

    /// The size of a blob, stored, arriving, or asked of the upstream.
    pub async fn blob_size(
        self: &Arc<Self>,
        upstream: &Upstream,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<u64>, CacheError> {
        if let Some(size) = self.local_blob_size(digest).await? {
            return Ok(Some(size));
        }
        match upstream.head_blob(repo, digest).await {
            Err(UpstreamError::NotFound) => Err(CacheError::BlobUnknown),
            other => Ok(other?),
        }
    }

    /// The size of a blob stored, or arriving with a known length.
    pub(super) async fn local_blob_size(&self, digest: &Digest) -> Result<Option<u64>, CacheError> {
        if let Some(blob) = self.stored_blob(digest).await? {
            return Ok(blob.size);
        }
        let arriving = self.downloads.lock().get(digest).map(|tx| tx.subscribe());
        Ok(arriving.and_then(|rx| match &*rx.borrow() {
            Progress::Receiving {
                total: Some(size), ..
            }
            | Progress::Done { size, .. } => Some(*size),
            _ => None,
        }))
    }

    async fn stored_blob(&self, digest: &Digest) -> Result<Option<Blob>, CacheError> {
        let blobs = self.blobs.clone();
        let digest = digest.clone();
        let found = blocking(move || blobs.open(&digest)).await?;
        Ok(found.map(|OpenBlob { size, reader }| match reader {
            BlobReader::File(file) => Blob::stored(file, size),
        }))
    }

    fn join_or_start(
        self: &Arc<Self>,
        upstream: &Arc<Upstream>,
        repo: &RepoName,
        digest: &Digest,
    ) -> watch::Receiver<Progress> {
        let mut active = self.downloads.lock();
        if let Some(tx) = active.get(digest) {
            return tx.subscribe();
        }
        let (tx, rx) = watch::channel(Progress::Starting);
        let tx = Arc::new(tx);
        active.insert(digest.clone(), tx.clone());
        drop(active);
        // Detached: the download completes (and is cached) even if the
        // client that started it goes away.
        let (storage, upstream, repo, digest) =
            (self.clone(), upstream.clone(), repo.clone(), digest.clone());
        tokio::spawn(async move {
            if let Err(e) = storage.download(&upstream, &repo, &digest, &tx).await {
                tracing::warn!(%digest, %repo, error = %e, "blob download failed");
                tx.send_replace(Progress::Failed(e));
            }
            let mut active = storage.downloads.lock();
            if active.get(&digest).is_some_and(|t| Arc::ptr_eq(t, &tx)) {
                active.remove(&digest);
            }
        });
        rx
    }

    /// Fetches a blob into a temp file, verifies it and commits it.
    async fn download(
        &self,
        upstream: &Upstream,
        repo: &RepoName,
        digest: &Digest,
        progress: &Arc<watch::Sender<Progress>>,
    ) -> Result<(), CacheError> {
        // Another download may have finished between our look-up and now.
        if let Some(blob) = self.stored_blob(digest).await? {
            progress.send_replace(Progress::Done {
                file: blob.file,
                size: blob.size.unwrap_or(0),
            });
            return Ok(());
        }
        let _permit = upstream.download_permit().await;
        let response = match upstream.get_blob(repo, digest).await {
            Err(UpstreamError::NotFound) => return Err(CacheError::BlobUnknown),
            other => other?,
        };
        let total = response.content_length();
        // Within the quota (evicting if need be); else stream it through.
        let keep = match total {
            Some(size) => self.make_room(size).await?,
            None => true,
        };
        if !keep {
            tracing::warn!(%digest, size = total, "blob larger than max_size: streamed through, not cached");
        }
        let (blobs, expected) = (self.blobs.clone(), digest.clone());
        let temp = Arc::new(blocking(move || blobs.create_temp(&expected)).await?);
        let file = temp.file();
        progress.send_replace(Progress::Receiving {
            file: file.clone(),
            written: 0,
            total,
        });
        let writer = spawn_writer(temp.clone(), progress.clone());
        let received = receive(response, total, &writer.batches).await;
        // No more batches: the writer finishes what it has and reports.
        let WriterHandle { batches, done } = writer;
        drop(batches);
        let written = done
            .await
            .map_err(|e| CacheError::Internal(format!("blob writer failed: {e}")));
        // A network failure explains a short write; report it first.
        let received = received?;
        let written = written??;
        if written != received {
            return Err(CacheError::Internal("blob writer stopped early".into()));
        }
        if let Some(expected) = total.filter(|t| *t != written) {
            return Err(CacheError::Truncated {
                got: written,
                expected,
            });
        }
        if !temp.matches_digest() {
            return Err(CacheError::DigestMismatch(digest.clone()));
        }
        let temp = Arc::try_unwrap(temp)
            .map_err(|_| CacheError::Internal("temp file still shared".into()))?;
        if keep {
            self.commit(temp, digest, repo, written).await;
        }
        // Verified (and, when kept, durable): readers may have the last byte.
        // Not kept: the temp file is gone; readers keep their handle.
        progress.send_replace(Progress::Done {
            file,
            size: written,
        });
        Ok(())
    }

    /// Makes a verified download durable under its digest. A client that
    /// was sent a whole blob finds it stored after any crash.
    async fn commit(&self, temp: TempBlob, digest: &Digest, repo: &RepoName, written: u64) {
        let (meta, blobs, digest2) = (self.meta.clone(), self.blobs.clone(), digest.clone());
        let committed = blocking(move || {
            blobs.commit(temp)?;
            let record = BlobRecord {
                size: written,
                stored_at: unix_now(),
            };
            // The file under its digest is what is served; the record is
            // bookkeeping (sizes for the quota and the API), written out by
            // sled's own periodic flush: no second fsync per blob.
            meta.blocking().put_blob(&digest2, &record)
        })
        .await;
        match committed {
            Ok(()) => {
                self.quota.add(written);
                tracing::info!(%digest, %repo, bytes = written, "blob cached");
            }
            // The clients still get verified bytes; the blob is not cached.
            Err(e) => tracing::error!(%digest, error = %e, "verified blob could not be stored"),
        }
    }
}

/// The disk side of a download: a blocking task that writes and hashes
/// batches while the network side receives the next ones.
struct WriterHandle {
    batches: tokio::sync::mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<Result<u64, CacheError>>,
}

/// Batches queued between network and disk: bounds memory per download.
const PIPELINE_DEPTH: usize = 4;

fn spawn_writer(temp: Arc<TempBlob>, progress: Arc<watch::Sender<Progress>>) -> WriterHandle {
    let (batches, mut inbox) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
    let done = tokio::task::spawn_blocking(move || {
        let mut written = 0u64;
        while let Some(batch) = inbox.blocking_recv() {
            temp.append(&batch)?;
            written += batch.len() as u64;
            METRICS.fetched(batch.len() as u64);
            progress.send_modify(|p| {
                if let Progress::Receiving { written: w, .. } = p {
                    *w = written;
                }
            });
        }
        Ok(written)
    });
    WriterHandle { batches, done }
}

/// Reads the upstream body into batches for the writer; returns the bytes
/// handed over. Stops early (without error) if the writer has failed.
async fn receive(
    response: reqwest::Response,
    total: Option<u64>,
    batches: &tokio::sync::mpsc::Sender<Bytes>,
) -> Result<u64, CacheError> {
    let mut body = response.bytes_stream();
    let mut received = 0u64;
    let mut pending = BytesMut::new();
    let mut finished = false;
    while !finished {
        // Wait for one chunk, then take whatever else is ready, so batches
        // are large under load and prompt when data trickles.
        match body.next().await {
            Some(chunk) => pending.extend_from_slice(&chunk.map_err(upstream_read_error)?),
            None => finished = true,
        }
        while !finished && pending.len() < WRITE_BATCH {
            match body.next().now_or_never() {
                Some(Some(chunk)) => {
                    pending.extend_from_slice(&chunk.map_err(upstream_read_error)?)
                }
                Some(None) => finished = true,
                None => break,
            }
        }
        if pending.is_empty() {
            continue;
        }
        let batch = pending.split().freeze();
        received += batch.len() as u64;
        if total.is_some_and(|t| received > t) {
            return Err(CacheError::Upstream(UpstreamError::rejected(
                "blob body longer than its Content-Length",
            )));
        }
        if batches.send(batch).await.is_err() {
            break;
        }
    }
    Ok(received)
}

fn upstream_read_error(e: reqwest::Error) -> CacheError {
    CacheError::Upstream(if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        UpstreamError::Protocol(format!("blob body: {}", crate::upstream::error_chain(&e)))
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

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
