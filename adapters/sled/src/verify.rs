//! Checking a whole database: every snapshot and event decoded, every
//! snapshot against the replay of its history, every index entry against
//! the users, the feed against the events (each once, each user's in
//! sequence order), and the events against the count of committed ones. sled
//! checks every page it reads against its checksum, so the walk also
//! reads back every page of the trees.

use userstate::storage::{check_user, Finding, Verification};
use userstate::{Event, Result, UserId, UserState};

use crate::layout::{self, Trees};
use crate::reader::guarded;
use crate::record::{decode_event, decode_user};

/// Everything, on the trees as they are now (run it while nothing writes,
/// or expect findings about users a command changed during the walk).
///
/// # Errors
/// Unavailable when sled cannot read its files; damage is reported in the
/// verification, not as an error.
pub(crate) fn everything(trees: &Trees) -> Result<Verification> {
    let mut verification = Verification::default();
    let mut found = |user: Option<&UserId>, problem: String| {
        verification.findings.push(Finding {
            user: user.cloned(),
            problem,
        });
    };
    let (mut users, mut existing, mut events) = (0u64, 0u64, 0u64);
    let mut snapshots = trees.snapshots.iter();
    loop {
        let entry = match guarded(|| snapshots.next().transpose()) {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => {
                found(
                    None,
                    format!("the snapshots cannot be read on: {}", e.message()),
                );
                break;
            }
        };
        users += 1;
        let id = match layout::user_of_snapshot_key(&entry.0) {
            Ok(id) => id,
            Err(e) => {
                found(None, e.message().to_owned());
                continue;
            }
        };
        let user = match decode_user(&id, &entry.1) {
            Ok(user) => user,
            Err(e) => {
                found(Some(&id), e.message().to_owned());
                continue;
            }
        };
        match history_of(trees, &id) {
            Ok(history) => {
                events += history.len() as u64;
                if let Some(problem) = check_user(&user, &history) {
                    found(Some(&id), problem);
                }
            }
            Err(e) => found(Some(&id), e.message().to_owned()),
        }
        let in_index = |tree: &sled::Tree, key: Vec<u8>| guarded(|| tree.contains_key(key));
        let state_key = layout::org_state_key(&user.org_id, user.state, &id);
        if !in_index(&trees.by_org_state, state_key).unwrap_or(false) {
            found(
                Some(&id),
                "the index by state does not name the user".to_owned(),
            );
        }
        if user.state != UserState::Deleted {
            existing += 1;
            let org_key = layout::org_key(&user.org_id, &id);
            if !in_index(&trees.by_org, org_key).unwrap_or(false) {
                found(
                    Some(&id),
                    "the index of existing users does not name the user".to_owned(),
                );
            }
        }
    }
    let counts = [
        ("events", guarded(|| Ok(trees.events.len())), events),
        (
            "entries of the index by state",
            guarded(|| Ok(trees.by_org_state.len())),
            users,
        ),
        (
            "entries of the index of existing users",
            guarded(|| Ok(trees.by_org.len())),
            existing,
        ),
    ];
    for (what, stored, expected) in counts {
        match stored {
            Ok(stored) if stored as u64 == expected => {}
            Ok(stored) => found(
                None,
                format!("{stored} {what} are stored, but the users account for {expected}"),
            ),
            Err(e) => found(
                None,
                format!("the {what} cannot be counted: {}", e.message()),
            ),
        }
    }
    feed(trees, events, &mut found);
    match layout::committed(&trees.db) {
        Ok(committed) if committed == events => {}
        Ok(committed) => found(
            None,
            format!("{events} events are stored, but {committed} were committed"),
        ),
        Err(e) => found(None, e.message().to_owned()),
    }
    verification.users = users;
    verification.events = events;
    Ok(verification)
}

/// Every event of `id`, decoded and checked against its key.
fn history_of(trees: &Trees, id: &UserId) -> Result<Vec<Event>> {
    let range = layout::event_key(id, 0)..layout::events_end(id);
    let entries = guarded(|| trees.events.range(range).collect::<sled::Result<Vec<_>>>())?;
    entries
        .iter()
        .map(|(key, bytes)| {
            let (_, sequence) = layout::event_of_key(key)?;
            decode_event(id, sequence, bytes)
        })
        .collect()
}

/// The feed names every stored event exactly once, each an event that is
/// stored, and each user's in sequence order: with as many entries as
/// events, that is every event once.
fn feed(trees: &Trees, events: u64, found: &mut impl FnMut(Option<&UserId>, String)) {
    let mut last_sequence: std::collections::HashMap<UserId, u64> = Default::default();
    let mut entries = 0u64;
    let mut walk = trees.feed.iter();
    loop {
        let (key, event_key) = match guarded(|| walk.next().transpose()) {
            Ok(Some(entry)) => entry,
            Ok(None) => break,
            Err(e) => {
                found(None, format!("the feed cannot be read on: {}", e.message()));
                return;
            }
        };
        entries += 1;
        let named = layout::position_of_key(&key)
            .and_then(|position| Ok((position, layout::event_of_key(&event_key)?)));
        let (position, (id, sequence)) = match named {
            Ok(named) => named,
            Err(e) => {
                found(None, format!("a feed entry is unreadable: {}", e.message()));
                continue;
            }
        };
        if !guarded(|| trees.events.contains_key(&event_key)).unwrap_or(false) {
            found(
                Some(&id),
                format!("the feed names event {sequence} at {position}, which is not stored"),
            );
        }
        let previous = last_sequence.insert(id.clone(), sequence);
        if previous.is_some_and(|previous| previous >= sequence) {
            found(
                Some(&id),
                format!("the feed holds event {sequence} at {position} out of sequence order"),
            );
        }
    }
    if entries != events {
        found(
            None,
            format!("the feed holds {entries} entries, but {events} events are stored"),
        );
    }
}
