//! The record decoders, for the fuzz targets only (feature `fuzzing`):
//! whatever the columns hold, decoding answers a value or a typed error,
//! never panics.

use userstate::{Event, Result, User, UserId};

use crate::record::{self, EventRow, UserRow};

/// Decodes the columns of a `users` row of format 2 or 3 (the checksum
/// aside: a fuzzer's rows would all fail it).
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
    record::decode_user_fields(&user_row(id, org, state, sequence, snapshot))
}

/// Decodes a `users` row of format 1, as the upgrade does.
///
/// # Errors
/// Corrupt when the row does not hold a valid format-1 snapshot.
pub fn decode_user_v1(
    id: &str,
    org: &str,
    state: &str,
    sequence: i64,
    snapshot: &str,
) -> Result<User> {
    record::v1::decode_user(&user_row(id, org, state, sequence, snapshot))
}

/// Encodes a user as its `users` row's snapshot, so fuzzers can check that
/// decoding round-trips.
///
/// # Errors
/// Internal if the user cannot be encoded.
pub fn encode_user(user: &User) -> Result<String> {
    record::encode_user(user).map(|row| row.snapshot)
}

/// Decodes the columns of an `events` row of `user`, of format 2 or 3
/// (the checksum aside).
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
    record::decode_event_fields(
        user,
        &EventRow {
            user_id: user.as_str().to_owned(),
            sequence,
            org: org.to_owned(),
            event_type: event_type.to_owned(),
            created_at,
            creator: creator.to_owned(),
            payload: payload.to_owned(),
            checksum: 0,
            position: 0,
        },
    )
}

fn user_row(id: &str, org: &str, state: &str, sequence: i64, snapshot: &str) -> UserRow {
    UserRow {
        id: id.to_owned(),
        org: org.to_owned(),
        state: state.to_owned(),
        sequence,
        snapshot: snapshot.to_owned(),
        checksum: 0,
    }
}
