//! Which blob store a data directory's metadata describes, written to
//! `DATA_DIR/blob-store` at its first start. An offline command run with
//! only `--data-dir` (no config) on the data directory of an S3-backed
//! ferry would otherwise read and write a local blob tree the server never
//! sees: tags imported that way would point at blobs missing from the
//! bucket. With the marker, a blob store other than the recorded one is
//! refused, naming both.

use std::path::Path;

use super::super::StoreError;

const MARKER: &str = "blob-store";
/// What a data directory written before the marker existed holds.
const LOCAL: &str = "local";

/// Checks `configured` (see `S3Settings::identity`, or `"local"`) against
/// the data directory's record, writing it on a new metadata database.
/// `existing_meta`: the metadata database was there before this start.
pub fn check_blob_store(
    data_dir: &Path,
    configured: &str,
    existing_meta: bool,
) -> Result<(), StoreError> {
    // Recorded as a line: compared without the spaces around it.
    let configured = configured.trim();
    let path = data_dir.join(MARKER);
    let recorded = match std::fs::read_to_string(&path) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if existing_meta && configured != LOCAL {
                LOCAL.to_string()
            } else {
                let temp = data_dir.join(format!(".{MARKER}.tmp"));
                std::fs::write(&temp, format!("{configured}\n"))?;
                std::fs::rename(&temp, &path)?;
                return Ok(());
            }
        }
        Err(e) => return Err(e.into()),
    };
    if recorded == configured {
        return Ok(());
    }
    Err(StoreError::OtherBlobStore {
        recorded,
        configured: configured.to_string(),
        marker: path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_blob_store_is_recorded_and_another_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s3 = "s3 http://127.0.0.1:8333/ ferry ";
        check_blob_store(dir.path(), s3, false).unwrap();
        check_blob_store(dir.path(), s3, true).unwrap();
        let refused = check_blob_store(dir.path(), LOCAL, true).unwrap_err();
        let text = refused.to_string();
        assert!(text.contains("s3 http://127.0.0.1:8333/ ferry"), "{text}");
        assert!(text.contains("--config"), "{text}");

        // A data directory from before the marker holds local blobs.
        let old = tempfile::tempdir().unwrap();
        assert!(check_blob_store(old.path(), s3, true).is_err());
        check_blob_store(old.path(), LOCAL, true).unwrap();
        check_blob_store(old.path(), LOCAL, true).unwrap();
    }
}
