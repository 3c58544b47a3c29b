//! The lifecycle states of a user.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ids, Error, Result};

/// Where a user is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UserState {
    /// Created; initialisation (e.g. setting a first password) not completed.
    Initial,
    /// May log in.
    Active,
    /// Locked by an administrator or by the lockout policy.
    Locked,
    /// Deactivated; can be reactivated.
    Inactive,
    /// Removed; behaves as if it never existed, but its id stays taken.
    Deleted,
}

impl UserState {
    /// All states, in declaration order.
    pub const ALL: [UserState; 5] = [
        UserState::Initial,
        UserState::Active,
        UserState::Locked,
        UserState::Inactive,
        UserState::Deleted,
    ];

    /// The lowercase name: `initial`, `active`, `locked`, `inactive`, `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Initial => "initial",
            UserState::Active => "active",
            UserState::Locked => "locked",
            UserState::Inactive => "inactive",
            UserState::Deleted => "deleted",
        }
    }

    /// Parses either [`UserState::as_str`] or the API name ([`UserState::api_name`]).
    ///
    /// # Errors
    /// InvalidArgument for any other text.
    pub fn parse(text: &str) -> Result<Self> {
        UserState::ALL
            .into_iter()
            .find(|s| s.as_str() == text || s.api_name() == text)
            .ok_or_else(|| Error::invalid(ids::INVALID_NAME, "unknown user state"))
    }
}

impl fmt::Display for UserState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state a user is created in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum InitialState {
    /// Ready to log in.
    Active,
    /// Must complete initialisation first.
    Initial,
}

impl From<InitialState> for UserState {
    fn from(value: InitialState) -> Self {
        match value {
            InitialState::Active => UserState::Active,
            InitialState::Initial => UserState::Initial,
        }
    }
}
