//! The change feed's classic trap on PostgreSQL, pinned step by step: a
//! number taken at insert but visible at commit lets a reader pass an event
//! whose transaction commits later. Here transaction A (one handle) has
//! taken its positions and holds the feed lock while it decides; B (another
//! handle, as another instance would) wants to write; a reader reads and
//! checkpoints; A commits; the reader's next read returns A's event, then
//! B's. B cannot commit ahead of A: it waits for the lock A holds to its
//! commit, which is what keeps positions in commit order.

mod common;

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use futures::executor::block_on;
use userstate::storage::{Decision, Scope, Update};
use userstate::{
    Event, EventPayload, InitialState, OrgId, Timestamp, User, UserId, UserRepository,
};
use userstate_postgres::testing;
use userstate_postgres::PostgresOptions;

fn added(id: &str) -> Event {
    Event {
        user_id: UserId::new(id).unwrap(),
        org_id: OrgId::new("acme").unwrap(),
        sequence: 1,
        created_at: Timestamp::from_unix_millis(1_718_261_077_424).unwrap(),
        creator: UserId::new("admin").unwrap(),
        payload: EventPayload::Added {
            state: InitialState::Active,
        },
    }
}

/// Creates `id`, deciding only once `gate` opens (`None`: at once).
fn create(
    repo: &Arc<dyn UserRepository>,
    id: &str,
    gate: Option<mpsc::Receiver<()>>,
    deciding: Option<mpsc::Sender<()>>,
) -> thread::JoinHandle<User> {
    let (repo, id) = (repo.clone(), id.to_owned());
    thread::spawn(move || {
        let event = added(&id);
        let update = Update::new(
            event.user_id.clone(),
            Scope::Instance,
            Box::new(move |stored| {
                if let Some(deciding) = deciding {
                    deciding.send(()).unwrap();
                }
                if let Some(gate) = gate {
                    gate.recv().unwrap();
                }
                assert!(stored.is_none());
                Ok(Decision::Write(userstate::storage::Commit::new(
                    None,
                    vec![event],
                )?))
            }),
        );
        block_on(repo.update(update)).expect("the write commits")
    })
}

/// Backends of this database waiting for a lock: B behind A's feed lock.
fn waiting_for_a_lock(connection: &str) -> i64 {
    let count = testing::query(
        connection,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .unwrap();
    count.and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn an_event_committed_after_a_checkpoint_is_read_after_it() {
    let Some(db) = testing::database() else {
        return;
    };
    let a: Arc<dyn UserRepository> = PostgresOptions::new(db.connection_string())
        .open()
        .unwrap()
        .into();
    let b: Arc<dyn UserRepository> = PostgresOptions::new(db.connection_string())
        .open()
        .unwrap()
        .into();
    let reader: Arc<dyn UserRepository> = PostgresOptions::new(db.connection_string())
        .open()
        .unwrap()
        .into();

    // A takes the lock and its position, and holds them while it decides.
    let (open_a, gate_a) = mpsc::channel();
    let (a_deciding, a_is_deciding) = mpsc::channel();
    let first = create(&a, "written-by-a", Some(gate_a), Some(a_deciding));
    a_is_deciding.recv().unwrap();

    // B wants to write now; it waits behind A's lock.
    let second = create(&b, "written-by-b", None, None);
    while waiting_for_a_lock(db.connection_string()) < 1 {
        thread::yield_now();
    }

    // The reader sees neither, and checkpoints where it is.
    let seen = block_on(reader.feed(0, 100)).unwrap();
    assert!(seen.is_empty(), "{seen:?}");
    let checkpoint = 0;

    // A commits, then B.
    open_a.send(()).unwrap();
    first.join().unwrap();
    second.join().unwrap();

    let next = block_on(reader.feed(checkpoint, 100)).unwrap();
    let order: Vec<(&str, u64)> = next
        .iter()
        .map(|e| (e.event.user_id.as_str(), e.position))
        .collect();
    assert_eq!(order, [("written-by-a", 1), ("written-by-b", 2)]);
}
