//! The repository's `update` without the service: the decision sees the
//! stored user, its refusals and panics write nothing, what it decides is
//! checked like an append, and concurrent updates lose no decision.

use std::sync::{Arc, Barrier};

use super::fixture::{at, Fixture, T0};
use super::race::on_threads;
use crate::{
    Commit, Decide, Decision, Error, ErrorKind, Event, EventPayload, LockCause, Result,
    UnlockCause, User, UserId, UserRepository, UserState,
};

/// The commit of one event with `payload` on top of `stored`.
fn next_commit(stored: Option<User>, id: &UserId, payload: EventPayload) -> Commit {
    let expected_sequence = stored.as_ref().map_or(0, |u| u.sequence);
    let org_id = stored.as_ref().map_or_else(
        || crate::OrgId::new("acme").expect("valid org"),
        |u| u.org_id.clone(),
    );
    let event = Event {
        user_id: id.clone(),
        org_id,
        sequence: expected_sequence + 1,
        created_at: at(T0),
        creator: UserId::new("updater").expect("valid id"),
        payload,
    };
    let snapshot = User::apply(stored, &event);
    Commit {
        expected_sequence,
        events: vec![event],
        snapshot,
    }
}

fn locked() -> EventPayload {
    EventPayload::Locked {
        reason: None,
        expires_at: None,
        cause: LockCause::Command,
    }
}

/// What a refused update must have answered.
type Expect = fn(&Error) -> bool;

/// A decision that writes what `commit` makes of the stored user and `id`.
fn writing(
    id: &UserId,
    commit: impl FnOnce(Option<User>, &UserId) -> Commit + Send + 'static,
) -> Decide {
    let id = id.clone();
    Box::new(move |stored| Ok(Decision::Write(commit(stored, &id))))
}

/// A decision that locks an active user and unlocks a locked one.
fn toggle(id: &UserId) -> Decide {
    let id = id.clone();
    Box::new(move |stored: Option<User>| {
        let payload = match stored.as_ref().map(|u| u.state) {
            Some(UserState::Active) => locked(),
            Some(UserState::Locked) => EventPayload::Unlocked {
                cause: UnlockCause::Command,
            },
            other => return Err(Error::internal(format!("toggle found {other:?}"))),
        };
        Ok(Decision::Write(next_commit(stored, &id, payload)))
    })
}

/// What `update` promises on its own: the decision gets the stored user
/// (`None` for an unused id) and its commit is stored; an error it returns
/// comes back unchanged, and neither it, [`Decision::Unchanged`], a panic, a
/// commit of another user, a malformed or a stale commit writes anything.
pub async fn update_decides_on_the_stored_user_and_checks_the_commit(
    repo: Arc<dyn UserRepository>,
) {
    let f = Fixture::new(repo.clone());
    let new = UserId::new("updated").expect("valid id");
    // A failed assertion inside a decision comes back as Internal.
    let create = writing(&new, |stored, new| {
        assert_eq!(stored, None, "an unused id has no snapshot");
        let added = EventPayload::Added {
            state: crate::InitialState::Active,
        };
        next_commit(None, new, added)
    });
    let created = repo.update(&new, create).await.expect("create by update");
    assert_eq!(created.sequence, 1);
    assert_eq!(f.stored(&new).await, created);

    let id = f.user_in_state("decided", UserState::Active).await;
    let before = f.stored(&id).await;
    let seen = repo
        .update(
            &id,
            Box::new({
                let before = before.clone();
                move |stored: Option<User>| {
                    assert_eq!(
                        stored.as_ref(),
                        Some(&before),
                        "the decision saw another user"
                    );
                    Ok(Decision::Unchanged(before))
                }
            }),
        )
        .await
        .expect("unchanged");
    assert_eq!(seen, before);

    let refusal = Error::precondition(crate::ids::ALREADY_LOCKED, "User is already locked");
    let err = repo
        .update(
            &id,
            Box::new({
                let refusal = refusal.clone();
                move |_| Err(refusal)
            }),
        )
        .await
        .expect_err("refused");
    assert_eq!(err, refusal, "the decision's error comes back as it was");

    let other = f.user_in_state("bystander", UserState::Active).await;
    let other_before = f.stored(&other).await;
    let internal = |e: &Error| e.kind() == ErrorKind::Internal;
    let refusals: Vec<(&str, Decide, Expect)> = vec![
        (
            "a panic",
            Box::new(|_| panic!("a faulty decision")),
            internal,
        ),
        (
            "another user's commit",
            writing(&other, {
                let other_before = other_before.clone();
                move |_, other| next_commit(Some(other_before), other, locked())
            }),
            internal,
        ),
        (
            "a commit without events",
            writing(&id, |stored, id| {
                let mut commit = next_commit(stored, id, locked());
                commit.events.clear();
                commit
            }),
            internal,
        ),
        (
            "another user, unchanged",
            Box::new({
                let other_before = other_before.clone();
                move |_| Ok(Decision::Unchanged(other_before))
            }),
            internal,
        ),
        (
            // Decided on a user that was never stored.
            "a stale commit",
            writing(&id, |_, id| {
                next_commit(Some(added_at(id, 5)), id, locked())
            }),
            Error::is_conflict,
        ),
    ];
    for (case, decide, expected) in refusals {
        let err = repo.update(&id, decide).await.expect_err(case);
        assert!(expected(&err), "{case}: {err:?}");
    }

    assert_eq!(f.stored(&id).await, before, "a refused update wrote");
    assert_eq!(f.all_events(&id).await.len(), 1);
    assert_eq!(f.stored(&other).await, other_before);
    assert_eq!(f.all_events(&other).await.len(), 1);

    let after = repo.update(&id, toggle(&id)).await.expect("still serving");
    assert_eq!(after.state, UserState::Locked);
    assert_eq!(f.stored(&id).await, after);
    f.assert_snapshot_is_replay(&id).await;
}

/// An active `id` at `sequence`, for a commit built on a user that is not
/// the stored one.
fn added_at(id: &UserId, sequence: u64) -> User {
    let added = Event {
        user_id: id.clone(),
        org_id: crate::OrgId::new("acme").expect("valid org"),
        sequence,
        created_at: at(T0),
        creator: UserId::new("updater").expect("valid id"),
        payload: EventPayload::Added {
            state: crate::InitialState::Active,
        },
    };
    User::apply(None, &added)
}

/// Threads toggle one user through `update` at once, deciding again on a
/// conflict as the service does: every decision is stored exactly once, in
/// one unbroken history, and the snapshot is its replay.
pub async fn concurrent_updates_store_every_decision_once(repo: Arc<dyn UserRepository>) {
    const THREADS: usize = 8;
    const UPDATES: usize = 25;
    let f = Fixture::new(repo.clone());
    let id = f.user_in_state("toggled", UserState::Active).await;
    let barrier = Arc::new(Barrier::new(THREADS));
    let jobs: Vec<Box<dyn FnOnce() -> Result<usize> + Send>> = (0..THREADS)
        .map(|_| {
            let (repo, id, barrier) = (repo.clone(), id.clone(), barrier.clone());
            Box::new(move || -> Result<usize> {
                barrier.wait();
                let mut conflicts = 0;
                for _ in 0..UPDATES {
                    loop {
                        match futures::executor::block_on(repo.update(&id, toggle(&id))) {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => conflicts += 1,
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok(conflicts)
            }) as Box<dyn FnOnce() -> Result<usize> + Send>
        })
        .collect();
    for outcome in on_threads(jobs).await {
        outcome.expect("an update failed");
    }
    let events = f.all_events(&id).await;
    assert_eq!(events.len(), 1 + THREADS * UPDATES);
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, n as u64 + 1, "the history has a gap");
    }
    let stored = f.stored(&id).await;
    // An even number of toggles from Active.
    assert_eq!(stored.state, UserState::Active);
    assert_eq!(stored.sequence, events.len() as u64);
    f.assert_snapshot_is_replay(&id).await;
}
