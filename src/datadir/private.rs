//! The data directory is private to ferry's user: it holds the admin
//! password and, in `meta/`, the upstreams' passwords, proxy passwords and
//! client keys. ferry sets the modes itself rather than trusting the umask
//! (the systemd unit sets one; a shell or a container may not), and
//! tightens a directory a looser umask created before.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

const PRIVATE_DIR: u32 = 0o700;
const PRIVATE_FILE: u32 = 0o600;

/// Creates `dir` (and missing parents) mode 0700.
pub(super) fn create(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR)
        .create(dir)
}

/// Tightens an existing data directory that others can read or enter, the
/// files directly in it (the admin password) and all of `meta/`.
pub(super) fn tighten_existing(dir: &Path) -> io::Result<()> {
    tighten(dir, PRIVATE_DIR)?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            tighten(&entry.path(), PRIVATE_FILE)?;
        }
    }
    let meta = dir.join("meta");
    if meta.is_dir() {
        tighten_tree(&meta)?;
    }
    Ok(())
}

/// Tightens `dir` and everything under it (the metadata database: a few
/// files and sled's blob directory) to 0700 directories and 0600 files.
fn tighten_tree(dir: &Path) -> io::Result<()> {
    tighten(dir, PRIVATE_DIR)?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            tighten_tree(&entry.path())?;
        } else if kind.is_file() {
            tighten(&entry.path(), PRIVATE_FILE)?;
        }
    }
    Ok(())
}

/// Removes the group and other bits beyond `allowed` (never widens).
fn tighten(path: &Path, allowed: u32) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
    if mode & !allowed & 0o077 == 0 {
        return Ok(());
    }
    let tightened = mode & (allowed | 0o700);
    fs::set_permissions(path, fs::Permissions::from_mode(tightened)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot make {} private: {e}", path.display()),
        )
    })?;
    tracing::info!(
        path = %path.display(),
        from = format!("{mode:o}"),
        to = format!("{tightened:o}"),
        "tightened permissions: other users must not read ferry's data"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_private_and_tightens_loose_modes() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("a/data");
        create(&data).unwrap();
        assert_eq!(mode(&data), 0o700);

        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(data.join("admin-password"), b"x").unwrap();
        fs::set_permissions(
            data.join("admin-password"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let meta = data.join("meta");
        fs::create_dir_all(meta.join("blobs")).unwrap();
        fs::write(meta.join("db"), b"x").unwrap();
        fs::write(meta.join("blobs/1"), b"x").unwrap();
        fs::set_permissions(meta.join("db"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(meta.join("blobs/1"), fs::Permissions::from_mode(0o666)).unwrap();
        tighten_existing(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("admin-password")), 0o600);
        assert_eq!(mode(&meta), 0o700);
        assert_eq!(mode(&meta.join("blobs")), 0o700);
        assert_eq!(mode(&meta.join("db")), 0o600);
        assert_eq!(mode(&meta.join("blobs/1")), 0o600);
    }
}
