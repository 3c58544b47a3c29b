//! The repository's one write without the service: the decision sees the
//! stored user, its refusals and panics write nothing, a commit built on
//! another sequence is a conflict that writes nothing, and concurrent
//! updates lose no decision.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use super::fixture::{at, org, user, Fixture, T0};
use super::race::on_threads;
use crate::storage::{self, Commit, Decide, Decision, Scope, Update};
use crate::{
    ids, Error, ErrorKind, Event, EventPayload, InitialState, ListQuery, LockCause, Result,
    UnlockCause, User, UserId, UserRepository, UserState,
};

/// The event at `sequence` of `id` in acme.
fn event(id: &UserId, sequence: u64, payload: EventPayload) -> Event {
    Event {
        user_id: id.clone(),
        org_id: org("acme"),
        sequence,
        created_at: at(T0),
        creator: user("updater"),
        payload,
    }
}

/// The commit of one event with `payload` on top of `stored`.
fn next_commit(stored: Option<User>, id: &UserId, payload: EventPayload) -> Commit {
    let sequence = stored.as_ref().map_or(0, |u| u.sequence) + 1;
    Commit::new(stored, vec![event(id, sequence, payload)]).expect("a well-formed commit")
}

fn added() -> EventPayload {
    EventPayload::Added {
        state: InitialState::Active,
    }
}

fn locked() -> EventPayload {
    EventPayload::Locked {
        reason: None,
        expires_at: None,
        cause: LockCause::Command,
    }
}

/// An active `id` at `sequence`: a user that is not the stored one.
fn added_at(id: &UserId, sequence: u64) -> User {
    User::apply(None, &event(id, sequence, added()))
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
                reason: None,
                resets_escalation: false,
            },
            other => return Err(Error::internal(format!("toggle found {other:?}"))),
        };
        Ok(Decision::Write(next_commit(stored, &id, payload)))
    })
}

/// What `update` promises on its own: the decision gets the stored user
/// (`None` for an unused id) and its commit is stored; an error it returns
/// comes back unchanged, and neither it, [`Decision::Unchanged`], a panic,
/// a commit of another user or an unchanged user that is not the one asked
/// for writes anything, and the repository keeps serving.
pub async fn update_decides_on_the_stored_user_and_checks_the_commit(
    repo: Arc<dyn UserRepository>,
) {
    let f = Fixture::new(repo.clone());
    let new = user("updated");
    // A failed assertion inside a decision comes back as Internal.
    let create = writing(&new, |stored, new| {
        assert_eq!(stored, None, "an unused id has no snapshot");
        next_commit(None, new, added())
    });
    let created = repo
        .update(Update::new(new.clone(), Scope::Instance, create))
        .await
        .expect("create by update");
    assert_eq!(created.sequence, 1);
    assert_eq!(f.stored(&new).await, created);

    let id = f.user_in_state("decided", UserState::Active).await;
    let before = f.stored(&id).await;
    let seen = repo
        .update(Update::new(
            id.clone(),
            Scope::Instance,
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
        ))
        .await
        .expect("unchanged");
    assert_eq!(seen, before);

    let refusal = Error::new(
        ErrorKind::FailedPrecondition,
        ids::ALREADY_LOCKED,
        "User is already locked",
    );
    let err = repo
        .update(Update::new(
            id.clone(),
            Scope::Instance,
            Box::new({
                let refusal = refusal.clone();
                move |_| Err(refusal)
            }),
        ))
        .await
        .expect_err("refused");
    assert_eq!(err, refusal, "the decision's error comes back as it was");

    let other = f.user_in_state("bystander", UserState::Active).await;
    let other_before = f.stored(&other).await;
    let internal = |e: &Error| e.kind() == ErrorKind::Internal;
    let refusals: Vec<(&str, UserId, Decide, Expect)> = vec![
        (
            "a panic",
            id.clone(),
            Box::new(|_| panic!("a faulty decision")),
            internal,
        ),
        (
            "another user's commit",
            id.clone(),
            writing(&other, {
                let other_before = other_before.clone();
                move |_, other| next_commit(Some(other_before), other, locked())
            }),
            internal,
        ),
        (
            "another user, unchanged",
            id.clone(),
            Box::new({
                let other_before = other_before.clone();
                move |_| Ok(Decision::Unchanged(other_before))
            }),
            internal,
        ),
        (
            "an unchanged user that was never stored",
            user("never-stored"),
            Box::new({
                let other_before = other_before.clone();
                move |_| Ok(Decision::Unchanged(other_before))
            }),
            internal,
        ),
        (
            "a commit built on a user that was never stored",
            id.clone(),
            writing(&id, |_, id| {
                next_commit(Some(added_at(id, 5)), id, locked())
            }),
            Error::is_conflict,
        ),
    ];
    for (case, target, decide, expected) in refusals {
        let err = repo
            .update(Update::new(target.clone(), Scope::Instance, decide))
            .await
            .expect_err(case);
        assert!(expected(&err), "{case}: {err:?}");
    }

    assert_eq!(f.stored(&id).await, before, "a refused update wrote");
    assert_eq!(f.all_events(&id).await.len(), 1);
    assert_eq!(f.stored(&other).await, other_before);
    assert_eq!(f.all_events(&other).await.len(), 1);
    assert_eq!(
        repo.load(&user("never-stored"), &Scope::Instance)
            .await
            .expect("load"),
        None
    );

    let after = repo
        .update(Update::new(id.clone(), Scope::Instance, toggle(&id)))
        .await
        .expect("still serving");
    assert_eq!(after.state, UserState::Locked);
    assert_eq!(f.stored(&id).await, after);
    f.assert_snapshot_is_replay(&id).await;
}

/// A raw commit ([`storage::append`]) built on a sequence the user is not
/// at is a conflict, of kind Conflict: nothing is written, not even an
/// index entry; one built on the stored user is stored with its indexes.
pub async fn stale_commits_are_conflicts_and_write_nothing(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo.clone());
    let id = f.user_in_state("stale", UserState::Active).await;
    let current = f.stored(&id).await;
    let stale = [
        ("a second creation", next_commit(None, &id, added())),
        (
            "one built at 2",
            next_commit(Some(added_at(&id, 2)), &id, locked()),
        ),
        (
            "one built at 7",
            next_commit(Some(added_at(&id, 7)), &id, locked()),
        ),
    ];
    for (case, commit) in stale {
        let expected = commit.expected_sequence();
        let err = repo
            .update(Update::new(
                id.clone(),
                Scope::Instance,
                storage::append(commit),
            ))
            .await
            .expect_err(case);
        assert_eq!(err.kind(), ErrorKind::Conflict, "{case}: {err:?}");
        assert!(err.is_conflict());
        assert_eq!(err.id(), ids::CONFLICT);
        assert!(
            err.message()
                .contains(&format!("expected sequence {expected}, found 1")),
            "{case}: {err}"
        );
    }
    assert_eq!(f.stored(&id).await, current);
    let locked_users = repo
        .list(&f.acme, &ListQuery::in_state(UserState::Locked))
        .await
        .expect("list");
    assert!(
        locked_users.items.is_empty(),
        "a refused commit left an index entry"
    );
    let active = repo
        .list(&f.acme, &ListQuery::in_state(UserState::Active))
        .await
        .expect("list");
    assert_eq!(active.items, vec![current.clone()]);
    assert_eq!(f.all_events(&id).await.len(), 1);

    let fresh = next_commit(Some(current), &id, locked());
    let stored = repo
        .update(Update::new(
            id.clone(),
            Scope::Instance,
            storage::append(fresh.clone()),
        ))
        .await
        .expect("a fresh commit");
    assert_eq!(&stored, fresh.snapshot());
    assert_eq!(f.stored(&id).await, stored);
    f.assert_snapshot_is_replay(&id).await;
    let listed = repo
        .list(&f.acme, &ListQuery::in_state(UserState::Locked))
        .await
        .expect("list");
    assert_eq!(listed.items, vec![stored]);
    let active = repo
        .list(&f.acme, &ListQuery::in_state(UserState::Active))
        .await
        .expect("list");
    assert!(active.items.is_empty(), "the old index entry stayed");
}

/// Threads toggle one user through `update` at once, deciding again on a
/// conflict as the service does: every decision that did not conflict is
/// stored exactly once, each conflict cost exactly one decision that wrote
/// nothing, in one unbroken history whose replay is the snapshot.
pub async fn concurrent_updates_store_every_decision_once(repo: Arc<dyn UserRepository>) {
    const THREADS: usize = 8;
    const UPDATES: usize = 25;
    let f = Fixture::new(repo.clone());
    let id = f.user_in_state("toggled", UserState::Active).await;
    let barrier = Arc::new(Barrier::new(THREADS));
    let decisions = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<Box<dyn FnOnce() -> Result<usize> + Send>> = (0..THREADS)
        .map(|_| {
            let (repo, id, barrier, decisions) =
                (repo.clone(), id.clone(), barrier.clone(), decisions.clone());
            Box::new(move || -> Result<usize> {
                barrier.wait();
                let mut conflicts = 0;
                for _ in 0..UPDATES {
                    loop {
                        let counted: Decide = {
                            let (toggle, decisions) = (toggle(&id), decisions.clone());
                            Box::new(move |stored| {
                                decisions.fetch_add(1, Ordering::SeqCst);
                                toggle(stored)
                            })
                        };
                        match futures::executor::block_on(repo.update(Update::new(
                            id.clone(),
                            Scope::Instance,
                            counted,
                        ))) {
                            Ok(_) => break,
                            Err(e) if e.kind() == ErrorKind::Conflict => conflicts += 1,
                            Err(e) => return Err(e),
                        }
                    }
                }
                Ok(conflicts)
            }) as Box<dyn FnOnce() -> Result<usize> + Send>
        })
        .collect();
    let mut conflicts = 0;
    for outcome in on_threads(jobs).await {
        conflicts += outcome.expect("an update failed");
    }
    let written = THREADS * UPDATES;
    assert_eq!(
        decisions.load(Ordering::SeqCst),
        written + conflicts,
        "a decision ran without an answer, or an answer without a decision"
    );
    let events = f.all_events(&id).await;
    assert_eq!(
        events.len(),
        1 + written,
        "{conflicts} conflicts wrote something"
    );
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, n as u64 + 1, "the history has a gap");
    }
    let stored = f.stored(&id).await;
    // An even number of toggles from Active.
    assert_eq!(stored.state, UserState::Active);
    assert_eq!(stored.sequence, events.len() as u64);
    f.assert_snapshot_is_replay(&id).await;
}

/// Many threads write a raw commit ([`storage::append`]) to one user, all
/// built on the same sequence: exactly one is stored, every other is a
/// conflict, and only the winner's event is in the history.
pub async fn concurrent_checked_appends_one_wins(repo: Arc<dyn UserRepository>) {
    const THREADS: usize = 8;
    let f = Fixture::new(repo.clone());
    for round in 0..10 {
        let id = f
            .user_in_state(&format!("appended-{round}"), UserState::Active)
            .await;
        let current = f.stored(&id).await;
        let barrier = Arc::new(Barrier::new(THREADS));
        let jobs = (0..THREADS)
            .map(|n| {
                let (repo, barrier, id) = (repo.clone(), barrier.clone(), id.clone());
                let mut lock = event(&id, current.sequence + 1, locked());
                lock.creator = user(&format!("writer-{n}"));
                let commit = Commit::new(Some(current.clone()), vec![lock]).expect("commit");
                Box::new(move || {
                    barrier.wait();
                    futures::executor::block_on(repo.update(Update::new(
                        id.clone(),
                        Scope::Instance,
                        storage::append(commit),
                    )))
                }) as Box<dyn FnOnce() -> _ + Send>
            })
            .collect();
        let results: Vec<Result<User>> = on_threads(jobs).await;
        let winners: Vec<&User> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        assert!(results
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e.kind() == ErrorKind::Conflict));
        let history = f.all_events(&id).await;
        assert_eq!(history.len(), 2, "round {round}");
        assert_eq!(&f.stored(&id).await, winners[0]);
        f.assert_snapshot_is_replay(&id).await;
    }
}

/// [`UserRepository::update_many`]: each update sees what the earlier ones
/// stored (of the same user too), a stale one is a conflict that leaves
/// the others stored, and the events take feed positions in the order of
/// the updates.
pub async fn update_many_keeps_order_and_answers_each(repo: Arc<dyn UserRepository>) {
    assert!(repo.update_many(Vec::new()).await.is_empty());
    let (a, b) = (user("many-a"), user("many-b"));
    let first = |id: &UserId| Commit::new(None, vec![event(id, 1, added())]).unwrap();
    let a1 = first(&a);
    let b1 = first(&b);
    let a2 = Commit::new(Some(a1.snapshot().clone()), vec![event(&a, 2, locked())]).unwrap();
    let b2 = Commit::new(Some(b1.snapshot().clone()), vec![event(&b, 2, locked())]).unwrap();
    let stale = a1.clone();
    let append = |id: &UserId, commit: Commit| {
        Update::new(id.clone(), Scope::Instance, storage::append(commit))
    };
    let outcomes = repo
        .update_many(vec![
            append(&a, a1),
            append(&b, b1),
            append(&a, a2.clone()),
            append(&a, stale),
            append(&b, b2.clone()),
        ])
        .await;
    assert_eq!(outcomes.len(), 5);
    assert_eq!(outcomes[2].as_ref().unwrap(), a2.snapshot());
    assert!(
        outcomes[3].as_ref().is_err_and(Error::is_conflict),
        "a stale update in a batch is a conflict: {:?}",
        outcomes[3]
    );
    assert_eq!(outcomes[4].as_ref().unwrap(), b2.snapshot());
    let order: Vec<(String, u64)> = super::feed::whole_feed(repo.as_ref(), 0)
        .await
        .into_iter()
        .map(|e| (e.event.user_id.as_str().to_owned(), e.event.sequence))
        .collect();
    let expected = [("many-a", 1), ("many-b", 1), ("many-a", 2), ("many-b", 2)];
    assert_eq!(
        order,
        expected.map(|(id, sequence)| (id.to_owned(), sequence)),
        "positions follow the order of the updates"
    );
    for id in [&a, &b] {
        let stored = repo.load(id, &Scope::Instance).await.unwrap().unwrap();
        assert_eq!(stored.state, UserState::Locked);
        assert_eq!(stored.sequence, 2);
    }
}
