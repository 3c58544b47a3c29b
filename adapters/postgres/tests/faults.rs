//! Faults on a real server: the client process killed at random moments,
//! the server crashed (`pg_ctl -m immediate stop`) or stopped under a
//! running client, and two processes racing on the same users. Every
//! acknowledged command survives, nothing is half applied (snapshot =
//! replay, the feed whole: `verify`), and the same repository works again
//! once the server is back.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use futures::executor::block_on;
use userstate::conformance::{kill, processes, Fixture};
use userstate::storage::Scope;
use userstate::{ErrorKind, InitialState, UserId, UserRepository};
use userstate_postgres::testing::{self, TestCluster};
use userstate_postgres::{PostgresOptions, PostgresRepository};

/// Bounds short enough that a test waiting on a dead server ends soon.
fn options(connection: &str) -> PostgresOptions {
    PostgresOptions::new(connection)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(5))
}

fn open(location: &Path) -> PostgresRepository {
    let connection = location.to_str().expect("a connection string");
    options(connection).open().expect("open")
}

#[test]
fn acknowledged_commands_survive_sigkill_of_the_client() {
    let Some(db) = testing::database() else {
        return;
    };
    kill::run_parent_at("kill_child", 20, db.connection_string(), open);
}

#[test]
#[ignore = "run by acknowledged_commands_survive_sigkill_of_the_client as a child process"]
fn kill_child() {
    kill::run_child(open);
}

#[test]
fn two_processes_keep_histories_exact() {
    let Some(db) = testing::database() else {
        return;
    };
    processes::run_parent("race_child", db.connection_string(), open);
}

#[test]
#[ignore = "run by two_processes_keep_histories_exact as a child process"]
fn race_child() {
    processes::run_child(open);
}

#[test]
fn two_handles_keep_histories_exact() {
    let Some(db) = testing::database() else {
        return;
    };
    let open =
        || -> Arc<dyn UserRepository> { options(db.connection_string()).open().unwrap().into() };
    processes::two_handles(open(), open());
}

/// What the writers have seen, shared with the test.
#[derive(Default)]
struct Tally {
    acknowledged: Mutex<Vec<UserId>>,
    unknown: Mutex<Vec<UserId>>,
    failures: AtomicUsize,
    changed: Condvar,
}

impl Tally {
    /// Blocks until `done` holds of the acknowledged count and failures.
    fn wait_until(&self, done: impl Fn(usize, usize) -> bool) {
        let mut acknowledged = self.acknowledged.lock().unwrap();
        while !done(acknowledged.len(), self.failures.load(Ordering::SeqCst)) {
            acknowledged = self.changed.wait(acknowledged).unwrap();
        }
    }
}

/// Writers creating users until told to stop; each records its outcomes.
fn writers(f: &Fixture, tally: &Arc<Tally>, stop: &Arc<AtomicBool>) -> Vec<thread::JoinHandle<()>> {
    (0..4)
        .map(|t| {
            let (f, tally, stop) = (f.clone(), tally.clone(), stop.clone());
            thread::spawn(move || {
                for n in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let id = UserId::new(format!("w{t}-{n}")).unwrap();
                    let created =
                        block_on(f.service.create(&f.acme_admin, &id, InitialState::Active));
                    match created {
                        Ok(_) => tally.acknowledged.lock().unwrap().push(id),
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e:?}");
                            if e.is_outcome_unknown() {
                                tally.unknown.lock().unwrap().push(id);
                            }
                            tally.failures.fetch_add(1, Ordering::SeqCst);
                            // Let the other writers and the test run.
                            thread::yield_now();
                        }
                    }
                    tally.changed.notify_all();
                }
            })
        })
        .collect()
}

/// Every acknowledged user is stored whole, and the schema verifies.
fn assert_all_present(repo: &PostgresRepository, tally: &Tally) {
    let acknowledged = tally.acknowledged.lock().unwrap().clone();
    for id in &acknowledged {
        let user = block_on(repo.load(id, &Scope::Instance)).expect("load");
        assert!(user.is_some(), "acknowledged user {id} is missing");
    }
    let verification = block_on(repo.verify()).expect("verify");
    assert!(verification.is_sound(), "{:?}", verification.findings);
    assert!(verification.users >= acknowledged.len() as u64);
}

#[test]
fn a_server_crash_keeps_every_acknowledged_command_and_the_client_recovers() {
    if !testing::available() {
        return;
    }
    let cluster = TestCluster::start().expect("a cluster of the test's own");
    let db = cluster.create_database().expect("a database");
    let repo = options(db.connection_string()).open().expect("open");
    let f = Fixture::new(repo.clone().into());
    let (tally, stop) = (Arc::new(Tally::default()), Arc::new(AtomicBool::new(false)));
    let threads = writers(&f, &tally, &stop);

    tally.wait_until(|acknowledged, _| acknowledged >= 100);
    cluster.stop("immediate").expect("crash the server");
    tally.wait_until(|_, failures| failures >= 4);
    let before = tally.acknowledged.lock().unwrap().len();
    cluster.restart().expect("restart the server");
    // The same repository, never rebuilt, commits again.
    tally.wait_until(|acknowledged, _| acknowledged >= before + 100);
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().expect("a writer panicked");
    }
    assert_all_present(&repo, &tally);
}

#[test]
fn a_stopped_server_is_unavailable_and_the_same_repository_works_once_it_is_back() {
    if !testing::available() {
        return;
    }
    let cluster = TestCluster::start().expect("a cluster of the test's own");
    let db = cluster.create_database().expect("a database");
    let repo = options(db.connection_string()).open().expect("open");
    let f = Fixture::new(repo.clone().into());
    let alice = block_on(f.user_in_state("alice", userstate::UserState::Active));

    cluster.stop("fast").expect("stop the server");
    let bob = UserId::new("bob").unwrap();
    let write = block_on(f.service.create(&f.acme_admin, &bob, InitialState::Active)).unwrap_err();
    assert_eq!(write.kind(), ErrorKind::Unavailable, "{write:?}");
    assert!(!write.is_outcome_unknown(), "nothing was sent: {write:?}");
    let read = block_on(f.service.get(&f.acme_admin, &alice)).unwrap_err();
    assert_eq!(read.kind(), ErrorKind::Unavailable, "{read:?}");

    cluster.restart().expect("restart the server");
    block_on(f.service.create(&f.acme_admin, &bob, InitialState::Active))
        .expect("a write once back");
    assert_eq!(
        block_on(f.service.get(&f.acme_admin, &alice))
            .expect("a read once back")
            .id,
        alice
    );
    let verification = block_on(repo.verify()).expect("verify");
    assert!(verification.is_sound(), "{:?}", verification.findings);
}
