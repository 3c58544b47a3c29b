//! The write side of the engine: a batch of updates in one `BEGIN IMMEDIATE`
//! transaction, each decided on the user as read inside it and, when the
//! batch holds more than one, under its own savepoint with its own outcome.
//! [`GroupCommit`](userstate::storage::GroupCommit) forms the batches; every
//! caller is answered after the shared COMMIT returned, that is after its one
//! fsync in durable mode.

use rusqlite::{params, Connection};
use userstate::storage::{BatchWriter, Commit, Decision, Update};
use userstate::{Error, Result, User};

use crate::error::{from_sqlite, is_key_violation};
use crate::layout::{INSERT_EVENT, INSERT_USER, UPDATE_USER};
use crate::reader;
use crate::record;

/// The write connection, owned by whoever leads the current batch.
#[derive(Debug)]
pub(crate) struct Writer {
    conn: Connection,
}

impl Writer {
    pub(crate) fn new(conn: Connection) -> Self {
        Writer { conn }
    }

    /// Forces every committed transaction to the device: a checkpoint
    /// syncs the write-ahead log, then copies it into the database file and
    /// syncs that.
    ///
    /// # Errors
    /// Unavailable when readers kept the checkpoint from finishing within the
    /// busy timeout; Internal for other failures.
    pub(crate) fn sync(&mut self) -> Result<()> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |row| row.get(0))
            .map_err(from_sqlite)?;
        if busy == 0 {
            Ok(())
        } else {
            Err(Error::unavailable(
                "readers kept the checkpoint from finishing past the busy timeout",
            ))
        }
    }
}

impl BatchWriter for Writer {
    fn commit(&mut self, batch: Vec<Update>) -> Vec<Result<User>> {
        let conn = &self.conn;
        let size = batch.len();
        let everyone = |error: Error| vec![Err(error); size];
        let transaction = match Transaction::begin(conn) {
            Ok(transaction) => transaction,
            Err(error) => return everyone(error),
        };
        // A lone update needs no savepoint: if it fails, the whole
        // transaction is rolled back, which is just it.
        let isolate = size > 1;
        let mut outcomes = Vec::with_capacity(size);
        for update in batch {
            let outcome = if isolate {
                in_savepoint(conn, || apply(conn, update))
            } else {
                apply(conn, update)
            };
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (an I/O error, a
                // full disk): nothing of this batch is stored.
                let error = outcome
                    .err()
                    .unwrap_or_else(|| Error::internal("the write transaction was rolled back"));
                return everyone(error);
            }
            if !isolate && outcome.is_err() {
                // Dropping the transaction rolls it back.
                return vec![outcome];
            }
            outcomes.push(outcome);
        }
        match transaction.commit() {
            Ok(()) => outcomes,
            // Writes that had failed on their own keep their own error.
            Err(error) => outcomes
                .into_iter()
                .map(|outcome| outcome.and(Err(error.clone())))
                .collect(),
        }
    }
}

/// One update inside the batch's transaction: the user as this transaction
/// sees it (earlier updates of the batch included), the decision on it, and
/// what it decided. Returns the user after it.
fn apply(conn: &Connection, update: Update) -> Result<User> {
    let stored = reader::load(conn, update.id())?;
    match update.decide(stored)? {
        Decision::Unchanged(user) => Ok(user),
        Decision::Write(commit) => write(conn, commit),
    }
}

/// Inserts the events and writes the snapshot of a commit decided on the
/// user as read under the write lock.
fn write(conn: &Connection, commit: Commit) -> Result<User> {
    let expected_sequence = commit.expected_sequence();
    let (events, snapshot) = commit.into_parts();
    let user = snapshot.id.as_str();
    let mut insert = conn.prepare_cached(INSERT_EVENT).map_err(from_sqlite)?;
    for event in &events {
        let row = record::encode_event(event)?;
        insert
            .execute(params![
                user,
                row.sequence,
                row.org,
                row.event_type,
                row.created_at,
                row.creator,
                row.payload,
            ])
            .map_err(|e| {
                if is_key_violation(&e) {
                    // Read under the write lock, the snapshot said this
                    // sequence was free: the history runs ahead of it.
                    Error::corrupt(format!("user {user} has stored events beyond its snapshot"))
                        .with_source(e)
                } else {
                    from_sqlite(e)
                }
            })?;
    }
    let row = record::encode_user(&snapshot)?;
    let statement = if expected_sequence == 0 {
        INSERT_USER
    } else {
        UPDATE_USER
    };
    let written = conn
        .prepare_cached(statement)
        .and_then(|mut write| {
            write.execute(params![
                row.id,
                row.org,
                row.state,
                row.sequence,
                row.snapshot
            ])
        })
        .map_err(from_sqlite)?;
    if written != 1 {
        return Err(Error::internal(format!(
            "the row of user {user} was not where the writer read it"
        )));
    }
    Ok(snapshot)
}

/// Runs `write` under a savepoint that is rolled back if it fails, so its
/// neighbours in the batch keep their writes.
fn in_savepoint(conn: &Connection, write: impl FnOnce() -> Result<User>) -> Result<User> {
    execute(conn, "SAVEPOINT command")?;
    let written = write().and_then(|user| execute(conn, "RELEASE command").map(|()| user));
    if written.is_err() {
        let undone =
            execute(conn, "ROLLBACK TO command").and_then(|()| execute(conn, "RELEASE command"));
        if undone.is_err() {
            // The batch cannot be trusted any more: end it, which fails every
            // write in it rather than committing a half-written one.
            let _ = execute(conn, "ROLLBACK");
        }
    }
    written
}

/// The batch's transaction: rolled back when dropped uncommitted, also while
/// a panic unwinds, so SQLite's write lock is never left held.
struct Transaction<'c> {
    conn: &'c Connection,
}

impl<'c> Transaction<'c> {
    /// Takes SQLite's write lock now (IMMEDIATE), so every read and decision
    /// of the batch runs under it, against every other connection and process.
    fn begin(conn: &'c Connection) -> Result<Self> {
        if !conn.is_autocommit() {
            // Never commit into a transaction an earlier failure left open.
            let _ = execute(conn, "ROLLBACK");
        }
        execute(conn, "BEGIN IMMEDIATE")?;
        Ok(Transaction { conn })
    }

    fn commit(self) -> Result<()> {
        // On failure, the drop below rolls back.
        execute(self.conn, "COMMIT")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.conn.is_autocommit() {
            let _ = execute(self.conn, "ROLLBACK");
        }
    }
}

/// Runs a statement without parameters or results, prepared once per connection.
fn execute(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
        .map_err(from_sqlite)
}
