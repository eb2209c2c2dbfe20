//! The bundle's tar, in the format's order: `ferry-bundle.json`, its
//! signature if any, `oci-layout`, `index.json`, then every blob of the
//! plan, read from the store as it is written (synchronous, on the blocking
//! pool): into a file (the CLI) or, through a bounded channel, a response
//! body (the API). A blob gone since the plan fails the export.

use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::mpsc;

use super::export::{invalid, BundleToWrite, ExportError};
use crate::bundle::{BundleManifest, INDEX_JSON, MANIFEST_JSON, OCI_LAYOUT, REF_NAME, SIGNATURE};
use crate::cache::{CacheError, Storage};
use crate::domain::{Digest, MediaType};
use crate::store::BlobBackend;

/// Blocks read from the store and sent to a response at a time.
const READ_BLOCK: usize = 1024 * 1024;
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the writer and a response body: with
/// [`CHUNK`], at most 2 MiB of a bundle in memory, however large.
const CHANNEL_CHUNKS: usize = 8;
/// zstd's default level: about gzip's ratio at several times its speed.
const ZSTD_LEVEL: i32 = 3;

/// `index.json`: one entry per reference, named by it, then the referrers
/// (unnamed: they are found through their subject).
fn index_json(manifest: &BundleManifest) -> Vec<u8> {
    let named = manifest.references.iter().map(|r| {
        json!({
            "mediaType": r.media_type,
            "digest": r.digest.to_string(),
            "size": r.size,
            "annotations": { REF_NAME: r.reference },
        })
    });
    let referrers = manifest.referrers.iter().map(
        |r| json!({ "mediaType": r.media_type, "digest": r.digest.to_string(), "size": r.size }),
    );
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OCI_INDEX,
        "manifests": named.chain(referrers).collect::<Vec<_>>(),
    });
    serde_json::to_vec_pretty(&index).unwrap_or_default()
}

const OCI_LAYOUT_JSON: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

fn header(name: &str, size: u64, mtime: u64) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header)
}

/// A blob's bytes, exactly as many as the plan says: a file that ends
/// early fails the export instead of leaving a short entry in the tar.
struct Exact<R> {
    inner: R,
    left: u64,
    digest: Digest,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "blob {} ended {} bytes short of its stored size",
                    self.digest, self.left
                ),
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The tar, in the format's order, into `out`.
fn write_tar<W: Write>(
    blobs: &dyn BlobBackend,
    bundle: &BundleToWrite,
    out: W,
) -> Result<W, ExportError> {
    let mtime = humantime::parse_rfc3339(&bundle.manifest.created)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut tar = tar::Builder::new(out);
    let small = |tar: &mut tar::Builder<W>, name: &str, bytes: &[u8]| {
        tar.append(&header(name, bytes.len() as u64, mtime)?, bytes)
    };
    small(&mut tar, MANIFEST_JSON, &bundle.manifest_bytes)?;
    if let Some(signature) = &bundle.signature {
        small(&mut tar, SIGNATURE, signature)?;
    }
    small(&mut tar, OCI_LAYOUT, OCI_LAYOUT_JSON)?;
    small(&mut tar, INDEX_JSON, &index_json(&bundle.manifest))?;
    for blob in &bundle.manifest.blobs {
        let Some(open) = blobs.open(&blob.digest)? else {
            return Err(ExportError::Vanished(blob.digest.clone()));
        };
        if open.size != blob.size {
            return Err(invalid(format!(
                "blob {} is {} bytes in the store, the plan says {}",
                blob.digest, open.size, blob.size
            )));
        }
        let file = open.reader.into_read();
        let name = format!("{}{}", crate::bundle::BLOBS_DIR, blob.digest.hex());
        let reader = Exact {
            inner: BufReader::with_capacity(READ_BLOCK, file),
            left: blob.size,
            digest: blob.digest.clone(),
        };
        tar.append(&header(&name, blob.size, mtime)?, reader)?;
    }
    Ok(tar.into_inner()?)
}

/// The bundle (zstd-compressed if asked) into `out`; blocking.
fn write_bundle<W: Write>(
    blobs: &dyn BlobBackend,
    bundle: &BundleToWrite,
    out: W,
) -> Result<W, ExportError> {
    if !bundle.zstd {
        return write_tar(blobs, bundle, out);
    }
    let encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
    Ok(write_tar(blobs, bundle, encoder)?.finish()?)
}

/// Hands the tar to a response body in chunks, through a bounded channel:
/// the writer waits while the client is slow, so memory stays flat.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Storage {
    /// Writes `bundle` into `out` on the blocking pool; hands `out` back
    /// (for the caller to finish: rename a temp file, close split parts).
    pub(crate) async fn write_bundle<W: Write + Send + 'static>(
        self: &Arc<Self>,
        bundle: BundleToWrite,
        out: W,
    ) -> Result<W, ExportError> {
        let storage = self.clone();
        tokio::task::spawn_blocking(move || write_bundle(&**storage.blobs(), &bundle, out))
            .await
            .map_err(|e| CacheError::Internal(format!("blocking task failed: {e}")))?
    }

    /// Streams `bundle` as chunks for a response body. A failure midway
    /// ends the stream with an error, so the client sees a broken
    /// transfer, never a complete-looking tar with a hole.
    pub(crate) fn stream_bundle(
        self: &Arc<Self>,
        bundle: BundleToWrite,
    ) -> mpsc::Receiver<io::Result<Bytes>> {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let storage = self.clone();
        tokio::task::spawn_blocking(move || {
            let out = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            let result =
                write_bundle(&**storage.blobs(), &bundle, out).and_then(|mut out| Ok(out.flush()?));
            if let Err(e) = result {
                tracing::warn!(bundle = %bundle.manifest.id, error = %e, "export failed midway");
                let _ = tx.blocking_send(Err(io::Error::other(e.to_string())));
            } else {
                tracing::info!(
                    bundle = %bundle.manifest.id,
                    references = bundle.manifest.references.len(),
                    blobs = bundle.manifest.blobs.len(),
                    "bundle exported"
                );
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Selection;
    use crate::cache::bundle::export::tests::{image, plan_of};

    #[test]
    fn a_blob_gone_between_plan_and_write_fails_the_export() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let (_, layer) = image(&storage, "hub/app", "v1", true);
        let manifest = plan_of(&storage, &Selection::default()).unwrap();
        let bundle = BundleToWrite::new(manifest, false).unwrap();
        storage.blobs().remove(&layer).unwrap();
        let result = write_bundle(&**storage.blobs(), &bundle, Vec::new());
        match result {
            Err(ExportError::Vanished(d)) => assert_eq!(d, layer),
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("a tar with a hole was written"),
        }
    }
}
