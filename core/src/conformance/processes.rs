//! Racing across handles and processes: services on separate handles of
//! one database (in one process, or in two) lock and unlock the same users
//! from several threads each. Afterwards every history is exact: one event
//! per acknowledged command, no gaps, only legal transitions, snapshot
//! equal to the replay, and some history interleaves the two sides. In the
//! process race a reader follows the change feed meanwhile, checkpointing
//! the last position it read and waiting for more: it sees every event of
//! both processes exactly once, in the feed's order.
//!
//! An adapter whose database several processes share wires the process
//! race up with two tests in one test binary (`location` is whatever its
//! `open` understands: a path, a connection string):
//!
//! ```ignore
//! #[test]
//! fn two_processes_keep_histories_exact() {
//!     userstate::conformance::processes::run_parent("race_child", location, open);
//! }
//!
//! #[test]
//! #[ignore = "run by two_processes_keep_histories_exact as a child process"]
//! fn race_child() {
//!     userstate::conformance::processes::run_child(open);
//! }
//! ```

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use futures::executor::block_on;

use super::feed::whole_feed;
use super::fixture::{org, user};
use crate::error::{ids, ErrorKind};
use crate::storage::Scope;
use crate::{
    Caller, Event, FeedEvent, HistoryQuery, InMemoryAuthorizer, InitialState, LockRequest,
    Permission, User, UserId, UserRepository, UserService, MAX_PAGE_SIZE,
};

/// The environment variable that tells the child where the database is.
pub const LOCATION_ENV: &str = "USERSTATE_RACE_DB";

const USERS: usize = 4;
const THREADS: usize = 4;
const OPS_PER_THREAD: usize = 60;
const CHILD_ADMIN: &str = "child-admin";
/// Starts each line of the child's report of an acknowledged command.
const SUCCESS_MARK: &str = "race-success ";
/// The line the child prints once its repository is open; it then waits
/// for a line on its standard input before it starts.
const READY_MARK: &str = "userstate-race-ready";

/// One acknowledged command: the user, the event it wrote, its sequence.
type Success = (UserId, &'static str, u64);

/// A service on one handle, and its administrator in acme.
#[derive(Clone)]
struct Side {
    service: UserService,
    admin: Caller,
}

impl Side {
    fn new(repo: Arc<dyn UserRepository>, admin: &str) -> Self {
        let acme = org("acme");
        let admin = Caller::new(user(admin), acme.clone());
        let grants = InMemoryAuthorizer::new();
        grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
        Side {
            service: UserService::new(repo, Arc::new(grants)),
            admin,
        }
    }
}

fn raced_user(i: usize) -> UserId {
    user(&format!("raced-{i}"))
}

/// Two services, each on its own handle of one database, race lock and
/// unlock on the same users from several threads each.
///
/// # Panics
/// When a history is not exact.
pub fn two_handles(a: Arc<dyn UserRepository>, b: Arc<dyn UserRepository>) {
    let a = Side::new(a, "acme-admin");
    let b = Side::new(b, CHILD_ADMIN);
    create_users(&a);
    let start = Arc::new(Barrier::new(2));
    let other = {
        let (b, start) = (b.clone(), start.clone());
        thread::spawn(move || hammer(&b, 7, &start))
    };
    let mut successes = hammer(&a, 3, &start);
    successes.extend(other.join().expect("a racing side panicked"));
    assert!(!successes.is_empty());
    assert_exact(&*b.service.repository().clone(), &successes);
}

/// The parent's side of the process race: opens the database at
/// `location`, re-runs this test binary's ignored test `child_test` (which
/// calls [`run_child`]) on the same database, and races it.
///
/// # Panics
/// When the child fails, acknowledges nothing, the two never interleave, or
/// a history is not exact.
pub fn run_parent<R, F>(child_test: &str, location: impl AsRef<OsStr>, open: F)
where
    R: Into<Arc<dyn UserRepository>>,
    F: Fn(&Path) -> R,
{
    let location = location.as_ref();
    let side = Side::new(open(Path::new(location)).into(), "acme-admin");
    create_users(&side);
    let mut child = Process::new(std::env::current_exe().expect("test binary"))
        .args([
            child_test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(LOCATION_ENV, location)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child process");
    let mut lines = BufReader::new(child.stdout.take().expect("child stdout")).lines();
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
    let follower = Follower::start(side.service.repository().clone());
    let mut go = child.stdin.take().expect("child stdin");
    writeln!(go, "go").expect("start the child");
    drop(go);
    let mut successes = hammer(&side, 11, &Barrier::new(1));
    let theirs = reader.join().expect("the child's report");
    assert!(
        child.wait().expect("the child").success(),
        "the child process failed"
    );
    follower.check(&side);
    assert!(!theirs.is_empty(), "the child acknowledged nothing");
    successes.extend(theirs);

    let histories = assert_exact(&**side.service.repository(), &successes);
    let interleaved = histories.iter().any(|history| {
        history
            .windows(2)
            .any(|w| w[0].creator != w[1].creator && w[1].creator.as_str() == CHILD_ADMIN)
    });
    assert!(interleaved, "the two processes never interleaved");
}

/// The child's side: opens the database named by [`LOCATION_ENV`], says it
/// is ready, waits for the parent's go and races, then reports every
/// acknowledged command. Does nothing when the variable is not set.
pub fn run_child<R, F>(open: F)
where
    R: Into<Arc<dyn UserRepository>>,
    F: Fn(&Path) -> R,
{
    let Some(location) = std::env::var_os(LOCATION_ENV).map(PathBuf::from) else {
        return;
    };
    let side = Side::new(open(&location).into(), CHILD_ADMIN);
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{READY_MARK}").expect("stdout");
        out.flush().expect("stdout");
    }
    // Blocks until the parent says go (or closes the pipe).
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).expect("stdin");
    let successes = hammer(&side, 13, &Barrier::new(1));
    let mut out = std::io::stdout().lock();
    for (id, kind, sequence) in successes {
        writeln!(out, "{SUCCESS_MARK}{id} {kind} {sequence}").expect("stdout");
    }
    out.flush().expect("stdout");
}

/// A reader following the feed from the start while others write.
struct Follower {
    target: Arc<AtomicUsize>,
    thread: thread::JoinHandle<Vec<FeedEvent>>,
}

impl Follower {
    fn start(repo: Arc<dyn UserRepository>) -> Self {
        let target = Arc::new(AtomicUsize::new(usize::MAX));
        let wanted = target.clone();
        let thread = thread::spawn(move || {
            block_on(async {
                let mut seen: Vec<FeedEvent> = Vec::new();
                let mut checkpoint = 0;
                while seen.len() < wanted.load(Ordering::SeqCst) {
                    let page = repo.feed(checkpoint, 97).await.expect("feed");
                    match page.last() {
                        Some(last) => {
                            checkpoint = last.position;
                            seen.extend(page);
                        }
                        None => repo.wait_for_events(checkpoint).await.expect("wait"),
                    }
                }
                seen
            })
        });
        Follower { target, thread }
    }

    /// Once the writers are done: one more commit wakes the follower, which
    /// must then have seen the whole feed, in order, each event once.
    fn check(self, side: &Side) {
        let count = |repo: &dyn UserRepository| block_on(whole_feed(repo, 0)).len();
        let repo = side.service.repository().clone();
        self.target.store(count(&*repo) + 1, Ordering::SeqCst);
        block_on(side.service.create(
            &side.admin,
            &user("wakes-the-follower"),
            InitialState::Active,
        ))
        .expect("the last commit");
        let seen = self.thread.join().expect("the follower panicked");
        let feed = block_on(whole_feed(&*repo, 0));
        assert_eq!(
            seen, feed,
            "the follower saw every event of both processes once, in order"
        );
    }
}

fn create_users(side: &Side) {
    for i in 0..USERS {
        block_on(
            side.service
                .create(&side.admin, &raced_user(i), InitialState::Active),
        )
        .expect("create a raced user");
    }
}

/// `THREADS` threads, each with its own `block_on`, lock and unlock random
/// users of the shared set, starting together at `start`.
fn hammer(side: &Side, seed: u64, start: &Barrier) -> Vec<Success> {
    let inner = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS as u64)
        .map(|t| {
            let (side, inner) = (side.clone(), inner.clone());
            thread::spawn(move || {
                let mut rng = (seed ^ t.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
                let mut successes = Vec::new();
                inner.wait();
                for _ in 0..OPS_PER_THREAD {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let id = raced_user((rng % USERS as u64) as usize);
                    let (s, admin) = (&side.service, &side.admin);
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
fn assert_exact(repo: &dyn UserRepository, successes: &[Success]) -> Vec<Vec<Event>> {
    block_on(async {
        let mut histories = Vec::new();
        for i in 0..USERS {
            let id = raced_user(i);
            let history = exact_history(repo, &id).await;
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

/// The whole history of `id`, checked gap-free and replaying to its snapshot.
async fn exact_history(repo: &dyn UserRepository, id: &UserId) -> Vec<Event> {
    let mut history = Vec::new();
    loop {
        let query = HistoryQuery::after_sequence(history.len() as u64, MAX_PAGE_SIZE);
        let page = repo
            .history(id, &Scope::Instance, query)
            .await
            .expect("history");
        if page.is_empty() {
            break;
        }
        history.extend(page);
    }
    for (event, expected) in history.iter().zip(1u64..) {
        assert_eq!(event.sequence, expected, "gap in the history of {id}");
    }
    let snapshot = repo.load(id, &Scope::Instance).await.expect("load");
    assert_eq!(
        snapshot,
        User::replay(&history),
        "snapshot of {id} is not the replay"
    );
    history
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
