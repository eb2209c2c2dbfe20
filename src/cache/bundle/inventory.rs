//! `ferry inventory`: what this ferry holds, for the sending side of a
//! differential bundle (`ferry export --have`) to leave out. Only content
//! some repository references is listed: an orphan that GC may remove
//! before the bundle arrives must not be assumed.

use crate::bundle::{BundleBlob, BundleSource, Inventory, INVENTORY_FORMAT};
use crate::cache::maintenance::live_set;
use crate::cache::{blocking, CacheError, Storage};

impl Storage {
    /// Every referenced blob and manifest stored, with its size, and every
    /// tag as `<base_path>/<repository>:<tag>`.
    pub(crate) async fn bundle_inventory(&self) -> Result<Inventory, CacheError> {
        let (blobs, meta) = (self.blobs.clone(), self.meta.clone());
        blocking(move || {
            let meta = meta.blocking();
            let mut held = Vec::new();
            for digest in live_set(meta)? {
                if let Some(size) = blobs.size_of(&digest)? {
                    held.push(BundleBlob { digest, size });
                }
            }
            let mut references = Vec::new();
            for (repo, _) in meta.repos()? {
                for (tag, _) in meta.tags_of(&repo)? {
                    references.push(format!("{repo}:{tag}"));
                }
            }
            Ok(Inventory {
                format: INVENTORY_FORMAT.to_string(),
                created: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string(),
                source: BundleSource::this_host(),
                references,
                blobs: held,
            })
        })
        .await
    }
}
