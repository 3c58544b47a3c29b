//! The JSON text format that adapters which store JSON share: a user's
//! snapshot (the whole user but its id, which keys the row), an event's
//! type name and payload, and a stored lockout policy. The SQLite adapter's
//! tests pin its bytes, so a change here is a new on-disk format there.
//!
//! Times are integer milliseconds since the Unix epoch; states, causes and
//! factors are lower-case words fixed here, never the core types' serde
//! form, so a change to those types cannot change what is stored. Fields
//! at their default are left out, and unknown fields are refused.
//!
//! ```text
//! users.snapshot  {"org":"acme","state":"locked","sequence":2,"createdAt":1718261077431,
//!                  "changedAt":1718261078523,"lock":{"lockedAt":1718261078523,
//!                  "previousState":"active","cause":"command","reason":"left the company"}}
//! events.payload  {"cause":"lockout","expiresAt":1718261138550}      (user.locked)
//! ```
//!
//! ```
//! use userstate::storage::json;
//! use userstate::{EventPayload, LockCause, Timestamp};
//!
//! # fn main() -> userstate::Result<()> {
//! let locked = EventPayload::Locked {
//!     reason: None,
//!     expires_at: Some(Timestamp::from_unix_millis(1_718_261_138_550)?),
//!     cause: LockCause::Lockout,
//! };
//! let (event_type, payload) = json::encode_payload(&locked)?;
//! assert_eq!(event_type, "user.locked");
//! assert_eq!(payload, r#"{"cause":"lockout","expiresAt":1718261138550}"#);
//! assert_eq!(json::decode_payload(event_type, &payload)?, locked);
//! # Ok(())
//! # }
//! ```

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event::{EventPayload, LockCause, UnlockCause};
use crate::id::{OrgId, Reason, UserId};
use crate::lockout::{Factor, FailedChecks, LockoutPolicy, StoredPolicy};
use crate::state::{InitialState, UserState};
use crate::timestamp::Timestamp;
use crate::user::{Lock, User};

/// The snapshot of `user`: the whole user but its id.
///
/// # Errors
/// Internal if it cannot be encoded.
pub fn encode_snapshot(user: &User) -> Result<String> {
    // In full, so that a new field of `User` needs a place in the record.
    let User {
        id: _,
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
    to_json(&UserRecord {
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
    })
}

/// The user `id` whose snapshot is `snapshot`. The organisation, state and
/// sequence a row may repeat in columns are not compared here: that is the
/// adapter's check.
///
/// # Errors
/// Corrupt, naming the user, when the id or the snapshot does not decode
/// or the sequence is below 1.
pub fn decode_snapshot(id: &str, snapshot: &str) -> Result<User> {
    let corrupt = |e: Error| {
        Error::corrupt(format!(
            "the stored snapshot of user {id} cannot be decoded: {}",
            e.message()
        ))
        .with_source(e)
    };
    let record: UserRecord = from_json(snapshot).map_err(corrupt)?;
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
        id: UserId::from_stored(id).map_err(corrupt)?,
        org_id: OrgId::from_stored(record.org).map_err(corrupt)?,
        state: record.state.into(),
        lock,
        sequence: Some(record.sequence)
            .filter(|s| *s > 0)
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

/// The organisation in `snapshot`, if it still decodes: where a damaged
/// row may belong besides its columns.
pub fn snapshot_org(snapshot: &str) -> Option<OrgId> {
    let record: UserRecord = from_json(snapshot).ok()?;
    OrgId::from_stored(record.org).ok()
}

/// The word for `state`, as in a snapshot: `initial`, `active`, `locked`,
/// `inactive` or `deleted`. For a column that repeats it, to be compared
/// with the snapshot and queried.
pub fn state_name(state: UserState) -> &'static str {
    StateName::from(state).as_str()
}

/// The type name and payload of `payload`: its fields as JSON, `{}` for
/// types without any.
///
/// # Errors
/// Internal if it cannot be encoded.
pub fn encode_payload(payload: &EventPayload) -> Result<(&'static str, String)> {
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
                reason: text(reason),
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

/// The payload of type `event_type` that `payload` holds.
///
/// # Errors
/// Corrupt when the type is unknown or the payload does not hold exactly
/// the type's fields.
pub fn decode_payload(event_type: &str, payload: &str) -> Result<EventPayload> {
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

/// The reason of an event whose payload holds nothing else.
fn reason_of(payload: &str) -> Result<Option<Reason>> {
    let Reasoned { reason } = from_json(payload)?;
    reason.map(Reason::new).transpose()
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

/// The record of `policy`: the policy, who set it and when.
///
/// # Errors
/// Internal if it cannot be encoded.
pub fn encode_policy(policy: &StoredPolicy) -> Result<String> {
    let p = &policy.policy;
    to_json(&PolicyRecord {
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

/// The policy `record` holds.
///
/// # Errors
/// Corrupt when the record does not decode, its policy fails
/// [`LockoutPolicy::validate`], or it names no valid user or time. Only the
/// adapter knows whose policy it is, so the message is worded to follow
/// that name: `cannot be decoded: …`, `is inconsistent: …`,
/// `names no valid user: …` or `has an invalid time: …`.
pub fn decode_policy(record: &str) -> Result<StoredPolicy> {
    let r: PolicyRecord = from_json(record).map_err(|e| {
        Error::corrupt(format!("cannot be decoded: {}", e.message())).with_source(e)
    })?;
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
        .map_err(|e| Error::corrupt(format!("is inconsistent: {}", e.message())).with_source(e))?;
    Ok(StoredPolicy {
        policy,
        changed_by: UserId::from_stored(r.changed_by).map_err(|e| {
            Error::corrupt(format!("names no valid user: {}", e.message())).with_source(e)
        })?,
        changed_at: Timestamp::from_unix_millis(r.changed_at).map_err(|e| {
            Error::corrupt(format!("has an invalid time: {}", e.message())).with_source(e)
        })?,
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

// The event type names, the same words the seeds' servers use.
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

/// A snapshot: the user but its id (the row's key). The organisation,
/// state and sequence may repeat columns, for the adapter's check.
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

/// A stored policy: a lockout policy, who set it and when.
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

/// The states as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StateName {
    Initial,
    Active,
    Locked,
    Inactive,
    Deleted,
}

impl StateName {
    /// The serde form's word, for columns that repeat it.
    fn as_str(self) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A column that repeats the state must hold the snapshot's word.
    #[test]
    fn state_names_are_the_snapshots_words() {
        for state in [
            UserState::Initial,
            UserState::Active,
            UserState::Locked,
            UserState::Inactive,
            UserState::Deleted,
        ] {
            let json = to_json(&StateName::from(state)).unwrap();
            assert_eq!(json, format!("\"{}\"", state_name(state)));
        }
    }
}
