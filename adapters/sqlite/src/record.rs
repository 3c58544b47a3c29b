//! What a row holds. The columns and checksums are this adapter's own; the
//! JSON in them is the core's record format ([`json`]), which other
//! adapters that store JSON text share. The tests here pin its bytes, so a
//! change to the core cannot change what is on disk unnoticed.
//!
//! Record format 2 (schema version 2). A `users` row keeps the user's id,
//! organisation, state and sequence in columns (they key the indexes and the
//! lists) and the whole user but its id in `snapshot`, a JSON object; a
//! snapshot that disagrees with its columns is refused. An `events` row
//! keeps the type, time, creator and organisation in columns and the type's
//! own fields in `payload`, a JSON object (`{}` for types without fields).
//! Times are integer milliseconds since the Unix epoch; names are
//! lower-case words fixed by [`json`]. JSON keeps a row readable in the
//! `sqlite3` shell and queryable with SQLite's JSON functions, for whoever
//! audits a history by hand.
//!
//! Format 1 (release 0.1.0) stored the core types' own JSON; [`v1`] reads it
//! for the upgrade in [`crate::format`] and nowhere else.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use userstate::storage::json;
use userstate::{
    Error, Event, EventPayload, Factor, FailedChecks, InitialState, Lock, LockCause, OrgId, Reason,
    Result, StoredPolicy, Timestamp, UnlockCause, User, UserId, UserState,
};

pub(crate) use json::encode_payload;

/// A `users` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRow {
    pub(crate) id: String,
    pub(crate) org: String,
    pub(crate) state: String,
    pub(crate) sequence: i64,
    pub(crate) snapshot: String,
    /// [`user_checksum`] of the other columns (format 3; 0 before).
    pub(crate) checksum: i64,
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
    /// [`event_checksum`] of the other columns (format 3; 0 before).
    pub(crate) checksum: i64,
    /// Where the event is in the change feed (format 4; 0 before).
    pub(crate) position: i64,
}

/// The CRC-32 of a `users` row's other columns, each length-prefixed: any
/// flipped bit in the row, and any burst of up to 32, changes it.
pub(crate) fn user_checksum(row: &UserRow) -> i64 {
    let mut crc = crc32fast::Hasher::new();
    for text in [&row.id, &row.org, &row.state] {
        field(&mut crc, text.as_bytes());
    }
    field(&mut crc, &row.sequence.to_le_bytes());
    field(&mut crc, row.snapshot.as_bytes());
    i64::from(crc.finalize())
}

/// The CRC-32 of an `events` row's other columns, as [`user_checksum`].
pub(crate) fn event_checksum(row: &EventRow) -> i64 {
    let mut crc = crc32fast::Hasher::new();
    field(&mut crc, row.user_id.as_bytes());
    field(&mut crc, &row.sequence.to_le_bytes());
    for text in [&row.org, &row.event_type] {
        field(&mut crc, text.as_bytes());
    }
    field(&mut crc, &row.created_at.to_le_bytes());
    for text in [&row.creator, &row.payload] {
        field(&mut crc, text.as_bytes());
    }
    // Format 4 covers the feed position too; rows of format 3 had none.
    if row.position != 0 {
        field(&mut crc, &row.position.to_le_bytes());
    }
    i64::from(crc.finalize())
}

fn field(crc: &mut crc32fast::Hasher, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    crc.update(&len.to_le_bytes());
    crc.update(bytes);
}

/// The `users` row of `user`.
///
/// # Errors
/// Internal if a value is beyond SQLite's integer range or cannot be encoded.
pub(crate) fn encode_user(user: &User) -> Result<UserRow> {
    let mut row = UserRow {
        id: user.id.as_str().to_owned(),
        org: user.org_id.as_str().to_owned(),
        state: StateName::from(user.state).as_str().to_owned(),
        sequence: to_column(user.sequence)?,
        snapshot: json::encode_snapshot(user)?,
        checksum: 0,
    };
    row.checksum = user_checksum(&row);
    Ok(row)
}

/// The user a `users` row stores.
///
/// # Errors
/// Corrupt, naming the user, when the row's checksum does not match it, or
/// a column or the snapshot does not decode.
pub(crate) fn decode_user(row: &UserRow) -> Result<User> {
    if user_checksum(row) != row.checksum {
        return Err(Error::corrupt(format!(
            "the stored row of user {} does not match its checksum",
            row.id
        )));
    }
    decode_user_fields(row)
}

/// The organisation a damaged `users` row may belong to, besides its
/// column: the copy in its snapshot, if that still decodes.
pub(crate) fn snapshot_org(row: &UserRow) -> Option<OrgId> {
    json::snapshot_org(&row.snapshot)
}

/// [`decode_user`] without the checksum: for rows of a format without one,
/// which an upgrade checks before it writes their checksum.
///
/// # Errors
/// Corrupt when a column or the snapshot does not decode, or the snapshot
/// disagrees with the columns.
pub(crate) fn decode_user_fields(row: &UserRow) -> Result<User> {
    let user = json::decode_snapshot(&row.id, &row.snapshot)?;
    let agrees = user.org_id.as_str() == row.org
        && StateName::from(user.state).as_str() == row.state
        && i64::try_from(user.sequence).ok() == Some(row.sequence);
    if !agrees {
        return Err(Error::corrupt(format!(
            "the stored snapshot of user {} disagrees with its row",
            row.id
        )));
    }
    Ok(user)
}

/// The `events` row of `event` at feed `position` (0: none, as rows of
/// format 3 and the tests' pinned rows).
///
/// # Errors
/// Internal if the sequence or position is beyond SQLite's integer range.
pub(crate) fn encode_event_at(event: &Event, position: u64) -> Result<EventRow> {
    let mut row = encode_event(event)?;
    row.position = to_column(position)?;
    row.checksum = event_checksum(&row);
    Ok(row)
}

/// The `events` row of `event` without a feed position.
///
/// # Errors
/// Internal if the sequence is beyond SQLite's integer range.
pub(crate) fn encode_event(event: &Event) -> Result<EventRow> {
    let (event_type, payload) = encode_payload(&event.payload)?;
    let mut row = EventRow {
        user_id: event.user_id.as_str().to_owned(),
        sequence: to_column(event.sequence)?,
        org: event.org_id.as_str().to_owned(),
        event_type: event_type.to_owned(),
        created_at: event.created_at.unix_millis(),
        creator: event.creator.as_str().to_owned(),
        payload,
        checksum: 0,
        position: 0,
    };
    row.checksum = event_checksum(&row);
    Ok(row)
}

/// The event a row of `user`'s history stores.
///
/// # Errors
/// Corrupt, naming the user, when the row is of another user or does not
/// match its checksum, a column is out of range, the type is unknown, or
/// the payload does not hold exactly the type's fields.
pub(crate) fn decode_event(user: &UserId, row: &EventRow) -> Result<Event> {
    if row.user_id != user.as_str() || event_checksum(row) != row.checksum {
        return Err(Error::corrupt(format!(
            "stored event {} of user {user} does not match its checksum",
            row.sequence
        )));
    }
    decode_event_fields(user, row)
}

/// [`decode_event`] without the checksum, as [`decode_user_fields`].
///
/// # Errors
/// As [`decode_event`] but for the checksum.
pub(crate) fn decode_event_fields(user: &UserId, row: &EventRow) -> Result<Event> {
    let corrupt = |e: Error| {
        Error::corrupt(format!(
            "stored event {} of user {user} cannot be decoded: {}",
            row.sequence,
            e.message()
        ))
        .with_source(e)
    };
    let payload = json::decode_payload(&row.event_type, &row.payload).map_err(corrupt)?;
    Ok(Event {
        user_id: user.clone(),
        org_id: OrgId::from_stored(row.org.as_str()).map_err(corrupt)?,
        sequence: from_sequence(row.sequence)
            .ok_or_else(|| corrupt(Error::corrupt("a sequence below 1")))?,
        created_at: Timestamp::from_unix_millis(row.created_at).map_err(corrupt)?,
        creator: UserId::from_stored(row.creator.as_str()).map_err(corrupt)?,
        payload,
    })
}

/// A state as the `state` column stores it: the snapshot's word
/// ([`json::state_name`]), so that the two can be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StateName(UserState);

impl StateName {
    /// The word in the `state` column; `deleted` is also in the partial
    /// index `users_by_org`'s condition.
    pub(crate) fn as_str(self) -> &'static str {
        json::state_name(self.0)
    }
}

impl From<UserState> for StateName {
    fn from(state: UserState) -> Self {
        StateName(state)
    }
}

/// A sequence as SQLite's signed 64-bit integer.
///
/// # Errors
/// Internal above `i64::MAX`, which no history reaches.
pub(crate) fn to_column(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::internal("sequence beyond SQLite's integer range"))
}

/// A stored count, which is never negative.
///
/// # Errors
/// Corrupt below zero.
pub(crate) fn from_column(value: i64) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| Error::corrupt(format!("a stored count is negative ({value})")))
}

/// A stored sequence, which is never below 1.
fn from_sequence(value: i64) -> Option<u64> {
    u64::try_from(value).ok().filter(|s| *s > 0)
}

/// The `policies` row key of `org`: the empty text for the instance
/// default (organisation ids are never empty).
pub(crate) fn policy_key(org: Option<&OrgId>) -> &str {
    org.map_or("", OrgId::as_str)
}

/// The CRC-32 of a `policies` row's key and record.
pub(crate) fn policy_checksum(key: &str, record: &str) -> i64 {
    let mut crc = crc32fast::Hasher::new();
    field(&mut crc, key.as_bytes());
    field(&mut crc, record.as_bytes());
    i64::from(crc.finalize())
}

/// The record and checksum of `policy` under `key`.
///
/// # Errors
/// Internal if it cannot be encoded.
pub(crate) fn encode_policy(key: &str, policy: &StoredPolicy) -> Result<(String, i64)> {
    let record = json::encode_policy(policy)?;
    let checksum = policy_checksum(key, &record);
    Ok((record, checksum))
}

/// The policy a `policies` row holds.
///
/// # Errors
/// Corrupt when the checksum does not match or the record does not decode.
pub(crate) fn decode_policy(key: &str, record: &str, checksum: i64) -> Result<StoredPolicy> {
    let whose = if key.is_empty() {
        "the instance default lockout policy".to_owned()
    } else {
        format!("the lockout policy of {key}")
    };
    if policy_checksum(key, record) != checksum {
        return Err(Error::corrupt(format!(
            "{whose} does not match its checksum"
        )));
    }
    // The core's message says what is wrong, worded to follow whose it is.
    json::decode_policy(record).map_err(|e| Error::corrupt(format!("{whose} {}", e.message())))
}

/// Record format 1: the JSON that release 0.1.0 wrote, the core types'
/// serde form of that release (times as RFC 3339 text, ids and columns
/// repeated in the snapshot). Frozen: read only to upgrade a database.
pub(crate) mod v1 {
    use super::*;

    /// The user a format-1 `users` row stores.
    ///
    /// # Errors
    /// Corrupt when the snapshot does not decode or disagrees with its row.
    pub(crate) fn decode_user(row: &UserRow) -> Result<User> {
        let corrupt = |e: Error| {
            Error::corrupt(format!(
                "the format-1 snapshot of user {} cannot be decoded: {}",
                row.id,
                e.message()
            ))
            .with_source(e)
        };
        let stored: UserV1 = from_json(&row.snapshot).map_err(corrupt)?;
        let agrees = stored.id == row.id
            && stored.org_id == row.org
            && StateName::from(UserState::from(stored.state)).as_str() == row.state
            && i64::try_from(stored.sequence).ok() == Some(row.sequence);
        if !agrees {
            return Err(Error::corrupt(format!(
                "the format-1 snapshot of user {} disagrees with its row",
                row.id
            )));
        }
        let lock = stored
            .lock
            .map(|lock| -> Result<Lock> {
                Ok(Lock {
                    reason: lock.reason.map(Reason::new).transpose()?,
                    expires_at: lock
                        .expires_at
                        .as_deref()
                        .map(Timestamp::parse_rfc3339)
                        .transpose()?,
                    locked_at: Timestamp::parse_rfc3339(&lock.locked_at)?,
                    previous_state: lock.previous_state.into(),
                    cause: lock.cause.try_into()?,
                })
            })
            .transpose()
            .map_err(corrupt)?;
        let CountsV1 {
            password,
            totp,
            sms,
            email,
        } = stored.failed_checks;
        let time = |text: &str| Timestamp::parse_rfc3339(text).map_err(corrupt);
        Ok(User {
            id: UserId::from_stored(stored.id).map_err(corrupt)?,
            org_id: OrgId::from_stored(stored.org_id).map_err(corrupt)?,
            state: stored.state.into(),
            lock,
            sequence: stored.sequence,
            created_at: time(&stored.created_at)?,
            changed_at: time(&stored.changed_at)?,
            failed_checks: FailedChecks {
                password,
                totp,
                sms,
                email,
            },
            lockouts: stored.lockouts,
        })
    }

    /// The payload of a format-1 `events` row of type `event_type`.
    ///
    /// # Errors
    /// Corrupt when it does not decode or is not of that type.
    pub(crate) fn decode_payload(event_type: &str, payload: &str) -> Result<EventPayload> {
        let stored: PayloadV1 = from_json(payload)?;
        let time = |text: Option<String>| text.as_deref().map(Timestamp::parse_rfc3339).transpose();
        let decoded = match stored {
            PayloadV1::Added { state } => EventPayload::Added {
                state: initial_state(state)?,
            },
            PayloadV1::Initialized => EventPayload::Initialized,
            PayloadV1::Locked {
                reason,
                expires_at,
                cause,
            } => EventPayload::Locked {
                reason: reason.map(Reason::new).transpose()?,
                expires_at: time(expires_at)?,
                cause: cause.try_into()?,
            },
            PayloadV1::Unlocked { cause } => EventPayload::Unlocked {
                cause: cause.try_into()?,
                reason: None,
                // Unlocks written before kept the escalation.
                resets_escalation: false,
            },
            PayloadV1::Deactivated => EventPayload::Deactivated { reason: None },
            PayloadV1::Reactivated => EventPayload::Reactivated { reason: None },
            PayloadV1::Removed => EventPayload::Removed { reason: None },
            PayloadV1::CheckSucceeded { factor } => EventPayload::CheckSucceeded {
                factor: factor.into(),
            },
            PayloadV1::CheckFailed { factor } => EventPayload::CheckFailed {
                factor: factor.into(),
            },
            PayloadV1::PasswordChanged => EventPayload::PasswordChanged,
        };
        // The type column of format 1 repeats the payload's type, the same
        // names format 2 gives it.
        if json::encode_payload(&decoded)?.0 != event_type {
            return Err(Error::corrupt(
                "a format-1 payload is not of its row's type",
            ));
        }
        Ok(decoded)
    }

    /// The state a user is created in: only `active` or `initial`.
    fn initial_state(state: StateV1) -> Result<InitialState> {
        match state {
            StateV1::Active => Ok(InitialState::Active),
            StateV1::Initial => Ok(InitialState::Initial),
            _ => Err(Error::corrupt("a user added in a state it cannot start in")),
        }
    }

    fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
        serde_json::from_str(text)
            .map_err(|e| Error::corrupt("a stored record does not decode").with_source(e))
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct UserV1 {
        id: String,
        org_id: String,
        state: StateV1,
        lock: Option<LockV1>,
        sequence: u64,
        created_at: String,
        changed_at: String,
        #[serde(default)]
        failed_checks: CountsV1,
        #[serde(default)]
        lockouts: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct LockV1 {
        reason: Option<String>,
        expires_at: Option<String>,
        locked_at: String,
        previous_state: StateV1,
        #[serde(default = "command")]
        cause: CauseV1,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
    enum PayloadV1 {
        Added {
            state: StateV1,
        },
        Initialized,
        Locked {
            reason: Option<String>,
            expires_at: Option<String>,
            #[serde(default = "command")]
            cause: CauseV1,
        },
        Unlocked {
            #[serde(default = "command")]
            cause: CauseV1,
        },
        Deactivated,
        Reactivated,
        Removed,
        CheckSucceeded {
            factor: FactorV1,
        },
        CheckFailed {
            factor: FactorV1,
        },
        PasswordChanged,
    }

    fn command() -> CauseV1 {
        CauseV1::Command
    }

    // The names as format 1 wrote them, kept here rather than taken from
    // the core's current format so that they stay frozen with it.

    /// Failed checks per factor.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CountsV1 {
        #[serde(default)]
        password: u32,
        #[serde(default)]
        totp: u32,
        #[serde(default)]
        sms: u32,
        #[serde(default)]
        email: u32,
    }

    #[derive(Debug, Clone, Copy, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum StateV1 {
        Initial,
        Active,
        Locked,
        Inactive,
        Deleted,
    }

    impl From<StateV1> for UserState {
        fn from(state: StateV1) -> Self {
            match state {
                StateV1::Initial => UserState::Initial,
                StateV1::Active => UserState::Active,
                StateV1::Locked => UserState::Locked,
                StateV1::Inactive => UserState::Inactive,
                StateV1::Deleted => UserState::Deleted,
            }
        }
    }

    #[derive(Debug, Clone, Copy, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum CauseV1 {
        Command,
        Lockout,
        Expired,
    }

    impl TryFrom<CauseV1> for LockCause {
        type Error = Error;
        fn try_from(cause: CauseV1) -> Result<Self> {
            match cause {
                CauseV1::Command => Ok(LockCause::Command),
                CauseV1::Lockout => Ok(LockCause::Lockout),
                CauseV1::Expired => Err(Error::corrupt("a lock cannot be caused by an expiry")),
            }
        }
    }

    impl TryFrom<CauseV1> for UnlockCause {
        type Error = Error;
        fn try_from(cause: CauseV1) -> Result<Self> {
            match cause {
                CauseV1::Command => Ok(UnlockCause::Command),
                CauseV1::Expired => Ok(UnlockCause::Expired),
                CauseV1::Lockout => Err(Error::corrupt("an unlock cannot be caused by a lockout")),
            }
        }
    }

    #[derive(Debug, Clone, Copy, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum FactorV1 {
        Password,
        Totp,
        Sms,
        Email,
    }

    impl From<FactorV1> for Factor {
        fn from(factor: FactorV1) -> Self {
            match factor {
                FactorV1::Password => Factor::Password,
                FactorV1::Totp => Factor::Totp,
                FactorV1::Sms => Factor::Sms,
                FactorV1::Email => Factor::Email,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use userstate::ids;

    use super::*;

    const T: i64 = 1_718_261_077_424;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_unix_millis(millis).unwrap()
    }

    fn user_id(id: &str) -> UserId {
        UserId::from_stored(id).unwrap()
    }

    /// A user with every field set.
    fn locked_user() -> User {
        User {
            id: user_id("bob"),
            org_id: OrgId::from_stored("acme").unwrap(),
            state: UserState::Locked,
            lock: Some(Lock {
                reason: Some(Reason::new("left the company").unwrap()),
                expires_at: Some(at(T + 60_000)),
                locked_at: at(T + 1_099),
                previous_state: UserState::Initial,
                cause: LockCause::Lockout,
            }),
            sequence: 9,
            created_at: at(T),
            changed_at: at(T + 1_099),
            failed_checks: FailedChecks {
                password: 3,
                totp: 0,
                sms: 2,
                email: 1,
            },
            lockouts: 2,
        }
    }

    fn plain_user() -> User {
        User {
            id: user_id("alice"),
            org_id: OrgId::from_stored("acme").unwrap(),
            state: UserState::Active,
            lock: None,
            sequence: 1,
            created_at: at(T),
            changed_at: at(T),
            failed_checks: FailedChecks::default(),
            lockouts: 0,
        }
    }

    /// The bytes of format 3, pinned: a change here is a new format.
    #[test]
    fn user_records_of_format_3_are_pinned() {
        let row = encode_user(&locked_user()).unwrap();
        assert_eq!(
            (
                row.id.as_str(),
                row.org.as_str(),
                row.state.as_str(),
                row.sequence
            ),
            ("bob", "acme", "locked", 9)
        );
        assert_eq!(
            row.snapshot,
            r#"{"org":"acme","state":"locked","sequence":9,"createdAt":1718261077424,"changedAt":1718261078523,"lock":{"lockedAt":1718261078523,"previousState":"initial","cause":"lockout","reason":"left the company","expiresAt":1718261137424},"failedChecks":{"password":3,"sms":2,"email":1},"lockouts":2}"#
        );
        // CRC-32 of the length-prefixed columns, as Python's zlib.crc32 computes it.
        assert_eq!(row.checksum, 3_995_853_419);
        assert_eq!(decode_user(&row).unwrap(), locked_user());

        let row = encode_user(&plain_user()).unwrap();
        assert_eq!(
            row.snapshot,
            r#"{"org":"acme","state":"active","sequence":1,"createdAt":1718261077424,"changedAt":1718261077424}"#
        );
        assert_eq!(decode_user(&row).unwrap(), plain_user());
    }

    /// Every payload of format 3, pinned (as of format 2, which had no checksum).
    #[test]
    fn event_records_of_format_3_are_pinned() {
        let cases = [
            (
                EventPayload::Added {
                    state: InitialState::Initial,
                },
                "user.added",
                r#"{"state":"initial"}"#,
            ),
            (EventPayload::Initialized, "user.initialized", "{}"),
            (
                EventPayload::Locked {
                    reason: Some(Reason::new("phishing — «é»").unwrap()),
                    expires_at: Some(at(T + 1)),
                    cause: LockCause::Command,
                },
                "user.locked",
                r#"{"cause":"command","reason":"phishing — «é»","expiresAt":1718261077425}"#,
            ),
            (
                EventPayload::Locked {
                    reason: None,
                    expires_at: None,
                    cause: LockCause::Lockout,
                },
                "user.locked",
                r#"{"cause":"lockout"}"#,
            ),
            (
                EventPayload::Unlocked {
                    cause: UnlockCause::Expired,
                    reason: None,
                    resets_escalation: false,
                },
                "user.unlocked",
                r#"{"cause":"expired"}"#,
            ),
            (
                // As every unlock by a command was stored before the reset
                // was recorded: it kept the escalation.
                EventPayload::Unlocked {
                    cause: UnlockCause::Command,
                    reason: None,
                    resets_escalation: false,
                },
                "user.unlocked",
                r#"{"cause":"command"}"#,
            ),
            (
                EventPayload::Unlocked {
                    cause: UnlockCause::Command,
                    reason: Some(Reason::new("verified by phone").unwrap()),
                    resets_escalation: true,
                },
                "user.unlocked",
                r#"{"cause":"command","reason":"verified by phone","resetsEscalation":true}"#,
            ),
            (
                EventPayload::Deactivated { reason: None },
                "user.deactivated",
                "{}",
            ),
            (
                EventPayload::Deactivated {
                    reason: Some(Reason::new("left").unwrap()),
                },
                "user.deactivated",
                r#"{"reason":"left"}"#,
            ),
            (
                EventPayload::Reactivated { reason: None },
                "user.reactivated",
                "{}",
            ),
            (EventPayload::Removed { reason: None }, "user.removed", "{}"),
            (
                EventPayload::CheckSucceeded {
                    factor: Factor::Password,
                },
                "user.password.check.succeeded",
                "{}",
            ),
            (
                EventPayload::CheckFailed {
                    factor: Factor::Password,
                },
                "user.password.check.failed",
                "{}",
            ),
            (
                EventPayload::CheckSucceeded {
                    factor: Factor::Totp,
                },
                "user.otp.check.succeeded",
                r#"{"factor":"totp"}"#,
            ),
            (
                EventPayload::CheckFailed {
                    factor: Factor::Email,
                },
                "user.otp.check.failed",
                r#"{"factor":"email"}"#,
            ),
            (EventPayload::PasswordChanged, "user.password.changed", "{}"),
        ];
        for (payload, event_type, json) in cases {
            let event = Event {
                user_id: user_id("alice"),
                org_id: OrgId::from_stored("acme").unwrap(),
                sequence: 7,
                created_at: at(T),
                creator: user_id("admin"),
                payload,
            };
            let row = encode_event(&event).unwrap();
            assert_eq!(
                (row.event_type.as_str(), row.payload.as_str()),
                (event_type, json)
            );
            assert_eq!(
                (
                    row.sequence,
                    row.org.as_str(),
                    row.created_at,
                    row.creator.as_str()
                ),
                (7, "acme", T, "admin")
            );
            if event_type == "user.added" && json == r#"{"state":"initial"}"# {
                // CRC-32 of the length-prefixed columns, as zlib.crc32 computes it.
                assert_eq!(row.checksum, 2_564_927_151);
            }
            assert_eq!(decode_event(&user_id("alice"), &row).unwrap(), event);
            let flipped = EventRow {
                created_at: row.created_at ^ 4,
                ..row.clone()
            };
            assert_eq!(
                decode_event(&user_id("alice"), &flipped).unwrap_err().id(),
                userstate::ids::CORRUPT
            );
        }
    }

    #[test]
    fn rows_that_do_not_hold_their_type_are_corrupt() {
        let good = encode_event(&Event {
            user_id: user_id("alice"),
            org_id: OrgId::from_stored("acme").unwrap(),
            sequence: 1,
            created_at: at(T),
            creator: user_id("admin"),
            payload: EventPayload::Deactivated { reason: None },
        })
        .unwrap();
        let bad = [
            ("user.deactivated", r#"{"cause":"command"}"#),
            ("user.locked", "{}"),
            ("user.locked", r#"{"cause":"expired"}"#),
            ("user.unlocked", r#"{"cause":"lockout"}"#),
            ("user.otp.check.failed", r#"{"factor":"password"}"#),
            ("user.added", r#"{"state":"locked"}"#),
            ("user.teleported", "{}"),
            ("user.deactivated", "not json"),
        ];
        for (event_type, payload) in bad {
            let row = EventRow {
                event_type: event_type.to_owned(),
                payload: payload.to_owned(),
                ..good.clone()
            };
            let err = decode_event_fields(&user_id("alice"), &row).unwrap_err();
            assert_eq!(err.id(), ids::CORRUPT, "{event_type} {payload}");
            // With a checksum that matches, the payload is refused all the same.
            let row = EventRow {
                checksum: event_checksum(&row),
                ..row
            };
            assert_eq!(
                decode_event(&user_id("alice"), &row).unwrap_err().id(),
                ids::CORRUPT
            );
        }
        let head = r#"{"org":"acme","state":"active","sequence":1,"#;
        for (state, snapshot) in [
            ("frozen", format!(r#"{head}"createdAt":0,"changedAt":0}}"#)),
            ("locked", format!(r#"{head}"createdAt":0,"changedAt":0}}"#)),
            ("active", format!(r#"{head}"createdAt":0}}"#)),
            (
                "active",
                format!(r#"{head}"createdAt":0,"changedAt":0,"extra":1}}"#),
            ),
            (
                "active",
                format!(r#"{head}"createdAt":0,"changedAt":999999999999999999}}"#),
            ),
            (
                "active",
                r#"{"org":"globex","state":"active","sequence":1,"createdAt":0,"changedAt":0}"#
                    .to_owned(),
            ),
        ] {
            let mut row = UserRow {
                id: "alice".into(),
                org: "acme".into(),
                state: state.into(),
                sequence: 1,
                snapshot,
                checksum: 0,
            };
            row.checksum = user_checksum(&row);
            assert_eq!(
                decode_user(&row).unwrap_err().id(),
                ids::CORRUPT,
                "{}",
                row.snapshot
            );
        }
    }

    /// Rows as release 0.1.0 wrote them (taken from the format-1 fixture).
    #[test]
    fn format_1_rows_decode() {
        let row = UserRow {
            id: "frank".into(),
            org: "acme".into(),
            state: "locked".into(),
            sequence: 10,
            snapshot: r#"{"id":"frank","orgId":"acme","state":"locked","lock":{"reason":null,"expiresAt":"2024-06-13T06:47:38.565Z","lockedAt":"2024-06-13T06:45:38.565Z","previousState":"active","cause":"lockout"},"sequence":10,"createdAt":"2024-06-13T06:44:37.452Z","changedAt":"2024-06-13T06:45:38.565Z","failedChecks":{"password":3,"totp":0,"sms":0,"email":0},"lockouts":2}"#.into(),
            checksum: 0,
        };
        let frank = v1::decode_user(&row).unwrap();
        assert_eq!(frank.lockouts, 2);
        assert_eq!(frank.failed_checks.password, 3);
        let lock = frank.lock.clone().unwrap();
        assert_eq!(
            lock.expires_at,
            Some(Timestamp::parse_rfc3339("2024-06-13T06:47:38.565Z").unwrap())
        );
        assert_eq!(lock.cause, LockCause::Lockout);
        assert_eq!(frank.changed_at, lock.locked_at);

        let disagrees = UserRow { sequence: 9, ..row };
        assert_eq!(v1::decode_user(&disagrees).unwrap_err().id(), ids::CORRUPT);

        let payloads = [
            ("user.added", r#"{"added":{"state":"active"}}"#),
            (
                "user.locked",
                r#"{"locked":{"reason":"phishing report, ticket #42 — «é»","expiresAt":"2024-06-13T07:44:37.424Z","cause":"command"}}"#,
            ),
            ("user.unlocked", r#"{"unlocked":{"cause":"expired"}}"#),
            (
                "user.otp.check.succeeded",
                r#"{"checkSucceeded":{"factor":"totp"}}"#,
            ),
            (
                "user.password.check.failed",
                r#"{"checkFailed":{"factor":"password"}}"#,
            ),
            ("user.password.changed", r#""passwordChanged""#),
            ("user.removed", r#""removed""#),
        ];
        for (event_type, payload) in payloads {
            let decoded = v1::decode_payload(event_type, payload).unwrap();
            let again = encode_event(&Event {
                user_id: user_id("u"),
                org_id: OrgId::from_stored("o").unwrap(),
                sequence: 1,
                created_at: at(0),
                creator: user_id("c"),
                payload: decoded,
            })
            .unwrap();
            assert_eq!(again.event_type, event_type);
        }
        let mislabelled = v1::decode_payload("user.locked", r#""removed""#).unwrap_err();
        assert_eq!(mislabelled.id(), ids::CORRUPT);
    }
}
