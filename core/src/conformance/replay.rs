//! Snapshot = replay through storage: a script that writes every kind of
//! event and every field a snapshot carries, each command's outcome
//! asserted, the stored snapshot compared with the replay of the stored
//! history after every step.

use std::sync::Arc;

use super::fixture::{user, Fixture};
use crate::{
    ids, Details, Factor, InitialState, LockCause, LockRequest, LockoutPolicy, Reason, Result,
    UserId, UserRepository, UserState,
};

/// What one step must answer: the sequence after it, or the error id.
#[track_caller]
fn answered(result: Result<Details>, expected: std::result::Result<u64, &str>, step: &str) {
    match (result, expected) {
        (Ok(details), Ok(sequence)) => assert_eq!(details.sequence, sequence, "{step}"),
        (Err(err), Err(id)) => assert_eq!(err.id(), id, "{step}: {err}"),
        (got, want) => panic!("{step}: expected {want:?}, got {got:?}"),
    }
}

/// Every event type, lock reasons and expiries, lockouts by policy with
/// growing durations, counters per factor, a user locked while initial,
/// refusals between them: after each command the stored snapshot is the
/// replay of the stored history, and at the end every stored field is what
/// the commands made of it.
pub async fn snapshot_equals_replay(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let admin = &f.acme_admin;
    f.acme_policy(LockoutPolicy {
        max_password_attempts: 2,
        max_otp_attempts: 2,
        lock_duration_ms: Some(1_000),
        duration_growth: 2,
        max_lock_duration_ms: Some(5_000),
        permanent_after: 2,
        show_attempts: true,
    })
    .await;
    let a = f.user_in_state("replay-active", UserState::Active).await;
    let b = f.user_in_state("replay-initial", UserState::Initial).await;
    let check = |id: &UserId, factor, succeeded| {
        let (s, admin, id) = (s.clone(), admin.clone(), id.clone());
        async move {
            s.record_check(&admin, &id, factor, succeeded)
                .await
                .map(|record| record.details)
        }
    };
    let reason = Reason::new("audit; ticket #7 — «é»").expect("reason");
    let expiry = f.now_plus(1_000);

    let lock = LockRequest::new().reason(reason.clone()).until(expiry);
    answered(s.lock(admin, &a, lock).await, Ok(2), "temporary lock");
    let stored = f.stored(&a).await.lock.expect("locked");
    assert_eq!(
        (&stored.reason, stored.expires_at, stored.cause),
        (&Some(reason), Some(expiry), LockCause::Command)
    );
    f.assert_snapshot_is_replay(&a).await;
    answered(
        s.lock(admin, &a, LockRequest::new()).await,
        Err(ids::ALREADY_LOCKED),
        "lock again",
    );
    f.clock.advance(1_000);
    // The expired lock is recorded as unlocked before the failure.
    answered(
        check(&a, Factor::Password, false).await,
        Ok(4),
        "first failure",
    );
    f.assert_snapshot_is_replay(&a).await;
    answered(check(&a, Factor::Password, false).await, Ok(6), "lockout");
    let stored = f.stored(&a).await;
    let lock = stored.lock.clone().expect("locked by policy");
    assert_eq!(
        (stored.failed_checks.password, stored.lockouts, lock.cause),
        (2, 1, LockCause::Lockout)
    );
    assert_eq!(lock.expires_at, Some(f.now_plus(1_000)));
    f.assert_snapshot_is_replay(&a).await;
    answered(s.unlock(admin, &a, None).await, Ok(7), "unlock");
    assert!(f.stored(&a).await.failed_checks.is_empty());
    answered(check(&a, Factor::Totp, false).await, Ok(8), "totp failure");
    answered(check(&a, Factor::Sms, false).await, Ok(9), "sms failure");
    let counts = f.stored(&a).await.failed_checks;
    assert_eq!((counts.totp, counts.sms, counts.email), (1, 1, 0));
    answered(check(&a, Factor::Totp, true).await, Ok(10), "totp success");
    assert_eq!(
        f.stored(&a).await.lockouts,
        0,
        "a success resets the escalation"
    );
    answered(
        check(&a, Factor::Email, true).await,
        Ok(10),
        "nothing to reset",
    );
    answered(
        s.change_password(admin, &a).await,
        Ok(11),
        "password change",
    );
    f.assert_snapshot_is_replay(&a).await;
    answered(s.deactivate(admin, &a, None).await, Ok(12), "deactivate");
    answered(
        s.lock(admin, &a, LockRequest::new()).await,
        Err(ids::NOT_ACTIVE_OR_INITIAL),
        "lock inactive",
    );
    answered(s.reactivate(admin, &a, None).await, Ok(13), "reactivate");
    answered(s.remove(admin, &a, None).await, Ok(14), "remove");
    answered(
        s.unlock(admin, &a, None).await,
        Err(ids::NOT_FOUND),
        "unlock removed",
    );
    assert_eq!(f.stored(&a).await.state, UserState::Deleted);
    f.assert_snapshot_is_replay(&a).await;

    answered(
        s.deactivate(admin, &b, None).await,
        Err(ids::INITIAL_CANNOT_DEACTIVATE),
        "deactivate initial",
    );
    answered(
        s.lock(admin, &b, LockRequest::new()).await,
        Ok(2),
        "lock initial",
    );
    assert_eq!(
        f.stored(&b).await.lock.map(|l| l.previous_state),
        Some(UserState::Initial)
    );
    answered(
        s.deactivate(admin, &b, None).await,
        Err(ids::INITIAL_CANNOT_DEACTIVATE),
        "deactivate locked initial",
    );
    answered(s.unlock(admin, &b, None).await, Ok(3), "unlock to initial");
    assert_eq!(f.stored(&b).await.state, UserState::Initial);
    answered(
        s.complete_initialisation(admin, &b).await,
        Ok(4),
        "initialise",
    );
    answered(
        check(&b, Factor::Email, false).await,
        Ok(5),
        "email failure",
    );
    answered(
        check(&b, Factor::Email, false).await,
        Ok(7),
        "email lockout",
    );
    f.clock.advance(1_000);
    answered(check(&b, Factor::Email, false).await, Ok(9), "after expiry");
    answered(
        check(&b, Factor::Email, false).await,
        Ok(11),
        "second lockout",
    );
    let lock = f.stored(&b).await.lock.expect("locked again");
    assert_eq!(
        lock.expires_at,
        Some(f.now_plus(2_000)),
        "the duration grew"
    );
    f.assert_snapshot_is_replay(&b).await;

    let root_in_globex = f.root.clone().in_org(f.globex.clone());
    let c = user("replay-globex");
    answered(
        s.create(&root_in_globex, &c, InitialState::Active).await,
        Ok(1),
        "create in globex",
    );
    answered(
        s.lock(&f.globex_admin, &c, LockRequest::new()).await,
        Ok(2),
        "lock in globex",
    );
    let history = f.all_events(&c).await;
    let creators: Vec<&str> = history.iter().map(|e| e.creator.as_str()).collect();
    assert_eq!(creators, ["root", "globex-admin"]);
    assert!(history.iter().all(|e| e.org_id == f.globex));
    f.assert_snapshot_is_replay(&c).await;

    for (id, caller) in [(&b, admin), (&c, &root_in_globex)] {
        let read = s.get(caller, id).await.expect("get");
        assert_eq!(read, f.stored(id).await, "get reads the stored snapshot");
    }
}

/// [`check_through`](crate::storage::check_through) finds nothing on a
/// sound database: users in every state (a removed one too), in two
/// organisations, and policies, one of an organisation without users.
pub async fn checked_through_the_trait_a_sound_database_has_no_findings(
    repo: Arc<dyn UserRepository>,
) {
    let f = Fixture::new(repo);
    let empty = crate::storage::check_through(f.repo.as_ref())
        .await
        .unwrap();
    assert!(empty.is_sound(), "{:?}", empty.findings);
    assert_eq!((empty.users, empty.events), (0, 0));
    for (id, state) in [
        ("sound-initial", UserState::Initial),
        ("sound-active", UserState::Active),
        ("sound-locked", UserState::Locked),
        ("sound-inactive", UserState::Inactive),
        ("sound-removed", UserState::Deleted),
    ] {
        f.user_in_state(id, state).await;
    }
    f.service
        .create(&f.globex_admin, &user("sound-globex"), InitialState::Active)
        .await
        .unwrap();
    f.acme_policy(LockoutPolicy::default()).await;
    f.default_policy(LockoutPolicy::default()).await;
    let checked = crate::storage::check_through(f.repo.as_ref())
        .await
        .unwrap();
    assert!(checked.is_sound(), "{:?}", checked.findings);
    assert_eq!(checked.users, 6);
    // 5 creations, a lock, a deactivation, a removal and globex's creation.
    assert_eq!(checked.events, 9);
}
