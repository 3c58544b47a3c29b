//! Group commit on SQLite: the commands queued while the writer waits share
//! one transaction, each with its own decision and its own outcome. The
//! tests hold SQLite's write lock from another connection, so the writer's
//! batch waits at `BEGIN IMMEDIATE` while the next batch queues behind it;
//! they wait for the queue to fill, never for a time.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{commit_after, lock_and_unlock_payloads, relaxed, Cast};
use futures::executor::block_on;
use futures::future::join_all;
use futures::FutureExt;
use rusqlite::Connection;
use userstate::conformance::group::decided_on;
use userstate::storage::{self, Commit, Decide, Decision, Scope, Update};
use userstate::{ids, ErrorKind, LockRequest, UserId, UserRepository};
use userstate_sqlite::{SqliteOptions, SqliteRepository};

/// Long enough that a held lock never times the writer out.
const PATIENT: Duration = Duration::from_secs(120);

/// SQLite's write lock, held by a connection of its own until dropped.
struct HeldLock(Connection);

impl HeldLock {
    fn take(path: &Path) -> Self {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        HeldLock(conn)
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        self.0.execute_batch("ROLLBACK").unwrap();
    }
}

fn open(dir: &Path, options: SqliteOptions) -> SqliteRepository {
    options
        .busy_timeout(PATIENT)
        .open(common::db_path(dir))
        .unwrap()
}

fn wait_until_queued(repo: &SqliteRepository, queued: u64) {
    while repo.stats().queued < queued {
        thread::yield_now();
    }
}

/// With the write lock held, hands the writer thread one command of its
/// own and waits until it took it: the writer then waits at BEGIN, and
/// everything queued after this forms the next batch.
fn stall_the_writer(repo: &SqliteRepository, id: &UserId) {
    let decide: Decide = Box::new(|stored| Ok(Decision::Unchanged(stored.expect("created"))));
    // The first poll queues it; the answer is not needed.
    assert!(repo
        .update(Update::new(id.clone(), Scope::Instance, decide))
        .now_or_never()
        .is_none());
    while repo.stats().queued > 0 {
        thread::yield_now();
    }
}

/// 64 callers, each on its own thread, write at once behind a stalled
/// writer: for every user a fresh commit and either a twin of it (decided
/// on the same sequence: the second to run meets the first's write) or a
/// stale one. All 64 share one transaction, and each gets its own outcome:
/// the failures leave their neighbours' writes in place.
#[test]
fn sixty_four_callers_share_one_transaction_with_their_own_outcomes() {
    const USERS: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), relaxed());
    let cast = Cast::new(Arc::new(repo.clone()));
    let ids = block_on(cast.create_users("batched", USERS + 1));
    let (locked, _) = lock_and_unlock_payloads();
    let created = block_on(async {
        let mut users = Vec::new();
        for id in &ids[..USERS] {
            users.push(repo.load(id, &Scope::Instance).await.unwrap().unwrap());
        }
        users
    });
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
    let before = repo.stats();
    let held = HeldLock::take(repo.path());
    stall_the_writer(&repo, &ids[USERS]);
    let threads: Vec<_> = commits
        .into_iter()
        .map(|(i, kind, commit)| {
            let repo = repo.clone();
            let id = commit.snapshot().id.clone();
            thread::spawn(move || {
                (
                    i,
                    kind,
                    block_on(repo.update(Update::new(
                        id.clone(),
                        Scope::Instance,
                        storage::append(commit),
                    ))),
                )
            })
        })
        .collect();
    wait_until_queued(&repo, callers as u64);
    drop(held);
    let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    for i in 0..USERS {
        let mine: Vec<_> = outcomes.iter().filter(|(u, _, _)| *u == i).collect();
        let wins = mine.iter().filter(|(_, _, r)| r.is_ok()).count();
        assert_eq!(wins, 1, "user {i}: {mine:?}");
        for (_, kind, result) in &mine {
            match (*kind, result) {
                ("stale", Err(e)) => {
                    assert_eq!(e.kind(), ErrorKind::Conflict, "user {i}: {e:?}");
                    assert!(e.message().contains("expected sequence 5"), "{e}");
                }
                ("stale", Ok(_)) => panic!("user {i}: a stale commit was stored"),
                ("fresh", r) if i % 2 == 1 => assert!(r.is_ok(), "user {i}: {r:?}"),
                (_, Err(e)) => assert_eq!(e.kind(), ErrorKind::Conflict, "user {i}: {e:?}"),
                (_, Ok(_)) => {}
            }
        }
    }
    let stats = repo.stats();
    assert_eq!(stats.commands - before.commands, callers as u64 + 1);
    assert_eq!(
        stats.batches - before.batches,
        2,
        "the stalled one, then all 64: {stats:?}"
    );
    assert_eq!(stats.largest_batch, callers as u64);
    assert_eq!(stats.conflicts - before.conflicts, USERS as u64);
    block_on(async {
        for id in &ids[..USERS] {
            let history = common::assert_exact_history(&repo, id).await;
            assert_eq!(history.len(), 2, "{id}: one lock stored");
        }
    });
}

/// An event already stored at the sequence a commit writes (as a writer
/// that bypassed this library would leave it) means the history runs ahead
/// of its snapshot: that command fails as corrupt data, its own earlier
/// writes are rolled back to its savepoint, and its neighbour in the same
/// transaction is stored.
#[test]
fn a_stored_event_in_the_way_fails_only_its_own_command() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), relaxed());
    let cast = Cast::new(Arc::new(repo.clone()));
    let ids = block_on(cast.create_users("keyed", 3));
    let (locked, unlocked) = lock_and_unlock_payloads();
    let (victim, neighbour) = block_on(async {
        (
            repo.load(&ids[0], &Scope::Instance).await.unwrap().unwrap(),
            repo.load(&ids[1], &Scope::Instance).await.unwrap().unwrap(),
        )
    });
    let conn = Connection::open(repo.path()).unwrap();
    conn.busy_timeout(PATIENT).unwrap();
    conn.execute(
        "INSERT INTO events (user_id, sequence, org, event_type, created_at, creator, payload)
         SELECT user_id, 3, org, event_type, created_at, creator, payload
         FROM events WHERE user_id = ?1 AND sequence = 1",
        [ids[0].as_str()],
    )
    .unwrap();

    let colliding = commit_after(&victim, 1, &[locked.clone(), unlocked]);
    let fine = commit_after(&neighbour, 1, &[locked]);
    let held = HeldLock::take(repo.path());
    stall_the_writer(&repo, &ids[2]);
    let threads: Vec<_> = [colliding, fine]
        .into_iter()
        .map(|commit| {
            let repo = repo.clone();
            let id = commit.snapshot().id.clone();
            thread::spawn(move || {
                block_on(repo.update(Update::new(
                    id.clone(),
                    Scope::Instance,
                    storage::append(commit),
                )))
            })
        })
        .collect();
    wait_until_queued(&repo, 2);
    drop(held);
    let mut outcomes = threads.into_iter().map(|t| t.join().unwrap());
    let (collided, stored) = (outcomes.next().unwrap(), outcomes.next().unwrap());

    let err = collided.expect_err("the stray event is in the way");
    assert_eq!((err.kind(), err.id()), (ErrorKind::Internal, ids::CORRUPT));
    stored.expect("the neighbour is unaffected");
    assert_eq!(repo.stats().largest_batch, 2, "they shared a transaction");
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
        assert_eq!(
            repo.load(&ids[0], &Scope::Instance).await.unwrap().unwrap(),
            victim
        );
        common::assert_exact_history(&repo, &ids[1]).await;
    });
}

/// Many futures joined on one thread (no threads of the caller's at all):
/// each command gets its own answer, and they share durable commits.
#[test]
fn joined_futures_on_one_thread_share_durable_commits() {
    const USERS: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), SqliteOptions::new());
    let cast = Cast::new(Arc::new(repo.clone()));
    let ids = block_on(cast.create_users("joined", USERS + 1));
    let before = repo.stats();
    let held = HeldLock::take(repo.path());
    stall_the_writer(&repo, &ids[USERS]);
    let releaser = {
        let repo = repo.clone();
        thread::spawn(move || {
            wait_until_queued(&repo, USERS as u64);
            drop(held);
        })
    };
    let results = block_on(join_all(ids[..USERS].iter().map(|id| {
        let cast = cast.clone();
        async move {
            cast.service
                .lock(&cast.admin, id, LockRequest::new())
                .await?;
            cast.service.unlock(&cast.admin, id, None).await
        }
    })));
    releaser.join().unwrap();
    for (id, result) in ids.iter().zip(&results) {
        assert_eq!(result.as_ref().map(|d| d.sequence), Ok(3), "{id}");
    }
    let stats = repo.stats();
    assert_eq!(stats.commands - before.commands, 2 * USERS as u64 + 1);
    assert_eq!(
        stats.largest_batch, USERS as u64,
        "the locks shared one commit: {stats:?}"
    );
    block_on(async {
        for id in &ids[..USERS] {
            common::assert_exact_history(&repo, id).await;
        }
    });
}

/// A batch never exceeds the configured size.
#[test]
fn batches_respect_the_configured_limit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), relaxed().max_batch(4));
    let cast = Cast::new(Arc::new(repo.clone()));
    let ids = block_on(cast.create_users("limited", 17));
    let held = HeldLock::take(repo.path());
    stall_the_writer(&repo, &ids[16]);
    let threads: Vec<_> = ids[..16]
        .iter()
        .map(|id| {
            let (cast, id) = (cast.clone(), id.clone());
            thread::spawn(move || block_on(cast.service.lock(&cast.admin, &id, LockRequest::new())))
        })
        .collect();
    wait_until_queued(&repo, 16);
    drop(held);
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
    let stats = repo.stats();
    assert_eq!(stats.largest_batch, 4, "{stats:?}");
}

/// With inline writes a lone caller's command runs on its own thread; by
/// default it runs on the writer thread, never on the caller's.
#[test]
fn inline_writes_run_a_lone_command_on_the_callers_thread() {
    for inline in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let repo = open(dir.path(), relaxed().inline_writes(inline));
        let cast = Cast::new(Arc::new(repo.clone()));
        let id = block_on(cast.create_users("lone", 1)).remove(0);
        let here = thread::current().id();
        assert_eq!(decided_on(&repo, &id) == here, inline, "inline {inline}");
    }
}

/// With inline writes, commands that arrive while a caller leads a batch
/// queue, and share the next transaction; every one is stored.
#[test]
fn inline_writes_still_share_transactions_under_load() {
    const CALLERS: usize = 65;
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), relaxed().inline_writes(true));
    let cast = Cast::new(Arc::new(repo.clone()));
    let ids = block_on(cast.create_users("loaded", CALLERS));
    let before = repo.stats();
    let held = HeldLock::take(repo.path());
    let threads: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let cast = cast.clone();
            thread::spawn(move || {
                block_on(cast.service.lock(&cast.admin, &id, LockRequest::new())).unwrap();
                block_on(cast.service.unlock(&cast.admin, &id, None)).unwrap();
            })
        })
        .collect();
    // One caller leads, waiting at BEGIN; the other 64 queue behind it.
    wait_until_queued(&repo, CALLERS as u64 - 1);
    drop(held);
    for thread in threads {
        thread.join().expect("a caller panicked");
    }
    let stats = repo.stats();
    assert_eq!(
        stats.commands - before.commands,
        2 * CALLERS as u64,
        "{stats:?}"
    );
    // The leader's next command may join them.
    assert!(stats.largest_batch >= CALLERS as u64 - 1, "{stats:?}");
    for id in &ids {
        assert_eq!(
            block_on(repo.load(id, &Scope::Instance))
                .unwrap()
                .unwrap()
                .sequence,
            3
        );
    }
}
