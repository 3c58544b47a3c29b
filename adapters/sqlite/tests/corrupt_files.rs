//! Damaged database files: bytes flipped in the header and in pages, pages
//! zeroed, files truncated. Opening and reading give values or typed errors,
//! never a panic, never another user's data.

use std::path::Path;
use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::corruption::{populate, read_back, USERS};
use userstate::{ErrorKind, UserRepository};
use userstate_sqlite::{Durability, SqliteOptions};

fn options() -> SqliteOptions {
    SqliteOptions::new().durability(Durability::Relaxed)
}

/// Deterministic damage: each case flips, zeroes or cuts a different place.
fn damage(bytes: &mut Vec<u8>, case: u64) {
    let mut x = case.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |bound: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % bound.max(1) as u64) as usize
    };
    let len = bytes.len();
    match case % 4 {
        0 => {
            for _ in 0..16 {
                let at = next(len);
                bytes[at] ^= 1 << next(8);
            }
        }
        1 => {
            let at = next(100);
            bytes[at] ^= 0xFF;
        }
        2 => {
            let page = 4096;
            let start = next(len / page) * page;
            bytes[start..(start + page).min(len)].fill(0);
        }
        _ => bytes.truncate(next(len)),
    }
}

fn reopen_and_read(path: &Path, ids: &[userstate::UserId]) -> Option<usize> {
    match options().open(path) {
        Ok(repo) => {
            let repo: Arc<dyn UserRepository> = Arc::new(repo);
            Some(block_on(read_back(repo, ids)))
        }
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::Internal | ErrorKind::Unavailable),
                "open failed with an untyped error: {e:?}"
            );
            None
        }
    }
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
