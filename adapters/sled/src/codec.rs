//! Stored record encoding: one format byte, then the core type in postcard.
//!
//! [postcard](https://docs.rs/postcard) is compact (varints, no field
//! names), has a stable wire format documented in its specification and is
//! well maintained, which is what a record that outlives the process needs.
//! It is not self-describing: fields are written in declaration order and
//! enum variants by their index, so a core change that reorders fields or
//! variants of [`User`] or [`Event`] needs a new record format byte. Values
//! are validated on the way in (ids, times), so stored bytes can never
//! produce a value the core would refuse.

use serde::de::DeserializeOwned;
use serde::Serialize;
use userstate::{Error, Event, Result, User};

/// The record format this build writes; the only one it reads.
pub(crate) const RECORD_FORMAT_V1: u8 = 1;

/// A snapshot as stored.
///
/// # Errors
/// Internal if postcard refuses the value (it does not for the core's types).
pub(crate) fn encode_user(user: &User) -> Result<Vec<u8>> {
    encode(user)
}

/// An event as stored.
///
/// # Errors
/// As [`encode_user`].
pub(crate) fn encode_event(event: &Event) -> Result<Vec<u8>> {
    encode(event)
}

/// A stored snapshot.
///
/// # Errors
/// Internal (`USER-CORRUPT`) for an empty record, an unknown format byte,
/// bytes postcard cannot decode, invalid values or trailing bytes.
pub(crate) fn decode_user(bytes: &[u8]) -> Result<User> {
    decode(bytes, "user")
}

/// A stored event.
///
/// # Errors
/// As [`decode_user`].
pub(crate) fn decode_event(bytes: &[u8]) -> Result<Event> {
    decode(bytes, "event")
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_extend(value, vec![RECORD_FORMAT_V1])
        .map_err(|e| Error::internal("record cannot be encoded").with_source(e))
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    let (format, body) = bytes
        .split_first()
        .ok_or_else(|| Error::corrupt(format!("stored {what} record is empty")))?;
    if *format != RECORD_FORMAT_V1 {
        return Err(Error::corrupt(format!(
            "stored {what} record has unknown format {format} (this build reads format {RECORD_FORMAT_V1})"
        )));
    }
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| {
        Error::corrupt(format!("stored {what} record cannot be decoded")).with_source(e)
    })?;
    if !rest.is_empty() {
        return Err(Error::corrupt(format!(
            "stored {what} record has trailing bytes"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use userstate::{
        EventPayload, Factor, InitialState, LockCause, LockReason, OrgId, Timestamp, UnlockCause,
        UserId, UserState,
    };

    fn event(sequence: u64, payload: EventPayload) -> Event {
        Event {
            user_id: UserId::new("alice").unwrap(),
            org_id: OrgId::new("acme").unwrap(),
            sequence,
            created_at: Timestamp::from_unix_millis(1_718_261_077_424 + sequence as i64).unwrap(),
            creator: UserId::new("admin").unwrap(),
            payload,
        }
    }

    fn every_payload() -> Vec<EventPayload> {
        let until = Timestamp::from_unix_millis(253_402_300_799_999).unwrap();
        vec![
            EventPayload::Added {
                state: InitialState::Initial,
            },
            EventPayload::Added {
                state: InitialState::Active,
            },
            EventPayload::Initialized,
            EventPayload::CheckFailed {
                factor: Factor::Password,
            },
            EventPayload::CheckFailed {
                factor: Factor::Email,
            },
            EventPayload::Locked {
                reason: Some(LockReason::new("too many\nfailed logins é").unwrap()),
                expires_at: Some(until),
                cause: LockCause::Lockout,
            },
            EventPayload::Unlocked {
                cause: UnlockCause::Expired,
            },
            EventPayload::CheckFailed {
                factor: Factor::Sms,
            },
            EventPayload::CheckSucceeded {
                factor: Factor::Totp,
            },
            EventPayload::PasswordChanged,
            EventPayload::Locked {
                reason: None,
                expires_at: None,
                cause: LockCause::Command,
            },
            EventPayload::Unlocked {
                cause: UnlockCause::Command,
            },
            EventPayload::Deactivated,
            EventPayload::Reactivated,
            EventPayload::Removed,
        ]
    }

    #[test]
    fn events_and_snapshots_round_trip() {
        let mut user: Option<User> = None;
        let mut saw_lockout_state = false;
        for (payload, sequence) in every_payload().into_iter().zip(1..) {
            let e = event(sequence, payload);
            let bytes = encode_event(&e).unwrap();
            assert_eq!(bytes[0], RECORD_FORMAT_V1);
            assert_eq!(decode_event(&bytes).unwrap(), e);
            let next = User::apply(user, &e);
            let bytes = encode_user(&next).unwrap();
            assert_eq!(decode_user(&bytes).unwrap(), next);
            saw_lockout_state |= next.lockouts > 0 && next.failed_checks.password > 0;
            user = Some(next);
        }
        let user = user.unwrap();
        assert_eq!(user.state, UserState::Deleted);
        assert!(saw_lockout_state, "counters and lockouts were encoded");
    }

    #[test]
    fn times_before_the_epoch_round_trip() {
        let mut e = event(1, EventPayload::Reactivated);
        e.created_at = Timestamp::from_unix_millis(-62_167_219_200_000).unwrap();
        assert_eq!(decode_event(&encode_event(&e).unwrap()).unwrap(), e);
    }

    #[test]
    fn records_are_compact() {
        let e = event(3, EventPayload::Reactivated);
        // Format byte, three short strings with their lengths, varint
        // sequence and time, variant index.
        assert!(encode_event(&e).unwrap().len() < 32);
    }

    #[test]
    fn unknown_format_empty_and_garbage_are_corrupt() {
        let e = event(1, EventPayload::Initialized);
        let mut bytes = encode_event(&e).unwrap();
        let mut bad_version = bytes.clone();
        bad_version[0] = 2;
        let mut trailing = bytes.clone();
        trailing.push(0);
        bytes.truncate(bytes.len() - 1);
        for bad in [
            &b""[..],
            &bad_version,
            &trailing,
            &bytes,
            &[1, 0xff, 0xff, 0xff],
        ] {
            let err = decode_event(bad).unwrap_err();
            assert_eq!(err.kind(), userstate::ErrorKind::Internal, "{bad:?}");
            assert_eq!(err.id(), userstate::ids::CORRUPT);
        }
        let err = decode_event(&bad_version).unwrap_err();
        assert!(err.message().contains("unknown format 2"), "{err}");
    }

    #[test]
    fn stored_ids_are_validated() {
        // Format 1, user id "" (length 0): valid postcard, invalid id.
        let mut bytes = vec![RECORD_FORMAT_V1, 0];
        bytes.extend_from_slice(&encode_user_tail());
        let err = decode_user(&bytes).unwrap_err();
        assert_eq!(err.id(), userstate::ids::CORRUPT);
    }

    /// The bytes of a user after its id, taken from a real record.
    fn encode_user_tail() -> Vec<u8> {
        let e = event(1, EventPayload::Initialized);
        let user = User::apply(None, &e);
        let bytes = encode_user(&user).unwrap();
        // Skip the format byte, the id's length (5) and "alice".
        bytes[1 + 1 + 5..].to_vec()
    }
}
