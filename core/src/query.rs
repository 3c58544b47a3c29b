//! The reads a host asks for: a page of an organisation's users and a part
//! of a user's history, each answered as the same [`Page`] with an opaque
//! [`Cursor`], bounded by one default and one maximum page size.

use serde::{Deserialize, Serialize};

use crate::error::{ids, Error, Result};
use crate::id::UserId;
use crate::state::UserState;

/// Page size of a paged read that names none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Largest page any paged read returns.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Where the next page of a paged read starts: pass it back as the query's
/// `after`. Opaque: hosts carry it (in a URL, a JSON body), never build or
/// read it; a cursor of one read means nothing to another.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// The cursor after `user` in a listing of users (for adapters, whose
    /// pages end at a user).
    pub fn after_user(user: &UserId) -> Self {
        Cursor(user.as_str().to_owned())
    }

    /// The cursor after `org` in a listing of organisations.
    pub fn after_org(org: &crate::id::OrgId) -> Self {
        Cursor(org.as_str().to_owned())
    }

    /// The cursor after event `sequence` of a history.
    pub fn after_sequence(sequence: u64) -> Self {
        Cursor(sequence.to_string())
    }

    /// A cursor as a host carried it, e.g. from a request.
    ///
    /// # Errors
    /// InvalidArgument when empty or longer than any cursor a read gives.
    pub fn parse(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        if text.is_empty() || text.len() > crate::id::MAX_ID_BYTES {
            return Err(invalid_cursor());
        }
        Ok(Cursor(text))
    }

    /// The cursor's text, to carry it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn user(&self) -> Result<UserId> {
        UserId::new(self.0.as_str()).map_err(|_| invalid_cursor())
    }

    fn sequence(&self) -> Result<u64> {
        self.0.parse().map_err(|_| invalid_cursor())
    }
}

fn invalid_cursor() -> Error {
    Error::invalid(
        ids::INVALID_QUERY,
        "cursor is not one this read gave; pass back a page's `next`",
    )
}

/// One page of a paged read: its items in order, and where the next page
/// starts (`None` on the last page). Every paged read answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Pass as the query's `after` for the next page; `None` on the last.
    pub next: Option<Cursor>,
}

impl<T> Page<T> {
    /// The page of `limit` items that `items` (read with one more than
    /// `limit`, to learn whether another page follows) begins with, its
    /// cursor made from the last item on it.
    pub(crate) fn of_probe(
        mut items: Vec<T>,
        limit: u32,
        cursor: impl FnOnce(&T) -> Cursor,
    ) -> Self {
        let limit = limit as usize;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Page { items, next }
    }
}

/// Which users of an organisation to list, and where the page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only users in this state as it is in force now (a user whose
    /// temporary lock expired counts in the state it had before the lock);
    /// `None` lists all users that exist. `Deleted` lists removed users,
    /// for callers with an instance-wide `user.read` only.
    pub state: Option<UserState>,
    /// Start after this cursor (the previous page's `next`).
    pub after: Option<Cursor>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            state: None,
            after: None,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

impl ListQuery {
    /// All existing users, first page of [`DEFAULT_PAGE_SIZE`].
    pub fn all() -> Self {
        Self::default()
    }

    /// Users in `state`, first page of [`DEFAULT_PAGE_SIZE`].
    pub fn in_state(state: UserState) -> Self {
        ListQuery {
            state: Some(state),
            ..Self::default()
        }
    }

    /// Checks the limit and the cursor.
    ///
    /// # Errors
    /// InvalidArgument for a limit of 0 or above [`MAX_PAGE_SIZE`], or a
    /// cursor that no listing gave.
    pub fn validate(&self) -> Result<()> {
        check_limit(self.limit)?;
        self.after_user().map(drop)
    }

    /// The user the page starts after, for adapters.
    ///
    /// # Errors
    /// InvalidArgument for a cursor that no listing gave.
    pub fn after_user(&self) -> Result<Option<UserId>> {
        self.after.as_ref().map(Cursor::user).transpose()
    }
}

/// Which part of a user's history to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    /// Start after this cursor (the previous page's `next`): only events
    /// after it.
    pub after: Option<Cursor>,
    /// At most this many events, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            after: None,
            limit: DEFAULT_PAGE_SIZE,
        }
    }
}

impl HistoryQuery {
    /// The events after `sequence`, a page of `limit`.
    pub fn after_sequence(sequence: u64, limit: u32) -> Self {
        HistoryQuery {
            after: (sequence > 0).then(|| Cursor::after_sequence(sequence)),
            limit,
        }
    }

    /// Checks the limit and the cursor.
    ///
    /// # Errors
    /// InvalidArgument for a limit of 0 or above [`MAX_PAGE_SIZE`], or a
    /// cursor that no history gave.
    pub fn validate(&self) -> Result<()> {
        check_limit(self.limit)?;
        self.sequence().map(drop)
    }

    /// The sequence the page starts after (0: from the first event), for
    /// adapters.
    ///
    /// # Errors
    /// InvalidArgument for a cursor that no history gave.
    pub fn sequence(&self) -> Result<u64> {
        self.after.as_ref().map_or(Ok(0), Cursor::sequence)
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

/// Every item of a paged read, page after page, as one `Stream`: `fetch`
/// reads the page after a cursor (`None`: the first page). Stops after the
/// last page or at the first error, which it yields.
///
/// ```
/// use futures::TryStreamExt;
/// use userstate::{walk_pages, Cursor, Page};
/// # fn main() -> userstate::Result<()> {
/// let pages = |after: Option<Cursor>| async move {
///     let start = after.map_or(0, |c| c.as_str().parse::<u64>().unwrap());
///     let next = (start < 4).then(|| Cursor::after_sequence(start + 2));
///     Ok(Page { items: vec![start + 1, start + 2], next })
/// };
/// let all: Vec<u64> = futures::executor::block_on(walk_pages(pages).try_collect())?;
/// assert_eq!(all, [1, 2, 3, 4, 5, 6]);
/// # Ok(()) }
/// ```
pub fn walk_pages<T, F, Fut>(fetch: F) -> impl futures_util::Stream<Item = Result<T>>
where
    F: FnMut(Option<Cursor>) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    struct Walk<T, F> {
        fetch: F,
        buffered: std::vec::IntoIter<T>,
        next: Option<Option<Cursor>>,
    }
    let start = Walk {
        fetch,
        buffered: Vec::new().into_iter(),
        next: Some(None),
    };
    futures_util::stream::unfold(start, |mut walk| async move {
        loop {
            if let Some(item) = walk.buffered.next() {
                return Some((Ok(item), walk));
            }
            let after = walk.next.take()?;
            match (walk.fetch)(after).await {
                Ok(page) => {
                    walk.buffered = page.items.into_iter();
                    walk.next = page.next.map(Some);
                }
                Err(error) => return Some((Err(error), walk)),
            }
        }
    })
}
