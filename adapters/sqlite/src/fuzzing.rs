//! The row decoders, for the fuzz targets only (feature `fuzzing`): whatever
//! the columns hold, decoding answers a value or a typed error, never panics.

use userstate::{Event, Result, User, UserId};

use crate::codec::{self, EventRow, UserRow};

/// Decodes a `users` row.
///
/// # Errors
/// Corrupt when the row does not hold a valid snapshot.
pub fn decode_user(
    id: &str,
    org: &str,
    state: &str,
    sequence: i64,
    snapshot: &str,
) -> Result<User> {
    codec::decode_user(&UserRow {
        id: id.to_owned(),
        org: org.to_owned(),
        state: state.to_owned(),
        sequence,
        snapshot: snapshot.to_owned(),
    })
}

/// Decodes an `events` row of `user`.
///
/// # Errors
/// Corrupt when the row does not hold a valid event.
pub fn decode_event(
    user: &UserId,
    sequence: i64,
    org: &str,
    event_type: &str,
    created_at: i64,
    creator: &str,
    payload: &str,
) -> Result<Event> {
    codec::decode_event(
        user,
        &EventRow {
            sequence,
            org: org.to_owned(),
            event_type: event_type.to_owned(),
            created_at,
            creator: creator.to_owned(),
            payload: payload.to_owned(),
        },
    )
}
