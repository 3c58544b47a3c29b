//! Helpers shared by the integration tests: durable databases on the real
//! file system that disappear with the test.

#![allow(dead_code)]

use std::sync::Arc;

use async_trait::async_trait;
use tempfile::TempDir;
use userstate::storage::{Scope, Update};
use userstate::{
    Event, HistoryQuery, ListQuery, OrgId, Page, Result, User, UserId, UserRepository, UserState,
};
use userstate_sled::{SledOptions, SledRepository};

/// A durable repository in its own temporary directory on disk, removed
/// after the repository closes.
#[derive(Debug)]
pub struct OnDisk {
    // Field order is drop order: close the database, then remove its files.
    pub repo: SledRepository,
    pub dir: TempDir,
}

impl OnDisk {
    pub fn new() -> Self {
        Self::with(|options| options)
    }

    /// Opened with the options `configure` makes of the defaults.
    pub fn with(configure: impl FnOnce(SledOptions) -> SledOptions) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let repo = configure(SledOptions::new())
            .open(dir.path().join("db"))
            .expect("open on disk");
        OnDisk { repo, dir }
    }
}

/// A fresh durable repository on disk, for the conformance suite.
pub fn durable_on_disk() -> Arc<dyn UserRepository> {
    Arc::new(OnDisk::new())
}

#[async_trait]
impl UserRepository for OnDisk {
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
