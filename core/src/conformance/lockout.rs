//! Lockout through storage: the failure that reaches the limit and the lock
//! are one commit, and concurrent failures are counted exactly.

use std::sync::{Arc, Barrier};

use super::fixture::{policy, Fixture};
use super::race::on_threads;
use crate::{
    ids, CheckRecord, ErrorKind, EventPayload, Factor, LockCause, UserRepository, UserState,
};

/// The failure that reaches the limit and `user.locked` are one commit;
/// checks refused on the locked user write nothing.
pub async fn lockout_failure_and_lock_are_one_commit(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    f.acme_policy(policy(3, 0)).await;
    let id = f.user_in_state("guessed", UserState::Active).await;
    for (n, sequence) in [(1, 2), (2, 3)] {
        let record = f.check(&id, Factor::Password, false).await;
        assert_eq!(
            (record.failed_attempts, record.details.sequence),
            (n, sequence)
        );
        assert!(!record.locked);
    }
    let third = f.check(&id, Factor::Password, false).await;
    assert_eq!((third.state, third.locked), (UserState::Locked, true));
    assert_eq!(third.details.sequence, 5, "failure and lock in one commit");
    let history = f.all_events(&id).await;
    assert_eq!(history[3].event_type(), "user.password.check.failed");
    assert_eq!(
        history[4].payload,
        EventPayload::Locked {
            reason: None,
            expires_at: None,
            cause: LockCause::Lockout
        }
    );
    assert_eq!(history[3].created_at, history[4].created_at);
    for succeeded in [true, false] {
        let refused = f
            .service
            .record_check(&f.acme_admin, &id, Factor::Password, succeeded)
            .await
            .expect_err("locked");
        assert_eq!(refused.id(), ids::LOGIN_LOCKED);
    }
    let stored = f.stored(&id).await;
    assert_eq!(stored.sequence, 5, "refused checks are not written");
    assert_eq!(stored.failed_checks.password, 3);
    f.assert_snapshot_is_replay(&id).await;
}

/// Concurrent failed checks on one user are counted exactly: with a limit of
/// 5, exactly five failures are recorded (the fifth with the lock) and every
/// other attempt is refused as `User is locked`, never double-counted or lost.
pub async fn concurrent_failures_are_counted_exactly(repo: Arc<dyn UserRepository>) {
    const THREADS: usize = 8;
    const TRIES: usize = 3;
    let f = Fixture::new(repo);
    f.acme_policy(policy(5, 0)).await;
    let id = f.user_in_state("hammered", UserState::Active).await;
    let barrier = Arc::new(Barrier::new(THREADS));
    let jobs = (0..THREADS)
        .map(|_| {
            let (service, caller, id, barrier) = (
                f.service.clone(),
                f.acme_admin.clone(),
                id.clone(),
                barrier.clone(),
            );
            Box::new(move || {
                barrier.wait();
                (0..TRIES)
                    .map(|_| {
                        futures::executor::block_on(service.record_check(
                            &caller,
                            &id,
                            Factor::Password,
                            false,
                        ))
                    })
                    .collect::<Vec<_>>()
            }) as Box<dyn FnOnce() -> _ + Send>
        })
        .collect();
    let results: Vec<crate::Result<CheckRecord>> =
        on_threads(jobs).await.into_iter().flatten().collect();
    let mut counts: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|r| r.failed_attempts)
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [1, 2, 3, 4, 5], "{results:?}");
    let locking: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .filter(|r| r.locked)
        .collect();
    assert_eq!(locking.len(), 1);
    assert_eq!(locking[0].failed_attempts, 5);
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            err.id() == ids::LOGIN_LOCKED || err.kind() == ErrorKind::Aborted,
            "{err:?}"
        );
    }
    let types = f.event_types(&id).await;
    assert_eq!(types.len(), 7, "added + 5 failures + 1 lock: {types:?}");
    assert_eq!(types.iter().filter(|t| **t == "user.locked").count(), 1);
    f.assert_snapshot_is_replay(&id).await;
}

/// An administrator's unlock starts the user afresh (the escalation of
/// temporary lockouts is reset, recorded in the unlock event), while a lock
/// that merely expires keeps it: with lockouts of 1 s, growing twofold and
/// permanent after 2, two admin unlocks later three typos still lock for
/// 1 s only; after two expiries the third lockout is permanent.
pub async fn admin_unlock_resets_escalation_and_expiry_does_not(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    f.acme_policy(crate::LockoutPolicy {
        lock_duration_ms: Some(1_000),
        duration_growth: 2,
        permanent_after: 2,
        ..policy(1, 0)
    })
    .await;
    let lock_expiry_after_failure = |id: crate::UserId| {
        let f = f.clone();
        async move {
            assert!(f.check(&id, Factor::Password, false).await.locked);
            let stored = f.stored(&id).await;
            let lock = stored.lock.expect("locked");
            (
                stored.lockouts,
                lock.expires_at
                    .map(|at| at.unix_millis() - lock.locked_at.unix_millis()),
            )
        }
    };

    let unlocked = f
        .user_in_state("unlocked-by-admin", UserState::Active)
        .await;
    for round in 0..3 {
        let (lockouts, lasts) = lock_expiry_after_failure(unlocked.clone()).await;
        assert_eq!((lockouts, lasts), (1, Some(1_000)), "round {round}");
        f.service
            .unlock(&f.acme_admin, &unlocked, None)
            .await
            .expect("admin unlock");
        assert_eq!(f.stored(&unlocked).await.lockouts, 0, "round {round}");
    }
    let unlocks: Vec<_> = f
        .all_events(&unlocked)
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            EventPayload::Unlocked {
                resets_escalation, ..
            } => Some(resets_escalation),
            _ => None,
        })
        .collect();
    assert_eq!(unlocks, [true; 3], "the unlock events record the reset");

    let expiring = f.user_in_state("expiring", UserState::Active).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (lockouts, lasts) = lock_expiry_after_failure(expiring.clone()).await;
        seen.push((lockouts, lasts));
        if let Some(ms) = lasts {
            f.clock.advance(ms);
        }
    }
    assert_eq!(seen, [(1, Some(1_000)), (2, Some(2_000)), (3, None)]);
    f.assert_snapshot_is_replay(&unlocked).await;
    f.assert_snapshot_is_replay(&expiring).await;
}

/// Lockout policies are stored: set through one service, they are in
/// force for the next check through any other service on the repository,
/// with who set them and when; the organisation's own wins over the
/// instance default; `policy.write` guards them.
pub async fn policy_is_stored_and_in_force_for_every_service(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let other = Fixture::new(f.repo.clone());
    let before = other
        .service
        .lockout_policy(&other.acme_reader)
        .await
        .unwrap();
    assert!(before.is_default && before.changed.is_none());
    assert_eq!(before.policy, crate::LockoutPolicy::default());

    f.acme_policy(policy(2, 0)).await;
    f.default_policy(policy(4, 0)).await;
    let in_force = other
        .service
        .lockout_policy(&other.acme_reader)
        .await
        .unwrap();
    assert_eq!(in_force.policy, policy(2, 0));
    assert!(!in_force.is_default);
    assert_eq!(
        in_force.changed,
        Some((
            f.acme_admin.user_id.clone(),
            crate::conformance::at(crate::conformance::T0)
        ))
    );
    let globex = other
        .service
        .lockout_policy(&other.globex_admin)
        .await
        .unwrap();
    assert_eq!((globex.policy, globex.is_default), (policy(4, 0), true));

    // The other service locks by the stored policy.
    let id = other
        .user_in_state("stored-policy", UserState::Active)
        .await;
    assert!(!other.check(&id, Factor::Password, false).await.locked);
    let second = other.check(&id, Factor::Password, false).await;
    assert!(second.locked, "locked at the stored limit of 2");

    let denied = f
        .service
        .set_lockout_policy(&f.acme_writer, policy(1, 0))
        .await
        .unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
    let denied = f
        .service
        .set_default_lockout_policy(&f.acme_admin, policy(1, 0))
        .await
        .unwrap_err();
    assert_eq!(
        denied.kind(),
        ErrorKind::PermissionDenied,
        "the default needs an instance grant"
    );
    let invalid = crate::LockoutPolicy {
        duration_growth: 0,
        ..policy(1, 0)
    };
    let refused = f
        .service
        .set_lockout_policy(&f.acme_admin, invalid)
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        other
            .service
            .lockout_policy(&other.acme_reader)
            .await
            .unwrap()
            .policy,
        policy(2, 0),
        "refused changes change nothing"
    );
}

/// A policy set before a reopen of `path` is in force after it.
pub async fn policy_survives_reopening(
    path: &std::path::Path,
    open: impl Fn(&std::path::Path) -> Arc<dyn UserRepository>,
) {
    {
        let f = Fixture::new(open(path));
        f.acme_policy(policy(3, 0)).await;
        f.default_policy(policy(5, 1)).await;
    }
    let f = Fixture::new(open(path));
    let acme = f.service.lockout_policy(&f.acme_reader).await.unwrap();
    assert_eq!((acme.policy, acme.is_default), (policy(3, 0), false));
    let globex = f.service.lockout_policy(&f.globex_admin).await.unwrap();
    assert_eq!((globex.policy, globex.is_default), (policy(5, 1), true));
}

/// Every organisation with a policy of its own is listed, in order and in
/// pages, whether or not it has users; the instance default is not one.
pub async fn policy_organisations_lists_every_stored_policy(repo: Arc<dyn UserRepository>) {
    use crate::conformance::{at, org, user, T0};
    use crate::StoredPolicy;
    let stored = |max: u32| StoredPolicy {
        policy: policy(max, 0),
        changed_by: user("root"),
        changed_at: at(T0),
    };
    assert!(repo
        .policy_organisations(None, 10)
        .await
        .unwrap()
        .is_empty());
    repo.set_policy(None, stored(9)).await.unwrap();
    for name in ["zeta-no-users", "acme", "mid"] {
        repo.set_policy(Some(&org(name)), stored(3)).await.unwrap();
    }
    // Set twice: still one organisation.
    repo.set_policy(Some(&org("acme")), stored(4))
        .await
        .unwrap();
    let all = repo.policy_organisations(None, 10).await.unwrap();
    assert_eq!(all, [org("acme"), org("mid"), org("zeta-no-users")]);
    assert_eq!(
        repo.policy_organisations(None, 1).await.unwrap(),
        [org("acme")]
    );
    assert_eq!(
        repo.policy_organisations(Some(&org("acme")), 10)
            .await
            .unwrap(),
        [org("mid"), org("zeta-no-users")]
    );
    assert!(repo
        .policy_organisations(Some(&org("zeta-no-users")), 10)
        .await
        .unwrap()
        .is_empty());
    let acme = repo.policies(&org("zeta-no-users")).await.unwrap();
    assert_eq!(acme.org, Some(stored(3)));
    assert_eq!(acme.default, Some(stored(9)));
}
