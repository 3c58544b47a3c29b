//! `migrate` through every backend, PostgreSQL included, and a migrate
//! killed half way that resumes. Each test has a database of its own on
//! the test binary's throwaway cluster.

mod common;

use std::process::Stdio;

use common::{export_without_positions, ok, org, run, seed, service, user, Place};
use futures::executor::block_on;
use userstate::{ErrorKind, InitialState};
use userstate_postgres::testing::{self, AdvisoryLock};

fn postgres_spec(db: &testing::TestDatabase) -> String {
    format!("postgres:{}", db.connection_string())
}

#[test]
fn a_round_trip_through_every_backend_ends_where_it_began() {
    let Some(db) = testing::database() else {
        return;
    };
    let place = Place::new();
    let first = place.sqlite("first.sqlite3");
    let sled = place.sled("second.sled");
    let postgres = postgres_spec(&db);
    let last = place.sqlite("last.sqlite3");
    seed(&first);
    for (from, to) in [(&first, &sled), (&sled, &postgres), (&postgres, &last)] {
        let ran = run(&[
            "--json", "migrate", "--from", from, "--to", to, "--batch", "7",
        ]);
        assert_eq!(ran.code, 0, "{from} -> {to}: {}", ran.stderr);
        let summary: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
        assert_eq!(
            (summary["verified"].as_bool(), summary["users"].as_u64()),
            (Some(true), Some(7))
        );
    }
    let began = export_without_positions(&first);
    assert_eq!(export_without_positions(&last), began);
    assert_eq!(export_without_positions(&postgres), began);
    for spec in [&sled, &postgres, &last] {
        let verified = run(&["--db", spec, "verify"]);
        assert_eq!(
            verified.code, 0,
            "{spec}: {}{}",
            verified.stdout, verified.stderr
        );
    }

    // The removed user came along with its history, and its id is taken.
    let gone = ok(&["--db", &postgres, "users", "history", "gone"]);
    assert!(
        gone.contains("user.removed") && gone.contains("user.locked"),
        "{gone}"
    );
    let (s, root) = service(&postgres);
    let taken = block_on(s.create(
        &root.in_org(org("globex")),
        &user("gone"),
        InitialState::Active,
    ))
    .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::AlreadyExists);
}

/// Stops the target's writes once it holds `after` events: a trigger waits
/// on an advisory lock the test holds.
fn gate_after(connection: &str, after: u64) {
    testing::execute(
        connection,
        &format!(
            "CREATE FUNCTION userstate.gate() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN \
                 IF (SELECT count(*) FROM userstate.events) >= {after} THEN \
                     PERFORM pg_advisory_xact_lock_shared(4242); \
                 END IF; \
                 RETURN NULL; \
             END $$; \
             CREATE TRIGGER gate BEFORE INSERT ON userstate.events \
             FOR EACH STATEMENT EXECUTE FUNCTION userstate.gate();"
        ),
    )
    .unwrap();
}

fn waiting_on_the_gate(connection: &str) -> bool {
    testing::query(
        connection,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event = 'advisory'",
    )
    .unwrap()
    .is_some_and(|n| n != "0")
}

fn count(connection: &str, sql: &str) -> u64 {
    testing::query(connection, sql)
        .unwrap()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn a_migrate_killed_half_way_resumes_and_completes_without_duplicates() {
    let Some(db) = testing::database() else {
        return;
    };
    let place = Place::new();
    let source = place.sqlite("source.sqlite3");
    // 300 users with 3 events each, written user after user.
    {
        let (s, root) = service(&source);
        let acme = root.in_org(org("acme"));
        block_on(async {
            for n in 0..300 {
                let id = user(&format!("user-{n:04}"));
                s.create(&acme, &id, InitialState::Active).await.unwrap();
                s.lock(&acme, &id, userstate::LockRequest::new())
                    .await
                    .unwrap();
                s.unlock(&acme, &id, None).await.unwrap();
            }
        });
    }
    let target = postgres_spec(&db);
    let connection = db.connection_string();
    // The schema, so the gate can be set on it; still an empty database.
    drop(userstate_backend::open(&target).unwrap());
    gate_after(connection, 300);
    let gate = AdvisoryLock::hold(connection, 4242).unwrap();

    let mut migrate = common::process()
        .args([
            "migrate", "--from", &source, "--to", &target, "--batch", "100",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Three batches are in; the fourth waits on the gate. Polled: the
    // condition is the server's own account of the session.
    while !waiting_on_the_gate(connection) {
        assert!(
            migrate.try_wait().unwrap().is_none(),
            "migrate ended before the gate"
        );
        std::thread::yield_now();
    }
    migrate.kill().unwrap();
    migrate.wait().unwrap();
    drop(gate);
    testing::execute(connection, "DROP TRIGGER gate ON userstate.events").unwrap();
    assert_eq!(
        count(connection, "SELECT count(*) FROM userstate.events"),
        300
    );

    // Run again: refused without --resume, completed with it.
    let refused = run(&["migrate", "--from", &source, "--to", &target]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("--resume"), "{}", refused.stderr);
    let resumed = run(&[
        "--json", "migrate", "--from", &source, "--to", &target, "--resume",
    ]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    let summary: serde_json::Value = serde_json::from_str(&resumed.stdout).unwrap();
    assert_eq!(summary["skipped"], 300);
    assert_eq!(summary["events"], 600);
    assert_eq!(summary["verified"], true);

    assert_eq!(
        export_without_positions(&target),
        export_without_positions(&source)
    );
    assert_eq!(
        count(connection, "SELECT count(*) FROM userstate.events"),
        900
    );
    assert_eq!(
        count(
            connection,
            "SELECT count(*) FROM (SELECT user_id, sequence FROM userstate.events \
             GROUP BY user_id, sequence HAVING count(*) > 1) AS twice"
        ),
        0,
        "no event is there twice"
    );
    let verified = run(&["--db", &target, "verify"]);
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
}
