//! The transition table, cell by cell, and the rules around it (creation,
//! unlock back to the state before the lock, lock reasons and expiry, login
//! by state, sequences and details): pure domain logic, tested once here on
//! the service over the in-memory repository.

use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::{at, details, user, Fixture, T0};
use userstate::storage::Scope;
use userstate::{
    ids, Command, ErrorKind, EventPayload, InMemoryRepository, InitialState, LockRequest, Reason,
    UserId, UserState,
};

fn fixture() -> Fixture {
    Fixture::new(Arc::new(InMemoryRepository::new()))
}

/// Where a user starts before a command of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    NeverCreated,
    Initial,
    Active,
    LockedFromActive,
    LockedFromInitial,
    Inactive,
    Deleted,
}

const STARTS: [Start; 7] = [
    Start::NeverCreated,
    Start::Initial,
    Start::Active,
    Start::LockedFromActive,
    Start::LockedFromInitial,
    Start::Inactive,
    Start::Deleted,
];

/// Either the state the command leads to, or the error kind and id.
type Expected = Result<UserState, (ErrorKind, &'static str)>;

/// The transition table of the README, cell by cell.
fn expected(start: Start, command: &Command) -> Expected {
    use Start::*;
    use UserState as S;
    let precondition = |id| Err((ErrorKind::FailedPrecondition, id));
    let not_found = Err((ErrorKind::NotFound, ids::NOT_FOUND));
    match (command, start) {
        (Command::Create { state }, NeverCreated) => Ok((*state).into()),
        (Command::Create { .. }, _) => Err((ErrorKind::AlreadyExists, ids::ALREADY_EXISTS)),
        (_, NeverCreated | Deleted) => not_found,

        (Command::Lock(_), Initial | Active) => Ok(S::Locked),
        (Command::Lock(_), LockedFromActive | LockedFromInitial) => {
            precondition(ids::ALREADY_LOCKED)
        }
        (Command::Lock(_), Inactive) => precondition(ids::NOT_ACTIVE_OR_INITIAL),

        (Command::Unlock { .. }, LockedFromActive) => Ok(S::Active),
        (Command::Unlock { .. }, LockedFromInitial) => Ok(S::Initial),
        (Command::Unlock { .. }, _) => precondition(ids::NOT_LOCKED),

        // A locked initial user is still initial (it would otherwise skip
        // initialisation by deactivate + reactivate).
        (Command::Deactivate { .. }, Initial | LockedFromInitial) => {
            precondition(ids::INITIAL_CANNOT_DEACTIVATE)
        }
        (Command::Deactivate { .. }, Active | LockedFromActive) => Ok(S::Inactive),
        (Command::Deactivate { .. }, Inactive) => precondition(ids::ALREADY_INACTIVE),

        (Command::Reactivate { .. }, Inactive) => Ok(S::Active),
        (Command::Reactivate { .. }, _) => precondition(ids::NOT_INACTIVE),

        (Command::Remove { .. }, _) => Ok(S::Deleted),

        (Command::CompleteInitialisation, Initial) => Ok(S::Active),
        (Command::CompleteInitialisation, _) => precondition(ids::NOT_INITIAL),

        // Beyond the table: recording checks under a policy that never locks.
        (Command::RecordCheck { .. }, Initial) => Ok(S::Initial),
        (Command::RecordCheck { .. }, Active) => Ok(S::Active),
        (Command::RecordCheck { .. }, LockedFromActive | LockedFromInitial) => {
            precondition(ids::LOGIN_LOCKED)
        }
        (Command::RecordCheck { .. }, Inactive) => precondition(ids::LOGIN_INACTIVE),
        (Command::ChangePassword, LockedFromActive | LockedFromInitial) => Ok(S::Locked),
        (Command::ChangePassword, Initial) => Ok(S::Initial),
        (Command::ChangePassword, Active) => Ok(S::Active),
        (Command::ChangePassword, Inactive) => Ok(S::Inactive),
        (other, _) => panic!("no expectation for {other:?}"),
    }
}

async fn prepare(f: &Fixture, id: &str, start: Start) -> UserId {
    let admin = &f.acme_admin;
    match start {
        Start::NeverCreated => user(id),
        Start::Initial => f.user_in_state(id, UserState::Initial).await,
        Start::Active => f.user_in_state(id, UserState::Active).await,
        Start::LockedFromActive => f.user_in_state(id, UserState::Locked).await,
        Start::LockedFromInitial => {
            let id = f.user_in_state(id, UserState::Initial).await;
            f.service
                .lock(admin, &id, LockRequest::new())
                .await
                .expect("lock initial user");
            id
        }
        Start::Inactive => f.user_in_state(id, UserState::Inactive).await,
        Start::Deleted => f.user_in_state(id, UserState::Deleted).await,
    }
}

/// Every cell of the transition table of the transition table (plus a failed check and a
/// password change from every state): the resulting state on success, the
/// exact error otherwise, and nothing written on error.
#[test]
fn every_transition_from_every_state() {
    block_on(async {
        let f = fixture();
        let commands = [
            Command::Create {
                state: InitialState::Active,
            },
            Command::Create {
                state: InitialState::Initial,
            },
            Command::Lock(LockRequest::new()),
            Command::Unlock { reason: None },
            Command::Deactivate { reason: None },
            Command::Reactivate { reason: None },
            Command::Remove { reason: None },
            Command::CompleteInitialisation,
            Command::RecordCheck {
                factor: userstate::Factor::Password,
                succeeded: false,
            },
            Command::ChangePassword,
        ];
        for (s, start) in STARTS.into_iter().enumerate() {
            for (c, command) in commands.iter().enumerate() {
                let id = prepare(&f, &format!("user-{s}-{c}"), start).await;
                let before = f.repo.load(&id, &Scope::Instance).await.expect("load");
                let history_before = f.all_events(&id).await;
                let result = f.service.execute(&f.acme_admin, &id, command.clone()).await;
                let cell = format!("{command:?} on {start:?}");
                match (expected(start, command), result) {
                    (Ok(state), Ok(details)) => {
                        let after = f.stored(&id).await;
                        assert_eq!(after.state, state, "{cell}");
                        let sequence_before = before.map_or(0, |u| u.sequence);
                        assert_eq!(details.sequence, sequence_before + 1, "{cell}");
                        assert_eq!(after.details(), details, "{cell}");
                    }
                    (Err((kind, error_id)), Err(err)) => {
                        assert_eq!((err.kind(), err.id()), (kind, error_id), "{cell}: {err}");
                        assert_eq!(
                            f.repo.load(&id, &Scope::Instance).await.expect("load"),
                            before,
                            "{cell}"
                        );
                        assert_eq!(f.all_events(&id).await, history_before, "{cell}");
                    }
                    (want, got) => panic!("{cell}: expected {want:?}, got {got:?}"),
                }
                f.assert_snapshot_is_replay(&id).await;
            }
        }
    });
}

/// Create gives sequence 1 in the target organisation; an id that exists or
/// existed, in any organisation, cannot be created again.
#[test]
fn create_rules() {
    block_on(async {
        let f = fixture();
        let s = &f.service;
        let alice = user("alice");
        let d = s
            .create(&f.acme_admin, &alice, InitialState::Active)
            .await
            .expect("create");
        assert_eq!(d, details(&alice, &f.acme, 1, T0, T0));
        let again = s
            .create(&f.acme_admin, &alice, InitialState::Initial)
            .await
            .expect_err("duplicate");
        assert_eq!(
            (again.kind(), again.id()),
            (ErrorKind::AlreadyExists, ids::ALREADY_EXISTS)
        );
        assert_eq!(again.message(), "User already exists");

        // Ids are global: another organisation cannot take it either.
        let elsewhere = s
            .create(&f.globex_admin, &alice, InitialState::Active)
            .await
            .expect_err("taken globally");
        assert_eq!(elsewhere.kind(), ErrorKind::AlreadyExists);

        // Removed ids are never reused.
        s.remove(&f.acme_admin, &alice, None).await.expect("remove");
        let reused = s
            .create(&f.acme_admin, &alice, InitialState::Active)
            .await
            .expect_err("reuse");
        assert_eq!(reused.kind(), ErrorKind::AlreadyExists);

        // The root caller creates in the organisation it names.
        let bob = user("bob");
        let root_in_globex = f.root.clone().in_org(f.globex.clone());
        let d = s
            .create(&root_in_globex, &bob, InitialState::Initial)
            .await
            .expect("create in globex");
        assert_eq!(d.resource_owner, f.globex);
        assert_eq!(f.stored(&bob).await.state, UserState::Initial);
        let history = f.all_events(&bob).await;
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].creator, f.root.user_id);
        assert_eq!(
            history[0].payload,
            EventPayload::Added {
                state: InitialState::Initial
            }
        );
    });
}

/// Unlock returns to the state before the lock, so an initial user cannot
/// skip initialisation by being locked and unlocked.
#[test]
fn unlock_returns_to_state_before_lock() {
    block_on(async {
        let f = fixture();
        let s = &f.service;
        let admin = &f.acme_admin;
        for (name, initial, state) in [
            ("was-initial", InitialState::Initial, UserState::Initial),
            ("was-active", InitialState::Active, UserState::Active),
        ] {
            let id = user(name);
            s.create(admin, &id, initial).await.expect("create");
            s.lock(admin, &id, LockRequest::new()).await.expect("lock");
            let lock = f.stored(&id).await.lock.expect("lock recorded");
            assert_eq!(lock.previous_state, state);
            s.unlock(admin, &id, None).await.expect("unlock");
            let after = f.stored(&id).await;
            assert_eq!(after.state, state, "{name}");
            assert_eq!(after.lock, None);
        }
        // Still initial: completing initialisation works after the round trip.
        s.complete_initialisation(admin, &user("was-initial"))
            .await
            .expect("complete initialisation");
    });
}

/// A lock records its reason and expiry; an expiry in the past is rejected;
/// an expired lock no longer blocks login but still needs an unlock.
#[test]
fn lock_reason_and_expiry() {
    block_on(async {
        let f = fixture();
        let s = &f.service;
        let admin = &f.acme_admin;
        let id = f.user_in_state("temp-locked", UserState::Active).await;

        let past = LockRequest::new().until(at(T0));
        let err = s.lock(admin, &id, past).await.expect_err("expiry now");
        assert_eq!(
            (err.kind(), err.id()),
            (ErrorKind::InvalidArgument, ids::INVALID_TIME)
        );

        let reason = Reason::new("fraud suspected; ticket #42").expect("reason");
        let until = at(T0 + 60_000);
        s.lock(
            admin,
            &id,
            LockRequest::new().reason(reason.clone()).until(until),
        )
        .await
        .expect("lock");
        let history = f.all_events(&id).await;
        assert_eq!(
            history.last().map(|e| &e.payload),
            Some(&EventPayload::Locked {
                reason: Some(reason.clone()),
                expires_at: Some(until),
                cause: userstate::LockCause::Command,
            })
        );
        let lock = f.stored(&id).await.lock.expect("lock");
        assert_eq!(lock.reason, Some(reason));
        assert_eq!(lock.expires_at, Some(until));
        assert_eq!(lock.locked_at, at(T0));

        let refused = s.login_allowed(&id).await.expect_err("locked");
        assert_eq!(refused.id(), ids::LOGIN_LOCKED);
        assert_eq!(refused.message(), "User is locked");
        f.clock.advance(59_999);
        assert!(s.login_allowed(&id).await.is_err());
        f.clock.advance(1);
        s.login_allowed(&id).await.expect("lock expired");

        // Reads show the state in force; storage keeps the lock until the
        // next command, which records the unlock (cause expired) first.
        let shown = s.get(admin, &id).await.expect("get");
        assert_eq!((shown.state, shown.lock), (UserState::Active, None));
        assert_eq!(f.stored(&id).await.state, UserState::Locked);
        s.lock(admin, &id, LockRequest::new())
            .await
            .expect("an expired lock does not stop a new one");
        assert_eq!(
            f.event_types(&id).await[1..],
            ["user.locked", "user.unlocked", "user.locked"]
        );
        s.unlock(admin, &id, None).await.expect("unlock");
        s.login_allowed(&id).await.expect("active");

        // An expired lock of an initial user lets it no further than initial.
        let init = f.user_in_state("temp-initial", UserState::Initial).await;
        let soon = f.now_plus(1_000);
        s.lock(admin, &init, LockRequest::new().until(soon))
            .await
            .expect("lock");
        f.clock.advance(5_000);
        let err = s.login_allowed(&init).await.expect_err("still initial");
        assert_eq!(err.id(), ids::LOGIN_INITIAL);

        let long = "x".repeat(userstate::MAX_REASON_CHARS + 1);
        assert_eq!(
            Reason::new(long).expect_err("too long").kind(),
            ErrorKind::InvalidArgument
        );
    });
}

/// Only active users may log in, and the error says why not.
#[test]
fn login_allowed_by_state() {
    block_on(async {
        let f = fixture();
        let s = &f.service;
        let cases = [
            (UserState::Active, None),
            (
                UserState::Initial,
                Some((ids::LOGIN_INITIAL, "User is not initialised")),
            ),
            (
                UserState::Locked,
                Some((ids::LOGIN_LOCKED, "User is locked")),
            ),
            (
                UserState::Inactive,
                Some((ids::LOGIN_INACTIVE, "User is not active")),
            ),
            (UserState::Deleted, Some((ids::NOT_FOUND, "User not found"))),
        ];
        for (state, refusal) in cases {
            let id = f.user_in_state(&format!("login-{state}"), state).await;
            let result = s.login_allowed(&id).await;
            match refusal {
                None => result.expect("allowed"),
                Some((error_id, message)) => {
                    let err = result.expect_err("refused");
                    assert_eq!((err.id(), err.message()), (error_id, message), "{state}");
                }
            }
        }
        let err = s
            .login_allowed(&user("never-created"))
            .await
            .expect_err("unknown");
        assert_eq!(err.kind(), ErrorKind::NotFound);
    });
}

/// Sequences count 1, 2, 3, ...; details carry the first event's time as
/// creation date and the last one's as change date; reads report the same.
#[test]
fn sequence_and_details() {
    block_on(async {
        let f = fixture();
        let s = &f.service;
        let admin = &f.acme_admin;
        let id = user("seq");
        s.create(admin, &id, InitialState::Initial)
            .await
            .expect("create");
        f.clock.advance(1_000);
        let d = s.complete_initialisation(admin, &id).await.expect("init");
        assert_eq!(d, details(&id, &f.acme, 2, T0, T0 + 1_000));
        f.clock.advance(1_000);
        let d = s.lock(admin, &id, LockRequest::new()).await.expect("lock");
        assert_eq!(d, details(&id, &f.acme, 3, T0, T0 + 2_000));
        f.clock.advance(1_000);
        let d = s.unlock(admin, &id, None).await.expect("unlock");
        assert_eq!(d, details(&id, &f.acme, 4, T0, T0 + 3_000));
        let read = s.get(&f.acme_reader, &id).await.expect("get");
        assert_eq!(read.details(), d);
        assert_eq!(read.state, UserState::Active);

        // A clock that steps back never makes a change older than the last one.
        f.clock.advance(-10_000);
        let d = s.deactivate(admin, &id, None).await.expect("deactivate");
        assert_eq!(d, details(&id, &f.acme, 5, T0, T0 + 3_000));

        // Failed commands do not advance the sequence.
        let err = s
            .deactivate(admin, &id, None)
            .await
            .expect_err("already inactive");
        assert_eq!(err.id(), ids::ALREADY_INACTIVE);
        assert_eq!(f.stored(&id).await.sequence, 5);
        f.assert_snapshot_is_replay(&id).await;
    });
}
