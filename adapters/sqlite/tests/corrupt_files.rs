//! Damaged database files: bytes flipped in the header and in pages, pages
//! zeroed, files truncated. Opening and reading give values or typed errors,
//! never a panic, never another user's data.

use std::path::Path;
use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::corruption::{damage, populate, read_back_opened, USERS};
use userstate::{UserId, UserRepository};
use userstate_sqlite::{Durability, SqliteOptions};

fn options() -> SqliteOptions {
    SqliteOptions::new().durability(Durability::Relaxed)
}

fn reopen_and_read(path: &Path, ids: &[UserId]) -> Option<usize> {
    let opened = options()
        .open(path)
        .map(|r| Arc::new(r) as Arc<dyn UserRepository>);
    block_on(read_back_opened(opened, ids))
}

#[test]
fn damaged_files_give_typed_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.db");
    let ids = {
        let repo: Arc<dyn UserRepository> = Arc::new(options().open(&original).unwrap());
        block_on(populate(repo))
    };
    let pristine = std::fs::read(&original).unwrap();
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, &pristine).unwrap();
    assert_eq!(
        reopen_and_read(&copy, &ids),
        Some(USERS),
        "an undamaged copy reads back whole"
    );

    let (mut refused, mut partly) = (0, 0);
    for case in 0..40 {
        let path = dir.path().join(format!("damaged-{case}.db"));
        let mut bytes = pristine.clone();
        damage(&mut bytes, case);
        std::fs::write(&path, &bytes).unwrap();
        match reopen_and_read(&path, &ids) {
            None => refused += 1,
            Some(intact) if intact < USERS => partly += 1,
            Some(_) => {}
        }
    }
    eprintln!("40 damaged files: {refused} refused at open, {partly} with some users unreadable");
}
