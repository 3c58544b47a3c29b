//! [`PostgresRepository`]: the [`UserRepository`] on a PostgreSQL schema,
//! with the writes on the group-commit writer and the reads on the pool.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use userstate::storage::{
    FeedSignal, GroupCommit, Scope, Update, UserRepository, Verification, WriterStats,
};
use userstate::{
    Event, FeedEvent, HistoryQuery, ListQuery, OrgId, Page, Result, StoredPolicies, StoredPolicy,
    User, UserId, UserState,
};

use crate::engine::{with_client, Engine};
use crate::error::from_postgres;
use crate::options::PostgresOptions;
use crate::reader;
use crate::record::policy_key;
use crate::verify;
use crate::watcher;
use crate::writer::Writer;

/// A [`UserRepository`] on a PostgreSQL database.
///
/// Cheap to clone: clones share one writer, its group commits, its pool
/// and its [`WriterStats`]. Handles opened separately, in this process or
/// in others, on one schema keep exactly-one-wins: every writing
/// transaction takes the schema's feed lock first and holds it to its
/// commit, so each command decides on the user as committed.
///
/// Dropping the last clone lets the writer commit the queued work, then
/// stops the adapter's runtime and closes its connections.
///
/// A command whose future is dropped after it was queued may still be
/// stored, as with any database: the service's next command sees it.
#[derive(Clone)]
pub struct PostgresRepository {
    inner: Arc<Inner>,
}

/// Field order is drop order: the writer commits what is queued, then the
/// runtime (and with it the listener and the pool's connections) stops.
struct Inner {
    writer: GroupCommit<Writer>,
    signal: Arc<FeedSignal>,
    engine: Arc<Engine>,
    options: PostgresOptions,
}

impl PostgresRepository {
    /// Opens the repository on the database `connection` names, with the
    /// default [`PostgresOptions`].
    ///
    /// # Errors
    /// See [`PostgresOptions::open`].
    pub fn connect(connection: impl Into<String>) -> Result<Self> {
        PostgresOptions::new(connection).open()
    }

    pub(crate) fn open_with(options: &PostgresOptions) -> Result<Self> {
        let engine = Arc::new(Engine::start(options)?);
        engine.migrate()?;
        let last = engine.block_on(with_client(
            &engine.pool,
            &engine.statements,
            engine.command_timeout,
            "reading the feed",
            |client, statements| Box::pin(reader::last_position(client, statements)),
        ))?;
        let signal = Arc::new(FeedSignal::new(last));
        watcher::start(
            &engine.handle(),
            engine.listen.clone(),
            engine.pool.clone(),
            engine.statements.clone(),
            signal.clone(),
        );
        // Writer threads, never the caller's: the writer blocks on the
        // adapter's runtime, which a caller's async task may not do.
        let writer = GroupCommit::start(
            "userstate-postgres-writer",
            Writer::new(engine.clone(), options.durability, signal.clone())?,
            options.max_batch,
            false,
        )?;
        Ok(PostgresRepository {
            inner: Arc::new(Inner {
                writer,
                signal,
                engine,
                options: options.clone(),
            }),
        })
    }

    /// The writer's counters: commands, the batches that shared a
    /// transaction, conflicts, the largest batch. Shared by clones of this
    /// handle, not by other handles on the same schema.
    pub fn stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// The options the repository was opened with.
    pub fn options(&self) -> &PostgresOptions {
        &self.inner.options
    }

    /// Checks the whole schema in one consistent read while commands go
    /// on: every row decodes, every snapshot is the replay of its history,
    /// histories are numbered from 1 without a gap, and the feed holds
    /// every position once, each user's in sequence order.
    ///
    /// # Errors
    /// Unavailable or Internal when the database cannot be read; damage is
    /// reported in the [`Verification`].
    pub async fn verify(&self) -> Result<Verification> {
        // A whole check may take longer than one command: it is bounded
        // by the server's own settings only.
        let engine = &self.inner.engine;
        let pool = engine.pool.clone();
        let statements = engine.statements.clone();
        engine
            .spawn(async move {
                let client = pool.get().await.map_err(crate::error::from_pool)?;
                verify::everything(&client, &statements).await
            })
            .await
    }

    /// Runs a read on a connection of the pool, on the adapter's runtime,
    /// within the command timeout.
    fn read<T, F>(
        &self,
        what: &'static str,
        work: F,
    ) -> impl std::future::Future<Output = Result<T>> + Send + 'static
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c deadpool_postgres::Object,
                &'c crate::layout::Statements,
            ) -> crate::engine::Work<'c, T>
            + Send
            + 'static,
    {
        let engine = &self.inner.engine;
        let (pool, statements, timeout) = (
            engine.pool.clone(),
            engine.statements.clone(),
            engine.command_timeout,
        );
        engine.spawn(async move { with_client(&pool, &statements, timeout, what, work).await })
    }
}

impl fmt::Debug for PostgresRepository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresRepository")
            .field("options", &self.inner.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl From<PostgresRepository> for Arc<dyn UserRepository> {
    fn from(repository: PostgresRepository) -> Self {
        Arc::new(repository)
    }
}

#[async_trait]
impl UserRepository for PostgresRepository {
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
        let wanted = vec![(id.clone(), scope.clone())];
        let mut found = self.load_scoped(wanted).await?;
        Ok(found.pop().flatten())
    }

    async fn load_many(&self, wanted: &[(&UserId, &Scope)]) -> Result<Vec<Option<User>>> {
        let wanted = wanted
            .iter()
            .map(|(id, scope)| ((*id).clone(), (*scope).clone()))
            .collect();
        self.load_scoped(wanted).await
    }

    /// Queues the update for the writer, which runs the decision inside the
    /// batch's transaction, on the user read under the feed lock: it never
    /// conflicts with another instance of the adapter. Answered once the
    /// transaction committed (with `synchronous_commit = on` when durable)
    /// or failed.
    async fn update(&self, update: Update) -> Result<User> {
        self.inner.writer.update(update).await
    }

    /// One batch of the writer's, in one transaction.
    async fn update_many(&self, updates: Vec<Update>) -> Vec<Result<User>> {
        self.inner.writer.update_many(updates).await
    }

    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
        let (id, scope) = (id.clone(), scope.clone());
        self.read("reading a history", move |client, statements| {
            Box::pin(async move { reader::history(client, statements, &id, &scope, query).await })
        })
        .await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
        let (org, query) = (org.clone(), query.clone());
        self.read("listing users", move |client, statements| {
            Box::pin(async move { reader::list(client, statements, &org, &query).await })
        })
        .await
    }

    async fn count(&self, org: &OrgId, state: Option<UserState>) -> Result<u64> {
        let org = org.clone();
        self.read("counting users", move |client, statements| {
            Box::pin(async move { reader::count(client, statements, &org, state).await })
        })
        .await
    }

    async fn policy_organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        let after = after.cloned();
        self.read("listing policies", move |client, statements| {
            Box::pin(async move {
                reader::policy_organisations(client, statements, after.as_ref(), limit).await
            })
        })
        .await
    }

    async fn organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        let after = after.cloned();
        self.read("listing organisations", move |client, statements| {
            Box::pin(async move {
                reader::organisations(client, statements, after.as_ref(), limit).await
            })
        })
        .await
    }

    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<FeedEvent>> {
        self.read("reading the feed", move |client, statements| {
            Box::pin(async move { reader::feed(client, statements, after, limit).await })
        })
        .await
    }

    /// This handle's own commits wake the waiter at once; other handles'
    /// and processes' as their `NOTIFY` arrives (within
    /// [`FEED_POLL_INTERVAL`](crate::FEED_POLL_INTERVAL) with a host's pool).
    async fn wait_for_events(&self, after: u64) -> Result<()> {
        self.inner.signal.wait(after).await;
        Ok(())
    }

    async fn policies(&self, org: &OrgId) -> Result<StoredPolicies> {
        let org = org.clone();
        self.read("reading policies", move |client, statements| {
            Box::pin(async move { reader::policies(client, statements, &org).await })
        })
        .await
    }

    async fn set_policy(&self, org: Option<&OrgId>, policy: StoredPolicy) -> Result<()> {
        let key = policy_key(org).to_owned();
        let record = userstate::storage::json::encode_policy(&policy)?;
        let synchronous = self.inner.options.durability == userstate::storage::Durability::Durable;
        self.read("storing a policy", move |client, statements| {
            Box::pin(async move {
                let setting = if synchronous { "on" } else { "off" };
                client
                    .batch_execute(&format!("BEGIN; SET LOCAL synchronous_commit TO {setting}"))
                    .await
                    .map_err(from_postgres)?;
                let stored = client
                    .execute(&statements.set_policy, &[&key, &record])
                    .await
                    .map_err(from_postgres);
                let end = if stored.is_ok() { "COMMIT" } else { "ROLLBACK" };
                client.batch_execute(end).await.map_err(from_postgres)?;
                stored.map(|_| ())
            })
        })
        .await
    }
}

impl PostgresRepository {
    async fn load_scoped(&self, wanted: Vec<(UserId, Scope)>) -> Result<Vec<Option<User>>> {
        self.read("reading users", move |client, statements| {
            Box::pin(async move { reader::load_scoped(client, statements, &wanted).await })
        })
        .await
    }
}
