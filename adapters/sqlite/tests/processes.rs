//! Two processes on one file: a lockout policy one process stores is in
//! force for the next check of the other, which has the file open all the
//! while; and a reader in one process waiting on the feed sees the other
//! process's commit. This test binary re-runs itself as the other process
//! (the ignored `other_process` below).

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::{policy, Fixture};
use userstate::{Factor, UserRepository, UserState};
use userstate_sqlite::SqliteOptions;

const DB: &str = "USERSTATE_SQLITE_OTHER_PROCESS_DB";

fn open(path: &std::path::Path) -> Arc<dyn UserRepository> {
    Arc::new(SqliteOptions::new().open(path).expect("open"))
}

/// Runs `other_process` with `db` and waits for it to succeed.
fn in_the_other_process(db: &std::path::Path) {
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["other_process", "--exact", "--ignored", "--test-threads=1"])
        .env(DB, db)
        .status()
        .expect("run the other process");
    assert!(status.success(), "the other process failed");
}

#[test]
fn a_policy_stored_by_another_process_is_in_force_for_the_next_check() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users.sqlite3");
    let f = Fixture::new(open(&db));
    let id = block_on(f.user_in_state("guessed", UserState::Active));
    let before = block_on(f.feed_after(0));

    in_the_other_process(&db);

    // A wait from before the other process's commit returns: its commit
    // is seen by this handle's watcher, not by its own writer.
    block_on(f.repo.wait_for_events(before)).unwrap();
    let after = block_on(f.repo.feed(before, 10)).unwrap();
    assert_eq!(after[0].event.user_id.as_str(), "from-the-other-process");
    // This process kept the file open and caches nothing: the stored
    // policy (2 attempts) is in force at once.
    assert!(!block_on(f.check(&id, Factor::Password, false)).locked);
    assert!(block_on(f.check(&id, Factor::Password, false)).locked);
}

#[test]
#[ignore = "run by a_policy_stored_by_another_process_is_in_force_for_the_next_check"]
fn other_process() {
    let Some(db) = std::env::var_os(DB).map(PathBuf::from) else {
        return;
    };
    let f = Fixture::new(open(&db));
    block_on(f.acme_policy(policy(2, 0)));
    block_on(f.user_in_state("from-the-other-process", UserState::Active));
}
