//! The writer: one thread that owns the write connection and commits the
//! appends sent to it, several to a transaction (group commit).
//!
//! Appends arrive over a channel and are answered on oneshots, so no caller's
//! executor ever blocks on SQLite. When the writer becomes free it takes every
//! append already queued (up to the batch limit, never waiting for more, so a
//! lone caller pays no added latency) and runs them in ONE `BEGIN IMMEDIATE`
//! transaction: each under its own SAVEPOINT with its own optimistic check
//! and its own outcome, so a failing append leaves its neighbours untouched.
//! Every caller is answered after the shared COMMIT returned, that is after
//! its one fsync in durable mode.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use futures::channel::oneshot;
use rusqlite::{params, Connection, OptionalExtension};
use userstate::{Error, Result};

use crate::codec::EncodedCommit;
use crate::reader::ReadJob;
use crate::sqlite_error::{from_sqlite, is_key_violation, worker_stopped};
use crate::stats::Counters;

/// The answer to one append.
pub(crate) type AppendAnswer = oneshot::Receiver<Result<()>>;

/// Work for the writer thread.
enum Job {
    /// Store a commit and answer on `reply`.
    Append {
        commit: EncodedCommit,
        reply: oneshot::Sender<Result<()>>,
    },
    /// Run a read on the write connection (in-memory databases only, which
    /// have no other connection).
    Read(ReadJob),
}

/// The handle to the writer thread. Dropping it lets the thread finish the
/// queued work and waits for it, which closes the connection.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    ///
    /// # Errors
    /// Internal when the thread cannot be spawned.
    pub(crate) fn spawn(
        conn: Connection,
        max_batch: usize,
        counters: Arc<Counters>,
    ) -> Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("userstate-sqlite-writer".to_owned())
            .spawn(move || serve(&conn, &queue, max_batch.max(1), &counters))
            .map_err(|e| Error::internal("cannot spawn the SQLite writer thread").with_source(e))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Queues `commit`; the answer arrives once its transaction committed
    /// (or it failed).
    ///
    /// # Errors
    /// Internal when the writer thread has stopped.
    pub(crate) fn append(&self, commit: EncodedCommit) -> Result<AppendAnswer> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Append { commit, reply })?;
        Ok(answer)
    }

    /// Queues a read on the write connection.
    ///
    /// # Errors
    /// Internal when the writer thread has stopped.
    pub(crate) fn read(&self, job: ReadJob) -> Result<()> {
        self.send(Job::Read(job))
    }

    fn send(&self, job: Job) -> Result<()> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| worker_stopped("writer"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread's loop once the queue is empty.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != thread::current().id() {
                // A panic there has already answered its callers with an error.
                let _ = thread.join();
            }
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Append { commit, .. } => f.debug_tuple("Append").field(commit).finish(),
            Job::Read(_) => f.write_str("Read"),
        }
    }
}

/// The writer thread's loop: wait for work, take what else is queued, commit
/// the appends together, then run the reads.
fn serve(conn: &Connection, queue: &Receiver<Job>, max_batch: usize, counters: &Counters) {
    let mut appends = Vec::with_capacity(max_batch);
    let mut reads = Vec::new();
    while let Ok(first) = queue.recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append { commit, reply } => appends.push((commit, reply)),
                Job::Read(read) => reads.push(read),
            }
            if appends.len() < max_batch && reads.len() < max_batch {
                next = queue.try_recv().ok();
            }
        }
        if !appends.is_empty() {
            commit_batch(conn, &mut appends, counters);
        }
        // After the commit, so a read never sees a write that might still fail.
        for read in reads.drain(..) {
            read(conn);
        }
    }
}

/// Runs `batch` in one transaction and answers every caller.
fn commit_batch(
    conn: &Connection,
    batch: &mut Vec<(EncodedCommit, oneshot::Sender<Result<()>>)>,
    counters: &Counters,
) {
    let (outcomes, committed) = run_batch(conn, batch.iter().map(|(commit, _)| commit));
    let conflicts = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(e) if e.is_conflict()))
        .count();
    counters.record_batch(batch.len() as u64, conflicts as u64, committed);
    let mut outcomes = outcomes.into_iter();
    for (_, reply) in batch.drain(..) {
        let outcome = outcomes
            .next()
            .unwrap_or_else(|| Err(Error::internal("the writer lost an answer")));
        // A caller that stopped waiting does not need its answer.
        let _ = reply.send(outcome);
    }
}

/// Applies each commit under its own savepoint inside one transaction and
/// commits. Returns each commit's outcome, in order, and whether the
/// transaction committed.
fn run_batch<'a>(
    conn: &Connection,
    commits: impl ExactSizeIterator<Item = &'a EncodedCommit>,
) -> (Vec<Result<()>>, bool) {
    let size = commits.len();
    let everyone = |error: Error| (vec![Err(error); size], false);
    if !conn.is_autocommit() {
        // Never commit into a transaction an earlier failure left open.
        let _ = execute(conn, "ROLLBACK");
    }
    // IMMEDIATE: the write lock is taken now, so every check below runs
    // under it, against every other connection and process.
    if let Err(error) = execute(conn, "BEGIN IMMEDIATE") {
        return everyone(error);
    }
    let mut outcomes = Vec::with_capacity(size);
    for commit in commits {
        let outcome = apply(conn, commit);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (an I/O error, a full
            // disk): nothing of this batch is stored.
            let error = outcome
                .err()
                .unwrap_or_else(|| Error::internal("the write transaction was rolled back"));
            return everyone(error);
        }
        outcomes.push(outcome);
    }
    match execute(conn, "COMMIT") {
        Ok(()) => (outcomes, true),
        Err(error) => {
            let _ = execute(conn, "ROLLBACK");
            // Appends that had failed on their own keep their own error.
            let outcomes = outcomes
                .into_iter()
                .map(|outcome| outcome.and(Err(error.clone())))
                .collect();
            (outcomes, false)
        }
    }
}

/// One commit inside the batch's transaction: the optimistic check, then its
/// events and snapshot under a savepoint that is rolled back if any of them
/// fails.
fn apply(conn: &Connection, commit: &EncodedCommit) -> Result<()> {
    let stored = stored_sequence(conn, &commit.user_id)?;
    if stored != commit.expected_sequence {
        return Err(conflict(commit, stored));
    }
    execute(conn, "SAVEPOINT command")?;
    let written = write(conn, commit).and_then(|()| execute(conn, "RELEASE command"));
    if written.is_err() {
        let undone =
            execute(conn, "ROLLBACK TO command").and_then(|()| execute(conn, "RELEASE command"));
        if undone.is_err() {
            // The batch cannot be trusted any more: end it, which fails every
            // append in it rather than committing a half-written one.
            let _ = execute(conn, "ROLLBACK");
        }
    }
    written
}

/// Inserts the events and writes the snapshot of a commit whose check passed.
fn write(conn: &Connection, commit: &EncodedCommit) -> Result<()> {
    let user = commit.user_id.as_str();
    let mut insert_event = conn
        .prepare_cached(
            "INSERT INTO events (user_id, sequence, org, event_type, created_at, creator, payload)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(from_sqlite)?;
    for event in &commit.events {
        insert_event
            .execute(params![
                user,
                event.sequence,
                event.org,
                event.event_type,
                event.created_at,
                event.creator,
                event.payload,
            ])
            .map_err(|e| key_conflict(conn, commit, e))?;
    }
    if commit.expected_sequence == 0 {
        conn.prepare_cached(
            "INSERT INTO users (id, org, state, sequence, snapshot) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut insert| {
            insert.execute(params![
                user,
                commit.org,
                commit.state,
                commit.sequence,
                commit.snapshot,
            ])
        })
        .map_err(|e| key_conflict(conn, commit, e))?;
    } else {
        let updated = conn
            .prepare_cached(
                "UPDATE users SET org = ?2, state = ?3, sequence = ?4, snapshot = ?5
                 WHERE id = ?1 AND sequence = ?6",
            )
            .and_then(|mut update| {
                update.execute(params![
                    user,
                    commit.org,
                    commit.state,
                    commit.sequence,
                    commit.snapshot,
                    commit.expected_sequence,
                ])
            })
            .map_err(from_sqlite)?;
        if updated != 1 {
            return Err(conflict(commit, current_sequence(conn, user)));
        }
    }
    Ok(())
}

/// The user's stored sequence; 0 if it was never created.
fn stored_sequence(conn: &Connection, user: &str) -> Result<i64> {
    conn.prepare_cached("SELECT sequence FROM users WHERE id = ?1")
        .and_then(|mut select| select.query_row([user], |row| row.get(0)).optional())
        .map(Option::unwrap_or_default)
        .map_err(from_sqlite)
}

/// The highest sequence stored for `user` in either table, for the message
/// of a conflict found by a key rather than by the check.
fn current_sequence(conn: &Connection, user: &str) -> i64 {
    conn.query_row(
        "SELECT max(coalesce((SELECT sequence FROM users WHERE id = ?1), 0),
                    coalesce((SELECT max(sequence) FROM events WHERE user_id = ?1), 0))",
        [user],
        |row| row.get(0),
    )
    .unwrap_or_default()
}

/// A key violation means another writer stored this sequence first: the
/// last line of defence behind the check, recognised by SQLite's extended
/// result code.
fn key_conflict(conn: &Connection, commit: &EncodedCommit, error: rusqlite::Error) -> Error {
    if is_key_violation(&error) {
        conflict(commit, current_sequence(conn, &commit.user_id))
    } else {
        from_sqlite(error)
    }
}

fn conflict(commit: &EncodedCommit, actual: i64) -> Error {
    let as_sequence = |value: i64| u64::try_from(value).unwrap_or_default();
    Error::conflict(as_sequence(commit.expected_sequence), as_sequence(actual))
}

/// Runs a statement without parameters or results, prepared once per connection.
fn execute(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
        .map_err(from_sqlite)
}
