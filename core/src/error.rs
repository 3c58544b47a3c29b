//! The one error type of the library: a kind (which [`crate::wire`] maps to
//! the seeds' gRPC codes and HTTP statuses), a stable machine-readable id and
//! an English message.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely: decides the gRPC code and HTTP status
/// ([`ErrorKind::grpc_code`], [`ErrorKind::http_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An id, organisation, reason or query parameter is empty, too long or malformed.
    InvalidArgument,
    /// The user does not exist, is deleted, or belongs to another organisation.
    NotFound,
    /// A user with this id exists or existed (ids are never reused).
    AlreadyExists,
    /// The caller lacks the permission in the targeted organisation.
    PermissionDenied,
    /// The command is not allowed in the user's current state.
    FailedPrecondition,
    /// A concurrent writer won and retrying did not resolve it.
    Aborted,
    /// A repository's answer to an update whose commit was built on a
    /// sequence the user has moved on from ([`crate::storage::Conflict`]).
    /// The service decides the command again on it; its callers get
    /// Aborted when that does not settle, never this kind.
    Conflict,
    /// The storage backend cannot be reached or stayed busy past its timeout.
    Unavailable,
    /// Stored data cannot be decoded, or another backend fault.
    Internal,
}

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The library's error: match on [`Error::kind`], log [`Error::id`].
///
/// Two errors are equal when kind, id and message are equal; the source is
/// diagnostic only. Messages never carry data of an organisation other than
/// the one the caller targeted.
#[derive(Clone, thiserror::Error)]
#[error("{message} ({id})")]
#[non_exhaustive]
pub struct Error {
    kind: ErrorKind,
    id: &'static str,
    message: Cow<'static, str>,
    attempts: Option<Attempts>,
    #[source]
    source: Option<Source>,
}

/// Failed-attempt figures a failed authentication check may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempts {
    /// Consecutive failed checks of the factor, this one included.
    pub failed: u32,
    /// Checks left before the user is locked; `None` when the policy never locks.
    pub remaining: Option<u32>,
}

impl Error {
    /// An error of `kind` with a stable `id` (`USER-...`) and an English message.
    pub fn new(kind: ErrorKind, id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            id,
            message: message.into(),
            attempts: None,
            source: None,
        }
    }

    /// Attaches the underlying cause (kept for logs, not shown in the body).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Attaches failed-attempt figures (shown in the body's detail).
    pub fn with_attempts(mut self, attempts: Attempts) -> Self {
        self.attempts = Some(attempts);
        self
    }

    /// The failed-attempt figures of a failed check, if shown.
    pub fn attempts(&self) -> Option<Attempts> {
        self.attempts
    }

    /// The coarse kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable machine-readable id, e.g. `USER-NOT-LOCKED`.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The English message, without the id.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True for a repository's [`crate::storage::Conflict`] (kind
    /// [`ErrorKind::Conflict`]): the one error the service retries on.
    pub fn is_conflict(&self) -> bool {
        self.kind == ErrorKind::Conflict
    }

    pub(crate) fn invalid(id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::InvalidArgument, id, message)
    }

    pub(crate) fn precondition(id: &'static str, message: &'static str) -> Self {
        Error::new(ErrorKind::FailedPrecondition, id, message)
    }

    /// The user does not exist in the targeted organisation.
    pub fn not_found() -> Self {
        Error::new(ErrorKind::NotFound, ids::NOT_FOUND, "User not found")
    }

    /// Adapters: the backend cannot be reached or is busy past its timeout.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Unavailable, ids::UNAVAILABLE, message)
    }

    /// Adapters: the backend went away after the commit was sent, so the
    /// command may have applied or not (kind Unavailable, id
    /// [`ids::OUTCOME_UNKNOWN`]). It never applied in part: re-reading the
    /// user tells which.
    pub fn outcome_unknown(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Unavailable, ids::OUTCOME_UNKNOWN, message)
    }

    /// Whether the command this error answers may have applied
    /// ([`Error::outcome_unknown`]); every other error means it did not.
    pub fn is_outcome_unknown(&self) -> bool {
        self.id == ids::OUTCOME_UNKNOWN
    }

    /// Adapters: stored data cannot be decoded or is of an unknown format.
    pub fn corrupt(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Internal, ids::CORRUPT, message)
    }

    /// Adapters: any other backend fault.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Internal, ids::INTERNAL, message)
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.id == other.id
            && self.message == other.message
            && self.attempts == other.attempts
    }
}

impl Eq for Error {}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind)
            .field("id", &self.id)
            .field("message", &self.message);
        if let Some(attempts) = &self.attempts {
            d.field("attempts", attempts);
        }
        if let Some(source) = &self.source {
            d.field("source", &format_args!("{source}"));
        }
        d.finish()
    }
}

/// The stable error ids. They never change meaning once released.
pub mod ids {
    /// A user id is empty, too long or contains control characters.
    pub const INVALID_USER_ID: &str = "USER-ARG-USER-ID";
    /// An organisation id is empty, too long or contains control characters.
    pub const INVALID_ORG_ID: &str = "USER-ARG-ORG-ID";
    /// A lock reason is empty, too long or contains control characters.
    pub const INVALID_REASON: &str = "USER-ARG-REASON";
    /// A lock expiry is not in the future, or a time is out of range.
    pub const INVALID_TIME: &str = "USER-ARG-TIME";
    /// A page size is zero or above the maximum, or a state filter is not listable.
    pub const INVALID_QUERY: &str = "USER-ARG-QUERY";
    /// An unknown permission or state name.
    pub const INVALID_NAME: &str = "USER-ARG-NAME";
    /// A lockout policy is inconsistent.
    pub const INVALID_POLICY: &str = "USER-ARG-POLICY";
    /// A storage backend spec is unknown, or names a path of the wrong
    /// kind (a folder for a file-backed backend, a file for a folder).
    pub const INVALID_BACKEND: &str = "USER-ARG-BACKEND";
    /// The user does not exist in the targeted organisation.
    pub const NOT_FOUND: &str = "USER-NOT-FOUND";
    /// The id exists or existed.
    pub const ALREADY_EXISTS: &str = "USER-EXISTS";
    /// The caller lacks a permission.
    pub const PERMISSION_DENIED: &str = "USER-PERMISSION";
    /// The caller's own stored user cannot log in (PermissionDenied).
    pub const CALLER_CANNOT_LOG_IN: &str = "USER-CALLER-CANNOT-LOG-IN";
    /// Unlock on a user that is not locked.
    pub const NOT_LOCKED: &str = "USER-NOT-LOCKED";
    /// Lock on a locked user.
    pub const ALREADY_LOCKED: &str = "USER-ALREADY-LOCKED";
    /// Lock on a user that is neither active nor initial.
    pub const NOT_ACTIVE_OR_INITIAL: &str = "USER-NOT-ACTIVE-OR-INITIAL";
    /// Deactivate on an inactive user.
    pub const ALREADY_INACTIVE: &str = "USER-ALREADY-INACTIVE";
    /// Reactivate on a user that is not inactive.
    pub const NOT_INACTIVE: &str = "USER-NOT-INACTIVE";
    /// Deactivate on an initial user.
    pub const INITIAL_CANNOT_DEACTIVATE: &str = "USER-INITIAL-DEACTIVATE";
    /// Complete initialisation on a user that is not initial.
    pub const NOT_INITIAL: &str = "USER-NOT-INITIAL";
    /// Login refused: the user is locked.
    pub const LOGIN_LOCKED: &str = "USER-LOGIN-LOCKED";
    /// Login refused: the user is inactive.
    pub const LOGIN_INACTIVE: &str = "USER-LOGIN-INACTIVE";
    /// Login refused: the user has not completed initialisation.
    pub const LOGIN_INITIAL: &str = "USER-LOGIN-INITIAL";
    /// A recorded password check failed.
    pub const PASSWORD_INVALID: &str = "USER-PASSWORD-INVALID";
    /// A recorded one-time-password check failed.
    pub const OTP_INVALID: &str = "USER-OTP-INVALID";
    /// A repository's conflict (kind Conflict; the service decides again).
    pub const CONFLICT: &str = "USER-CONFLICT";
    /// Retrying after conflicts did not resolve the command.
    pub const ABORTED: &str = "USER-ABORTED";
    /// The backend is unreachable or busy.
    pub const UNAVAILABLE: &str = "USER-UNAVAILABLE";
    /// The backend went away after a commit was sent: it may or may not
    /// have applied (never half); reading the user tells.
    pub const OUTCOME_UNKNOWN: &str = "USER-OUTCOME-UNKNOWN";
    /// Stored data cannot be decoded or has an unknown format version.
    pub const CORRUPT: &str = "USER-CORRUPT";
    /// Another backend fault.
    pub const INTERNAL: &str = "USER-INTERNAL";
}
