//! Bundles out (issue 15): the plan of an export and its tar stream, for
//! the API (`POST /pulp/api/v3/bundles/plan/` and `.../export/`). The walk
//! and the writer are the cache's (`cache::bundle`); this is the API's one
//! way in, mapping their errors to the API's.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use super::{ManageError, Manager};
use crate::bundle::{BundleSource, Selection};
use crate::cache::bundle::{BundleToWrite, ExportError};

/// A bundle planned earlier and handed back to be written verbatim: the
/// exact text of its `ferry-bundle.json`, and the signature entry made
/// over it (by the CLI, which keeps the private key).
pub(crate) struct GivenManifest {
    pub manifest: String,
    pub signature: Option<String>,
}

/// The tar as a stream of chunks, fed by the writer on the blocking pool
/// through a bounded channel.
pub(crate) struct ExportStream {
    pub content_type: &'static str,
    /// The name a download saves it under.
    pub file_name: String,
    pub chunks: ExportChunks,
}

pub(crate) struct ExportChunks(mpsc::Receiver<io::Result<Bytes>>);

impl futures_util::Stream for ExportChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

impl From<ExportError> for ManageError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Invalid(message) => ManageError::Invalid(json!({ "detail": message })),
            ExportError::Vanished(_) => ManageError::Conflict(e.to_string()),
            ExportError::Cache(e) => ManageError::Cache(e),
            ExportError::Io(e) => ManageError::Cache(crate::cache::CacheError::Internal(format!(
                "writing the bundle: {e}"
            ))),
        }
    }
}

impl Manager {
    /// The exact bytes of the `ferry-bundle.json` that an export of
    /// `selection` would write now. `source` names this ferry (the URL the
    /// client used).
    pub(crate) async fn plan_export(
        &self,
        selection: Selection,
        source_name: String,
    ) -> Result<Vec<u8>, ManageError> {
        let zstd = selection.zstd;
        let storage = self.caches.storage();
        let manifest = storage
            .plan_export(selection, BundleSource::this_ferry(source_name))
            .await?;
        Ok(BundleToWrite::new(manifest, zstd)?.manifest_bytes)
    }

    /// Plans `selection` (or checks a manifest planned earlier) and starts
    /// writing the bundle. Everything that can be refused is refused here,
    /// before the response starts; a blob evicted midway breaks the stream.
    pub(crate) async fn export(
        &self,
        selection: Selection,
        given: Option<GivenManifest>,
        source_name: String,
    ) -> Result<ExportStream, ManageError> {
        let zstd = selection.zstd;
        let storage = self.caches.storage();
        let bundle = match given {
            Some(given) => {
                storage
                    .given_bundle(given.manifest, given.signature, zstd)
                    .await?
            }
            None => {
                let manifest = storage
                    .plan_export(selection, BundleSource::this_ferry(source_name))
                    .await?;
                BundleToWrite::new(manifest, zstd)?
            }
        };
        // The id of a manifest handed back is the client's text: only
        // its safe characters go into a header.
        let id: String = bundle
            .manifest
            .id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .take(64)
            .collect();
        tracing::info!(
            bundle = %id,
            references = bundle.manifest.references.len(),
            blobs = bundle.manifest.blobs.len(),
            signed = bundle.signature.is_some(),
            "export through the API"
        );
        let (content_type, extension) = if zstd {
            ("application/zstd", "tar.zst")
        } else {
            ("application/x-tar", "tar")
        };
        Ok(ExportStream {
            content_type,
            file_name: format!("ferry-bundle-{id}.{extension}"),
            chunks: ExportChunks(storage.stream_bundle(bundle)),
        })
    }
}
