//! What a row holds: this adapter's own record types, never the core's, so a
//! change to the core cannot change what is on disk unnoticed.
//!
//! Record format 2 (schema version 2). A `users` row keeps the user's id,
//! organisation, state and sequence in columns (they key the indexes and the
//! lists) and the whole user but its id in `snapshot`, a JSON object; a
//! snapshot that disagrees with its columns is refused. An `events` row
//! keeps the type, time, creator and organisation in columns and the type's
//! own fields in `payload`, a JSON object (`{}` for types without fields).
//! Times are integer milliseconds since the Unix epoch; names are
//! lower-case words fixed here. JSON keeps a row readable in the `sqlite3`
//! shell and queryable with SQLite's JSON functions, for whoever audits a
//! history by hand.
//!
//! ```text
//! users.snapshot  {"org":"acme","state":"locked","sequence":2,"createdAt":1718261077431,
//!                  "changedAt":1718261078523,"lock":{"lockedAt":1718261078523,
//!                  "previousState":"active","cause":"command","reason":"left the company"}}
//! events.payload  {"cause":"lockout","expiresAt":1718261138550}      (user.locked)
//! ```
//!
//! Format 1 (release 0.1.0) stored the core types' own JSON; [`v1`] reads it
//! for the upgrade in [`crate::format`] and nowhere else.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use userstate::{
    Error, Event, EventPayload, Factor, FailedChecks, InitialState, Lock, LockCause, LockoutPolicy,
    OrgId, Reason, Result, StoredPolicy, Timestamp, UnlockCause, User, UserId, UserState,
};

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
    let User {
        id,
        org_id,
        state,
        lock,
        sequence,
        created_at,
        changed_at,
        failed_checks,
        lockouts,
    } = user;
    let FailedChecks {
        password,
        totp,
        sms,
        email,
    } = *failed_checks;
    let record = UserRecord {
        org: org_id.as_str().to_owned(),
        state: StateName::from(*state),
        sequence: *sequence,
        created_at: created_at.unix_millis(),
        changed_at: changed_at.unix_millis(),
        lock: lock.as_ref().map(|lock| LockRecord {
            locked_at: lock.locked_at.unix_millis(),
            previous_state: StateName::from(lock.previous_state),
            cause: CauseName::from(lock.cause),
            reason: lock.reason.as_ref().map(|r| r.as_str().to_owned()),
            expires_at: lock.expires_at.map(Timestamp::unix_millis),
        }),
        failed_checks: Counts {
            password,
            totp,
            sms,
            email,
        },
        lockouts: *lockouts,
    };
    let mut row = UserRow {
        id: id.as_str().to_owned(),
        org: org_id.as_str().to_owned(),
        state: StateName::from(*state).as_str().to_owned(),
        sequence: to_column(*sequence)?,
        snapshot: to_json(&record)?,
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
    let record: UserRecord = from_json(&row.snapshot).ok()?;
    OrgId::from_stored(record.org).ok()
}

/// [`decode_user`] without the checksum: for rows of a format without one,
/// which an upgrade checks before it writes their checksum.
///
/// # Errors
/// Corrupt when a column or the snapshot does not decode.
pub(crate) fn decode_user_fields(row: &UserRow) -> Result<User> {
    let corrupt = |e: Error| {
        Error::corrupt(format!(
            "the stored snapshot of user {} cannot be decoded: {}",
            row.id,
            e.message()
        ))
        .with_source(e)
    };
    let record: UserRecord = from_json(&row.snapshot).map_err(corrupt)?;
    let agrees = record.org == row.org
        && record.state.as_str() == row.state
        && i64::try_from(record.sequence).ok() == Some(row.sequence);
    if !agrees {
        return Err(Error::corrupt(format!(
            "the stored snapshot of user {} disagrees with its row",
            row.id
        )));
    }
    let lock = record
        .lock
        .map(|lock| -> Result<Lock> {
            Ok(Lock {
                reason: lock.reason.map(Reason::new).transpose()?,
                expires_at: lock
                    .expires_at
                    .map(Timestamp::from_unix_millis)
                    .transpose()?,
                locked_at: Timestamp::from_unix_millis(lock.locked_at)?,
                previous_state: lock.previous_state.into(),
                cause: lock.cause.try_into()?,
            })
        })
        .transpose()
        .map_err(corrupt)?;
    let Counts {
        password,
        totp,
        sms,
        email,
    } = record.failed_checks;
    Ok(User {
        id: UserId::from_stored(row.id.as_str()).map_err(corrupt)?,
        org_id: OrgId::from_stored(record.org).map_err(corrupt)?,
        state: record.state.into(),
        lock,
        sequence: from_sequence(row.sequence)
            .ok_or_else(|| corrupt(Error::corrupt("a sequence below 1")))?,
        created_at: Timestamp::from_unix_millis(record.created_at).map_err(corrupt)?,
        changed_at: Timestamp::from_unix_millis(record.changed_at).map_err(corrupt)?,
        failed_checks: FailedChecks {
            password,
            totp,
            sms,
            email,
        },
        lockouts: record.lockouts,
    })
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

/// The `event_type` and `payload` columns of `payload`.
///
/// # Errors
/// Internal if it cannot be encoded.
pub(crate) fn encode_payload(payload: &EventPayload) -> Result<(&'static str, String)> {
    let text = |reason: &Option<Reason>| reason.as_ref().map(|r| r.as_str().to_owned());
    let reasoned = |reason: &Option<Reason>| {
        to_json(&Reasoned {
            reason: text(reason),
        })
    };
    Ok(match payload {
        EventPayload::Added { state } => (
            ADDED,
            to_json(&Added {
                state: StateName::from(UserState::from(*state)),
            })?,
        ),
        EventPayload::Initialized => (INITIALIZED, EMPTY.to_owned()),
        EventPayload::Locked {
            reason,
            expires_at,
            cause,
        } => (
            LOCKED,
            to_json(&Locked {
                cause: CauseName::from(*cause),
                reason: reason.as_ref().map(|r| r.as_str().to_owned()),
                expires_at: expires_at.map(Timestamp::unix_millis),
            })?,
        ),
        EventPayload::Unlocked {
            cause,
            reason,
            resets_escalation,
        } => (
            UNLOCKED,
            to_json(&Unlocked {
                cause: CauseName::from(*cause),
                reason: text(reason),
                resets_escalation: *resets_escalation,
            })?,
        ),
        EventPayload::Deactivated { reason } => (DEACTIVATED, reasoned(reason)?),
        EventPayload::Reactivated { reason } => (REACTIVATED, reasoned(reason)?),
        EventPayload::Removed { reason } => (REMOVED, reasoned(reason)?),
        EventPayload::CheckSucceeded { factor } => {
            check(*factor, PASSWORD_SUCCEEDED, OTP_SUCCEEDED)?
        }
        EventPayload::CheckFailed { factor } => check(*factor, PASSWORD_FAILED, OTP_FAILED)?,
        EventPayload::PasswordChanged => (PASSWORD_CHANGED, EMPTY.to_owned()),
    })
}

/// A check's type and payload: the password's has no fields, an OTP
/// factor's names the factor.
fn check(
    factor: Factor,
    password: &'static str,
    otp: &'static str,
) -> Result<(&'static str, String)> {
    match FactorName::from(factor) {
        FactorName::Password => Ok((password, EMPTY.to_owned())),
        factor => Ok((otp, to_json(&OtpCheck { factor })?)),
    }
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
    let payload = decode_payload(&row.event_type, &row.payload).map_err(corrupt)?;
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

/// The reason of an event whose payload holds nothing else.
fn reason_of(payload: &str) -> Result<Option<Reason>> {
    let Reasoned { reason } = from_json(payload)?;
    reason.map(Reason::new).transpose()
}

fn decode_payload(event_type: &str, payload: &str) -> Result<EventPayload> {
    let otp = |factor: FactorName| match factor {
        FactorName::Password => Err(Error::corrupt("an OTP check names the password")),
        otp => Ok(Factor::from(otp)),
    };
    Ok(match event_type {
        ADDED => {
            let Added { state } = from_json(payload)?;
            EventPayload::Added {
                state: initial_state(state)?,
            }
        }
        INITIALIZED => empty(payload, EventPayload::Initialized)?,
        LOCKED => {
            let Locked {
                cause,
                reason,
                expires_at,
            } = from_json(payload)?;
            EventPayload::Locked {
                reason: reason.map(Reason::new).transpose()?,
                expires_at: expires_at.map(Timestamp::from_unix_millis).transpose()?,
                cause: cause.try_into()?,
            }
        }
        UNLOCKED => {
            let Unlocked {
                cause,
                reason,
                resets_escalation,
            } = from_json(payload)?;
            EventPayload::Unlocked {
                cause: cause.try_into()?,
                reason: reason.map(Reason::new).transpose()?,
                resets_escalation,
            }
        }
        DEACTIVATED => EventPayload::Deactivated {
            reason: reason_of(payload)?,
        },
        REACTIVATED => EventPayload::Reactivated {
            reason: reason_of(payload)?,
        },
        REMOVED => EventPayload::Removed {
            reason: reason_of(payload)?,
        },
        PASSWORD_SUCCEEDED => empty(
            payload,
            EventPayload::CheckSucceeded {
                factor: Factor::Password,
            },
        )?,
        PASSWORD_FAILED => empty(
            payload,
            EventPayload::CheckFailed {
                factor: Factor::Password,
            },
        )?,
        OTP_SUCCEEDED => {
            let OtpCheck { factor } = from_json(payload)?;
            EventPayload::CheckSucceeded {
                factor: otp(factor)?,
            }
        }
        OTP_FAILED => {
            let OtpCheck { factor } = from_json(payload)?;
            EventPayload::CheckFailed {
                factor: otp(factor)?,
            }
        }
        PASSWORD_CHANGED => empty(payload, EventPayload::PasswordChanged)?,
        _ => return Err(Error::corrupt("unknown event type")),
    })
}

/// The state a user is created in: only `active` or `initial`.
fn initial_state(state: StateName) -> Result<InitialState> {
    match state {
        StateName::Active => Ok(InitialState::Active),
        StateName::Initial => Ok(InitialState::Initial),
        _ => Err(Error::corrupt("a user added in a state it cannot start in")),
    }
}

fn empty(payload: &str, event: EventPayload) -> Result<EventPayload> {
    let Empty {} = from_json(payload)?;
    Ok(event)
}

// The `event_type` column: fixed here, the same words the seeds' servers use.
const ADDED: &str = "user.added";
const INITIALIZED: &str = "user.initialized";
const LOCKED: &str = "user.locked";
const UNLOCKED: &str = "user.unlocked";
const DEACTIVATED: &str = "user.deactivated";
const REACTIVATED: &str = "user.reactivated";
const REMOVED: &str = "user.removed";
const PASSWORD_SUCCEEDED: &str = "user.password.check.succeeded";
const PASSWORD_FAILED: &str = "user.password.check.failed";
const OTP_SUCCEEDED: &str = "user.otp.check.succeeded";
const OTP_FAILED: &str = "user.otp.check.failed";
const PASSWORD_CHANGED: &str = "user.password.changed";
const EMPTY: &str = "{}";

/// `users.snapshot`: the user but its id (the row's key). The organisation,
/// state and sequence repeat their columns, for the check at decoding.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserRecord {
    org: String,
    state: StateName,
    sequence: u64,
    created_at: i64,
    changed_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lock: Option<LockRecord>,
    #[serde(default, skip_serializing_if = "Counts::is_zero")]
    failed_checks: Counts,
    #[serde(default, skip_serializing_if = "is_zero")]
    lockouts: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LockRecord {
    locked_at: i64,
    previous_state: StateName,
    cause: CauseName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

/// Failed checks per factor; zeros are left out.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Counts {
    #[serde(default, skip_serializing_if = "is_zero")]
    password: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    totp: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    sms: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    email: u32,
}

impl Counts {
    fn is_zero(&self) -> bool {
        [self.password, self.totp, self.sms, self.email] == [0; 4]
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Added {
    state: StateName,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Locked {
    cause: CauseName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Unlocked {
    cause: CauseName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// Written only when true: unlocks stored before kept the escalation.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    resets_escalation: bool,
}

/// The payload of a deactivation, reactivation or removal: `{}`, or the
/// reason given.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reasoned {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OtpCheck {
    factor: FactorName,
}

/// The states as stored, in the `state` column and in records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StateName {
    Initial,
    Active,
    Locked,
    Inactive,
    Deleted,
}

impl StateName {
    /// The word in the `state` column; `deleted` is also in the partial
    /// index `users_by_org`'s condition.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StateName::Initial => "initial",
            StateName::Active => "active",
            StateName::Locked => "locked",
            StateName::Inactive => "inactive",
            StateName::Deleted => "deleted",
        }
    }
}

impl From<UserState> for StateName {
    fn from(state: UserState) -> Self {
        match state {
            UserState::Initial => StateName::Initial,
            UserState::Active => StateName::Active,
            UserState::Locked => StateName::Locked,
            UserState::Inactive => StateName::Inactive,
            UserState::Deleted => StateName::Deleted,
        }
    }
}

impl From<StateName> for UserState {
    fn from(state: StateName) -> Self {
        match state {
            StateName::Initial => UserState::Initial,
            StateName::Active => UserState::Active,
            StateName::Locked => UserState::Locked,
            StateName::Inactive => UserState::Inactive,
            StateName::Deleted => UserState::Deleted,
        }
    }
}

/// Why a user was locked or unlocked, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CauseName {
    Command,
    Lockout,
    Expired,
}

impl From<LockCause> for CauseName {
    fn from(cause: LockCause) -> Self {
        match cause {
            LockCause::Command => CauseName::Command,
            LockCause::Lockout => CauseName::Lockout,
        }
    }
}

impl From<UnlockCause> for CauseName {
    fn from(cause: UnlockCause) -> Self {
        match cause {
            UnlockCause::Command => CauseName::Command,
            UnlockCause::Expired => CauseName::Expired,
        }
    }
}

impl TryFrom<CauseName> for LockCause {
    type Error = Error;
    fn try_from(cause: CauseName) -> Result<Self> {
        match cause {
            CauseName::Command => Ok(LockCause::Command),
            CauseName::Lockout => Ok(LockCause::Lockout),
            CauseName::Expired => Err(Error::corrupt("a lock cannot be caused by an expiry")),
        }
    }
}

impl TryFrom<CauseName> for UnlockCause {
    type Error = Error;
    fn try_from(cause: CauseName) -> Result<Self> {
        match cause {
            CauseName::Command => Ok(UnlockCause::Command),
            CauseName::Expired => Ok(UnlockCause::Expired),
            CauseName::Lockout => Err(Error::corrupt("an unlock cannot be caused by a lockout")),
        }
    }
}

/// The factors as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum FactorName {
    Password,
    Totp,
    Sms,
    Email,
}

impl From<Factor> for FactorName {
    fn from(factor: Factor) -> Self {
        match factor {
            Factor::Password => FactorName::Password,
            Factor::Totp => FactorName::Totp,
            Factor::Sms => FactorName::Sms,
            Factor::Email => FactorName::Email,
        }
    }
}

impl From<FactorName> for Factor {
    fn from(factor: FactorName) -> Self {
        match factor {
            FactorName::Password => Factor::Password,
            FactorName::Totp => Factor::Totp,
            FactorName::Sms => Factor::Sms,
            FactorName::Email => Factor::Email,
        }
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

/// A `policies` row's record: a lockout policy, who set it and when.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyRecord {
    max_password_attempts: u32,
    max_otp_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lock_duration_ms: Option<u64>,
    duration_growth: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_lock_duration_ms: Option<u64>,
    permanent_after: u32,
    show_attempts: bool,
    changed_by: String,
    changed_at: i64,
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
    let p = &policy.policy;
    let record = to_json(&PolicyRecord {
        max_password_attempts: p.max_password_attempts,
        max_otp_attempts: p.max_otp_attempts,
        lock_duration_ms: p.lock_duration_ms,
        duration_growth: p.duration_growth,
        max_lock_duration_ms: p.max_lock_duration_ms,
        permanent_after: p.permanent_after,
        show_attempts: p.show_attempts,
        changed_by: policy.changed_by.as_str().to_owned(),
        changed_at: policy.changed_at.unix_millis(),
    })?;
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
    let corrupt = |why: String| Error::corrupt(format!("{whose} {why}"));
    if policy_checksum(key, record) != checksum {
        return Err(corrupt("does not match its checksum".to_owned()));
    }
    let r: PolicyRecord =
        from_json(record).map_err(|e| corrupt(format!("cannot be decoded: {}", e.message())))?;
    let policy = LockoutPolicy {
        max_password_attempts: r.max_password_attempts,
        max_otp_attempts: r.max_otp_attempts,
        lock_duration_ms: r.lock_duration_ms,
        duration_growth: r.duration_growth,
        max_lock_duration_ms: r.max_lock_duration_ms,
        permanent_after: r.permanent_after,
        show_attempts: r.show_attempts,
    };
    policy
        .validate()
        .map_err(|e| corrupt(format!("is inconsistent: {}", e.message())))?;
    Ok(StoredPolicy {
        policy,
        changed_by: UserId::from_stored(r.changed_by)
            .map_err(|e| corrupt(format!("names no valid user: {}", e.message())))?,
        changed_at: Timestamp::from_unix_millis(r.changed_at)
            .map_err(|e| corrupt(format!("has an invalid time: {}", e.message())))?,
    })
}

fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::internal("a record cannot be encoded as JSON").with_source(e))
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::corrupt("a stored record does not decode").with_source(e))
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
            && stored.state.as_str() == row.state
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
        let Counts {
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
        // The type column of format 1 repeats the payload's type.
        if encode_event_type(&decoded) != event_type {
            return Err(Error::corrupt(
                "a format-1 payload is not of its row's type",
            ));
        }
        Ok(decoded)
    }

    fn encode_event_type(payload: &EventPayload) -> &'static str {
        match payload {
            EventPayload::Added { .. } => ADDED,
            EventPayload::Initialized => INITIALIZED,
            EventPayload::Locked { .. } => LOCKED,
            EventPayload::Unlocked { .. } => UNLOCKED,
            EventPayload::Deactivated { .. } => DEACTIVATED,
            EventPayload::Reactivated { .. } => REACTIVATED,
            EventPayload::Removed { .. } => REMOVED,
            EventPayload::CheckSucceeded {
                factor: Factor::Password,
            } => PASSWORD_SUCCEEDED,
            EventPayload::CheckSucceeded { .. } => OTP_SUCCEEDED,
            EventPayload::CheckFailed {
                factor: Factor::Password,
            } => PASSWORD_FAILED,
            EventPayload::CheckFailed { .. } => OTP_FAILED,
            EventPayload::PasswordChanged => PASSWORD_CHANGED,
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct UserV1 {
        id: String,
        org_id: String,
        state: StateName,
        lock: Option<LockV1>,
        sequence: u64,
        created_at: String,
        changed_at: String,
        #[serde(default)]
        failed_checks: Counts,
        #[serde(default)]
        lockouts: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct LockV1 {
        reason: Option<String>,
        expires_at: Option<String>,
        locked_at: String,
        previous_state: StateName,
        #[serde(default = "command")]
        cause: CauseName,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
    enum PayloadV1 {
        Added {
            state: StateName,
        },
        Initialized,
        Locked {
            reason: Option<String>,
            expires_at: Option<String>,
            #[serde(default = "command")]
            cause: CauseName,
        },
        Unlocked {
            #[serde(default = "command")]
            cause: CauseName,
        },
        Deactivated,
        Reactivated,
        Removed,
        CheckSucceeded {
            factor: FactorName,
        },
        CheckFailed {
            factor: FactorName,
        },
        PasswordChanged,
    }

    fn command() -> CauseName {
        CauseName::Command
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
