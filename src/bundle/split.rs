//! `--split SIZE`: a bundle as numbered parts (`FILE.part001`, ...) and a
//! checksum file (`FILE.sha256`, in `sha256sum` format, so `sha256sum -c`
//! checks it too). Stubs until the splitting work lands: the shapes below
//! are what export and import call.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::BundleError;

/// Writes a bundle as parts of at most `part_size` bytes each.
pub(crate) struct SplitWriter(());

impl SplitWriter {
    pub(crate) fn create(_output: &Path, _part_size: u64) -> Result<SplitWriter, BundleError> {
        Err(BundleError::Unsupported("split bundles"))
    }

    /// Ends the last part and writes the checksum file; returns the files
    /// written.
    pub(crate) fn finish(self) -> Result<Vec<PathBuf>, BundleError> {
        Err(BundleError::Unsupported("split bundles"))
    }
}

impl Write for SplitWriter {
    fn write(&mut self, _buf: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("split bundles are not built yet"))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads the parts of a split bundle, given in any order (with or without
/// the checksum file among them), as one stream: every part listed in the
/// checksum file must be there (else `MissingPart` before any byte is
/// read), and each is hashed as it is read (`DamagedPart` at its end).
pub(crate) struct PartsReader(());

impl Read for PartsReader {
    fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("split bundles are not built yet"))
    }
}

/// `None` when `files` is one whole bundle (not parts).
pub(crate) fn open_parts(_files: &[PathBuf]) -> Result<Option<PartsReader>, BundleError> {
    Err(BundleError::Unsupported("split bundles"))
}
