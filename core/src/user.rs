//! A user's current state and the one reducer that derives it from events.
//!
//! Stored snapshots are a cache of [`User::replay`]; adapters and tests compare
//! the two.

use serde::{Deserialize, Serialize};

use crate::details::Details;
use crate::error::{ids, Error, Result};
use crate::event::LockCause;
use crate::event::{Event, EventPayload};
use crate::id::{OrgId, Reason, UserId};
use crate::lockout::FailedChecks;
use crate::state::UserState;
use crate::timestamp::Timestamp;

/// A user as derived from its history.
///
/// Exhaustive on purpose: a storage adapter's record destructures it, so a
/// field added here fails to compile there until the record stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's id.
    pub id: UserId,
    /// The owning organisation.
    pub org_id: OrgId,
    /// The lifecycle state.
    pub state: UserState,
    /// The current lock, while `state` is `Locked`.
    pub lock: Option<Lock>,
    /// Sequence of the last event.
    pub sequence: u64,
    /// Time of the first event.
    pub created_at: Timestamp,
    /// Time of the last event.
    pub changed_at: Timestamp,
    /// Consecutive failed checks per factor since the last reset.
    #[serde(default)]
    pub failed_checks: FailedChecks,
    /// Lockouts by policy since the last successful check; drives growing
    /// and, eventually, permanent lockouts.
    #[serde(default)]
    pub lockouts: u32,
}

/// The lock a locked user is under (exhaustive, like [`User`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lock {
    /// Why, if the locker said.
    pub reason: Option<Reason>,
    /// When the lock stops blocking login; `None` means until unlocked.
    pub expires_at: Option<Timestamp>,
    /// When the lock was written.
    pub locked_at: Timestamp,
    /// The state `unlock` returns to: `Active` or `Initial`.
    pub previous_state: UserState,
    /// A caller's command, or the lockout policy.
    #[serde(default)]
    pub cause: LockCause,
}

impl Lock {
    /// True when the lock no longer blocks login at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

impl User {
    /// The reducer: the user after `event`, given the user before it (`None`
    /// before the first event). Infallible by design: commands are validated
    /// when they are decided, so replaying any stored history always succeeds.
    pub fn apply(before: Option<User>, event: &Event) -> User {
        let mut user = before.unwrap_or_else(|| User {
            id: event.user_id.clone(),
            org_id: event.org_id.clone(),
            state: UserState::Initial,
            lock: None,
            sequence: 0,
            created_at: event.created_at,
            changed_at: event.created_at,
            failed_checks: FailedChecks::default(),
            lockouts: 0,
        });
        match &event.payload {
            EventPayload::Added { state } => user.state = (*state).into(),
            EventPayload::Initialized | EventPayload::Reactivated { .. } => {
                user.state = UserState::Active
            }
            EventPayload::Locked {
                reason,
                expires_at,
                cause,
            } => {
                let previous_state = match (&user.lock, user.state) {
                    (Some(lock), UserState::Locked) => lock.previous_state,
                    (_, UserState::Initial) => UserState::Initial,
                    _ => UserState::Active,
                };
                user.lock = Some(Lock {
                    reason: reason.clone(),
                    expires_at: *expires_at,
                    locked_at: event.created_at,
                    previous_state,
                    cause: *cause,
                });
                user.state = UserState::Locked;
                if *cause == LockCause::Lockout {
                    user.lockouts = user.lockouts.saturating_add(1);
                }
            }
            EventPayload::Unlocked {
                resets_escalation, ..
            } => {
                user.state = user
                    .lock
                    .take()
                    .map_or(UserState::Active, |lock| lock.previous_state);
                user.failed_checks = FailedChecks::default();
                if *resets_escalation {
                    user.lockouts = 0;
                }
            }
            EventPayload::Deactivated { .. } => {
                user.lock = None;
                user.state = UserState::Inactive;
            }
            EventPayload::Removed { .. } => {
                user.lock = None;
                user.state = UserState::Deleted;
            }
            EventPayload::CheckSucceeded { factor } => {
                *user.failed_checks.get_mut(*factor) = 0;
                user.lockouts = 0;
            }
            EventPayload::CheckFailed { factor } => {
                let count = user.failed_checks.get_mut(*factor);
                *count = count.saturating_add(1);
            }
            EventPayload::PasswordChanged => user.failed_checks.password = 0,
        }
        user.sequence = event.sequence;
        user.changed_at = event.created_at;
        user
    }

    /// Folds a history into the user it describes; `None` for an empty history.
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<User> {
        events
            .into_iter()
            .fold(None, |user, event| Some(User::apply(user, event)))
    }

    /// The details of the user as of its last event.
    pub fn details(&self) -> Details {
        Details {
            id: self.id.clone(),
            sequence: self.sequence,
            creation_date: self.created_at,
            change_date: self.changed_at,
            resource_owner: self.org_id.clone(),
        }
    }

    /// True when the user is locked and the lock has not expired at `now`.
    pub fn is_locked_at(&self, now: Timestamp) -> bool {
        self.state == UserState::Locked && !self.lock.as_ref().is_some_and(|l| l.is_expired(now))
    }

    /// The state in force at `now`: the stored state, except that a user
    /// whose temporary lock has expired is in the state it had before the
    /// lock.
    pub fn state_at(&self, now: Timestamp) -> UserState {
        match &self.lock {
            Some(lock) if self.state == UserState::Locked && lock.is_expired(now) => {
                lock.previous_state
            }
            _ => self.state,
        }
    }

    /// The user as it is in force at `now`, as reads show it: a lock that
    /// has expired is gone and the user is in the state it had before it
    /// (the next check or command on the user records the unlock).
    pub fn in_force(mut self, now: Timestamp) -> User {
        let state = self.state_at(now);
        if state != self.state {
            self.state = state;
            self.lock = None;
        }
        self
    }

    /// Whether the user may log in at `now`: only `Active` users may, and a
    /// lock whose expiry has passed no longer blocks.
    ///
    /// # Errors
    /// FailedPrecondition saying why not; NotFound for a deleted user.
    pub fn login_allowed(&self, now: Timestamp) -> Result<()> {
        match self.state {
            UserState::Active => Ok(()),
            UserState::Locked => match &self.lock {
                Some(lock) if lock.is_expired(now) => match lock.previous_state {
                    UserState::Initial => Err(login_initial()),
                    _ => Ok(()),
                },
                _ => Err(Error::precondition(ids::LOGIN_LOCKED, "User is locked")),
            },
            UserState::Inactive => Err(Error::precondition(
                ids::LOGIN_INACTIVE,
                "User is not active",
            )),
            UserState::Initial => Err(login_initial()),
            UserState::Deleted => Err(Error::not_found()),
        }
    }
}

fn login_initial() -> Error {
    Error::precondition(ids::LOGIN_INITIAL, "User is not initialised")
}
