//! The enum names of the seeds' APIs.

use crate::state::UserState;

impl UserState {
    /// The enum name of the seeds' APIs: `USER_STATE_LOCKED` and so on.
    pub fn api_name(self) -> &'static str {
        match self {
            UserState::Initial => "USER_STATE_INITIAL",
            UserState::Active => "USER_STATE_ACTIVE",
            UserState::Locked => "USER_STATE_LOCKED",
            UserState::Inactive => "USER_STATE_INACTIVE",
            UserState::Deleted => "USER_STATE_DELETED",
        }
    }
}
