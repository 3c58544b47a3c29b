//! Concurrency tests: real OS threads, each driving the service with its own
//! `block_on`, so they race whatever runtime (or none) the adapter uses. The
//! async test functions only await the threads' answers, never block.

use std::sync::{Arc, Barrier};

use futures::channel::oneshot;
use futures::future::join_all;

use super::fixture::Fixture;
use crate::{
    ids, Command, Details, ErrorKind, EventPayload, LockRequest, LockoutPolicy, User, UserId,
    UserRepository, UserState,
};

/// Runs each job on its own thread and awaits all their results.
pub(crate) async fn on_threads<T: Send + 'static>(
    jobs: Vec<Box<dyn FnOnce() -> T + Send>>,
) -> Vec<T> {
    let receivers = jobs.into_iter().map(|job| {
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            let _ = tx.send(job());
        });
        rx
    });
    join_all(receivers)
        .await
        .into_iter()
        .map(|r| r.expect("a racing thread panicked"))
        .collect()
}

/// Two concurrent locks of one active user: exactly one succeeds, the other
/// gets `User is already locked`, and `user.locked` is written once.
pub async fn concurrent_locks_one_wins(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    for round in 0..25 {
        let id = f
            .user_in_state(&format!("contended-{round}"), UserState::Active)
            .await;
        let barrier = Arc::new(Barrier::new(2));
        let jobs = (0..2)
            .map(|_| {
                let (service, caller, id, barrier) = (
                    f.service.clone(),
                    f.acme_admin.clone(),
                    id.clone(),
                    barrier.clone(),
                );
                Box::new(move || {
                    barrier.wait();
                    futures::executor::block_on(service.lock(&caller, &id, LockRequest::new()))
                }) as Box<dyn FnOnce() -> _ + Send>
            })
            .collect();
        let results: Vec<crate::Result<Details>> = on_threads(jobs).await;
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        let loss = results
            .iter()
            .find_map(|r| r.as_ref().err())
            .expect("one loss");
        assert_eq!(loss.id(), ids::ALREADY_LOCKED, "round {round}");
        let history = f.all_events(&id).await;
        assert_eq!(history.len(), 2, "round {round}: one user.locked");
        f.assert_snapshot_is_replay(&id).await;
    }
}

const USERS: usize = 4;
const THREADS: usize = 8;
const OPS_PER_THREAD: usize = 40;

fn command_for(n: u64) -> Command {
    match n % 4 {
        0 => Command::Lock(LockRequest::new()),
        1 => Command::Unlock { reason: None },
        2 => Command::Deactivate { reason: None },
        _ => Command::Reactivate { reason: None },
    }
}

fn event_type_of(command: &Command) -> &'static str {
    match command {
        Command::Lock(_) => "user.locked",
        Command::Unlock { .. } => "user.unlocked",
        Command::Deactivate { .. } => "user.deactivated",
        Command::Reactivate { .. } => "user.reactivated",
        _ => "other",
    }
}

/// The command that would have produced `payload` (for re-checking a history).
fn command_of(payload: &EventPayload) -> Option<Command> {
    Some(match payload {
        EventPayload::Locked { .. } => Command::Lock(LockRequest::new()),
        EventPayload::Unlocked { .. } => Command::Unlock { reason: None },
        EventPayload::Deactivated { .. } => Command::Deactivate { reason: None },
        EventPayload::Reactivated { .. } => Command::Reactivate { reason: None },
        _ => return None,
    })
}

/// Many threads issue lock, unlock, deactivate and reactivate on the same few
/// users. Afterwards, for every user: each success got a distinct sequence
/// and the event at that sequence is of its command; there is one event per
/// success (plus creation) with no gaps; every event was a legal transition
/// from the state before it; the snapshot equals the replay. Failures are
/// only FailedPrecondition or Aborted.
pub async fn concurrent_commands_keep_history_exact(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let mut users = Vec::new();
    for i in 0..USERS {
        users.push(
            f.user_in_state(&format!("raced-{i}"), UserState::Active)
                .await,
        );
    }
    let users = Arc::new(users);
    let jobs = (0..THREADS as u64)
        .map(|thread| {
            let (service, caller, users) = (f.service.clone(), f.acme_admin.clone(), users.clone());
            Box::new(move || {
                let mut rng = thread.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut outcomes = Vec::new();
                for _ in 0..OPS_PER_THREAD {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let id = users[(rng % USERS as u64) as usize].clone();
                    let command = command_for(rng >> 8);
                    let result =
                        futures::executor::block_on(service.execute(&caller, &id, command.clone()));
                    outcomes.push((id, command, result));
                }
                outcomes
            }) as Box<dyn FnOnce() -> _ + Send>
        })
        .collect();
    type Outcome = (UserId, Command, crate::Result<Details>);
    let outcomes: Vec<Outcome> = on_threads(jobs).await.into_iter().flatten().collect();

    for id in users.iter() {
        let history = f.all_events(id).await;
        let mut sequences: Vec<u64> = Vec::new();
        for (_, command, result) in outcomes.iter().filter(|(u, _, _)| u == id) {
            match result {
                Ok(details) => {
                    let event = history
                        .get(details.sequence as usize - 1)
                        .expect("acknowledged sequence is stored");
                    assert_eq!(event.event_type(), event_type_of(command));
                    sequences.push(details.sequence);
                }
                Err(e) => assert!(
                    matches!(e.kind(), ErrorKind::FailedPrecondition | ErrorKind::Aborted),
                    "unexpected error {e:?}"
                ),
            }
        }
        sequences.sort_unstable();
        let expected: Vec<u64> = (2..=history.len() as u64).collect();
        assert_eq!(
            sequences, expected,
            "one event per success for {id}, no gaps"
        );

        let mut state: Option<User> = None;
        for event in &history {
            if let Some(command) = command_of(&event.payload) {
                command
                    .decide(state.as_ref(), event.created_at, &LockoutPolicy::default())
                    .unwrap_or_else(|e| panic!("illegal {} in history: {e}", event.event_type()));
            }
            state = Some(User::apply(state, event));
        }
        f.assert_snapshot_is_replay(id).await;
    }
}
