//! Faults on a real server: the client process killed at random moments,
//! the server crashed (`pg_ctl -m immediate stop`) or stopped under a
//! running client, and two processes racing on the same users. Every
//! acknowledged command survives, nothing is half applied (snapshot =
//! replay, the feed whole: `verify`), and the same repository works again
//! once the server is back.

mod common;

use common::{writers, Tally};

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// A commit whose answer never comes (the server waits for a synchronous
/// standby that does not exist, so COMMIT is sent and hangs) is Unavailable
/// with its outcome unknown; once the server lets it finish, re-reading the
/// user shows it applied whole, and the repository goes on.
#[test]
fn a_commit_without_an_answer_is_unavailable_with_its_outcome_unknown() {
    if !testing::available() {
        return;
    }
    let cluster = TestCluster::start().expect("a cluster of the test's own");
    let db = cluster.create_database().expect("a database");
    let repo = PostgresOptions::new(db.connection_string())
        .command_timeout(Duration::from_secs(1))
        .open()
        .expect("open");
    let f = Fixture::new(repo.clone().into());
    let admin = |sql: &str| testing::execute(db.connection_string(), sql).unwrap();
    admin("ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
    admin("SELECT pg_reload_conf()");
    // The server applies the setting soon after the reload: until then
    // commits are answered as usual.
    let (carol, lost) = (0..)
        .find_map(|n| {
            let id = UserId::new(format!("carol-{n}")).unwrap();
            let created = block_on(f.service.create(&f.acme_admin, &id, InitialState::Active));
            created.err().map(|e| (id, e))
        })
        .unwrap();
    assert_eq!(lost.kind(), ErrorKind::Unavailable, "{lost:?}");
    assert!(lost.is_outcome_unknown(), "{lost:?}");

    admin("ALTER SYSTEM RESET synchronous_standby_names");
    admin("SELECT pg_reload_conf()");
    // The repository works on; its next read of carol tells the outcome.
    let dave = UserId::new("dave").unwrap();
    block_on(f.service.create(&f.acme_admin, &dave, InitialState::Active)).expect("goes on");
    let carol = block_on(repo.load(&carol, &Scope::Instance)).expect("read carol");
    assert!(
        carol.is_some(),
        "the commit applied once the server let it finish"
    );
    let verification = block_on(repo.verify()).expect("verify");
    assert!(verification.is_sound(), "{:?}", verification.findings);
}
