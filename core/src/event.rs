//! The events of a user's history: the source of truth from which its state is
//! derived.

use serde::{Deserialize, Serialize};

use crate::id::{OrgId, Reason, UserId};
use crate::lockout::Factor;
use crate::state::InitialState;
use crate::timestamp::Timestamp;

/// One entry of a user's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The user the event belongs to.
    pub user_id: UserId,
    /// The organisation owning the user.
    pub org_id: OrgId,
    /// Position in the user's history: 1, 2, 3, ... without gaps.
    pub sequence: u64,
    /// When the event was written.
    pub created_at: Timestamp,
    /// The acting user.
    pub creator: UserId,
    /// What happened.
    pub payload: EventPayload,
}

impl Event {
    /// The event type name, e.g. `user.locked`.
    pub fn event_type(&self) -> &'static str {
        self.payload.event_type()
    }
}

/// What happened to the user.
///
/// Exhaustive on purpose, like [`crate::User`]: a storage adapter's record
/// matches every variant, so a new one fails to compile there until the
/// record can store it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum EventPayload {
    /// `user.added`: created in the given state.
    Added {
        /// `Active` or `Initial`.
        state: InitialState,
    },
    /// `user.initialized`: initialisation completed.
    Initialized,
    /// `user.locked`.
    Locked {
        /// Why, if the caller said.
        reason: Option<Reason>,
        /// When the lock stops blocking login, if it is temporary.
        expires_at: Option<Timestamp>,
        /// Who or what locked.
        #[serde(default)]
        cause: LockCause,
    },
    /// `user.unlocked`.
    Unlocked {
        /// An explicit unlock, or the first check after a lock expired.
        #[serde(default)]
        cause: UnlockCause,
        /// Why, if the caller said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Reason>,
        /// Whether the unlock also reset the escalation of temporary
        /// lockouts: true for an administrator's unlock (the user starts
        /// afresh), false for an expiry and for unlocks written by release
        /// 0.1.0, which kept it. A fact of the event, so replaying old
        /// histories gives the snapshots they stored.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resets_escalation: bool,
    },
    /// `user.deactivated`.
    Deactivated {
        /// Why, if the caller said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Reason>,
    },
    /// `user.reactivated`.
    Reactivated {
        /// Why, if the caller said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Reason>,
    },
    /// `user.removed`.
    Removed {
        /// Why, if the caller said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Reason>,
    },
    /// `user.password.check.succeeded` or `user.otp.check.succeeded`:
    /// resets the factor's failure count and the lockout escalation.
    CheckSucceeded {
        /// The factor checked.
        factor: Factor,
    },
    /// `user.password.check.failed` or `user.otp.check.failed`.
    CheckFailed {
        /// The factor checked.
        factor: Factor,
    },
    /// `user.password.changed`: resets the password failure count.
    PasswordChanged,
}

/// Why a user was locked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LockCause {
    /// A caller's `lock` command.
    #[default]
    Command,
    /// The lockout policy, after too many failed checks.
    Lockout,
}

/// Why a user was unlocked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UnlockCause {
    /// A caller's `unlock` command.
    #[default]
    Command,
    /// The lock had expired when the next check was recorded.
    Expired,
}

impl EventPayload {
    /// The reason the command gave, for the events that carry one.
    pub fn reason(&self) -> Option<&Reason> {
        match self {
            EventPayload::Locked { reason, .. }
            | EventPayload::Unlocked { reason, .. }
            | EventPayload::Deactivated { reason }
            | EventPayload::Reactivated { reason }
            | EventPayload::Removed { reason } => reason.as_ref(),
            _ => None,
        }
    }

    /// The event type name, e.g. `user.locked`.
    pub fn event_type(&self) -> &'static str {
        match self {
            EventPayload::Added { .. } => "user.added",
            EventPayload::Initialized => "user.initialized",
            EventPayload::Locked { .. } => "user.locked",
            EventPayload::Unlocked { .. } => "user.unlocked",
            EventPayload::Deactivated { .. } => "user.deactivated",
            EventPayload::Reactivated { .. } => "user.reactivated",
            EventPayload::Removed { .. } => "user.removed",
            EventPayload::CheckSucceeded {
                factor: Factor::Password,
            } => "user.password.check.succeeded",
            EventPayload::CheckSucceeded { .. } => "user.otp.check.succeeded",
            EventPayload::CheckFailed {
                factor: Factor::Password,
            } => "user.password.check.failed",
            EventPayload::CheckFailed { .. } => "user.otp.check.failed",
            EventPayload::PasswordChanged => "user.password.changed",
        }
    }
}
