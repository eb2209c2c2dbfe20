//! Streamed multipart uploads of verified files, and the journal of the
//! uploads under way, so that those a crash interrupted are aborted later.
//!
//! Why a journal: `object_store` has no call that lists a bucket's
//! incomplete multipart uploads, so ferry records each upload it starts
//! (key and upload id, one small file) and removes the record once the
//! upload completed or was aborted. A record left over is a crash's: the
//! start-up aborts all of them, GC those older than its grace. (A bucket
//! lifecycle rule `AbortIncompleteMultipartUpload` is the belt to these
//! braces, for nodes that never come back.)

use std::collections::VecDeque;
use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::PutPayload;

use super::runtime::{unavailable, IoRuntime, PART_SIZE};
use crate::store::StoreError;

/// S3 allows at most this many parts: larger blobs get larger parts.
const MAX_PARTS: u64 = 10_000;
/// Parts in flight at once: memory per upload is this many parts.
const PARTS_IN_FLIGHT: usize = 2;

static RECORD_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One record file per upload under way: `<key>\n<upload id>\n`.
pub(super) struct UploadJournal {
    dir: PathBuf,
}

impl UploadJournal {
    pub(super) fn open(dir: PathBuf) -> Result<UploadJournal, StoreError> {
        fs::create_dir_all(&dir)?;
        Ok(UploadJournal { dir })
    }

    fn record(&self, key: &Key, id: &str) -> Result<PathBuf, StoreError> {
        let n = RECORD_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{}-{n}.upload", std::process::id()));
        fs::write(&path, format!("{key}\n{id}\n"))?;
        Ok(path)
    }

    /// Aborts the recorded uploads not touched for `age`; returns how many.
    pub(super) fn abort_older_than(
        &self,
        client: &AmazonS3,
        io: &IoRuntime,
        age: Duration,
    ) -> Result<usize, StoreError> {
        let mut aborted = 0;
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let modified = fs::metadata(&path)?.modified()?;
            if modified.elapsed().unwrap_or_default() < age {
                continue;
            }
            let text = fs::read_to_string(&path)?;
            let mut lines = text.lines();
            if let (Some(key), Some(id)) = (lines.next(), lines.next()) {
                let key = Key::from(key);
                match io.block_on(client.abort_multipart(&key, &id.to_string())) {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(unavailable(e)),
                }
                tracing::info!(%key, "aborted an incomplete multipart upload of an interrupted run");
            }
            fs::remove_file(&path)?;
            aborted += 1;
        }
        Ok(aborted)
    }
}

/// The part size for a blob of `size`: `PART_SIZE`, or more for blobs
/// that would need more than `MAX_PARTS` parts.
fn part_size(size: u64) -> u64 {
    PART_SIZE.max(size.div_ceil(MAX_PARTS))
}

/// Uploads `file` (`size` bytes) to `key` in parts, read from the file as
/// they go (memory: `PARTS_IN_FLIGHT` parts). Any failure aborts the
/// upload: nothing appears under `key`. The completion is not create-only
/// (the client has no conditional completion); it needs none: whatever is
/// under the key is the same verified content.
pub(super) fn multipart(
    client: &Arc<AmazonS3>,
    io: &IoRuntime,
    journal: &UploadJournal,
    key: &Key,
    file: &File,
    size: u64,
) -> Result<(), StoreError> {
    let id = io
        .block_on(client.create_multipart(key))
        .map_err(unavailable)?;
    let record = journal.record(key, &id)?;
    tracing::debug!(%key, size, "multipart upload started");
    let uploaded = io.block_on(async {
        let step = part_size(size);
        let mut parts: Vec<PartId> = Vec::new();
        let mut in_flight = VecDeque::new();
        let mut offset = 0u64;
        let mut index = 0usize;
        while offset < size {
            let len = step.min(size - offset) as usize;
            let mut buf = vec![0u8; len];
            // This thread may block (a blocking-pool thread in block_on).
            file.read_exact_at(&mut buf, offset)
                .map_err(StoreError::Io)?;
            // Spawned, so that the next part is read while this one goes.
            let (client, key, id) = (client.clone(), key.clone(), id.clone());
            in_flight.push_back(tokio::spawn(async move {
                client
                    .put_part(&key, &id, index, PutPayload::from(buf))
                    .await
            }));
            if in_flight.len() >= PARTS_IN_FLIGHT {
                if let Some(part) = in_flight.pop_front() {
                    parts.push(joined(part.await)?);
                    // A long upload is alive: GC aborts only stale records.
                    touch(&record);
                }
            }
            offset += len as u64;
            index += 1;
        }
        while let Some(part) = in_flight.pop_front() {
            parts.push(joined(part.await)?);
        }
        client
            .complete_multipart(key, &id, parts)
            .await
            .map_err(unavailable)
    });
    match uploaded {
        Ok(_) => {
            fs::remove_file(&record)?;
            Ok(())
        }
        Err(e) => {
            // The record stays when the abort fails: GC tries again.
            if io.block_on(client.abort_multipart(key, &id)).is_ok() {
                let _ = fs::remove_file(&record);
            }
            Err(e)
        }
    }
}

/// Marks a journal record as recently active (best effort: a record that
/// cannot be touched only risks being aborted by GC as a leftover, which
/// fails this upload, not the content).
fn touch(record: &std::path::Path) {
    if let Ok(file) = File::options().write(true).open(record) {
        let _ = file.set_modified(std::time::SystemTime::now());
    }
}

/// A spawned part's result (a part task that panicked is an error too).
fn joined(
    part: Result<object_store::Result<PartId>, tokio::task::JoinError>,
) -> Result<PartId, StoreError> {
    part.map_err(|e| StoreError::Io(std::io::Error::other(e)))?
        .map_err(unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_the_service_limit() {
        assert_eq!(part_size(1), PART_SIZE);
        assert_eq!(part_size(PART_SIZE * MAX_PARTS), PART_SIZE);
        let huge = PART_SIZE * MAX_PARTS * 3 + 1;
        assert!(huge.div_ceil(part_size(huge)) <= MAX_PARTS);
    }
}
