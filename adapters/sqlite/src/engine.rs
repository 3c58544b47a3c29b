//! How the engine is opened: the writer's and the readers' connections to
//! one file, configured and checked, and the file's upgrade at open.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};
use userstate::storage::Durability;
use userstate::{Error, Result};

use crate::error::from_sqlite;
use crate::format;
use crate::options::SqliteOptions;

/// Statements each connection keeps prepared; more than the adapter uses.
const STATEMENT_CACHE: usize = 32;

/// The connection the writer owns: checked, switched to WAL, set to the
/// chosen durability, upgraded to the current format.
///
/// # Errors
/// See [`SqliteOptions::open`].
pub(crate) fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    // No SQLITE_OPEN_URI: a path is a path, never parsed as `file:` options.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(from_sqlite)?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(from_sqlite)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Before anything writes: a foreign or newer file stays as it was.
    format::refuse_unknown(&conn)?;
    enable_wal(&conn, options.busy_timeout)?;
    let synchronous = match options.durability {
        Durability::Durable => "FULL",
        Durability::Relaxed => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(from_sqlite)?;
    format::upgrade(&conn)?;
    Ok(conn)
}

/// A read-only connection to a file the writer has already opened and
/// upgraded.
///
/// # Errors
/// Unavailable when the file cannot be opened; Internal otherwise.
pub(crate) fn open_reader(path: &Path, options: &SqliteOptions) -> Result<Connection> {
    // Read-write flags but `query_only`: a WAL reader needs write access to
    // the shared-memory index, and must not create the file.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(from_sqlite)?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(from_sqlite)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
