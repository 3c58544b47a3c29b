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

    /// Parses a state's name, exactly as written (case matters): the
    /// lowercase [`UserState::as_str`] or the API name
    /// ([`UserState::api_name`], e.g. `USER_STATE_LOCKED`). The same rule
    /// serves [`std::str::FromStr`].
    ///
    /// # Errors
    /// InvalidArgument for any other text, naming the accepted values.
    pub fn parse(text: &str) -> Result<Self> {
        UserState::ALL
            .into_iter()
            .find(|s| s.as_str() == text || s.api_name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = UserState::ALL.iter().map(|s| s.as_str()).collect();
                Error::invalid(
                    ids::INVALID_NAME,
                    format!(
                        "unknown user state; accepted are {} or their API names \
                         (USER_STATE_ACTIVE, ...)",
                        names.join(", ")
                    ),
                )
            })
    }
}

impl std::str::FromStr for UserState {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        UserState::parse(text)
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
