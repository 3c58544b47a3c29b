//! The adapter needs no particular async runtime: the same workload runs on
//! tokio's multi-threaded and current-thread runtimes and on
//! `futures::executor::block_on`, many commands in flight at once.

mod common;

use std::sync::Arc;

use common::{relaxed, Cast, TempRepo};
use futures::future::join_all;
use userstate::{ids, LockRequest, UserRepository, UserState};
use userstate_sqlite::SqliteRepository;

const USERS: usize = 24;

/// Creates, locks and unlocks distinct users concurrently, then races two
/// locks of one user; checks every answer and the stored histories.
async fn workload(repo: Arc<dyn UserRepository>, spawn: impl Fn(Cast, usize) -> Task) {
    let cast = Cast::new(repo.clone());
    let tasks: Vec<Task> = (0..USERS).map(|i| spawn(cast.clone(), i)).collect();
    for result in join_all(tasks).await {
        assert_eq!(result, Ok(3));
    }
    let contended = common::user("executor-0");
    let s = &cast.service;
    let locks = join_all((0..2).map(|_| s.lock(&cast.admin, &contended, LockRequest::new()))).await;
    let wins = locks.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{locks:?}");
    let loss = locks.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert_eq!(loss.id(), ids::ALREADY_LOCKED);
    assert_eq!(
        s.get(&cast.admin, &contended).await.unwrap().state,
        UserState::Locked
    );
    for i in 0..USERS {
        let id = common::user(&format!("executor-{i}"));
        common::assert_exact_history(&*repo, &id).await;
    }
}

type Task = futures::future::BoxFuture<'static, userstate::Result<u64>>;

/// One user's life: create, lock, unlock; the final sequence.
async fn lifecycle(cast: Cast, i: usize) -> userstate::Result<u64> {
    let id = common::user(&format!("executor-{i}"));
    let (s, admin) = (&cast.service, &cast.admin);
    s.create(admin, &id, userstate::InitialState::Active)
        .await?;
    s.lock(admin, &id, LockRequest::new()).await?;
    Ok(s.unlock(admin, &id, None).await?.sequence)
}

fn file_repo() -> Arc<dyn UserRepository> {
    Arc::new(TempRepo::open(&relaxed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_multi_thread_runtime() {
    for repo in [file_repo(), common::temporary()] {
        workload(repo, |cast, i| {
            let handle = tokio::spawn(lifecycle(cast, i));
            Box::pin(async move { handle.await.expect("task") })
        })
        .await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn tokio_current_thread_runtime() {
    for repo in [file_repo(), common::temporary()] {
        workload(repo, |cast, i| {
            let handle = tokio::spawn(lifecycle(cast, i));
            Box::pin(async move { handle.await.expect("task") })
        })
        .await;
    }
}

#[test]
fn futures_block_on() {
    for repo in [file_repo(), common::temporary()] {
        futures::executor::block_on(workload(repo, |cast, i| Box::pin(lifecycle(cast, i))));
    }
}

/// Dropping the last handle inside a runtime waits for the worker threads
/// without needing the runtime, and the file can be opened again at once.
#[tokio::test(flavor = "current_thread")]
async fn drop_and_reopen_inside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = common::db_path(dir.path());
    for round in 0..3 {
        let repo = relaxed().open(&path).unwrap();
        let cast = Cast::new(Arc::new(repo.clone()));
        cast.create_users(&format!("round-{round}"), 2).await;
        drop(cast);
        drop(repo);
    }
    let repo = SqliteRepository::open(&path).unwrap();
    let all = repo
        .list(
            &userstate::OrgId::new("acme").unwrap(),
            &userstate::ListQuery::all(),
        )
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6);
}
