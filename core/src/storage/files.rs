//! Files a local account cannot plant or read: databases and everything
//! beside them are created owner-only (files 0600, folders 0700) and never
//! through a symbolic link; an existing one must be the opener's own.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use crate::error::{Error, Result};

/// Creates the folder `dir` owner-only if it does not exist, and checks it
/// (see [`check_private`]) if it does. Its parent must exist.
///
/// # Errors
/// Unavailable when it cannot be created, with the system's reason; as
/// [`check_private`] for an existing one.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => check_private(dir),
        Err(e) => Err(io_error("cannot create the folder", dir, e)),
    }
}

/// Creates the new file `path` owner-only (0600). Fails if anything exists
/// at the path, a symbolic link included, so it never writes through one.
///
/// # Errors
/// Unavailable with the system's reason.
pub fn create_private_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| io_error("cannot create the file", path, e))
}

/// Opens the existing file `path` for reading and writing, refusing a
/// symbolic link, after [`check_private`].
///
/// # Errors
/// As [`check_private`]; Unavailable with the system's reason.
pub fn open_private_file(path: &Path) -> Result<File> {
    check_private(path)?;
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(
        &mut options,
        rustix::fs::OFlags::NOFOLLOW.bits() as i32,
    );
    options
        .open(path)
        .map_err(|e| io_error("cannot open the file", path, e))
}

/// Checks an existing file or folder of a database: not a symbolic link,
/// and owned by the user this process runs as. Access for the group or
/// others is taken away (files 0600, folders 0700): release 0.1.0 created
/// its files readable by everyone.
///
/// # Errors
/// Unavailable when it cannot be inspected; Internal (`USER-CORRUPT`) for a
/// symbolic link or a file of another user: someone else's file is not a
/// database to trust.
pub fn check_private(path: &Path) -> Result<()> {
    let metadata = fs::symlink_metadata(path).map_err(|e| io_error("cannot inspect", path, e))?;
    check_metadata(path, &metadata, false)
}

/// As [`check_private`], for a file another process may remove at any
/// moment (SQLite's `-wal` and `-shm`, which the last connection to close
/// removes): one that is not there, or is gone before it is made private,
/// is no error.
///
/// # Errors
/// As [`check_private`] for a file that is there.
pub fn check_private_if_present(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(metadata) => check_metadata(path, &metadata, true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("cannot inspect", path, e)),
    }
}

#[cfg_attr(not(unix), allow(unused_variables))]
fn check_metadata(path: &Path, metadata: &fs::Metadata, may_vanish: bool) -> Result<()> {
    if metadata.file_type().is_symlink() {
        return Err(Error::corrupt(format!(
            "{} is a symbolic link; a database is never opened through one",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let me = rustix::process::getuid().as_raw();
        if metadata.uid() != me {
            return Err(Error::corrupt(format!(
                "{} belongs to another user (uid {}, this process runs as {me}); \
                 a database must be its opener's own",
                path.display(),
                metadata.uid()
            )));
        }
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            let private = if metadata.is_dir() { 0o700 } else { 0o600 };
            match fs::set_permissions(path, fs::Permissions::from_mode(private)) {
                Err(e) if may_vanish && e.kind() == io::ErrorKind::NotFound => {}
                made => made.map_err(|e| io_error("cannot make private", path, e))?,
            }
        }
    }
    Ok(())
}

/// An I/O failure on `path`, with the system's reason in the message.
fn io_error(what: &str, path: &Path, error: io::Error) -> Error {
    Error::unavailable(format!("{what} {}: {error}", path.display())).with_source(error)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_files_and_folders_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("db");
        create_private_dir(&folder).unwrap();
        assert_eq!(mode(&folder), 0o700);
        let file = folder.join("users");
        drop(create_private_file(&file).unwrap());
        assert_eq!(mode(&file), 0o600);
        assert!(
            create_private_file(&file).is_err(),
            "never over an existing file"
        );
        open_private_file(&file).unwrap();
    }

    #[test]
    fn links_are_refused_and_loose_permissions_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"x").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o666)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = check_private(&link).unwrap_err();
        assert_eq!(err.id(), crate::ids::CORRUPT);
        assert!(create_private_file(&link).is_err(), "not through a link");
        assert!(open_private_file(&link).is_err());
        check_private(&target).unwrap();
        assert_eq!(mode(&target), 0o600);
    }

    #[test]
    fn a_companion_that_is_gone_is_no_error_but_one_that_is_there_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("db-shm");
        check_private_if_present(&gone).unwrap();
        let err = check_private(&gone).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable);

        let target = dir.path().join("target");
        fs::write(&target, b"x").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("db-wal");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = check_private_if_present(&link).unwrap_err();
        assert_eq!(err.id(), crate::ids::CORRUPT);
        check_private_if_present(&target).unwrap();
        assert_eq!(mode(&target), 0o600);
    }
}
