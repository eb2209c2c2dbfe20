//! The object-store backend: verified blobs in an S3-compatible bucket under
//! `<prefix>blobs/<alg>/<hex>`, through Apache Arrow's `object_store`
//! client. Staging stays local (clients follow the growing temp file, which
//! is hashed as written); `place` uploads the verified file, streamed
//! (`upload.rs`), and reads are ranged GETs (`ObjectBlob`).
//!
//! The trait's methods block: each runs its requests to completion on this
//! backend's own small I/O runtime (`block_on` from the calling blocking
//! thread), so the backend works the same under `ferry serve` and under the
//! offline commands, whose runtime is single-threaded.

mod runtime;
mod state;
mod upload;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, PutMode, PutOptions,
    PutPayload, RetryConfig,
};

use self::runtime::{unavailable, IoRuntime, PART_SIZE};
pub use self::state::{SharedState, StateEntry, StateObject, WriteIf, Written};
use self::upload::UploadJournal;
use super::{BlobBackend, BlobReader, OpenBlob, Staging, StoredBlob, VerifiedTemp};
use crate::config::S3Settings;
use crate::domain::Digest;
use crate::store::StoreError;

/// A failed request is tried this often more, quickly: an unreachable
/// store must turn into a 503 within a few seconds, not minutes.
const RETRIES: usize = 2;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A request that moves no content (HEAD, list, delete, a manifest's GET)
/// answers within this, or the store counts as unavailable: a store that
/// accepts connections and never answers must not hold pulls for long.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// A request that moves content (a PUT, a part, a ranged read streamed to a
/// slow client) may take this long: bounds a hung store without cutting a
/// long transfer.
const BULK_TIMEOUT: Duration = Duration::from_secs(3600);

/// `Ok(None)` for an object that is not there.
fn absent_as_none<T>(result: object_store::Result<T>) -> Result<Option<T>, StoreError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

pub struct S3BlobStore {
    /// For requests that move no content (`CONTROL_TIMEOUT`).
    client: Arc<AmazonS3>,
    /// For requests that move content (`BULK_TIMEOUT`).
    bulk: Arc<AmazonS3>,
    /// `s3://bucket/` for messages.
    bucket: String,
    prefix: String,
    staging: Staging,
    journal: UploadJournal,
    io: Arc<IoRuntime>,
    /// In a cluster the bucket's blobs are shared: `remove` (a delete, an
    /// eviction, this member's GC) leaves the object, since another member
    /// may reference it; the owner's cluster-wide GC deletes it
    /// (`SharedState::remove_blob`).
    keep_on_remove: bool,
}

impl S3BlobStore {
    /// Makes `remove` leave the objects (a member of a cluster).
    pub(crate) fn shared(mut self, shared: bool) -> S3BlobStore {
        self.keep_on_remove = shared;
        self
    }

    /// Connects (lazily: no request is made here) to the bucket, staging in
    /// `data_dir/tmp/` and keeping the journal of multipart uploads under
    /// way in `data_dir/s3-uploads/`.
    pub(crate) fn open(settings: &S3Settings, data_dir: &Path) -> Result<S3BlobStore, StoreError> {
        Ok(S3BlobStore {
            client: Arc::new(client(settings, CONTROL_TIMEOUT)?),
            bulk: Arc::new(client(settings, BULK_TIMEOUT)?),
            bucket: format!("s3://{}/", settings.bucket),
            prefix: settings.prefix.clone(),
            staging: Staging::open(data_dir.join("tmp"))?,
            journal: UploadJournal::open(data_dir.join("s3-uploads"))?,
            io: Arc::new(IoRuntime::new()?),
            keep_on_remove: false,
        })
    }

    fn key_of(&self, digest: &Digest) -> Key {
        blob_key(&self.prefix, digest)
    }

    fn head(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        let key = self.key_of(digest);
        let meta = self.io.block_on(self.client.head(&key));
        Ok(absent_as_none(meta)?.map(|m| m.size))
    }

    /// One PUT, create-only where the service honours `If-None-Match: *`;
    /// one that exists already (a race, or the service refusing the
    /// overwrite) holds the same bytes: content addressing.
    fn put_small(&self, temp: &VerifiedTemp, size: u64) -> Result<(), StoreError> {
        let mut bytes = vec![0u8; size as usize];
        std::os::unix::fs::FileExt::read_exact_at(temp.file(), &mut bytes, 0)?;
        let key = self.key_of(temp.digest());
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let put = self
            .io
            .block_on(self.bulk.put_opts(&key, PutPayload::from(bytes), options));
        match put {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Hashes the object as it streams in, never holding it whole.
    fn rehash(&self, digest: &Digest) -> Result<Option<bool>, StoreError> {
        let key = self.key_of(digest);
        self.io.block_on(async {
            let Some(got) = absent_as_none(self.bulk.get(&key).await)? else {
                return Ok(None);
            };
            let mut hasher = digest.verifier();
            let mut body = got.into_stream();
            while let Some(chunk) = body.next().await {
                hasher.update(&chunk.map_err(unavailable)?);
            }
            Ok(Some(hasher.finish() == *digest))
        })
    }
}

/// Where a blob's object is.
fn blob_key(prefix: &str, digest: &Digest) -> Key {
    Key::from(format!(
        "{prefix}blobs/{}/{}",
        digest.algorithm().name(),
        digest.hex()
    ))
}

/// A client of the bucket whose requests each take at most `timeout`.
fn client(settings: &S3Settings, timeout: Duration) -> Result<AmazonS3, StoreError> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region)
        .with_virtual_hosted_style_request(!settings.path_style)
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_timeout(timeout)
                .with_allow_http(true),
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: RETRIES,
            retry_timeout: Duration::from_secs(10),
        });
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint.as_str().trim_end_matches('/'));
    }
    if let Some((key, secret)) = &settings.credentials {
        builder = builder
            .with_access_key_id(key.expose())
            .with_secret_access_key(secret.expose());
    }
    builder
        .build()
        .map_err(|e| StoreError::Unavailable(format!("object store settings: {e}")))
}

impl BlobBackend for S3BlobStore {
    fn staging(&self) -> &Staging {
        &self.staging
    }

    /// Uploads the verified file; it becomes visible under its key only
    /// once whole (a single PUT, or the completion of a multipart upload,
    /// which a failure aborts instead).
    fn place(&self, temp: VerifiedTemp) -> Result<(), StoreError> {
        let size = temp.file().metadata()?.len();
        if self.head(temp.digest())?.is_some() {
            return Ok(());
        }
        if size <= PART_SIZE {
            return self.put_small(&temp, size);
        }
        let key = self.key_of(temp.digest());
        upload::multipart(&self.bulk, &self.io, &self.journal, &key, temp.file(), size)
    }

    fn open(&self, digest: &Digest) -> Result<Option<OpenBlob>, StoreError> {
        let Some(size) = self.head(digest)? else {
            return Ok(None);
        };
        Ok(Some(OpenBlob {
            size,
            reader: BlobReader::Object(ObjectBlob {
                client: self.bulk.clone(),
                io: self.io.clone(),
                key: self.key_of(digest),
                size,
            }),
        }))
    }

    fn size_of(&self, digest: &Digest) -> Result<Option<u64>, StoreError> {
        self.head(digest)
    }

    fn read_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.key_of(digest);
        self.io.block_on(async {
            let Some(got) = absent_as_none(self.client.get(&key).await)? else {
                return Ok(None);
            };
            Ok(Some(got.bytes().await.map_err(unavailable)?.to_vec()))
        })
    }

    fn contains(&self, digest: &Digest) -> Result<bool, StoreError> {
        Ok(self.head(digest)?.is_some())
    }

    fn stored(&self) -> Result<Vec<StoredBlob>, StoreError> {
        let under = format!("{}blobs/", self.prefix);
        let listing = self.io.block_on(
            self.client
                .list(Some(&Key::from(under.as_str())))
                .try_collect::<Vec<_>>(),
        );
        let mut found = Vec::new();
        for meta in listing.map_err(unavailable)? {
            let Some(name) = meta.location.as_ref().strip_prefix(&under) else {
                continue;
            };
            let Ok(digest) = name.replacen('/', ":", 1).parse::<Digest>() else {
                continue;
            };
            found.push(StoredBlob {
                digest,
                size: meta.size,
                modified: meta.last_modified.into(),
            });
        }
        Ok(found)
    }

    fn remove(&self, digest: &Digest) -> Result<(), StoreError> {
        if self.keep_on_remove {
            return Ok(());
        }
        let key = self.key_of(digest);
        absent_as_none(self.io.block_on(self.client.delete(&key)))?;
        Ok(())
    }

    /// Copied to `<prefix>quarantine/<alg>-<hex>`, then deleted.
    fn quarantine(&self, digest: &Digest) -> Result<String, StoreError> {
        let (from, to) = (
            self.key_of(digest),
            Key::from(format!(
                "{}quarantine/{}-{}",
                self.prefix,
                digest.algorithm().name(),
                digest.hex()
            )),
        );
        self.io
            .block_on(async {
                self.bulk.copy(&from, &to).await?;
                self.client.delete(&from).await
            })
            .map_err(unavailable)?;
        Ok(format!("{}{to}", self.bucket))
    }

    fn verify(&self, digest: &Digest) -> Result<Option<bool>, StoreError> {
        self.rehash(digest)
    }

    /// Also aborts every multipart upload a previous run left (nothing is
    /// uploading at start-up).
    fn probe(&self) -> Result<(), StoreError> {
        // Any key's answer (here or absent) says the service is there.
        self.head(&Digest::sha256_of(b"")).map(|_| ())
    }

    fn remove_temp_files(&self) -> Result<usize, StoreError> {
        let aborted = self
            .journal
            .abort_older_than(&self.client, &self.io, Duration::ZERO)?;
        Ok(self.staging.remove_all()? + aborted)
    }

    /// Also aborts multipart uploads older than `age` (a crash's leftovers:
    /// a live upload records itself and removes its record when done).
    fn remove_stale_temp_files(&self, age: Duration) -> Result<usize, StoreError> {
        let aborted = self.journal.abort_older_than(&self.client, &self.io, age)?;
        Ok(self.staging.remove_stale(age)? + aborted)
    }
}

/// A blob in the object store, read in byte ranges.
pub struct ObjectBlob {
    client: Arc<AmazonS3>,
    io: Arc<IoRuntime>,
    key: Key,
    size: u64,
}

/// Chunks a ranged read buffers ahead of its reader (bounds memory per
/// reader; each chunk is what the HTTP client received at once).
const READ_AHEAD: usize = 4;

impl ObjectBlob {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The bytes from `start` up to `end` (exclusive), as one GET with a
    /// `Range`, run on the backend's runtime and handed over with bounded
    /// read-ahead. A body that ends short is an error, never a short blob.
    pub fn range(&self, start: u64, end: u64) -> ObjectRange {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
        let (client, key) = (self.client.clone(), self.key.clone());
        if start < end {
            self.io.handle().spawn(async move {
                let options = GetOptions {
                    range: Some(GetRange::Bounded(start..end)),
                    ..Default::default()
                };
                let mut body = match client.get_opts(&key, options).await {
                    Ok(got) => got.into_stream(),
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::other(e))).await;
                        return;
                    }
                };
                let mut sent = 0u64;
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(io::Error::other);
                    if let Ok(bytes) = &chunk {
                        sent += bytes.len() as u64;
                    }
                    let failed = chunk.is_err();
                    // The reader went away: stop reading the object.
                    if tx.send(chunk).await.is_err() || failed {
                        return;
                    }
                }
                if sent != end - start {
                    let short = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("object store sent {sent} of {} bytes", end - start),
                    );
                    let _ = tx.send(Err(short)).await;
                }
            });
        }
        ObjectRange(rx)
    }
}

/// The chunks of one ranged read, in order; an error ends it.
pub struct ObjectRange(tokio::sync::mpsc::Receiver<io::Result<Bytes>>);

impl ObjectRange {
    /// The next chunk; `None` once the range was read whole.
    pub async fn next(&mut self) -> Option<io::Result<Bytes>> {
        self.0.recv().await
    }

    /// The range as a blocking reader, for code on the blocking pool.
    pub fn into_read(self) -> ObjectRead {
        ObjectRead {
            range: self,
            chunk: Bytes::new(),
        }
    }
}

/// A ranged read as `io::Read`; it blocks: never use it on async threads.
pub struct ObjectRead {
    range: ObjectRange,
    chunk: Bytes,
}

impl io::Read for ObjectRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.range.0.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.chunk = chunk?,
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

impl Clone for ObjectBlob {
    fn clone(&self) -> Self {
        ObjectBlob {
            client: self.client.clone(),
            io: self.io.clone(),
            key: self.key.clone(),
            size: self.size,
        }
    }
}
