//! Bundles in (issue 15): an import streamed from the API's request body,
//! and the inventory a differential export reads. The body is handed to
//! the import's blocking reader through a small bounded channel, so memory
//! stays flat whatever the bundle's size.

use std::io::Read;
use std::pin::Pin;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use serde_json::json;

use super::{ManageError, Manager};
use crate::bundle::{Inventory, TrustedKey};
use crate::cache::{ImportError, ImportOptions, ImportReport};
use crate::store::ImportMark;

/// An upload's body, as the API hands it over.
pub(crate) type Upload = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Chunks in flight between the connection and the import.
const UPLOAD_DEPTH: usize = 16;

/// The options of `POST bundles/import/` (its query parameters).
#[derive(Debug, Default)]
pub(crate) struct ImportRequest {
    /// `FROM=TO` pairs.
    pub map: Vec<String>,
    pub to: Option<String>,
    pub pin: bool,
    /// The trusted public key's text.
    pub trusted_key: Option<String>,
}

impl Manager {
    /// Imports the bundle the upload carries.
    pub(crate) async fn import_bundle(
        &self,
        upload: Upload,
        request: ImportRequest,
    ) -> Result<ImportReport, ManageError> {
        let options = self.import_options(request)?;
        let reader = UploadReader::spawn(upload);
        let imported = self
            .caches
            .storage()
            .import_bundle(Box::new(reader), options)
            .await;
        match imported {
            Ok(report) => Ok(report),
            Err(ImportError::Bundle(e)) => {
                Err(ManageError::Invalid(json!({ "bundle": [e.to_string()] })))
            }
            Err(ImportError::Cache(e)) => Err(e.into()),
        }
    }

    /// What this ferry holds (`ferry inventory`).
    pub(crate) async fn bundle_inventory(&self) -> Result<Inventory, ManageError> {
        Ok(self.caches.storage().bundle_inventory().await?)
    }

    /// Where each `(repository, tag)` was imported from, if it was (and
    /// still points at what the import brought).
    pub(crate) async fn import_marks(
        &self,
        tags: &[(&str, &str)],
    ) -> Result<Vec<Option<ImportMark>>, ManageError> {
        let tags = tags
            .iter()
            .map(|(r, t)| (r.to_string(), t.to_string()))
            .collect();
        Ok(self.caches.storage().import_marks(tags).await?)
    }

    /// Per repository, the latest import that still holds one of its tags.
    pub(crate) async fn latest_imports(
        &self,
    ) -> Result<std::collections::HashMap<String, ImportMark>, ManageError> {
        Ok(self.caches.storage().latest_imports().await?)
    }

    fn import_options(&self, request: ImportRequest) -> Result<ImportOptions, ManageError> {
        let invalid =
            |field: &str, message: String| ManageError::Invalid(json!({ field: [message] }));
        let map = parse_map(&request.map).map_err(|e| invalid("map", e))?;
        let trusted_key = request
            .trusted_key
            .as_deref()
            .map(TrustedKey::parse)
            .transpose()
            .map_err(|e| invalid("trusted_key", e.to_string()))?;
        Ok(ImportOptions {
            map,
            to: request.to,
            pin: request.pin,
            trusted_key,
            served: self
                .caches
                .list()
                .iter()
                .map(|c| c.base_path().to_string())
                .collect(),
        })
    }
}

/// `FROM=TO` pairs, each side a base path (or a longer repository prefix).
pub(crate) fn parse_map(pairs: &[String]) -> Result<Vec<(String, String)>, String> {
    pairs
        .iter()
        .map(|pair| {
            let (from, to) = pair
                .split_once('=')
                .filter(|(f, t)| valid_prefix(f) && valid_prefix(t))
                .ok_or_else(|| format!("{pair:?} is not FROM=TO (two base paths)"))?;
            Ok((from.to_string(), to.to_string()))
        })
        .collect()
}

fn valid_prefix(text: &str) -> bool {
    crate::domain::RepoName::parse(text).is_ok()
}

/// The upload as a blocking `Read`: a task forwards the chunks through a
/// bounded channel, and the import's thread waits on it.
struct UploadReader {
    chunks: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
}

impl UploadReader {
    fn spawn(mut upload: Upload) -> UploadReader {
        let (sender, chunks) = tokio::sync::mpsc::channel(UPLOAD_DEPTH);
        tokio::spawn(async move {
            while let Some(chunk) = upload.next().await {
                if sender.send(chunk).await.is_err() {
                    // The import ended early (refused): the rest is read
                    // and dropped, so the client, still sending, gets the
                    // answer rather than a connection reset mid-upload.
                    while let Some(Ok(_)) = upload.next().await {}
                    break;
                }
            }
        });
        UploadReader {
            chunks,
            current: Bytes::new(),
        }
    }
}

impl Read for UploadReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_pairs_of_names() {
        let pairs = parse_map(&["hub=mirror/hub".to_string()]).unwrap();
        assert_eq!(pairs, [("hub".to_string(), "mirror/hub".to_string())]);
        for bad in ["hub", "=x", "a=../b", "A=b"] {
            assert!(parse_map(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
