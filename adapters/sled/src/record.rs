//! What a value holds: this adapter's own record types, never the core's,
//! so a change to the core cannot change what is on disk unnoticed.
//!
//! A record is a format byte followed by the record in
//! [postcard](https://docs.rs/postcard), a compact encoding with a stable,
//! documented wire specification: fields in declaration order, integers as
//! varints, strings with their length. Record format 2 writes every enum as
//! a code from the one table below, never 0, so zeroed bytes never decode
//! as a value; the snapshot repeats its key's id and an event its key's
//! user and sequence, so a value found under the wrong key is refused.
//!
//! Format 1 (release 0.1.0) was postcard of the core types themselves,
//! tied to their field and variant order; [`v1`] reads it for the upgrade
//! in [`crate::format`] and nowhere else.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use userstate::storage::{AcceptedLoss, Loss};
use userstate::{
    Error, Event, EventPayload, Factor, FailedChecks, InitialState, Lock, LockCause, LockoutPolicy,
    OrgId, Reason, Result, StoredPolicy, Timestamp, UnlockCause, User, UserId, UserState,
};

/// The record format this build writes.
pub(crate) const RECORD_FORMAT: u8 = 2;

/// The code of each state, in records and in the `by_org_state` keys.
pub(crate) fn state_code(state: UserState) -> u8 {
    match state {
        UserState::Initial => 1,
        UserState::Active => 2,
        UserState::Locked => 3,
        UserState::Inactive => 4,
        UserState::Deleted => 5,
    }
}

fn state_of(code: u8) -> Result<UserState> {
    Ok(match code {
        1 => UserState::Initial,
        2 => UserState::Active,
        3 => UserState::Locked,
        4 => UserState::Inactive,
        5 => UserState::Deleted,
        _ => return Err(Error::corrupt("unknown state code")),
    })
}

fn lock_cause_code(cause: LockCause) -> u8 {
    match cause {
        LockCause::Command => 1,
        LockCause::Lockout => 2,
    }
}

fn unlock_cause_code(cause: UnlockCause) -> u8 {
    match cause {
        UnlockCause::Command => 1,
        UnlockCause::Expired => 3,
    }
}

/// Set in an unlock's code when the unlock reset the lockout escalation.
const RESETS_ESCALATION: u8 = 0x40;

fn unlock_code(cause: UnlockCause, resets_escalation: bool) -> u8 {
    let flag = if resets_escalation {
        RESETS_ESCALATION
    } else {
        0
    };
    unlock_cause_code(cause) | flag
}

fn unlock_of(code: u8) -> Result<(UnlockCause, bool)> {
    let cause = unlock_cause_of(code & !RESETS_ESCALATION)?;
    Ok((cause, code & RESETS_ESCALATION != 0))
}

fn lock_cause_of(code: u8) -> Result<LockCause> {
    match code {
        1 => Ok(LockCause::Command),
        2 => Ok(LockCause::Lockout),
        _ => Err(Error::corrupt("unknown lock cause code")),
    }
}

fn unlock_cause_of(code: u8) -> Result<UnlockCause> {
    match code {
        1 => Ok(UnlockCause::Command),
        3 => Ok(UnlockCause::Expired),
        _ => Err(Error::corrupt("unknown unlock cause code")),
    }
}

fn factor_code(factor: Factor) -> u8 {
    match factor {
        Factor::Password => 1,
        Factor::Totp => 2,
        Factor::Sms => 3,
        Factor::Email => 4,
    }
}

fn factor_of(code: u8) -> Result<Factor> {
    Ok(match code {
        1 => Factor::Password,
        2 => Factor::Totp,
        3 => Factor::Sms,
        4 => Factor::Email,
        _ => return Err(Error::corrupt("unknown factor code")),
    })
}

// The event kinds.
const ADDED: u8 = 1;
const INITIALIZED: u8 = 2;
const LOCKED: u8 = 3;
const UNLOCKED: u8 = 4;
const DEACTIVATED: u8 = 5;
const REACTIVATED: u8 = 6;
const REMOVED: u8 = 7;
const CHECK_SUCCEEDED: u8 = 8;
const CHECK_FAILED: u8 = 9;
const PASSWORD_CHANGED: u8 = 10;

/// A snapshot (`userstate.snapshots.v2`).
#[derive(Debug, Serialize, Deserialize)]
struct UserRecord {
    id: String,
    org: String,
    state: u8,
    sequence: u64,
    created_at: i64,
    changed_at: i64,
    lock: Option<LockRecord>,
    /// Password, TOTP, SMS, email.
    failed_checks: [u32; 4],
    lockouts: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct LockRecord {
    locked_at: i64,
    previous_state: u8,
    cause: u8,
    reason: Option<String>,
    expires_at: Option<i64>,
}

/// An event (`userstate.events.v2`): the kind, and the one code it carries
/// (the state of `added`, the cause of `locked` and `unlocked`, the factor
/// of a check; 0 for the others); a reason and an expiry only on `locked`.
#[derive(Debug, Serialize, Deserialize)]
struct EventRecord {
    user: String,
    sequence: u64,
    org: String,
    created_at: i64,
    creator: String,
    kind: u8,
    code: u8,
    reason: Option<String>,
    expires_at: Option<i64>,
}

/// The record of `user`.
///
/// # Errors
/// Internal if postcard refuses it (it does not for these types).
pub(crate) fn encode_user(user: &User) -> Result<Vec<u8>> {
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
    encode(&UserRecord {
        id: id.as_str().to_owned(),
        org: org_id.as_str().to_owned(),
        state: state_code(*state),
        sequence: *sequence,
        created_at: created_at.unix_millis(),
        changed_at: changed_at.unix_millis(),
        lock: lock.as_ref().map(|lock| LockRecord {
            locked_at: lock.locked_at.unix_millis(),
            previous_state: state_code(lock.previous_state),
            cause: lock_cause_code(lock.cause),
            reason: lock.reason.as_ref().map(|r| r.as_str().to_owned()),
            expires_at: lock.expires_at.map(Timestamp::unix_millis),
        }),
        failed_checks: [password, totp, sms, email],
        lockouts: *lockouts,
    })
}

/// The snapshot stored under the key of `id`.
///
/// # Errors
/// Corrupt for an empty record, an unknown format byte, bytes that do not
/// decode, invalid values, trailing bytes, or a record of another id.
pub(crate) fn decode_user(id: &UserId, bytes: &[u8]) -> Result<User> {
    let corrupt = |e: Error| {
        Error::corrupt(format!(
            "the stored snapshot of user {id} cannot be decoded: {}",
            e.message()
        ))
        .with_source(e)
    };
    let record: UserRecord = decode(bytes).map_err(corrupt)?;
    if record.id != id.as_str() {
        return Err(Error::corrupt(format!(
            "the record stored for user {id} is of another user"
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
                previous_state: state_of(lock.previous_state)?,
                cause: lock_cause_of(lock.cause)?,
            })
        })
        .transpose()
        .map_err(corrupt)?;
    let [password, totp, sms, email] = record.failed_checks;
    let user = (|| -> Result<User> {
        Ok(User {
            id: id.clone(),
            org_id: OrgId::from_stored(record.org)?,
            state: state_of(record.state)?,
            lock,
            sequence: record.sequence,
            created_at: Timestamp::from_unix_millis(record.created_at)?,
            changed_at: Timestamp::from_unix_millis(record.changed_at)?,
            failed_checks: FailedChecks {
                password,
                totp,
                sms,
                email,
            },
            lockouts: record.lockouts,
        })
    })();
    user.map_err(corrupt)
}

/// The record of `event`.
///
/// # Errors
/// Internal if postcard refuses it (it does not for these types).
pub(crate) fn encode_event(event: &Event) -> Result<Vec<u8>> {
    let text = |reason: &Option<Reason>| reason.as_ref().map(|r| r.as_str().to_owned());
    let (kind, code, reason, expires_at) = match &event.payload {
        EventPayload::Added { state } => (ADDED, state_code((*state).into()), None, None),
        EventPayload::Initialized => (INITIALIZED, 0, None, None),
        EventPayload::Locked {
            reason,
            expires_at,
            cause,
        } => (
            LOCKED,
            lock_cause_code(*cause),
            reason.as_ref().map(|r| r.as_str().to_owned()),
            expires_at.map(Timestamp::unix_millis),
        ),
        EventPayload::Unlocked {
            cause,
            reason,
            resets_escalation,
        } => (
            UNLOCKED,
            unlock_code(*cause, *resets_escalation),
            text(reason),
            None,
        ),
        EventPayload::Deactivated { reason } => (DEACTIVATED, 0, text(reason), None),
        EventPayload::Reactivated { reason } => (REACTIVATED, 0, text(reason), None),
        EventPayload::Removed { reason } => (REMOVED, 0, text(reason), None),
        EventPayload::CheckSucceeded { factor } => {
            (CHECK_SUCCEEDED, factor_code(*factor), None, None)
        }
        EventPayload::CheckFailed { factor } => (CHECK_FAILED, factor_code(*factor), None, None),
        EventPayload::PasswordChanged => (PASSWORD_CHANGED, 0, None, None),
    };
    encode(&EventRecord {
        user: event.user_id.as_str().to_owned(),
        sequence: event.sequence,
        org: event.org_id.as_str().to_owned(),
        created_at: event.created_at.unix_millis(),
        creator: event.creator.as_str().to_owned(),
        kind,
        code,
        reason,
        expires_at,
    })
}

/// The event stored under the key of (`id`, `sequence`).
///
/// # Errors
/// As [`decode_user`], and for a kind with fields it does not carry.
pub(crate) fn decode_event(id: &UserId, sequence: u64, bytes: &[u8]) -> Result<Event> {
    let corrupt = |e: Error| {
        Error::corrupt(format!(
            "stored event {sequence} of user {id} cannot be decoded: {}",
            e.message()
        ))
        .with_source(e)
    };
    let record: EventRecord = decode(bytes).map_err(corrupt)?;
    if record.user != id.as_str() || record.sequence != sequence {
        return Err(Error::corrupt(format!(
            "the record stored for event {sequence} of user {id} is of another event"
        )));
    }
    let event = (|| -> Result<Event> {
        let fieldless = record.reason.is_none() && record.expires_at.is_none();
        let plain = |payload: EventPayload| {
            if fieldless && record.code == 0 {
                Ok(payload)
            } else {
                Err(Error::corrupt(
                    "an event carries fields its kind does not have",
                ))
            }
        };
        let coded = |payload: Result<EventPayload>| {
            if fieldless {
                payload
            } else {
                Err(Error::corrupt(
                    "an event carries fields its kind does not have",
                ))
            }
        };
        let reason = || record.reason.clone().map(Reason::new).transpose();
        // Events that may carry a reason carry nothing else.
        let reasoned = |payload: EventPayload| {
            if record.expires_at.is_none() {
                Ok(payload)
            } else {
                Err(Error::corrupt(
                    "an event carries fields its kind does not have",
                ))
            }
        };
        let plain_or_reasoned = |payload: EventPayload| {
            if record.code == 0 {
                reasoned(payload)
            } else {
                Err(Error::corrupt(
                    "an event carries fields its kind does not have",
                ))
            }
        };
        let payload = match record.kind {
            ADDED => coded(match state_of(record.code)? {
                UserState::Active => Ok(EventPayload::Added {
                    state: InitialState::Active,
                }),
                UserState::Initial => Ok(EventPayload::Added {
                    state: InitialState::Initial,
                }),
                _ => Err(Error::corrupt("a user added in a state it cannot start in")),
            })?,
            INITIALIZED => plain(EventPayload::Initialized)?,
            LOCKED => EventPayload::Locked {
                reason: record.reason.map(Reason::new).transpose()?,
                expires_at: record
                    .expires_at
                    .map(Timestamp::from_unix_millis)
                    .transpose()?,
                cause: lock_cause_of(record.code)?,
            },
            UNLOCKED => {
                let (cause, resets_escalation) = unlock_of(record.code)?;
                reasoned(EventPayload::Unlocked {
                    cause,
                    reason: reason()?,
                    resets_escalation,
                })?
            }
            DEACTIVATED => plain_or_reasoned(EventPayload::Deactivated { reason: reason()? })?,
            REACTIVATED => plain_or_reasoned(EventPayload::Reactivated { reason: reason()? })?,
            REMOVED => plain_or_reasoned(EventPayload::Removed { reason: reason()? })?,
            CHECK_SUCCEEDED => {
                coded(factor_of(record.code).map(|factor| EventPayload::CheckSucceeded { factor }))?
            }
            CHECK_FAILED => {
                coded(factor_of(record.code).map(|factor| EventPayload::CheckFailed { factor }))?
            }
            PASSWORD_CHANGED => plain(EventPayload::PasswordChanged)?,
            _ => return Err(Error::corrupt("unknown event kind")),
        };
        Ok(Event {
            user_id: id.clone(),
            org_id: OrgId::from_stored(record.org)?,
            sequence,
            created_at: Timestamp::from_unix_millis(record.created_at)?,
            creator: UserId::from_stored(record.creator)?,
            payload,
        })
    })();
    event.map_err(corrupt)
}

/// A loss accepted at open (`userstate.losses`).
#[derive(Debug, Serialize, Deserialize)]
struct LossRecord {
    accepted_at: i64,
    expected: Option<u64>,
    found: u64,
}

/// The record of an accepted loss.
///
/// # Errors
/// Internal if postcard refuses it (it does not for this type).
pub(crate) fn encode_loss(loss: &AcceptedLoss) -> Result<Vec<u8>> {
    encode(&LossRecord {
        accepted_at: loss.accepted_at.unix_millis(),
        expected: loss.loss.expected,
        found: loss.loss.found,
    })
}

/// An accepted loss.
///
/// # Errors
/// Corrupt for anything but a valid record.
pub(crate) fn decode_loss(bytes: &[u8]) -> Result<AcceptedLoss> {
    let record: LossRecord = decode(bytes)?;
    Ok(AcceptedLoss {
        accepted_at: Timestamp::from_unix_millis(record.accepted_at)?,
        loss: Loss {
            expected: record.expected,
            found: record.found,
        },
    })
}

/// The organisation a snapshot record names, read without the rest of
/// it being valid: what a damaged record still tells of whose it is.
pub(crate) fn snapshot_org(bytes: &[u8]) -> Option<OrgId> {
    #[derive(Deserialize)]
    struct Prefix {
        _id: String,
        org: String,
    }
    let (format, body) = bytes.split_first()?;
    if *format != RECORD_FORMAT {
        return None;
    }
    let (prefix, _): (Prefix, _) = postcard::take_from_bytes(body).ok()?;
    OrgId::from_stored(prefix.org).ok()
}

/// The organisation an event record names, as [`snapshot_org`].
pub(crate) fn event_org(bytes: &[u8]) -> Option<OrgId> {
    #[derive(Deserialize)]
    struct Prefix {
        _user: String,
        _sequence: u64,
        org: String,
    }
    let (format, body) = bytes.split_first()?;
    if *format != RECORD_FORMAT {
        return None;
    }
    let (prefix, _): (Prefix, _) = postcard::take_from_bytes(body).ok()?;
    OrgId::from_stored(prefix.org).ok()
}

/// A stored lockout policy (`userstate.policies`), who set it and when.
#[derive(Debug, Serialize, Deserialize)]
struct PolicyRecord {
    max_password_attempts: u32,
    max_otp_attempts: u32,
    lock_duration_ms: Option<u64>,
    duration_growth: u32,
    max_lock_duration_ms: Option<u64>,
    permanent_after: u32,
    show_attempts: bool,
    changed_by: String,
    changed_at: i64,
}

/// The record of `policy`.
///
/// # Errors
/// Internal if postcard refuses it (it does not for these types).
pub(crate) fn encode_policy(policy: &StoredPolicy) -> Result<Vec<u8>> {
    let p = &policy.policy;
    encode(&PolicyRecord {
        max_password_attempts: p.max_password_attempts,
        max_otp_attempts: p.max_otp_attempts,
        lock_duration_ms: p.lock_duration_ms,
        duration_growth: p.duration_growth,
        max_lock_duration_ms: p.max_lock_duration_ms,
        permanent_after: p.permanent_after,
        show_attempts: p.show_attempts,
        changed_by: policy.changed_by.as_str().to_owned(),
        changed_at: policy.changed_at.unix_millis(),
    })
}

/// The policy stored under the key of `org` (`None`: the instance default).
///
/// # Errors
/// Corrupt when the record does not decode or is inconsistent.
pub(crate) fn decode_policy(org: Option<&OrgId>, bytes: &[u8]) -> Result<StoredPolicy> {
    let whose = org.map_or_else(
        || "the instance default lockout policy".to_owned(),
        |org| format!("the lockout policy of {org}"),
    );
    let corrupt = |e: Error| Error::corrupt(format!("{whose} cannot be decoded: {}", e.message()));
    let r: PolicyRecord = decode(bytes).map_err(corrupt)?;
    let policy = LockoutPolicy {
        max_password_attempts: r.max_password_attempts,
        max_otp_attempts: r.max_otp_attempts,
        lock_duration_ms: r.lock_duration_ms,
        duration_growth: r.duration_growth,
        max_lock_duration_ms: r.max_lock_duration_ms,
        permanent_after: r.permanent_after,
        show_attempts: r.show_attempts,
    };
    policy.validate().map_err(corrupt)?;
    Ok(StoredPolicy {
        policy,
        changed_by: UserId::from_stored(r.changed_by).map_err(corrupt)?,
        changed_at: Timestamp::from_unix_millis(r.changed_at).map_err(corrupt)?,
    })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    postcard::to_extend(value, vec![RECORD_FORMAT])
        .map_err(|e| Error::internal("a record cannot be encoded").with_source(e))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    take(bytes, RECORD_FORMAT)
}

/// The record of format `format` that `bytes` hold, and nothing after it.
fn take<T: DeserializeOwned>(bytes: &[u8], format: u8) -> Result<T> {
    let (found, body) = bytes
        .split_first()
        .ok_or_else(|| Error::corrupt("the record is empty"))?;
    if *found != format {
        return Err(Error::corrupt(format!(
            "the record has format {found} (expected {format})"
        )));
    }
    let (value, rest) = postcard::take_from_bytes(body)
        .map_err(|e| Error::corrupt("the record does not decode").with_source(e))?;
    if !rest.is_empty() {
        return Err(Error::corrupt("the record has trailing bytes"));
    }
    Ok(value)
}

/// Record format 1: postcard of the core's `User` and `Event` of release
/// 0.1.0, in their field and variant order then. Frozen: read only to
/// upgrade a database.
pub(crate) mod v1 {
    use super::*;

    /// The snapshot a format-1 record of `id` holds.
    ///
    /// # Errors
    /// Corrupt when it does not decode or is of another user.
    pub(crate) fn decode_user(id: &UserId, bytes: &[u8]) -> Result<User> {
        let corrupt = |e: Error| {
            Error::corrupt(format!(
                "the format-1 snapshot of user {id} cannot be decoded: {}",
                e.message()
            ))
            .with_source(e)
        };
        let stored: UserV1 = take(bytes, 1).map_err(corrupt)?;
        if stored.id != id.as_str() {
            return Err(corrupt(Error::corrupt("the record is of another user")));
        }
        let user = (|| -> Result<User> {
            Ok(User {
                id: id.clone(),
                org_id: OrgId::from_stored(stored.org_id)?,
                state: stored.state.into(),
                lock: stored
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
                            cause: lock.cause.into(),
                        })
                    })
                    .transpose()?,
                sequence: stored.sequence,
                created_at: Timestamp::from_unix_millis(stored.created_at)?,
                changed_at: Timestamp::from_unix_millis(stored.changed_at)?,
                failed_checks: FailedChecks {
                    password: stored.failed_checks.password,
                    totp: stored.failed_checks.totp,
                    sms: stored.failed_checks.sms,
                    email: stored.failed_checks.email,
                },
                lockouts: stored.lockouts,
            })
        })();
        user.map_err(corrupt)
    }

    /// The event a format-1 record of (`id`, `sequence`) holds.
    ///
    /// # Errors
    /// Corrupt when it does not decode or is of another event.
    pub(crate) fn decode_event(id: &UserId, sequence: u64, bytes: &[u8]) -> Result<Event> {
        let corrupt = |e: Error| {
            Error::corrupt(format!(
                "the format-1 event {sequence} of user {id} cannot be decoded: {}",
                e.message()
            ))
            .with_source(e)
        };
        let stored: EventV1 = take(bytes, 1).map_err(corrupt)?;
        if stored.user_id != id.as_str() || stored.sequence != sequence {
            return Err(corrupt(Error::corrupt("the record is of another event")));
        }
        let event = (|| -> Result<Event> {
            let payload = match stored.payload {
                PayloadV1::Added { state } => EventPayload::Added {
                    state: match state {
                        InitialV1::Active => InitialState::Active,
                        InitialV1::Initial => InitialState::Initial,
                    },
                },
                PayloadV1::Initialized => EventPayload::Initialized,
                PayloadV1::Locked {
                    reason,
                    expires_at,
                    cause,
                } => EventPayload::Locked {
                    reason: reason.map(Reason::new).transpose()?,
                    expires_at: expires_at.map(Timestamp::from_unix_millis).transpose()?,
                    cause: cause.into(),
                },
                PayloadV1::Unlocked { cause } => EventPayload::Unlocked {
                    cause: match cause {
                        UnlockV1::Command => UnlockCause::Command,
                        UnlockV1::Expired => UnlockCause::Expired,
                    },
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
            Ok(Event {
                user_id: id.clone(),
                org_id: OrgId::from_stored(stored.org_id)?,
                sequence,
                created_at: Timestamp::from_unix_millis(stored.created_at)?,
                creator: UserId::from_stored(stored.creator)?,
                payload,
            })
        })();
        event.map_err(corrupt)
    }

    #[derive(Debug, Deserialize)]
    struct UserV1 {
        id: String,
        org_id: String,
        state: StateV1,
        lock: Option<LockV1>,
        sequence: u64,
        created_at: i64,
        changed_at: i64,
        failed_checks: CountsV1,
        lockouts: u32,
    }

    #[derive(Debug, Deserialize)]
    struct LockV1 {
        reason: Option<String>,
        expires_at: Option<i64>,
        locked_at: i64,
        previous_state: StateV1,
        cause: LockCauseV1,
    }

    #[derive(Debug, Deserialize)]
    struct CountsV1 {
        password: u32,
        totp: u32,
        sms: u32,
        email: u32,
    }

    #[derive(Debug, Deserialize)]
    struct EventV1 {
        user_id: String,
        org_id: String,
        sequence: u64,
        created_at: i64,
        creator: String,
        payload: PayloadV1,
    }

    #[derive(Debug, Deserialize)]
    enum PayloadV1 {
        Added {
            state: InitialV1,
        },
        Initialized,
        Locked {
            reason: Option<String>,
            expires_at: Option<i64>,
            cause: LockCauseV1,
        },
        Unlocked {
            cause: UnlockV1,
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

    #[derive(Debug, Clone, Copy, Deserialize)]
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
    enum InitialV1 {
        Active,
        Initial,
    }

    #[derive(Debug, Clone, Copy, Deserialize)]
    enum LockCauseV1 {
        Command,
        Lockout,
    }

    impl From<LockCauseV1> for LockCause {
        fn from(cause: LockCauseV1) -> Self {
            match cause {
                LockCauseV1::Command => LockCause::Command,
                LockCauseV1::Lockout => LockCause::Lockout,
            }
        }
    }

    #[derive(Debug, Clone, Copy, Deserialize)]
    enum UnlockV1 {
        Command,
        Expired,
    }

    #[derive(Debug, Clone, Copy, Deserialize)]
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

    fn locked_user() -> User {
        User {
            id: user_id("bob"),
            org_id: OrgId::from_stored("acme").unwrap(),
            state: UserState::Locked,
            lock: Some(Lock {
                reason: Some(Reason::new("é").unwrap()),
                expires_at: Some(at(T + 60_000)),
                locked_at: at(T + 1),
                previous_state: UserState::Initial,
                cause: LockCause::Lockout,
            }),
            sequence: 300,
            created_at: at(T),
            changed_at: at(T + 1),
            failed_checks: FailedChecks {
                password: 3,
                totp: 0,
                sms: 2,
                email: 1,
            },
            lockouts: 2,
        }
    }

    /// The bytes of format 2, pinned: a change here is a new format.
    #[test]
    fn user_records_of_format_2_are_pinned() {
        let bytes = encode_user(&locked_user()).unwrap();
        let expected: Vec<u8> = [
            &[2u8][..],                               // format
            &[3, b'b', b'o', b'b'],                   // id
            &[4, b'a', b'c', b'm', b'e'],             // org
            &[3],                                     // state: locked
            &[0xac, 0x02],                            // sequence 300
            &[0xe0, 0xd6, 0xba, 0x85, 0x82, 0x64],    // created_at (zigzag varint)
            &[0xe2, 0xd6, 0xba, 0x85, 0x82, 0x64],    // changed_at
            &[1],                                     // a lock
            &[0xe2, 0xd6, 0xba, 0x85, 0x82, 0x64],    // locked_at
            &[1, 2],                                  // previous state initial, cause lockout
            &[1, 2, 0xc3, 0xa9],                      // reason "é"
            &[1, 0xa0, 0x80, 0xc2, 0x85, 0x82, 0x64], // expires_at
            &[3, 0, 2, 1],                            // failed checks
            &[2],                                     // lockouts
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(decode_user(&user_id("bob"), &bytes).unwrap(), locked_user());
    }

    /// Every event kind of format 2, pinned after its user, sequence,
    /// organisation, time and creator.
    #[test]
    fn event_records_of_format_2_are_pinned() {
        let head: Vec<u8> = [
            &[2u8][..],
            &[5, b'a', b'l', b'i', b'c', b'e'],
            &[7],
            &[4, b'a', b'c', b'm', b'e'],
            &[0xe0, 0xd6, 0xba, 0x85, 0x82, 0x64],
            &[5, b'a', b'd', b'm', b'i', b'n'],
        ]
        .concat();
        let cases: Vec<(EventPayload, Vec<u8>)> = vec![
            (
                EventPayload::Added {
                    state: InitialState::Active,
                },
                vec![1, 2, 0, 0],
            ),
            (
                EventPayload::Added {
                    state: InitialState::Initial,
                },
                vec![1, 1, 0, 0],
            ),
            (EventPayload::Initialized, vec![2, 0, 0, 0]),
            (
                EventPayload::Locked {
                    reason: Some(Reason::new("x").unwrap()),
                    expires_at: Some(at(1)),
                    cause: LockCause::Command,
                },
                vec![3, 1, 1, 1, b'x', 1, 2],
            ),
            (
                EventPayload::Locked {
                    reason: None,
                    expires_at: None,
                    cause: LockCause::Lockout,
                },
                vec![3, 2, 0, 0],
            ),
            (
                EventPayload::Unlocked {
                    cause: UnlockCause::Command,
                    reason: None,
                    resets_escalation: false,
                },
                vec![4, 1, 0, 0],
            ),
            (
                EventPayload::Unlocked {
                    cause: UnlockCause::Expired,
                    reason: None,
                    resets_escalation: false,
                },
                vec![4, 3, 0, 0],
            ),
            (
                // Code 1 alone is how every unlock by a command was stored
                // before the reset was recorded: it kept the escalation.
                EventPayload::Unlocked {
                    cause: UnlockCause::Command,
                    reason: Some(Reason::new("y").unwrap()),
                    resets_escalation: true,
                },
                vec![4, 0x41, 1, 1, b'y', 0],
            ),
            (EventPayload::Deactivated { reason: None }, vec![5, 0, 0, 0]),
            (
                EventPayload::Deactivated {
                    reason: Some(Reason::new("z").unwrap()),
                },
                vec![5, 0, 1, 1, b'z', 0],
            ),
            (EventPayload::Reactivated { reason: None }, vec![6, 0, 0, 0]),
            (EventPayload::Removed { reason: None }, vec![7, 0, 0, 0]),
            (
                EventPayload::CheckSucceeded {
                    factor: Factor::Totp,
                },
                vec![8, 2, 0, 0],
            ),
            (
                EventPayload::CheckFailed {
                    factor: Factor::Password,
                },
                vec![9, 1, 0, 0],
            ),
            (
                EventPayload::CheckFailed {
                    factor: Factor::Email,
                },
                vec![9, 4, 0, 0],
            ),
            (EventPayload::PasswordChanged, vec![10, 0, 0, 0]),
        ];
        for (payload, tail) in cases {
            let event = Event {
                user_id: user_id("alice"),
                org_id: OrgId::from_stored("acme").unwrap(),
                sequence: 7,
                created_at: at(T),
                creator: user_id("admin"),
                payload,
            };
            let bytes = encode_event(&event).unwrap();
            assert_eq!(bytes, [head.clone(), tail].concat(), "{:?}", event.payload);
            assert_eq!(decode_event(&user_id("alice"), 7, &bytes).unwrap(), event);
        }
    }

    #[test]
    fn records_that_do_not_hold_what_their_key_says_are_corrupt() {
        let user = encode_user(&locked_user()).unwrap();
        assert_eq!(
            decode_user(&user_id("bobby"), &user).unwrap_err().id(),
            ids::CORRUPT
        );
        let event = encode_event(&Event {
            user_id: user_id("alice"),
            org_id: OrgId::from_stored("acme").unwrap(),
            sequence: 7,
            created_at: at(T),
            creator: user_id("admin"),
            payload: EventPayload::Deactivated { reason: None },
        })
        .unwrap();
        assert_eq!(
            decode_event(&user_id("alice"), 8, &event).unwrap_err().id(),
            ids::CORRUPT
        );
        assert_eq!(
            decode_event(&user_id("bob"), 7, &event).unwrap_err().id(),
            ids::CORRUPT
        );

        let len = event.len();
        let mut bad = Vec::new();
        bad.push(Vec::new());
        let mut zeroed = event.clone();
        zeroed[len - 4..].fill(0); // kind 0
        bad.push(zeroed);
        let mut coded = event.clone();
        coded[len - 3] = 1; // a code on a kind without one
        bad.push(coded);
        let mut expiring = event.clone();
        expiring.truncate(len - 1);
        expiring.extend([1, 2]); // an expiry on a deactivation
        bad.push(expiring);
        let mut old = event.clone();
        old[0] = 1;
        bad.push(old);
        let mut trailing = event.clone();
        trailing.push(0);
        bad.push(trailing);
        for bytes in bad {
            let err = decode_event(&user_id("alice"), 7, &bytes).unwrap_err();
            assert_eq!(err.id(), ids::CORRUPT, "{bytes:?}");
        }
    }

    /// Records as release 0.1.0 wrote them (taken from the format-1 fixture).
    #[test]
    fn format_1_records_decode() {
        let frank = [
            1, 5, 102, 114, 97, 110, 107, 4, 97, 99, 109, 101, 2, 1, 0, 1, 138, 229, 208, 133, 130,
            100, 138, 146, 194, 133, 130, 100, 1, 1, 10, 152, 215, 186, 133, 130, 100, 138, 146,
            194, 133, 130, 100, 3, 0, 0, 0, 2,
        ];
        let user = v1::decode_user(&user_id("frank"), &frank).unwrap();
        assert_eq!(
            (user.state, user.sequence, user.lockouts),
            (UserState::Locked, 10, 2)
        );
        assert_eq!(user.failed_checks.password, 3);
        let lock = user.lock.clone().unwrap();
        assert_eq!(
            (lock.cause, lock.previous_state, lock.reason),
            (LockCause::Lockout, UserState::Active, None)
        );
        assert_eq!(
            lock.expires_at,
            Some(Timestamp::parse_rfc3339("2024-06-13T06:47:38.565Z").unwrap())
        );
        assert_eq!(
            v1::decode_user(&user_id("frank2"), &frank)
                .unwrap_err()
                .id(),
            ids::CORRUPT
        );

        let alice_locked = [
            1, 5, 97, 108, 105, 99, 101, 4, 97, 99, 109, 101, 2, 140, 216, 186, 133, 130, 100, 10,
            97, 99, 109, 101, 45, 97, 100, 109, 105, 110, 2, 1, 38, 112, 104, 105, 115, 104, 105,
            110, 103, 32, 114, 101, 112, 111, 114, 116, 44, 32, 116, 105, 99, 107, 101, 116, 32,
            35, 52, 50, 32, 226, 128, 148, 32, 194, 171, 195, 169, 194, 187, 1, 224, 144, 242, 136,
            130, 100, 0,
        ];
        let event = v1::decode_event(&user_id("alice"), 2, &alice_locked).unwrap();
        assert_eq!(
            event.payload,
            EventPayload::Locked {
                reason: Some(Reason::new("phishing report, ticket #42 — «é»").unwrap()),
                expires_at: Some(Timestamp::parse_rfc3339("2024-06-13T07:44:37.424Z").unwrap()),
                cause: LockCause::Command,
            }
        );
        let expired = [
            1, 5, 102, 114, 97, 110, 107, 4, 97, 99, 109, 101, 6, 246, 145, 194, 133, 130, 100, 10,
            108, 111, 103, 105, 110, 45, 102, 108, 111, 119, 3, 1,
        ];
        let event = v1::decode_event(&user_id("frank"), 6, &expired).unwrap();
        assert_eq!(
            event.payload,
            EventPayload::Unlocked {
                cause: UnlockCause::Expired,
                reason: None,
                resets_escalation: false
            }
        );
        assert_eq!(event.creator, user_id("login-flow"));
        let totp = [
            1, 5, 103, 114, 97, 99, 101, 4, 97, 99, 109, 101, 4, 148, 146, 194, 133, 130, 100, 10,
            108, 111, 103, 105, 110, 45, 102, 108, 111, 119, 7, 1,
        ];
        let event = v1::decode_event(&user_id("grace"), 4, &totp).unwrap();
        assert_eq!(
            event.payload,
            EventPayload::CheckSucceeded {
                factor: Factor::Totp
            }
        );
        assert_eq!(
            v1::decode_event(&user_id("grace"), 5, &totp)
                .unwrap_err()
                .id(),
            ids::CORRUPT
        );
    }
}
