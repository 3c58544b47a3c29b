//! Repositories for the tests: each on a fresh database of the test
//! cluster, kept as long as the repository.

#![allow(dead_code)] // Each test binary uses a different part.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use async_trait::async_trait;
use futures::executor::block_on;
use userstate::conformance::Fixture;
use userstate::storage::{Scope, Update};
use userstate::{
    ErrorKind, Event, FeedEvent, HistoryQuery, InitialState, ListQuery, OrgId, Page, Result,
    StoredPolicies, StoredPolicy, User, UserId, UserRepository, UserState,
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
            async fn update_many(&$self, updates: Vec<Update>) -> Vec<Result<User>> {
                $target.update_many(updates).await
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
            async fn policy_organisations(&$self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
                $target.policy_organisations(after, limit).await
            }
        }
    };
}

forward!(TestRepo, self => self.repo);
forward!(TwoHandles, self => self.pick());

/// What the writers have seen, shared with the test.
#[derive(Default)]
pub struct Tally {
    pub acknowledged: Mutex<Vec<UserId>>,
    pub unknown: Mutex<Vec<UserId>>,
    pub failures: AtomicUsize,
    pub slowest_failure_ms: AtomicU64,
    pub changed: Condvar,
}

impl Tally {
    /// Blocks until `done` holds of the acknowledged count and failures.
    pub fn wait_until(&self, done: impl Fn(usize, usize) -> bool) {
        let mut acknowledged = self.acknowledged.lock().unwrap();
        while !done(acknowledged.len(), self.failures.load(Ordering::SeqCst)) {
            acknowledged = self.changed.wait(acknowledged).unwrap();
        }
    }
}

/// Four writers creating users `w{thread}-{n}` until told to stop; each
/// records its outcomes, and only Unavailable may fail.
pub fn writers(
    f: &Fixture,
    tally: &Arc<Tally>,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<()>> {
    (0..4)
        .map(|t| {
            let (f, tally, stop) = (f.clone(), tally.clone(), stop.clone());
            thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let id = UserId::new(format!("w{t}-{n}")).unwrap();
                    let started = Instant::now();
                    let created =
                        block_on(f.service.create(&f.acme_admin, &id, InitialState::Active));
                    match created {
                        Ok(_) => tally.acknowledged.lock().unwrap().push(id),
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e:?}");
                            if e.is_outcome_unknown() {
                                tally.unknown.lock().unwrap().push(id);
                            }
                            let took = started.elapsed().as_millis() as u64;
                            tally.slowest_failure_ms.fetch_max(took, Ordering::SeqCst);
                            tally.failures.fetch_add(1, Ordering::SeqCst);
                            // Let the other writers and the test run.
                            thread::yield_now();
                        }
                    }
                    tally.changed.notify_all();
                }
            })
        })
        .collect()
}
