//! How to open a database: where, how durable, how much memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::durability::Durability;
use crate::repository::SledRepository;

/// sled's page cache size unless set: small enough that a million users stay
/// far below sled's own 1 GiB default (which peaks above 3 GiB of resident
/// memory on such a load), big enough for the hot part of most directories.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Threads that run sled transactions and reads, unless set.
pub const DEFAULT_WORKER_THREADS: usize = 4;

/// In relaxed mode, how many acknowledged commands may wait for a sync
/// unless set.
pub const DEFAULT_MAX_UNSYNCED_COMMANDS: u64 = 1000;

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Path(PathBuf),
    Temporary,
}

/// Options for opening a [`SledRepository`].
///
/// ```
/// use userstate_sled::{Durability, SledOptions};
///
/// # fn main() -> Result<(), userstate::Error> {
/// let repo = SledOptions::temporary()
///     .durability(Durability::Relaxed)
///     .cache_bytes(16 * 1024 * 1024)
///     .open()?;
/// # drop(repo);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledOptions {
    location: Location,
    durability: Durability,
    cache_bytes: u64,
    worker_threads: usize,
    max_unsynced_commands: u64,
    inline_writes: bool,
}

impl SledOptions {
    /// A database in the directory `path`, created if missing; durable,
    /// with a [`DEFAULT_CACHE_BYTES`] cache.
    pub fn new(path: impl AsRef<Path>) -> Self {
        SledOptions {
            location: Location::Path(path.as_ref().to_path_buf()),
            durability: Durability::default(),
            cache_bytes: DEFAULT_CACHE_BYTES,
            worker_threads: DEFAULT_WORKER_THREADS,
            max_unsynced_commands: DEFAULT_MAX_UNSYNCED_COMMANDS,
            inline_writes: false,
        }
    }

    /// A throw-away database for tests, removed when the repository is
    /// dropped (sled's temporary mode: in `/dev/shm` on Linux). Durability
    /// still defaults to [`Durability::Durable`], so the sync path runs,
    /// but the files do not outlive the process anyway.
    pub fn temporary() -> Self {
        SledOptions {
            location: Location::Temporary,
            ..SledOptions::new("")
        }
    }

    /// Sets the durability mode (default [`Durability::Durable`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the size of sled's page cache in bytes (default
    /// [`DEFAULT_CACHE_BYTES`]). sled's resident memory is a small multiple
    /// of this plus a per-page table entry.
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Sets how many threads run transactions and reads (default
    /// [`DEFAULT_WORKER_THREADS`], at least 1). sled serialises transactions
    /// internally; more threads mostly help concurrent reads.
    pub fn worker_threads(mut self, threads: usize) -> Self {
        self.worker_threads = threads.max(1);
        self
    }

    /// In [`Durability::Relaxed`] mode, sets how many acknowledged commands
    /// may at most be waiting for a sync (default
    /// [`DEFAULT_MAX_UNSYNCED_COMMANDS`], at least 1). A command that would
    /// exceed it waits for the next flush and sync, like a durable one. This
    /// bounds what a crash can lose, and keeps writers from running ahead of
    /// sled's log writes (sled 0.34 queues those writes without limit, and
    /// the memory with them). Durable mode ignores it.
    pub fn max_unsynced_commands(mut self, commands: u64) -> Self {
        self.max_unsynced_commands = commands.max(1);
        self
    }

    /// Whether a command runs its transaction on the thread that polls its
    /// future instead of a worker, and, when durable and no sync is running
    /// or queued, its flush and device sync too (default false).
    ///
    /// It saves the thread hand-offs of a command (to a worker, to the
    /// flusher, back to the caller), which on virtual machines, where waking
    /// an idle CPU is costly, are much of the library's cost for a lone
    /// caller. The price: that thread blocks for the transaction, and in
    /// durable mode for the sync. Turn it on when commands come from threads
    /// that may block (your own threads, a blocking pool such as tokio's
    /// `spawn_blocking`, `futures::executor::block_on`), not from an async
    /// executor's workers. Under load, durable commands still share syncs.
    pub fn inline_writes(mut self, inline: bool) -> Self {
        self.inline_writes = inline;
        self
    }

    /// Opens (or creates) the database. Blocks while sled recovers its log,
    /// so call it before entering async code or from a blocking task.
    ///
    /// # Errors
    /// Internal (`USER-CORRUPT`) for a database of an unknown format
    /// version, one that holds user data without a format version, or files
    /// sled cannot read; Unavailable when the directory cannot be created
    /// or another process holds the database open.
    pub fn open(self) -> userstate::Result<SledRepository> {
        SledRepository::open_with(self)
    }

    /// sled's configuration and the directory it will use. A temporary
    /// database gets a fresh directory of its own, which sled removes when
    /// the database closes.
    pub(crate) fn sled_config(&self) -> (sled::Config, PathBuf) {
        let config = sled::Config::new().cache_capacity(self.cache_bytes);
        match &self.location {
            Location::Path(path) => (config.path(path), path.clone()),
            Location::Temporary => {
                let path = temporary_path();
                (config.path(&path).temporary(true), path)
            }
        }
    }

    pub(crate) fn get_durability(&self) -> Durability {
        self.durability
    }

    pub(crate) fn get_worker_threads(&self) -> usize {
        self.worker_threads
    }

    pub(crate) fn get_inline_writes(&self) -> bool {
        self.inline_writes
    }

    pub(crate) fn get_max_unsynced_commands(&self) -> u64 {
        self.max_unsynced_commands
    }
}

/// A directory name no other temporary database of this or another process
/// uses: in memory (`/dev/shm`) where Linux offers it, as sled does, else in
/// the system's temporary directory.
fn temporary_path() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!(
        "userstate-sled-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let shm = Path::new("/dev/shm");
    let base = if cfg!(target_os = "linux") && shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(name)
}
