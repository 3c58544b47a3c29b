//! Optimistic concurrency across handles and processes: two handles opened
//! on one file, and two processes on one file, lock and unlock the same
//! users at once. Afterwards every history is exact: one event per success,
//! no gaps, only legal transitions, snapshot equal to the replay.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{relaxed, Cast};
use futures::executor::block_on;
use userstate::storage::Scope;
use userstate::{ids, ErrorKind, LockRequest, UserId, UserRepository};

const USERS: usize = 4;
const THREADS: usize = 4;
const OPS_PER_THREAD: usize = 60;

/// One acknowledged command: the user, the event it wrote, its sequence.
type Success = (UserId, &'static str, u64);

fn raced_user(i: usize) -> UserId {
    common::user(&format!("raced-{i}"))
}

/// `THREADS` threads, each with its own `block_on`, lock and unlock random
/// users of the shared set through `cast`, starting together at `start`.
fn hammer(cast: &Cast, seed: u64, start: &Barrier) -> Vec<Success> {
    let inner = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS as u64)
        .map(|t| {
            let (cast, inner) = (cast.clone(), inner.clone());
            thread::spawn(move || {
                let mut rng = (seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
                let mut successes = Vec::new();
                inner.wait();
                for _ in 0..OPS_PER_THREAD {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let id = raced_user((rng % USERS as u64) as usize);
                    let (s, admin) = (&cast.service, &cast.admin);
                    let (kind, result) = if (rng >> 20).is_multiple_of(2) {
                        (
                            "user.locked",
                            block_on(s.lock(admin, &id, LockRequest::new())),
                        )
                    } else {
                        ("user.unlocked", block_on(s.unlock(admin, &id, None)))
                    };
                    match result {
                        Ok(details) => successes.push((id, kind, details.sequence)),
                        Err(e) => assert!(
                            matches!(e.id(), ids::ALREADY_LOCKED | ids::NOT_LOCKED)
                                || e.kind() == ErrorKind::Aborted,
                            "unexpected error {e:?}"
                        ),
                    }
                }
                successes
            })
        })
        .collect();
    start.wait();
    inner.wait();
    threads
        .into_iter()
        .flat_map(|t| t.join().expect("a racing thread panicked"))
        .collect()
}

/// Every success has its own sequence holding its event; there is one event
/// per success after the creation, without gaps; locks and unlocks
/// alternate; the snapshot is the replay. Returns the histories.
fn assert_exact(repo: &dyn UserRepository, successes: &[Success]) -> Vec<Vec<userstate::Event>> {
    block_on(async {
        let mut histories = Vec::new();
        for i in 0..USERS {
            let id = raced_user(i);
            let history = common::assert_exact_history(repo, &id).await;
            let mut sequences: Vec<u64> = Vec::new();
            for (_, kind, sequence) in successes.iter().filter(|(u, _, _)| *u == id) {
                let event = history
                    .get(*sequence as usize - 1)
                    .expect("an acknowledged sequence is stored");
                assert_eq!(event.event_type(), *kind, "{id} at {sequence}");
                sequences.push(*sequence);
            }
            sequences.sort_unstable();
            let expected: Vec<u64> = (2..=history.len() as u64).collect();
            assert_eq!(sequences, expected, "{id}: one event per success, no gaps");
            for (event, position) in history.iter().skip(1).zip(0u64..) {
                let legal = if position.is_multiple_of(2) {
                    "user.locked"
                } else {
                    "user.unlocked"
                };
                assert_eq!(event.event_type(), legal, "{id}: illegal transition");
            }
            histories.push(history);
        }
        histories
    })
}

/// Two contended locks per round, one through each handle: exactly one wins.
#[test]
fn two_handles_one_lock_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::db_path(dir.path());
    let a = Cast::new(relaxed().open(&path).unwrap().into());
    let b = Cast::new(relaxed().open(&path).unwrap().into());
    for round in 0..25 {
        let id = common::user(&format!("contended-{round}"));
        block_on(
            a.service
                .create(&a.admin, &id, userstate::InitialState::Active),
        )
        .unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|cast| {
                let (barrier, id) = (barrier.clone(), id.clone());
                thread::spawn(move || {
                    barrier.wait();
                    block_on(cast.service.lock(&cast.admin, &id, LockRequest::new()))
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        let loss = results.iter().find_map(|r| r.as_ref().err()).unwrap();
        assert_eq!(loss.id(), ids::ALREADY_LOCKED, "round {round}");
        let history = block_on(common::assert_exact_history(
            &*a.service.repository().clone(),
            &id,
        ));
        assert_eq!(history.len(), 2, "round {round}: one user.locked");
    }
}

/// Two services, each on its own handle of one file, race lock and unlock
/// on the same users from several threads each.
#[test]
fn two_handles_keep_histories_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::db_path(dir.path());
    let a = Cast::new(relaxed().open(&path).unwrap().into());
    let b = Cast::new(relaxed().open(&path).unwrap().into());
    block_on(a.create_users("raced", USERS));
    let start = Arc::new(Barrier::new(2));
    let other = {
        let (b, start) = (b.clone(), start.clone());
        thread::spawn(move || hammer(&b, 7, &start))
    };
    let mut successes = hammer(&a, 3, &start);
    successes.extend(other.join().unwrap());
    assert!(!successes.is_empty());
    assert_exact(&**b.service.repository(), &successes);
}

const RACE_DB: &str = "USERSTATE_SQLITE_RACE_DB";
const CHILD_ADMIN: &str = "child-admin";
/// Starts each line of the child's report of an acknowledged command.
const SUCCESS_MARK: &str = "race-success ";

/// The line the child prints once its repository is open; it then waits
/// for a line on its standard input before it starts.
const READY_MARK: &str = "userstate-race-ready";

/// Two processes on one file: this test binary re-runs itself as the child
/// (the ignored `race_child` below). Both start together and lock and unlock
/// the same users; the child reports its successes on stdout.
#[test]
fn two_processes_keep_histories_exact() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::db_path(dir.path());
    let cast = Cast::new(relaxed().open(&db).unwrap().into());
    block_on(cast.create_users("raced", USERS));

    let mut child = Process::new(std::env::current_exe().unwrap())
        .args([
            "race_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RACE_DB, &db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child process");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Blocks until the child has opened the database.
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains(READY_MARK));
    assert!(ready, "the child ended before it was ready");
    let reader = thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .filter_map(|line| parse_success(&line))
            .collect::<Vec<_>>()
    });
    let mut go = child.stdin.take().unwrap();
    writeln!(go, "go").unwrap();
    drop(go);
    let mut successes = hammer(&cast, 11, &Barrier::new(1));
    let theirs = reader.join().unwrap();
    assert!(child.wait().unwrap().success(), "the child process failed");
    assert!(!theirs.is_empty(), "the child acknowledged nothing");
    successes.extend(theirs);

    let histories = assert_exact(&**cast.service.repository(), &successes);
    // The processes really raced: some history alternates between them.
    let interleaved = histories.iter().any(|history| {
        history
            .windows(2)
            .any(|w| w[0].creator != w[1].creator && w[1].creator.as_str() == CHILD_ADMIN)
    });
    assert!(interleaved, "the two processes never interleaved");
}

#[test]
#[ignore = "run by two_processes_keep_histories_exact as a child process"]
fn race_child() {
    let Some(db) = std::env::var_os(RACE_DB).map(PathBuf::from) else {
        return;
    };
    let cast = Cast::with_admin(relaxed().open(&db).unwrap().into(), CHILD_ADMIN);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY_MARK}").unwrap();
        out.flush().unwrap();
    }
    // Blocks until the parent says go (or closes the pipe).
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    let successes = hammer(&cast, 13, &Barrier::new(1));
    let mut out = std::io::stdout().lock();
    for (id, kind, sequence) in successes {
        writeln!(out, "{SUCCESS_MARK}{id} {kind} {sequence}").unwrap();
    }
    out.flush().unwrap();
}

fn parse_success(line: &str) -> Option<Success> {
    // The test harness may have printed on the same line first.
    let (_, report) = line.split_once(SUCCESS_MARK)?;
    let mut words = report.split(' ');
    let id = UserId::new(words.next()?).ok()?;
    let kind = match words.next()? {
        "user.locked" => "user.locked",
        "user.unlocked" => "user.unlocked",
        _ => return None,
    };
    Some((id, kind, words.next()?.parse().ok()?))
}

/// Another connection holding the write lock past the busy timeout makes a
/// command Unavailable, writes nothing, and the next command succeeds once
/// the lock is released.
#[test]
fn a_lock_held_past_the_busy_timeout_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::db_path(dir.path());
    let repo = relaxed()
        .busy_timeout(Duration::from_millis(100))
        .open(&path)
        .unwrap();
    let cast = Cast::new(repo.clone().into());
    let ids = block_on(cast.create_users("busy", 1));
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let started = Instant::now();
    let err = block_on(cast.service.lock(&cast.admin, &ids[0], LockRequest::new()))
        .expect_err("the write lock is held");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    // Reads do not need the write lock.
    assert_eq!(
        block_on(repo.load(&ids[0], &Scope::Instance))
            .unwrap()
            .unwrap()
            .sequence,
        1
    );

    holder.execute_batch("ROLLBACK").unwrap();
    block_on(cast.service.lock(&cast.admin, &ids[0], LockRequest::new())).unwrap();
    let history = block_on(common::assert_exact_history(&repo, &ids[0]));
    assert_eq!(history.len(), 2);
}
