//! Which format a file is in: its version in `PRAGMA user_version`, the
//! checks that refuse files this library does not know before anything
//! writes to them, and the upgrades from earlier versions, each one
//! transaction.
//!
//! | version | written by | records |
//! |---|---|---|
//! | 1 | 0.1.0 | the core types' JSON ([`record::v1`]) |
//! | 2 | (development) | the adapter's own records ([`crate::record`]) |
//! | 3 | this release | the same, with a checksum per row and the count of committed events |

use rusqlite::{params, Connection};
use userstate::{Error, Result, UserId};

use crate::error::from_sqlite;
use crate::layout;
use crate::record::{self, v1, EventRow, UserRow};

/// `PRAGMA application_id` of a userstate database ("usst"): tells our files
/// from other applications' SQLite databases.
pub(crate) const APPLICATION_ID: i32 = 0x7573_7374;

/// Step `i` brings a database at version `i` to version `i + 1`.
const UPGRADES: &[fn(&Connection) -> Result<()>] = &[
    create_tables,
    records_of_format_2,
    checksums_of_format_3,
    positions_of_format_4,
];

/// The schema version this library writes.
pub(crate) const SCHEMA_VERSION: i64 = UPGRADES.len() as i64;

/// Rows an upgrade rewrites per statement round, so memory stays bounded
/// whatever the size of the database.
const UPGRADE_CHUNK: i64 = 1000;

/// What an opened file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// An empty database: no schema objects, no ids. Only a file this
    /// library has just created may be one; any other is refused.
    Empty,
    /// A userstate database at this schema version (1 to [`SCHEMA_VERSION`]).
    Version(i64),
}

/// Reads the file's identity without writing. An empty database is one
/// only when the library has just `created` its file: any other (an empty
/// file from a failed copy, another application's file with no tables
/// left) is refused rather than adopted.
///
/// # Errors
/// Corrupt for a file that is not a SQLite database, an empty one not
/// created here, a database of another application, or a schema version
/// this library does not know.
fn inspect(conn: &Connection, created: bool) -> Result<Found> {
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
        (0, 0) if objects == 0 && created => Ok(Found::Empty),
        (0, 0) if objects == 0 => Err(Error::corrupt(
            "the file is empty, or an empty SQLite database, but was not created by this \
             library: a failed copy or a full disk leaves one, and adopting it would start \
             a new database where one was; nothing was written. Restore the file, or remove \
             it to start a new database",
        )),
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
pub(crate) fn refuse_unknown(conn: &Connection, created: bool) -> Result<()> {
    inspect(conn, created).map(|_| ())
}

/// Brings the database to [`SCHEMA_VERSION`], creating it when empty, in
/// one transaction: under the write lock (BEGIN IMMEDIATE), looking again
/// there, so two processes opening one file upgrade it once, and a failed
/// or interrupted upgrade leaves the file as it was.
///
/// # Errors
/// As [`inspect`]; Unavailable when the write lock stays taken past the busy
/// timeout; Corrupt when a stored row does not decode in its old format
/// (the file is left as it was); Internal for other failures.
pub(crate) fn upgrade(conn: &Connection, created: bool) -> Result<()> {
    if inspect(conn, created)? == Found::Version(SCHEMA_VERSION) {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(from_sqlite)?;
    let upgraded = inspect(conn, created).and_then(|found| {
        let from = match found {
            Found::Empty => {
                conn.pragma_update(None, "application_id", APPLICATION_ID)
                    .map_err(from_sqlite)?;
                0
            }
            Found::Version(version) => version,
        };
        for (step, to) in UPGRADES
            .iter()
            .zip(1..)
            .skip(usize::try_from(from).unwrap_or(0))
        {
            step(conn).map_err(|e| refused_upgrade(from, e))?;
            conn.pragma_update(None, "user_version", to)
                .map_err(from_sqlite)?;
        }
        Ok(())
    });
    match upgraded {
        Ok(()) => conn.execute_batch("COMMIT").map_err(from_sqlite),
        Err(e) => {
            // The failure is what the caller needs to see; a failed rollback
            // is undone by SQLite when the connection closes.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// An upgrade that stopped at stored data it cannot read: says so, and that
/// nothing changed. Other failures (a busy or full disk) keep their kind.
fn refused_upgrade(from: i64, error: Error) -> Error {
    if error.id() != userstate::ids::CORRUPT {
        return error;
    }
    Error::corrupt(format!(
        "cannot upgrade the database from schema version {from} to {SCHEMA_VERSION}: {}; \
         the file is unchanged: restore the row from a backup, or open the file with \
         the release that wrote it and remove the user",
        error.message()
    ))
    .with_source(error)
}

/// Version 1: the tables and indexes.
fn create_tables(conn: &Connection) -> Result<()> {
    conn.execute_batch(layout::TABLES).map_err(from_sqlite)
}

/// Version 2: every snapshot and payload rewritten from the core types'
/// JSON into the adapter's own records. The tables stay as they are.
fn records_of_format_2(conn: &Connection) -> Result<()> {
    let mut after = String::new();
    loop {
        let rows = users_after(conn, &after)?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.id.clone();
        for row in &rows {
            let user = v1::decode_user(row)?;
            let snapshot = record::encode_user(&user)?.snapshot;
            conn.prepare_cached("UPDATE users SET snapshot = ?2 WHERE id = ?1")
                .and_then(|mut update| update.execute(params![row.id, snapshot]))
                .map_err(from_sqlite)?;
            payloads_of_format_2(conn, &user.id)?;
        }
    }
}

/// The payloads of one user's events, rewritten into format 2.
fn payloads_of_format_2(conn: &Connection, user: &UserId) -> Result<()> {
    let mut after = 0i64;
    loop {
        let rows = events_after(conn, user, after)?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.sequence;
        for row in &rows {
            let payload = v1::decode_payload(&row.event_type, &row.payload).map_err(|e| {
                Error::corrupt(format!(
                    "the format-1 event {} of user {user} cannot be decoded",
                    row.sequence
                ))
                .with_source(e)
            })?;
            let (event_type, payload) = record::encode_payload(&payload)?;
            conn.prepare_cached(
                "UPDATE events SET event_type = ?3, payload = ?4
                 WHERE user_id = ?1 AND sequence = ?2",
            )
            .and_then(|mut update| {
                update.execute(params![user.as_str(), row.sequence, event_type, payload])
            })
            .map_err(from_sqlite)?;
        }
    }
}

/// Version 3: a checksum on every row, checked whenever the row is read,
/// so that a flipped bit inside a value is found rather than served; the
/// count of committed events, which the commit mark is compared with; the
/// table of losses an operator accepted. Every row is decoded before its
/// checksum is written, so damage is not sealed in.
fn checksums_of_format_3(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "ALTER TABLE users ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE events ADD COLUMN checksum INTEGER NOT NULL DEFAULT 0;
         CREATE TABLE meta (
             key   TEXT    NOT NULL PRIMARY KEY,
             value INTEGER NOT NULL
         ) STRICT, WITHOUT ROWID;
         CREATE TABLE losses (
             accepted_at INTEGER NOT NULL,
             expected    INTEGER,
             found       INTEGER NOT NULL
         ) STRICT;",
    )
    .map_err(from_sqlite)?;
    let mut after = String::new();
    let mut events = 0i64;
    loop {
        let rows = users_after(conn, &after)?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.id.clone();
        for row in &rows {
            let user = record::decode_user_fields(row)?;
            let checksum = record::user_checksum(row);
            conn.prepare_cached("UPDATE users SET checksum = ?2 WHERE id = ?1")
                .and_then(|mut update| update.execute(params![row.id, checksum]))
                .map_err(from_sqlite)?;
            let mut sequence = 0;
            loop {
                let rows = events_after(conn, &user.id, sequence)?;
                let Some(last) = rows.last() else {
                    break;
                };
                sequence = last.sequence;
                for row in &rows {
                    record::decode_event_fields(&user.id, row)?;
                    let checksum = record::event_checksum(row);
                    conn.prepare_cached(
                        "UPDATE events SET checksum = ?3 WHERE user_id = ?1 AND sequence = ?2",
                    )
                    .and_then(|mut update| {
                        update.execute(params![row.user_id, row.sequence, checksum])
                    })
                    .map_err(from_sqlite)?;
                    events += 1;
                }
            }
        }
    }
    let all: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .map_err(from_sqlite)?;
    if all != events {
        return Err(Error::corrupt(format!(
            "{} stored events belong to no stored user",
            all - events
        )));
    }
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('committed_events', ?1)",
        [events],
    )
    .map_err(from_sqlite)?;
    Ok(())
}

/// A chunk of `users` rows after `after`, as every format stores them (the
/// checksum, where there is one, is left out).
fn users_after(conn: &Connection, after: &str) -> Result<Vec<UserRow>> {
    conn.prepare_cached(
        "SELECT id, org, state, sequence, snapshot FROM users WHERE id > ?1 ORDER BY id LIMIT ?2",
    )
    .and_then(|mut select| {
        select
            .query_map(params![after, UPGRADE_CHUNK], |row| {
                Ok(UserRow {
                    id: row.get(0)?,
                    org: row.get(1)?,
                    state: row.get(2)?,
                    sequence: row.get(3)?,
                    snapshot: row.get(4)?,
                    checksum: 0,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(from_sqlite)
}

/// Version 4: a feed position on every event, unique and covered by the
/// row's checksum, and the table of stored lockout policies. Events already stored get positions in the order they
/// were written (by time, then user and sequence, so each user's events
/// keep their order); each row's checksum is checked before it is
/// rewritten, so damage is not sealed in.
fn positions_of_format_4(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "ALTER TABLE events ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
         UPDATE events SET position = ranked.n
         FROM (SELECT user_id, sequence,
                      ROW_NUMBER() OVER (ORDER BY created_at, user_id, sequence) AS n
               FROM events) AS ranked
         WHERE events.user_id = ranked.user_id AND events.sequence = ranked.sequence;
         CREATE UNIQUE INDEX events_by_position ON events (position);
         CREATE TABLE policies (
             org      TEXT    NOT NULL PRIMARY KEY,
             record   TEXT    NOT NULL,
             checksum INTEGER NOT NULL
         ) STRICT, WITHOUT ROWID;",
    )
    .map_err(from_sqlite)?;
    let mut after = 0i64;
    loop {
        let rows = conn
            .prepare_cached(layout::FEED)
            .and_then(|mut select| {
                select
                    .query_map(params![after, UPGRADE_CHUNK], crate::reader::event_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(from_sqlite)?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = last.position;
        for row in &rows {
            let user = UserId::from_stored(row.user_id.as_str())?;
            let unpositioned = EventRow {
                position: 0,
                ..row.clone()
            };
            record::decode_event(&user, &unpositioned)?;
            let checksum = record::event_checksum(row);
            conn.prepare_cached(
                "UPDATE events SET checksum = ?3 WHERE user_id = ?1 AND sequence = ?2",
            )
            .and_then(|mut update| update.execute(params![row.user_id, row.sequence, checksum]))
            .map_err(from_sqlite)?;
        }
    }
}

/// A chunk of the `events` rows of `user` after `after`, as [`users_after`].
fn events_after(conn: &Connection, user: &UserId, after: i64) -> Result<Vec<EventRow>> {
    conn.prepare_cached(
        "SELECT user_id, sequence, org, event_type, created_at, creator, payload
         FROM events WHERE user_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
    )
    .and_then(|mut select| {
        select
            .query_map(params![user.as_str(), after, UPGRADE_CHUNK], |row| {
                Ok(EventRow {
                    user_id: row.get(0)?,
                    sequence: row.get(1)?,
                    org: row.get(2)?,
                    event_type: row.get(3)?,
                    created_at: row.get(4)?,
                    creator: row.get(5)?,
                    payload: row.get(6)?,
                    checksum: 0,
                    position: 0,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
    })
    .map_err(from_sqlite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_database_is_created_at_the_current_version_once() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(inspect(&conn, true).unwrap(), Found::Empty);
        upgrade(&conn, true).unwrap();
        assert_eq!(
            inspect(&conn, true).unwrap(),
            Found::Version(SCHEMA_VERSION)
        );
        upgrade(&conn, true).unwrap();
        assert_eq!(
            inspect(&conn, true).unwrap(),
            Found::Version(SCHEMA_VERSION)
        );
    }

    #[test]
    fn foreign_and_newer_databases_are_refused() {
        let foreign = Connection::open_in_memory().unwrap();
        foreign.execute_batch("CREATE TABLE t (x)").unwrap();
        let err = upgrade(&foreign, false).unwrap_err();
        assert_eq!(err.id(), userstate::ids::CORRUPT);
        assert!(err.message().contains("another application"), "{err}");

        let newer = Connection::open_in_memory().unwrap();
        upgrade(&newer, true).unwrap();
        newer.pragma_update(None, "user_version", 999).unwrap();
        let err = upgrade(&newer, false).unwrap_err();
        assert_eq!(err.id(), userstate::ids::CORRUPT);
        assert!(err.message().contains("999"), "{err}");
    }

    #[test]
    fn a_format_1_row_that_does_not_decode_stops_the_upgrade_and_changes_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        create_tables(&conn).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO users (id, org, state, sequence, snapshot) VALUES ('a', 'o', 'active', 1, '{')",
            [],
        )
        .unwrap();
        let err = upgrade(&conn, false).unwrap_err();
        assert_eq!(err.id(), userstate::ids::CORRUPT);
        assert!(err.message().contains("user a"), "{err}");
        assert!(err.message().contains("unchanged"), "{err}");
        assert_eq!(inspect(&conn, true).unwrap(), Found::Version(1));
        let snapshot: String = conn
            .query_row("SELECT snapshot FROM users", [], |row| row.get(0))
            .unwrap();
        assert_eq!(snapshot, "{");
    }
}
