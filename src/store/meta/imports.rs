//! The provenance tree (see `store/imports.rs`): one mark per imported tag.

use std::collections::HashMap;

use super::{decode, tag_key, BlockingMeta};
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

    /// Per repository, its latest import mark that still holds (one scan
    /// of the marks, whatever the number of repositories).
    pub fn latest_import_marks(&self) -> Result<HashMap<String, ImportMark>, StoreError> {
        let mut latest: HashMap<String, ImportMark> = HashMap::new();
        for item in self.imports.iter() {
            let (key, value) = item?;
            let mark: ImportMark = decode(&key, &value)?;
            let text = String::from_utf8_lossy(&key);
            let Some((repo, tag)) = text.split_once('\0') else {
                continue;
            };
            let holds = self
                .tag(repo, tag)?
                .is_some_and(|t| t.digest == mark.digest);
            let newer = latest
                .get(repo)
                .is_none_or(|seen| seen.imported_at < mark.imported_at);
            if holds && newer {
                latest.insert(repo.to_string(), mark);
            }
        }
        Ok(latest)
    }
}
