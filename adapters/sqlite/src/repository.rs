//! [`SqliteRepository`]: the [`UserRepository`] on one SQLite file, with the
//! writes on the group-commit writer and the reads on a pool of reader
//! connections.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::Connection;
use userstate::storage::{
    AcceptedLoss, FeedSignal, GroupCommit, Scope, TemporaryDir, Update, UserRepository,
    Verification, WorkerPool, WriterStats,
};
use userstate::{
    Event, FeedEvent, HistoryQuery, ListQuery, OrgId, Page, Result, StoredPolicies, StoredPolicy,
    User, UserId, UserState,
};

use crate::engine;
use crate::layout::LAST_POSITION;
use crate::options::SqliteOptions;
use crate::reader;
use crate::verify;
use crate::watcher::Watcher;
use crate::writer::Writer;

/// A [`UserRepository`] on a SQLite database.
///
/// Cheap to clone: clones share one writer, its group commits and its
/// [`WriterStats`]. Opening the same file again gives an independent handle
/// with its own threads; handles (and processes) on one file still see each
/// other's commits, and none conflicts: each decides under SQLite's write
/// lock, on the user as read inside its transaction.
///
/// Dropping the last clone lets the writer commit the queued work, waits
/// for the threads and closes the connections.
///
/// A command whose future is dropped after it was queued may still be
/// stored, as with any database: the service's next command sees it.
#[derive(Clone)]
pub struct SqliteRepository {
    inner: Arc<Inner>,
}

/// Field order is drop order: the readers close their connections, the
/// writer commits what is queued and closes its connection last (the last
/// connection to close checkpoints the write-ahead log into the file and
/// removes it; SQLite leaves that to a connection that may write), then a
/// temporary directory goes.
struct Inner {
    _watcher: Watcher,
    signal: Arc<FeedSignal>,
    readers: WorkerPool<Connection>,
    writer: GroupCommit<Writer>,
    options: SqliteOptions,
    path: PathBuf,
    _temporary: Option<TemporaryDir>,
}

impl SqliteRepository {
    /// Opens (creating if nothing is there) the database file at `path` with
    /// the default [`SqliteOptions`]: durable, WAL, 5 s busy timeout, checked
    /// at open.
    ///
    /// # Errors
    /// See [`SqliteOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        SqliteOptions::new().open(path)
    }

    /// A new temporary database with the default options (see
    /// [`SqliteOptions::open_temporary`]).
    ///
    /// # Errors
    /// See [`SqliteOptions::open_temporary`].
    pub fn open_temporary() -> Result<Self> {
        SqliteOptions::new().open_temporary()
    }

    pub(crate) fn open_with(
        path: &Path,
        options: &SqliteOptions,
        temporary: Option<TemporaryDir>,
    ) -> Result<Self> {
        // The writer first: it creates, checks and upgrades the file the
        // readers then open.
        let opened = engine::open_writer(path, options)?;
        let readers = (0..options.reader_threads)
            .map(|_| engine::open_reader(path, options))
            .collect::<Result<Vec<_>>>()?;
        let readers = WorkerPool::start("userstate-sqlite-reader", readers)?;
        let last = opened
            .conn
            .query_row(LAST_POSITION, [], |row| row.get::<_, i64>(0))
            .map_err(crate::error::from_sqlite)?;
        let signal = Arc::new(FeedSignal::new(u64::try_from(last).unwrap_or(0)));
        let watcher = Watcher::start(engine::open_reader(path, options)?, signal.clone())?;
        let writer = GroupCommit::start(
            "userstate-sqlite-writer",
            Writer::new(
                opened.conn,
                options.durability,
                opened.committed,
                opened.mark,
                signal.clone(),
            ),
            options.max_batch,
            options.inline_writes,
        )?;
        Ok(SqliteRepository {
            inner: Arc::new(Inner {
                _watcher: watcher,
                signal,
                writer,
                readers,
                options: options.clone(),
                path: path.to_path_buf(),
                _temporary: temporary,
            }),
        })
    }

    /// The writer's counters: commands, the batches that shared a
    /// transaction, conflicts, the largest batch. Shared by clones of this
    /// handle, not by other handles on the same file.
    pub fn stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &SqliteOptions {
        &self.inner.options
    }

    /// Makes every command acknowledged so far durable, after the writes
    /// queued before it: useful in relaxed mode (at a checkpoint of the
    /// host, before exit); in durable mode every acknowledged command
    /// already is.
    ///
    /// # Errors
    /// Unavailable when readers kept the checkpoint from finishing within
    /// the busy timeout; Internal for other failures.
    pub async fn sync(&self) -> Result<()> {
        self.inner.writer.exclusive(Writer::sync).await
    }

    /// Checks the whole database, as [`CheckAtOpen::Everything`] does at
    /// open: SQLite's `integrity_check`, every row against its checksum,
    /// every snapshot against the replay of its history, the events
    /// against the count of committed ones. Reads one consistent state
    /// while commands go on.
    ///
    /// [`CheckAtOpen::Everything`]: userstate::storage::CheckAtOpen::Everything
    ///
    /// # Errors
    /// Unavailable or Internal when the database cannot be read; damage is
    /// reported in the [`Verification`].
    pub async fn verify(&self) -> Result<Verification> {
        self.inner
            .readers
            .run(|conn| verify::everything(conn))
            .await
    }

    /// The losses accepted when the database was opened with
    /// [`SqliteOptions::accept_loss`], oldest first.
    ///
    /// # Errors
    /// As a read.
    pub async fn accepted_losses(&self) -> Result<Vec<AcceptedLoss>> {
        self.inner
            .readers
            .run(|conn| reader::accepted_losses(conn))
            .await
    }
}

impl fmt::Debug for SqliteRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteRepository")
            .field("path", &self.inner.path)
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
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
        let (id, scope) = (id.clone(), scope.clone());
        self.inner
            .readers
            .run(move |conn| reader::load(conn, &id, &scope))
            .await
    }

    async fn load_many(&self, wanted: &[(&UserId, &Scope)]) -> Result<Vec<Option<User>>> {
        let wanted: Vec<(UserId, Scope)> = wanted
            .iter()
            .map(|(id, scope)| ((*id).clone(), (*scope).clone()))
            .collect();
        self.inner
            .readers
            .run(move |conn| {
                wanted
                    .iter()
                    .map(|(id, scope)| reader::load(conn, id, scope))
                    .collect()
            })
            .await
    }

    /// Queues the update for the writer, which runs the decision inside the
    /// batch's transaction, on the user read under the write lock: it never
    /// conflicts. Answered once the transaction committed (fsynced when
    /// durable) or failed.
    async fn update(&self, update: Update) -> Result<User> {
        self.inner.writer.update(update).await
    }

    /// One batch of the writer's, in one transaction.
    async fn update_many(&self, updates: Vec<Update>) -> Vec<Result<User>> {
        self.inner.writer.update_many(updates).await
    }

    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
        let (id, scope) = (id.clone(), scope.clone());
        self.inner
            .readers
            .run(move |conn| reader::history(conn, &id, &scope, query))
            .await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
        let (org, query) = (org.clone(), query.clone());
        self.inner
            .readers
            .run(move |conn| reader::list(conn, &org, &query))
            .await
    }

    async fn count(&self, org: &OrgId, state: Option<UserState>) -> Result<u64> {
        let org = org.clone();
        self.inner
            .readers
            .run(move |conn| reader::count(conn, &org, state))
            .await
    }

    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<FeedEvent>> {
        self.inner
            .readers
            .run(move |conn| reader::feed(conn, after, limit))
            .await
    }

    /// This handle's own commits wake the waiter at once; other handles'
    /// and processes' are seen within [`FEED_POLL_INTERVAL`](crate::FEED_POLL_INTERVAL).
    async fn wait_for_events(&self, after: u64) -> Result<()> {
        self.inner.signal.wait(after).await;
        Ok(())
    }

    async fn policies(&self, org: &OrgId) -> Result<StoredPolicies> {
        let org = org.clone();
        self.inner
            .readers
            .run(move |conn| reader::policies(conn, &org))
            .await
    }

    async fn set_policy(&self, org: Option<&OrgId>, policy: StoredPolicy) -> Result<()> {
        let org = org.cloned();
        self.inner
            .writer
            .exclusive(move |writer| writer.set_policy(org.as_ref(), &policy))
            .await
    }

    async fn policy_organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        let after = after.cloned();
        self.inner
            .readers
            .run(move |conn| reader::policy_organisations(conn, after.as_ref(), limit))
            .await
    }

    async fn organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        let after = after.cloned();
        self.inner
            .readers
            .run(move |conn| reader::organisations(conn, after.as_ref(), limit))
            .await
    }
}
