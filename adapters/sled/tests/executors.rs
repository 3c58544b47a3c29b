//! The repository needs no particular runtime: it works under a tokio
//! multi-thread runtime, a tokio current-thread runtime and
//! `futures::executor::block_on`, and never blocks the executor's threads.

use std::sync::Arc;

use userstate::{
    Caller, InMemoryAuthorizer, InitialState, LockRequest, OrgId, Permission, UserId, UserService,
    UserState,
};
use userstate_sled::SledRepository;

fn service() -> (UserService, Caller) {
    let acme = OrgId::new("acme").unwrap();
    let admin = Caller::new(UserId::new("admin").unwrap(), acme.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
    let repo = SledRepository::open_temporary().unwrap();
    (UserService::new(Arc::new(repo), Arc::new(grants)), admin)
}

/// Creates, locks and unlocks `count` users concurrently on whatever
/// executor polls the returned future.
async fn lifecycle(service: &UserService, admin: &Caller, count: usize) {
    let runs = (0..count).map(|i| async move {
        let id = UserId::new(format!("user-{i}")).unwrap();
        service
            .create(admin, &id, InitialState::Active)
            .await
            .unwrap();
        service.lock(admin, &id, LockRequest::new()).await.unwrap();
        let details = service.unlock(admin, &id, None).await.unwrap();
        assert_eq!(details.sequence, 3);
        assert_eq!(
            service.get(admin, &id).await.unwrap().state,
            UserState::Active
        );
    });
    futures::future::join_all(runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_under_tokio_multi_thread() {
    let (service, admin) = service();
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let (service, admin) = (service.clone(), admin.clone());
            tokio::spawn(async move {
                let id = UserId::new(format!("task-{t}")).unwrap();
                service
                    .create(&admin, &id, InitialState::Active)
                    .await
                    .unwrap();
                service.lock(&admin, &id, LockRequest::new()).await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    lifecycle(&service, &admin, 16).await;
}

#[tokio::test(flavor = "current_thread")]
async fn works_under_tokio_current_thread() {
    // One executor thread: a blocking repository would serialise (or
    // deadlock) these; here they overlap on the repository's own threads.
    let (service, admin) = service();
    lifecycle(&service, &admin, 16).await;
}

#[test]
fn works_under_futures_block_on() {
    let (service, admin) = service();
    futures::executor::block_on(lifecycle(&service, &admin, 16));
}
