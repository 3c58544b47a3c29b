//! The write side of the engine: a batch of updates in one `BEGIN IMMEDIATE`
//! transaction, each decided on the user as read inside it and, when the
//! batch holds more than one, under its own savepoint with its own outcome.
//! [`GroupCommit`](userstate::storage::GroupCommit) forms the batches; every
//! caller is answered after the shared COMMIT returned, that is after its one
//! fsync in durable mode.

use rusqlite::{params, Connection};
use std::sync::Arc;

use userstate::storage::{
    BatchWriter, Commit, CommitMark, Decision, Durability, FeedSignal, Update,
};
use userstate::{Error, Result, User};

use crate::error::{from_sqlite, is_key_violation};
use crate::layout::{
    ADD_COMMITTED, INSERT_EVENT, INSERT_USER, LAST_POSITION, SET_POLICY, UPDATE_USER,
};
use crate::reader;
use crate::record;

/// The write connection, owned by whoever leads the current batch, and the
/// count of committed events its commit mark records.
#[derive(Debug)]
pub(crate) struct Writer {
    conn: Connection,
    durability: Durability,
    /// Every event committed so far, as the `meta` table counted them in
    /// the last commit of this writer (other handles on the file add theirs).
    committed: u64,
    mark: CommitMark,
    /// Told the last feed position after each commit, for the waiting readers.
    signal: Arc<FeedSignal>,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        durability: Durability,
        committed: u64,
        mark: CommitMark,
        signal: Arc<FeedSignal>,
    ) -> Self {
        Writer {
            conn,
            durability,
            committed,
            mark,
            signal,
        }
    }

    /// Records in the commit mark what is durable now. A mark that cannot
    /// be written stays behind, which hides a later loss but never claims
    /// one: the commits themselves succeeded.
    fn mark_durable(&mut self) {
        let _ = self.mark.record(self.committed);
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
            self.mark_durable();
            Ok(())
        } else {
            Err(Error::unavailable(
                "readers kept the checkpoint from finishing past the busy timeout",
            ))
        }
    }
}

impl Writer {
    /// Stores `policy` as `org`'s (`None`: the instance default), in a
    /// transaction of its own, durable as commands are.
    ///
    /// # Errors
    /// As SQLite answers.
    pub(crate) fn set_policy(
        &mut self,
        org: Option<&userstate::OrgId>,
        policy: &userstate::StoredPolicy,
    ) -> Result<()> {
        let key = record::policy_key(org);
        let (stored, checksum) = record::encode_policy(key, policy)?;
        self.conn
            .prepare_cached(SET_POLICY)
            .and_then(|mut set| set.execute(params![key, stored, checksum]))
            .map_err(from_sqlite)?;
        Ok(())
    }
}

impl BatchWriter for Writer {
    fn commit(&mut self, batch: Vec<Update>) -> Vec<Result<User>> {
        let written = commit_batch(&self.conn, batch);
        if let Some(last) = written.last_position {
            self.signal.committed(last);
        }
        if let Some(committed) = written.committed {
            self.committed = committed;
            // A durable commit is on the device now; a relaxed one only
            // after a checkpoint, when `sync` records it.
            if self.durability == Durability::Durable {
                self.mark_durable();
            }
        }
        written.outcomes
    }
}

impl Drop for Writer {
    /// A relaxed database is made durable and marked as it closes.
    fn drop(&mut self) {
        if self.durability == Durability::Relaxed {
            let _ = self.sync();
        }
    }
}

/// What a batch did: each update's outcome, and the database's count of
/// committed events after it (`None` when it committed no event).
struct Written {
    outcomes: Vec<Result<User>>,
    committed: Option<u64>,
    /// The last feed position the batch wrote, once it committed.
    last_position: Option<u64>,
}

/// Runs `batch` in one transaction, each update under a savepoint when
/// there are several, and counts its events in `meta` before it commits.
fn commit_batch(conn: &Connection, batch: Vec<Update>) -> Written {
    let size = batch.len();
    let everyone = |error: Error| Written {
        outcomes: vec![Err(error); size],
        committed: None,
        last_position: None,
    };
    let transaction = match Transaction::begin(conn) {
        Ok(transaction) => transaction,
        Err(error) => return everyone(error),
    };
    // A lone update needs no savepoint: if it fails, the whole
    // transaction is rolled back, which is just it.
    let isolate = size > 1;
    let mut outcomes = Vec::with_capacity(size);
    let mut events = 0u64;
    let mut last_position = None;
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
            return Written {
                outcomes: vec![outcome.map(|(user, _)| user)],
                committed: None,
                last_position: None,
            };
        }
        if let Ok((_, written)) = &outcome {
            events += written.events;
            last_position = last_position.max(written.last_position);
        }
        outcomes.push(outcome.map(|(user, _)| user));
    }
    let counted = if events > 0 {
        add_committed(conn, events).map(Some)
    } else {
        Ok(None)
    };
    match counted.and_then(|committed| transaction.commit().map(|()| committed)) {
        Ok(committed) => Written {
            outcomes,
            committed,
            last_position,
        },
        // Writes that had failed on their own keep their own error.
        Err(error) => Written {
            outcomes: outcomes
                .into_iter()
                .map(|outcome| outcome.and(Err(error.clone())))
                .collect(),
            committed: None,
            last_position: None,
        },
    }
}

/// What one update wrote.
struct Wrote {
    events: u64,
    last_position: Option<u64>,
}

/// One update inside the batch's transaction: the user as this transaction
/// sees it (earlier updates of the batch included), the decision on it, and
/// what it decided. Returns the user after it and the events it wrote.
fn apply(conn: &Connection, update: Update) -> Result<(User, Wrote)> {
    let stored = reader::load(conn, update.id(), update.scope())?;
    let actor = match update.actor() {
        Some(actor) => reader::load(conn, &actor.user, &actor.scope())?,
        None => None,
    };
    match update.decide(stored, actor)? {
        Decision::Unchanged(user) => Ok((
            user,
            Wrote {
                events: 0,
                last_position: None,
            },
        )),
        Decision::Write(commit) => {
            let events = commit.events().len() as u64;
            write(conn, commit).map(|(user, last)| {
                (
                    user,
                    Wrote {
                        events,
                        last_position: Some(last),
                    },
                )
            })
        }
    }
}

/// Inserts the events at the next feed positions and writes the snapshot
/// of a commit decided on the user as read under the write lock. Returns
/// the user after it and the last position written.
fn write(conn: &Connection, commit: Commit) -> Result<(User, u64)> {
    let expected_sequence = commit.expected_sequence();
    let (events, snapshot) = commit.into_parts();
    let user = snapshot.id.as_str();
    // Under the write lock no other writer can take a position meanwhile.
    let mut position: u64 = conn
        .prepare_cached(LAST_POSITION)
        .and_then(|mut last| last.query_row([], |row| row.get::<_, i64>(0)))
        .map(|last| u64::try_from(last).unwrap_or(0))
        .map_err(from_sqlite)?;
    let mut insert = conn.prepare_cached(INSERT_EVENT).map_err(from_sqlite)?;
    for event in &events {
        position += 1;
        let row = record::encode_event_at(event, position)?;
        insert
            .execute(params![
                row.user_id,
                row.sequence,
                row.org,
                row.event_type,
                row.created_at,
                row.creator,
                row.payload,
                row.checksum,
                row.position,
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
                row.snapshot,
                row.checksum,
            ])
        })
        .map_err(from_sqlite)?;
    if written != 1 {
        return Err(Error::internal(format!(
            "the row of user {user} was not where the writer read it"
        )));
    }
    Ok((snapshot, position))
}

/// Runs `write` under a savepoint that is rolled back if it fails, so its
/// neighbours in the batch keep their writes.
fn in_savepoint<T>(conn: &Connection, write: impl FnOnce() -> Result<T>) -> Result<T> {
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

/// Adds `events` to the count in `meta`, returning the new count: exact
/// even while other handles write the file, as it is read under the lock.
fn add_committed(conn: &Connection, events: u64) -> Result<u64> {
    let events = record::to_column(events)?;
    let committed: i64 = conn
        .prepare_cached(ADD_COMMITTED)
        .and_then(|mut statement| statement.query_row([events], |row| row.get(0)))
        .map_err(from_sqlite)?;
    record::from_column(committed)
}

/// Runs a statement without parameters or results, prepared once per connection.
fn execute(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
        .map_err(from_sqlite)
}
