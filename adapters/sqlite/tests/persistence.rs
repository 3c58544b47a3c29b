//! The file on disk: what a reopen finds, and the files and values that are
//! refused with a typed error instead of a panic or a silent rewrite.

mod common;

use std::sync::Arc;

use common::{all_events, db_path, relaxed, user, Cast, TempRepo};
use futures::executor::block_on;
use rusqlite::Connection;
use userstate::storage::Scope;
use userstate::{
    ids, ErrorKind, HistoryQuery, ListQuery, LockRequest, Reason, UserRepository, UserState,
};
use userstate_sqlite::{Durability, SqliteOptions, SqliteRepository, SCHEMA_VERSION};

fn raw(path: &std::path::Path) -> Connection {
    Connection::open(path).expect("raw connection")
}

fn assert_refused(result: userstate::Result<SqliteRepository>, mentions: &str) {
    let err = result.expect_err("the file must be refused");
    assert_eq!(err.kind(), ErrorKind::Internal, "{err:?}");
    assert_eq!(err.id(), ids::CORRUPT, "{err:?}");
    assert!(err.message().contains(mentions), "{err:?}");
}

#[test]
fn reopen_finds_every_user_event_and_list_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let (before_users, before_histories, before_locked) = block_on(async {
        let repo: Arc<dyn UserRepository> = SqliteRepository::open(&path).unwrap().into();
        let cast = Cast::new(repo.clone());
        let (s, admin) = (&cast.service, &cast.admin);
        let ids = cast.create_users("kept", 6).await;
        let reason = Reason::new("kept across reopen").unwrap();
        s.lock(admin, &ids[0], LockRequest::new().reason(reason))
            .await
            .unwrap();
        s.lock(admin, &ids[1], LockRequest::new()).await.unwrap();
        s.unlock(admin, &ids[1], None).await.unwrap();
        s.deactivate(admin, &ids[2], None).await.unwrap();
        s.remove(admin, &ids[3], None).await.unwrap();
        let mut users = Vec::new();
        let mut histories = Vec::new();
        for id in &ids {
            users.push(repo.load(id, &Scope::Instance).await.unwrap());
            histories.push(all_events(&*repo, id).await);
        }
        let locked = repo
            .list(&cast.acme, &ListQuery::in_state(UserState::Locked))
            .await
            .unwrap();
        (users, histories, locked)
    });
    // The repository above is dropped: its threads finished and closed the file.

    for durability in [Durability::Durable, Durability::Relaxed] {
        let repo = SqliteOptions::new()
            .durability(durability)
            .open(&path)
            .unwrap();
        assert_eq!(repo.stats(), userstate_sqlite::WriterStats::default());
        block_on(async {
            for (i, (user, history)) in before_users.iter().zip(&before_histories).enumerate() {
                let id = common::user(&format!("kept-{i}"));
                assert_eq!(&repo.load(&id, &Scope::Instance).await.unwrap(), user);
                assert_eq!(&all_events(&repo, &id).await, history);
                common::assert_exact_history(&repo, &id).await;
            }
            let locked = repo
                .list(
                    &before_locked.items[0].org_id,
                    &ListQuery::in_state(UserState::Locked),
                )
                .await
                .unwrap();
            assert_eq!(locked, before_locked);
            let all = repo
                .list(&before_locked.items[0].org_id, &ListQuery::all())
                .await
                .unwrap();
            assert_eq!(all.items.len(), 5, "the removed user is not listed");
        });
    }
}

#[test]
fn a_newer_schema_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    drop(SqliteRepository::open(&path).unwrap());
    raw(&path).pragma_update(None, "user_version", 999).unwrap();

    assert_refused(SqliteRepository::open(&path), "999");
    let version: i64 = raw(&path)
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 999, "the file was not rewritten");
}

#[test]
fn the_current_schema_version_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    drop(SqliteRepository::open(&path).unwrap());
    let conn = raw(&path);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let text = "this is a text file, not a database\n".repeat(200);
    std::fs::write(&path, &text).unwrap();

    assert_refused(SqliteRepository::open(&path), "not a SQLite database");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_refused(
        SqliteOptions::new()
            .durability(Durability::Relaxed)
            .open(&path),
        "not a SQLite database",
    );
}

#[test]
fn a_database_of_another_application_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    raw(&path)
        .execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT)")
        .unwrap();
    let before = std::fs::read(&path).unwrap();

    assert_refused(SqliteRepository::open(&path), "another application");
    assert_eq!(std::fs::read(&path).unwrap(), before, "not rewritten");
    let mode: String = raw(&path)
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "not switched to WAL");
}

#[test]
fn a_missing_directory_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let err = SqliteRepository::open(dir.path().join("no/such/dir/users.db")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
}

/// Overwrites stored values with raw SQL, as a disk fault or a careless hand
/// would, and checks each is an Internal error for its user only.
#[test]
fn undecodable_values_are_internal_errors_for_their_user_only() {
    let temp = TempRepo::open(&relaxed());
    let repo: Arc<dyn UserRepository> = Arc::new(temp.repo.clone());
    let cast = Cast::new(repo.clone());
    let (s, admin) = (&cast.service, &cast.admin);
    let ids = block_on(async {
        let ids = cast.create_users("value", 5).await;
        s.lock(admin, &ids[0], LockRequest::new()).await.unwrap();
        ids
    });
    let conn = raw(&temp.path());
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let tamper = |sql: &str, id: &str| {
        assert_eq!(conn.execute(sql, [id]).unwrap(), 1, "{sql}");
    };
    // value-0: a snapshot that is not JSON.
    tamper(
        "UPDATE users SET snapshot = 'not json' WHERE id = ?1",
        "value-0",
    );
    // value-1: a snapshot that is not UTF-8.
    tamper(
        "UPDATE users SET snapshot = CAST(x'FFFE00' AS TEXT) WHERE id = ?1",
        "value-1",
    );
    // value-2: a snapshot that disagrees with its row.
    tamper("UPDATE users SET sequence = 7 WHERE id = ?1", "value-2");
    // value-3: an event payload that is not JSON.
    tamper(
        "UPDATE events SET payload = '{' WHERE user_id = ?1 AND sequence = 1",
        "value-3",
    );
    // value-4 stays intact.

    block_on(async {
        for id in &ids[..3] {
            let err = repo
                .load(id, &Scope::Instance)
                .await
                .expect_err("undecodable snapshot");
            assert_eq!(err.kind(), ErrorKind::Internal, "{id}: {err:?}");
            assert_eq!(err.id(), ids::CORRUPT, "{id}: {err:?}");
            let err = s.get(admin, id).await.expect_err("through the service");
            assert_eq!(err.id(), ids::CORRUPT);
            let err = s
                .unlock(admin, id, None)
                .await
                .expect_err("commands refuse too");
            assert_eq!(err.id(), ids::CORRUPT);
        }
        let err = repo
            .history(&ids[3], &Scope::Instance, HistoryQuery::default())
            .await
            .expect_err("undecodable event");
        assert_eq!(err.id(), ids::CORRUPT, "{err:?}");
        assert_eq!(
            repo.load(&ids[3], &Scope::Instance)
                .await
                .unwrap()
                .unwrap()
                .sequence,
            1
        );

        // Everyone else reads and writes as before.
        let intact = &ids[4];
        assert_eq!(s.get(admin, intact).await.unwrap().state, UserState::Active);
        s.lock(admin, intact, LockRequest::new()).await.unwrap();
        common::assert_exact_history(&*repo, intact).await;
        let fresh = user("fresh");
        s.create(admin, &fresh, userstate::InitialState::Active)
            .await
            .unwrap();
        // A list page holding an undecodable user fails as a whole; pages
        // that do not hold one are served.
        let page = repo
            .list(&cast.acme, &ListQuery::all())
            .await
            .expect_err("a page with an undecodable user");
        assert_eq!(page.id(), ids::CORRUPT);
        let after = ListQuery {
            after: Some(userstate::Cursor::after_user(&ids[2])),
            ..ListQuery::all()
        };
        let page = repo.list(&cast.acme, &after).await.unwrap();
        let listed: Vec<_> = page.items.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(listed, ["value-3", "value-4"]);
    });
}

/// `sync` checkpoints a relaxed database: its commands are in the database
/// file itself afterwards, and a reopen finds them.
#[test]
fn sync_makes_relaxed_commands_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    let repo = relaxed().open(&path).unwrap();
    let cast = Cast::new(Arc::new(repo.clone()));
    let ids = block_on(cast.create_users("synced", 3));
    block_on(repo.sync()).expect("a checkpoint");
    // The database file alone, without its write-ahead log, holds them.
    let alone = dir.path().join("alone.db");
    std::fs::copy(&path, &alone).unwrap();
    let in_file: i64 = raw(&alone)
        .query_row("SELECT count(*) FROM users", [], |row| row.get(0))
        .unwrap();
    assert_eq!(in_file, 3);
    drop((cast, repo));
    let reopened = relaxed().open(&path).unwrap();
    block_on(async {
        for id in &ids {
            assert!(reopened.load(id, &Scope::Instance).await.unwrap().is_some());
        }
    });
}

#[test]
fn the_feed_resumes_from_a_checkpoint_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    block_on(
        userstate::conformance::feed::feed_resumes_from_a_checkpoint_after_reopening(
            &path,
            |path| Arc::new(SqliteOptions::new().open(path).expect("open")),
        ),
    );
}

#[test]
fn the_lockout_policy_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(dir.path());
    block_on(userstate::conformance::policy_survives_reopening(
        &path,
        |path| Arc::new(SqliteOptions::new().open(path).expect("open")),
    ));
}
