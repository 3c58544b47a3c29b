//! The writer: one thread that holds the write connection and commits the
//! writes sent to it, several to a transaction (group commit).
//!
//! Writes arrive over a channel and are answered on oneshots, so no caller's
//! executor ever blocks on SQLite (unless the handle was opened with inline
//! writes: then a write that finds the connection free and nothing queued
//! runs as a batch of one on the caller's thread). A write is an append (a
//! commit decided elsewhere, checked against the stored sequence) or an
//! update (a decision the writer runs on the user it reads inside the
//! transaction, on its warm connection and under the write lock, so it
//! cannot conflict). When the
//! writer becomes free it takes every write already queued (up to the batch
//! limit, never waiting for more, so a lone caller pays no added latency) and
//! runs them in ONE `BEGIN IMMEDIATE` transaction: each under its own
//! SAVEPOINT with its own outcome, so a failing write leaves its neighbours
//! untouched. Every caller is answered after the shared COMMIT returned, that
//! is after its one fsync in durable mode.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::{self, JoinHandle};

use futures::channel::oneshot;
use rusqlite::{params, Connection, OptionalExtension};
use userstate::{run_decide, Decide, Decision, Error, Result, User, UserId};

use crate::codec::{self, EncodedCommit};
use crate::query;
use crate::reader::ReadJob;
use crate::sqlite_error::{from_sqlite, is_key_violation, worker_stopped};
use crate::stats::Counters;

/// The answer to one append.
pub(crate) type AppendAnswer = oneshot::Receiver<Result<()>>;

/// The answer to one update: the user after it.
pub(crate) type UpdateAnswer = oneshot::Receiver<Result<User>>;

/// Work for the writer thread.
enum Job {
    /// A write for the next batch.
    Write(Write, Reply),
    /// Run a read on the write connection (in-memory databases only, which
    /// have no other connection).
    Read(ReadJob),
}

/// The handle to the writer thread. Dropping it lets the thread finish the
/// queued work and waits for it; the connection closes with the last handle.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Whether a write may run on the caller's thread when the writer is idle.
    inline: bool,
}

/// What the writer thread and inline writes share.
#[derive(Debug)]
struct Shared {
    conn: Mutex<Connection>,
    /// Jobs sent to the writer thread that it has not taken yet: while there
    /// are any, writes queue behind them instead of running inline.
    queued: AtomicUsize,
    counters: Arc<Counters>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        // Every batch ends its transaction or leaves it for the next batch
        // to roll back, so a panic while the lock was held harms nothing.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn try_lock(&self) -> Option<MutexGuard<'_, Connection>> {
        match self.conn.try_lock() {
            Ok(conn) => Some(conn),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
}

/// A write waiting for its batch.
enum Write {
    /// Store a commit decided elsewhere if the stored sequence is the expected one.
    Append(EncodedCommit),
    /// Read the user, run the decision on it, store what it decided.
    Update { id: UserId, decide: Decide },
}

/// Where a write's caller waits.
enum Reply {
    Append(oneshot::Sender<Result<()>>),
    Update(oneshot::Sender<Result<User>>),
}

impl Reply {
    /// Sends a write's outcome (an update's carries the user after it).
    fn send(self, outcome: Result<Option<User>>) {
        // A caller that stopped waiting does not need its answer.
        match self {
            Reply::Append(reply) => {
                let _ = reply.send(outcome.map(|_| ()));
            }
            Reply::Update(reply) => {
                let _ = reply.send(outcome.and_then(|user| {
                    user.ok_or_else(|| Error::internal("the writer lost an update's user"))
                }));
            }
        }
    }
}

impl Writer {
    /// Starts the writer thread on `conn`; with `inline`, writes run on the
    /// caller's thread while the writer is idle.
    ///
    /// # Errors
    /// Internal when the thread cannot be spawned.
    pub(crate) fn spawn(
        conn: Connection,
        max_batch: usize,
        inline: bool,
        counters: Arc<Counters>,
    ) -> Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            queued: AtomicUsize::new(0),
            counters,
        });
        let thread = thread::Builder::new()
            .name("userstate-sqlite-writer".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || serve(&shared, &queue, max_batch.max(1))
            })
            .map_err(|e| Error::internal("cannot spawn the SQLite writer thread").with_source(e))?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
            shared,
            inline,
        })
    }

    /// Stores `commit`; the answer arrives once its transaction committed
    /// (or it failed).
    ///
    /// # Errors
    /// Internal when the writer thread has stopped.
    pub(crate) fn append(&self, commit: EncodedCommit) -> Result<AppendAnswer> {
        let (reply, answer) = oneshot::channel();
        self.write(Write::Append(commit), Reply::Append(reply))?;
        Ok(answer)
    }

    /// Updates `id` by `decide`; the answer arrives once its transaction
    /// committed (or it failed).
    ///
    /// # Errors
    /// Internal when the writer thread has stopped.
    pub(crate) fn update(&self, id: UserId, decide: Decide) -> Result<UpdateAnswer> {
        let (reply, answer) = oneshot::channel();
        self.write(Write::Update { id, decide }, Reply::Update(reply))?;
        Ok(answer)
    }

    /// Runs `write` here if inline writes are on, nothing is queued and the
    /// connection is free; otherwise queues it for the writer thread.
    fn write(&self, write: Write, reply: Reply) -> Result<()> {
        if self.inline && self.shared.queued.load(Ordering::Acquire) == 0 {
            if let Some(conn) = self.shared.try_lock() {
                let mut writes = vec![write];
                let mut replies = vec![reply];
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    commit_batch(&conn, &mut writes, &mut replies, &self.shared.counters);
                }));
                if ran.is_err() {
                    // Free SQLite's write lock for other handles and
                    // processes now, not at this handle's next batch.
                    if !conn.is_autocommit() {
                        let _ = execute(&conn, "ROLLBACK");
                    }
                    for reply in replies.drain(..) {
                        reply.send(Err(Error::internal("the write panicked")));
                    }
                }
                return Ok(());
            }
        }
        self.send(Job::Write(write, reply))
    }

    /// Queues a read on the write connection.
    ///
    /// # Errors
    /// Internal when the writer thread has stopped.
    pub(crate) fn read(&self, job: ReadJob) -> Result<()> {
        self.send(Job::Read(job))
    }

    fn send(&self, job: Job) -> Result<()> {
        let jobs = self.jobs.as_ref().ok_or_else(|| worker_stopped("writer"))?;
        self.shared.queued.fetch_add(1, Ordering::AcqRel);
        jobs.send(job).map_err(|_| {
            self.shared.queued.fetch_sub(1, Ordering::AcqRel);
            worker_stopped("writer")
        })
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
            Job::Write(Write::Append(commit), _) => f.debug_tuple("Append").field(commit).finish(),
            Job::Write(Write::Update { id, .. }, _) => f.debug_tuple("Update").field(id).finish(),
            Job::Read(_) => f.write_str("Read"),
        }
    }
}

/// The writer thread's loop: wait for work, take the connection and what
/// else is queued, commit the writes together, then run the reads.
fn serve(shared: &Shared, queue: &Receiver<Job>, max_batch: usize) {
    let mut writes = Vec::with_capacity(max_batch);
    let mut replies = Vec::with_capacity(max_batch);
    let mut reads = Vec::new();
    while let Ok(first) = queue.recv() {
        // Taken before draining the queue, so that what queued while an
        // inline write held the connection joins this batch.
        let conn = shared.lock();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            shared.queued.fetch_sub(1, Ordering::AcqRel);
            match job {
                Job::Write(write, reply) => {
                    writes.push(write);
                    replies.push(reply);
                }
                Job::Read(read) => reads.push(read),
            }
            if writes.len() < max_batch && reads.len() < max_batch {
                next = queue.try_recv().ok();
            }
        }
        if !writes.is_empty() {
            commit_batch(&conn, &mut writes, &mut replies, &shared.counters);
        }
        // After the commit, so a read never sees a write that might still fail.
        for read in reads.drain(..) {
            read(&conn);
        }
    }
}

/// Runs `writes` in one transaction and answers every caller.
fn commit_batch(
    conn: &Connection,
    writes: &mut Vec<Write>,
    replies: &mut Vec<Reply>,
    counters: &Counters,
) {
    let size = writes.len();
    let (outcomes, committed) = run_batch(conn, writes.drain(..), size);
    let conflicts = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, Err(e) if e.is_conflict()))
        .count();
    counters.record_batch(size as u64, conflicts as u64, committed);
    let mut outcomes = outcomes.into_iter();
    for reply in replies.drain(..) {
        let outcome = outcomes
            .next()
            .unwrap_or_else(|| Err(Error::internal("the writer lost an answer")));
        reply.send(outcome);
    }
}

/// Applies each write under its own savepoint inside one transaction and
/// commits. Returns each write's outcome, in order (an update's with the
/// user after it), and whether the transaction committed.
fn run_batch(
    conn: &Connection,
    writes: impl Iterator<Item = Write>,
    size: usize,
) -> (Vec<Result<Option<User>>>, bool) {
    let everyone = |error: Error| (vec![Err(error); size], false);
    if !conn.is_autocommit() {
        // Never commit into a transaction an earlier failure left open.
        let _ = execute(conn, "ROLLBACK");
    }
    // IMMEDIATE: the write lock is taken now, so every check and decision
    // below runs under it, against every other connection and process.
    if let Err(error) = execute(conn, "BEGIN IMMEDIATE") {
        return everyone(error);
    }
    let mut outcomes = Vec::with_capacity(size);
    for write in writes {
        let outcome = match write {
            Write::Append(commit) => apply(conn, &commit).map(|()| None),
            Write::Update { id, decide } => update(conn, &id, decide).map(Some),
        };
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
            // Writes that had failed on their own keep their own error.
            let outcomes = outcomes
                .into_iter()
                .map(|outcome| outcome.and(Err(error.clone())))
                .collect();
            (outcomes, false)
        }
    }
}

/// One append inside the batch's transaction: the optimistic check, then
/// its events and snapshot.
fn apply(conn: &Connection, commit: &EncodedCommit) -> Result<()> {
    let stored = stored_sequence(conn, &commit.user_id)?;
    if stored != commit.expected_sequence {
        return Err(conflict(commit, stored));
    }
    write_in_savepoint(conn, commit)
}

/// One update inside the batch's transaction: the user as this transaction
/// sees it (earlier writes of the batch included), the decision on it, and
/// what it decided. Returns the user after it.
fn update(conn: &Connection, id: &UserId, decide: Decide) -> Result<User> {
    let stored = query::load(conn, id)?;
    let stored_sequence = stored.as_ref().map_or(0, |user| user.sequence);
    let commit = match run_decide(decide, id, stored)? {
        Decision::Unchanged(user) => return Ok(user),
        Decision::Write(commit) => commit,
    };
    if commit.expected_sequence != stored_sequence {
        // Only a decision that ignored the user it was given gets here.
        return Err(Error::conflict(commit.expected_sequence, stored_sequence));
    }
    write_in_savepoint(conn, &codec::encode_commit(&commit)?)?;
    Ok(commit.snapshot)
}

/// The events and snapshot of a commit whose check passed, under a
/// savepoint that is rolled back if any of them fails.
fn write_in_savepoint(conn: &Connection, commit: &EncodedCommit) -> Result<()> {
    execute(conn, "SAVEPOINT command")?;
    let written = write(conn, commit).and_then(|()| execute(conn, "RELEASE command"));
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
