//! The cluster's shared state: small objects under `<prefix>state/` in the
//! members' bucket (the definitions made through the API, each member's
//! set of referenced digests). They are written with the object store's
//! conditional modes where the service honours them: `If-None-Match: *` for
//! a create, `If-Match: <e-tag>` for a change of what was read, so two
//! members changing the same object at once do not silently overwrite each
//! other. A service that ignores them (Garage) makes the last writer win.
//!
//! The methods are async and run on the caller's runtime (reqwest needs no
//! runtime of its own), unlike the blob trait's blocking methods.

use std::sync::Arc;

use futures_util::stream::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::runtime::unavailable;
use super::{absent_as_none, blob_key, client, CONTROL_TIMEOUT};
use crate::config::S3Settings;
use crate::domain::Digest;
use crate::store::StoreError;

/// A listing of one state directory stops here: the state is small by
/// design, and a bucket stuffed by someone else must not exhaust memory.
const MAX_LISTED: usize = 20_000;

/// One state object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The name under `state/`, e.g. `remotes/<id>.json`.
    pub name: String,
    /// Changes whenever the object does.
    pub e_tag: Option<String>,
}

/// One state object read whole.
#[derive(Debug, Clone)]
pub struct StateObject {
    pub bytes: Vec<u8>,
    pub e_tag: Option<String>,
    /// When it was written, by the object store's clock (the same clock
    /// as the blobs' times).
    pub modified: std::time::SystemTime,
}

/// What a write may overwrite.
#[derive(Debug, Clone)]
pub enum WriteIf {
    /// Only an object that is not there (a create).
    Absent,
    /// Only the object as it was read (its e-tag).
    Unchanged(String),
    /// Whatever is there.
    Always,
}

/// How a conditional write went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Written; the new object's e-tag.
    Done(Option<String>),
    /// Another writer got there first (its precondition failed).
    Conflict,
}

/// The `state/` objects of the bucket the blobs are in.
#[derive(Clone)]
pub struct SharedState {
    client: Arc<AmazonS3>,
    /// `<prefix>state/`
    root: String,
    /// `<prefix>`, where the blobs are.
    prefix: String,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl SharedState {
    /// Connects lazily (no request here), with the blob store's settings.
    pub(crate) fn open(settings: &S3Settings) -> Result<SharedState, StoreError> {
        Ok(SharedState {
            client: Arc::new(client(settings, CONTROL_TIMEOUT)?),
            root: format!("{}state/", settings.prefix),
            prefix: settings.prefix.clone(),
        })
    }

    fn key(&self, name: &str) -> Key {
        Key::from(format!("{}{name}", self.root))
    }

    /// The objects under `state/<dir>/` (bounded).
    pub async fn list(&self, dir: &str) -> Result<Vec<StateEntry>, StoreError> {
        let under = format!("{}{}/", self.root, dir.trim_end_matches('/'));
        let mut listing = self.client.list(Some(&Key::from(under.as_str())));
        let mut found = Vec::new();
        while let Some(meta) = listing.try_next().await.map_err(unavailable)? {
            if found.len() == MAX_LISTED {
                return Err(StoreError::Unavailable(format!(
                    "more than {MAX_LISTED} objects under {under}: not a state ferry wrote"
                )));
            }
            if let Some(name) = meta.location.as_ref().strip_prefix(&self.root) {
                found.push(StateEntry {
                    name: name.to_string(),
                    e_tag: meta.e_tag,
                });
            }
        }
        Ok(found)
    }

    /// An object read whole; `None` when it is not there. One larger than
    /// `max_bytes` is an error, never read.
    pub async fn get(&self, name: &str, max_bytes: u64) -> Result<Option<StateObject>, StoreError> {
        let Some(got) = absent_as_none(self.client.get(&self.key(name)).await)? else {
            return Ok(None);
        };
        if got.meta.size > max_bytes {
            return Err(StoreError::Unavailable(format!(
                "state object {name} holds {} bytes, more than the {max_bytes} allowed",
                got.meta.size
            )));
        }
        let (e_tag, modified) = (got.meta.e_tag.clone(), got.meta.last_modified.into());
        let bytes = got.bytes().await.map_err(unavailable)?;
        Ok(Some(StateObject {
            bytes: bytes.to_vec(),
            e_tag,
            modified,
        }))
    }

    /// Writes an object if `when` holds.
    pub async fn put(
        &self,
        name: &str,
        bytes: Vec<u8>,
        when: WriteIf,
    ) -> Result<Written, StoreError> {
        let mode = match when {
            WriteIf::Absent => PutMode::Create,
            WriteIf::Unchanged(e_tag) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag),
                version: None,
            }),
            WriteIf::Always => PutMode::Overwrite,
        };
        let options = PutOptions {
            mode,
            ..Default::default()
        };
        let put = self
            .client
            .put_opts(&self.key(name), PutPayload::from(bytes), options)
            .await;
        match put {
            Ok(done) => Ok(Written::Done(done.e_tag)),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::NotFound { .. }) => Ok(Written::Conflict),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Deletes an object (one that is not there is no error).
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        absent_as_none(self.client.delete(&self.key(name)).await)?;
        Ok(())
    }

    /// Deletes a stored blob from the bucket: in a cluster only the
    /// garbage collection of the member that owns its digest does this
    /// (the blob store's own `remove` leaves shared objects alone).
    pub async fn remove_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        let key = blob_key(&self.prefix, digest);
        absent_as_none(self.client.delete(&key).await)?;
        Ok(())
    }
}
