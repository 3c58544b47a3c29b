//! How a database is opened: durability, who leads group commits, batch
//! size, reader threads, sled's cache, the bound on unsynced commands,
//! whether a missing database is created, the check at open and whether a
//! known loss is accepted.

use std::path::Path;

use userstate::storage::{CheckAtOpen, Durability, DEFAULT_MAX_BATCH};
use userstate::Result;

use crate::repository::SledRepository;

/// sled's page cache size unless set: small enough that a million users stay
/// far below sled's own 1 GiB default (which peaks above 3 GiB of resident
/// memory on such a load), big enough for the hot part of most directories.
pub const DEFAULT_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Default for [`SledOptions::reader_threads`].
pub const DEFAULT_READER_THREADS: usize = 2;

/// In relaxed mode, how many acknowledged commands may wait for a sync
/// unless set.
pub const DEFAULT_MAX_UNSYNCED_COMMANDS: u64 = 1000;

/// Options for opening a [`SledRepository`]; a builder.
///
/// ```
/// use userstate::storage::Durability;
/// use userstate_sled::SledOptions;
///
/// # fn main() -> Result<(), userstate::Error> {
/// let repo = SledOptions::new()
///     .durability(Durability::Relaxed)
///     .cache_bytes(16 * 1024 * 1024)
///     .open_temporary()?;
/// assert_eq!(repo.stats().batches, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SledOptions {
    pub(crate) durability: Durability,
    pub(crate) inline_writes: bool,
    pub(crate) max_batch: usize,
    pub(crate) reader_threads: usize,
    pub(crate) cache_bytes: u64,
    pub(crate) max_unsynced_commands: u64,
    pub(crate) create_if_missing: bool,
    pub(crate) check_at_open: CheckAtOpen,
    pub(crate) accept_loss: bool,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            durability: Durability::Durable,
            inline_writes: false,
            max_batch: DEFAULT_MAX_BATCH,
            reader_threads: DEFAULT_READER_THREADS,
            cache_bytes: DEFAULT_CACHE_BYTES,
            max_unsynced_commands: DEFAULT_MAX_UNSYNCED_COMMANDS,
            create_if_missing: true,
            check_at_open: CheckAtOpen::Auto,
            accept_loss: false,
        }
    }
}

impl SledOptions {
    /// The defaults: durable, the writer thread leads, batches of up to
    /// [`DEFAULT_MAX_BATCH`] commands, 2 reader threads, a
    /// [`DEFAULT_CACHE_BYTES`] cache, a missing database created,
    /// [`CheckAtOpen::Auto`], no loss accepted.
    pub fn new() -> Self {
        Self::default()
    }

    /// What an acknowledged command survives (default
    /// [`Durability::Durable`]).
    ///
    /// - Durable: a batch is acknowledged after a sled flush that started
    ///   after its commit, followed by `fsync` of any file sled created
    ///   since the last sync (blob and snapshot files), `fsync` of the
    ///   directories they appear in and `fdatasync` of sled's data file.
    ///   sled 0.34's own flush only issues `sync_file_range`, which writes
    ///   the pages but neither the file's metadata nor the device cache, so
    ///   on Linux it does not survive an OS crash; this mode adds the sync.
    /// - Relaxed: a command is acknowledged once its sled transaction
    ///   committed in memory. sled's background thread writes its log about
    ///   every 500 ms, so a process kill or an OS crash loses the commands
    ///   acknowledged since then (the database stays consistent), at most
    ///   [`SledOptions::max_unsynced_commands`] of them.
    ///   [`SledRepository::sync`] makes everything acknowledged so far
    ///   durable on demand.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether a command that finds nobody writing commits its batch on the
    /// thread that polls its future, and, when durable, syncs there too,
    /// instead of handing it to the writer thread (default false).
    ///
    /// It saves the thread hand-offs of a lone command (to the writer and
    /// back), which on virtual machines, where waking an idle CPU is
    /// costly, are much of the library's cost for a lone caller. The price:
    /// that thread blocks for the transaction, and in durable mode for the
    /// sync. Turn it on when commands come from threads that may block (your
    /// own threads, a blocking pool such as tokio's `spawn_blocking`,
    /// `futures::executor::block_on`), not from an async executor's
    /// workers. Commands that arrive while a batch commits still queue and
    /// share the next sync.
    pub fn inline_writes(mut self, inline: bool) -> Self {
        self.inline_writes = inline;
        self
    }

    /// The most commands that share one sync; at least 1. Default
    /// [`DEFAULT_MAX_BATCH`].
    pub fn max_batch(mut self, commands: usize) -> Self {
        self.max_batch = commands.max(1);
        self
    }

    /// How many threads serve reads; at least 1. Default
    /// [`DEFAULT_READER_THREADS`].
    pub fn reader_threads(mut self, threads: usize) -> Self {
        self.reader_threads = threads.max(1);
        self
    }

    /// The size of sled's page cache in bytes (default
    /// [`DEFAULT_CACHE_BYTES`]). sled's resident memory is a small multiple
    /// of this plus a per-page table entry.
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// In [`Durability::Relaxed`] mode, how many acknowledged commands may
    /// at most be waiting for a sync (default
    /// [`DEFAULT_MAX_UNSYNCED_COMMANDS`], at least 1). The batch that would
    /// exceed it syncs before it is answered, like a durable one. Durable
    /// mode ignores it.
    pub fn max_unsynced_commands(mut self, commands: u64) -> Self {
        self.max_unsynced_commands = commands.max(1);
        self
    }

    /// Whether a missing database is created (default true). A new
    /// database is only ever created in a missing or empty directory: one
    /// that holds sled's other files or the commit mark without a data
    /// file, or files of something else, is refused whatever this says.
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// How much of the database is checked at open (default
    /// [`CheckAtOpen::Auto`]: everything, a walk of every tree, while the
    /// data file is at most
    /// [`CHECK_EVERYTHING_UP_TO`](userstate::storage::CHECK_EVERYTHING_UP_TO)
    /// bytes; beyond, what every open checks). A check that finds damage
    /// refuses the open.
    pub fn check_at_open(mut self, check: CheckAtOpen) -> Self {
        self.check_at_open = check;
        self
    }

    /// Whether the open goes on with a database that lost committed events
    /// (default false, which refuses it): for an operator who knows what
    /// was lost and chose to keep what is left rather than restore a
    /// backup. The loss is recorded in the database
    /// ([`SledRepository::accepted_losses`]) and the commit mark starts
    /// again from what is there.
    pub fn accept_loss(mut self, accept: bool) -> Self {
        self.accept_loss = accept;
        self
    }

    /// Opens the database in the directory `path`, creating it owner-only
    /// (0700, its files 0600) if nothing is there, and upgrades one of an
    /// earlier format in place. Blocks while sled recovers its log, so call
    /// it before entering async code or from a blocking task.
    ///
    /// Every open compares the count of committed events sled recovered
    /// with the commit mark `userstate.commits` beside sled's files. A
    /// database whose data file is not as its last clean close left it (a
    /// crash, or damage) is first opened on a copy in `userstate.probe/`,
    /// so that a refused open leaves its files as they were; that costs a
    /// copy of the data file.
    ///
    /// # Errors
    /// Internal (`USER-CORRUPT`) for a database of an unknown format
    /// version, one that holds user data without a format version, files
    /// sled cannot read, fewer committed events than the commit mark says,
    /// a failed check at open, a data file missing beside sled's other
    /// files, a directory of other files, a symbolic link or another user's
    /// files, or a record an upgrade cannot read (the database stays as it
    /// was); Unavailable when the directory cannot be created, read or
    /// written (the message says why) or another process holds the
    /// database open.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<SledRepository> {
        SledRepository::open_with(path.as_ref(), self, None)
    }

    /// Opens a new database in a private temporary directory (in memory
    /// where the system offers `/dev/shm`), removed when the last handle is
    /// dropped: for tests. Durability still defaults to
    /// [`Durability::Durable`], so the sync path runs.
    ///
    /// # Errors
    /// Unavailable when the directory cannot be created; as
    /// [`SledOptions::open`] otherwise.
    pub fn open_temporary(&self) -> Result<SledRepository> {
        let dir = userstate::storage::TemporaryDir::new("userstate-sled")?;
        let path = dir.path().join("db");
        SledRepository::open_with(&path, self, Some(dir))
    }
}
