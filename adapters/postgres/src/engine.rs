//! The client's machinery: a tokio runtime of the adapter's own (callers
//! need none), the connection pool, the statements in the schema, and the
//! bound on every call.
//!
//! A connection that timed out or lost its link is dropped, never handed
//! out again: after a network partition the next call connects afresh
//! instead of waiting on a socket nobody answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use userstate::{Error, ErrorKind, Result};

use crate::error::{from_pool, timed_out};
use crate::format;
use crate::layout::Statements;
use crate::options::{PostgresOptions, Source};

/// What a call does with a connection: a future that borrows it.
pub(crate) type Work<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// The runtime, the pool and the statements; shut down on drop.
pub(crate) struct Engine {
    runtime: Option<tokio::runtime::Runtime>,
    pub(crate) pool: Pool,
    pub(crate) statements: Arc<Statements>,
    /// The connection settings of a pool the adapter built: its feed
    /// listener connects with them. `None` with a host's pool.
    pub(crate) listen: Option<tokio_postgres::Config>,
    pub(crate) command_timeout: Duration,
}

impl Engine {
    /// The runtime and the pool for `options`; connects lazily.
    ///
    /// # Errors
    /// InvalidArgument for a connection string or schema name that does not
    /// parse; Internal when the runtime cannot start.
    pub(crate) fn start(options: &PostgresOptions) -> Result<Self> {
        let quoted = format::quote(&options.schema)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("userstate-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::internal("cannot start the client's runtime").with_source(e))?;
        let (pool, listen) = match &options.source {
            Source::Pool(pool) => (pool.clone(), None),
            Source::Connection(connection) => {
                let mut config: tokio_postgres::Config = connection.parse().map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        userstate::ids::INVALID_NAME,
                        format!("the PostgreSQL connection string does not parse: {e}"),
                    )
                })?;
                config
                    .connect_timeout(options.connect_timeout)
                    // The operating system gives up on a silent peer too.
                    .tcp_user_timeout(options.command_timeout)
                    .keepalives(true)
                    .keepalives_idle(options.command_timeout);
                if config.get_application_name().is_none() {
                    config.application_name("userstate");
                }
                let manager = Manager::from_config(
                    config.clone(),
                    NoTls,
                    ManagerConfig {
                        recycling_method: RecyclingMethod::Fast,
                    },
                );
                let pool = Pool::builder(manager)
                    .max_size(options.pool_size)
                    .runtime(deadpool_postgres::Runtime::Tokio1)
                    .wait_timeout(Some(options.command_timeout))
                    .create_timeout(Some(options.connect_timeout))
                    .build()
                    .map_err(|e| {
                        Error::internal("cannot build the connection pool").with_source(e)
                    })?;
                (pool, Some(config))
            }
        };
        Ok(Engine {
            runtime: Some(runtime),
            pool,
            statements: Arc::new(Statements::new(&quoted, &options.schema)),
            listen,
            command_timeout: options.command_timeout,
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the engine")
    }

    /// Creates or checks the schema; returns its version.
    pub(crate) fn migrate(&self) -> Result<i64> {
        self.block_on(with_client(
            &self.pool,
            &self.statements,
            self.command_timeout,
            "opening",
            |client, statements| Box::pin(format::migrate(client, &statements.schema)),
        ))
    }

    /// Runs `work` on the adapter's runtime and answers on any executor.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> impl Future<Output = Result<T>> + Send + 'static {
        let task = self.runtime().spawn(work);
        async move {
            task.await
                .unwrap_or_else(|e| Err(Error::internal(format!("a PostgreSQL call failed: {e}"))))
        }
    }

    /// Runs `work` to its end on the calling thread, which must not be an
    /// async task (the writer's threads).
    pub(crate) fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.runtime().handle().block_on(work)
    }

    /// A handle on the runtime, for tasks that outlive a call.
    pub(crate) fn handle(&self) -> tokio::runtime::Handle {
        self.runtime().handle().clone()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Dropping a runtime may not block inside an async context, which
        // is where a host drops its last handle.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Runs `work` on a connection of `pool`, within `timeout` (waiting for
/// the connection included). A connection that timed out or failed is
/// dropped rather than returned to the pool.
///
/// # Errors
/// What `work` returned; Unavailable past the timeout or when no
/// connection can be had.
pub(crate) async fn with_client<T, F>(
    pool: &Pool,
    statements: &Statements,
    timeout: Duration,
    what: &'static str,
    work: F,
) -> Result<T>
where
    F: for<'c> FnOnce(&'c Object, &'c Statements) -> Work<'c, T>,
{
    let client = match tokio::time::timeout(timeout, pool.get()).await {
        Ok(client) => client.map_err(from_pool)?,
        Err(_) => return Err(timed_out("waiting for a connection", timeout)),
    };
    let outcome = match tokio::time::timeout(timeout, work(&client, statements)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(timed_out(what, timeout)),
    };
    if outcome.as_ref().is_err_and(is_connection_fault) || client.is_closed() {
        drop(Object::take(client));
    }
    outcome
}

/// Whether an error leaves the connection in doubt: it timed out or lost
/// its link (the server's own refusals leave it usable).
pub(crate) fn is_connection_fault(error: &Error) -> bool {
    error.kind() == ErrorKind::Unavailable
}
