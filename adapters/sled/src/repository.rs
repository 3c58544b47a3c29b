//! [`SledRepository`]: the [`UserRepository`] on one sled database, with the
//! writes on the group-commit writer and the reads on a pool of reader
//! threads.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use userstate::storage::{
    AcceptedLoss, FeedSignal, GroupCommit, Scope, Seal, TemporaryDir, Update, UserRepository,
    Verification, WorkerPool, WriterStats,
};
use userstate::{
    Event, FeedEvent, HistoryQuery, ListQuery, OrgId, Page, Result, StoredPolicies, StoredPolicy,
    User, UserId, UserState,
};

use crate::engine::{self, DATA_FILE};
use crate::layout::Trees;
use crate::options::SledOptions;
use crate::reader;
use crate::verify;
use crate::writer::{self, Closing, SharedMark, Writer};

/// Users stored in a sled database.
///
/// A cheap handle: clones share the database, its writer and its readers.
/// Every command of every clone goes through the one writer, which decides
/// it on the user as stored, so none conflicts. The database closes when
/// the last clone is dropped; dropping waits for the commands queued and,
/// in relaxed mode, for a last sync. sled allows one open database per
/// directory, so other processes are refused while it is open.
#[derive(Clone)]
pub struct SledRepository {
    inner: Arc<Inner>,
}

/// Field order is drop order: the writer commits what is queued (with a
/// last sync), the readers stop, the database closes with the last tree,
/// the commit mark is sealed, then a temporary directory goes.
struct Inner {
    writer: GroupCommit<Writer>,
    readers: WorkerPool<Trees>,
    signal: Arc<FeedSignal>,
    _sealer: Sealer,
    options: SledOptions,
    path: PathBuf,
    _temporary: Option<TemporaryDir>,
}

/// Seals the commit mark with the data file as sled left it, once sled
/// has closed, if the writer closed with everything synced: the next open
/// then knows the file is whole without opening a copy.
struct Sealer {
    mark: SharedMark,
    data_file: PathBuf,
}

impl Drop for Sealer {
    fn drop(&mut self) {
        let mut closing = writer::lock(&self.mark);
        if closing.clean {
            if let Ok(seal) = Seal::of_file(&self.data_file) {
                let _ = closing.mark.seal(seal);
            }
        }
    }
}

impl SledRepository {
    /// Opens (or creates) the durable database in the directory `path`, with
    /// the default [`SledOptions`].
    ///
    /// # Errors
    /// See [`SledOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        SledOptions::new().open(path)
    }

    /// A new temporary database with the default options (see
    /// [`SledOptions::open_temporary`]).
    ///
    /// # Errors
    /// See [`SledOptions::open_temporary`].
    pub fn open_temporary() -> Result<Self> {
        SledOptions::new().open_temporary()
    }

    pub(crate) fn open_with(
        path: &Path,
        options: &SledOptions,
        temporary: Option<TemporaryDir>,
    ) -> Result<Self> {
        let opened = engine::open(path, options)?;
        let trees = opened.trees;
        let mark = Closing::shared(opened.mark);
        let signal = Arc::new(FeedSignal::new(crate::layout::last_position(&trees.feed)?));
        let mut writer = Writer::new(
            trees.clone(),
            opened.device,
            options.durability,
            options.max_unsynced_commands,
            mark.clone(),
            signal.clone(),
        );
        // Make the creation or upgrade itself durable: the format version,
        // sled's `conf` file and the directory entries.
        writer.sync()?;
        let readers =
            WorkerPool::start("userstate-sled-reader", vec![trees; options.reader_threads])?;
        let writer = GroupCommit::start(
            "userstate-sled-writer",
            writer,
            options.max_batch,
            options.inline_writes,
        )?;
        Ok(SledRepository {
            inner: Arc::new(Inner {
                writer,
                readers,
                signal,
                _sealer: Sealer {
                    mark,
                    data_file: path.join(DATA_FILE),
                },
                options: options.clone(),
                path: path.to_path_buf(),
                _temporary: temporary,
            }),
        })
    }

    /// The writer's counters: commands, the batches that shared a sync,
    /// the largest batch.
    pub fn stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &SledOptions {
        &self.inner.options
    }

    /// Makes every command acknowledged so far durable, after the writes
    /// queued before it: useful in relaxed mode (at a checkpoint of the
    /// host, before exit); in durable mode every acknowledged command
    /// already is.
    ///
    /// # Errors
    /// Unavailable when sled's flush or the sync fails; after such a failure
    /// every later write and sync fails the same way, because the kernel may
    /// have dropped the data that could not be written.
    pub async fn sync(&self) -> Result<()> {
        self.inner.writer.exclusive(Writer::sync).await
    }

    /// Checks the whole database, as
    /// [`CheckAtOpen::Everything`](userstate::storage::CheckAtOpen::Everything)
    /// does at open: every page of every tree read back (sled checks each
    /// against its checksum), every record decoded, every snapshot against
    /// the replay of its history, every index entry, the events against the
    /// count of committed ones. Runs after the writes queued before it, and
    /// holds the writer while it walks, so it sees one state.
    ///
    /// # Errors
    /// Unavailable when sled cannot read its files; damage is reported in
    /// the [`Verification`].
    pub async fn verify(&self) -> Result<Verification> {
        let trees = self.inner.readers.run(|trees| Ok(trees.clone())).await?;
        self.inner
            .writer
            .exclusive(move |_| verify::everything(&trees))
            .await
    }

    /// The losses accepted when the database was opened with
    /// [`SledOptions::accept_loss`], oldest first.
    ///
    /// # Errors
    /// As a read.
    pub async fn accepted_losses(&self) -> Result<Vec<AcceptedLoss>> {
        self.inner
            .readers
            .run(|trees| reader::accepted_losses(trees))
            .await
    }
}

impl fmt::Debug for SledRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledRepository")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl From<SledRepository> for Arc<dyn UserRepository> {
    fn from(repository: SledRepository) -> Self {
        Arc::new(repository)
    }
}

#[async_trait]
impl UserRepository for SledRepository {
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
        let (id, scope) = (id.clone(), scope.clone());
        self.inner
            .readers
            .run(move |trees| reader::load(trees, &id, &scope))
            .await
    }

    async fn load_many(&self, wanted: &[(&UserId, &Scope)]) -> Result<Vec<Option<User>>> {
        let wanted: Vec<(UserId, Scope)> = wanted
            .iter()
            .map(|(id, scope)| ((*id).clone(), (*scope).clone()))
            .collect();
        self.inner
            .readers
            .run(move |trees| {
                wanted
                    .iter()
                    .map(|(id, scope)| reader::load(trees, id, scope))
                    .collect()
            })
            .await
    }

    /// Queues the update for the writer, which reads the user, runs the
    /// decision on it and commits what it decided in one sled transaction,
    /// then syncs the batch when durable. Only the writer writes, so the
    /// update never conflicts.
    async fn update(&self, update: Update) -> Result<User> {
        self.inner.writer.update(update).await
    }

    /// One batch of the writer's, in one sled transaction.
    async fn update_many(&self, updates: Vec<Update>) -> Vec<Result<User>> {
        self.inner.writer.update_many(updates).await
    }

    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
        let (id, scope) = (id.clone(), scope.clone());
        self.inner
            .readers
            .run(move |trees| reader::history(trees, &id, &scope, query))
            .await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
        let (org, query) = (org.clone(), query.clone());
        self.inner
            .readers
            .run(move |trees| reader::list(trees, &org, &query))
            .await
    }

    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<FeedEvent>> {
        self.inner
            .readers
            .run(move |trees| reader::feed(trees, after, limit))
            .await
    }

    /// Only this process writes the database, so its writer wakes the
    /// waiters of every commit at once.
    async fn wait_for_events(&self, after: u64) -> Result<()> {
        self.inner.signal.wait(after).await;
        Ok(())
    }

    async fn policies(&self, org: &OrgId) -> Result<StoredPolicies> {
        let org = org.clone();
        self.inner
            .readers
            .run(move |trees| reader::policies(trees, &org))
            .await
    }

    async fn set_policy(&self, org: Option<&OrgId>, policy: StoredPolicy) -> Result<()> {
        let org = org.cloned();
        self.inner
            .writer
            .exclusive(move |writer| writer.set_policy(org.as_ref(), &policy))
            .await
    }

    async fn count(&self, org: &OrgId, state: Option<UserState>) -> Result<u64> {
        let org = org.clone();
        self.inner
            .readers
            .run(move |trees| reader::count(trees, &org, state))
            .await
    }

    async fn policy_organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        let after = after.cloned();
        self.inner
            .readers
            .run(move |trees| reader::policy_organisations(trees, after.as_ref(), limit))
            .await
    }

    async fn organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        let after = after.cloned();
        self.inner
            .readers
            .run(move |trees| reader::organisations(trees, after.as_ref(), limit))
            .await
    }
}
