//! Bundles in the store (issue 15): writing one from what is cached
//! (`export.rs`), storing what one holds (`import.rs`, reading the stream
//! in `receive.rs`), and what a ferry holds for a differential bundle
//! (`inventory.rs`). The format itself is `crate::bundle`.

mod import;
mod import_error;
mod inventory;
mod receive;

pub(crate) use import::{ImportOptions, ImportReport};
pub(crate) use import_error::ImportError;
