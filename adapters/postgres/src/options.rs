//! How to reach the database, where in it the adapter keeps its tables, and
//! the bounds on every call.

use std::fmt;
use std::time::Duration;

use userstate::storage::{Durability, DEFAULT_MAX_BATCH};
use userstate::Result;

use crate::repository::PostgresRepository;

/// The schema the adapter uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "userstate";

/// The bound on connecting unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound on one call (a read, or a batch's transaction from its first
/// statement to its commit) unless told otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections the adapter's own pool holds unless told otherwise.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// Where the connections come from.
#[derive(Clone)]
pub(crate) enum Source {
    /// A connection string the adapter builds its pool (and its feed
    /// listener's connection) from.
    Connection(String),
    /// The host's own pool.
    Pool(deadpool_postgres::Pool),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // A connection string may hold a password.
            Source::Connection(_) => f.write_str("Connection(..)"),
            Source::Pool(pool) => f.debug_tuple("Pool").field(&pool.status()).finish(),
        }
    }
}

/// Options for a PostgreSQL database: where the connections come from (a
/// connection string, key=value pairs or a `postgres://` URL as libpq reads
/// them, or the host's own [`deadpool_postgres::Pool`]), the schema name,
/// durability, and the bounds on connecting and on every call.
///
/// ```no_run
/// use std::time::Duration;
/// use userstate_postgres::PostgresOptions;
/// # fn main() -> userstate::Result<()> {
/// let repository = PostgresOptions::new("host=/run/postgresql dbname=identity")
///     .schema("users_v1")
///     .command_timeout(Duration::from_secs(3))
///     .open()?;
/// # drop(repository);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    pub(crate) source: Source,
    pub(crate) schema: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) command_timeout: Duration,
    pub(crate) durability: Durability,
    pub(crate) max_batch: usize,
    pub(crate) pool_size: usize,
}

impl PostgresOptions {
    /// Options for the database `connection` names: schema
    /// [`DEFAULT_SCHEMA`], durable, connect timeout
    /// [`DEFAULT_CONNECT_TIMEOUT`], command timeout
    /// [`DEFAULT_COMMAND_TIMEOUT`], a pool of [`DEFAULT_POOL_SIZE`].
    pub fn new(connection: impl Into<String>) -> Self {
        PostgresOptions::from_source(Source::Connection(connection.into()))
    }

    /// Options for the host's own pool: the adapter takes its connections
    /// from it (the pool's own settings bound connecting). Without a
    /// connection of its own to `LISTEN` on, the adapter learns of other
    /// processes' commits by reading the feed's last position every
    /// [`FEED_POLL_INTERVAL`](crate::FEED_POLL_INTERVAL) while a reader waits.
    pub fn with_pool(pool: deadpool_postgres::Pool) -> Self {
        PostgresOptions::from_source(Source::Pool(pool))
    }

    fn from_source(source: Source) -> Self {
        PostgresOptions {
            source,
            schema: DEFAULT_SCHEMA.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            durability: Durability::Durable,
            max_batch: DEFAULT_MAX_BATCH,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }

    /// Keeps the tables in `schema` (ASCII letters, digits, `_`), so one
    /// database can hold several independent sets.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Bounds connecting to the server.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bounds every call: a read, or a batch's transaction from its first
    /// statement to its commit (waiting for another instance's commit
    /// included). A call past it is Unavailable; a commit past it is
    /// Unavailable with its outcome unknown
    /// ([`userstate::Error::is_outcome_unknown`]). The server ends a
    /// transaction whose client went silent after the same time, so an
    /// instance cut off from the server holds no lock longer.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// [`Durability::Durable`] (the default) commits with
    /// `synchronous_commit = on`, whatever the server's default: an
    /// acknowledged command survives a crash of the server.
    /// [`Durability::Relaxed`] commits with it off: a crash of the server
    /// may lose the last acknowledged commands (never part of one).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The most commands one transaction holds (at least 1).
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// How many connections the adapter's own pool holds (at least 2: one
    /// writes while others read); ignored with a host's pool.
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(2);
        self
    }

    /// The schema name.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// Opens the repository: connects, creates the schema if it is missing
    /// or checks the one there, and starts the writer and the feed's
    /// listener.
    ///
    /// # Errors
    /// InvalidArgument for a connection string or schema name that does not
    /// parse; Unavailable when the server cannot be reached within the
    /// connect timeout; Internal (`USER-CORRUPT`) for a newer schema
    /// version or a schema of another application.
    pub fn open(&self) -> Result<PostgresRepository> {
        PostgresRepository::open_with(self)
    }

    /// Creates the schema if it is missing, or checks the one there, and
    /// returns its version, without opening a repository.
    ///
    /// # Errors
    /// As [`PostgresOptions::open`].
    pub fn migrate(&self) -> Result<i64> {
        let engine = crate::engine::Engine::start(self)?;
        engine.migrate()
    }
}
