//! Group commit: concurrent durable callers share flush-and-sync rounds.

mod common;

use std::sync::{Arc, Barrier};

use userstate::{
    Caller, InMemoryAuthorizer, InitialState, LockRequest, OrgId, Permission, UserId,
    UserRepository, UserService,
};

const CALLERS: usize = 64;

#[test]
fn sixty_four_concurrent_durable_callers_share_syncs() {
    sixty_four_callers_share_syncs(&common::OnDisk::new());
}

/// With inline writes, a caller syncs on its own thread only when no sync
/// runs; the others still queue and share one.
#[test]
fn sixty_four_concurrent_inline_callers_share_syncs() {
    sixty_four_callers_share_syncs(&common::OnDisk::with(|o| o.inline_writes(true)));
}

/// The thread a decision ran on, through `update`.
fn decided_on(repo: &userstate_sled::SledRepository, id: &UserId) -> std::thread::ThreadId {
    let (seen, ran_on) = std::sync::mpsc::channel();
    let decide: userstate::Decide = Box::new(move |stored| {
        let _ = seen.send(std::thread::current().id());
        Ok(userstate::Decision::Unchanged(stored.expect("created")))
    });
    futures::executor::block_on(repo.update(id, decide)).expect("update");
    ran_on.recv().expect("the decision ran")
}

/// With inline writes a command runs on its caller's thread; by default on
/// a worker, never on the caller's.
#[test]
fn inline_writes_run_on_the_callers_thread() {
    for inline in [false, true] {
        let disk = common::OnDisk::with(|o| o.inline_writes(inline));
        let acme = OrgId::new("acme").unwrap();
        let admin = Caller::new(UserId::new("admin").unwrap(), acme.clone());
        let grants = InMemoryAuthorizer::new();
        grants.grant(&admin.user_id, &acme, [Permission::Write]);
        let service = UserService::new(Arc::new(disk.repo.clone()), Arc::new(grants));
        let id = UserId::new("lone").unwrap();
        futures::executor::block_on(service.create(&admin, &id, InitialState::Active)).unwrap();
        let here = std::thread::current().id();
        assert_eq!(
            decided_on(&disk.repo, &id) == here,
            inline,
            "inline {inline}"
        );
        assert_eq!(
            disk.repo.sync_stats().commits,
            1,
            "the create waited for a sync"
        );
    }
}

fn sixty_four_callers_share_syncs(disk: &common::OnDisk) {
    let repo = disk.repo.clone();
    let acme = OrgId::new("acme").unwrap();
    let admin = Caller::new(UserId::new("admin").unwrap(), acme.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
    let service = UserService::new(Arc::new(repo.clone()), Arc::new(grants));

    let barrier = Arc::new(Barrier::new(CALLERS));
    let threads: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (service, admin, barrier) = (service.clone(), admin.clone(), barrier.clone());
            std::thread::spawn(move || {
                let id = UserId::new(format!("caller-{i}")).unwrap();
                barrier.wait();
                futures::executor::block_on(async {
                    service
                        .create(&admin, &id, InitialState::Active)
                        .await
                        .unwrap();
                    service.lock(&admin, &id, LockRequest::new()).await.unwrap();
                    service.unlock(&admin, &id).await.unwrap();
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }

    let stats = repo.sync_stats();
    let commands = (CALLERS * 3) as u64;
    assert_eq!(
        stats.commits, commands,
        "every durable command waited for a sync"
    );
    assert!(
        stats.syncs < stats.commits,
        "concurrent callers shared no sync: {stats:?}"
    );
    eprintln!(
        "{} commands, {} syncs ({:.1} commands per sync)",
        stats.commits,
        stats.syncs,
        stats.commits_per_sync()
    );
    futures::executor::block_on(async {
        for i in 0..CALLERS {
            let id = UserId::new(format!("caller-{i}")).unwrap();
            assert_eq!(repo.load(&id).await.unwrap().unwrap().sequence, 3);
        }
    });
}

#[test]
fn one_caller_at_a_time_gets_one_sync_per_command() {
    let disk = common::OnDisk::new();
    let repo: &dyn UserRepository = &disk.repo;
    let acme = OrgId::new("acme").unwrap();
    futures::executor::block_on(async {
        for i in 0..5u64 {
            let id = UserId::new(format!("u{i}")).unwrap();
            let event = userstate::Event {
                user_id: id.clone(),
                org_id: acme.clone(),
                sequence: 1,
                created_at: userstate::Timestamp::from_unix_millis(0).unwrap(),
                creator: id.clone(),
                payload: userstate::EventPayload::Added {
                    state: InitialState::Active,
                },
            };
            let snapshot = userstate::User::replay([&event]).unwrap();
            repo.append(userstate::Commit {
                expected_sequence: 0,
                events: vec![event],
                snapshot,
            })
            .await
            .unwrap();
        }
    });
    let stats = disk.repo.sync_stats();
    assert_eq!((stats.commits, stats.syncs), (5, 5));
}

#[test]
fn relaxed_commands_wait_for_a_sync_only_past_the_unsynced_bound() {
    let repo = userstate_sled::SledOptions::temporary()
        .durability(userstate_sled::Durability::Relaxed)
        .max_unsynced_commands(5)
        .open()
        .unwrap();
    let acme = OrgId::new("acme").unwrap();
    let admin = Caller::new(UserId::new("admin").unwrap(), acme.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
    let service = UserService::new(Arc::new(repo.clone()), Arc::new(grants));
    futures::executor::block_on(async {
        for i in 0..5 {
            let id = UserId::new(format!("u{i}")).unwrap();
            service
                .create(&admin, &id, InitialState::Active)
                .await
                .unwrap();
        }
        assert_eq!(repo.sync_stats().syncs, 0, "within the bound: no sync");
        service
            .create(&admin, &UserId::new("u5").unwrap(), InitialState::Active)
            .await
            .unwrap();
        let stats = repo.sync_stats();
        assert_eq!((stats.commits, stats.syncs), (1, 1), "the sixth waited");
        // The sync covered all six: the count starts again.
        for i in 6..11 {
            let id = UserId::new(format!("u{i}")).unwrap();
            service
                .create(&admin, &id, InitialState::Active)
                .await
                .unwrap();
        }
        assert_eq!(repo.sync_stats().syncs, 1);
    });
}
