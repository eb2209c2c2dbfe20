//! Bundles: what carries a cache across an air gap. A bundle is a tar
//! (zstd-compressed on request) holding a standard OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/...`) and, before it, ferry's
//! sidecar manifest (`ferry-bundle.json`: every reference, every blob with
//! its size, the blobs the receiver is assumed to hold, the source and the
//! time) with an optional ed25519 signature over its exact bytes. A bundle
//! may be split into numbered parts with a checksum file.
//!
//! This module is the format only: names, records, signing and splitting.
//! Reading the store to write one and storing what one holds is the
//! cache's work (`cache::bundle`); the API and the CLI drive it.

// Until export and import (cache::bundle) use it.
#![allow(dead_code, unused_imports)]

mod error;
mod format;
mod sign;
mod split;

pub(crate) use error::BundleError;
pub(crate) use format::{
    BundleBlob, BundleLeftOut, BundleManifest, BundleRef, BundleReference, BundleReferrer,
    BundleSource, Inventory, Selection, BLOBS_DIR, FORMAT, INDEX_JSON, INVENTORY_FORMAT,
    MANIFEST_JSON, OCI_LAYOUT, REF_NAME, SIGNATURE,
};
pub(crate) use sign::{generate_key_pair, BundleSigner, TrustedKey};
pub(crate) use split::{check_parts, open_parts, parse_part_size, PartsReader, SplitWriter};
