//! The leader's side of a download: the upstream body, batched, written and
//! hashed on a blocking thread, verified, then committed to the store.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::watch;

use super::reader::Source;
use super::{stored_blob, DownloadLead, Progress};
use crate::cache::error::{blocking, CacheError};
use crate::cache::forward::Fetcher;
use crate::cache::usage::key;
use crate::cache::Storage;
use crate::domain::{Digest, RepoName};
use crate::metrics::METRICS;
use crate::store::{unix_now, BlobRecord, TempBlob};
use crate::upstream::{BlobBody, UpstreamError};

/// Bytes gathered from upstream before one write to disk.
const WRITE_BATCH: usize = 256 * 1024;

/// Fetches a blob into a temp file, verifies it and commits it.
pub(super) async fn download(
    store: &Storage,
    fetcher: &Fetcher,
    repo: &RepoName,
    digest: &Digest,
    progress: &Arc<watch::Sender<Progress>>,
    lead: &mut DownloadLead,
) -> Result<(), CacheError> {
    // Another download may have finished between our look-up and now.
    if let Some(blob) = stored_blob(store, digest).await? {
        progress.send_replace(Progress::Done {
            source: blob.source,
            size: blob.size.unwrap_or(0),
        });
        lead.publish(Ok(progress.subscribe()));
        return Ok(());
    }
    let _permit = fetcher.upstream.download_permit().await?;
    let body = match fetcher.get_blob(digest).await {
        Err(UpstreamError::NotFound) => return Err(CacheError::BlobUnknown),
        other => other?,
    };
    let total = body.content_length();
    // Within the quota (evicting if need be); else stream it through.
    let keep = match total {
        Some(size) => store.make_room(digest, size).await?,
        None => true,
    };
    if !keep {
        tracing::warn!(%digest, size = total, "blob larger than max_size: streamed through, not cached");
    }
    let (blobs, expected) = (store.blobs.clone(), digest.clone());
    let temp = Arc::new(blocking(move || blobs.create_temp(&expected)).await?);
    let file = temp.file();
    progress.send_replace(Progress::Receiving {
        file: file.clone(),
        written: 0,
        total,
    });
    // The body has started: waiters follow the growing file from now.
    lead.publish(Ok(progress.subscribe()));
    let upstream_bytes = !body.is_from_member();
    let writer = spawn_writer(temp.clone(), progress.clone(), upstream_bytes);
    let received = receive(body, &writer.batches).await;
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
    let temp =
        Arc::try_unwrap(temp).map_err(|_| CacheError::Internal("temp file still shared".into()))?;
    let over = if keep {
        commit(store, temp, digest, repo, written).await
    } else {
        Vec::new()
    };
    // Verified (and, when kept, durable): readers may have the last byte.
    // Not kept: the temp file is gone; readers keep their handle.
    progress.send_replace(Progress::Done {
        source: Source::File(file),
        size: written,
    });
    // Caches it put over their max_size (its size was not known before,
    // or a pull raced): evicted within, after the readers were answered.
    store.keep_caches_within(over, Some(digest)).await;
    Ok(())
}

/// Makes a verified download durable under its digest. A client that
/// was sent a whole blob finds it stored after any crash. Returns the
/// caches it put over their `max_size`.
async fn commit(
    store: &Storage,
    temp: TempBlob,
    digest: &Digest,
    repo: &RepoName,
    written: u64,
) -> Vec<String> {
    let (meta, blobs, digest2) = (store.meta.clone(), store.blobs.clone(), digest.clone());
    let committed = blocking(move || {
        blobs.commit(temp)?;
        let record = BlobRecord {
            size: written,
            stored_at: unix_now(),
        };
        // The record is flushed at once: without it, a crash before
        // sled's periodic flush left the file stored but its size out of
        // the quota's and the caches' counts (seen after kill -9 in the
        // pin test). One metadata flush per downloaded blob, beside the
        // file's own fsyncs.
        let meta = meta.blocking();
        meta.put_blob(&digest2, &record)?;
        meta.flush()
    })
    .await;
    match committed {
        Ok(()) => {
            store.quota.add(written);
            tracing::info!(%digest, %repo, bytes = written, "blob cached");
            store.quota.usage.stored(key(digest), written)
        }
        // The clients still get verified bytes; the blob is not cached.
        Err(e) => {
            tracing::error!(%digest, error = %e, "verified blob could not be stored");
            Vec::new()
        }
    }
}

/// The disk side of a download: a task that writes and hashes batches on
/// the blocking pool while the network side receives the next ones.
struct WriterHandle {
    batches: tokio::sync::mpsc::Sender<Bytes>,
    done: tokio::task::JoinHandle<Result<u64, CacheError>>,
}

/// Batches queued between network and disk: bounds memory per download.
const PIPELINE_DEPTH: usize = 4;

/// `upstream_bytes`: whether the bytes count as fetched upstream (not when
/// another cluster member sends them).
fn spawn_writer(
    temp: Arc<TempBlob>,
    progress: Arc<watch::Sender<Progress>>,
    upstream_bytes: bool,
) -> WriterHandle {
    let (batches, mut inbox) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
    // One blocking task per batch, not one per download: a download that
    // waits on a slow upstream holds no blocking thread, so the pool can
    // stay small (see cli/serve.rs) however many downloads are under way.
    let done = tokio::spawn(async move {
        let mut written = 0u64;
        while let Some(batch) = inbox.recv().await {
            let temp = temp.clone();
            let len = batch.len() as u64;
            blocking(move || temp.append(&batch)).await?;
            written += len;
            if upstream_bytes {
                METRICS.fetched(len);
            }
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
    mut body: BlobBody,
    batches: &tokio::sync::mpsc::Sender<Bytes>,
) -> Result<u64, CacheError> {
    let mut received = 0u64;
    let mut pending = BytesMut::new();
    let mut finished = false;
    while !finished {
        // Wait for one chunk, then take whatever else is ready, so batches
        // are large under load and prompt when data trickles.
        match body.next().await {
            Some(chunk) => pending.extend_from_slice(&chunk?),
            None => finished = true,
        }
        while !finished && pending.len() < WRITE_BATCH {
            match body.next().now_or_never() {
                Some(Some(chunk)) => pending.extend_from_slice(&chunk?),
                Some(None) => finished = true,
                None => break,
            }
        }
        if pending.is_empty() {
            continue;
        }
        let batch = pending.split().freeze();
        received += batch.len() as u64;
        if batches.send(batch).await.is_err() {
            break;
        }
    }
    Ok(received)
}
