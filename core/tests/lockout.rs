//! Automatic lockout's rules: limits per factor, what resets the counters,
//! policies per organisation with an instance default, temporary lockouts
//! that expire, grow and turn permanent. Pure domain logic, tested once here
//! over the in-memory repository; what depends on storage (the lock in one
//! commit with the failure, exact counts under concurrency) is in the
//! conformance suite.

use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::{policy, Fixture};
use userstate::{
    ids, ErrorKind, Event, EventPayload, Factor, InMemoryRepository, LockCause, LockoutPolicy,
    UnlockCause, User, UserState,
};

fn fixture() -> Fixture {
    Fixture::new(Arc::new(InMemoryRepository::new()))
}

/// The failure that reaches the limit is written together with `user.locked`;
/// the next check is refused before counting; errors carry the figures.
#[test]
fn lockout_after_max_failed_password_checks() {
    block_on(async {
        let f = fixture();
        f.acme_policy(policy(3, 0)).await;
        let id = f.user_in_state("guessed", UserState::Active).await;

        let first = f.check(&id, Factor::Password, false).await;
        assert_eq!(
            (first.failed_attempts, first.remaining_attempts),
            (1, Some(2))
        );
        assert_eq!((first.state, first.locked), (UserState::Active, false));
        let second = f.check(&id, Factor::Password, false).await;
        assert_eq!(second.details.sequence, 3);
        let err = second.error().expect("failed check error");
        assert_eq!(
            (err.kind(), err.id()),
            (ErrorKind::InvalidArgument, ids::PASSWORD_INVALID)
        );
        let detail = &err.body().details[0];
        assert_eq!(
            (detail.failed_attempts, detail.remaining_attempts),
            (Some(2), Some(1))
        );

        let third = f.check(&id, Factor::Password, false).await;
        assert_eq!((third.state, third.locked), (UserState::Locked, true));
        assert_eq!(
            (third.failed_attempts, third.remaining_attempts),
            (3, Some(0))
        );
        assert_eq!(third.details.sequence, 5, "failure and lock in one append");
        assert_eq!(third.error().expect("locked").id(), ids::LOGIN_LOCKED);
        let history = f.all_events(&id).await;
        assert_eq!(
            history.last().map(|e| &e.payload),
            Some(&EventPayload::Locked {
                reason: None,
                expires_at: None,
                cause: LockCause::Lockout
            })
        );
        assert_eq!(history[3].event_type(), "user.password.check.failed");
        assert_eq!(history[3].created_at, history[4].created_at);

        for succeeded in [true, false] {
            let refused = f
                .service
                .record_check(&f.acme_admin, &id, Factor::Password, succeeded)
                .await
                .expect_err("locked");
            assert_eq!(
                (refused.kind(), refused.id()),
                (ErrorKind::FailedPrecondition, ids::LOGIN_LOCKED)
            );
            assert_eq!(refused.message(), "User is locked");
        }
        assert_eq!(
            f.stored(&id).await.sequence,
            5,
            "refused checks are not counted"
        );
        assert_eq!(f.stored(&id).await.failed_checks.password, 3);
        assert!(f.service.login_allowed(&id).await.is_err());
        f.assert_snapshot_is_replay(&id).await;
    });
}

/// OTP failures count per factor and never against the password limit.
#[test]
fn otp_failures_are_counted_per_factor() {
    block_on(async {
        let f = fixture();
        f.acme_policy(policy(2, 2)).await;
        let id = f.user_in_state("otp", UserState::Active).await;
        for factor in [Factor::Totp, Factor::Sms, Factor::Email] {
            let r = f.check(&id, factor, false).await;
            assert_eq!((r.failed_attempts, r.locked), (1, false), "{factor}");
            let err = r.error().expect("error");
            assert_eq!(err.id(), ids::OTP_INVALID);
            assert_eq!(err.message(), "One-time password is invalid");
        }
        let r = f.check(&id, Factor::Password, false).await;
        assert_eq!((r.failed_attempts, r.locked), (1, false));
        let stored = f.stored(&id).await.failed_checks;
        assert_eq!(
            (stored.password, stored.totp, stored.sms, stored.email),
            (1, 1, 1, 1)
        );
        let r = f.check(&id, Factor::Sms, false).await;
        assert!(r.locked);
        assert_eq!(
            f.event_types(&id).await[4..],
            [
                "user.password.check.failed",
                "user.otp.check.failed",
                "user.locked"
            ]
        );
    });
}

/// A success resets its factor; a password change resets the password
/// count; an unlock resets every count. A success with nothing to reset
/// writes nothing.
#[test]
fn successes_password_changes_and_unlocks_reset_counters() {
    block_on(async {
        let f = fixture();
        f.acme_policy(policy(3, 3)).await;
        let id = f.user_in_state("resets", UserState::Active).await;

        let quiet = f.check(&id, Factor::Password, true).await;
        assert_eq!(
            quiet.details.sequence, 1,
            "nothing to reset, nothing written"
        );
        assert!(quiet.error().is_none());

        f.check(&id, Factor::Password, false).await;
        f.check(&id, Factor::Password, false).await;
        f.check(&id, Factor::Totp, false).await;
        let ok = f.check(&id, Factor::Password, true).await;
        assert_eq!((ok.failed_attempts, ok.remaining_attempts), (0, Some(3)));
        assert_eq!(
            f.stored(&id).await.failed_checks.totp,
            1,
            "other factors keep counting"
        );
        assert_eq!(
            f.event_types(&id).await.last(),
            Some(&"user.password.check.succeeded")
        );

        f.check(&id, Factor::Password, false).await;
        f.check(&id, Factor::Password, false).await;
        f.service
            .change_password(&f.acme_admin, &id)
            .await
            .expect("password changed");
        assert_eq!(f.stored(&id).await.failed_checks.password, 0);
        assert!(!f.check(&id, Factor::Password, false).await.locked);

        f.check(&id, Factor::Totp, false).await;
        assert!(f.check(&id, Factor::Totp, false).await.locked);
        f.service
            .unlock(&f.acme_admin, &id, None)
            .await
            .expect("unlock");
        let stored = f.stored(&id).await;
        assert!(
            stored.failed_checks.is_empty(),
            "{:?}",
            stored.failed_checks
        );
        assert_eq!(stored.state, UserState::Active);
        f.assert_snapshot_is_replay(&id).await;
    });
}

/// A limit of 0 never locks and reports no remaining attempts; the
/// instance default applies where an organisation has no policy; a policy
/// can hide the figures from errors.
#[test]
fn policies_per_organisation_and_zero_limits() {
    block_on(async {
        let f = fixture();
        let never = f.user_in_state("never", UserState::Active).await;
        for n in 1..=20 {
            let r = f.check(&never, Factor::Password, false).await;
            assert_eq!(
                (r.failed_attempts, r.remaining_attempts, r.locked),
                (n, None, false)
            );
        }

        f.default_policy(policy(4, 0)).await;
        f.acme_policy(LockoutPolicy {
            show_attempts: false,
            ..policy(2, 0)
        })
        .await;
        let acme_user = f.user_in_state("acme-user", UserState::Active).await;
        let r = f.check(&acme_user, Factor::Password, false).await;
        let err = r.error().expect("error");
        assert_eq!(err.attempts(), None);
        assert_eq!(err.body().details[0].failed_attempts, None);
        assert!(!serde_json::to_string(&err.body())
            .expect("json")
            .contains("Attempts"));
        assert!(f.check(&acme_user, Factor::Password, false).await.locked);

        let globex_user = userstate::UserId::new("globex-user").expect("id");
        let g = &f.globex_admin;
        f.service
            .create(g, &globex_user, userstate::InitialState::Active)
            .await
            .expect("create");
        for n in 1..=4 {
            let r = f
                .service
                .record_check(g, &globex_user, Factor::Password, false)
                .await
                .expect("check");
            assert_eq!(r.locked, n == 4, "instance default of 4 in globex");
            assert_eq!(r.remaining_attempts, Some(4 - n));
        }

        // Checks on users that cannot log in for other reasons.
        let inactive = f.user_in_state("inactive", UserState::Inactive).await;
        let err = f
            .service
            .record_check(&f.acme_admin, &inactive, Factor::Password, false)
            .await
            .expect_err("inactive");
        assert_eq!(err.id(), ids::LOGIN_INACTIVE);
        let initial = f.user_in_state("initial", UserState::Initial).await;
        assert!(!f.check(&initial, Factor::Password, false).await.locked);
        let err = f
            .service
            .record_check(&f.acme_reader, &initial, Factor::Password, false)
            .await
            .expect_err("reader");
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
        let err = f
            .service
            .record_check(g, &initial, Factor::Password, false)
            .await
            .expect_err("other org");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    });
}

/// A temporary lockout expires by the clock; the next check records
/// `user.unlocked` (cause expired); repeated lockouts grow up to the maximum
/// and turn permanent after the configured number.
#[test]
fn temporary_lockouts_expire_grow_and_turn_permanent() {
    block_on(async {
        let f = fixture();
        f.acme_policy(LockoutPolicy {
            lock_duration_ms: Some(1_000),
            duration_growth: 2,
            max_lock_duration_ms: Some(3_000),
            permanent_after: 3,
            ..policy(1, 0)
        })
        .await;
        let id = f.user_in_state("temporary", UserState::Active).await;
        let mut expiries = Vec::new();
        for round in 0..4 {
            let r = f.check(&id, Factor::Password, false).await;
            assert!(r.locked, "round {round}");
            let lock = f.stored(&id).await.lock.expect("locked");
            assert_eq!(lock.cause, LockCause::Lockout);
            let now = f.now_plus(0).unix_millis();
            expiries.push(lock.expires_at.map(|t| t.unix_millis() - now));
            assert_eq!(
                f.service.login_allowed(&id).await.expect_err("locked").id(),
                ids::LOGIN_LOCKED
            );
            if let Some(Some(ms)) = expiries.last() {
                f.clock.advance(*ms - 1);
                assert!(f.service.login_allowed(&id).await.is_err());
                f.clock.advance(1);
                f.service.login_allowed(&id).await.expect("expired");
            }
        }
        assert_eq!(expiries, [Some(1_000), Some(2_000), Some(3_000), None]);
        let types = f.event_types(&id).await;
        assert_eq!(
            types[1..6],
            [
                "user.password.check.failed",
                "user.locked",
                "user.unlocked",
                "user.password.check.failed",
                "user.locked"
            ]
        );
        let unlocks: Vec<_> = f
            .all_events(&id)
            .await
            .into_iter()
            .filter(|e| e.event_type() == "user.unlocked")
            .map(|e| e.payload)
            .collect();
        assert_eq!(
            unlocks,
            vec![
                EventPayload::Unlocked {
                    cause: UnlockCause::Expired,
                    reason: None,
                    resets_escalation: false
                };
                3
            ]
        );
        // The permanent lock does not expire.
        f.clock.advance(1_000_000_000);
        assert!(f.service.login_allowed(&id).await.is_err());

        // A success after expiry unlocks and resets the escalation.
        let other = f.user_in_state("recovers", UserState::Active).await;
        assert!(f.check(&other, Factor::Password, false).await.locked);
        f.clock.advance(1_000);
        let ok = f.check(&other, Factor::Password, true).await;
        assert_eq!(ok.state, UserState::Active);
        assert_eq!(
            f.event_types(&other).await[3..],
            ["user.unlocked", "user.password.check.succeeded"]
        );
        let stored = f.stored(&other).await;
        assert_eq!((stored.lockouts, stored.failed_checks.password), (0, 0));
        let r = f.check(&other, Factor::Password, false).await;
        let expires = f.stored(&other).await.lock.and_then(|l| l.expires_at);
        assert!(r.locked);
        assert_eq!(expires, Some(f.now_plus(1_000)));
        f.assert_snapshot_is_replay(&id).await;
        f.assert_snapshot_is_replay(&other).await;
    });
}

/// Unlocks stored before the reset was recorded (JSON without
/// `resetsEscalation`) replay as they were stored: keeping the escalation.
/// An administrator's unlock written now resets it.
#[test]
fn old_unlocks_keep_their_escalation_on_replay_new_ones_reset_it() {
    let event = |sequence: u64, payload: &str| -> Event {
        serde_json::from_str(&format!(
            r#"{{"userId":"u","orgId":"acme","sequence":{sequence},
                "createdAt":"2024-06-13T06:44:37.424Z","creator":"admin","payload":{payload}}}"#
        ))
        .expect("an event of the core's JSON")
    };
    let before = [
        event(1, r#"{"added":{"state":"active"}}"#),
        event(2, r#"{"checkFailed":{"factor":"password"}}"#),
        event(
            3,
            r#"{"locked":{"reason":null,"expiresAt":"2024-06-13T06:45:37.424Z","cause":"lockout"}}"#,
        ),
    ];
    let old = [
        before.to_vec(),
        vec![event(4, r#"{"unlocked":{"cause":"command"}}"#)],
    ]
    .concat();
    let replayed = User::replay(&old).expect("a user");
    assert_eq!((replayed.state, replayed.lockouts), (UserState::Active, 1));
    let new = [
        before.to_vec(),
        vec![event(
            4,
            r#"{"unlocked":{"cause":"command","resetsEscalation":true}}"#,
        )],
    ]
    .concat();
    assert_eq!(User::replay(&new).expect("a user").lockouts, 0);
}
