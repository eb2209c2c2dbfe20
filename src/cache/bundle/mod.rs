//! Bundles from and into the store (issue 15): the cache's side of
//! `bundle` (the format). `export` walks the local repositories and tags
//! into a plan (the sidecar manifest); `write` writes the tar.

mod export;
mod write;

pub(crate) use export::{BundleToWrite, ExportError};
