//! Repositories for the tests: on a temporary file kept alive as long as the
//! repository, and two handles on one file behind one repository.

#![allow(dead_code)] // Each test binary uses a different part.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tempfile::TempDir;
use userstate::storage::{Commit, Scope, Update};
use userstate::{
    Caller, Event, EventPayload, HistoryQuery, InMemoryAuthorizer, InitialState, ListQuery,
    LockCause, OrgId, Page, Permission, Result, Timestamp, UnlockCause, User, UserId,
    UserRepository, UserService, UserState, MAX_PAGE_SIZE,
};
use userstate_sqlite::{Durability, SqliteOptions, SqliteRepository};

/// A repository on a file in its own temporary directory, removed when the
/// repository is dropped (the repository first: it closes the file).
#[derive(Debug)]
pub struct TempRepo {
    pub repo: SqliteRepository,
    pub dir: TempDir,
}

impl TempRepo {
    pub fn open(options: &SqliteOptions) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let repo = options.open(db_path(dir.path())).expect("open");
        TempRepo { repo, dir }
    }

    pub fn path(&self) -> PathBuf {
        db_path(self.dir.path())
    }
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("users.db")
}

pub fn relaxed() -> SqliteOptions {
    SqliteOptions::new().durability(Durability::Relaxed)
}

/// A fresh durable (default options) repository on a temporary file.
pub fn durable_file() -> Arc<dyn UserRepository> {
    Arc::new(TempRepo::open(&SqliteOptions::new()))
}

/// A fresh relaxed repository on a temporary file.
pub fn relaxed_file() -> Arc<dyn UserRepository> {
    Arc::new(TempRepo::open(&relaxed()))
}

/// A fresh relaxed file whose writes run on the caller's thread when the
/// writer is idle.
pub fn inline_file() -> Arc<dyn UserRepository> {
    Arc::new(TempRepo::open(&relaxed().inline_writes(true)))
}

/// The same, durable.
pub fn inline_durable_file() -> Arc<dyn UserRepository> {
    Arc::new(TempRepo::open(&SqliteOptions::new().inline_writes(true)))
}

/// A fresh temporary database (in `/dev/shm` where the system has it).
pub fn temporary() -> Arc<dyn UserRepository> {
    SqliteRepository::open_temporary().expect("open").into()
}

#[async_trait]
impl UserRepository for TempRepo {
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
        self.repo.load(id, scope).await
    }
    async fn load_many(&self, wanted: &[(&UserId, &Scope)]) -> Result<Vec<Option<User>>> {
        self.repo.load_many(wanted).await
    }
    async fn update(&self, update: Update) -> Result<User> {
        self.repo.update(update).await
    }
    async fn update_many(&self, updates: Vec<Update>) -> Vec<Result<User>> {
        self.repo.update_many(updates).await
    }
    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
        self.repo.history(id, scope, query).await
    }
    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
        self.repo.list(org, query).await
    }
    async fn count(&self, org: &OrgId, state: Option<UserState>) -> Result<u64> {
        self.repo.count(org, state).await
    }
    async fn organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        self.repo.organisations(after, limit).await
    }
    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<userstate::FeedEvent>> {
        self.repo.feed(after, limit).await
    }
    async fn wait_for_events(&self, after: u64) -> Result<()> {
        self.repo.wait_for_events(after).await
    }
    async fn policies(&self, org: &OrgId) -> Result<userstate::StoredPolicies> {
        self.repo.policies(org).await
    }
    async fn set_policy(&self, org: Option<&OrgId>, policy: userstate::StoredPolicy) -> Result<()> {
        self.repo.set_policy(org, policy).await
    }
    async fn policy_organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        self.repo.policy_organisations(after, limit).await
    }
}

/// Two independently opened handles on one file (each with its own writer
/// thread, readers and connections), used in turn: every call goes to the
/// next handle, so the reads that check a command usually go to the other
/// handle than its update.
#[derive(Debug)]
pub struct TwoHandles {
    handles: [SqliteRepository; 2],
    next: AtomicUsize,
    dir: TempDir,
}

impl TwoHandles {
    pub fn open(options: &SqliteOptions) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = db_path(dir.path());
        let first = options.open(&path).expect("open first handle");
        let second = options.open(&path).expect("open second handle");
        TwoHandles {
            handles: [first, second],
            next: AtomicUsize::new(0),
            dir,
        }
    }

    pub fn handles(&self) -> &[SqliteRepository; 2] {
        &self.handles
    }

    fn handle(&self) -> &SqliteRepository {
        let [first, second] = &self.handles;
        if self.next.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
            first
        } else {
            second
        }
    }
}

/// A fresh pair of relaxed handles on one temporary file.
pub fn two_handles() -> Arc<dyn UserRepository> {
    Arc::new(TwoHandles::open(&relaxed()))
}

#[async_trait]
impl UserRepository for TwoHandles {
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
        self.handle().load(id, scope).await
    }
    async fn load_many(&self, wanted: &[(&UserId, &Scope)]) -> Result<Vec<Option<User>>> {
        self.handle().load_many(wanted).await
    }
    async fn update(&self, update: Update) -> Result<User> {
        self.handle().update(update).await
    }
    async fn update_many(&self, updates: Vec<Update>) -> Vec<Result<User>> {
        self.handle().update_many(updates).await
    }
    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
        self.handle().history(id, scope, query).await
    }
    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
        self.handle().list(org, query).await
    }
    async fn count(&self, org: &OrgId, state: Option<UserState>) -> Result<u64> {
        self.handle().count(org, state).await
    }
    async fn organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        self.handle().organisations(after, limit).await
    }
    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<userstate::FeedEvent>> {
        self.handle().feed(after, limit).await
    }
    async fn wait_for_events(&self, after: u64) -> Result<()> {
        self.handle().wait_for_events(after).await
    }
    async fn policies(&self, org: &OrgId) -> Result<userstate::StoredPolicies> {
        self.handle().policies(org).await
    }
    async fn set_policy(&self, org: Option<&OrgId>, policy: userstate::StoredPolicy) -> Result<()> {
        self.handle().set_policy(org, policy).await
    }
    async fn policy_organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        self.handle().policy_organisations(after, limit).await
    }
}

/// A service on a repository with an administrator of `acme`.
#[derive(Debug, Clone)]
pub struct Cast {
    pub service: UserService,
    pub admin: Caller,
    pub acme: OrgId,
}

impl Cast {
    pub fn new(repo: Arc<dyn UserRepository>) -> Self {
        Self::with_admin(repo, "acme-admin")
    }

    /// The same cast with the administrator called `admin`.
    pub fn with_admin(repo: Arc<dyn UserRepository>, admin: &str) -> Self {
        let acme = OrgId::new("acme").expect("org");
        let admin = Caller::new(user(admin), acme.clone());
        let grants = InMemoryAuthorizer::new();
        grants.grant(
            &admin.user_id,
            &acme,
            [Permission::Read, Permission::Write, Permission::Delete],
        );
        Cast {
            service: UserService::new(repo, Arc::new(grants)),
            admin,
            acme,
        }
    }

    /// Creates active users `{prefix}-0` .. `{prefix}-{count - 1}`.
    pub async fn create_users(&self, prefix: &str, count: usize) -> Vec<UserId> {
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let id = user(&format!("{prefix}-{i}"));
            self.service
                .create(&self.admin, &id, InitialState::Active)
                .await
                .expect("create");
            ids.push(id);
        }
        ids
    }
}

pub fn user(id: &str) -> UserId {
    UserId::new(id).expect("valid user id")
}

/// The payloads of an administrator's `user.locked` and `user.unlocked`.
pub fn lock_and_unlock_payloads() -> (EventPayload, EventPayload) {
    (
        EventPayload::Locked {
            reason: None,
            expires_at: None,
            cause: LockCause::Command,
        },
        EventPayload::Unlocked {
            cause: UnlockCause::Command,
            reason: None,
            resets_escalation: false,
        },
    )
}

/// A commit of `payloads` on `before` as if it were at sequence `expected`
/// (which may be stale on purpose), numbered from `expected + 1`.
pub fn commit_after(before: &User, expected: u64, payloads: &[EventPayload]) -> Commit {
    let events: Vec<Event> = payloads
        .iter()
        .zip(expected + 1..)
        .map(|(payload, sequence)| Event {
            user_id: before.id.clone(),
            org_id: before.org_id.clone(),
            sequence,
            created_at: Timestamp::from_unix_millis(1_718_261_077_424).expect("time"),
            creator: user("acme-admin"),
            payload: payload.clone(),
        })
        .collect();
    let mut base = before.clone();
    base.sequence = expected;
    Commit::new(Some(base), events).expect("a well-formed commit")
}

/// Every stored event of `id`, page by page.
pub async fn all_events(repo: &dyn UserRepository, id: &UserId) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let query = HistoryQuery::after_sequence(events.len() as u64, MAX_PAGE_SIZE);
        let page = repo
            .history(id, &Scope::Instance, query)
            .await
            .expect("history");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

/// Asserts the stored history of `id` has no gaps and its replay is the
/// stored snapshot; returns the history.
pub async fn assert_exact_history(repo: &dyn UserRepository, id: &UserId) -> Vec<Event> {
    let history = all_events(repo, id).await;
    for (event, expected) in history.iter().zip(1u64..) {
        assert_eq!(event.sequence, expected, "gap in the history of {id}");
    }
    let snapshot = repo.load(id, &Scope::Instance).await.expect("load");
    assert_eq!(
        snapshot,
        User::replay(&history),
        "snapshot of {id} is not the replay"
    );
    history
}
