//! Damaged copies of a database of 505 users: every copy is refused at
//! open with USER-CORRUPT, untouched, or reads back exactly, or answers
//! USER-CORRUPT naming each user it cannot serve (see
//! `userstate::conformance::damage`).

use std::path::Path;
use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::damage::{self, cases, populate, Expected, Reads, Summary};
use userstate::storage::CheckAtOpen;
use userstate::{Result, UserRepository};
use userstate_sqlite::{Durability, SqliteOptions, SqliteRepository};

const FILE: &str = "users.db";
const FILES: [&str; 2] = [FILE, "users.db-commits"];

/// A closed database of `damage::USERS` users in `dir`.
fn original(dir: &Path) -> Expected {
    let repo = SqliteOptions::new()
        .durability(Durability::Relaxed)
        .open(dir.join(FILE))
        .unwrap();
    block_on(populate(Arc::new(repo)))
}

fn run(check: CheckAtOpen, reads: Reads) -> Summary {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("original");
    std::fs::create_dir(&db).unwrap();
    let expected = original(&db);
    assert!(
        !db.join("users.db-wal").exists(),
        "closed with its log checkpointed"
    );
    let open = |copy: &Path| -> Result<Arc<dyn UserRepository>> {
        let repo = SqliteOptions::new()
            .check_at_open(check)
            .open(copy.join(FILE))?;
        Ok(Arc::new(repo))
    };
    let summary = damage::run(&db, &FILES, FILE, &expected, reads, open);
    eprintln!("{check:?}: {summary:?}");
    assert_eq!(
        summary.refused + summary.exact + summary.reported,
        cases(&db, &FILES, FILE).len()
    );
    summary
}

#[test]
fn damage_is_refused_at_open_or_reported_never_served() {
    let summary = run(CheckAtOpen::Auto, Reads::All);
    // The whole-file check at open finds every damaged page and row.
    assert_eq!(summary.reported, 0, "{summary:?}");
}

/// Without any check at open, the checksums of the rows and the checks of
/// every read still refuse to serve a damaged user or history; a damaged
/// index entry can drop out of a listing (SQLite's indexes carry no
/// checksum), which only `integrity_check` finds.
#[test]
fn damage_without_the_check_at_open_is_reported_by_the_reads() {
    let summary = run(CheckAtOpen::Nothing, Reads::UsersAndHistories);
    assert!(summary.reported > 0, "{summary:?}");
}

#[test]
fn damage_to_a_user_stays_inside_its_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    block_on(damage::populate_two_organisations(Arc::new(
        SqliteRepository::open(&path).unwrap(),
    )));
    // One count changed inside the stored value, as a flipped bit would:
    // the row's checksum no longer matches.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let changed = conn
        .execute(
            "UPDATE users SET snapshot = replace(snapshot, '}}', '},\"lockouts\":1}') \
             WHERE id = ?1",
            [damage::DAMAGED],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let refused = SqliteRepository::open(&path).unwrap_err();
    assert_eq!(refused.id(), userstate::ids::CORRUPT, "{refused}");
    let repo = SqliteOptions::new()
        .check_at_open(CheckAtOpen::Structure)
        .open(&path)
        .unwrap();
    block_on(damage::contained_damage(Arc::new(repo)));
}
