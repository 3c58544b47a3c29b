//! What an open refuses rather than adopt, and the reasons it gives: an
//! empty file, a missing file whose companions are left, a file that
//! cannot be written, a directory, a link; a loss of committed events,
//! refused until accepted on purpose; owner-only files.

#![cfg(unix)]

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::Fixture;
use userstate::storage::{CheckAtOpen, Loss, Scope};
use userstate::{ids, ErrorKind, InitialState, UserRepository};
use userstate_sqlite::{SqliteOptions, SqliteRepository};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The database at `path`, closed again, with users `u{i}` for `i` in
/// `users` added.
fn database(path: &Path, users: std::ops::Range<usize>) {
    let repo: Arc<dyn UserRepository> = Arc::new(SqliteRepository::open(path).unwrap());
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

#[test]
fn an_empty_file_is_refused_and_left_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.db");
    fs::write(&path, b"").unwrap();
    let err = SqliteRepository::open(&path).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("empty"), "{err}");
    assert!(err.message().contains(&path.display().to_string()), "{err}");
    assert_eq!(fs::metadata(&path).unwrap().len(), 0, "nothing written");
}

#[test]
fn an_empty_database_of_another_application_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.db");
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("CREATE TABLE t (x); DROP TABLE t;")
        .unwrap();
    drop(other);
    let before = fs::read(&path).unwrap();
    let err = SqliteRepository::open(&path).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert_eq!(fs::read(&path).unwrap(), before, "nothing written");
}

#[test]
fn a_missing_file_whose_companions_are_left_is_not_started_anew() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.db");
    database(&path, 0..3);
    fs::remove_file(&path).unwrap();
    let err = SqliteRepository::open(&path).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("users.db-commits"), "{err}");
    assert!(!path.exists(), "no new database where one was");
}

#[test]
fn a_missing_file_is_created_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.db");
    let err = SqliteOptions::new()
        .create_if_missing(false)
        .open(&path)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(!path.exists());
    SqliteOptions::new().open(&path).unwrap();
}

#[test]
fn open_errors_carry_their_cause() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteRepository::open(dir.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("is a directory"), "{err}");

    let missing = dir.path().join("no/such/folder/users.db");
    let err = SqliteRepository::open(&missing).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("No such file or directory"), "{err}");

    let file = dir.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    let err = SqliteRepository::open(file.join("users.db")).unwrap_err();
    assert!(err.message().contains("Not a directory"), "{err}");

    let not_sqlite = dir.path().join("notes.txt");
    fs::write(&not_sqlite, vec![b'n'; 8192]).unwrap();
    let err = SqliteRepository::open(&not_sqlite).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("not a database"), "{err}");
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
    let path = dir.path().join("users.db");
    database(&path, 0..2);
    let before = fs::read(&path).unwrap();
    make_unwritable(&path);
    let refused = SqliteRepository::open(&path);
    make_writable(&path);
    let err = refused.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains("cannot be written"), "{err}");
    assert!(
        err.message().contains("Permission denied")
            || err.message().contains("Operation not permitted"),
        "the system's reason: {err}"
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    SqliteRepository::open(&path).unwrap();
}

#[test]
fn a_link_is_never_followed() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("users.db");
    database(&target, 0..1);
    let link = dir.path().join("link.db");
    symlink(&target, &link).unwrap();
    let err = SqliteRepository::open(&link).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("symbolic link"), "{err}");

    // Nor is a link planted where a new database goes.
    let planted = dir.path().join("new.db");
    symlink(dir.path().join("elsewhere.db"), &planted).unwrap();
    let err = SqliteRepository::open(&planted).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(!dir.path().join("elsewhere.db").exists());
}

#[test]
fn new_files_are_owner_only_and_loose_ones_are_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.db");
    let repo = SqliteRepository::open(&path).unwrap();
    let f = Fixture::new(Arc::new(repo.clone()));
    block_on(f.service.create(
        &f.acme_admin,
        &userstate::conformance::user("a"),
        InitialState::Active,
    ))
    .unwrap();
    for file in [
        "users.db",
        "users.db-wal",
        "users.db-shm",
        "users.db-commits",
    ] {
        assert_eq!(mode(&dir.path().join(file)), 0o600, "{file}");
    }
    drop(f);
    drop(repo);
    // A database of release 0.1.0 was created 0644.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    SqliteRepository::open(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn a_lost_commit_is_refused_until_accepted_and_the_acceptance_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.db");
    database(&path, 0..2);
    let older = fs::read(&path).unwrap();
    database(&path, 2..5);
    let newer = fs::read(&path).unwrap();
    // An older copy of the file restored under the newer commit mark: the
    // three users created since are lost.
    fs::write(&path, &older).unwrap();
    let err = SqliteRepository::open(&path).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("3 are lost"), "{err}");
    assert!(err.message().contains("accepting the loss"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), older, "nothing written");

    let repo = SqliteOptions::new().accept_loss(true).open(&path).unwrap();
    let losses = block_on(repo.accepted_losses()).unwrap();
    assert_eq!(losses.len(), 1);
    assert_eq!(
        losses[0].loss,
        Loss {
            expected: Some(5),
            found: 2
        }
    );
    let ids: Vec<_> = (0..5)
        .map(|i| userstate::conformance::user(&format!("u{i}")))
        .collect();
    assert!(block_on(repo.load(&ids[1], &Scope::Instance))
        .unwrap()
        .is_some());
    assert!(block_on(repo.load(&ids[4], &Scope::Instance))
        .unwrap()
        .is_none());
    drop(repo);
    // Accepted once: the next open goes on from what is there.
    SqliteRepository::open(&path).unwrap();
    assert_ne!(fs::read(&path).unwrap(), newer);
}

#[test]
fn verify_reports_a_damaged_row_and_the_check_at_open_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.db");
    database(&path, 0..3);
    let sound = block_on(SqliteRepository::open(&path).unwrap().verify()).unwrap();
    assert!(sound.is_sound(), "{sound:?}");
    assert_eq!((sound.users, sound.events), (3, 3));

    let conn = rusqlite::Connection::open(&path).unwrap();
    // A count changed inside the stored value, its columns untouched.
    conn.execute(
        "UPDATE users SET snapshot = replace(snapshot, '}', ',\"lockouts\":1}') WHERE id = 'u1'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteRepository::open(&path).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT, "{err}");
    assert!(err.message().contains("user u1"), "{err}");
    let repo = SqliteOptions::new()
        .check_at_open(CheckAtOpen::Structure)
        .open(&path)
        .unwrap();
    let found = block_on(repo.verify()).unwrap();
    assert_eq!(found.findings.len(), 1, "{found:?}");
    assert_eq!(
        found.findings[0].user,
        Some(userstate::conformance::user("u1"))
    );
}
