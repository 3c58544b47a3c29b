//! How users and events are written to and read back from their rows.
//!
//! Values are JSON text made by `serde_json` from the core types:
//! - the core types already define their serde form (camelCase names, times
//!   as RFC 3339 text), the same one the wire shapes use, so the adapter adds
//!   no second format to keep in step;
//! - a row stays readable in the `sqlite3` shell and queryable with SQLite's
//!   JSON functions, which matters when someone audits a history by hand;
//! - fields the core adds later with `#[serde(default)]` decode from old
//!   rows without a migration;
//! - decoding a few hundred bytes of JSON costs microseconds, small beside
//!   a commit's fsync.
//!
//! An event is stored as columns (type, time in milliseconds, creator,
//! organisation) plus its JSON payload, so histories can be filtered in SQL.
//! Anything that does not decode, or disagrees with the columns it is stored
//! with, is [`Error::corrupt`] for that one user.

use userstate::{Commit, Error, Event, EventPayload, OrgId, Result, Timestamp, User, UserId};

/// A commit as the writer binds it: plain values, validated and encoded on
/// the caller's thread so the single writer thread only runs SQL.
#[derive(Debug)]
pub(crate) struct EncodedCommit {
    pub(crate) user_id: String,
    pub(crate) org: String,
    pub(crate) state: &'static str,
    /// 0: the user must not exist yet.
    pub(crate) expected_sequence: i64,
    /// The snapshot's sequence: the last event's.
    pub(crate) sequence: i64,
    pub(crate) snapshot: String,
    pub(crate) events: Vec<EncodedEvent>,
}

/// One event's row of the `events` table, without the user id.
#[derive(Debug)]
pub(crate) struct EncodedEvent {
    pub(crate) sequence: i64,
    pub(crate) org: String,
    pub(crate) event_type: &'static str,
    pub(crate) created_at: i64,
    pub(crate) creator: String,
    pub(crate) payload: String,
}

/// Checks that `commit` is what the contract describes (events numbered
/// from `expected_sequence + 1`, all of the snapshot's user, the snapshot at
/// the last one) and encodes it.
///
/// # Errors
/// Internal for a malformed commit: a bug in the caller, refused before
/// anything is written.
pub(crate) fn encode_commit(commit: &Commit) -> Result<EncodedCommit> {
    commit.validate()?;
    let snapshot = &commit.snapshot;
    let mut events = Vec::with_capacity(commit.events.len());
    for event in &commit.events {
        events.push(EncodedEvent {
            sequence: to_column(event.sequence)?,
            org: event.org_id.as_str().to_owned(),
            event_type: event.event_type(),
            created_at: event.created_at.unix_millis(),
            creator: event.creator.as_str().to_owned(),
            payload: to_json(&event.payload)?,
        });
    }
    Ok(EncodedCommit {
        user_id: snapshot.id.as_str().to_owned(),
        org: snapshot.org_id.as_str().to_owned(),
        state: snapshot.state.as_str(),
        expected_sequence: to_column(commit.expected_sequence)?,
        sequence: to_column(snapshot.sequence)?,
        snapshot: to_json(snapshot)?,
        events,
    })
}

/// A `users` row as read.
#[derive(Debug)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) org: String,
    pub(crate) state: String,
    pub(crate) sequence: i64,
    pub(crate) snapshot: String,
}

/// The user a row stores.
///
/// # Errors
/// Corrupt when the snapshot does not decode or disagrees with its columns.
pub(crate) fn decode_user(row: &UserRow) -> Result<User> {
    let user: User = serde_json::from_str(&row.snapshot).map_err(|e| {
        Error::corrupt(format!(
            "the stored snapshot of user {} cannot be decoded",
            row.id
        ))
        .with_source(e)
    })?;
    let agrees = user.id.as_str() == row.id
        && user.org_id.as_str() == row.org
        && user.state.as_str() == row.state
        && i64::try_from(user.sequence).ok() == Some(row.sequence);
    if !agrees {
        return Err(Error::corrupt(format!(
            "the stored snapshot of user {} disagrees with its row",
            row.id
        )));
    }
    Ok(user)
}

/// An `events` row as read, without the user id.
#[derive(Debug)]
pub(crate) struct EventRow {
    pub(crate) sequence: i64,
    pub(crate) org: String,
    pub(crate) event_type: String,
    pub(crate) created_at: i64,
    pub(crate) creator: String,
    pub(crate) payload: String,
}

/// The event a row of `user`'s history stores.
///
/// # Errors
/// Corrupt when a column is out of range or the payload does not decode or
/// is not of the row's type.
pub(crate) fn decode_event(user: &UserId, row: &EventRow) -> Result<Event> {
    let corrupt = || {
        Error::corrupt(format!(
            "stored event {} of user {user} cannot be decoded",
            row.sequence
        ))
    };
    let payload: EventPayload =
        serde_json::from_str(&row.payload).map_err(|e| corrupt().with_source(e))?;
    if payload.event_type() != row.event_type {
        return Err(corrupt());
    }
    let sequence = u64::try_from(row.sequence)
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(corrupt)?;
    Ok(Event {
        user_id: user.clone(),
        org_id: OrgId::new(row.org.as_str()).map_err(|e| corrupt().with_source(e))?,
        sequence,
        created_at: Timestamp::from_unix_millis(row.created_at)
            .map_err(|e| corrupt().with_source(e))?,
        creator: UserId::new(row.creator.as_str()).map_err(|e| corrupt().with_source(e))?,
        payload,
    })
}

/// A sequence or position as SQLite's signed 64-bit integer.
///
/// # Errors
/// Internal above `i64::MAX`, which no history reaches.
pub(crate) fn to_column(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::internal("sequence beyond SQLite's integer range"))
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::internal("a value cannot be encoded as JSON").with_source(e))
}

#[cfg(test)]
mod tests {
    use userstate::{ids, InitialState};

    use super::*;

    fn added(user: &str, sequence: u64) -> Event {
        Event {
            user_id: UserId::new(user).unwrap(),
            org_id: OrgId::new("acme").unwrap(),
            sequence,
            created_at: Timestamp::UNIX_EPOCH,
            creator: UserId::new("admin").unwrap(),
            payload: EventPayload::Added {
                state: InitialState::Active,
            },
        }
    }

    fn commit(expected_sequence: u64, events: Vec<Event>) -> Commit {
        let snapshot = User::replay(&[added("alice", 1)]).unwrap();
        Commit {
            expected_sequence,
            events,
            snapshot,
        }
    }

    #[test]
    fn a_well_formed_commit_round_trips() {
        let encoded = encode_commit(&commit(0, vec![added("alice", 1)])).unwrap();
        let row = UserRow {
            id: encoded.user_id.clone(),
            org: encoded.org.clone(),
            state: encoded.state.to_owned(),
            sequence: encoded.sequence,
            snapshot: encoded.snapshot.clone(),
        };
        assert_eq!(decode_user(&row).unwrap(), commit(0, vec![]).snapshot);
        let event = &encoded.events[0];
        let row = EventRow {
            sequence: event.sequence,
            org: event.org.clone(),
            event_type: event.event_type.to_owned(),
            created_at: event.created_at,
            creator: event.creator.clone(),
            payload: event.payload.clone(),
        };
        let alice = UserId::new("alice").unwrap();
        assert_eq!(decode_event(&alice, &row).unwrap(), added("alice", 1));

        let mislabelled = EventRow {
            event_type: "user.locked".to_owned(),
            ..row
        };
        assert_eq!(
            decode_event(&alice, &mislabelled).unwrap_err().id(),
            ids::CORRUPT
        );
    }

    #[test]
    fn malformed_commits_are_refused_before_the_writer() {
        for malformed in [
            commit(0, vec![]),
            commit(0, vec![added("alice", 2)]),
            commit(1, vec![added("alice", 1)]),
            commit(0, vec![added("bob", 1)]),
            commit(0, vec![added("alice", 1), added("alice", 2)]),
        ] {
            let err = encode_commit(&malformed).unwrap_err();
            assert_eq!(err.id(), ids::INTERNAL, "{malformed:?}");
        }
    }
}
