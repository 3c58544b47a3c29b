//! The commands a host issues and the pure decision of which events they
//! produce. All validation of transitions happens here, never in the reducer.

use serde::{Deserialize, Serialize};

use crate::auth::Permission;
use crate::error::{ids, Error, ErrorKind, Result};
use crate::event::{EventPayload, LockCause, UnlockCause};
use crate::id::Reason;
use crate::lockout::{Factor, LockoutPolicy};
use crate::state::{InitialState, UserState};
use crate::timestamp::Timestamp;
use crate::user::User;

/// A lifecycle command on one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
#[non_exhaustive]
pub enum Command {
    /// Create the user in `Active` or `Initial`.
    Create {
        /// The state to create the user in.
        state: InitialState,
    },
    /// `Initial` → `Active`.
    CompleteInitialisation,
    /// `Active` or `Initial` → `Locked`.
    Lock(LockRequest),
    /// `Locked` → the state before the lock; an administrator's unlock
    /// also resets the escalation of temporary lockouts.
    Unlock {
        /// Why, recorded in the event.
        reason: Option<Reason>,
    },
    /// `Active` or `Locked` → `Inactive`.
    Deactivate {
        /// Why, recorded in the event.
        reason: Option<Reason>,
    },
    /// `Inactive` → `Active`.
    Reactivate {
        /// Why, recorded in the event.
        reason: Option<Reason>,
    },
    /// Any existing state → `Deleted`.
    Remove {
        /// Why, recorded in the event.
        reason: Option<Reason>,
    },
    /// Records the outcome of an authentication check the host performed.
    /// A failure that reaches the policy's limit also locks the user; a
    /// check on a locked user is refused and not counted.
    RecordCheck {
        /// The factor checked.
        factor: Factor,
        /// Whether the credential was right.
        succeeded: bool,
    },
    /// Records that the password was changed (resets its failure count).
    ChangePassword,
}

/// The optional parts of a lock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRequest {
    /// Why the user is locked.
    pub reason: Option<Reason>,
    /// When the lock stops blocking login; must lie in the future.
    pub expires_at: Option<Timestamp>,
    /// How long the lock blocks login, measured on the service's clock from
    /// the lock's own time (instead of `expires_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_millis: Option<u64>,
}

impl LockRequest {
    /// A lock without reason or expiry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records why.
    pub fn reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Makes the lock temporary, until `expires_at`.
    pub fn until(mut self, expires_at: Timestamp) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// Makes the lock temporary, for `duration` from the lock's time on the
    /// service's clock ([`crate::UserService::now`]), so a host need not
    /// read a clock of its own. Rounded down to whole milliseconds; a
    /// duration past the year 9999 ends there.
    pub fn for_duration(mut self, duration: std::time::Duration) -> Self {
        self.duration_millis = Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// When a lock requested at `at` expires.
    fn expiry(&self, at: Timestamp) -> Option<Timestamp> {
        match self.duration_millis {
            Some(millis) => Some(at.plus_millis(i64::try_from(millis).unwrap_or(i64::MAX))),
            None => self.expires_at,
        }
    }
}

impl Command {
    /// The command's name, for logs and traces: `create`, `lock`,
    /// `record_check`, ... (never its arguments).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Create { .. } => "create",
            Command::CompleteInitialisation => "complete_initialisation",
            Command::Lock(_) => "lock",
            Command::Unlock { .. } => "unlock",
            Command::Deactivate { .. } => "deactivate",
            Command::Reactivate { .. } => "reactivate",
            Command::Remove { .. } => "remove",
            Command::RecordCheck { .. } => "record_check",
            Command::ChangePassword => "change_password",
        }
    }

    /// The permission the caller needs in the targeted organisation.
    pub fn permission(&self) -> Permission {
        match self {
            Command::Remove { .. } => Permission::Delete,
            _ => Permission::Write,
        }
    }

    /// Checks the command's own arguments at `now` (before any permission or
    /// state check).
    ///
    /// # Errors
    /// InvalidArgument for a lock expiry that is not in the future, a
    /// duration of zero, or both an expiry and a duration.
    pub fn validate(&self, now: Timestamp) -> Result<()> {
        let Command::Lock(lock) = self else {
            return Ok(());
        };
        let invalid = |why: &'static str| Err(Error::invalid(ids::INVALID_TIME, why));
        match (lock.expires_at, lock.duration_millis) {
            (Some(_), Some(_)) => invalid("a lock takes an expiry or a duration, not both"),
            (Some(at), None) if at <= now => invalid("lock expiry must lie in the future"),
            (None, Some(0)) => invalid("lock duration must be at least one millisecond"),
            _ => Ok(()),
        }
    }

    /// Decides the events the command produces on `user` (`None` if the id
    /// was never used) at `now` under the organisation's lockout `policy`.
    /// Pure: the same input always gives the same answer. An empty list
    /// means there is nothing to record (a successful check with nothing to reset).
    ///
    /// # Errors
    /// AlreadyExists, NotFound or FailedPrecondition as in the transition table.
    pub fn decide(
        &self,
        user: Option<&User>,
        now: Timestamp,
        policy: &LockoutPolicy,
    ) -> Result<Vec<EventPayload>> {
        use UserState::*;
        // Every command but an unlock (and a check, which does the same
        // itself) decides on the state in force: a lock that expired is
        // first recorded as unlocked.
        if let Some(expired) = user.filter(|u| u.state == Locked && !u.is_locked_at(now)) {
            if !matches!(
                self,
                Command::Unlock { .. } | Command::RecordCheck { .. } | Command::Create { .. }
            ) {
                let unlocked = EventPayload::Unlocked {
                    cause: UnlockCause::Expired,
                    reason: None,
                    resets_escalation: false,
                };
                let view = User::apply(
                    Some(expired.clone()),
                    &crate::event::Event {
                        user_id: expired.id.clone(),
                        org_id: expired.org_id.clone(),
                        sequence: expired.sequence.saturating_add(1),
                        created_at: now,
                        creator: expired.id.clone(),
                        payload: unlocked.clone(),
                    },
                );
                let mut events = vec![unlocked];
                events.extend(self.decide(Some(&view), now, policy)?);
                return Ok(events);
            }
        }
        let event = match (self, user.map(|u| (u, u.state))) {
            (Command::Create { state }, None) => EventPayload::Added { state: *state },
            (Command::Create { .. }, Some(_)) => {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    ids::ALREADY_EXISTS,
                    "User already exists",
                ))
            }
            (_, None | Some((_, Deleted))) => return Err(Error::not_found()),
            (Command::RecordCheck { factor, succeeded }, Some((user, _))) => {
                return decide_check(user, *factor, *succeeded, now, policy)
            }
            (Command::ChangePassword, Some(_)) => EventPayload::PasswordChanged,
            (Command::CompleteInitialisation, Some((_, Initial))) => EventPayload::Initialized,
            (Command::CompleteInitialisation, _) => {
                return Err(Error::precondition(ids::NOT_INITIAL, "User is not initial"))
            }
            (Command::Lock(lock), Some((_, Active | Initial))) => EventPayload::Locked {
                reason: lock.reason.clone(),
                expires_at: lock.expiry(now),
                cause: LockCause::Command,
            },
            (Command::Lock(_), Some((_, Locked))) => {
                return Err(Error::precondition(
                    ids::ALREADY_LOCKED,
                    "User is already locked",
                ))
            }
            (Command::Lock(_), Some((_, Inactive))) => {
                return Err(Error::precondition(
                    ids::NOT_ACTIVE_OR_INITIAL,
                    "User is not active or initial",
                ))
            }
            (Command::Unlock { reason }, Some((_, Locked))) => EventPayload::Unlocked {
                cause: UnlockCause::Command,
                reason: reason.clone(),
                resets_escalation: true,
            },
            (Command::Unlock { .. }, _) => {
                return Err(Error::precondition(ids::NOT_LOCKED, "User is not locked"))
            }
            // A locked user that never completed initialisation is still
            // initial: deactivating and reactivating it must not skip that.
            (Command::Deactivate { .. }, Some((user, Locked)))
                if user
                    .lock
                    .as_ref()
                    .is_some_and(|l| l.previous_state == Initial) =>
            {
                return Err(initial_cannot_deactivate())
            }
            (Command::Deactivate { reason }, Some((_, Active | Locked))) => {
                EventPayload::Deactivated {
                    reason: reason.clone(),
                }
            }
            (Command::Deactivate { .. }, Some((_, Initial))) => {
                return Err(initial_cannot_deactivate())
            }
            (Command::Deactivate { .. }, Some((_, Inactive))) => {
                return Err(Error::precondition(
                    ids::ALREADY_INACTIVE,
                    "User already inactive",
                ))
            }
            (Command::Reactivate { reason }, Some((_, Inactive))) => EventPayload::Reactivated {
                reason: reason.clone(),
            },
            (Command::Reactivate { .. }, _) => {
                return Err(Error::precondition(
                    ids::NOT_INACTIVE,
                    "User is not inactive",
                ))
            }
            (Command::Remove { reason }, Some(_)) => EventPayload::Removed {
                reason: reason.clone(),
            },
        };
        Ok(vec![event])
    }
}

fn initial_cannot_deactivate() -> Error {
    Error::precondition(
        ids::INITIAL_CANNOT_DEACTIVATE,
        "User with state initial can only be deleted not deactivated",
    )
}

/// A check is refused on a user that cannot log in for a reason the check
/// cannot change; an expired lock is first recorded as unlocked.
fn decide_check(
    user: &User,
    factor: Factor,
    succeeded: bool,
    now: Timestamp,
    policy: &LockoutPolicy,
) -> Result<Vec<EventPayload>> {
    let mut events = Vec::new();
    let mut failed = user.failed_checks.get(factor);
    match user.state {
        UserState::Active | UserState::Initial => {}
        UserState::Locked if !user.is_locked_at(now) => {
            events.push(EventPayload::Unlocked {
                cause: UnlockCause::Expired,
                reason: None,
                resets_escalation: false,
            });
            failed = 0;
        }
        UserState::Locked => return Err(Error::precondition(ids::LOGIN_LOCKED, "User is locked")),
        UserState::Inactive => {
            return Err(Error::precondition(
                ids::LOGIN_INACTIVE,
                "User is not active",
            ))
        }
        UserState::Deleted => return Err(Error::not_found()),
    }
    if succeeded {
        if failed > 0 || user.lockouts > 0 || !events.is_empty() {
            events.push(EventPayload::CheckSucceeded { factor });
        }
    } else {
        events.push(EventPayload::CheckFailed { factor });
        let limit = policy.limit(factor);
        if limit > 0 && failed.saturating_add(1) >= limit {
            events.push(EventPayload::Locked {
                reason: None,
                expires_at: policy.lock_expiry(now, user.lockouts),
                cause: LockCause::Lockout,
            });
        }
    }
    Ok(events)
}
