//! [`SledRepository`]: the [`UserRepository`] on sled, running the blocking
//! store on worker threads and making commits durable through the group
//! flusher.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::channel::oneshot;
use userstate::{
    run_decide, Commit, Decide, Decision, Error, Event, HistoryQuery, ListQuery, OrgId, Page,
    Result, User, UserId, UserRepository,
};

use crate::device_sync::DeviceSync;
use crate::durability::Durability;
use crate::flusher::{Answer, FlushQueue, GroupFlusher};
use crate::options::SledOptions;
use crate::sled_error::{from_io, from_sled};
use crate::sled_files::{self, Existing};
use crate::stats::SyncStats;
use crate::store::Store;
use crate::workers::{Reply, Workers};

/// Users stored in a sled database.
///
/// A cheap handle: clones share the database, its worker threads and its
/// flusher, and every clone may write concurrently (the sequence check runs
/// inside each transaction). The database closes when the last clone is
/// dropped; dropping waits for the commands in flight and for a last sync.
/// sled allows one open database per directory, so other processes are
/// refused while it is open.
#[derive(Debug, Clone)]
pub struct SledRepository {
    inner: Arc<Inner>,
}

/// Field order is drop order: the workers finish their queued jobs (which
/// may hand answers to the flusher), then the flusher answers its queue with
/// a last sync, then the database closes.
#[derive(Debug)]
struct Inner {
    workers: Workers,
    flusher: GroupFlusher,
    store: Arc<Store>,
    durability: Durability,
    max_unsynced_commands: u64,
    inline_writes: bool,
    path: PathBuf,
}

impl SledRepository {
    /// Opens (or creates) the durable database in the directory `path`, with
    /// the default options of [`SledOptions::new`].
    ///
    /// # Errors
    /// See [`SledOptions::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        SledOptions::new(path).open()
    }

    /// A fresh temporary database (see [`SledOptions::temporary`]).
    ///
    /// # Errors
    /// See [`SledOptions::open`].
    pub fn temporary() -> Result<Self> {
        SledOptions::temporary().open()
    }

    pub(crate) fn open_with(options: SledOptions) -> Result<Self> {
        let (config, path) = options.sled_config();
        let created = match sled_files::inspect(&path) {
            Existing::Nothing => true,
            Existing::SledDatabase => false,
            Existing::ForeignFile => {
                return Err(Error::corrupt(
                    "the directory holds a data file sled did not create; refusing to open it",
                ))
            }
        };
        // sled 0.34 has assertions on its recovery path; a foreign or
        // damaged directory must give an error, not take the caller down.
        let db = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || config.open()))
            .map_err(|_| Error::corrupt("sled cannot read the database files"))?
            .map_err(from_sled)?;
        let store = Arc::new(Store::open(db, created)?);
        // Make the creation itself durable: the format version, sled's
        // `conf` file and the directory entries.
        store.flush()?;
        let mut device = DeviceSync::open(&path)
            .map_err(|e| from_io("cannot sync the database directory", e))?;
        let flusher = GroupFlusher::start(Box::new({
            let store = store.clone();
            move || {
                store.flush()?;
                device
                    .sync()
                    .map_err(|e| from_io("cannot sync the database files", e))
            }
        }))?;
        let workers = Workers::start(options.get_worker_threads())?;
        Ok(SledRepository {
            inner: Arc::new(Inner {
                workers,
                flusher,
                store,
                durability: options.get_durability(),
                max_unsynced_commands: options.get_max_unsynced_commands(),
                inline_writes: options.get_inline_writes(),
                path,
            }),
        })
    }

    /// The directory of the database (for a temporary one, the directory
    /// that is removed on close).
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The durability mode the repository was opened with.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// How many durable commands shared how many syncs so far.
    pub fn sync_stats(&self) -> SyncStats {
        self.inner.flusher.queue().stats()
    }

    /// Makes every command acknowledged so far durable: waits for a flush
    /// and device sync that starts after the call. Useful in
    /// [`Durability::Relaxed`] mode (e.g. at a checkpoint or before exit);
    /// in durable mode every acknowledged command already is.
    ///
    /// # Errors
    /// Unavailable when sled's flush or the sync fails; after such a failure
    /// every later write and sync fails the same way, because the kernel may
    /// have dropped the data that could not be written.
    pub async fn sync(&self) -> Result<()> {
        let (answer, answered) = oneshot::channel();
        self.inner.flusher.queue().enqueue(answer, false);
        answered.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// A copy of the handle to the store, for a job.
    fn store(&self) -> Arc<Store> {
        self.inner.store.clone()
    }

    /// Where a job hands a committed write, for a job.
    fn commit_queue(&self) -> CommitQueue {
        CommitQueue {
            queue: self.inner.flusher.queue().clone(),
            durability: self.inner.durability,
            max_unsynced_commands: self.inner.max_unsynced_commands,
            inline: self.inner.inline_writes,
        }
    }

    /// Runs a write job on a worker, or here with inline writes.
    async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(Reply<T>) + Send + 'static,
    ) -> Result<T> {
        if !self.inner.inline_writes {
            return self.inner.workers.call(job).await;
        }
        let (reply, answer) = oneshot::channel();
        // A panic inside sled drops the reply: Internal, as on a worker.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || job(reply)));
        answer
            .await
            .unwrap_or_else(|_| Err(Error::internal("the storage job stopped before answering")))
    }
}

/// How a committed write is answered in the repository's durability mode.
struct CommitQueue {
    queue: FlushQueue,
    durability: Durability,
    max_unsynced_commands: u64,
    /// Durable commits sync on the committing thread when no sync runs.
    inline: bool,
}

impl CommitQueue {
    /// The error of an earlier failed sync: after it nothing more is
    /// written, since it could not be made durable and the caller would not
    /// learn it.
    fn health(&self) -> Result<()> {
        self.queue.health()
    }

    /// Answers a committed write: after the next sync when durable, at once
    /// (within the bound of unsynced commands) when relaxed.
    fn committed(&self, answer: Answer) {
        match self.durability {
            Durability::Durable if self.inline => self.queue.sync_here(answer),
            Durability::Durable => self.queue.enqueue(answer, true),
            Durability::Relaxed => self
                .queue
                .relaxed_commit(answer, self.max_unsynced_commands),
        }
    }
}

fn stopped() -> Error {
    Error::internal("the flusher stopped before answering")
}

impl From<SledRepository> for Arc<dyn UserRepository> {
    fn from(repository: SledRepository) -> Self {
        Arc::new(repository)
    }
}

#[async_trait]
impl UserRepository for SledRepository {
    async fn load(&self, id: &UserId) -> Result<Option<User>> {
        let (store, id) = (self.store(), id.clone());
        self.inner.workers.run(move || store.load(&id)).await
    }

    async fn append(&self, commit: Commit) -> Result<()> {
        let (store, commit_queue) = (self.store(), self.commit_queue());
        let job = move |reply: Reply<()>| match commit_queue
            .health()
            .and_then(|()| store.append(&commit))
        {
            Ok(()) => commit_queue.committed(reply.into()),
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        };
        self.write(job).await
    }

    /// Loads, decides and commits in one worker job: one round trip. The
    /// transaction still checks the sequence, so another worker's commit to
    /// the same user in between is a conflict, which the service re-decides.
    async fn update(&self, id: &UserId, decide: Decide) -> Result<User> {
        let (store, commit_queue, id) = (self.store(), self.commit_queue(), id.clone());
        let job = move |reply: Reply<User>| {
            // The user after the command, and whether it wrote anything.
            let done = commit_queue
                .health()
                .and_then(|()| store.load(&id))
                .and_then(|stored| run_decide(decide, &id, stored))
                .and_then(|decision| match decision {
                    Decision::Unchanged(user) => Ok((user, false)),
                    Decision::Write(commit) => {
                        store.append(&commit).map(|()| (commit.snapshot, true))
                    }
                });
            match done {
                Ok((after, true)) => commit_queue.committed(Answer::new(move |synced| {
                    let _ = reply.send(synced.map(|()| after));
                })),
                other => {
                    let _ = reply.send(other.map(|(user, _)| user));
                }
            }
        };
        self.write(job).await
    }

    async fn history(&self, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
        let (store, id) = (self.store(), id.clone());
        self.inner
            .workers
            .run(move || store.history(&id, query))
            .await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        let (store, org, query) = (self.store(), org.clone(), query.clone());
        self.inner
            .workers
            .run(move || store.list(&org, &query))
            .await
    }
}
