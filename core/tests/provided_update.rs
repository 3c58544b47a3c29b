//! The conformance suite against a repository that implements only the four
//! required methods, so every command goes through the provided
//! `UserRepository::update` (load, decide, append).

use std::sync::Arc;

use async_trait::async_trait;
use userstate::{
    Commit, Event, HistoryQuery, InMemoryRepository, ListQuery, OrgId, Page, Result, User, UserId,
    UserRepository,
};

#[derive(Debug, Default)]
struct RequiredMethodsOnly(InMemoryRepository);

#[async_trait]
impl UserRepository for RequiredMethodsOnly {
    async fn load(&self, id: &UserId) -> Result<Option<User>> {
        self.0.load(id).await
    }
    async fn append(&self, commit: Commit) -> Result<()> {
        self.0.append(commit).await
    }
    async fn history(&self, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
        self.0.history(id, query).await
    }
    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        self.0.list(org, query).await
    }
}

fn fresh() -> Arc<dyn UserRepository> {
    Arc::new(RequiredMethodsOnly::default())
}

userstate::conformance_tests!(fresh());
