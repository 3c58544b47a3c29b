//! The record decoders, for the fuzz targets only (feature `fuzzing`):
//! whatever the bytes, decoding answers a value or a typed error, never
//! panics.

use userstate::{Event, Result, User, UserId};

use crate::record;

/// Decodes a snapshot record of format 2 stored under the key of `id`.
///
/// # Errors
/// Corrupt for anything but a valid record of `id`.
pub fn decode_user(id: &UserId, bytes: &[u8]) -> Result<User> {
    record::decode_user(id, bytes)
}

/// Decodes a snapshot record of format 1, as the upgrade does.
///
/// # Errors
/// Corrupt for anything but a valid format-1 record of `id`.
pub fn decode_user_v1(id: &UserId, bytes: &[u8]) -> Result<User> {
    record::v1::decode_user(id, bytes)
}

/// Decodes an event record of format 2 stored under the key of (`id`, `sequence`).
///
/// # Errors
/// Corrupt for anything but a valid record of that event.
pub fn decode_event(id: &UserId, sequence: u64, bytes: &[u8]) -> Result<Event> {
    record::decode_event(id, sequence, bytes)
}

/// Decodes an event record of format 1, as the upgrade does.
///
/// # Errors
/// Corrupt for anything but a valid format-1 record of that event.
pub fn decode_event_v1(id: &UserId, sequence: u64, bytes: &[u8]) -> Result<Event> {
    record::v1::decode_event(id, sequence, bytes)
}

/// Encodes a snapshot, so fuzzers can check that decoding round-trips.
///
/// # Errors
/// Internal if the value cannot be encoded.
pub fn encode_user(user: &User) -> Result<Vec<u8>> {
    record::encode_user(user)
}
