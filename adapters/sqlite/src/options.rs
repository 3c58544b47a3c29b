//! How a database is opened: durability, who leads group commits, batch
//! size, reader threads, the busy timeout, whether a missing file is
//! created, the check at open and whether a known loss is accepted.

use std::path::Path;
use std::time::Duration;

use userstate::storage::{CheckAtOpen, Durability, DEFAULT_MAX_BATCH};
use userstate::Result;

use crate::repository::SqliteRepository;

/// Default for [`SqliteOptions::busy_timeout`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Default for [`SqliteOptions::reader_threads`].
pub const DEFAULT_READER_THREADS: usize = 2;

/// Options for opening a [`SqliteRepository`]; a builder.
///
/// ```
/// use std::time::Duration;
/// use userstate::storage::Durability;
/// use userstate_sqlite::SqliteOptions;
///
/// # fn main() -> Result<(), userstate::Error> {
/// let repo = SqliteOptions::new()
///     .durability(Durability::Relaxed)
///     .busy_timeout(Duration::from_secs(2))
///     .open_temporary()?;
/// assert_eq!(repo.stats().batches, 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    pub(crate) durability: Durability,
    pub(crate) inline_writes: bool,
    pub(crate) max_batch: usize,
    pub(crate) reader_threads: usize,
    pub(crate) busy_timeout: Duration,
    pub(crate) create_if_missing: bool,
    pub(crate) check_at_open: CheckAtOpen,
    pub(crate) accept_loss: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Durable,
            inline_writes: false,
            max_batch: DEFAULT_MAX_BATCH,
            reader_threads: DEFAULT_READER_THREADS,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            create_if_missing: true,
            check_at_open: CheckAtOpen::Auto,
            accept_loss: false,
        }
    }
}

impl SqliteOptions {
    /// The defaults: durable, the writer thread leads, batches of up to
    /// [`DEFAULT_MAX_BATCH`] commands, 2 reader threads, 5 s busy timeout,
    /// a missing file created, [`CheckAtOpen::Auto`], no loss accepted.
    pub fn new() -> Self {
        Self::default()
    }

    /// What an acknowledged command survives (default
    /// [`Durability::Durable`]).
    ///
    /// - Durable: WAL with `PRAGMA synchronous = FULL`, every commit is
    ///   fsynced before any of its callers is answered.
    /// - Relaxed: `PRAGMA synchronous = NORMAL`, the write-ahead log is
    ///   fsynced at checkpoints (and by [`SqliteRepository::sync`]). An
    ///   acknowledged command survives a process kill; an OS crash or power
    ///   loss may lose the most recent ones. Several times faster on slow disks.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Whether a command that finds nobody writing commits its batch on the
    /// thread that polls its future, instead of handing it to the writer
    /// thread (default false).
    ///
    /// It saves the two thread hand-offs of a lone command (waking the
    /// writer, then waking the caller), which on virtual machines, where
    /// waking an idle CPU is costly, are most of the library's cost for a
    /// lone caller. The price: that thread blocks for one transaction, and
    /// in durable mode for its fsync. Turn it on when commands come from
    /// threads that may block (your own threads, a blocking pool such as
    /// tokio's `spawn_blocking`, `futures::executor::block_on`), not from an
    /// async executor's workers. Commands that arrive while a batch commits
    /// still queue and share the next commit.
    pub fn inline_writes(mut self, inline: bool) -> Self {
        self.inline_writes = inline;
        self
    }

    /// The most commands that share one transaction (and one fsync); at
    /// least 1. Default [`DEFAULT_MAX_BATCH`].
    pub fn max_batch(mut self, commands: usize) -> Self {
        self.max_batch = commands.max(1);
        self
    }

    /// How many threads, each with its own connection, serve reads; at
    /// least 1. Default [`DEFAULT_READER_THREADS`].
    pub fn reader_threads(mut self, threads: usize) -> Self {
        self.reader_threads = threads.max(1);
        self
    }

    /// How long a statement waits for a lock held by another connection (for
    /// example another process writing the same file) before the command
    /// fails with Unavailable. Default [`DEFAULT_BUSY_TIMEOUT`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Whether a missing file is created (default true). A new database is
    /// only ever created where nothing of one is: an existing empty file,
    /// or a missing file whose `-wal` or commit mark is still there, is
    /// refused whatever this says.
    pub fn create_if_missing(mut self, create: bool) -> Self {
        self.create_if_missing = create;
        self
    }

    /// How much of the file is checked at open (default
    /// [`CheckAtOpen::Auto`]: everything up to
    /// [`CHECK_EVERYTHING_UP_TO`](userstate::storage::CHECK_EVERYTHING_UP_TO)
    /// bytes, SQLite's `quick_check` beyond, about half a second for a
    /// million users). A check that finds damage refuses the open.
    pub fn check_at_open(mut self, check: CheckAtOpen) -> Self {
        self.check_at_open = check;
        self
    }

    /// Whether the open goes on with a database that lost committed events
    /// (default false, which refuses it): for an operator who knows what
    /// was lost and chose to keep what is left rather than restore a
    /// backup. The loss is recorded in the database
    /// ([`SqliteRepository::accepted_losses`]) and the commit mark starts
    /// again from what is there.
    pub fn accept_loss(mut self, accept: bool) -> Self {
        self.accept_loss = accept;
        self
    }

    /// Opens the database file at `path`, creating it owner-only (0600) if
    /// nothing is there, and upgrades a file of an earlier format in place,
    /// in one transaction.
    ///
    /// Blocks while it opens the file, checks and upgrades it: call it at
    /// start-up (or from a blocking task), not on an async executor's hot
    /// path.
    ///
    /// The file, its `-wal` and `-shm`, and its commit mark `<path>-commits`
    /// (the count of committed events, which tells at open whether any were
    /// lost) must be the opener's own and are never opened through a
    /// symbolic link; access for others is taken away.
    ///
    /// # Errors
    /// Internal ([`userstate::ids::CORRUPT`]) when the file is not a SQLite
    /// database, is a SQLite database of another application, is empty,
    /// has a schema version this library does not know (written by a newer
    /// version), holds fewer committed events than its commit mark says,
    /// fails its check at open, holds a row that does not decode in its
    /// format, or is a symbolic link or another user's file; the file is
    /// left untouched. Unavailable when the file cannot be opened or
    /// written (read-only, a directory, permission denied: the message says
    /// which) or stays locked past the busy timeout; Internal for other
    /// faults.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<SqliteRepository> {
        SqliteRepository::open_with(path.as_ref(), self, None)
    }

    /// Opens a new database in a private temporary directory (in memory
    /// where the system offers `/dev/shm`), removed when the last handle is
    /// dropped: for tests.
    ///
    /// # Errors
    /// Unavailable when the directory cannot be created; as
    /// [`SqliteOptions::open`] otherwise.
    pub fn open_temporary(&self) -> Result<SqliteRepository> {
        let dir = userstate::storage::TemporaryDir::new("userstate-sqlite")?;
        let path = dir.path().join("users.sqlite3");
        SqliteRepository::open_with(&path, self, Some(dir))
    }
}
