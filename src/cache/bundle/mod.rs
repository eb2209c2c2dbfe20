//! Bundles from and into the store (issue 15): the cache's side of
//! `bundle` (the format). `export` walks the local repositories and tags
//! into a plan (the sidecar manifest); `write` writes the tar; `import`
//! stores what one holds (reading the stream in `receive`), and `inventory`
//! lists what a ferry holds for a differential bundle.

mod export;
mod import;
mod import_error;
mod inventory;
mod receive;
mod write;

pub(crate) use export::{BundleToWrite, ExportError};
pub(crate) use import::{ImportOptions, ImportReport};
pub(crate) use import_error::ImportError;
