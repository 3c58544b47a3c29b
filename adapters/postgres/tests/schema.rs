//! The schema on a real server: created on first open with its version,
//! found again, shared by openers racing, refused when newer or foreign.

use userstate::ErrorKind;
use userstate_postgres::{testing, PostgresOptions, SCHEMA_VERSION};

fn options() -> Option<PostgresOptions> {
    testing::database().map(|db| PostgresOptions::new(db.connection_string()))
}

#[test]
fn the_schema_is_created_once_and_found_again() {
    let Some(options) = options() else { return };
    assert_eq!(options.migrate().unwrap(), SCHEMA_VERSION);
    assert_eq!(options.migrate().unwrap(), SCHEMA_VERSION);
    // Another schema name in the same database is independent.
    let other = options.clone().schema("tenant_b");
    assert_eq!(other.migrate().unwrap(), SCHEMA_VERSION);
}

#[test]
fn openers_racing_on_a_new_database_migrate_it_once() {
    let Some(options) = options() else { return };
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let options = options.clone();
            std::thread::spawn(move || options.migrate())
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap(), SCHEMA_VERSION);
    }
}

#[test]
fn a_newer_or_foreign_schema_is_refused() {
    let Some(db) = testing::database() else {
        return;
    };
    let options = PostgresOptions::new(db.connection_string());
    options.migrate().unwrap();
    testing::execute(
        db.connection_string(),
        "UPDATE userstate.meta SET value = 99 WHERE key = 'schema_version'",
    )
    .unwrap();
    let newer = options.migrate().unwrap_err();
    assert_eq!(newer.kind(), ErrorKind::Internal);
    assert!(newer.message().contains("newer"), "{newer}");

    testing::execute(
        db.connection_string(),
        "CREATE SCHEMA other; CREATE TABLE other.t (x int)",
    )
    .unwrap();
    let foreign = options.clone().schema("other").migrate().unwrap_err();
    assert!(
        foreign.message().contains("another application"),
        "{foreign}"
    );
}

#[test]
fn bad_names_and_unreachable_servers_are_typed_errors() {
    let bad = PostgresOptions::new("host=/nonexistent").schema("no spaces");
    assert_eq!(
        bad.migrate().unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let unparsable = PostgresOptions::new("host='unterminated");
    assert_eq!(
        unparsable.migrate().unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    let nobody = PostgresOptions::new("host=/nonexistent-socket-dir port=5432 user=x");
    assert_eq!(nobody.migrate().unwrap_err().kind(), ErrorKind::Unavailable);
}
