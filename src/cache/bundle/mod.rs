//! Bundles from and into the store (issue 15): the cache's side of
//! `bundle` (the format). `export` walks the local repositories and tags
//! into a plan (the sidecar manifest) and writes the tar.

mod export;

pub(crate) use export::{BundleToWrite, ExportError};
