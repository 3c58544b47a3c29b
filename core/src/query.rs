//! The reads a host asks for: a page of an organisation's users and a part
//! of a user's history, each bounded by one maximum page size.

use serde::{Deserialize, Serialize};

use crate::error::{ids, Error, Result};
use crate::id::UserId;
use crate::state::UserState;
use crate::user::User;

/// Largest page a list or history read returns.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which users of an organisation to list, and where the page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only users in this state; `None` lists all users that exist (not deleted).
    pub state: Option<UserState>,
    /// Start after this user id (the previous page's `next_after`).
    pub after: Option<UserId>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            state: None,
            after: None,
            limit: 100,
        }
    }
}

impl ListQuery {
    /// All existing users, first page of 100.
    pub fn all() -> Self {
        Self::default()
    }

    /// Users in `state`, first page of 100.
    pub fn in_state(state: UserState) -> Self {
        ListQuery {
            state: Some(state),
            ..Self::default()
        }
    }

    /// Checks the limit and the filter.
    ///
    /// # Errors
    /// InvalidArgument for a limit of 0 or above [`MAX_PAGE_SIZE`], or a
    /// `Deleted` filter (deleted users do not exist).
    pub fn validate(&self) -> Result<()> {
        check_limit(self.limit)?;
        if self.state == Some(UserState::Deleted) {
            return Err(Error::invalid(
                ids::INVALID_QUERY,
                "deleted users cannot be listed",
            ));
        }
        Ok(())
    }
}

/// One page of users, ordered by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// The users on this page.
    pub users: Vec<User>,
    /// Pass as [`ListQuery::after`] for the next page; `None` on the last page.
    pub next_after: Option<UserId>,
}

/// Which part of a user's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    /// Only events with a greater sequence.
    pub after_sequence: u64,
    /// At most this many events, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            after_sequence: 0,
            limit: MAX_PAGE_SIZE,
        }
    }
}

impl HistoryQuery {
    /// Checks the limit.
    ///
    /// # Errors
    /// InvalidArgument for a limit of 0 or above [`MAX_PAGE_SIZE`].
    pub fn validate(&self) -> Result<()> {
        check_limit(self.limit)
    }
}

fn check_limit(limit: u32) -> Result<()> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(Error::invalid(
            ids::INVALID_QUERY,
            format!("page size must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    Ok(())
}
