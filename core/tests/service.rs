//! The service's handling of lost races, made deterministic with repositories
//! that interfere on purpose.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::executor::block_on;
use userstate::{
    ids, Caller, Commit, Error, ErrorKind, Event, HistoryQuery, InMemoryAuthorizer,
    InMemoryRepository, InitialState, ListQuery, LockRequest, OrgId, Page, Permission, User,
    UserId, UserRepository, UserService,
};

/// Delegates reads; before forwarding the first append, lets a rival service
/// lock the same user, so the append meets a newer sequence.
#[derive(Debug)]
struct RivalLocksFirst {
    inner: Arc<InMemoryRepository>,
    rival: UserService,
    caller: Caller,
    appends: AtomicU32,
}

#[async_trait]
impl UserRepository for RivalLocksFirst {
    async fn load(&self, id: &UserId) -> userstate::Result<Option<User>> {
        self.inner.load(id).await
    }
    async fn append(&self, commit: Commit) -> userstate::Result<()> {
        if self.appends.fetch_add(1, Ordering::SeqCst) == 1 {
            let id = commit.snapshot.id.clone();
            self.rival
                .lock(&self.caller, &id, LockRequest::new())
                .await?;
        }
        self.inner.append(commit).await
    }
    async fn history(&self, id: &UserId, q: HistoryQuery) -> userstate::Result<Vec<Event>> {
        self.inner.history(id, q).await
    }
    async fn list(&self, org: &OrgId, q: &ListQuery) -> userstate::Result<Page> {
        self.inner.list(org, q).await
    }
}

/// Every append conflicts.
#[derive(Debug, Default)]
struct AlwaysConflicts {
    inner: InMemoryRepository,
    appends: AtomicU32,
}

#[async_trait]
impl UserRepository for AlwaysConflicts {
    async fn load(&self, id: &UserId) -> userstate::Result<Option<User>> {
        self.inner.load(id).await
    }
    async fn append(&self, commit: Commit) -> userstate::Result<()> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        Err(Error::conflict(
            commit.expected_sequence,
            commit.expected_sequence + 1,
        ))
    }
    async fn history(&self, id: &UserId, q: HistoryQuery) -> userstate::Result<Vec<Event>> {
        self.inner.history(id, q).await
    }
    async fn list(&self, org: &OrgId, q: &ListQuery) -> userstate::Result<Page> {
        self.inner.list(org, q).await
    }
}

fn admin_and_grants() -> (Caller, Arc<InMemoryAuthorizer>) {
    let org = OrgId::new("acme").unwrap();
    let admin = Caller::new(UserId::new("admin").unwrap(), org.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &org, [Permission::Read, Permission::Write]);
    (admin, Arc::new(grants))
}

#[test]
fn a_lock_that_loses_the_race_is_decided_again_and_fails_as_already_locked() {
    let (admin, grants) = admin_and_grants();
    let inner = Arc::new(InMemoryRepository::new());
    let rival = UserService::new(inner.clone(), grants.clone());
    let repo = Arc::new(RivalLocksFirst {
        inner: inner.clone(),
        rival,
        caller: admin.clone(),
        appends: AtomicU32::new(0),
    });
    let service = UserService::new(repo, grants);
    let user = UserId::new("alice").unwrap();
    block_on(async {
        service
            .create(&admin, &user, InitialState::Active)
            .await
            .unwrap();
        let err = service
            .lock(&admin, &user, LockRequest::new())
            .await
            .unwrap_err();
        assert_eq!(err.id(), ids::ALREADY_LOCKED);
        let history = inner.history(&user, HistoryQuery::default()).await.unwrap();
        let types: Vec<_> = history.iter().map(Event::event_type).collect();
        assert_eq!(
            types,
            ["user.added", "user.locked"],
            "the lock is written once"
        );
    });
}

#[test]
fn conflicts_that_never_settle_end_in_aborted_after_the_configured_attempts() {
    let (admin, grants) = admin_and_grants();
    let repo = Arc::new(AlwaysConflicts::default());
    let service = UserService::new(repo.clone(), grants).with_max_attempts(5);
    let user = UserId::new("bob").unwrap();
    let err = block_on(service.create(&admin, &user, InitialState::Active)).unwrap_err();
    assert_eq!((err.kind(), err.id()), (ErrorKind::Aborted, ids::ABORTED));
    assert_eq!(err.body().code, 10);
    assert_eq!(repo.appends.load(Ordering::SeqCst), 5);
}

#[test]
fn the_service_is_usable_behind_dyn_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<UserService>();
    assert_send_sync::<Arc<dyn UserRepository>>();
    assert_send_sync::<Error>();
}
