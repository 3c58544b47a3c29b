//! The record decoders and key parsers, for the fuzz targets only (feature
//! `fuzzing`): whatever the bytes, decoding answers a value or a typed error,
//! never panics.

use userstate::{Event, Result, User};

/// Decodes a stored snapshot record.
///
/// # Errors
/// Corrupt for anything but a valid record.
pub fn decode_user(bytes: &[u8]) -> Result<User> {
    crate::codec::decode_user(bytes)
}

/// Decodes a stored event record.
///
/// # Errors
/// Corrupt for anything but a valid record.
pub fn decode_event(bytes: &[u8]) -> Result<Event> {
    crate::codec::decode_event(bytes)
}

/// Encodes a snapshot, so fuzzers can check that decoding round-trips.
///
/// # Errors
/// Internal if the value cannot be encoded.
pub fn encode_user(user: &User) -> Result<Vec<u8>> {
    crate::codec::encode_user(user)
}
