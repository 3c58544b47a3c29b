//! `userstate-sqlite`: the storage of [`userstate`] on an embedded SQLite
//! database (bundled, no system library needed).
//!
//! ```
//! use std::sync::Arc;
//! use userstate::{
//!     Caller, InMemoryAuthorizer, InitialState, LockRequest, OrgId, Permission, UserId,
//!     UserService, UserState,
//! };
//! use userstate_sqlite::SqliteRepository;
//!
//! # fn main() -> Result<(), userstate::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("users.db");
//! let repository = SqliteRepository::open(&path)?; // created if missing
//! let acme = OrgId::new("acme")?;
//! let admin = Caller::new(UserId::new("admin")?, acme.clone());
//! let grants = InMemoryAuthorizer::new();
//! grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
//! let service = UserService::new(Arc::new(repository.clone()), Arc::new(grants));
//!
//! futures::executor::block_on(async {
//!     let alice = UserId::new("alice")?;
//!     service.create(&admin, &alice, InitialState::Active).await?;
//!     service.lock(&admin, &alice, LockRequest::new()).await?;
//!     assert_eq!(service.get(&admin, &alice).await?.state, UserState::Locked);
//!     Ok::<_, userstate::Error>(())
//! })?;
//! assert_eq!(repository.stats().commands, 2);
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! - **Tables** ([`schema`](#schema)): a snapshot row per user, an event row
//!   per (user, sequence), indexes for the per-organisation lists. The format
//!   version lives in `PRAGMA user_version` and is migrated forward at open;
//!   a file of another application or of a newer version is refused.
//! - **One writer thread** owns the write connection. Writes reach it over a
//!   channel and are answered on oneshots, so no async executor ever blocks
//!   and no particular runtime is needed (tokio, `futures::executor`, ...).
//!   A command is one write: its decision runs on the writer, on the user
//!   read inside the transaction, so it never conflicts with this handle's
//!   other commands. [`SqliteOptions::inline_writes`] lets a write that finds
//!   the writer idle run on the caller's thread instead, for hosts whose
//!   callers may block.
//! - **Group commit**: the appends queued while the writer was busy share one
//!   `BEGIN IMMEDIATE` transaction and one fsync, each under its own
//!   savepoint with its own optimistic check and outcome. A lone caller waits
//!   for nothing but its own commit.
//! - **Readers** are threads with their own connections; in WAL mode they
//!   never wait for the writer.
//! - **Several handles and processes** on one file stay correct: the check of
//!   the expected sequence runs under SQLite's write lock, and the primary
//!   key (user, sequence) of the events backs it up.
//!
//! # Schema
//!
//! ```sql
//! users  (id PRIMARY KEY, org, state, sequence, snapshot)   -- snapshot: JSON of User
//! events (user_id, sequence, org, event_type, created_at, creator, payload,
//!         PRIMARY KEY (user_id, sequence))                  -- payload: JSON of EventPayload
//! INDEX users_by_org_state ON users (org, state, id)
//! INDEX users_by_org       ON users (org, id) WHERE state <> 'deleted'
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod codec;
mod connection;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod options;
mod query;
mod reader;
mod schema;
mod sqlite_error;
mod stats;
mod writer;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures::channel::oneshot;
use rusqlite::Connection;
use userstate::{
    Commit, Decide, Event, HistoryQuery, ListQuery, OrgId, Page, Result, User, UserId,
    UserRepository,
};

use crate::connection::Location;
use crate::reader::{ReadJob, ReaderPool};
use crate::sqlite_error::worker_stopped;
use crate::stats::Counters;
use crate::writer::Writer;

pub use crate::options::{
    Durability, SqliteOptions, DEFAULT_BUSY_TIMEOUT, DEFAULT_MAX_BATCH, DEFAULT_READER_THREADS,
};
pub use crate::stats::Stats;

/// The schema version this version of the crate writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

/// A [`UserRepository`] on a SQLite database.
///
/// Cheap to clone: clones share one writer thread, its group commits and its
/// [`Stats`]. Opening the same file again gives an independent handle with
/// its own threads; handles (and processes) on one file still see each
/// other's commits and keep the optimistic-concurrency guarantee.
///
/// Dropping the last clone lets the threads finish the queued work, waits for
/// them and closes the connections.
///
/// A command whose future is dropped after the append was queued may still
/// be stored, as with any database: the service's next command sees it.
///
/// Beyond the [`UserRepository`] contract, `append` refuses with Internal,
/// before anything is written, a commit that is not what the contract
/// describes: no events, events not numbered from `expected_sequence + 1`,
/// events of another user, or a snapshot not at the last event. The service
/// never builds one; a hand-made one is a bug better caught than stored.
#[derive(Clone)]
pub struct SqliteRepository {
    inner: Arc<Inner>,
}

struct Inner {
    location: Location,
    options: SqliteOptions,
    counters: Arc<Counters>,
    /// `None` for an in-memory database: its reads run on the writer.
    readers: Option<ReaderPool>,
    writer: Writer,
}

impl SqliteRepository {
    /// Opens (creating if missing) the database file at `path` with the
    /// default [`SqliteOptions`]: durable, WAL, 5 s busy timeout.
    ///
    /// # Errors
    /// See [`SqliteOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteOptions::default().open(path)
    }

    /// A new, private in-memory database with the default options; lost when
    /// the last clone is dropped.
    ///
    /// # Errors
    /// See [`SqliteOptions::open_in_memory`].
    pub fn open_in_memory() -> Result<Self> {
        SqliteOptions::default().open_in_memory()
    }

    /// The writer's counters: transactions committed, appends answered,
    /// conflicts, the largest batch. Shared by clones of this handle, not
    /// by other handles on the same file.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// The database file; `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        match &self.inner.location {
            Location::File(path) => Some(path),
            Location::Memory => None,
        }
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.inner.options
    }

    pub(crate) fn open_with(path: &Path, options: &SqliteOptions) -> Result<Self> {
        let location = Location::File(path.to_path_buf());
        // The writer first: it creates, checks and migrates the file the
        // readers then open.
        let conn = connection::open_writer(&location, options)?;
        let readers = ReaderPool::spawn(path, options)?;
        Self::start(location, options, conn, Some(readers))
    }

    pub(crate) fn open_in_memory_with(options: &SqliteOptions) -> Result<Self> {
        let location = Location::Memory;
        let conn = connection::open_writer(&location, options)?;
        Self::start(location, options, conn, None)
    }

    fn start(
        location: Location,
        options: &SqliteOptions,
        conn: Connection,
        readers: Option<ReaderPool>,
    ) -> Result<Self> {
        let counters = Arc::new(Counters::default());
        let writer = Writer::spawn(
            conn,
            options.max_batch,
            options.inline_writes,
            Arc::clone(&counters),
        )?;
        Ok(SqliteRepository {
            inner: Arc::new(Inner {
                location,
                options: options.clone(),
                counters,
                readers,
                writer,
            }),
        })
    }

    /// Runs `query` on a reader's connection (the writer's in memory) and
    /// awaits its answer.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            // A caller that stopped waiting does not need its answer.
            let _ = reply.send(query(conn));
        });
        match &self.inner.readers {
            Some(readers) => readers.submit(job)?,
            None => self.inner.writer.read(job)?,
        }
        answer.await.map_err(|_| worker_stopped("reader"))?
    }
}

impl fmt::Debug for SqliteRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteRepository")
            .field("path", &self.path())
            .field("options", &self.inner.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl From<SqliteRepository> for Arc<dyn UserRepository> {
    fn from(repository: SqliteRepository) -> Self {
        Arc::new(repository)
    }
}

#[async_trait]
impl UserRepository for SqliteRepository {
    async fn load(&self, id: &UserId) -> Result<Option<User>> {
        let id = id.clone();
        self.read(move |conn| query::load(conn, &id)).await
    }

    /// Queues the commit for the writer and waits until its transaction
    /// committed (fsynced in durable mode) or it failed.
    async fn append(&self, commit: Commit) -> Result<()> {
        // Encoded here, on the caller's thread, so the writer only runs SQL.
        let encoded = codec::encode_commit(&commit)?;
        let answer = self.inner.writer.append(encoded)?;
        answer.await.map_err(|_| worker_stopped("writer"))?
    }

    /// Runs `decide` on the writer thread, inside the batch's transaction:
    /// the user is read on the writer's connection under the write lock, so
    /// the update never conflicts and makes one round trip.
    async fn update(&self, id: &UserId, decide: Decide) -> Result<User> {
        let answer = self.inner.writer.update(id.clone(), decide)?;
        answer.await.map_err(|_| worker_stopped("writer"))?
    }

    async fn history(&self, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
        let id = id.clone();
        self.read(move |conn| query::history(conn, &id, query))
            .await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        let (org, query) = (org.clone(), query.clone());
        self.read(move |conn| query::list(conn, &org, &query)).await
    }
}
