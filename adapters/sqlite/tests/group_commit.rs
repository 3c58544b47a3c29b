//! Group commit: appends queued while the writer is busy share one
//! transaction, each with its own check and its own outcome.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::{commit_after, lock_and_unlock_payloads, relaxed, Cast, TempRepo};
use futures::executor::block_on;
use futures::future::join_all;
use rusqlite::Connection;
use userstate::{Commit, ErrorKind, LockRequest, UserRepository};

/// Holds SQLite's write lock on `path` from another connection while `work`
/// queues appends, then lets the writer go: everything queued meanwhile
/// lands in one batch.
fn with_writer_held<T>(path: &std::path::Path, work: impl FnOnce() -> T) -> T {
    let blocker = Connection::open(path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let result = work();
    blocker.execute_batch("ROLLBACK").unwrap();
    result
}

/// 64 threads, each with its own `block_on`, append at once: some commits
/// are fresh, some stale, some race a twin for the same user. Each gets its
/// own outcome; the failures leave their neighbours' writes in place.
#[test]
fn sixty_four_callers_share_transactions_with_their_own_outcomes() {
    const USERS: usize = 32;
    let temp = TempRepo::open(&relaxed());
    let repo = temp.repo.clone();
    let cast = Cast::new(Arc::new(repo.clone()));
    let ids = block_on(cast.create_users("batched", USERS));
    let (locked, _) = lock_and_unlock_payloads();
    let created = block_on(async {
        let mut users = Vec::new();
        for id in &ids {
            users.push(repo.load(id).await.unwrap().unwrap());
        }
        users
    });
    let before = repo.stats();

    // Pairs per user: even users get two fresh twins (exactly one may win),
    // odd users one fresh and one stale commit.
    let commits: Vec<(usize, &'static str, Commit)> = created
        .iter()
        .enumerate()
        .flat_map(|(i, user)| {
            let fresh = commit_after(user, 1, std::slice::from_ref(&locked));
            let other = if i.is_multiple_of(2) {
                ("twin", commit_after(user, 1, std::slice::from_ref(&locked)))
            } else {
                (
                    "stale",
                    commit_after(user, 5, std::slice::from_ref(&locked)),
                )
            };
            [(i, "fresh", fresh), (i, other.0, other.1)]
        })
        .collect();
    let callers = commits.len();
    let barrier = Arc::new(Barrier::new(callers + 1));
    let outcomes = with_writer_held(&temp.path(), || {
        let threads: Vec<_> = commits
            .into_iter()
            .map(|(i, kind, commit)| {
                let (repo, barrier) = (repo.clone(), barrier.clone());
                thread::spawn(move || {
                    barrier.wait();
                    (i, kind, block_on(repo.append(commit)))
                })
            })
            .collect();
        barrier.wait();
        // Let every caller queue its append behind the held lock.
        thread::sleep(Duration::from_millis(300));
        threads
    });
    let outcomes: Vec<_> = outcomes.into_iter().map(|t| t.join().unwrap()).collect();

    for i in 0..USERS {
        let mine: Vec<_> = outcomes.iter().filter(|(u, _, _)| *u == i).collect();
        let wins = mine.iter().filter(|(_, _, r)| r.is_ok()).count();
        assert_eq!(wins, 1, "user {i}: {mine:?}");
        for (_, kind, result) in &mine {
            match (*kind, result) {
                ("stale", Err(e)) => {
                    assert!(e.is_conflict(), "user {i}: {e:?}");
                    assert!(e.message().contains("expected sequence 5"), "{e}");
                }
                ("stale", Ok(())) => panic!("user {i}: a stale commit was stored"),
                ("fresh", r) if i % 2 == 1 => assert!(r.is_ok(), "user {i}: {r:?}"),
                (_, Err(e)) => {
                    assert!(e.is_conflict(), "user {i}: {e:?}");
                    assert_eq!(e.kind(), ErrorKind::Aborted);
                }
                (_, Ok(())) => {}
            }
        }
    }

    let stats = repo.stats();
    let commands = stats.commands - before.commands;
    let transactions = stats.transactions - before.transactions;
    assert_eq!(commands, callers as u64);
    assert_eq!(stats.conflicts - before.conflicts, USERS as u64);
    assert!(
        transactions < commands && stats.largest_batch > 1,
        "appends did not share transactions: {stats:?}"
    );
    eprintln!("{callers} callers in {transactions} transactions, {stats:?}");

    block_on(async {
        for id in &ids {
            let history = common::assert_exact_history(&repo, id).await;
            assert_eq!(history.len(), 2, "{id}: one lock stored");
        }
    });
}

/// The primary key (user, sequence) of the events backs the check: a commit
/// that collides with a stored event is a conflict found by SQLite's
/// extended result code, its own earlier writes are rolled back to its
/// savepoint, and the neighbour in the same transaction is stored.
#[test]
fn a_key_violation_is_a_conflict_that_rolls_back_only_its_own_command() {
    let temp = TempRepo::open(&relaxed());
    let repo = temp.repo.clone();
    let cast = Cast::new(Arc::new(repo.clone()));
    let ids = block_on(cast.create_users("keyed", 2));
    let (locked, unlocked) = lock_and_unlock_payloads();
    let (victim, neighbour) = block_on(async {
        (
            repo.load(&ids[0]).await.unwrap().unwrap(),
            repo.load(&ids[1]).await.unwrap().unwrap(),
        )
    });
    // A stray event at sequence 3, as a writer that bypassed the check would
    // leave it: the users row still says 1, so the check passes.
    let conn = Connection::open(temp.path()).unwrap();
    conn.execute(
        "INSERT INTO events (user_id, sequence, org, event_type, created_at, creator, payload)
         SELECT user_id, 3, org, event_type, created_at, creator, payload
         FROM events WHERE user_id = ?1 AND sequence = 1",
        [ids[0].as_str()],
    )
    .unwrap();

    let colliding = commit_after(&victim, 1, &[locked.clone(), unlocked]);
    let fine = commit_after(&neighbour, 1, &[locked]);
    let (collided, stored) = with_writer_held(&temp.path(), || {
        let first = {
            let repo = repo.clone();
            thread::spawn(move || block_on(repo.append(colliding)))
        };
        thread::sleep(Duration::from_millis(100));
        let second = {
            let repo = repo.clone();
            thread::spawn(move || block_on(repo.append(fine)))
        };
        thread::sleep(Duration::from_millis(100));
        (first, second)
    });
    let (collided, stored) = (collided.join().unwrap(), stored.join().unwrap());

    let err = collided.expect_err("the stray event collides");
    assert!(err.is_conflict(), "{err:?}");
    assert!(err.message().contains("found 3"), "{err}");
    stored.expect("the neighbour is unaffected");

    let sequences: Vec<i64> = conn
        .prepare("SELECT sequence FROM events WHERE user_id = ?1 ORDER BY sequence")
        .unwrap()
        .query_map([ids[0].as_str()], |row| row.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        sequences,
        [1, 3],
        "event 2 of the failed command was rolled back"
    );
    block_on(async {
        assert_eq!(repo.load(&ids[0]).await.unwrap().unwrap(), victim);
        common::assert_exact_history(&repo, &ids[1]).await;
    });
}

/// Many futures joined on one thread (no threads at all): each caller's
/// command gets its own answer, and they share commits.
#[test]
fn joined_futures_on_one_thread_share_durable_commits() {
    let temp = TempRepo::open(&userstate_sqlite::SqliteOptions::new());
    let repo: Arc<dyn UserRepository> = Arc::new(temp.repo.clone());
    let cast = Cast::new(repo.clone());
    let ids = block_on(cast.create_users("joined", 64));
    let before = temp.repo.stats();
    let results = block_on(join_all(ids.iter().map(|id| {
        let cast = cast.clone();
        async move {
            cast.service
                .lock(&cast.admin, id, LockRequest::new())
                .await?;
            cast.service.unlock(&cast.admin, id).await
        }
    })));
    for (id, result) in ids.iter().zip(&results) {
        assert_eq!(result.as_ref().map(|d| d.sequence), Ok(3), "{id}");
    }
    let stats = temp.repo.stats();
    assert_eq!(stats.commands - before.commands, 128);
    assert!(
        stats.transactions - before.transactions < 128,
        "no group commit: {stats:?}"
    );
    block_on(async {
        for id in &ids {
            common::assert_exact_history(&*repo, id).await;
        }
    });
}

/// A batch never exceeds the configured size.
#[test]
fn batches_respect_the_configured_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::db_path(dir.path());
    let repo = relaxed().max_batch(4).open(&path).unwrap();
    let cast = Cast::new(Arc::new(repo.clone()));
    let ids = block_on(cast.create_users("limited", 16));
    with_writer_held(&path, || {
        let threads: Vec<_> = ids
            .iter()
            .map(|id| {
                let (cast, id) = (cast.clone(), id.clone());
                thread::spawn(move || {
                    block_on(cast.service.lock(&cast.admin, &id, LockRequest::new()))
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(200));
        threads
    })
    .into_iter()
    .for_each(|t| {
        t.join().unwrap().unwrap();
    });
    let stats = repo.stats();
    assert_eq!(stats.largest_batch, 4, "{stats:?}");
}

/// The thread a decision ran on, through `update`.
fn decided_on(
    repo: &userstate_sqlite::SqliteRepository,
    id: &userstate::UserId,
) -> thread::ThreadId {
    let (seen, ran_on) = std::sync::mpsc::channel();
    let decide: userstate::Decide = Box::new(move |stored| {
        let _ = seen.send(thread::current().id());
        Ok(userstate::Decision::Unchanged(stored.expect("created")))
    });
    block_on(repo.update(id, decide)).expect("update");
    ran_on.recv().expect("the decision ran")
}

/// With inline writes a lone caller's command runs on its own thread; by
/// default it runs on the writer thread, never on the caller's.
#[test]
fn inline_writes_run_a_lone_command_on_the_callers_thread() {
    for inline in [false, true] {
        let temp = TempRepo::open(&relaxed().inline_writes(inline));
        let cast = Cast::new(Arc::new(temp.repo.clone()));
        let id = block_on(cast.create_users("lone", 1)).remove(0);
        let here = thread::current().id();
        assert_eq!(
            decided_on(&temp.repo, &id) == here,
            inline,
            "inline {inline}"
        );
    }
}

/// With inline writes, commands that find the writer busy queue for it and
/// still share its transactions; every one is stored.
#[test]
fn inline_writes_still_share_transactions_under_load() {
    const CALLERS: usize = 64;
    let temp = TempRepo::open(&relaxed().inline_writes(true));
    let repo = temp.repo.clone();
    let cast = Cast::new(Arc::new(repo.clone()));
    let ids = block_on(cast.create_users("loaded", CALLERS));
    let before = repo.stats();
    let barrier = Arc::new(Barrier::new(CALLERS));
    let threads: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let (cast, barrier) = (cast.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..10 {
                    block_on(cast.service.lock(&cast.admin, &id, LockRequest::new())).unwrap();
                    block_on(cast.service.unlock(&cast.admin, &id)).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a caller panicked");
    }
    let stats = repo.stats();
    let commands = stats.commands - before.commands;
    assert_eq!(commands, CALLERS as u64 * 20, "{stats:?}");
    assert!(
        stats.transactions - before.transactions < commands && stats.largest_batch > 1,
        "no transaction was shared: {stats:?}"
    );
    for id in &ids {
        assert_eq!(block_on(repo.load(id)).unwrap().unwrap().sequence, 21);
    }
}
