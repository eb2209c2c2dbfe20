//! Blob downloads: one upstream transfer per digest (led through the
//! single-flight in `flight`), written to a temp file while every
//! interested client reads the growing file (`reader`), verified, then
//! committed to the store (`fetch`).

mod fetch;
mod reader;

use std::fs::File;
use std::sync::Arc;

use tokio::sync::watch;

use super::error::{blocking, CacheError};
use super::flight::{Joined, Lead, SingleFlight};
use super::forward::Fetcher;
use super::Storage;
use crate::domain::{Digest, RepoName};
use crate::metrics::METRICS;
use crate::store::{BlobReader, OpenBlob};
use crate::upstream::UpstreamError;
pub(crate) use reader::Blob;
use reader::Source;

/// How a download goes, as its readers follow it.
#[derive(Clone)]
pub(super) enum Progress {
    /// Waiting for the upstream's answer.
    Starting,
    Receiving {
        file: Arc<File>,
        written: u64,
        total: Option<u64>,
    },
    /// Verified and stored (read on from the temp file's handle, or from
    /// the store when another download stored it first).
    Done {
        source: Source,
        size: u64,
    },
    Failed(CacheError),
}

/// What a download's leader publishes to the requests that wait on it:
/// its progress once the body starts, or why there is none.
type Started = Result<watch::Receiver<Progress>, CacheError>;

/// The leader's guard of a download: held by its detached task.
type DownloadLead = Lead<Digest, Started>;

/// The downloads under way, by digest.
#[derive(Default)]
pub(super) struct Downloads {
    flights: SingleFlight<Digest, Started>,
}

impl Downloads {
    pub(super) fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The digests being downloaded now.
    pub(super) fn digests(&self) -> Vec<Digest> {
        self.flights.keys()
    }

    /// A blob from the store, or from the one upstream download of it
    /// (started now if none is under way; taken over if its leader failed
    /// before the body started).
    pub(super) async fn blob(
        &self,
        store: &Arc<Storage>,
        fetcher: &Fetcher,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Blob, CacheError> {
        if let Some(blob) = stored_blob(store, digest).await? {
            METRICS.cache("blob", true);
            return Ok(blob);
        }
        METRICS.cache("blob", false);
        let mut rx = match self
            .flights
            .join(digest, fetcher.upstream.wait_bound())
            .await?
        {
            Joined::Follow(started) => started?,
            Joined::Lead(lead) => start(store, fetcher, repo, digest, lead),
        };
        loop {
            let ready = match &*rx.borrow_and_update() {
                Progress::Starting => None,
                Progress::Receiving { file, total, .. } => {
                    Some((Source::File(file.clone()), *total))
                }
                Progress::Done { source, size } => Some((source.clone(), Some(*size))),
                Progress::Failed(e) => return Err(e.clone()),
            };
            if let Some((source, size)) = ready {
                return Ok(Blob {
                    source,
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
    pub(super) async fn blob_size(
        &self,
        store: &Storage,
        fetcher: &Fetcher,
        digest: &Digest,
    ) -> Result<Option<u64>, CacheError> {
        if let Some(size) = self.local_blob_size(store, digest).await? {
            return Ok(Some(size));
        }
        match fetcher.head_blob(digest).await {
            Err(UpstreamError::NotFound) => Err(CacheError::BlobUnknown),
            other => Ok(other?),
        }
    }

    /// The size of a blob stored, or arriving with a known length.
    pub(super) async fn local_blob_size(
        &self,
        store: &Storage,
        digest: &Digest,
    ) -> Result<Option<u64>, CacheError> {
        if let Some(blob) = stored_blob(store, digest).await? {
            return Ok(blob.size);
        }
        let arriving = self.flights.published(digest).and_then(Result::ok);
        Ok(arriving.and_then(|rx| match &*rx.borrow() {
            Progress::Receiving {
                total: Some(size), ..
            }
            | Progress::Done { size, .. } => Some(*size),
            _ => None,
        }))
    }
}

async fn stored_blob(store: &Storage, digest: &Digest) -> Result<Option<Blob>, CacheError> {
    let blobs = store.blobs.clone();
    let digest = digest.clone();
    let found = blocking(move || blobs.open(&digest)).await?;
    Ok(found.map(|OpenBlob { size, reader }| match reader {
        BlobReader::File(file) => Blob::stored(file, size),
        BlobReader::Object(object) => Blob::object(object),
    }))
}

/// Starts the download this request leads; returns its progress.
fn start(
    store: &Arc<Storage>,
    fetcher: &Fetcher,
    repo: &RepoName,
    digest: &Digest,
    mut lead: DownloadLead,
) -> watch::Receiver<Progress> {
    let (tx, rx) = watch::channel(Progress::Starting);
    let tx = Arc::new(tx);
    // Detached: the download completes (and is cached) even if the
    // client that started it goes away. The task holds the lead: the
    // flight ends with it.
    let (store, fetcher, repo, digest) =
        (store.clone(), fetcher.clone(), repo.clone(), digest.clone());
    tokio::spawn(async move {
        if let Err(e) = fetch::download(&store, &fetcher, &repo, &digest, &tx, &mut lead).await {
            tracing::warn!(%digest, %repo, error = %e, "blob download failed");
            // Before the body started, the waiters either share the answer
            // or, for a failure worth another try, one of them takes over
            // (the lead dropped unpublished). After, they read the failure.
            if !lead.is_published() && !e.worth_another_try() {
                lead.publish(Err(e.clone()));
            }
            tx.send_replace(Progress::Failed(e));
        }
    });
    rx
}
