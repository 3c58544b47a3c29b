//! Durable mode survives SIGKILL at any instant: the core's kill harness
//! re-runs this test binary as a child that writes until killed, then checks
//! that every acknowledged command survived, with snapshot = replay and no
//! gaps.

use std::path::Path;

use userstate_sqlite::SqliteRepository;

fn open_durable(path: &Path) -> SqliteRepository {
    SqliteRepository::open(path).expect("open the durable database")
}

#[test]
fn kill_test() {
    userstate::conformance::kill::run_parent("kill_child", 20, open_durable);
}

#[test]
#[ignore = "run by kill_test as a child process"]
fn kill_child() {
    userstate::conformance::kill::run_child(open_durable);
}
