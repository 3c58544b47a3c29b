//! Listings by the state in force now: a user whose temporary lock has
//! expired is stored as locked until the next command records the unlock,
//! but it is listed (and counted) in the state it had before the lock.
//! Built on the repository's listings by stored state, so every adapter
//! answers alike.

use crate::error::Result;
use crate::id::{OrgId, UserId};
use crate::query::{Cursor, ListQuery, Page, MAX_PAGE_SIZE};
use crate::state::UserState;
use crate::storage::UserRepository;
use crate::timestamp::Timestamp;
use crate::user::User;

/// The page of `query` in `org` by the states in force at `now`, each
/// user as in force then.
pub(crate) async fn page(
    repo: &dyn UserRepository,
    org: &OrgId,
    query: &ListQuery,
    now: Timestamp,
) -> Result<Page<User>> {
    let limit = query.limit as usize;
    let after = query.after_user()?;
    let users = match query.state {
        Some(UserState::Locked) => {
            let in_force = |u: &User| u.is_locked_at(now);
            stored_in(
                repo,
                org,
                UserState::Locked,
                after,
                limit + 1,
                None,
                in_force,
            )
            .await?
        }
        Some(state @ (UserState::Active | UserState::Initial)) => {
            let mut users =
                stored_in(repo, org, state, after.clone(), limit + 1, None, |_| true).await?;
            // Users past the first limit + 1 of this state cannot be on the page.
            let bound = users.get(limit).map(|u| u.id.clone());
            let expired = |u: &User| u.state_at(now) == state;
            let unlocked = stored_in(
                repo,
                org,
                UserState::Locked,
                after,
                limit + 1,
                bound.as_ref(),
                expired,
            )
            .await?;
            users.extend(unlocked);
            users.sort_by(|a, b| a.id.cmp(&b.id));
            users
        }
        _ => return repo.list(org, query).await,
    };
    let users: Vec<User> = users.into_iter().map(|u| u.in_force(now)).collect();
    Ok(Page::of_probe(users, query.limit, |u| {
        Cursor::after_user(&u.id)
    }))
}

/// How many users of `org` are in `state` at `now` (`None`: all that exist).
pub(crate) async fn count(
    repo: &dyn UserRepository,
    org: &OrgId,
    state: Option<UserState>,
    now: Timestamp,
) -> Result<u64> {
    let stored = repo.count(org, state).await?;
    let Some(state @ (UserState::Locked | UserState::Active | UserState::Initial)) = state else {
        return Ok(stored);
    };
    let expired = stored_in(
        repo,
        org,
        UserState::Locked,
        None,
        usize::MAX,
        None,
        |u: &User| !u.is_locked_at(now) && (state == UserState::Locked || u.state_at(now) == state),
    )
    .await?
    .len() as u64;
    Ok(if state == UserState::Locked {
        stored.saturating_sub(expired)
    } else {
        stored + expired
    })
}

/// Up to `want` users of `org` stored in `stored` after `after` that
/// `keep` accepts, in id order, none past `bound`.
async fn stored_in(
    repo: &dyn UserRepository,
    org: &OrgId,
    stored: UserState,
    after: Option<UserId>,
    want: usize,
    bound: Option<&UserId>,
    keep: impl Fn(&User) -> bool,
) -> Result<Vec<User>> {
    let mut kept = Vec::new();
    let mut cursor = after.as_ref().map(Cursor::after_user);
    loop {
        let query = ListQuery {
            state: Some(stored),
            after: cursor,
            limit: MAX_PAGE_SIZE,
        };
        let page = repo.list(org, &query).await?;
        for user in page.items {
            if bound.is_some_and(|bound| &user.id > bound) {
                return Ok(kept);
            }
            if keep(&user) {
                kept.push(user);
                if kept.len() == want {
                    return Ok(kept);
                }
            }
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(kept),
        }
    }
}
