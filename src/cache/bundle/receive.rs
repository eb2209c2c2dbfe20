//! The first half of an import: the tar read as a stream, once, on a
//! blocking thread. The sidecar manifest and its signature are checked, and
//! what the bundle assumes, before a byte is stored; then every blob entry
//! is hashed while it is written to staging and committed only if it
//! matches its name. Nothing here touches tags or records: what arrives is
//! invisible until the second half (`import.rs`) has checked the whole.

use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Read};

use super::import_error::ImportError;
use crate::bundle::{
    BundleError, BundleManifest, TrustedKey, BLOBS_DIR, FORMAT, INDEX_JSON, MANIFEST_JSON,
    OCI_LAYOUT, SIGNATURE,
};
use crate::domain::Digest;
use crate::store::{BlobBackend, StoreError};

/// zstd's frame magic: a compressed bundle is recognised by its first bytes.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Bounds of the small entries, read whole into memory.
const MAX_SIDECAR_BYTES: u64 = 64 * 1024 * 1024;
const MAX_INDEX_BYTES: u64 = 16 * 1024 * 1024;
const MAX_SMALL_BYTES: u64 = 64 * 1024;
/// Entries read at most: what the import remembers per entry (a digest)
/// stays bounded whatever the tar holds.
const MAX_ENTRIES: usize = 1_000_000;
/// Blob bytes copied per read: large blocks, memory flat whatever the size.
const COPY_BLOCK: usize = 1024 * 1024;

/// What the stream brought, for the second half to check and record.
pub(super) struct Received {
    /// The sidecar manifest, absent for a plain OCI layout.
    pub sidecar: Option<BundleManifest>,
    /// `index.json`'s bytes, if the tar had one.
    pub index: Option<Vec<u8>>,
    /// Every blob named in the tar (stored now, or found already stored).
    pub blobs: HashSet<Digest>,
    pub stored: u64,
    pub stored_bytes: u64,
    pub skipped: u64,
}

/// Reads a bundle (plain or zstd-compressed tar) and stores its blobs.
pub(super) fn receive(
    blobs: &dyn BlobBackend,
    reader: Box<dyn Read + Send>,
    trusted: Option<&TrustedKey>,
) -> Result<Received, ImportError> {
    let reader = decompressed(reader)?;
    let mut archive = tar::Archive::new(reader);
    let mut received = Received {
        sidecar: None,
        index: None,
        blobs: HashSet::new(),
        stored: 0,
        stored_bytes: 0,
        skipped: 0,
    };
    // The sidecar's bytes and signature until they are checked.
    let mut pending: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
    let mut checked = false;
    let mut listed: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut first = true;
    for (count, entry) in archive.entries().map_err(read_error)?.enumerate() {
        if count >= MAX_ENTRIES {
            return Err(invalid(format!("the bundle has over {MAX_ENTRIES} entries")).into());
        }
        let mut entry = entry.map_err(header_error)?;
        let name = entry_name(&entry)?;
        let Some(name) = name else {
            continue;
        };
        let size = entry.header().size().map_err(read_error)?;
        let is_first = std::mem::replace(&mut first, false);
        if name == MANIFEST_JSON {
            if !is_first {
                return Err(ImportError::from(invalid(format!(
                    "{MANIFEST_JSON} must be the tar's first entry"
                ))));
            }
            pending = Some((
                read_small(&mut entry, size, MAX_SIDECAR_BYTES, &name)?,
                None,
            ));
            continue;
        }
        if name == SIGNATURE {
            match &mut pending {
                Some((_, signature @ None)) if !checked => {
                    *signature = Some(read_small(&mut entry, size, MAX_SMALL_BYTES, &name)?);
                    continue;
                }
                _ => {
                    return Err(ImportError::from(invalid(format!(
                        "{SIGNATURE} must follow {MANIFEST_JSON} directly"
                    ))))
                }
            }
        }
        if !checked {
            checked = true;
            let sidecar = check_sidecar(blobs, pending.take(), trusted)?;
            if let Some(sidecar) = &sidecar {
                listed = sidecar
                    .blobs
                    .iter()
                    .map(|b| (b.digest.clone(), b.size))
                    .collect();
            }
            received.sidecar = sidecar;
        }
        if name == OCI_LAYOUT {
            read_small(&mut entry, size, MAX_SMALL_BYTES, &name)?;
        } else if name == INDEX_JSON {
            received.index = Some(read_small(&mut entry, size, MAX_INDEX_BYTES, &name)?);
        } else if let Some(hex) = name.strip_prefix(BLOBS_DIR) {
            let digest = blob_digest(hex, &name)?;
            if received.sidecar.is_some() && listed.get(&digest) != Some(&size) {
                return Err(ImportError::from(invalid(format!(
                    "entry {name:?} ({size} bytes) is not listed with that size in {MANIFEST_JSON}"
                ))));
            }
            if !received.blobs.insert(digest.clone()) {
                return Err(ImportError::from(invalid(format!(
                    "entry {name:?} appears twice"
                ))));
            }
            if blobs.contains(&digest)? {
                // Read through (the archive skips its bytes): already held.
                received.skipped += 1;
                continue;
            }
            store_blob(blobs, &mut entry, &digest, size)?;
            received.stored += 1;
            received.stored_bytes += size;
        } else {
            return Err(ImportError::from(invalid(format!(
                "entry {name:?} is not part of an OCI layout"
            ))));
        }
    }
    if !checked {
        // A tar of a sidecar alone (or nothing): checked all the same.
        received.sidecar = check_sidecar(blobs, pending.take(), trusted)?;
    }
    if let Some(sidecar) = &received.sidecar {
        for blob in &sidecar.blobs {
            if !received.blobs.contains(&blob.digest) {
                return Err(ImportError::from(invalid(format!(
                    "blob {} listed in {MANIFEST_JSON} is missing from the bundle (truncated?)",
                    blob.digest
                ))));
            }
        }
    }
    Ok(received)
}

/// The sidecar parsed once its signature is checked (with a trusted key)
/// and the blobs it assumes are known to be held: all before any blob is
/// stored.
fn check_sidecar(
    blobs: &dyn BlobBackend,
    pending: Option<(Vec<u8>, Option<Vec<u8>>)>,
    trusted: Option<&TrustedKey>,
) -> Result<Option<BundleManifest>, ImportError> {
    let Some((bytes, signature)) = pending else {
        if trusted.is_some() {
            return Err(BundleError::Unsigned.into());
        }
        return Ok(None);
    };
    if let Some(key) = trusted {
        key.verify(&bytes, signature.as_deref())?;
    }
    let sidecar: BundleManifest = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(format!("{MANIFEST_JSON} is not valid: {e}")))?;
    if sidecar.format != FORMAT {
        return Err(ImportError::from(invalid(format!(
            "{MANIFEST_JSON} has format {:?}; this ferry reads {FORMAT:?}",
            sidecar.format
        ))));
    }
    let mut missing = Vec::new();
    for blob in &sidecar.assumed {
        if !blobs.contains(&blob.digest)? {
            missing.push(blob.digest.clone());
        }
    }
    if !missing.is_empty() {
        return Err(BundleError::MissingAssumed { missing }.into());
    }
    Ok(Some(sidecar))
}

/// The tar stream, decompressed when it starts with zstd's magic.
fn decompressed(mut reader: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>, BundleError> {
    let mut head = Vec::with_capacity(ZSTD_MAGIC.len());
    (&mut reader)
        .take(ZSTD_MAGIC.len() as u64)
        .read_to_end(&mut head)?;
    let zstd = head == ZSTD_MAGIC;
    let whole = Cursor::new(head).chain(reader);
    if zstd {
        Ok(Box::new(zstd::stream::read::Decoder::new(whole)?))
    } else {
        Ok(Box::new(whole))
    }
}

/// An entry's name within the layout (a leading `./` dropped), `None` for
/// what is skipped (the layout's directories, a global PAX header), or why
/// it is refused: a path that escapes the layout, a link, a device.
fn entry_name<R: Read>(entry: &tar::Entry<R>) -> Result<Option<String>, BundleError> {
    let raw = entry.path_bytes();
    let text = String::from_utf8_lossy(&raw).into_owned();
    if text.starts_with('/') || text.split('/').any(|c| c == "..") {
        return Err(invalid(format!("entry {text:?} escapes the layout")));
    }
    let name = text.strip_prefix("./").unwrap_or(&text).to_string();
    let kind = entry.header().entry_type();
    match kind {
        tar::EntryType::Regular | tar::EntryType::Continuous => Ok(Some(name)),
        tar::EntryType::XGlobalHeader => Ok(None),
        tar::EntryType::Directory
            if matches!(
                name.trim_end_matches('/'),
                "" | "." | "blobs" | "blobs/sha256"
            ) =>
        {
            Ok(None)
        }
        tar::EntryType::Symlink | tar::EntryType::Link => {
            Err(invalid(format!("entry {text:?} is a link: refused")))
        }
        _ => Err(invalid(format!(
            "entry {text:?} is not a regular file ({kind:?}): refused"
        ))),
    }
}

/// The digest a blob entry's name gives (`blobs/sha256/<64 hex>`).
fn blob_digest(hex: &str, name: &str) -> Result<Digest, BundleError> {
    let well_formed =
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    well_formed
        .then(|| format!("sha256:{hex}").parse::<Digest>().ok())
        .flatten()
        .ok_or_else(|| invalid(format!("entry {name:?} is not named by a sha256 digest")))
}

/// Streams one blob entry into staging, hashed as written, and commits it
/// only if all `size` bytes came and they match the digest.
fn store_blob<R: Read>(
    blobs: &dyn BlobBackend,
    entry: &mut R,
    digest: &Digest,
    size: u64,
) -> Result<(), ImportError> {
    let temp = blobs.create_temp(digest)?;
    let mut block = vec![0u8; COPY_BLOCK];
    loop {
        let n = entry.read(&mut block).map_err(read_error)?;
        if n == 0 {
            break;
        }
        temp.append(&block[..n])?;
    }
    if temp.len() != size {
        return Err(truncated(format!(
            "blob {digest} ended after {} of {size} bytes",
            temp.len()
        ))
        .into());
    }
    match blobs.commit(temp) {
        Err(StoreError::DigestMismatch(d)) => Err(BundleError::DigestMismatch { digest: d }.into()),
        other => Ok(other?),
    }
}

/// A small entry read whole, within `limit`.
fn read_small<R: Read>(
    entry: &mut R,
    size: u64,
    limit: u64,
    name: &str,
) -> Result<Vec<u8>, BundleError> {
    if size > limit {
        return Err(invalid(format!(
            "entry {name:?} is {size} bytes, over the limit of {limit}"
        )));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 != size {
        return Err(truncated(format!("entry {name:?} ends early")));
    }
    Ok(bytes)
}

fn invalid(message: String) -> BundleError {
    BundleError::Invalid(message)
}

fn truncated(what: String) -> BundleError {
    invalid(format!("the bundle is truncated: {what}"))
}

/// A read error of the stream: an early end is a truncated bundle.
fn read_error(e: std::io::Error) -> BundleError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        truncated(e.to_string())
    } else {
        BundleError::Io(e)
    }
}

/// An entry's header that cannot be read: the stream ended inside it, or
/// it is no tar at all.
fn header_error(e: std::io::Error) -> BundleError {
    invalid(format!(
        "the bundle is unreadable (truncated, or not a tar): {e}"
    ))
}
