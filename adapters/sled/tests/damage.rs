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
use userstate_sled::{Durability, SledOptions, SledRepository};

const MAIN: &str = "db";

/// A closed database of `damage::USERS` users in `dir`.
fn original(dir: &Path) -> Expected {
    let repo = SledOptions::new()
        .durability(Durability::Relaxed)
        .open(dir)
        .unwrap();
    block_on(populate(Arc::new(repo)))
}

/// Every file of the database: sled's log, its configuration and
/// snapshots, the commit mark.
fn files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

fn run(check: CheckAtOpen) -> Summary {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("original");
    let expected = original(&db);
    let files = files(&db);
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    assert!(
        files.contains(&MAIN) && files.contains(&"userstate.commits"),
        "{files:?}"
    );
    let open = |copy: &Path| -> Result<Arc<dyn UserRepository>> {
        Ok(Arc::new(
            SledOptions::new().check_at_open(check).open(copy)?,
        ))
    };
    let summary = damage::run(&db, &files, MAIN, &expected, Reads::All, open);
    eprintln!("{check:?} on {files:?}: {summary:?}");
    assert_eq!(
        summary.refused + summary.exact + summary.reported,
        cases(&db, &files, MAIN).len()
    );
    summary
}

#[test]
fn damage_is_refused_at_open_or_reported_never_served() {
    let summary = run(CheckAtOpen::Auto);
    // The walk at open reads every page back.
    assert_eq!(summary.reported, 0, "{summary:?}");
}

/// Without the walk at open, sled's checksum of every page it reads, and
/// the checks of every read, refuse to serve what is damaged; a loss in
/// the log is refused at open by the commit mark.
#[test]
fn damage_without_the_check_at_open_is_reported_by_the_reads() {
    run(CheckAtOpen::Nothing);
}

#[test]
fn damage_to_a_user_stays_inside_its_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users");
    block_on(damage::populate_two_organisations(Arc::new(
        SledRepository::open(&db).unwrap(),
    )));
    // The record cut after its id and organisation, garbage after: it no
    // longer decodes, and still tells whose it is.
    {
        let raw = sled::open(&db).unwrap();
        let snapshots = raw.open_tree("userstate.snapshots.v2").unwrap();
        let mut record = snapshots.get(damage::DAMAGED).unwrap().unwrap().to_vec();
        let prefix = 1 + 1 + damage::DAMAGED.len() + 1 + "globex".len();
        record.truncate(prefix);
        record.push(0xff);
        snapshots.insert(damage::DAMAGED, record).unwrap();
        raw.flush().unwrap();
    }
    let refused = SledRepository::open(&db).unwrap_err();
    assert_eq!(refused.id(), userstate::ids::CORRUPT, "{refused}");
    let repo = SledOptions::new()
        .check_at_open(CheckAtOpen::Structure)
        .open(&db)
        .unwrap();
    block_on(damage::contained_damage(Arc::new(repo)));
}
