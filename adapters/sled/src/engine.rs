//! How the engine is opened and made durable: what sled 0.34 keeps in a
//! database directory, the checks before sled may open one, the open
//! itself, and the syncs sled does not do.
//!
//! A directory holds `conf` (sled's storage parameters, written first when
//! it creates a database), `db` (the log and pages), `blobs/` (values too
//! large for a log segment) and `snap.<lsn>` (recovery snapshots), and this
//! adapter's commit mark `userstate.commits`. sled 0.34 writes its log to
//! `db` with `sync_file_range` only, writes blob files and `conf` without
//! any sync, and renames snapshot files without syncing the directory;
//! after a `Db::flush`, [`DeviceSync::sync`] supplies the missing
//! `fdatasync`s and directory `fsync`s.
//!
//! sled's recovery stops at the first damaged message of its log and
//! zeroes the segments after it, so opening a damaged database in place
//! would make its loss permanent before anyone could tell. A database
//! whose `db` no longer matches the seal of its last clean close (damaged,
//! or not closed cleanly) is therefore first opened on a copy in
//! `userstate.probe/`: only when the copy shows no loss, and passes the
//! check at open, is the database itself opened.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use userstate::storage::{
    check_private, create_private_dir, AcceptedLoss, CheckAtOpen, CommitMark, Loss, Recorded, Seal,
    CHECK_EVERYTHING_UP_TO,
};
use userstate::{Error, Result, Timestamp};

use crate::error::{from_io, from_sled};
use crate::format;
use crate::layout::{self, Trees, MARK_FILE, PROBE_DIR};
use crate::options::SledOptions;
use crate::record;
use crate::verify;

/// sled's data file.
pub(crate) const DATA_FILE: &str = "db";
/// sled's configuration file.
pub(crate) const CONFIG_FILE: &str = "conf";
/// sled's directory of large values.
pub(crate) const BLOB_DIR: &str = "blobs";

/// What a directory holds before sled opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Existing {
    /// Nothing yet (or no directory): sled will create the database.
    Nothing,
    /// A data file and sled's configuration: a sled database.
    SledDatabase,
    /// A data file sled did not create (no configuration next to it):
    /// sled must not open it, as recovery would overwrite parts of it.
    ForeignFile,
    /// sled's other files, or the commit mark, without a data file (or
    /// with an empty one): a database whose data file is gone.
    MissingData(Vec<String>),
    /// Files that are none of a database's.
    Unknown(Vec<String>),
}

/// Looks at `root` without changing anything.
///
/// # Errors
/// Unavailable when the directory cannot be listed.
fn inspect(root: &Path) -> Result<Existing> {
    let names = match fs::read_dir(root) {
        Ok(entries) => entries
            .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<BTreeSet<_>>>()
            .map_err(|e| from_io(&format!("cannot list {}", root.display()), e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Nothing),
        Err(e) => return Err(from_io(&format!("cannot list {}", root.display()), e)),
    };
    let has_data = fs::metadata(root.join(DATA_FILE)).is_ok_and(|m| m.len() > 0);
    let ours = |name: &str| {
        [DATA_FILE, CONFIG_FILE, BLOB_DIR, MARK_FILE, PROBE_DIR].contains(&name)
            || name.starts_with("snap.")
    };
    let unknown: Vec<String> = names.iter().filter(|n| !ours(n)).cloned().collect();
    let parts: Vec<String> = names
        .iter()
        .filter(|n| ours(n) && n.as_str() != PROBE_DIR)
        .cloned()
        .collect();
    Ok(if has_data && names.contains(CONFIG_FILE) {
        Existing::SledDatabase
    } else if has_data {
        Existing::ForeignFile
    } else if !parts.is_empty() {
        Existing::MissingData(parts)
    } else if !unknown.is_empty() {
        Existing::Unknown(unknown)
    } else {
        Existing::Nothing
    })
}

/// An open database: its trees, the syncs for the writer, and its mark.
pub(crate) struct Opened {
    pub(crate) trees: Trees,
    pub(crate) device: DeviceSync,
    pub(crate) mark: CommitMark,
}

/// Opens the database in `root`: checks what the directory holds, tells
/// from the commit mark's seal whether `db` is as its last clean close
/// left it and opens a copy first when it is not, opens sled, syncs what
/// it created or recovered, checks (or writes, or upgrades to) the current
/// format, compares the count of committed events with the mark, and runs
/// the check at open.
///
/// # Errors
/// See [`SledOptions::open`](crate::SledOptions::open).
pub(crate) fn open(root: &Path, options: &SledOptions) -> Result<Opened> {
    let created = prepare(root, options).map_err(|e| at(root, e))?;
    let mark_path = root.join(MARK_FILE);
    let mut checked = false;
    let check = if created {
        CheckAtOpen::Nothing
    } else {
        resolve(options.check_at_open, root)
    };
    if !created {
        let recorded = Recorded::read(&mark_path).map_err(|e| at(root, e))?;
        let whole = recorded
            .seal()
            .is_some_and(|seal| Seal::of_file(&root.join(DATA_FILE)).ok() == Some(seal));
        if !whole {
            probe(root, options, &recorded, check).map_err(|e| at(root, e))?;
            checked = true;
        }
    }
    let (trees, device) = open_in_place(root, options, created).map_err(|e| at(root, e))?;
    let committed = layout::committed(&trees.db).map_err(|e| at(root, e))?;
    // Nothing of ours is written before a loss, or the check, refuses.
    let recorded = Recorded::read(&mark_path).map_err(|e| at(root, e))?;
    recorded
        .check(&mark_path, committed, options.accept_loss)
        .map_err(|e| at(root, e))?;
    if check == CheckAtOpen::Everything && !checked {
        refuse_findings(verify::everything(&trees)?).map_err(|e| at(root, e))?;
    }
    let (mark, loss) =
        CommitMark::open_as_read(&mark_path, recorded, committed, options.accept_loss)
            .map_err(|e| at(root, e))?;
    if let Some(loss) = loss {
        record_loss(&trees, loss).map_err(|e| at(root, e))?;
    }
    Ok(Opened {
        trees,
        device,
        mark,
    })
}

/// Readies `root` for sled and tells whether the database is new.
fn prepare(root: &Path, options: &SledOptions) -> Result<bool> {
    match fs::symlink_metadata(root) {
        Ok(metadata) if metadata.is_dir() => check_private(root)?,
        Ok(metadata) if metadata.file_type().is_symlink() => check_private(root)?,
        Ok(_) => {
            return Err(Error::unavailable(
                "is a file, not the directory of a sled database",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(from_io("cannot inspect the directory", e)),
    }
    match inspect(root)? {
        Existing::SledDatabase => {
            for name in [DATA_FILE, CONFIG_FILE, MARK_FILE] {
                let path = root.join(name);
                if path.symlink_metadata().is_ok() {
                    check_private(&path)?;
                }
            }
            Ok(false)
        }
        Existing::ForeignFile => Err(Error::corrupt(
            "the directory holds a data file sled did not create; refusing to open it",
        )),
        Existing::MissingData(parts) => Err(Error::corrupt(format!(
            "the data file {DATA_FILE} is missing or empty, but {} of the database are \
             there: it was removed, truncated or never fully written, and a new database \
             would start where one was; nothing was written. Restore the directory from a \
             backup, or remove it to start a new database",
            parts.join(", ")
        ))),
        Existing::Unknown(names) => Err(Error::corrupt(format!(
            "the directory holds files that are not a userstate database ({}); a new \
             database is only created in an empty or missing directory",
            names.join(", ")
        ))),
        Existing::Nothing if !options.create_if_missing => Err(Error::unavailable(
            "no database is there, and the options do not create one",
        )),
        Existing::Nothing => {
            if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .map_err(|e| from_io("cannot create the parent directory", e))?;
            }
            create_private_dir(root)?;
            Ok(true)
        }
    }
}

/// What [`CheckAtOpen::Auto`] means for this database.
fn resolve(check: CheckAtOpen, root: &Path) -> CheckAtOpen {
    match check {
        CheckAtOpen::Auto => {
            let size = fs::metadata(root.join(DATA_FILE)).map_or(0, |m| m.len());
            if size <= CHECK_EVERYTHING_UP_TO {
                CheckAtOpen::Everything
            } else {
                CheckAtOpen::Structure
            }
        }
        other => other,
    }
}

/// Opens a copy of the database in `root` and refuses, leaving the
/// database as it was, what opening it in place would have hidden: a loss
/// of committed events, or damage the check at open finds.
fn probe(
    root: &Path,
    options: &SledOptions,
    recorded: &Recorded,
    check: CheckAtOpen,
) -> Result<()> {
    // Keep other processes from writing while the copy is taken; sled
    // takes the same lock when it opens the database.
    let lock = lock_data_file(root)?;
    let copy = root.join(PROBE_DIR);
    remove_probe(&copy)?;
    let probed = copy_database(root, &copy).and_then(|()| {
        let db = open_sled(&copy, options)?;
        // A copy to look at, thrown away: nothing of it needs a sync.
        format::open(&db, false, &mut || {
            db.flush().map(|_| ()).map_err(from_sled)
        })?;
        let trees = Trees::open(db)?;
        let committed = layout::committed(&trees.db)?;
        recorded.check(&root.join(MARK_FILE), committed, options.accept_loss)?;
        if check == CheckAtOpen::Everything {
            refuse_findings(verify::everything(&trees)?)?;
        }
        Ok(())
    });
    drop(lock);
    let removed = remove_probe(&copy);
    probed.and(removed)
}

/// Opens sled in `root`, syncs its files once, and checks or sets up the
/// format.
fn open_in_place(root: &Path, options: &SledOptions, created: bool) -> Result<(Trees, DeviceSync)> {
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

/// A refusal listing what a check at open found, if anything.
fn refuse_findings(verification: userstate::storage::Verification) -> Result<()> {
    match verification.findings.first() {
        None => Ok(()),
        Some(first) => Err(Error::corrupt(format!(
            "the database failed its check at open ({} problems; the first: {first}); \
             nothing was changed. Restore it from a backup, or open it with \
             CheckAtOpen::Structure to serve what is sound, reads that meet the damage \
             answering USER-CORRUPT",
            verification.findings.len()
        ))),
    }
}

/// Records in `userstate.losses` that the open accepted `loss`.
fn record_loss(trees: &Trees, loss: Loss) -> Result<()> {
    let accepted = AcceptedLoss {
        accepted_at: Timestamp::now(),
        loss,
    };
    let key = trees.losses.len() as u64 + 1;
    trees
        .losses
        .insert(key.to_be_bytes(), record::encode_loss(&accepted)?)
        .map_err(from_sled)?;
    Ok(())
}

/// Copies sled's files of `root` into `copy` (created private).
fn copy_database(root: &Path, copy: &Path) -> Result<()> {
    create_private_dir(copy)?;
    let failed = |e: io::Error| from_io("cannot copy the database to check it", e);
    for entry in fs::read_dir(root).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        let file =
            name_text == DATA_FILE || name_text == CONFIG_FILE || name_text.starts_with("snap.");
        if file && entry.file_type().map_err(failed)?.is_file() {
            fs::copy(entry.path(), copy.join(&name)).map_err(failed)?;
        } else if name_text == BLOB_DIR {
            let blobs = copy.join(BLOB_DIR);
            create_private_dir(&blobs)?;
            for blob in fs::read_dir(entry.path()).map_err(failed)? {
                let blob = blob.map_err(failed)?;
                fs::copy(blob.path(), blobs.join(blob.file_name())).map_err(failed)?;
            }
        }
    }
    Ok(())
}

fn remove_probe(copy: &Path) -> Result<()> {
    match fs::remove_dir_all(copy) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(from_io("cannot remove the copy of the database", e))
        }
        _ => Ok(()),
    }
}

/// The advisory lock sled holds on its data file while a database is open.
///
/// # Errors
/// Unavailable when another process holds the database open.
fn lock_data_file(root: &Path) -> Result<File> {
    let file =
        File::open(root.join(DATA_FILE)).map_err(|e| from_io("cannot open the data file", e))?;
    #[cfg(unix)]
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| Error::unavailable(format!("another process holds the database open ({e})")),
    )?;
    Ok(file)
}

/// `error` with the directory in its message, where it is not yet.
fn at(root: &Path, error: Error) -> Error {
    let shown = root.display().to_string();
    if error.message().contains(&shown) {
        return error;
    }
    Error::new(
        error.kind(),
        error.id(),
        format!("the database {shown}: {}", error.message()),
    )
    .with_source(error)
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
        let path = dir.join(name);
        match make_private(&path).and_then(|()| File::open(&path)?.sync_all()) {
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

/// Takes access for the group and others away from what sled created:
/// files 0600, folders 0700 (sled creates them with the process's umask).
#[cfg(unix)]
fn make_private(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = fs::symlink_metadata(path)?;
    let private = if metadata.is_dir() { 0o700 } else { 0o600 };
    if metadata.permissions().mode() & 0o777 != private {
        fs::set_permissions(path, fs::Permissions::from_mode(private))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_path: &Path) -> io::Result<()> {
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
    fn tells_empty_sled_foreign_and_damaged_directories_apart() {
        let dir = tempfile::tempdir().unwrap();
        let inspect = |path: &Path| inspect(path).unwrap();
        assert_eq!(inspect(dir.path()), Existing::Nothing);
        assert_eq!(inspect(&dir.path().join("missing")), Existing::Nothing);
        std::fs::write(dir.path().join(DATA_FILE), b"someone else's").unwrap();
        assert_eq!(inspect(dir.path()), Existing::ForeignFile);
        std::fs::write(dir.path().join(CONFIG_FILE), b"conf").unwrap();
        assert_eq!(inspect(dir.path()), Existing::SledDatabase);
        std::fs::write(dir.path().join(DATA_FILE), b"").unwrap();
        assert_eq!(
            inspect(dir.path()),
            Existing::MissingData(vec![CONFIG_FILE.to_owned(), DATA_FILE.to_owned()])
        );
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("notes.txt"), b"mine").unwrap();
        assert_eq!(
            inspect(other.path()),
            Existing::Unknown(vec!["notes.txt".to_owned()])
        );
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
