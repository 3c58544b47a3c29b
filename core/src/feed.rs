//! The change feed: every committed event at its global position, in
//! commit order, for hosts that react to what happens (revoke a locked
//! user's sessions, send a notice).

use serde::{Deserialize, Serialize};

use crate::error::{ids, Error, Result};
use crate::event::Event;
use crate::id::{OrgId, UserId};
use crate::query::MAX_PAGE_SIZE;

/// An event and its position in the feed: strictly increasing in commit
/// order, never reused (there may be gaps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedEvent {
    /// Where the event is in the feed; a consumer's checkpoint.
    pub position: u64,
    /// The event.
    pub event: Event,
}

/// Which part of the feed to read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedQuery {
    /// Only events after this position (0: from the start); a consumer
    /// passes its checkpoint. A position past the end is an empty page.
    pub after: u64,
    /// At most this many events, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Only events of this organisation.
    #[serde(default)]
    pub org: Option<OrgId>,
    /// Only events of this user.
    #[serde(default)]
    pub user: Option<UserId>,
    /// Only events of these types (e.g. `user.locked`); empty: all.
    #[serde(default)]
    pub event_types: Vec<String>,
}

impl FeedQuery {
    /// Every event after `after`, a page of `limit`.
    pub fn after(after: u64, limit: u32) -> Self {
        FeedQuery {
            after,
            limit,
            ..FeedQuery::default()
        }
    }

    /// Whether `event` passes the filters (the position aside).
    pub fn selects(&self, event: &Event) -> bool {
        self.org.as_ref().is_none_or(|org| *org == event.org_id)
            && self.user.as_ref().is_none_or(|user| *user == event.user_id)
            && (self.event_types.is_empty()
                || self
                    .event_types
                    .iter()
                    .any(|name| name == event.event_type()))
    }

    /// Checks the limit.
    ///
    /// # Errors
    /// InvalidArgument for a limit of 0 or above [`MAX_PAGE_SIZE`].
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_PAGE_SIZE {
            return Err(Error::invalid(
                ids::INVALID_QUERY,
                format!("page size must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(())
    }
}

/// A page of the feed for one caller: the events it may see that the query
/// selects, and the checkpoint to read on from (the last position read,
/// including events the filters or the caller's grants left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedPage {
    /// The events, in position order.
    pub events: Vec<FeedEvent>,
    /// Pass as the next query's `after`; the query's own `after` when
    /// nothing was committed after it.
    pub checkpoint: u64,
}
