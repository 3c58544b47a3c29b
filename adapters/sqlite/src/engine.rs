//! How the engine is opened: the file made or checked private, the
//! writer's and the readers' connections to it, configured and checked,
//! the file's upgrade, its commit mark and its check at open.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, MAIN_DB};
use userstate::storage::{
    check_private, check_private_if_present, create_private_file, CheckAtOpen, CommitMark,
    Durability, Loss, Recorded, CHECK_EVERYTHING_UP_TO,
};
use userstate::{Error, Result, Timestamp};

use crate::error::{at, from_sqlite};
use crate::format;
use crate::layout::{COMMITTED, RECORD_LOSS};
use crate::options::SqliteOptions;
use crate::record;
use crate::verify;

/// Statements each connection keeps prepared; more than the adapter uses.
const STATEMENT_CACHE: usize = 32;

/// The writer's connection to a checked file, and its commit mark.
pub(crate) struct Opened {
    pub(crate) conn: Connection,
    pub(crate) committed: u64,
    pub(crate) mark: CommitMark,
}

/// The commit mark of the database at `path`, beside it as SQLite's own
/// `-wal` and `-shm` are.
pub(crate) fn mark_path(path: &Path) -> PathBuf {
    beside(path, "-commits")
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The connection the writer owns: the file checked, switched to WAL, set
/// to the chosen durability, upgraded to the current format, compared with
/// its commit mark and checked as `options.check_at_open` says.
///
/// # Errors
/// See [`SqliteOptions::open`].
pub(crate) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Opened> {
    let created = prepare(path, options).map_err(|e| at(path, e))?;
    let conn = connect(path, options).map_err(|e| at(path, e))?;
    match check_and_upgrade(&conn, path, options, created) {
        Ok((committed, mark)) => Ok(Opened {
            conn,
            committed,
            mark,
        }),
        Err(e) => {
            // The last connection to close checkpoints the log into the
            // file and removes it: not of a file that is refused, whose
            // log may hold what SQLite could not read.
            let _ = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true);
            Err(at(path, e))
        }
    }
}

/// Everything an open checks and does before the file is used, in an
/// order that writes nothing to a file it refuses.
fn check_and_upgrade(
    conn: &Connection,
    path: &Path,
    options: &SqliteOptions,
    created: bool,
) -> Result<(u64, CommitMark)> {
    if conn.is_readonly(MAIN_DB).map_err(from_sqlite)? {
        return Err(read_only(path));
    }
    // Before anything writes: a foreign, newer or empty file stays as it was.
    format::refuse_unknown(conn, created)?;
    let check = resolve(options.check_at_open, path)?;
    if !created && check != CheckAtOpen::Nothing {
        verify::structure(conn)?;
    }
    enable_wal(conn, options.busy_timeout)?;
    let synchronous = match options.durability {
        Durability::Durable => "FULL",
        Durability::Relaxed => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(from_sqlite)?;
    format::upgrade(conn, created)?;
    // The mark before the count: another process's commit in between then
    // raises only the count.
    let mark_path = mark_path(path);
    let recorded = Recorded::read(&mark_path)?;
    let committed: i64 = conn
        .query_row(COMMITTED, [], |row| row.get(0))
        .map_err(from_sqlite)?;
    let committed = record::from_column(committed)?;
    // Nothing is written before a loss, or the check at open, refuses.
    recorded.check(&mark_path, committed, options.accept_loss)?;
    if !created && check == CheckAtOpen::Everything {
        let verification = verify::everything(conn)?;
        if let Some(first) = verification.findings.first() {
            return Err(Error::corrupt(format!(
                "the database failed its check at open ({} problems; the first: {first}); \
                 nothing was changed. Restore it from a backup, or open it with \
                 CheckAtOpen::Structure to serve what is sound, reads that meet the damage \
                 answering USER-CORRUPT",
                verification.findings.len()
            )));
        }
    }
    let (mark, loss) =
        CommitMark::open_as_read(&mark_path, recorded, committed, options.accept_loss)?;
    if let Some(loss) = loss {
        record_loss(conn, loss)?;
    }
    Ok((committed, mark))
}

/// Readies the path for SQLite and tells whether the file is new: an
/// existing one must be a private regular file, not empty; a missing one
/// is created owner-only when allowed and when nothing of a database is
/// left beside it.
fn prepare(path: &Path, options: &SqliteOptions) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => Err(Error::unavailable(
            "is a directory, not a database file".to_owned(),
        )),
        Ok(metadata) => {
            check_private(path)?;
            for companion in ["-wal", "-shm"] {
                check_private_if_present(&beside(path, companion))?;
            }
            if metadata.len() == 0 {
                return Err(Error::corrupt(
                    "the file is empty: a failed copy or a full disk leaves one, and \
                     adopting it would start a new database where one was; nothing was \
                     written. Restore the file, or remove it to start a new database",
                ));
            }
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let left: Vec<String> = ["-wal", "-commits"]
                .into_iter()
                .map(|suffix| beside(path, suffix))
                .filter(|companion| companion.symlink_metadata().is_ok())
                .map(|companion| companion.display().to_string())
                .collect();
            if !left.is_empty() {
                return Err(Error::corrupt(format!(
                    "the database file is missing, but {} of it is still there: it was \
                     removed or moved, and a new one would start where it was; nothing was \
                     written. Restore the file, or remove what is left of it to start a new \
                     database",
                    left.join(" and ")
                )));
            }
            if !options.create_if_missing {
                return Err(Error::unavailable(
                    "no database file is there, and the options do not create one",
                ));
            }
            drop(create_private_file(path)?);
            Ok(true)
        }
        Err(e) => Err(Error::unavailable(format!("cannot inspect the file: {e}")).with_source(e)),
    }
}

/// A connection to the existing file: never created by SQLite (the
/// adapter creates it, private), never through a symbolic link, never
/// parsed as a `file:` URI.
fn connect(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(path, flags).map_err(from_sqlite)?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(from_sqlite)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// SQLite opened the file read-only, as it does when it cannot open it for
/// writing: says why, as the system tells it.
fn read_only(path: &Path) -> Error {
    let reason = match fs::OpenOptions::new().write(true).open(path) {
        Err(e) => e.to_string(),
        Ok(_) => "SQLite opened it read-only".to_owned(),
    };
    Error::unavailable(format!(
        "cannot be written ({reason}); a database is opened for reading and writing"
    ))
}

/// What [`CheckAtOpen::Auto`] means for this file.
fn resolve(check: CheckAtOpen, path: &Path) -> Result<CheckAtOpen> {
    if check != CheckAtOpen::Auto {
        return Ok(check);
    }
    let size = |path: &Path| fs::metadata(path).map_or(0, |m| m.len());
    let total = size(path) + size(&beside(path, "-wal"));
    Ok(if total <= CHECK_EVERYTHING_UP_TO {
        CheckAtOpen::Everything
    } else {
        CheckAtOpen::Structure
    })
}

/// Records in the `losses` table that the open accepted `loss`.
fn record_loss(conn: &Connection, loss: Loss) -> Result<()> {
    let expected = loss.expected.map(record::to_column).transpose()?;
    let found = record::to_column(loss.found)?;
    conn.execute(
        RECORD_LOSS,
        rusqlite::params![Timestamp::now().unix_millis(), expected, found],
    )
    .map(|_| ())
    .map_err(from_sqlite)
}

/// A read-only connection to a file the writer has already opened and
/// checked.
///
/// # Errors
/// Unavailable when the file cannot be opened; Internal otherwise.
pub(crate) fn open_reader(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    // Read-write flags but `query_only`: a WAL reader needs write access to
    // the shared-memory index.
    let conn = connect(path, options).map_err(|e| at(path, e))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(from_sqlite)?;
    Ok(conn)
}

/// Switches the file to write-ahead logging: readers never block the writer
/// nor it them, and a commit is one append (and one fsync) to the log.
///
/// Changing the journal mode may report SQLITE_BUSY at once while another
/// process holds the file, without waiting on the busy handler, so it is
/// retried here until the busy timeout.
///
/// # Errors
/// Unavailable when the file stays busy; Internal when the file system does
/// not support WAL (the guarantees of this adapter rest on it).
fn enable_wal(conn: &Connection, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        let mode = conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        });
        match mode {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok(mode) => {
                return Err(Error::internal(format!(
                    "the database cannot use write-ahead logging (journal mode stays {mode})"
                )))
            }
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(from_sqlite(e)),
        }
    }
}
