//! Fills a new database for `userstate migrate` and `userstate verify` to
//! be measured on: `--users` users of `acme` with `--events` events each
//! (created, then locked and unlocked in turn), written round by round so
//! that the feed interleaves every user's events, as a database that grew
//! over time does, and one batch of the copy holds a thousand users.
//!
//! ```text
//! cargo run --release -p userstate-benches --bin seed -- [--users 100000] [--events 5] [--by-user] SPEC
//! ```
//!
//! With `--by-user`, each user's events are written together instead, so
//! they stand side by side in the feed (the best case for a copy).

use std::process::ExitCode;
use std::time::Instant;

use futures::executor::block_on;
use userstate::storage::{self, Commit, Scope, Update};
use userstate::{
    Event, EventPayload, InitialState, LockCause, OrgId, Timestamp, UnlockCause, User, UserId,
};

/// Events written per commit.
const BATCH: usize = 2000;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("seed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let (mut users, mut events, mut spec, mut by_user) = (100_000usize, 5u64, None, false);
    let mut given = std::env::args().skip(1);
    while let Some(arg) = given.next() {
        let mut value = || given.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--users" => users = value()?.parse().map_err(|e| format!("--users: {e}"))?,
            "--events" => events = value()?.parse().map_err(|e| format!("--events: {e}"))?,
            "--by-user" => by_user = true,
            other if spec.is_none() && !other.starts_with("--") => spec = Some(other.to_owned()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let spec = spec.ok_or("name the database: sqlite:PATH, sled:PATH or postgres:...")?;
    let repo = userstate_backend::open(&spec)
        .map_err(|e| e.to_string())?
        .repository();
    let org = OrgId::new("acme").map_err(|e| e.to_string())?;
    let admin = UserId::new("admin").map_err(|e| e.to_string())?;
    let ids: Vec<UserId> = (0..users)
        .map(|n| UserId::new(format!("user-{n:08}")).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let t0 = Timestamp::from_unix_millis(1_718_261_077_424).map_err(|e| e.to_string())?;
    // Each round writes one event of each user, or, by user, all of them.
    let rounds: Vec<Vec<u64>> = if by_user {
        vec![(1..=events).collect()]
    } else {
        (1..=events).map(|sequence| vec![sequence]).collect()
    };
    let per_user = rounds.first().map_or(1, Vec::len).max(1);
    for round in &rounds {
        for chunk in ids.chunks((BATCH / per_user).max(1)) {
            let wanted: Vec<(&UserId, &Scope)> =
                chunk.iter().map(|id| (id, &Scope::Instance)).collect();
            let stored: Vec<Option<User>> =
                block_on(repo.load_many(&wanted)).map_err(|e| e.to_string())?;
            let updates = chunk
                .iter()
                .zip(stored)
                .map(|(id, before)| {
                    let events: Vec<Event> = round
                        .iter()
                        .map(|&sequence| event(id, &org, &admin, t0, sequence))
                        .collect();
                    let commit = Commit::new(before, events)?;
                    Ok(Update::new(
                        id.clone(),
                        Scope::Instance,
                        storage::append(commit),
                    ))
                })
                .collect::<userstate::Result<Vec<_>>>()
                .map_err(|e| e.to_string())?;
            for outcome in block_on(repo.update_many(updates)) {
                outcome.map_err(|e| e.to_string())?;
            }
        }
    }
    println!(
        "seeded {users} users x {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Event `sequence` of `id`: created, then locked and unlocked in turn.
fn event(id: &UserId, org: &OrgId, admin: &UserId, t0: Timestamp, sequence: u64) -> Event {
    let payload = match sequence {
        1 => EventPayload::Added {
            state: InitialState::Active,
        },
        n if n % 2 == 0 => EventPayload::Locked {
            reason: None,
            expires_at: None,
            cause: LockCause::Command,
        },
        _ => EventPayload::Unlocked {
            cause: UnlockCause::Command,
            reason: None,
            resets_escalation: true,
        },
    };
    Event {
        user_id: id.clone(),
        org_id: org.clone(),
        sequence,
        created_at: t0.plus_millis(sequence as i64 * 1000),
        creator: admin.clone(),
        payload,
    }
}
