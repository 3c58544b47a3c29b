//! Damaged database files: bytes flipped, pages zeroed and files truncated
//! in sled's data file. Opening and reading give values or typed errors,
//! never a panic, never another user's data.

use std::path::Path;
use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::corruption::{damage, populate, read_back_opened, USERS};
use userstate::{UserId, UserRepository};
use userstate_sled::{Durability, SledOptions};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn reopen_and_read(path: &Path, ids: &[UserId]) -> Option<usize> {
    let opened = SledOptions::new()
        .durability(Durability::Durable)
        .open(path)
        .map(|r| Arc::new(r) as Arc<dyn UserRepository>);
    block_on(read_back_opened(opened, ids))
}

#[test]
fn damaged_files_give_typed_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original");
    let ids = {
        let repo = SledOptions::new().open(&original).unwrap();
        let ids = block_on(populate(Arc::new(repo.clone())));
        block_on(repo.sync()).unwrap();
        ids
    };
    let copy = dir.path().join("copy");
    copy_dir(&original, &copy);
    assert_eq!(
        reopen_and_read(&copy, &ids),
        Some(USERS),
        "an undamaged copy reads back whole"
    );

    let pristine = std::fs::read(original.join("db")).unwrap();
    let (mut refused, mut partly) = (0, 0);
    for case in 0..30 {
        let path = dir.path().join(format!("damaged-{case}"));
        copy_dir(&original, &path);
        let mut bytes = pristine.clone();
        damage(&mut bytes, case);
        std::fs::write(path.join("db"), &bytes).unwrap();
        match reopen_and_read(&path, &ids) {
            None => refused += 1,
            Some(intact) if intact < USERS => partly += 1,
            Some(_) => {}
        }
    }
    eprintln!("30 damaged files: {refused} refused at open, {partly} with some users unreadable");
}
