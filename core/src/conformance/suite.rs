//! The single-threaded conformance tests: transitions, details, history,
//! lists, tenant isolation and the repository's optimistic check.

use std::sync::Arc;

use super::fixture::{at, details, user, Fixture, T0};
use crate::{
    ids, Caller, Command, Commit, ErrorKind, EventPayload, HistoryQuery, InitialState, ListQuery,
    LockReason, LockRequest, UserId, UserRepository, UserState,
};

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

/// SPEC §2, cell by cell.
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

        (Command::Unlock, LockedFromActive) => Ok(S::Active),
        (Command::Unlock, LockedFromInitial) => Ok(S::Initial),
        (Command::Unlock, _) => precondition(ids::NOT_LOCKED),

        // A locked initial user is still initial (it would otherwise skip
        // initialisation by deactivate + reactivate).
        (Command::Deactivate, Initial | LockedFromInitial) => {
            precondition(ids::INITIAL_CANNOT_DEACTIVATE)
        }
        (Command::Deactivate, Active | LockedFromActive) => Ok(S::Inactive),
        (Command::Deactivate, Inactive) => precondition(ids::ALREADY_INACTIVE),

        (Command::Reactivate, Inactive) => Ok(S::Active),
        (Command::Reactivate, _) => precondition(ids::NOT_INACTIVE),

        (Command::Remove, _) => Ok(S::Deleted),

        (Command::CompleteInitialisation, Initial) => Ok(S::Active),
        (Command::CompleteInitialisation, _) => precondition(ids::NOT_INITIAL),

        // Beyond the table: recording checks (§7) under a policy that never locks.
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

/// Every cell of the transition table of SPEC §2 (plus a failed check and a
/// password change from every state): the resulting state on success, the
/// exact error otherwise, and nothing written on error.
pub async fn every_transition_from_every_state(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let commands = [
        Command::Create {
            state: InitialState::Active,
        },
        Command::Create {
            state: InitialState::Initial,
        },
        Command::Lock(LockRequest::new()),
        Command::Unlock,
        Command::Deactivate,
        Command::Reactivate,
        Command::Remove,
        Command::CompleteInitialisation,
        Command::RecordCheck {
            factor: crate::Factor::Password,
            succeeded: false,
        },
        Command::ChangePassword,
    ];
    for (s, start) in STARTS.into_iter().enumerate() {
        for (c, command) in commands.iter().enumerate() {
            let id = prepare(&f, &format!("user-{s}-{c}"), start).await;
            let before = f.repo.load(&id).await.expect("load");
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
                    assert_eq!(f.repo.load(&id).await.expect("load"), before, "{cell}");
                    assert_eq!(f.all_events(&id).await, history_before, "{cell}");
                }
                (want, got) => panic!("{cell}: expected {want:?}, got {got:?}"),
            }
            f.assert_snapshot_is_replay(&id).await;
        }
    }
}

/// Create gives sequence 1 in the target organisation; an id that exists or
/// existed, in any organisation, cannot be created again.
pub async fn create_rules(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
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
    s.remove(&f.acme_admin, &alice).await.expect("remove");
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
}

/// Unlock returns to the state before the lock, so an initial user cannot
/// skip initialisation by being locked and unlocked.
pub async fn unlock_returns_to_state_before_lock(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
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
        s.unlock(admin, &id).await.expect("unlock");
        let after = f.stored(&id).await;
        assert_eq!(after.state, state, "{name}");
        assert_eq!(after.lock, None);
    }
    // Still initial: completing initialisation works after the round trip.
    s.complete_initialisation(admin, &user("was-initial"))
        .await
        .expect("complete initialisation");
}

/// A lock records its reason and expiry; an expiry in the past is rejected;
/// an expired lock no longer blocks login but still needs an unlock.
pub async fn lock_reason_and_expiry(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let admin = &f.acme_admin;
    let id = f.user_in_state("temp-locked", UserState::Active).await;

    let past = LockRequest::new().until(at(T0));
    let err = s.lock(admin, &id, past).await.expect_err("expiry now");
    assert_eq!(
        (err.kind(), err.id()),
        (ErrorKind::InvalidArgument, ids::INVALID_TIME)
    );

    let reason = LockReason::new("fraud suspected; ticket #42").expect("reason");
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
            cause: crate::LockCause::Command,
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

    // The state stays locked until an unlock is written.
    assert_eq!(
        s.get(admin, &id).await.expect("get").state,
        UserState::Locked
    );
    let again = s
        .lock(admin, &id, LockRequest::new())
        .await
        .expect_err("locked");
    assert_eq!(again.id(), ids::ALREADY_LOCKED);
    s.unlock(admin, &id).await.expect("unlock");
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

    let long = "x".repeat(crate::MAX_REASON_CHARS + 1);
    assert_eq!(
        LockReason::new(long).expect_err("too long").kind(),
        ErrorKind::InvalidArgument
    );
}

/// Only active users may log in, and the error says why not.
pub async fn login_allowed_by_state(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
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
}

/// Sequences count 1, 2, 3, ...; details carry the first event's time as
/// creation date and the last one's as change date; reads report the same.
pub async fn sequence_and_details(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
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
    let d = s.unlock(admin, &id).await.expect("unlock");
    assert_eq!(d, details(&id, &f.acme, 4, T0, T0 + 3_000));
    let read = s.get(&f.acme_reader, &id).await.expect("get");
    assert_eq!(read.details(), d);
    assert_eq!(read.state, UserState::Active);

    // A clock that steps back never makes a change older than the last one.
    f.clock.advance(-10_000);
    let d = s.deactivate(admin, &id).await.expect("deactivate");
    assert_eq!(d, details(&id, &f.acme, 5, T0, T0 + 3_000));

    // Failed commands do not advance the sequence.
    let err = s
        .deactivate(admin, &id)
        .await
        .expect_err("already inactive");
    assert_eq!(err.id(), ids::ALREADY_INACTIVE);
    assert_eq!(f.stored(&id).await.sequence, 5);
    f.assert_snapshot_is_replay(&id).await;
}

/// The history holds one event per successful command with its type, owner,
/// sequence, time, creator and payload, and can be read in pages.
pub async fn history_records_every_event(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let id = user("audited");
    s.create(&f.acme_admin, &id, InitialState::Active)
        .await
        .expect("create");
    f.clock.advance(10);
    s.lock(&f.acme_writer, &id, LockRequest::new())
        .await
        .expect("lock");
    f.clock.advance(10);
    s.unlock(&f.root.clone().in_org(f.acme.clone()), &id)
        .await
        .expect("unlock");
    f.clock.advance(10);
    s.deactivate(&f.acme_admin, &id).await.expect("deactivate");
    s.reactivate(&f.acme_admin, &id).await.expect("reactivate");
    s.remove(&f.acme_admin, &id).await.expect("remove");

    let history = s
        .history(&f.acme_reader, &id, HistoryQuery::default())
        .await;
    // Removed users are not readable through `get`, but their trail is.
    let history = history.expect("history");
    let types: Vec<&str> = history.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        [
            "user.added",
            "user.locked",
            "user.unlocked",
            "user.deactivated",
            "user.reactivated",
            "user.removed"
        ]
    );
    let creators: Vec<&str> = history.iter().map(|e| e.creator.as_str()).collect();
    assert_eq!(
        creators,
        [
            "acme-admin",
            "acme-writer",
            "root",
            "acme-admin",
            "acme-admin",
            "acme-admin"
        ]
    );
    let times: Vec<i64> = history.iter().map(|e| e.created_at.unix_millis()).collect();
    assert_eq!(times, [T0, T0 + 10, T0 + 20, T0 + 30, T0 + 30, T0 + 30]);
    for (event, sequence) in history.iter().zip(1u64..) {
        assert_eq!(event.sequence, sequence);
        assert_eq!(event.user_id, id);
        assert_eq!(event.org_id, f.acme);
    }

    let page = s
        .history(
            &f.acme_reader,
            &id,
            HistoryQuery {
                after_sequence: 2,
                limit: 3,
            },
        )
        .await
        .expect("page");
    let sequences: Vec<u64> = page.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [3, 4, 5]);
    let bad = s
        .history(
            &f.acme_reader,
            &id,
            HistoryQuery {
                after_sequence: 0,
                limit: 0,
            },
        )
        .await
        .expect_err("limit 0");
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument);
}

/// `get` of a removed user is NotFound; its history stays readable for audit.
pub async fn history_of_removed_user_stays_readable(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let id = f.user_in_state("gone", UserState::Deleted).await;
    let err = f
        .service
        .get(&f.acme_reader, &id)
        .await
        .expect_err("deleted");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let history = f
        .service
        .history(&f.acme_reader, &id, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(history.len(), 2);
    // Still invisible from another organisation.
    let err = f
        .service
        .history(&f.globex_admin, &id, HistoryQuery::default())
        .await
        .expect_err("other org");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// Lists are per organisation, ordered by id, filtered by state, paged with
/// `after`, and never show deleted users or users of other organisations.
pub async fn list_pages_and_filters(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let mut locked = Vec::new();
    for i in 0..23 {
        let state = match i % 3 {
            0 => UserState::Locked,
            1 => UserState::Active,
            _ => UserState::Inactive,
        };
        let id = f.user_in_state(&format!("acme-{i:02}"), state).await;
        if state == UserState::Locked {
            locked.push(id);
        }
    }
    f.user_in_state("acme-deleted", UserState::Deleted).await;
    let globex = f.globex_admin.clone();
    for i in 0..5 {
        let id = user(&format!("globex-{i}"));
        s.create(&globex, &id, InitialState::Active)
            .await
            .expect("create");
        s.lock(&globex, &id, LockRequest::new())
            .await
            .expect("lock");
    }

    let mut seen = Vec::new();
    let mut query = ListQuery {
        state: Some(UserState::Locked),
        after: None,
        limit: 3,
    };
    loop {
        let page = s.list(&f.acme_reader, &query).await.expect("list");
        assert!(page.users.len() <= 3);
        for u in &page.users {
            assert_eq!(u.state, UserState::Locked);
            assert_eq!(u.org_id, f.acme);
        }
        seen.extend(page.users.into_iter().map(|u| u.id));
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => break,
        }
    }
    assert_eq!(
        seen, locked,
        "all locked acme users, in id order, once each"
    );

    let all = s
        .list(
            &f.acme_reader,
            &ListQuery {
                limit: 1000,
                ..ListQuery::all()
            },
        )
        .await
        .expect("list all");
    assert_eq!(all.users.len(), 23);
    assert_eq!(all.next_after, None);
    assert!(all.users.windows(2).all(|w| w[0].id < w[1].id));

    let exact = s
        .list(
            &f.acme_reader,
            &ListQuery {
                limit: 8,
                ..ListQuery::in_state(UserState::Locked)
            },
        )
        .await
        .expect("exact page");
    assert_eq!(exact.users.len(), 8);
    assert_eq!(exact.next_after, None, "no further page when exactly full");

    let none = s
        .list(&f.acme_reader, &ListQuery::in_state(UserState::Initial))
        .await
        .expect("empty");
    assert!(none.users.is_empty());

    let root_in_globex = f.root.clone().in_org(f.globex.clone());
    let g = s
        .list(&root_in_globex, &ListQuery::in_state(UserState::Locked))
        .await
        .expect("globex");
    assert_eq!(g.users.len(), 5);

    for bad in [
        ListQuery::in_state(UserState::Deleted),
        ListQuery {
            limit: 0,
            ..ListQuery::all()
        },
        ListQuery {
            limit: crate::MAX_PAGE_SIZE + 1,
            ..ListQuery::all()
        },
    ] {
        let err = s.list(&f.acme_reader, &bad).await.expect_err("bad query");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
    }
    let err = s
        .list(
            &f.globex_admin.clone().in_org(f.acme.clone()),
            &ListQuery::all(),
        )
        .await
        .expect_err("no grant in acme");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
}

/// SPEC §5: arguments, then permission in the targeted organisation, then
/// existence there, then the transition; a user of another organisation is
/// indistinguishable from one that does not exist.
pub async fn tenant_isolation_and_order_of_checks(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let acme_user = f.user_in_state("acme-user", UserState::Locked).await;
    let missing = user("missing");

    // 1. Arguments first: a bad expiry beats a missing permission.
    let err = s
        .lock(&f.nobody, &acme_user, LockRequest::new().until(at(0)))
        .await
        .expect_err("bad argument");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    // 2. Permission before existence or state: the same answer for a user that
    // exists, one that does not, and one in any state.
    for caller in [&f.nobody, &f.acme_reader] {
        for id in [&acme_user, &missing] {
            let err = s.unlock(caller, id).await.expect_err("no write");
            assert_eq!(err.kind(), ErrorKind::PermissionDenied);
            assert_eq!(err.id(), ids::PERMISSION_DENIED);
        }
    }
    let err = s
        .remove(&f.acme_writer, &acme_user)
        .await
        .expect_err("no delete");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let err = s.get(&f.nobody, &acme_user).await.expect_err("no read");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);

    // 3. A caller with every permission in its own organisation sees nothing
    // of another: errors equal those for an id that was never used.
    let globex = &f.globex_admin;
    let foreign = s.unlock(globex, &acme_user).await.expect_err("foreign");
    let absent = s.unlock(globex, &missing).await.expect_err("absent");
    assert_eq!(foreign, absent);
    assert_eq!(foreign.body(), absent.body());
    assert_eq!(foreign.kind(), ErrorKind::NotFound);
    let foreign = s.get(globex, &acme_user).await.expect_err("foreign get");
    assert_eq!(
        foreign,
        s.get(globex, &missing).await.expect_err("absent get")
    );
    let foreign = s
        .history(globex, &acme_user, HistoryQuery::default())
        .await
        .expect_err("foreign history");
    assert_eq!(foreign.kind(), ErrorKind::NotFound);
    let page = s.list(globex, &ListQuery::all()).await.expect("list");
    assert!(page.users.is_empty());
    let err = s
        .remove(globex, &acme_user)
        .await
        .expect_err("foreign remove");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        s.login_allowed(&acme_user).await.expect_err("locked").id(),
        ids::LOGIN_LOCKED
    );

    // Naming acme without a grant there is denied, not not-found.
    let err = s
        .unlock(&globex.clone().in_org(f.acme.clone()), &acme_user)
        .await
        .expect_err("no grant in acme");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);

    // An instance-wide grant covers every organisation, but only the one named.
    let root = &f.root;
    let err = s
        .unlock(root, &acme_user)
        .await
        .expect_err("root's own org");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    s.unlock(&root.clone().in_org(f.acme.clone()), &acme_user)
        .await
        .expect("root in acme");

    // 4. The transition last.
    let err = s
        .unlock(&f.acme_writer, &acme_user)
        .await
        .expect_err("not locked");
    assert_eq!(err.kind(), ErrorKind::FailedPrecondition);

    // A caller acting on itself needs the same permission as anyone.
    let selfish = Caller::new(acme_user.clone(), f.acme.clone());
    let err = s
        .lock(&selfish, &acme_user, LockRequest::new())
        .await
        .expect_err("self");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);

    // Nothing above touched the user except root's unlock.
    assert_eq!(f.stored(&acme_user).await.sequence, 3);
    f.assert_snapshot_is_replay(&acme_user).await;
    assert_eq!(f.repo.load(&missing).await.expect("load"), None);
}

/// After a long mixed series of commands, every stored snapshot equals the
/// replay of the stored events.
pub async fn snapshot_equals_replay(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let admin = &f.acme_admin;
    let ids: Vec<UserId> = (0..6).map(|i| user(&format!("replay-{i}"))).collect();
    for (i, id) in ids.iter().enumerate() {
        let state = if i % 2 == 0 {
            InitialState::Active
        } else {
            InitialState::Initial
        };
        s.create(admin, id, state).await.expect("create");
    }
    let reason = LockReason::new("audit").expect("reason");
    for round in 0..5u64 {
        for (i, id) in ids.iter().enumerate() {
            f.clock.advance(7);
            // Ignore outcomes: the point is the stored result of whatever succeeded.
            let lock = LockRequest::new()
                .reason(reason.clone())
                .until(f.now_plus(1_000));
            let command = match (round as usize + i) % 6 {
                0 => Command::Lock(lock),
                1 => Command::Unlock,
                2 => Command::Deactivate,
                3 => Command::Reactivate,
                4 => Command::CompleteInitialisation,
                _ => Command::Lock(LockRequest::new()),
            };
            let _ = s.execute(admin, id, command).await;
        }
    }
    s.remove(admin, &ids[0]).await.expect("remove");
    for id in &ids {
        f.assert_snapshot_is_replay(id).await;
    }
}

/// The repository contract itself: an append whose expected sequence is
/// stale is a conflict and writes nothing; the service turns it into a
/// re-decision, never a blind retry.
pub async fn stale_append_is_a_conflict_and_writes_nothing(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo.clone());
    let id = f.user_in_state("stale", UserState::Active).await;
    let current = f.stored(&id).await;
    let lock_event = |sequence| crate::Event {
        user_id: id.clone(),
        org_id: f.acme.clone(),
        sequence,
        created_at: at(T0),
        creator: f.acme_admin.user_id.clone(),
        payload: EventPayload::Locked {
            reason: None,
            expires_at: None,
            cause: crate::LockCause::Command,
        },
    };
    for expected_sequence in [0, 2, 7] {
        let event = lock_event(expected_sequence + 1);
        let snapshot = crate::User::apply(Some(current.clone()), &event);
        let err = repo
            .append(Commit {
                expected_sequence,
                events: vec![event],
                snapshot,
            })
            .await
            .expect_err("stale");
        assert!(err.is_conflict(), "{err:?}");
        assert_eq!(err.kind(), ErrorKind::Aborted);
    }
    assert_eq!(f.stored(&id).await, current);
    let locked = repo
        .list(&f.acme, &ListQuery::in_state(UserState::Locked))
        .await
        .expect("list");
    assert!(
        locked.users.is_empty(),
        "a refused append left an index entry"
    );
    let active = repo
        .list(&f.acme, &ListQuery::in_state(UserState::Active))
        .await
        .expect("list");
    assert_eq!(active.users, vec![current.clone()]);
    assert_eq!(f.all_events(&id).await.len(), 1);

    let event = lock_event(2);
    let snapshot = crate::User::apply(Some(current.clone()), &event);
    repo.append(Commit {
        expected_sequence: 1,
        events: vec![event],
        snapshot: snapshot.clone(),
    })
    .await
    .expect("fresh append");
    assert_eq!(f.stored(&id).await, snapshot);
    f.assert_snapshot_is_replay(&id).await;
    let listed = repo
        .list(&f.acme, &ListQuery::in_state(UserState::Locked))
        .await
        .expect("list");
    assert_eq!(listed.users, vec![snapshot]);
}

/// Hostile input: empty, 1 MiB, NUL and control-character ids and
/// organisations, and over-long reasons are InvalidArgument before anything
/// is read; ids and organisations full of SQL and pattern metacharacters, or
/// that are prefixes of one another, are stored and returned literally and
/// never match each other.
pub async fn hostile_input_is_refused_or_stored_literally(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let huge = "x".repeat(1 << 20);
    for bad in [
        "",
        "nul\0byte",
        "bell\u{7}",
        "line\nbreak",
        "del\u{7f}",
        &huge,
    ] {
        for err in [
            UserId::new(bad).expect_err("bad user id"),
            crate::OrgId::new(bad).expect_err("bad org id").clone(),
        ] {
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidArgument,
                "{:?}",
                &bad[..bad.len().min(20)]
            );
        }
    }
    let err = LockReason::new("r".repeat(crate::MAX_REASON_CHARS + 1)).expect_err("long reason");
    assert_eq!(err.id(), ids::INVALID_REASON);
    assert!(serde_json::from_str::<UserId>("\"a\\u0000b\"").is_err());

    let literal_ids = [
        "'; DROP TABLE users; --",
        "Robert'); DELETE FROM events;--",
        "%",
        "_",
        "a%",
        "a_",
        "a",
        "ab",
        "a b",
        "\\",
        "\"quoted\"",
        "ü🙂",
        "*",
        "?",
    ];
    let literal_orgs = ["%", "_", "o", "o1", "o'; --", "o\\"];
    let s = &f.service;
    for (i, org_name) in literal_orgs.iter().enumerate() {
        let org = crate::OrgId::new(*org_name).expect("valid org");
        let caller = f.root.clone().in_org(org.clone());
        for name in literal_ids {
            let id = UserId::new(format!("{name}#{i}")).expect("valid id");
            s.create(&caller, &id, InitialState::Active)
                .await
                .expect("create");
            if name.len() % 2 == 0 {
                s.lock(&caller, &id, LockRequest::new())
                    .await
                    .expect("lock");
            }
        }
    }
    for (i, org_name) in literal_orgs.iter().enumerate() {
        let org = crate::OrgId::new(*org_name).expect("valid org");
        let caller = f.root.clone().in_org(org.clone());
        let page = s
            .list(
                &caller,
                &ListQuery {
                    limit: 1000,
                    ..ListQuery::all()
                },
            )
            .await
            .expect("list");
        let mut listed: Vec<String> = page.users.iter().map(|u| u.id.to_string()).collect();
        let mut expected: Vec<String> = literal_ids.iter().map(|n| format!("{n}#{i}")).collect();
        listed.sort();
        expected.sort();
        assert_eq!(
            listed, expected,
            "org {org_name:?} lists exactly its own users"
        );
        assert!(page.users.iter().all(|u| u.org_id == org));
        let locked = s
            .list(
                &caller,
                &ListQuery {
                    limit: 1000,
                    ..ListQuery::in_state(UserState::Locked)
                },
            )
            .await
            .expect("list locked");
        let want = literal_ids.iter().filter(|n| n.len() % 2 == 0).count();
        assert_eq!(locked.users.len(), want, "org {org_name:?}");
        for name in literal_ids {
            let id = UserId::new(format!("{name}#{i}")).expect("valid id");
            let user = s.get(&caller, &id).await.expect("get");
            assert_eq!(user.id, id);
            assert_eq!(user.org_id, org);
            let history = s
                .history(&caller, &id, HistoryQuery::default())
                .await
                .expect("history");
            assert!(history.iter().all(|e| e.user_id == id && e.org_id == org));
            assert_eq!(history.len(), if name.len() % 2 == 0 { 2 } else { 1 });
        }
    }
}

/// Commits of the wrong shape are refused before anything is written: no
/// events, a gap or overlap in the numbering, another user's event, a
/// snapshot not at the last event, a sequence that would overflow.
pub async fn malformed_commits_are_refused(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo.clone());
    let id = f.user_in_state("shape", UserState::Active).await;
    let other = f.user_in_state("other", UserState::Active).await;
    let current = f.stored(&id).await;
    let event = |user: &UserId, sequence: u64| crate::Event {
        user_id: user.clone(),
        org_id: f.acme.clone(),
        sequence,
        created_at: at(T0),
        creator: f.acme_admin.user_id.clone(),
        payload: EventPayload::Deactivated,
    };
    let at_sequence = |sequence: u64| {
        let mut snapshot = current.clone();
        snapshot.sequence = sequence;
        snapshot.state = UserState::Inactive;
        snapshot
    };
    let cases = [
        (1, vec![], at_sequence(1)),
        (1, vec![event(&id, 1)], at_sequence(1)),
        (1, vec![event(&id, 3)], at_sequence(3)),
        (1, vec![event(&other, 2)], at_sequence(2)),
        (1, vec![event(&id, 2)], at_sequence(5)),
        (u64::MAX, vec![event(&id, 0)], at_sequence(0)),
    ];
    for (n, (expected_sequence, events, snapshot)) in cases.into_iter().enumerate() {
        let err = repo
            .append(Commit {
                expected_sequence,
                events,
                snapshot,
            })
            .await
            .expect_err("malformed commit");
        assert_eq!(err.kind(), ErrorKind::Internal, "case {n}: {err:?}");
    }
    assert_eq!(f.stored(&id).await, current);
    assert_eq!(f.all_events(&id).await.len(), 1);
    assert_eq!(f.all_events(&other).await.len(), 1);
    f.assert_snapshot_is_replay(&id).await;
}
