//! SQLSTATE 40001 (a serialization failure, which CockroachDB and
//! YugabyteDB answer where PostgreSQL waits) and 40P01 (a deadlock) are
//! conflicts: nothing was written, and the service decides the command
//! again, so the caller sees it succeed once. A trigger of the test's own
//! fails the first write of the events table with each code.

mod common;

use futures::executor::block_on;
use userstate::conformance::Fixture;
use userstate::{InitialState, LockRequest, UserId, UserState};
use userstate_postgres::testing;
use userstate_postgres::PostgresOptions;

/// Makes the next write of an event fail once with `code`.
fn fail_next_write_with(connection: &str, code: &str) {
    testing::execute(
        connection,
        &format!(
            "DROP TRIGGER IF EXISTS fail_once ON userstate.events;
             DROP SEQUENCE IF EXISTS userstate.fail_once;
             CREATE SEQUENCE userstate.fail_once;
             CREATE OR REPLACE FUNCTION userstate.fail_once() RETURNS trigger AS $$
             BEGIN
                 -- A sequence is not rolled back with the failed write.
                 IF nextval('userstate.fail_once') = 1 THEN
                     RAISE EXCEPTION 'injected' USING ERRCODE = '{code}';
                 END IF;
                 RETURN NEW;
             END $$ LANGUAGE plpgsql;
             CREATE TRIGGER fail_once BEFORE INSERT ON userstate.events
                 FOR EACH STATEMENT EXECUTE FUNCTION userstate.fail_once();"
        ),
    )
    .unwrap();
}

#[test]
fn serialization_failures_and_deadlocks_are_retried_by_deciding_again() {
    let Some(db) = testing::database() else {
        return;
    };
    let repo = PostgresOptions::new(db.connection_string()).open().unwrap();
    let f = Fixture::new(repo.clone().into());
    let alice = UserId::new("alice").unwrap();

    fail_next_write_with(db.connection_string(), "40001");
    block_on(
        f.service
            .create(&f.acme_admin, &alice, InitialState::Active),
    )
    .expect("a serialization failure is retried");
    fail_next_write_with(db.connection_string(), "40P01");
    block_on(f.service.lock(&f.acme_admin, &alice, LockRequest::new()))
        .expect("a deadlock is retried");

    assert_eq!(block_on(f.stored(&alice)).state, UserState::Locked);
    assert_eq!(
        block_on(f.event_types(&alice)),
        ["user.added", "user.locked"],
        "each command written once"
    );
    assert!(repo.stats().conflicts >= 2, "{:?}", repo.stats());
}
