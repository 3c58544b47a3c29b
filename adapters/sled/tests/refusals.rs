//! What an open refuses rather than adopt, and the reasons it gives: a
//! directory whose data file is empty or gone, a directory of other files,
//! a file that cannot be written, a file where the directory should be, a
//! link; a loss of committed events, refused until accepted on purpose and
//! leaving the files as they were; owner-only files.

#![cfg(unix)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::Fixture;
use userstate::storage::{Loss, Scope};
use userstate::{ids, ErrorKind, InitialState, UserRepository};
use userstate_sled::{SledOptions, SledRepository};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The database in `dir`, closed again, with users `u{i}` for `i` in
/// `users` added.
fn database(dir: &Path, users: std::ops::Range<usize>) {
    let repo: Arc<dyn UserRepository> = Arc::new(SledRepository::open(dir).unwrap());
    let f = Fixture::new(repo);
    block_on(async {
        for i in users {
            let id = userstate::conformance::user(&format!("u{i}"));
            f.service
                .create(&f.acme_admin, &id, InitialState::Active)
                .await
                .unwrap();
        }
    });
}

/// Every file of the directory and its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn an_empty_or_missing_data_file_beside_the_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users");
    database(&db, 0..3);
    fs::write(db.join("db"), b"").unwrap();
    let err = SledRepository::open(&db).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("missing or empty"), "{err}");
    assert_eq!(fs::metadata(db.join("db")).unwrap().len(), 0);
    fs::remove_file(db.join("db")).unwrap();
    let err = SledRepository::open(&db).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(!db.join("db").exists(), "no new database where one was");
}

#[test]
fn a_directory_of_other_files_is_not_made_a_database() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    let err = SledRepository::open(dir.path()).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("notes.txt"), "{err}");
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_missing_database_is_created_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users");
    let err = SledOptions::new()
        .create_if_missing(false)
        .open(&db)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(!db.exists());
    SledOptions::new().open(&db).unwrap();
}

#[test]
fn open_errors_carry_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let err = SledRepository::open(&file).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("is a file"), "{err}");
    assert!(err.message().contains(&file.display().to_string()), "{err}");

    let err = SledRepository::open(file.join("users")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("Not a directory"), "{err}");
}

/// Makes `path` impossible to write for this process: read-only for an
/// ordinary user, immutable for root (who writes read-only files).
fn make_unwritable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o400)).unwrap();
    if rustix::process::geteuid().is_root() {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .expect("chattr, to make a file immutable for root");
        assert!(status.success(), "chattr +i {}", path.display());
    }
}

fn make_writable(path: &Path) {
    if rustix::process::geteuid().is_root() {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(path)
            .status();
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn a_database_that_cannot_be_written_is_refused_at_open_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users");
    database(&db, 0..2);
    let before = contents(&db);
    make_unwritable(&db.join("db"));
    let refused = SledRepository::open(&db);
    make_writable(&db.join("db"));
    let err = refused.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.message().contains("Permission denied")
            || err.message().contains("Operation not permitted"),
        "the system's reason: {err}"
    );
    assert_eq!(contents(&db), before);
    SledRepository::open(&db).unwrap();
}

#[test]
fn a_link_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("users");
    database(&target, 0..1);
    let link = dir.path().join("link");
    symlink(&target, &link).unwrap();
    let err = SledRepository::open(&link).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("symbolic link"), "{err}");
}

#[test]
fn new_files_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users");
    database(&db, 0..3);
    assert_eq!(mode(&db), 0o700);
    for (file, _) in contents(&db) {
        assert_eq!(mode(&db.join(&file)), 0o600, "{file}");
    }
    // A database of release 0.1.0 was created with the umask's modes.
    fs::set_permissions(&db, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(db.join("db"), fs::Permissions::from_mode(0o644)).unwrap();
    SledRepository::open(&db).unwrap();
    assert_eq!(mode(&db), 0o700);
    assert_eq!(mode(&db.join("db")), 0o600);
}

#[test]
fn a_lost_commit_is_refused_untouched_until_accepted_and_the_acceptance_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users");
    database(&db, 0..2);
    let older = dir.path().join("older");
    userstate::conformance::damage::copy_dir(&db, &older);
    database(&db, 2..5);
    // An older copy of the database restored under the newer commit mark:
    // the three users created since are lost.
    for (file, bytes) in contents(&older) {
        if file != "userstate.commits" {
            fs::write(db.join(file), bytes).unwrap();
        }
    }
    let before = contents(&db);
    let err = SledRepository::open(&db).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("3 are lost"), "{err}");
    assert_eq!(contents(&db), before, "the refused open wrote nothing");
    assert!(!db.join("userstate.probe").exists());

    let repo = SledOptions::new().accept_loss(true).open(&db).unwrap();
    let losses = block_on(repo.accepted_losses()).unwrap();
    assert_eq!(losses.len(), 1);
    assert_eq!(
        losses[0].loss,
        Loss {
            expected: Some(5),
            found: 2
        }
    );
    let u1 = userstate::conformance::user("u1");
    let u4 = userstate::conformance::user("u4");
    assert!(block_on(repo.load(&u1, &Scope::Instance))
        .unwrap()
        .is_some());
    assert!(block_on(repo.load(&u4, &Scope::Instance))
        .unwrap()
        .is_none());
    drop(repo);
    SledRepository::open(&db).unwrap();
}

#[test]
fn verify_walks_a_sound_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users");
    database(&db, 0..3);
    let repo = SledRepository::open(&db).unwrap();
    let verification = block_on(repo.verify()).unwrap();
    assert!(verification.is_sound(), "{verification:?}");
    assert_eq!((verification.users, verification.events), (3, 3));
}

#[test]
fn a_clean_close_seals_the_data_file_and_the_next_open_needs_no_copy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users");
    database(&db, 0..3);
    let mark = userstate::storage::Recorded::read(&db.join("userstate.commits")).unwrap();
    let seal = mark.seal().expect("sealed at the clean close");
    assert_eq!(
        userstate::storage::Seal::of_file(&db.join("db")).unwrap(),
        seal,
        "the seal is of the data file as sled left it"
    );
}

#[test]
fn a_feed_that_lost_an_entry_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("users");
    database(&db, 0..3);
    {
        let raw = sled::open(&db).unwrap();
        let feed = raw.open_tree("userstate.feed").unwrap();
        assert!(feed.remove(2u64.to_be_bytes()).unwrap().is_some());
        raw.flush().unwrap();
    }
    // Followers would skip the event for ever: the open refuses instead.
    let err = SledRepository::open(&db).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("feed"), "{err}");
}
