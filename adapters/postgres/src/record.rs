//! What a row holds: columns for what the indexes and lists need, and the
//! rest as the core's JSON record format ([`userstate::storage::json`]),
//! the one SQLite stores too, so a row reads the same in `psql` as in the
//! `sqlite3` shell.
//!
//! ```text
//! users   id | org | state | sequence | snapshot (JSON: the user but its id)
//! events  user_id | sequence | org | event_type | created_at (ms) | creator | payload (JSON) | position
//! ```

use tokio_postgres::Row;
use userstate::storage::json;
use userstate::{Error, Event, FeedEvent, OrgId, Result, StoredPolicy, Timestamp, User, UserId};

/// A `users` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) org: String,
    pub(crate) state: String,
    pub(crate) sequence: i64,
    pub(crate) snapshot: String,
}

impl UserRow {
    /// The row a `SELECT id, org, state, sequence, snapshot` returned.
    pub(crate) fn read(row: &Row) -> std::result::Result<Self, tokio_postgres::Error> {
        Ok(UserRow {
            id: row.try_get(0)?,
            org: row.try_get(1)?,
            state: row.try_get(2)?,
            sequence: row.try_get(3)?,
            snapshot: row.try_get(4)?,
        })
    }
}

/// An `events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventRow {
    pub(crate) user_id: String,
    pub(crate) sequence: i64,
    pub(crate) org: String,
    pub(crate) event_type: String,
    pub(crate) created_at: i64,
    pub(crate) creator: String,
    pub(crate) payload: String,
    pub(crate) position: i64,
}

impl EventRow {
    /// The row a `SELECT` of the event columns, in table order, returned.
    pub(crate) fn read(row: &Row) -> std::result::Result<Self, tokio_postgres::Error> {
        Ok(EventRow {
            user_id: row.try_get(0)?,
            sequence: row.try_get(1)?,
            org: row.try_get(2)?,
            event_type: row.try_get(3)?,
            created_at: row.try_get(4)?,
            creator: row.try_get(5)?,
            payload: row.try_get(6)?,
            position: row.try_get(7)?,
        })
    }
}

/// The `users` row of `user`.
///
/// # Errors
/// Internal if the sequence is beyond PostgreSQL's `bigint`.
pub(crate) fn encode_user(user: &User) -> Result<UserRow> {
    Ok(UserRow {
        id: user.id.as_str().to_owned(),
        org: user.org_id.as_str().to_owned(),
        state: json::state_name(user.state).to_owned(),
        sequence: to_column(user.sequence)?,
        snapshot: json::encode_snapshot(user)?,
    })
}

/// The user a `users` row stores.
///
/// # Errors
/// Corrupt, naming the user, when the snapshot does not decode or
/// disagrees with the row's columns.
pub(crate) fn decode_user(row: &UserRow) -> Result<User> {
    let user = json::decode_snapshot(&row.id, &row.snapshot)?;
    let agrees = user.org_id.as_str() == row.org
        && json::state_name(user.state) == row.state
        && i64::try_from(user.sequence).ok() == Some(row.sequence);
    if !agrees {
        return Err(Error::corrupt(format!(
            "the stored snapshot of user {} disagrees with its row",
            row.id
        )));
    }
    Ok(user)
}

/// The organisation a damaged `users` row may belong to, besides its
/// column: the copy in its snapshot, if that still decodes.
pub(crate) fn snapshot_org(row: &UserRow) -> Option<OrgId> {
    json::snapshot_org(&row.snapshot)
}

/// The `events` row of `event` at feed `position`.
///
/// # Errors
/// Internal if the sequence or position is beyond `bigint`.
pub(crate) fn encode_event(event: &Event, position: u64) -> Result<EventRow> {
    let (event_type, payload) = json::encode_payload(&event.payload)?;
    Ok(EventRow {
        user_id: event.user_id.as_str().to_owned(),
        sequence: to_column(event.sequence)?,
        org: event.org_id.as_str().to_owned(),
        event_type: event_type.to_owned(),
        created_at: event.created_at.unix_millis(),
        creator: event.creator.as_str().to_owned(),
        payload,
        position: to_column(position)?,
    })
}

/// The event a row of `user`'s history stores.
///
/// # Errors
/// Corrupt, naming the user, when the row is of another user, a column is
/// out of range, or the type and payload do not decode.
pub(crate) fn decode_event(user: &UserId, row: &EventRow) -> Result<Event> {
    let corrupt = |e: Error| {
        Error::corrupt(format!(
            "stored event {} of user {user} cannot be decoded: {}",
            row.sequence,
            e.message()
        ))
        .with_source(e)
    };
    if row.user_id != user.as_str() {
        return Err(Error::corrupt(format!(
            "a stored event read for user {user} is of another user"
        )));
    }
    Ok(Event {
        user_id: user.clone(),
        org_id: OrgId::from_stored(row.org.as_str()).map_err(corrupt)?,
        sequence: from_sequence(row.sequence)
            .ok_or_else(|| corrupt(Error::corrupt("a sequence below 1")))?,
        created_at: Timestamp::from_unix_millis(row.created_at).map_err(corrupt)?,
        creator: UserId::from_stored(row.creator.as_str()).map_err(corrupt)?,
        payload: json::decode_payload(&row.event_type, &row.payload).map_err(corrupt)?,
    })
}

/// The feed's event a row stores.
///
/// # Errors
/// As [`decode_event`], and Corrupt for a user id or position that is not
/// valid.
pub(crate) fn decode_feed_event(row: &EventRow) -> Result<FeedEvent> {
    let user = UserId::from_stored(row.user_id.as_str()).map_err(|e| {
        Error::corrupt(format!(
            "a stored event at position {} names no valid user: {}",
            row.position,
            e.message()
        ))
    })?;
    let position = u64::try_from(row.position)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            Error::corrupt(format!(
                "stored event {} of user {user} has no valid feed position",
                row.sequence
            ))
        })?;
    Ok(FeedEvent {
        position,
        event: decode_event(&user, row)?,
    })
}

/// The `policies` row key of `org`: the empty text for the instance
/// default (organisation ids are never empty).
pub(crate) fn policy_key(org: Option<&OrgId>) -> &str {
    org.map_or("", OrgId::as_str)
}

/// The policy a `policies` row holds.
///
/// # Errors
/// Corrupt, naming whose policy it is, when the record does not decode.
pub(crate) fn decode_policy(key: &str, record: &str) -> Result<StoredPolicy> {
    json::decode_policy(record).map_err(|e| {
        let whose = if key.is_empty() {
            "the instance default lockout policy".to_owned()
        } else {
            format!("the lockout policy of {key}")
        };
        Error::corrupt(format!("{whose} {}", e.message())).with_source(e)
    })
}

/// A sequence or position as `bigint`.
///
/// # Errors
/// Internal above `i64::MAX`, which no history reaches.
pub(crate) fn to_column(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::internal("a value beyond PostgreSQL's bigint"))
}

/// A stored sequence, which is never below 1.
fn from_sequence(value: i64) -> Option<u64> {
    u64::try_from(value).ok().filter(|s| *s > 0)
}
