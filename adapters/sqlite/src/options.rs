//! How a database is opened: durability, busy timeout, batch size and the
//! number of reader threads.

use std::path::Path;
use std::time::Duration;

use userstate::Result;

use crate::SqliteRepository;

/// Default for [`SqliteOptions::busy_timeout`].
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Default for [`SqliteOptions::max_batch`].
pub const DEFAULT_MAX_BATCH: usize = 128;

/// Default for [`SqliteOptions::reader_threads`].
pub const DEFAULT_READER_THREADS: usize = 2;

/// What an acknowledged command survives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// `PRAGMA synchronous = FULL`: every commit is fsynced before any of its
    /// callers is answered, so an acknowledged command survives a process
    /// kill, an OS crash and a power loss.
    #[default]
    Durable,
    /// `PRAGMA synchronous = NORMAL`: the write-ahead log is fsynced only at
    /// checkpoints. An acknowledged command survives a process kill, but an OS
    /// crash or power loss may lose the most recent commits (never corrupt
    /// the database). Several times faster on slow disks.
    Relaxed,
}

/// Options for opening a [`SqliteRepository`]; a builder.
///
/// ```
/// use std::time::Duration;
/// use userstate_sqlite::{Durability, SqliteOptions};
///
/// # fn main() -> Result<(), userstate::Error> {
/// let repo = SqliteOptions::new()
///     .durability(Durability::Relaxed)
///     .busy_timeout(Duration::from_secs(2))
///     .open_in_memory()?;
/// assert_eq!(repo.stats().transactions, 0);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    pub(crate) durability: Durability,
    pub(crate) busy_timeout: Duration,
    pub(crate) max_batch: usize,
    pub(crate) reader_threads: usize,
    pub(crate) inline_writes: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Durable,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            max_batch: DEFAULT_MAX_BATCH,
            reader_threads: DEFAULT_READER_THREADS,
            inline_writes: false,
        }
    }
}

impl SqliteOptions {
    /// The defaults: durable, 5 s busy timeout, batches of up to 128
    /// commands, 2 reader threads.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets what an acknowledged command survives (default [`Durability::Durable`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long a statement waits for a lock held by another connection (for
    /// example another process writing the same file) before the command
    /// fails with Unavailable. Default [`DEFAULT_BUSY_TIMEOUT`].
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The most commands that share one transaction (and one fsync); at least
    /// 1. Default [`DEFAULT_MAX_BATCH`].
    pub fn max_batch(mut self, commands: usize) -> Self {
        self.max_batch = commands.max(1);
        self
    }

    /// How many threads, each with its own connection, serve reads of a
    /// database file; at least 1. Default [`DEFAULT_READER_THREADS`]. An
    /// in-memory database is read on its writer's connection instead.
    pub fn reader_threads(mut self, threads: usize) -> Self {
        self.reader_threads = threads.max(1);
        self
    }

    /// Whether a command may run its transaction on the thread that polls its
    /// future, when the writer thread is idle and nothing is queued for it
    /// (default false).
    ///
    /// It saves the two thread hand-offs of a command (waking the writer,
    /// then waking the caller), which on virtual machines, where waking an
    /// idle CPU is costly, are most of the library's cost for a lone caller.
    /// The price: that thread blocks for one transaction, and in durable
    /// mode for its fsync. Turn it on when commands come from threads that
    /// may block (your own threads, a blocking pool such as tokio's
    /// `spawn_blocking`, `futures::executor::block_on`), not from an async
    /// executor's workers. Under load, commands still queue for the writer
    /// thread and share its group commits.
    pub fn inline_writes(mut self, inline: bool) -> Self {
        self.inline_writes = inline;
        self
    }

    /// Opens the database file at `path`, creating it if missing, and
    /// migrates its schema to the current version.
    ///
    /// Blocks while it opens the file and migrates: call it at start-up (or
    /// from a blocking task), not on an async executor's hot path.
    ///
    /// # Errors
    /// Internal ([`userstate::ids::CORRUPT`]) when the file is not a SQLite
    /// database, is a SQLite database of another application, or has a schema
    /// version this library does not know (written by a newer version); the
    /// file is left untouched. Unavailable when the file cannot be opened or
    /// stays locked past the busy timeout; Internal for other faults.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<SqliteRepository> {
        SqliteRepository::open_with(path.as_ref(), self)
    }

    /// Opens a new, private in-memory database: lost when the last handle is
    /// dropped. Reads run on the writer's connection (an in-memory database
    /// has exactly one), after the writes queued before them.
    ///
    /// # Errors
    /// Internal when SQLite cannot create it or a thread cannot be spawned.
    pub fn open_in_memory(&self) -> Result<SqliteRepository> {
        SqliteRepository::open_in_memory_with(self)
    }
}
