//! Group commit on sled: the commands queued while the writer works share
//! one batch and, when durable, one sync. The tests stall the writer inside
//! a batch with a decision that waits for them, so the next batch queues
//! behind it; they wait for the queue to fill, never for a time.

mod common;

use std::sync::Arc;
use std::thread;

use futures::executor::block_on;
use userstate::conformance::group::{decided_on, Stall};
use userstate::storage::{self, Commit, Scope, Update};
use userstate::{
    Caller, Event, EventPayload, InMemoryAuthorizer, InitialState, LockRequest, OrgId, Permission,
    Timestamp, UserId, UserRepository, UserService,
};
use userstate_sled::SledRepository;

const CALLERS: usize = 64;

fn service(repo: &SledRepository) -> (UserService, Caller) {
    let acme = OrgId::new("acme").unwrap();
    let admin = Caller::new(UserId::new("admin").unwrap(), acme.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
    (
        UserService::new(Arc::new(repo.clone()), Arc::new(grants)),
        admin,
    )
}

fn wait_until_queued(repo: &SledRepository, queued: u64) {
    while repo.stats().queued < queued {
        thread::yield_now();
    }
}

/// 64 callers on threads of their own create a user each behind a stalled
/// writer: all 64 share the next batch (and, durable, its one sync); then
/// each locks and unlocks, and every command is stored.
fn sixty_four_callers_share_a_batch(repo: &SledRepository) {
    let (service, admin) = service(repo);
    let blocker = UserId::new("blocker").unwrap();
    block_on(service.create(&admin, &blocker, InitialState::Active)).unwrap();
    let before = repo.stats();
    let stall = Stall::hold(Arc::new(repo.clone()), &blocker);
    let threads: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (service, admin) = (service.clone(), admin.clone());
            thread::spawn(move || {
                let id = UserId::new(format!("caller-{i}")).unwrap();
                block_on(async {
                    service
                        .create(&admin, &id, InitialState::Active)
                        .await
                        .unwrap();
                    service.lock(&admin, &id, LockRequest::new()).await.unwrap();
                    service.unlock(&admin, &id, None).await.unwrap();
                });
            })
        })
        .collect();
    wait_until_queued(repo, CALLERS as u64);
    stall.release();
    for thread in threads {
        thread.join().unwrap();
    }
    let stats = repo.stats();
    assert_eq!(
        stats.commands - before.commands,
        1 + 3 * CALLERS as u64,
        "{stats:?}"
    );
    assert!(stats.largest_batch >= CALLERS as u64, "{stats:?}");
    block_on(async {
        for i in 0..CALLERS {
            let id = UserId::new(format!("caller-{i}")).unwrap();
            assert_eq!(
                repo.load(&id, &Scope::Instance)
                    .await
                    .unwrap()
                    .unwrap()
                    .sequence,
                3
            );
        }
    });
}

#[test]
fn sixty_four_durable_callers_share_a_batch() {
    sixty_four_callers_share_a_batch(&common::OnDisk::new().repo);
}

#[test]
fn sixty_four_inline_callers_share_a_batch() {
    sixty_four_callers_share_a_batch(&common::OnDisk::with(|o| o.inline_writes(true)).repo);
}

/// With inline writes a lone command runs on its caller's thread; by
/// default on the writer thread, never on the caller's.
#[test]
fn inline_writes_run_a_lone_command_on_the_callers_thread() {
    for inline in [false, true] {
        let disk = common::OnDisk::with(|o| o.inline_writes(inline));
        let (service, admin) = service(&disk.repo);
        let id = UserId::new("lone").unwrap();
        block_on(service.create(&admin, &id, InitialState::Active)).unwrap();
        let here = thread::current().id();
        assert_eq!(
            decided_on(&disk.repo, &id) == here,
            inline,
            "inline {inline}"
        );
    }
}

/// One caller at a time: a batch per command.
#[test]
fn one_caller_at_a_time_gets_one_batch_per_command() {
    let disk = common::OnDisk::new();
    let repo: &dyn UserRepository = &disk.repo;
    let acme = OrgId::new("acme").unwrap();
    block_on(async {
        for i in 0..5u64 {
            let id = UserId::new(format!("u{i}")).unwrap();
            let added = Event {
                user_id: id.clone(),
                org_id: acme.clone(),
                sequence: 1,
                created_at: Timestamp::from_unix_millis(0).unwrap(),
                creator: id.clone(),
                payload: EventPayload::Added {
                    state: InitialState::Active,
                },
            };
            let commit = Commit::new(None, vec![added]).unwrap();
            repo.update(Update::new(
                id.clone(),
                Scope::Instance,
                storage::append(commit),
            ))
            .await
            .unwrap();
        }
    });
    let stats = disk.repo.stats();
    assert_eq!(
        (stats.commands, stats.batches, stats.largest_batch),
        (5, 5, 1)
    );
}
