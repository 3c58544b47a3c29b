//! The caller check and addressing by id: a caller whose own user is stored
//! in the repository must be able to log in to act, read in the same storage
//! operation as the command's own; an instance-wide caller reaches a user by
//! id alone, an organisation-scoped one only in its organisations.

use std::sync::Arc;

use super::fixture::{user, Fixture};
use crate::storage::Scope;
use crate::{
    ids, Caller, ErrorKind, Factor, HistoryQuery, InitialState, ListQuery, LockRequest, Permission,
    Reason, UserId, UserRepository, UserService, UserState,
};

/// Every command and read a caller can run on `target` (which is active in
/// acme), each answered with the error id it failed with or `None`.
async fn every_operation(
    service: &UserService,
    caller: &Caller,
    target: &UserId,
) -> Vec<(&'static str, Option<String>)> {
    let id = |r: crate::Result<()>| r.err().map(|e| e.id().to_owned());
    let fresh = user(&format!("fresh-{}", caller.user_id));
    vec![
        ("get", id(service.get(caller, target).await.map(drop))),
        (
            "history",
            id(service
                .history(caller, target, HistoryQuery::default())
                .await
                .map(drop)),
        ),
        (
            "list",
            id(service.list(caller, &ListQuery::all()).await.map(drop)),
        ),
        (
            "create",
            id(service
                .create(caller, &fresh, InitialState::Active)
                .await
                .map(drop)),
        ),
        (
            "record_check",
            id(service
                .record_check(caller, target, Factor::Password, true)
                .await
                .map(drop)),
        ),
        (
            "change_password",
            id(service.change_password(caller, target).await.map(drop)),
        ),
        (
            "lock",
            id(service
                .lock(caller, target, LockRequest::new())
                .await
                .map(drop)),
        ),
        (
            "unlock",
            id(service.unlock(caller, target, None).await.map(drop)),
        ),
        (
            "deactivate",
            id(service.deactivate(caller, target, None).await.map(drop)),
        ),
        (
            "reactivate",
            id(service.reactivate(caller, target, None).await.map(drop)),
        ),
        (
            "remove",
            id(service.remove(caller, target, None).await.map(drop)),
        ),
    ]
}

/// Asserts that every operation of `caller` was refused as a caller who
/// cannot log in, and that nothing was written.
async fn assert_refused_everywhere(f: &Fixture, caller: &Caller, target: &UserId, why: &str) {
    let before = f.stored(target).await;
    for (operation, outcome) in every_operation(&f.service, caller, target).await {
        assert_eq!(
            outcome.as_deref(),
            Some(ids::CALLER_CANNOT_LOG_IN),
            "{operation} by a caller whose user {why}"
        );
    }
    assert_eq!(f.stored(target).await, before, "a refused caller wrote");
    let fresh = user(&format!("fresh-{}", caller.user_id));
    assert_eq!(f.repo.load(&fresh, &Scope::Instance).await.unwrap(), None);
}

/// Asserts that `caller`'s operations were not refused by the caller check
/// (they may fail for their own reasons, e.g. an invalid transition).
async fn assert_not_refused(service: &UserService, caller: &Caller, target: &UserId, why: &str) {
    for (operation, outcome) in every_operation(service, caller, target).await {
        assert_ne!(
            outcome.as_deref(),
            Some(ids::CALLER_CANNOT_LOG_IN),
            "{operation} by a caller whose user {why}"
        );
    }
}

/// The acme admin as a stored user of acme, in `state`, created by root.
async fn store_admin(f: &Fixture, state: UserState) {
    let admin = &f.acme_admin.user_id;
    let root = &f.root.clone().in_org(f.acme.clone());
    let s = &f.service;
    let initial = if state == UserState::Initial {
        InitialState::Initial
    } else {
        InitialState::Active
    };
    s.create(root, admin, initial).await.expect("create admin");
    match state {
        UserState::Locked => drop(s.lock(root, admin, LockRequest::new()).await.unwrap()),
        UserState::Inactive => drop(s.deactivate(root, admin, None).await.unwrap()),
        UserState::Deleted => drop(s.remove(root, admin, None).await.unwrap()),
        _ => {}
    }
}

/// A caller whose stored user is locked, inactive, initial or removed is
/// refused everything with PermissionDenied, reads included.
pub async fn caller_state_that_cannot_log_in_is_refused(repo: Arc<dyn UserRepository>) {
    for state in [
        UserState::Locked,
        UserState::Inactive,
        UserState::Initial,
        UserState::Deleted,
    ] {
        let f = Fixture::new(repo.clone());
        // One repository serves every state, with a caller per state.
        let name = format!("admin-{state:?}").to_lowercase();
        let caller = Caller::new(user(&name), f.acme.clone());
        f.grants.grant(
            &caller.user_id,
            &f.acme,
            [Permission::Read, Permission::Write, Permission::Delete],
        );
        let stored_admin = Fixture {
            acme_admin: caller.clone(),
            ..f.clone()
        };
        store_admin(&stored_admin, state).await;
        let target = user(&format!("target-of-{name}"));
        f.service
            .create(
                &f.root.clone().in_org(f.acme.clone()),
                &target,
                InitialState::Active,
            )
            .await
            .expect("create target");
        assert_refused_everywhere(&f, &caller, &target, &format!("is {state:?}")).await;
        let error = f.service.get(&caller, &target).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::PermissionDenied);
    }
}

/// A temporary lock that expired no longer stops its user from acting, on
/// the service's clock; a lock in force does.
pub async fn caller_state_expired_lock_does_not_count(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let root = f.root.clone().in_org(f.acme.clone());
    let admin = &f.acme_admin;
    f.service
        .create(&root, &admin.user_id, InitialState::Active)
        .await
        .unwrap();
    let target = f.user_in_state("carol", UserState::Active).await;
    f.service
        .lock(
            &root,
            &admin.user_id,
            LockRequest::new().until(f.now_plus(60_000)),
        )
        .await
        .unwrap();
    assert_refused_everywhere(&f, admin, &target, "is locked for a minute").await;
    f.clock.advance(60_000);
    assert_not_refused(&f.service, admin, &target, "had a lock that expired").await;
}

/// Callers that are not stored here are unaffected, and a user with the
/// caller's id in another organisation is someone else: locking it does not
/// lock the caller out.
pub async fn caller_state_of_someone_else_does_not_count(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let target = f.user_in_state("carol", UserState::Active).await;
    assert_not_refused(&f.service, &f.acme_admin, &target, "is not stored").await;

    // globex's admin creates a user named like the instance's root and the
    // acme admin in its own organisation, and locks both.
    let globex = &f.globex_admin;
    for namesake in [&f.root.user_id, &f.acme_admin.user_id] {
        f.service
            .create(globex, namesake, InitialState::Active)
            .await
            .unwrap_or_else(|e| panic!("create {namesake} in globex: {e}"));
        f.service
            .lock(globex, namesake, LockRequest::new())
            .await
            .unwrap();
    }
    let other = f.user_in_state("dave", UserState::Active).await;
    assert_not_refused(
        &f.service,
        &f.root.clone().in_org(f.acme.clone()),
        &other,
        "exists only in another organisation",
    )
    .await;
    assert_not_refused(&f.service, &f.acme_admin, &target, "exists in globex").await;
}

/// With the check off, a caller whose stored user is locked acts as before.
pub async fn caller_state_check_switched_off(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let target = f.user_in_state("carol", UserState::Active).await;
    store_admin(&f, UserState::Locked).await;
    assert_refused_everywhere(&f, &f.acme_admin, &target, "is locked").await;
    let unchecked = f.service.clone().with_caller_check(false);
    assert_not_refused(&unchecked, &f.acme_admin, &target, "is locked, unchecked").await;
}

/// A caller that locks itself is refused from then on, until someone else
/// unlocks it; the check reads the caller as the write sees it.
pub async fn caller_state_locking_oneself_takes_effect_at_once(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    store_admin(&f, UserState::Active).await;
    let admin = &f.acme_admin;
    f.service
        .lock(admin, &admin.user_id, LockRequest::new())
        .await
        .expect("an admin may lock itself");
    let err = f
        .service
        .unlock(admin, &admin.user_id, None)
        .await
        .unwrap_err();
    assert_eq!(err.id(), ids::CALLER_CANNOT_LOG_IN);
    f.service
        .unlock(&f.root.clone().in_org(f.acme.clone()), &admin.user_id, None)
        .await
        .expect("root unlocks the admin");
    f.service
        .get(admin, &admin.user_id)
        .await
        .expect("the unlocked admin reads again");
}

/// An instance-wide caller reaches any user by id alone; an organisation-
/// scoped caller only users of its organisations, and a user elsewhere is
/// NotFound exactly like one that does not exist.
pub async fn users_are_addressed_by_id_alone(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let carol = f.user_in_state("carol", UserState::Active).await;
    let gina = user("gina");
    f.service
        .create(&f.globex_admin, &gina, InitialState::Active)
        .await
        .unwrap();
    let root = f.root.clone().by_id();
    for (who, org) in [(&carol, &f.acme), (&gina, &f.globex)] {
        let found = f.service.get(&root, who).await.expect("root finds by id");
        assert_eq!(&found.org_id, org);
        f.service
            .lock(
                &root,
                who,
                LockRequest::new().reason(Reason::new("by id").unwrap()),
            )
            .await
            .expect("root locks by id");
        let history = f
            .service
            .history(&root, who, HistoryQuery::default())
            .await
            .unwrap();
        assert_eq!(history.items.len(), 2);
        assert_eq!(history.items[1].creator, f.root.user_id);
    }

    let acme_admin = f.acme_admin.clone().by_id();
    f.service
        .unlock(&acme_admin, &carol, None)
        .await
        .expect("acme's admin reaches acme's user by id");
    let unknown = user("nobody-here");
    for target in [&gina, &unknown] {
        let results = [
            f.service.get(&acme_admin, target).await.map(drop),
            f.service
                .history(&acme_admin, target, HistoryQuery::default())
                .await
                .map(drop),
            f.service.unlock(&acme_admin, target, None).await.map(drop),
            f.service.remove(&acme_admin, target, None).await.map(drop),
        ];
        for result in results {
            let error = result.expect_err("not visible to acme");
            assert_eq!(error.id(), ids::NOT_FOUND, "{target}: {error}");
            assert!(!error.message().contains("globex"), "{error}");
        }
    }
    assert_eq!(f.stored(&gina).await.state, UserState::Locked);

    // A reader of acme sees acme's user by id but may not change it.
    let reader = f.acme_reader.clone().by_id();
    f.service.get(&reader, &carol).await.expect("read by id");
    let denied = f
        .service
        .lock(&reader, &carol, LockRequest::new())
        .await
        .unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
}
