//! The data directory as a whole: private to ferry's user (`private`), one
//! ferry process at a time (a lock file holding the owner's PID), and the
//! checks a maintenance command makes before it touches a directory. Its
//! errors say what is wrong in the user's terms; damage inside the metadata
//! database is the store's to report (see `StoreError::is_damaged`).

mod private;

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held (flock) by the ferry using the directory; holds its PID as text.
pub(crate) const LOCK_FILE: &str = "ferry.lock";

#[derive(Debug, thiserror::Error)]
pub(crate) enum DataDirError {
    #[error("another ferry{} is using {}; stop it first", pid_text(*.pid), .dir.display())]
    InUse { dir: PathBuf, pid: Option<u32> },
    #[error(
        "permission denied on {}: run ferry as a user who may read and write it \
         (the owner of the data directory)", .path.display()
    )]
    PermissionDenied { path: PathBuf },
    #[error("{} is not a directory (or a part of its path is a file)", .path.display())]
    NotADirectory { path: PathBuf },
    #[error(
        "the data directory {} does not exist; give ferry's data directory with \
         --data-dir (or FERRY_DATA_DIR)", .dir.display()
    )]
    Missing { dir: PathBuf },
    #[error(
        "{} holds no ferry data (neither meta/ nor blobs/); give ferry's data \
         directory with --data-dir (or FERRY_DATA_DIR)", .dir.display()
    )]
    NotFerryData { dir: PathBuf },
    #[error("cannot use the data directory {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn pid_text(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (PID {p})")).unwrap_or_default()
}

impl DataDirError {
    /// Names an I/O failure on `path` by what the user can do about it.
    fn from_io(path: &Path, source: std::io::Error) -> DataDirError {
        let path = path.to_path_buf();
        match source.kind() {
            ErrorKind::PermissionDenied => DataDirError::PermissionDenied { path },
            ErrorKind::NotADirectory => DataDirError::NotADirectory { path },
            ErrorKind::NotFound => DataDirError::Missing { dir: path },
            _ => DataDirError::Io { path, source },
        }
    }
}

/// How to treat a directory that is not there yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// `ferry serve`: the first start creates it.
    Create,
    /// `ferry gc`, `ferry verify`: refuse a missing directory or one
    /// without ferry data, rather than create an empty store and report
    /// success on it.
    Refuse,
}

/// The lock on a data directory; released when dropped (or the process ends).
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: File,
}

/// Checks `dir` and takes its lock, so that no second ferry (server or
/// maintenance command) opens the same stores.
pub(crate) fn lock(dir: &Path, missing: Missing) -> Result<DataDirLock, DataDirError> {
    match missing {
        Missing::Create => create(dir)?,
        Missing::Refuse => holds_ferry_data(dir)?,
    }
    // It holds the admin password and, in `meta/`, the upstreams' secrets:
    // tightened here, whatever created it looser (an older ferry, a umask).
    private::tighten_existing(dir).map_err(|e| DataDirError::from_io(dir, e))?;
    let path = dir.join(LOCK_FILE);
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path);
    // A lock file another user created (root ran `ferry gc` once): locking
    // works on a read-only descriptor too; only the PID goes unrecorded.
    let (mut file, writable) = match opened {
        Ok(file) => (file, true),
        Err(e) if e.kind() == ErrorKind::PermissionDenied && path.is_file() => (
            File::open(&path).map_err(|e| DataDirError::from_io(&path, e))?,
            false,
        ),
        Err(e) => return Err(DataDirError::from_io(&path, e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            // The holder may be between truncating and writing: no PID then.
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(DataDirError::InUse {
                dir: dir.to_path_buf(),
                pid,
            });
        }
        Err(TryLockError::Error(e)) => return Err(DataDirError::from_io(&path, e)),
    }
    let write_pid = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())
    };
    if writable {
        write_pid(&mut file).map_err(|e| DataDirError::from_io(&path, e))?;
    }
    Ok(DataDirLock { _file: file })
}

fn create(dir: &Path) -> Result<(), DataDirError> {
    if let Err(e) = private::create(dir) {
        // A regular file where the directory should be: EEXIST, not ENOTDIR.
        if dir.metadata().is_ok_and(|m| !m.is_dir()) {
            return Err(DataDirError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        return Err(DataDirError::from_io(dir, e));
    }
    Ok(())
}

/// Whether `dir` is a ferry data directory: it exists and holds `meta/` or
/// `blobs/`.
pub(crate) fn holds_ferry_data(dir: &Path) -> Result<(), DataDirError> {
    let metadata = dir.metadata().map_err(|e| DataDirError::from_io(dir, e))?;
    if !metadata.is_dir() {
        return Err(DataDirError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    let entries = std::fs::read_dir(dir).map_err(|e| DataDirError::from_io(dir, e))?;
    let mut names = entries.filter_map(|e| e.ok()).map(|e| e.file_name());
    if names.any(|n| n == "meta" || n == "blobs") {
        Ok(())
    } else {
        Err(DataDirError::NotFerryData {
            dir: dir.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let _held = lock(dir.path(), Missing::Create).unwrap();
        match lock(dir.path(), Missing::Create) {
            Err(DataDirError::InUse { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected InUse, got {other:?}"),
        }
    }

    #[test]
    fn refuses_missing_and_foreign_directories_without_creating_them() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            lock(&missing, Missing::Refuse),
            Err(DataDirError::Missing { .. })
        ));
        assert!(!missing.exists());
        assert!(matches!(
            lock(dir.path(), Missing::Refuse),
            Err(DataDirError::NotFerryData { .. })
        ));
        assert!(!dir.path().join(LOCK_FILE).exists());
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        assert!(lock(dir.path(), Missing::Refuse).is_ok());
    }

    #[test]
    fn a_file_in_the_path_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        for path in [file.clone(), file.join("data")] {
            for missing in [Missing::Create, Missing::Refuse] {
                let err = lock(&path, missing).unwrap_err();
                assert!(
                    matches!(err, DataDirError::NotADirectory { .. }),
                    "{path:?} {missing:?}: {err:?}"
                );
            }
        }
    }
}
