//! The kill test: a child process runs random commands on a durable database
//! and reports every acknowledged command as it happens; the parent kills it
//! with SIGKILL at random moments, reopens the database and checks that every
//! acknowledged command is there, every snapshot equals the replay of its
//! events and no sequence has a gap.
//!
//! An adapter wires it up with two tests in one test binary:
//!
//! ```ignore
//! #[test]
//! fn kill_test() {
//!     userstate::conformance::kill::run_parent("kill_child", 20, |path| open_durable(path));
//! }
//!
//! #[test]
//! #[ignore = "run by kill_test as a child process"]
//! fn kill_child() {
//!     userstate::conformance::kill::run_child(|path| open_durable(path));
//! }
//! ```

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fixture::{org, user};
use crate::storage::Scope;
use crate::{
    Caller, Command, HistoryQuery, InMemoryAuthorizer, InitialState, LockRequest, Permission, User,
    UserId, UserRepository, UserService, MAX_PAGE_SIZE,
};

/// The environment variable that tells the child test where the database is.
pub const DB_ENV: &str = "USERSTATE_KILL_DB";
/// The environment variable that sets the number of cycles (for long soaks).
pub const CYCLES_ENV: &str = "USERSTATE_KILL_CYCLES";
const USERS: usize = 8;

fn user_name(i: usize) -> UserId {
    user(&format!("kill-{i}"))
}

fn service(repo: Arc<dyn UserRepository>) -> (UserService, Caller) {
    let acme = org("acme");
    let caller = Caller::new(user("killer"), acme.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(
        &caller.user_id,
        &acme,
        [Permission::Read, Permission::Write, Permission::Delete],
    );
    (UserService::new(repo, Arc::new(grants)), caller)
}

/// The child's side: opens the database named by [`DB_ENV`] and runs random
/// commands until killed, printing `ack <user> <sequence>` after
/// each acknowledged one. Does nothing when the variable is not set (so the
/// test is harmless when run directly).
pub fn run_child<R, F>(open: F)
where
    R: Into<Arc<dyn UserRepository>>,
    F: Fn(&Path) -> R,
{
    let Some(path) = std::env::var_os(DB_ENV).map(PathBuf::from) else {
        return;
    };
    let (service, caller) = service(open(&path).into());
    let mut rng = seed();
    let stdout = std::io::stdout();
    futures::executor::block_on(async {
        for i in 0..USERS {
            // Earlier cycles may have created it already.
            let _ = service
                .create(&caller, &user_name(i), InitialState::Active)
                .await;
        }
        loop {
            rng = next(rng);
            let id = user_name((rng % USERS as u64) as usize);
            let command = match (rng >> 16) % 5 {
                0 | 1 => Command::Lock(LockRequest::new()),
                2 => Command::Unlock { reason: None },
                3 => Command::Deactivate { reason: None },
                _ => Command::Reactivate { reason: None },
            };
            if let Ok(details) = service.execute(&caller, &id, command).await {
                let mut out = stdout.lock();
                let _ = writeln!(out, "ack {} {}", id, details.sequence);
                let _ = out.flush();
            }
        }
    });
}

/// The parent's side: runs `cycles` kill cycles (or [`CYCLES_ENV`] if set)
/// of the ignored test `child_test` in the current test binary against one
/// database in a temporary folder, and checks the database after each kill.
///
/// # Panics
/// On any lost acknowledged command, snapshot/replay mismatch, sequence gap,
/// or a database that cannot be reopened.
pub fn run_parent<R, F>(child_test: &str, cycles: u32, open: F)
where
    R: Into<Arc<dyn UserRepository>>,
    F: Fn(&Path) -> R,
{
    let dir = std::env::temp_dir().join(format!(
        "userstate-kill-{}-{}",
        std::process::id(),
        seed() % 1_000_000
    ));
    std::fs::create_dir_all(&dir).expect("temporary folder");
    run_parent_at(child_test, cycles, dir.join("db"), open);
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`run_parent`] on the database at `location` (whatever `open`
/// understands: a path, a connection string), which should be empty.
///
/// # Panics
/// As [`run_parent`].
pub fn run_parent_at<R, F>(child_test: &str, cycles: u32, location: impl AsRef<OsStr>, open: F)
where
    R: Into<Arc<dyn UserRepository>>,
    F: Fn(&Path) -> R,
{
    let cycles = std::env::var(CYCLES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cycles);
    let db = Path::new(location.as_ref());
    let exe = std::env::current_exe().expect("test binary");
    let mut rng = seed();
    let mut acknowledged: BTreeMap<UserId, u64> = BTreeMap::new();
    let mut total_acks = 0usize;
    for cycle in 0..cycles {
        let mut child = Process::new(&exe)
            .args([
                child_test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DB_ENV, db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        rng = next(rng);
        // Kill after a random number of acknowledgements, at a random moment.
        let kill_after = 5 + (rng % 200) as usize;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut lines = BufReader::new(stdout).lines();
        let mut acks = 0;
        while acks < kill_after && Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some((id, sequence)) = parse_ack(&line) {
                let entry = acknowledged.entry(id).or_default();
                *entry = (*entry).max(sequence);
                acks += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(rng % 3_000));
        child.kill().expect("SIGKILL the child");
        // Acknowledgements printed before the kill landed still count.
        for line in lines.map_while(Result::ok) {
            if let Some((id, sequence)) = parse_ack(&line) {
                let entry = acknowledged.entry(id).or_default();
                *entry = (*entry).max(sequence);
                acks += 1;
            }
        }
        let _ = child.wait();
        assert!(acks > 0, "cycle {cycle}: the child acknowledged nothing");
        total_acks += acks;
        let repo = open(db).into();
        futures::executor::block_on(verify(&repo, &acknowledged, cycle));
    }
    eprintln!("kill test: {cycles} cycles, {total_acks} acknowledged commands, all present");
}

fn parse_ack(line: &str) -> Option<(UserId, u64)> {
    let rest = line.strip_prefix("ack ")?;
    let (id, sequence) = rest.rsplit_once(' ')?;
    Some((UserId::new(id).ok()?, sequence.parse().ok()?))
}

async fn verify(repo: &Arc<dyn UserRepository>, acknowledged: &BTreeMap<UserId, u64>, cycle: u32) {
    for i in 0..USERS {
        let id = user_name(i);
        let snapshot = repo
            .load(&id, &Scope::Instance)
            .await
            .expect("load after kill");
        let mut history = Vec::new();
        loop {
            let query = HistoryQuery::after_sequence(history.len() as u64, MAX_PAGE_SIZE);
            let page = repo
                .history(&id, &Scope::Instance, query)
                .await
                .expect("history after kill");
            if page.is_empty() {
                break;
            }
            history.extend(page);
        }
        for (event, expected) in history.iter().zip(1u64..) {
            assert_eq!(event.sequence, expected, "cycle {cycle}: gap in {id}");
        }
        assert_eq!(
            snapshot,
            User::replay(&history),
            "cycle {cycle}: snapshot of {id} is not the replay"
        );
        if let Some(acked) = acknowledged.get(&id) {
            assert!(
                history.len() as u64 >= *acked,
                "cycle {cycle}: {id} acknowledged sequence {acked} but only {} events survived",
                history.len()
            );
        }
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ u64::from(std::process::id()).rotate_left(32)) | 1
}

fn next(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}
