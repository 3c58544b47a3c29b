//! Keyset paging, the same for every backend: a page is the first `limit`
//! users after the cursor, and a cursor to the next page only when one
//! more user exists.

use crate::error::Result;
use crate::query::{Cursor, Page};
use crate::user::User;

/// The page of `limit` users that `users` (the matching users after the
/// cursor, in id order, decoded lazily) begins with. Reads at most one
/// user past the page, to learn whether another page follows.
///
/// # Errors
/// The first error among the users it reads.
///
/// ```
/// use userstate::storage::page_of;
/// # use userstate::{EventPayload, InitialState, OrgId, Timestamp, User, UserId, Event};
/// # fn user(id: &str) -> userstate::Result<User> {
/// #     Ok(User::apply(None, &Event {
/// #         user_id: UserId::new(id)?, org_id: OrgId::new("acme")?, sequence: 1,
/// #         created_at: Timestamp::UNIX_EPOCH, creator: UserId::new("admin")?,
/// #         payload: EventPayload::Added { state: InitialState::Active },
/// #     }))
/// # }
/// # fn main() -> userstate::Result<()> {
/// let page = page_of(["a", "b", "c"].into_iter().map(user), 2)?;
/// assert_eq!(page.items.len(), 2);
/// assert!(page.next.is_some());
/// let last = page_of(["c"].into_iter().map(user), 2)?;
/// assert_eq!(last.next, None);
/// # Ok(()) }
/// ```
pub fn page_of(users: impl IntoIterator<Item = Result<User>>, limit: u32) -> Result<Page<User>> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut page = Vec::new();
    let mut more = false;
    for user in users {
        let user = user?;
        if page.len() == limit {
            more = true;
            break;
        }
        page.push(user);
    }
    let next = if more {
        page.last().map(|user| Cursor::after_user(&user.id))
    } else {
        None
    };
    Ok(Page { items: page, next })
}
