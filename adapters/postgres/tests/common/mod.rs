//! Repositories for the tests: each on a fresh database of the test
//! cluster, kept as long as the repository.

#![allow(dead_code)] // Each test binary uses a different part.

use std::sync::Arc;

use async_trait::async_trait;
use userstate::storage::{Scope, Update};
use userstate::{
    Event, FeedEvent, HistoryQuery, ListQuery, OrgId, Page, Result, StoredPolicies, StoredPolicy,
    User, UserId, UserRepository, UserState,
};
use userstate_postgres::testing::{self, TestDatabase};
use userstate_postgres::{Durability, PostgresOptions, PostgresRepository};

/// Whether the PostgreSQL tests run here (see [`testing::available`]).
pub fn available() -> bool {
    testing::available()
}

/// A repository on a database of its own.
#[derive(Debug)]
pub struct TestRepo {
    pub repo: PostgresRepository,
    pub db: TestDatabase,
}

impl TestRepo {
    pub fn open(options: impl Fn(PostgresOptions) -> PostgresOptions) -> Self {
        let db = testing::database().expect("a test database");
        let repo = options(PostgresOptions::new(db.connection_string()))
            .open()
            .expect("open");
        TestRepo { repo, db }
    }

    /// Another handle on the same database, as another instance opens it.
    pub fn another_handle(&self) -> PostgresRepository {
        PostgresOptions::new(self.db.connection_string())
            .open()
            .expect("open")
    }
}

/// A fresh durable repository (the default options).
pub fn durable() -> Arc<dyn UserRepository> {
    Arc::new(TestRepo::open(|o| o))
}

/// A fresh relaxed repository.
pub fn relaxed() -> Arc<dyn UserRepository> {
    Arc::new(TestRepo::open(|o| o.durability(Durability::Relaxed)))
}

/// Two handles on one database, used in turn: the guarantees hold across
/// handles (and so across instances).
pub fn two_handles() -> Arc<dyn UserRepository> {
    let first = TestRepo::open(|o| o);
    let second = first.another_handle();
    Arc::new(TwoHandles {
        handles: [first.repo.clone(), second],
        next: std::sync::atomic::AtomicUsize::new(0),
        _first: first,
    })
}

#[derive(Debug)]
struct TwoHandles {
    handles: [PostgresRepository; 2],
    next: std::sync::atomic::AtomicUsize,
    _first: TestRepo,
}

impl TwoHandles {
    fn pick(&self) -> &PostgresRepository {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.handles[i % 2]
    }
}

macro_rules! forward {
    ($type:ty, $self:ident => $target:expr) => {
        #[async_trait]
        impl UserRepository for $type {
            async fn load(&$self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
                $target.load(id, scope).await
            }
            async fn load_many(&$self, wanted: &[(&UserId, &Scope)]) -> Result<Vec<Option<User>>> {
                $target.load_many(wanted).await
            }
            async fn update(&$self, update: Update) -> Result<User> {
                $target.update(update).await
            }
            async fn history(&$self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
                $target.history(id, scope, query).await
            }
            async fn list(&$self, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
                $target.list(org, query).await
            }
            async fn count(&$self, org: &OrgId, state: Option<UserState>) -> Result<u64> {
                $target.count(org, state).await
            }
            async fn organisations(&$self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
                $target.organisations(after, limit).await
            }
            async fn feed(&$self, after: u64, limit: u32) -> Result<Vec<FeedEvent>> {
                $target.feed(after, limit).await
            }
            async fn wait_for_events(&$self, after: u64) -> Result<()> {
                $target.wait_for_events(after).await
            }
            async fn policies(&$self, org: &OrgId) -> Result<StoredPolicies> {
                $target.policies(org).await
            }
            async fn set_policy(&$self, org: Option<&OrgId>, policy: StoredPolicy) -> Result<()> {
                $target.set_policy(org, policy).await
            }
        }
    };
}

forward!(TestRepo, self => self.repo);
forward!(TwoHandles, self => self.pick());
