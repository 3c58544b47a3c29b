//! A database of format 1, written by release 0.1.0 (`tests/fixtures`):
//! opened by this release, upgraded in place in one transaction, and read
//! back exactly as that release read it; one with a row it cannot read is
//! refused and left as it was.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::executor::block_on;
use rusqlite::Connection;
use userstate::conformance::upgrade::assert_reads_back;
use userstate::{ids, ErrorKind, LockRequest, UserRepository};
use userstate_sqlite::{SqliteRepository, SCHEMA_VERSION};

/// What release 0.1.0 read back from the fixture.
const READ_BACK: &str = include_str!("fixtures/format-1.json");

/// A copy of the fixture in `dir`: the fixture itself never changes.
fn copy_of_fixture(dir: &Path) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-1.sqlite3");
    let path = common::db_path(dir);
    std::fs::copy(fixture, &path).expect("copy the fixture");
    path
}

fn version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap()
}

/// Every row of both tables, as text, for comparing files by content.
fn rows(path: &Path) -> Vec<String> {
    let conn = Connection::open(path).unwrap();
    let mut all = Vec::new();
    for sql in [
        "SELECT id || '|' || org || '|' || state || '|' || sequence || '|' || snapshot FROM users ORDER BY id",
        "SELECT user_id || '|' || sequence || '|' || org || '|' || event_type || '|' || created_at
             || '|' || creator || '|' || payload FROM events ORDER BY user_id, sequence",
    ] {
        let mut select = conn.prepare(sql).unwrap();
        let found = select
            .query_map([], |row| row.get::<_, String>(0))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap();
        all.extend(found);
    }
    all
}

#[test]
fn the_format_1_fixture_is_upgraded_in_place_and_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_of_fixture(dir.path());
    assert_eq!(version(&path), 1);

    let repo = SqliteRepository::open(&path).expect("the upgrade");
    assert_eq!(version(&path), SCHEMA_VERSION);
    let (users, events) = block_on(assert_reads_back(Arc::new(repo.clone()), READ_BACK));
    assert_eq!((users, events), (16, 346), "the whole fixture was compared");
    let conn = Connection::open(&path).unwrap();
    let bob: String = conn
        .query_row("SELECT snapshot FROM users WHERE id = 'bob'", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert!(
        bob.starts_with(r#"{"org":"acme","state":"locked","sequence":2,"createdAt":"#),
        "{bob}"
    );
    let lock: String = conn
        .query_row(
            "SELECT payload FROM events WHERE user_id = 'frank' AND sequence = 5",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(lock, r#"{"cause":"lockout","expiresAt":1718261138550}"#);
    drop(conn);
    drop(repo);

    // Opened again, there is nothing left to upgrade, and it serves writes.
    let repo: Arc<dyn UserRepository> = SqliteRepository::open(&path).unwrap().into();
    block_on(assert_reads_back(repo.clone(), READ_BACK));
    let cast = common::Cast::new(repo.clone());
    let alice = common::user("alice");
    block_on(async {
        let details = cast
            .service
            .lock(&cast.admin, &alice, LockRequest::new())
            .await
            .expect("lock an upgraded user");
        assert_eq!(details.sequence, 4);
        common::assert_exact_history(&*repo, &alice).await;
    });
}

#[test]
fn a_format_1_database_with_a_row_it_cannot_read_is_refused_and_left_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_of_fixture(dir.path());
    let conn = Connection::open(&path).unwrap();
    // A payload late in the upgrade's order, so the rows before it were
    // already rewritten when it fails.
    conn.execute(
        "UPDATE events SET payload = '{\"locked\":{' WHERE user_id = 'zed' AND sequence = 2",
        [],
    )
    .unwrap();
    drop(conn);
    let before = rows(&path);

    let err = SqliteRepository::open(&path).expect_err("an unreadable row");
    assert_eq!((err.kind(), err.id()), (ErrorKind::Internal, ids::CORRUPT));
    assert!(err.message().contains("user zed"), "{err}");
    assert!(err.message().contains("unchanged"), "{err}");
    assert_eq!(version(&path), 1, "still format 1");
    assert_eq!(rows(&path), before, "not a row was rewritten");
}
