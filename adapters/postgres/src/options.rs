//! How to reach the database, and where in it the adapter keeps its tables.

use std::time::Duration;

use tokio_postgres::NoTls;
use userstate::{Error, Result};

use crate::error::from_postgres;
use crate::format;

/// The schema the adapter uses unless told otherwise.
pub const DEFAULT_SCHEMA: &str = "userstate";

/// The bound on connecting unless told otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Options for a PostgreSQL database: the connection string (key=value
/// pairs or a `postgres://` URL, as libpq reads them), the schema name and
/// the connect timeout.
///
/// ```no_run
/// use userstate_postgres::PostgresOptions;
/// # fn main() -> userstate::Result<()> {
/// let options = PostgresOptions::new("host=/run/postgresql dbname=identity").schema("users_v1");
/// let version = options.migrate()?;
/// assert_eq!(version, userstate_postgres::SCHEMA_VERSION);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    connection: String,
    schema: String,
    connect_timeout: Duration,
}

impl PostgresOptions {
    /// Options for the database `connection` names, schema
    /// [`DEFAULT_SCHEMA`], connect timeout [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn new(connection: impl Into<String>) -> Self {
        PostgresOptions {
            connection: connection.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Keeps the tables in `schema` (ASCII letters, digits, `_`), so one
    /// database can hold several independent sets.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Bounds connecting to the server (none: wait as long as the
    /// operating system does).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The schema name.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// Creates the schema if it is missing, or checks the one there;
    /// returns its version.
    ///
    /// # Errors
    /// InvalidArgument for a connection string or schema name that does not
    /// parse; Unavailable when the server cannot be reached within the
    /// connect timeout; Corrupt for a newer schema version or a schema of
    /// another application.
    pub fn migrate(&self) -> Result<i64> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal("cannot start the client's runtime").with_source(e))?;
        let mut config: tokio_postgres::Config = self.connection.parse().map_err(|e| {
            Error::new(
                userstate::ErrorKind::InvalidArgument,
                userstate::ids::INVALID_NAME,
                format!("the PostgreSQL connection string does not parse: {e}"),
            )
        })?;
        config.connect_timeout(self.connect_timeout);
        format::quote(&self.schema)?;
        runtime.block_on(async {
            let (mut client, connection) = config.connect(NoTls).await.map_err(from_postgres)?;
            let driver = tokio::spawn(connection);
            let migrated = format::migrate(&mut client, &self.schema).await;
            drop(client);
            let _ = driver.await;
            migrated
        })
    }
}
