//! The service's handling of conflicts, made deterministic with repositories
//! that interfere on purpose.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::executor::block_on;
use userstate::storage::{self, Conflict, Decision, Scope, Update};
use userstate::{
    ids, Caller, Error, ErrorKind, Event, HistoryQuery, InMemoryAuthorizer, InMemoryRepository,
    InitialState, ListQuery, LockRequest, OrgId, Page, Permission, User, UserId, UserRepository,
    UserService, UserState,
};

/// An optimistic repository: reads the user, decides on it, then writes the
/// commit only if the user is still at that sequence. Before writing its
/// second update it lets a rival service lock the same user, so that write
/// meets a newer sequence.
#[derive(Debug)]
struct RivalLocksFirst {
    inner: Arc<InMemoryRepository>,
    rival: UserService,
    caller: Caller,
    updates: AtomicU32,
}

#[async_trait]
impl UserRepository for RivalLocksFirst {
    async fn load(&self, id: &UserId, scope: &Scope) -> userstate::Result<Option<User>> {
        self.inner.load(id, scope).await
    }
    async fn load_many(
        &self,
        wanted: &[(&UserId, &Scope)],
    ) -> userstate::Result<Vec<Option<User>>> {
        self.inner.load_many(wanted).await
    }
    async fn update(&self, update: Update) -> userstate::Result<User> {
        let (id, scope) = (update.id().clone(), update.scope().clone());
        let stored = self.inner.load(&id, &scope).await?;
        let commit = match update.decide(stored, None)? {
            Decision::Unchanged(user) => return Ok(user),
            Decision::Write(commit) => commit,
        };
        if self.updates.fetch_add(1, Ordering::SeqCst) == 1 {
            self.rival
                .lock(&self.caller, &id, LockRequest::new())
                .await?;
        }
        self.inner
            .update(Update::new(
                id.clone(),
                scope.clone(),
                storage::append(commit),
            ))
            .await
    }
    async fn update_many(&self, updates: Vec<Update>) -> Vec<userstate::Result<User>> {
        self.inner.update_many(updates).await
    }
    async fn history(
        &self,
        id: &UserId,
        scope: &Scope,
        q: HistoryQuery,
    ) -> userstate::Result<Vec<Event>> {
        self.inner.history(id, scope, q).await
    }
    async fn list(&self, org: &OrgId, q: &ListQuery) -> userstate::Result<Page<User>> {
        self.inner.list(org, q).await
    }
    async fn count(&self, org: &OrgId, state: Option<UserState>) -> userstate::Result<u64> {
        self.inner.count(org, state).await
    }
    async fn organisations(
        &self,
        after: Option<&OrgId>,
        limit: u32,
    ) -> userstate::Result<Vec<OrgId>> {
        self.inner.organisations(after, limit).await
    }
    async fn feed(&self, after: u64, limit: u32) -> userstate::Result<Vec<userstate::FeedEvent>> {
        self.inner.feed(after, limit).await
    }
    async fn wait_for_events(&self, after: u64) -> userstate::Result<()> {
        self.inner.wait_for_events(after).await
    }
    async fn policies(&self, org: &OrgId) -> userstate::Result<userstate::StoredPolicies> {
        self.inner.policies(org).await
    }
    async fn set_policy(
        &self,
        org: Option<&OrgId>,
        policy: userstate::StoredPolicy,
    ) -> userstate::Result<()> {
        self.inner.set_policy(org, policy).await
    }
    async fn policy_organisations(
        &self,
        after: Option<&OrgId>,
        limit: u32,
    ) -> userstate::Result<Vec<OrgId>> {
        self.inner.policy_organisations(after, limit).await
    }
}

/// Every update fails with `error`.
#[derive(Debug)]
struct AlwaysFails {
    error: Error,
    updates: AtomicU32,
}

#[async_trait]
impl UserRepository for AlwaysFails {
    async fn load(&self, _: &UserId, _: &Scope) -> userstate::Result<Option<User>> {
        Ok(None)
    }
    async fn load_many(
        &self,
        wanted: &[(&UserId, &Scope)],
    ) -> userstate::Result<Vec<Option<User>>> {
        Ok(vec![None; wanted.len()])
    }
    async fn update(&self, _: Update) -> userstate::Result<User> {
        self.updates.fetch_add(1, Ordering::SeqCst);
        Err(self.error.clone())
    }
    async fn update_many(&self, updates: Vec<Update>) -> Vec<userstate::Result<User>> {
        self.updates.fetch_add(1, Ordering::SeqCst);
        vec![Err(self.error.clone()); updates.len()]
    }
    async fn history(
        &self,
        _: &UserId,
        _: &Scope,
        _: HistoryQuery,
    ) -> userstate::Result<Vec<Event>> {
        Ok(Vec::new())
    }
    async fn list(&self, _: &OrgId, _: &ListQuery) -> userstate::Result<Page<User>> {
        Ok(Page {
            items: Vec::new(),
            next: None,
        })
    }
    async fn count(&self, _: &OrgId, _: Option<UserState>) -> userstate::Result<u64> {
        Ok(0)
    }
    async fn organisations(&self, _: Option<&OrgId>, _: u32) -> userstate::Result<Vec<OrgId>> {
        Ok(Vec::new())
    }
    async fn feed(&self, _: u64, _: u32) -> userstate::Result<Vec<userstate::FeedEvent>> {
        Ok(Vec::new())
    }
    async fn wait_for_events(&self, _: u64) -> userstate::Result<()> {
        Err(self.error.clone())
    }
    async fn policies(&self, _: &OrgId) -> userstate::Result<userstate::StoredPolicies> {
        Ok(userstate::StoredPolicies::default())
    }
    async fn set_policy(
        &self,
        _: Option<&OrgId>,
        _: userstate::StoredPolicy,
    ) -> userstate::Result<()> {
        Err(self.error.clone())
    }
    async fn policy_organisations(
        &self,
        _: Option<&OrgId>,
        _: u32,
    ) -> userstate::Result<Vec<OrgId>> {
        Ok(Vec::new())
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
        updates: AtomicU32::new(0),
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
        let history = inner
            .history(&user, &Scope::Instance, HistoryQuery::default())
            .await
            .unwrap();
        let types: Vec<_> = history.iter().map(Event::event_type).collect();
        assert_eq!(
            types,
            ["user.added", "user.locked"],
            "the lock is written once"
        );
    });
}

fn failing(error: Error) -> Arc<AlwaysFails> {
    Arc::new(AlwaysFails {
        error,
        updates: AtomicU32::new(0),
    })
}

#[test]
fn conflicts_that_never_settle_end_in_aborted_after_the_configured_retries() {
    let (admin, grants) = admin_and_grants();
    let conflict: Error = Conflict {
        expected: 0,
        actual: 1,
    }
    .into();
    let repo = failing(conflict);
    let service = UserService::new(repo.clone(), grants).with_conflict_retries(4);
    let user = UserId::new("bob").unwrap();
    let err = block_on(service.create(&admin, &user, InitialState::Active)).unwrap_err();
    assert_eq!((err.kind(), err.id()), (ErrorKind::Aborted, ids::ABORTED));
    assert_eq!(err.body().code, 10);
    assert_eq!(
        repo.updates.load(Ordering::SeqCst),
        5,
        "one decision and four retries"
    );
}

#[test]
fn only_a_conflict_is_retried_never_an_error_that_looks_like_one() {
    let (admin, grants) = admin_and_grants();
    let user = UserId::new("carol").unwrap();
    for error in [
        Error::new(ErrorKind::Aborted, ids::CONFLICT, "a host's own error"),
        Error::unavailable("the backend is away"),
    ] {
        let repo = failing(error.clone());
        let service = UserService::new(repo.clone(), grants.clone());
        let err = block_on(service.lock(&admin, &user, LockRequest::new())).unwrap_err();
        assert_eq!(err, error);
        assert_eq!(repo.updates.load(Ordering::SeqCst), 1, "{error}");
    }
}

#[test]
fn the_service_is_usable_behind_dyn_traits() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<UserService>();
    assert_send_sync::<Arc<dyn UserRepository>>();
    assert_send_sync::<Error>();
}

#[test]
fn shared_and_boxed_repositories_are_repositories() {
    let (admin, grants) = admin_and_grants();
    let user = UserId::new("dave").unwrap();
    let shared: Arc<InMemoryRepository> = Arc::new(InMemoryRepository::new());
    let boxed: Box<dyn UserRepository> = Box::new(InMemoryRepository::new());
    for repo in [
        Arc::new(shared.clone()) as Arc<dyn UserRepository>,
        Arc::new(boxed),
    ] {
        let service = UserService::new(repo.clone(), grants.clone());
        block_on(service.create(&admin, &user, InitialState::Active)).unwrap();
        assert!(block_on(repo.load(&user, &Scope::Instance))
            .unwrap()
            .is_some());
    }
    assert!(block_on(shared.load(&user, &Scope::Instance))
        .unwrap()
        .is_some());
}

/// A lock for a duration is measured on the service's clock from the lock
/// event's own time, also when the clock stepped back behind the user's
/// last change (the event is pinned to that time, and so is the expiry).
#[test]
fn a_lock_for_a_duration_expires_from_its_events_time_on_the_services_clock() {
    let (admin, grants) = admin_and_grants();
    let clock =
        userstate::ManualClock::new(userstate::Timestamp::from_unix_millis(10_000).unwrap());
    let service = UserService::new(Arc::new(InMemoryRepository::new()), grants)
        .with_clock(Arc::new(clock.clone()));
    assert_eq!(service.now().unix_millis(), 10_000);
    let user = UserId::new("alice").unwrap();
    block_on(async {
        service
            .create(&admin, &user, InitialState::Active)
            .await
            .unwrap();
        clock.set(userstate::Timestamp::from_unix_millis(4_000).unwrap());
        let fifteen_minutes = std::time::Duration::from_secs(900);
        service
            .lock(
                &admin,
                &user,
                LockRequest::new().for_duration(fifteen_minutes),
            )
            .await
            .unwrap();
        let stored = service.get(&admin, &user).await.unwrap();
        let lock = stored.lock.expect("locked");
        assert_eq!(
            lock.locked_at.unix_millis(),
            10_000,
            "pinned to the last change"
        );
        assert_eq!(lock.expires_at.unwrap().unix_millis(), 10_000 + 900_000);

        let both = LockRequest::new()
            .until(userstate::Timestamp::from_unix_millis(20_000).unwrap())
            .for_duration(fifteen_minutes);
        let zero = LockRequest::new().for_duration(std::time::Duration::ZERO);
        for request in [both, zero] {
            let error = service.lock(&admin, &user, request).await.unwrap_err();
            assert_eq!(error.id(), ids::INVALID_TIME, "{error}");
        }
    });
}

/// A reader that sees little of a large feed gets its events page by page
/// from checkpoints after bounded scans, never one unbounded read, and
/// misses nothing.
#[test]
fn the_feed_of_a_narrow_reader_is_read_in_bounded_scans() {
    use userstate::{FeedQuery, FEED_SCAN_PAGES, MAX_PAGE_SIZE};
    let (admin, grants) = admin_and_grants();
    let globex = OrgId::new("globex").unwrap();
    let writer = Caller::new(UserId::new("globex-admin").unwrap(), globex.clone());
    grants.grant(&writer.user_id, &globex, [Permission::Write]);
    let service = UserService::new(Arc::new(InMemoryRepository::new()), grants);
    block_on(async {
        let others = (FEED_SCAN_PAGES * MAX_PAGE_SIZE) as usize + 5;
        for i in 0..others {
            let id = UserId::new(format!("g{i}")).unwrap();
            service
                .create(&writer, &id, InitialState::Active)
                .await
                .unwrap();
        }
        let mine = UserId::new("a-mine").unwrap();
        service
            .create(&admin, &mine, InitialState::Active)
            .await
            .unwrap();
        let first = service
            .feed(&admin, &FeedQuery::after(0, 10))
            .await
            .unwrap();
        assert!(first.events.is_empty());
        assert_eq!(first.checkpoint, u64::from(FEED_SCAN_PAGES * MAX_PAGE_SIZE));
        let next = service
            .feed(&admin, &FeedQuery::after(first.checkpoint, 10))
            .await
            .unwrap();
        assert_eq!(next.events.len(), 1);
        assert_eq!(next.events[0].event.user_id, mine);
    });
}
