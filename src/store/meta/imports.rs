//! The provenance tree (see `store/imports.rs`): one mark per imported tag.

use super::{tag_key, BlockingMeta};
use crate::store::{ImportMark, StoreError};

impl BlockingMeta {
    /// The mark of `repo:tag` if it holds (the tag still points at the
    /// digest the import gave it).
    pub fn import_mark(&self, repo: &str, tag: &str) -> Result<Option<ImportMark>, StoreError> {
        let Some(mark) = Self::get::<ImportMark>(&self.imports, &tag_key(repo, tag))? else {
            return Ok(None);
        };
        let current = self.tag(repo, tag)?;
        Ok(current.filter(|t| t.digest == mark.digest).map(|_| mark))
    }

    pub fn put_import_mark(
        &self,
        repo: &str,
        tag: &str,
        mark: &ImportMark,
    ) -> Result<(), StoreError> {
        self.imports
            .insert(tag_key(repo, tag), super::encode(mark)?)?;
        Ok(())
    }
}
