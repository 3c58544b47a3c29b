//! The on-disk format: tables and indexes, its version in `PRAGMA
//! user_version`, the forward migrations run at open, and the checks that
//! refuse files this library does not know before anything writes to them.

use rusqlite::Connection;
use userstate::{Error, Result};

use crate::sqlite_error::from_sqlite;

/// `PRAGMA application_id` of a userstate database ("usst"): tells our files
/// from other applications' SQLite databases.
pub(crate) const APPLICATION_ID: i32 = 0x7573_7374;

/// Version 1: a snapshot row per user and a row per event.
///
/// - `users` holds the snapshot (a cache of the replay of the user's events)
///   and the columns the writer's optimistic check (`sequence`) and the
///   lists (`org`, `state`) need.
/// - `users_by_org_state` serves "users of an organisation in a state, by id";
///   `users_by_org` serves "users of an organisation that exist, by id"
///   (partial: deleted users are not in it).
/// - `events` is keyed by (user, sequence): the last line of defence against
///   two writers appending the same sequence.
///
/// Tables are STRICT so a value of the wrong type cannot be stored, and
/// WITHOUT ROWID because they are looked up by their text keys.
const V1: &str = "
CREATE TABLE users (
    id       TEXT    NOT NULL PRIMARY KEY,
    org      TEXT    NOT NULL,
    state    TEXT    NOT NULL,
    sequence INTEGER NOT NULL CHECK (sequence > 0),
    snapshot TEXT    NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX users_by_org_state ON users (org, state, id);
CREATE INDEX users_by_org ON users (org, id) WHERE state <> 'deleted';
CREATE TABLE events (
    user_id    TEXT    NOT NULL,
    sequence   INTEGER NOT NULL CHECK (sequence > 0),
    org        TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    creator    TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    PRIMARY KEY (user_id, sequence)
) STRICT, WITHOUT ROWID;
";

/// Script `i` migrates a database at version `i` to version `i + 1`.
const MIGRATIONS: &[&str] = &[V1];

/// The schema version this library writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// What an opened file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// An empty database: no schema objects, no ids.
    Empty,
    /// A userstate database at this schema version (1 to [`SCHEMA_VERSION`]).
    Version(i64),
}

/// Reads the file's identity without writing.
///
/// # Errors
/// Corrupt for a file that is not a SQLite database, a database of another
/// application, or a schema version this library does not know.
fn inspect(conn: &Connection) -> Result<Found> {
    let application_id: i32 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(from_sqlite)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(from_sqlite)?;
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .map_err(from_sqlite)?;
    match (application_id, version) {
        (0, 0) if objects == 0 => Ok(Found::Empty),
        (APPLICATION_ID, 1..=SCHEMA_VERSION) => Ok(Found::Version(version)),
        (APPLICATION_ID, _) if version > SCHEMA_VERSION => Err(Error::corrupt(format!(
            "the database has schema version {version}, newer than the versions this \
             library knows (up to {SCHEMA_VERSION}); open it with a newer userstate-sqlite"
        ))),
        (APPLICATION_ID, _) => Err(Error::corrupt(format!(
            "the database has an invalid schema version {version}"
        ))),
        _ => Err(Error::corrupt(format!(
            "the file is a SQLite database of another application \
             (application id {application_id}, schema version {version}, {objects} schema objects)"
        ))),
    }
}

/// Refuses, without writing anything, a file this library must not touch.
///
/// # Errors
/// As [`inspect`].
pub(crate) fn refuse_unknown(conn: &Connection) -> Result<()> {
    inspect(conn).map(|_| ())
}

/// Brings the database to [`SCHEMA_VERSION`], creating it when empty. Runs
/// under the write lock (BEGIN IMMEDIATE) and looks again there, so two
/// processes opening one new file migrate it once.
///
/// # Errors
/// As [`inspect`]; Unavailable when the write lock stays taken past the busy
/// timeout; Internal when a migration fails (it is rolled back).
pub(crate) fn migrate(conn: &Connection) -> Result<()> {
    if inspect(conn)? == Found::Version(SCHEMA_VERSION) {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(from_sqlite)?;
    let migrated = inspect(conn).and_then(|found| {
        let from = match found {
            Found::Empty => {
                conn.pragma_update(None, "application_id", APPLICATION_ID)
                    .map_err(from_sqlite)?;
                0
            }
            Found::Version(version) => version,
        };
        for (script, to) in MIGRATIONS
            .iter()
            .zip(1..)
            .skip(usize::try_from(from).unwrap_or(0))
        {
            conn.execute_batch(script).map_err(from_sqlite)?;
            conn.pragma_update(None, "user_version", to)
                .map_err(from_sqlite)?;
        }
        Ok(())
    });
    match migrated {
        Ok(()) => conn.execute_batch("COMMIT").map_err(from_sqlite),
        Err(e) => {
            // The failure is what the caller needs to see; a failed rollback
            // is undone by SQLite when the connection closes.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_database_migrates_to_the_current_version_once() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Empty);
        migrate(&conn).unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Version(SCHEMA_VERSION));
        migrate(&conn).unwrap();
        assert_eq!(inspect(&conn).unwrap(), Found::Version(SCHEMA_VERSION));
    }

    #[test]
    fn foreign_and_newer_databases_are_refused() {
        let foreign = Connection::open_in_memory().unwrap();
        foreign.execute_batch("CREATE TABLE t (x)").unwrap();
        let err = migrate(&foreign).unwrap_err();
        assert_eq!(err.id(), userstate::ids::CORRUPT);
        assert!(err.message().contains("another application"), "{err}");

        let newer = Connection::open_in_memory().unwrap();
        migrate(&newer).unwrap();
        newer.pragma_update(None, "user_version", 999).unwrap();
        let err = migrate(&newer).unwrap_err();
        assert_eq!(err.id(), userstate::ids::CORRUPT);
        assert!(err.message().contains("999"), "{err}");
    }

    /// The lists must be served by their indexes, never a scan of all users.
    #[test]
    fn list_queries_use_their_indexes() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let unbound = std::iter::repeat_n("x", stmt.parameter_count());
            let rows = stmt
                .query_map(rusqlite::params_from_iter(unbound), |row| {
                    row.get::<_, String>(3)
                })
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            rows.join("; ")
        };
        let by_state = plan(crate::query::LIST_IN_STATE);
        assert!(
            by_state.contains("INDEX users_by_org_state ("),
            "{by_state}"
        );
        assert!(!by_state.contains("TEMP B-TREE"), "{by_state}");
        let existing = plan(crate::query::LIST_EXISTING);
        assert!(existing.contains("INDEX users_by_org ("), "{existing}");
        assert!(!existing.contains("TEMP B-TREE"), "{existing}");
        let history = plan(crate::query::HISTORY);
        assert!(history.contains("PRIMARY KEY"), "{history}");
    }
}
