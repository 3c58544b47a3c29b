//! A database of format 1, written by release 0.1.0 (`tests/fixtures`):
//! opened by this release, upgraded in place (the new records written beside
//! the old, then one write of the version switching to them), and read back
//! exactly as that release read it; one with a record it cannot read is
//! refused and left in format 1; the leftovers of an upgrade interrupted on
//! either side of the switch are cleaned up by the next open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::executor::block_on;
use userstate::conformance::upgrade::assert_reads_back;
use userstate::{
    ids, Caller, ErrorKind, InMemoryAuthorizer, LockRequest, OrgId, Permission, UserId,
    UserRepository, UserService,
};
use userstate_sled::{SledRepository, DATABASE_FORMAT};

/// What release 0.1.0 read back from the fixture.
const READ_BACK: &str = include_str!("fixtures/format-1.json");

const V1_TREES: [&str; 2] = ["userstate.snapshots", "userstate.events"];
const V2_TREES: [&str; 2] = ["userstate.snapshots.v2", "userstate.events.v2"];

/// A copy of the fixture's directory in `dir`: the fixture never changes.
fn copy_of_fixture(dir: &Path) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-1-sled");
    let path = dir.join("users");
    // Git keeps no empty folders; sled's `blobs/` is one here.
    std::fs::create_dir_all(path.join("blobs")).unwrap();
    for entry in std::fs::read_dir(fixture).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), path.join(entry.file_name())).unwrap();
        }
    }
    path
}

/// Opens the closed database with sled itself, for looking inside.
fn raw(path: &Path) -> sled::Db {
    sled::open(path).unwrap()
}

fn version(db: &sled::Db) -> u32 {
    let stored = db.get("userstate.format").unwrap().unwrap();
    u32::from_be_bytes(stored.as_ref().try_into().unwrap())
}

fn has_tree(db: &sled::Db, name: &str) -> bool {
    db.tree_names()
        .iter()
        .any(|n| n.as_ref() == name.as_bytes())
}

fn reads_back(path: &Path) {
    let repo: Arc<dyn UserRepository> = SledRepository::open(path).expect("open").into();
    let (users, events) = block_on(assert_reads_back(repo, READ_BACK));
    assert_eq!((users, events), (16, 346), "the whole fixture was compared");
}

#[test]
fn the_format_1_fixture_is_upgraded_in_place_and_reads_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_of_fixture(dir.path());
    {
        let db = raw(&path);
        assert_eq!(version(&db), 1);
        assert!(V1_TREES.iter().all(|tree| has_tree(&db, tree)));
    }
    reads_back(&path);
    {
        let db = raw(&path);
        assert_eq!(version(&db), DATABASE_FORMAT);
        assert!(V2_TREES.iter().all(|tree| has_tree(&db, tree)));
        assert!(
            !V1_TREES.iter().any(|tree| has_tree(&db, tree)),
            "the old trees are gone"
        );
    }

    // Opened again, there is nothing left to upgrade, and it serves writes.
    reads_back(&path);
    let repo: Arc<dyn UserRepository> = SledRepository::open(&path).unwrap().into();
    let acme = OrgId::new("acme").unwrap();
    let admin = Caller::new(UserId::new("acme-admin").unwrap(), acme.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
    let service = UserService::new(repo, Arc::new(grants));
    let details =
        block_on(service.lock(&admin, &UserId::new("alice").unwrap(), LockRequest::new()))
            .expect("lock an upgraded user");
    assert_eq!(details.sequence, 4);
}

#[test]
fn a_format_1_database_with_a_record_it_cannot_read_is_refused_and_left_in_format_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_of_fixture(dir.path());
    let mut key = b"zed".to_vec();
    key.push(0);
    key.extend_from_slice(&2u64.to_be_bytes());
    {
        let db = raw(&path);
        db.open_tree("userstate.events")
            .unwrap()
            .insert(&key, &[1u8, 0xff][..])
            .unwrap();
        db.flush().unwrap();
    }
    let err = SledRepository::open(&path).expect_err("an unreadable record");
    assert_eq!((err.kind(), err.id()), (ErrorKind::Internal, ids::CORRUPT));
    assert!(err.message().contains("user zed"), "{err}");
    assert!(err.message().contains("unchanged"), "{err}");
    let db = raw(&path);
    assert_eq!(version(&db), 1, "still format 1");
    assert!(
        !V2_TREES.iter().any(|tree| has_tree(&db, tree)),
        "nothing of format 2 is left"
    );
    let events = db.open_tree("userstate.events").unwrap();
    assert_eq!(events.len(), 346);
    assert_eq!(events.get(&key).unwrap().unwrap().as_ref(), &[1u8, 0xff]);
}

/// A crash before the switch leaves format 1 and half-written trees of
/// format 2; a crash after it leaves format 2 and the old trees. Either
/// way the next open finishes the job and reads back the same.
#[test]
fn an_upgrade_interrupted_on_either_side_of_the_switch_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let before_switch = copy_of_fixture(&dir.path().join("before"));
    {
        let db = raw(&before_switch);
        db.open_tree(V2_TREES[0])
            .unwrap()
            .insert("alice", &b"half-written"[..])
            .unwrap();
        db.open_tree(V2_TREES[1])
            .unwrap()
            .insert("stray", &b"half-written"[..])
            .unwrap();
        db.flush().unwrap();
    }
    reads_back(&before_switch);

    let after_switch = copy_of_fixture(&dir.path().join("after"));
    reads_back(&after_switch);
    {
        let db = raw(&after_switch);
        for tree in V1_TREES {
            db.open_tree(tree)
                .unwrap()
                .insert("left-over", &b"old"[..])
                .unwrap();
        }
        db.flush().unwrap();
    }
    reads_back(&after_switch);
    let db = raw(&after_switch);
    assert!(
        !V1_TREES.iter().any(|tree| has_tree(&db, tree)),
        "the old trees are gone"
    );
}
