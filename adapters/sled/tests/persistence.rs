//! What a reopened database holds, and what opening refuses.

mod common;

use std::path::Path;
use std::sync::Arc;

use futures::executor::block_on;
use userstate::storage::Scope;
use userstate::{
    ids, Caller, ErrorKind, HistoryQuery, InMemoryAuthorizer, InitialState, ListQuery, LockRequest,
    OrgId, Permission, User, UserId, UserRepository, UserService, UserState,
};
use userstate_sled::{Durability, SledOptions, SledRepository};

fn service(repo: SledRepository) -> (UserService, Caller) {
    let acme = OrgId::new("acme").unwrap();
    let admin = Caller::new(UserId::new("admin").unwrap(), acme.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(
        &admin.user_id,
        &acme,
        [Permission::Read, Permission::Write, Permission::Delete],
    );
    (UserService::new(Arc::new(repo), Arc::new(grants)), admin)
}

fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

/// Creates u0..u9: even ones locked, u9 removed.
async fn populate(service: &UserService, admin: &Caller) {
    for i in 0..10 {
        let id = user(&format!("u{i}"));
        service
            .create(admin, &id, InitialState::Active)
            .await
            .unwrap();
        if i % 2 == 0 {
            service.lock(admin, &id, LockRequest::new()).await.unwrap();
        }
    }
    service.remove(admin, &user("u9"), None).await.unwrap();
}

async fn assert_populated(repo: &SledRepository) {
    let acme = OrgId::new("acme").unwrap();
    for i in 0..10 {
        let id = user(&format!("u{i}"));
        let stored = repo.load(&id, &Scope::Instance).await.unwrap().unwrap();
        let history = repo
            .history(&id, &Scope::Instance, HistoryQuery::default())
            .await
            .unwrap();
        assert_eq!(Some(stored), User::replay(&history), "{id}");
    }
    let locked = repo
        .list(&acme, &ListQuery::in_state(UserState::Locked))
        .await
        .unwrap();
    let names: Vec<_> = locked.items.iter().map(|u| u.id.to_string()).collect();
    assert_eq!(names, ["u0", "u2", "u4", "u6", "u8"]);
    let all = repo.list(&acme, &ListQuery::all()).await.unwrap();
    assert_eq!(all.items.len(), 9, "the removed user is not listed");
}

#[test]
fn reopening_keeps_snapshots_histories_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    {
        let (service, admin) = service(SledRepository::open(&path).unwrap());
        block_on(populate(&service, &admin));
    }
    let repo = SledRepository::open(&path).unwrap();
    block_on(assert_populated(&repo));
    // And it keeps working: the sequence check sees the stored sequences.
    let (service, admin) = service(repo);
    let details = block_on(service.unlock(&admin, &user("u0"), None)).unwrap();
    assert_eq!(details.sequence, 3);
}

#[test]
fn relaxed_commands_are_durable_after_sync_and_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    let open_relaxed = |path: &Path| {
        SledOptions::new()
            .durability(Durability::Relaxed)
            .open(path)
            .unwrap()
    };
    {
        let repo = open_relaxed(&path);
        assert_eq!(
            repo.options(),
            &SledOptions::new().durability(Durability::Relaxed)
        );
        let (service, admin) = service(repo.clone());
        block_on(populate(&service, &admin));
        block_on(repo.sync()).unwrap();
    }
    block_on(assert_populated(&open_relaxed(&path)));
}

#[test]
fn clones_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let repo = SledRepository::open(dir.path().join("users")).unwrap();
    let (service, admin) = service(repo.clone());
    block_on(service.create(&admin, &user("shared"), InitialState::Active)).unwrap();
    let seen = block_on(repo.load(&user("shared"), &Scope::Instance)).unwrap();
    assert_eq!(seen.map(|u| u.sequence), Some(1));
    assert_eq!(repo.path(), dir.path().join("users"));
}

#[test]
fn a_database_open_elsewhere_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    let _open = SledRepository::open(&path).unwrap();
    let err = SledRepository::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

#[test]
fn an_unknown_database_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    drop(SledRepository::open(&path).unwrap());
    {
        let raw = sled::open(&path).unwrap();
        raw.insert("userstate.format", &7u32.to_be_bytes()).unwrap();
        raw.flush().unwrap();
    }
    let err = SledRepository::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!(err.id(), ids::CORRUPT);
    assert!(err.message().contains("version 7"), "{err}");
    // Refusing wrote nothing: the version is still the unknown one.
    let raw = sled::open(&path).unwrap();
    let stored = raw.get("userstate.format").unwrap().unwrap();
    assert_eq!(stored.as_ref(), &7u32.to_be_bytes());
}

#[test]
fn a_sled_database_of_another_application_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other");
    {
        let raw = sled::open(&path).unwrap();
        raw.insert("their-key", "their value").unwrap();
        raw.flush().unwrap();
    }
    let err = SledRepository::open(&path).unwrap_err();
    assert_eq!(err.id(), ids::CORRUPT);
    let raw = sled::open(&path).unwrap();
    assert_eq!(raw.get("userstate.format").unwrap(), None);
    assert!(raw.get("their-key").unwrap().is_some());
}

#[test]
fn foreign_files_are_refused_without_panic_or_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign");
    std::fs::create_dir_all(&path).unwrap();
    let foreign = vec![0x5a; 64 * 1024];
    std::fs::write(path.join("db"), &foreign).unwrap();
    let err = SledRepository::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert_eq!(std::fs::read(path.join("db")).unwrap(), foreign);

    // A damaged sled configuration file.
    let path = dir.path().join("bad-conf");
    drop(SledRepository::open(&path).unwrap());
    std::fs::write(path.join("conf"), b"not sled's configuration").unwrap();
    let err = SledRepository::open(&path).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);

    // A file where the directory should be.
    let path = dir.path().join("a-file");
    std::fs::write(&path, b"x").unwrap();
    assert!(SledRepository::open(&path).is_err());
}

#[test]
fn options_reach_the_database() {
    let repo = SledOptions::new()
        .cache_bytes(1024 * 1024)
        .reader_threads(1)
        .durability(Durability::Relaxed)
        .open_temporary()
        .unwrap();
    let path = repo.path().to_path_buf();
    assert!(path.join("db").exists());
    let (service, admin) = service(repo);
    block_on(service.create(&admin, &user("x"), InitialState::Initial)).unwrap();
    drop(service);
    assert!(!path.exists(), "a temporary database is removed on close");
}

#[test]
fn the_feed_resumes_from_a_checkpoint_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    block_on(
        userstate::conformance::feed::feed_resumes_from_a_checkpoint_after_reopening(
            &path,
            |path| Arc::new(SledOptions::new().open(path).expect("open")),
        ),
    );
}

#[test]
fn the_lockout_policy_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    block_on(userstate::conformance::policy_survives_reopening(
        &path,
        |path| Arc::new(SledOptions::new().open(path).expect("open")),
    ));
}
