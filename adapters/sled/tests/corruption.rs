//! Stored bytes that cannot be decoded are an Internal error for that user
//! only; nothing panics and every other user stays readable and writable.
//! (The check at open refuses such a database whole; these tests open it
//! without, as an operator may to serve what is sound.)

use std::path::Path;
use std::sync::Arc;

use futures::executor::block_on;
use userstate::storage::{CheckAtOpen, Scope};
use userstate::{
    ids, Caller, ErrorKind, HistoryQuery, InMemoryAuthorizer, InitialState, LockRequest, OrgId,
    Permission, UserId, UserRepository, UserService,
};
use userstate_sled::{SledOptions, SledRepository};

/// Opens without the check at open, which would refuse these databases:
/// what is tested here is what each read answers.
fn structure_only() -> SledOptions {
    SledOptions::new().check_at_open(CheckAtOpen::Structure)
}

fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

fn service(repo: SledRepository) -> (UserService, Caller) {
    let acme = OrgId::new("acme").unwrap();
    let admin = Caller::new(user("admin"), acme.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
    (UserService::new(Arc::new(repo), Arc::new(grants)), admin)
}

/// A closed database with users alice and bob (two events each).
fn database_with_alice_and_bob(path: &Path) {
    let (service, admin) = service(SledRepository::open(path).unwrap());
    block_on(async {
        for id in ["alice", "bob"] {
            service
                .create(&admin, &user(id), InitialState::Active)
                .await
                .unwrap();
            service
                .lock(&admin, &user(id), LockRequest::new())
                .await
                .unwrap();
        }
    });
}

/// Changes one stored value directly through sled, with the database closed.
fn overwrite(path: &Path, tree: &str, key: &[u8], change: impl FnOnce(&mut Vec<u8>)) {
    until_sled_lets_go(path);
    let raw = sled::open(path).unwrap();
    let tree = raw.open_tree(tree).unwrap();
    let mut value = tree.get(key).unwrap().expect("stored value").to_vec();
    change(&mut value);
    tree.insert(key, value).unwrap();
    raw.flush().unwrap();
    drop((tree, raw));
    until_sled_lets_go(path);
}

/// Returns once sled's lock on the database is free: sled 0.34 releases
/// it from its flusher thread after the last handle (the adapter's too)
/// is dropped, so the next open could otherwise find it still held.
fn until_sled_lets_go(path: &Path) {
    use rustix::fs::{flock, FlockOperation};
    let file = std::fs::File::open(path.join("db")).unwrap();
    while flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        std::thread::yield_now();
    }
    flock(&file, FlockOperation::Unlock).unwrap();
}

fn event_key(id: &str, sequence: u64) -> Vec<u8> {
    let mut key = id.as_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn assert_corrupt(err: userstate::Error) {
    assert_eq!(err.kind(), ErrorKind::Internal, "{err:?}");
    assert_eq!(err.id(), ids::CORRUPT, "{err:?}");
}

#[test]
fn undecodable_snapshot_is_internal_and_other_users_stay_usable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    database_with_alice_and_bob(&path);
    overwrite(&path, "userstate.snapshots.v2", b"alice", |v| {
        v.truncate(1);
        v.extend_from_slice(&[0xff; 9]);
    });

    let repo = structure_only().open(&path).unwrap();
    let (service, admin) = service(repo.clone());
    block_on(async {
        assert_corrupt(
            repo.load(&user("alice"), &Scope::Instance)
                .await
                .unwrap_err(),
        );
        assert_corrupt(service.get(&admin, &user("alice")).await.unwrap_err());
        assert_corrupt(
            service
                .unlock(&admin, &user("alice"), None)
                .await
                .unwrap_err(),
        );
        // Her history cannot be checked against her snapshot any more
        // (it could end short unseen), so it is refused too.
        assert_corrupt(
            repo.history(&user("alice"), &Scope::Instance, HistoryQuery::default())
                .await
                .unwrap_err(),
        );

        assert_eq!(service.get(&admin, &user("bob")).await.unwrap().sequence, 2);
        let details = service.unlock(&admin, &user("bob"), None).await.unwrap();
        assert_eq!(details.sequence, 3);
    });
}

#[test]
fn unknown_record_format_is_internal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    database_with_alice_and_bob(&path);
    overwrite(&path, "userstate.snapshots.v2", b"alice", |v| v[0] = 9);
    overwrite(&path, "userstate.events.v2", &event_key("bob", 2), |v| {
        v[0] = 0
    });

    let repo = structure_only().open(&path).unwrap();
    block_on(async {
        let err = repo
            .load(&user("alice"), &Scope::Instance)
            .await
            .unwrap_err();
        assert!(err.message().contains("format 9"), "{err}");
        assert_corrupt(err);
        assert_corrupt(
            repo.history(&user("bob"), &Scope::Instance, HistoryQuery::default())
                .await
                .unwrap_err(),
        );
        // Bob's first event and snapshot are fine.
        let first = HistoryQuery::after_sequence(0, 1);
        assert_eq!(
            repo.history(&user("bob"), &Scope::Instance, first)
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(repo
            .load(&user("bob"), &Scope::Instance)
            .await
            .unwrap()
            .is_some());
    });
}

#[test]
fn empty_and_truncated_records_are_internal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    database_with_alice_and_bob(&path);
    overwrite(&path, "userstate.snapshots.v2", b"alice", Vec::clear);
    overwrite(&path, "userstate.snapshots.v2", b"bob", |v| {
        v.truncate(v.len() / 2)
    });

    let repo = structure_only().open(&path).unwrap();
    block_on(async {
        assert_corrupt(
            repo.load(&user("alice"), &Scope::Instance)
                .await
                .unwrap_err(),
        );
        assert_corrupt(repo.load(&user("bob"), &Scope::Instance).await.unwrap_err());
    });
}
