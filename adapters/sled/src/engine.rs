//! How the engine is opened and made durable: what sled 0.34 keeps in a
//! database directory, the checks before sled may open one, the open
//! itself, and the syncs sled does not do.
//!
//! A directory holds `conf` (sled's storage parameters, written first when
//! it creates a database), `db` (the log and pages), `blobs/` (values too
//! large for a log segment) and `snap.<lsn>` (recovery snapshots). sled 0.34
//! writes its log to `db` with `sync_file_range` only, writes blob files and
//! `conf` without any sync, and renames snapshot files without syncing the
//! directory; after a `Db::flush`, [`DeviceSync::sync`] supplies the
//! missing `fdatasync`s and directory `fsync`s.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use userstate::{Error, Result};

use crate::error::{from_io, from_sled};
use crate::format;
use crate::layout::Trees;
use crate::options::SledOptions;

/// sled's data file.
pub(crate) const DATA_FILE: &str = "db";
/// sled's configuration file.
pub(crate) const CONFIG_FILE: &str = "conf";
/// sled's directory of large values.
pub(crate) const BLOB_DIR: &str = "blobs";

/// What a directory holds before sled opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// No data yet: sled will create the database.
    Nothing,
    /// A data file and sled's configuration: a sled database.
    SledDatabase,
    /// A data file sled did not create (no configuration next to it):
    /// sled must not open it, as recovery would overwrite parts of it.
    ForeignFile,
}

/// Looks at `root` without changing anything.
fn inspect(root: &Path) -> Existing {
    let has_data = std::fs::metadata(root.join(DATA_FILE)).is_ok_and(|m| m.len() > 0);
    if !has_data {
        Existing::Nothing
    } else if root.join(CONFIG_FILE).is_file() {
        Existing::SledDatabase
    } else {
        Existing::ForeignFile
    }
}

/// Opens the database in `root`: checks what the directory holds, opens
/// sled, syncs what it created or recovered, and checks (or writes, or
/// upgrades to) the current format. Returns its trees and the syncs for the
/// writer.
///
/// # Errors
/// See [`SledOptions::open`](crate::SledOptions::open).
pub(crate) fn open(root: &Path, options: &SledOptions) -> Result<(Trees, DeviceSync)> {
    let created = match inspect(root) {
        Existing::Nothing => true,
        Existing::SledDatabase => false,
        Existing::ForeignFile => {
            return Err(Error::corrupt(
                "the directory holds a data file sled did not create; refusing to open it",
            ))
        }
    };
    let db = open_sled(root, options)?;
    let mut device =
        DeviceSync::open(root).map_err(|e| from_io("cannot sync the database directory", e))?;
    format::open(&db, created, &mut || {
        db.flush().map_err(from_sled)?;
        device
            .sync()
            .map_err(|e| from_io("cannot sync the database files", e))
    })?;
    Ok((Trees::open(db)?, device))
}

/// Opens sled in `root` with the cache the options ask for.
///
/// # Errors
/// Corrupt when sled cannot read the files (sled 0.34 has assertions on its
/// recovery path: a damaged directory gives an error, not a panic).
fn open_sled(root: &Path, options: &SledOptions) -> Result<sled::Db> {
    let config = sled::Config::new()
        .cache_capacity(options.cache_bytes)
        .path(root);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
        .map_err(|_| Error::corrupt("sled cannot read the database files"))?
        .map_err(from_sled)
}

/// The files of one sled database directory to sync, with the directory
/// listings seen at the last sync (so only new files are synced again).
#[derive(Debug)]
pub(crate) struct DeviceSync {
    root: PathBuf,
    data_file: File,
    known_root: BTreeSet<OsString>,
    known_blobs: BTreeSet<OsString>,
}

impl DeviceSync {
    /// Opens the data file of the sled database in `root` and syncs
    /// everything once: the files sled just created or recovered, the
    /// directories, and the parent that holds a newly created `root`.
    ///
    /// # Errors
    /// Any I/O error of opening or syncing.
    pub(crate) fn open(root: &Path) -> io::Result<Self> {
        // Read access suffices for fdatasync on the same inode; sled's
        // advisory lock on the file does not prevent it.
        let data_file = File::open(root.join(DATA_FILE))?;
        let mut sync = DeviceSync {
            root: root.to_path_buf(),
            data_file,
            known_root: BTreeSet::new(),
            known_blobs: BTreeSet::new(),
        };
        sync.sync()?;
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Ok(sync)
    }

    /// Makes everything sled has written so far durable. Call after
    /// `Db::flush`.
    ///
    /// New blob and snapshot files are synced before the data file, so a
    /// log entry that names a blob never reaches the device before the blob.
    ///
    /// # Errors
    /// Any I/O error of listing or syncing.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        let blob_dir = self.root.join(BLOB_DIR);
        sync_new_entries(&blob_dir, &mut self.known_blobs)?;
        sync_new_entries(&self.root, &mut self.known_root)?;
        self.data_file.sync_data()
    }
}

/// Syncs the files of `dir` that were not in `known` and then `dir` itself,
/// if its listing changed (files created, renamed or removed).
fn sync_new_entries(dir: &Path, known: &mut BTreeSet<OsString>) -> io::Result<()> {
    let current = list(dir)?;
    if current == *known {
        return Ok(());
    }
    for name in current.difference(known) {
        match File::open(dir.join(name)).and_then(|f| f.sync_all()) {
            // sled removes blobs and renames snapshot files concurrently; a
            // file that is gone needs no sync, its directory entry does.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => other?,
        }
    }
    sync_dir(dir)?;
    *known = current;
    Ok(())
}

fn list(dir: &Path) -> io::Result<BTreeSet<OsString>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.file_name())).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(e),
    }
}

/// Makes a directory's entries (created, renamed, removed files) durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Other platforms cannot open a directory with std; their file systems
/// journal directory changes with the file's own sync.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_empty_sled_and_foreign_directories_apart() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(inspect(dir.path()), Existing::Nothing);
        assert_eq!(inspect(&dir.path().join("missing")), Existing::Nothing);
        std::fs::write(dir.path().join(DATA_FILE), b"someone else's").unwrap();
        assert_eq!(inspect(dir.path()), Existing::ForeignFile);
        std::fs::write(dir.path().join(CONFIG_FILE), b"conf").unwrap();
        assert_eq!(inspect(dir.path()), Existing::SledDatabase);
    }

    #[test]
    fn syncs_a_fresh_sled_directory_and_notices_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nested").join("db-dir");
        let db = sled::Config::new().path(&root).open().unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        let mut sync = DeviceSync::open(&root).unwrap();
        assert!(sync.known_root.contains(&OsString::from("db")));
        assert!(sync.known_root.contains(&OsString::from("conf")));
        std::fs::write(root.join(BLOB_DIR).join("42"), b"blob").unwrap();
        sync.sync().unwrap();
        assert!(sync.known_blobs.contains(&OsString::from("42")));
        std::fs::remove_file(root.join(BLOB_DIR).join("42")).unwrap();
        sync.sync().unwrap();
        assert!(sync.known_blobs.is_empty());
    }

    #[test]
    fn missing_data_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DeviceSync::open(dir.path()).is_err());
    }
}
