//! The reads: users by id, a page of a user's history, a page of an
//! organisation's users, counts, organisations, the feed, the policies.
//! Each statement sees every commit acknowledged before it started; the
//! writer reads its batch's users with the same [`load_many`], inside its
//! transaction.
//!
//! What a query finds is checked against what it asked for: a row that
//! does not decode is Corrupt naming its user, never served, and a missing
//! row shows as a gap, a history that ends before its snapshot, or events
//! without a snapshot. A user outside the scope is absent even when
//! damaged: its organisation is told from its column, and from the copy in
//! its snapshot when the row is damaged.

use std::collections::HashMap;

use deadpool_postgres::ClientWrapper;
use userstate::storage::{page_of, Scope};
use userstate::{
    Error, Event, FeedEvent, HistoryQuery, ListQuery, OrgId, Page, Result, StoredPolicies, User,
    UserId, UserState,
};

use crate::error::from_postgres;
use crate::layout::Statements;
use crate::record::{
    decode_event, decode_feed_event, decode_policy, decode_user, policy_key, snapshot_org,
    EventRow, UserRow,
};

/// A user as read, before any scope is applied.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    /// Never created (or nothing of it is left).
    Absent,
    /// Its row decoded.
    Found(User),
    /// Its row does not decode, or it has events but no row: the error,
    /// and the organisations it may belong to.
    Damaged(Error, Vec<OrgId>),
}

impl Stored {
    /// The user as a read in `scope` sees it.
    ///
    /// # Errors
    /// The damage, when the user may be in the scope.
    pub(crate) fn in_scope(&self, scope: &Scope) -> Result<Option<User>> {
        match self {
            Stored::Absent => Ok(None),
            Stored::Found(user) => Ok(scope.admits(&user.org_id).then(|| user.clone())),
            Stored::Damaged(error, orgs) => {
                if scope.may_admit(orgs.iter()) {
                    Err(error.clone())
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// The user as stored, for the writer: its sequence is what a commit
    /// on it must find.
    pub(crate) fn user(&self) -> Option<&User> {
        match self {
            Stored::Found(user) => Some(user),
            _ => None,
        }
    }
}

/// The users `ids` name, as stored, by id, in one statement.
///
/// # Errors
/// As PostgreSQL answers; damage is reported per user.
pub(crate) async fn load_many(
    client: &ClientWrapper,
    statements: &Statements,
    ids: &[&str],
) -> Result<HashMap<String, Stored>> {
    let select = client
        .prepare_cached(&statements.load_many)
        .await
        .map_err(from_postgres)?;
    load_many_with(client, &select, ids).await
}

/// [`load_many`] with the statement prepared on `client` (the writer's).
///
/// # Errors
/// As [`load_many`].
pub(crate) async fn load_many_with(
    client: &tokio_postgres::Client,
    select: &tokio_postgres::Statement,
    ids: &[&str],
) -> Result<HashMap<String, Stored>> {
    let rows = client.query(select, &[&ids]).await.map_err(from_postgres)?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get(0).map_err(from_postgres)?;
            let stored = stored(row).map_err(from_postgres)?;
            Ok((id, stored))
        })
        .collect()
}

/// What one row of `load_many` says of its user.
fn stored(row: &tokio_postgres::Row) -> std::result::Result<Stored, tokio_postgres::Error> {
    let id: String = row.try_get(0)?;
    let org: Option<String> = row.try_get(1)?;
    let Some(org) = org else {
        let event_org: Option<String> = row.try_get(5)?;
        return Ok(match event_org {
            None => Stored::Absent,
            Some(org) => Stored::Damaged(
                Error::corrupt(format!(
                    "user {id} has stored events but no stored snapshot"
                )),
                OrgId::from_stored(org).ok().into_iter().collect(),
            ),
        });
    };
    let row = UserRow {
        id,
        org,
        state: row.try_get(2)?,
        sequence: row.try_get(3)?,
        snapshot: row.try_get(4)?,
    };
    Ok(match decode_user(&row) {
        Ok(user) => Stored::Found(user),
        Err(damage) => {
            let column = OrgId::from_stored(row.org.as_str()).ok();
            let orgs = column.into_iter().chain(snapshot_org(&row)).collect();
            Stored::Damaged(damage, orgs)
        }
    })
}

/// Each of `wanted` as a read in its scope sees it.
///
/// # Errors
/// As [`load_many`], and the damage of a user that may be in its scope.
pub(crate) async fn load_scoped(
    client: &ClientWrapper,
    statements: &Statements,
    wanted: &[(UserId, Scope)],
) -> Result<Vec<Option<User>>> {
    let ids: Vec<&str> = wanted.iter().map(|(id, _)| id.as_str()).collect();
    let stored = load_many(client, statements, &ids).await?;
    wanted
        .iter()
        .map(|(id, scope)| {
            stored
                .get(id.as_str())
                .map_or(Ok(None), |stored| stored.in_scope(scope))
        })
        .collect()
}

/// Events of `id` after `query.after_sequence`, at most `query.limit`; none
/// if its user is outside `scope`.
///
/// # Errors
/// Corrupt, naming the user, for a damaged row, a gap, or a history that
/// ends before the sequence its snapshot is at.
pub(crate) async fn history(
    client: &ClientWrapper,
    statements: &Statements,
    id: &UserId,
    scope: &Scope,
    query: HistoryQuery,
) -> Result<Vec<Event>> {
    let after_sequence = query.sequence()?;
    // Past i64::MAX there is nothing: no stored sequence is that large.
    let after = i64::try_from(after_sequence).unwrap_or(i64::MAX);
    let select = client
        .prepare_cached(&statements.history)
        .await
        .map_err(from_postgres)?;
    let limit = i64::from(query.limit);
    // Sent together: the events are read after the user, so they reach at
    // least its sequence; later ones are left for the next read.
    let wanted = [(id.clone(), scope.clone())];
    let (user, rows) = futures_util::future::join(
        load_scoped(client, statements, &wanted),
        client.query(&select, &[&id.as_str(), &after, &limit]),
    )
    .await;
    let Some(user) = user?.pop().flatten() else {
        return Ok(Vec::new());
    };
    let rows = rows.map_err(from_postgres)?;
    let out_of_place = || Error::corrupt(format!("the history of user {id} has a gap"));
    let mut expected = after_sequence;
    let mut events = Vec::with_capacity(rows.len());
    let mut complete = rows.len() < usize::try_from(query.limit).unwrap_or(usize::MAX);
    for row in &rows {
        let row = EventRow::read(row).map_err(from_postgres)?;
        if u64::try_from(row.sequence).is_ok_and(|s| s > user.sequence) {
            complete = true;
            break;
        }
        expected = expected.checked_add(1).ok_or_else(out_of_place)?;
        if u64::try_from(row.sequence).ok() != Some(expected) {
            return Err(out_of_place());
        }
        events.push(decode_event(id, &row)?);
    }
    if complete && expected < user.sequence {
        return Err(Error::corrupt(format!(
            "the history of user {id} ends at {expected}, before its snapshot's sequence {}",
            user.sequence
        )));
    }
    Ok(events)
}

/// A page of the users of `org` as `query` selects them, ordered by id.
///
/// # Errors
/// Corrupt, naming the user, when the page meets a damaged row.
pub(crate) async fn list(
    client: &ClientWrapper,
    statements: &Statements,
    org: &OrgId,
    query: &ListQuery,
) -> Result<Page<User>> {
    let after_user = query.after_user()?;
    // Ids are never empty, so every id sorts after "".
    let after = after_user.as_ref().map_or("", UserId::as_str);
    // One more than the page, to learn whether another page follows.
    let fetch = i64::from(query.limit) + 1;
    let rows = match query.state {
        Some(state) => {
            let select = client
                .prepare_cached(&statements.list_in_state)
                .await
                .map_err(from_postgres)?;
            let state = userstate::storage::json::state_name(state);
            client
                .query(&select, &[&org.as_str(), &state, &after, &fetch])
                .await
        }
        None => {
            let select = client
                .prepare_cached(&statements.list_existing)
                .await
                .map_err(from_postgres)?;
            client
                .query(&select, &[&org.as_str(), &after, &fetch])
                .await
        }
    }
    .map_err(from_postgres)?;
    let selected = |user: User| {
        let matches = user.org_id == *org
            && query
                .state
                .map_or(user.state != UserState::Deleted, |s| s == user.state);
        if matches {
            Ok(user)
        } else {
            Err(Error::corrupt(format!(
                "user {} is listed under an organisation or state it is not in",
                user.id
            )))
        }
    };
    page_of(
        rows.iter().map(|row| {
            UserRow::read(row)
                .map_err(from_postgres)
                .and_then(|row| decode_user(&row))
                .and_then(selected)
        }),
        query.limit,
    )
}

/// How many users of `org` are stored in `state` (`None`: all but
/// deleted ones), from the indexes.
///
/// # Errors
/// As PostgreSQL answers.
pub(crate) async fn count(
    client: &ClientWrapper,
    statements: &Statements,
    org: &OrgId,
    state: Option<UserState>,
) -> Result<u64> {
    let row = match state {
        Some(state) => {
            let select = client
                .prepare_cached(&statements.count_in_state)
                .await
                .map_err(from_postgres)?;
            let state = userstate::storage::json::state_name(state);
            client.query_one(&select, &[&org.as_str(), &state]).await
        }
        None => {
            let select = client
                .prepare_cached(&statements.count_existing)
                .await
                .map_err(from_postgres)?;
            client.query_one(&select, &[&org.as_str()]).await
        }
    }
    .map_err(from_postgres)?;
    let count: i64 = row.try_get(0).map_err(from_postgres)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The organisations with a lockout policy of their own, in order, after
/// `after`, at most `limit`.
///
/// # Errors
/// As PostgreSQL answers; Corrupt for a stored organisation that is not
/// valid.
pub(crate) async fn policy_organisations(
    client: &ClientWrapper,
    statements: &Statements,
    after: Option<&OrgId>,
    limit: u32,
) -> Result<Vec<OrgId>> {
    let select = &statements.policy_organisations;
    organisations_of(client, select, policy_key(after), limit, "policies").await
}

/// The organisations with users (removed ones included), in order, after
/// `after`, at most `limit`.
///
/// # Errors
/// As PostgreSQL answers; Corrupt for a stored organisation that is not
/// valid.
pub(crate) async fn organisations(
    client: &ClientWrapper,
    statements: &Statements,
    after: Option<&OrgId>,
    limit: u32,
) -> Result<Vec<OrgId>> {
    // Organisation ids are never empty, so every one sorts after "".
    let after = after.map_or("", OrgId::as_str);
    organisations_of(client, &statements.organisations, after, limit, "users").await
}

/// The organisations `select` lists after `after` from `table`.
async fn organisations_of(
    client: &ClientWrapper,
    select: &str,
    after: &str,
    limit: u32,
    table: &str,
) -> Result<Vec<OrgId>> {
    let select = client.prepare_cached(select).await.map_err(from_postgres)?;
    let rows = client
        .query(&select, &[&after, &i64::from(limit)])
        .await
        .map_err(from_postgres)?;
    rows.iter()
        .map(|row| {
            let org: String = row.try_get(0).map_err(from_postgres)?;
            OrgId::from_stored(org).map_err(|e| {
                Error::corrupt(format!(
                    "the {table} table holds an invalid organisation: {}",
                    e.message()
                ))
            })
        })
        .collect()
}

/// Up to `limit` events after feed position `after`, in position order.
///
/// # Errors
/// Corrupt, naming the user, for a row that does not decode.
pub(crate) async fn feed(
    client: &ClientWrapper,
    statements: &Statements,
    after: u64,
    limit: u32,
) -> Result<Vec<FeedEvent>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let select = client
        .prepare_cached(&statements.feed)
        .await
        .map_err(from_postgres)?;
    let rows = client
        .query(&select, &[&after, &i64::from(limit)])
        .await
        .map_err(from_postgres)?;
    rows.iter()
        .map(|row| {
            EventRow::read(row)
                .map_err(from_postgres)
                .and_then(|row| decode_feed_event(&row))
        })
        .collect()
}

/// The last position of the feed, as committed.
///
/// # Errors
/// As PostgreSQL answers.
pub(crate) async fn last_position(
    client: &tokio_postgres::Client,
    statements: &Statements,
) -> Result<u64> {
    let row = client
        .query_one(&statements.last_position, &[])
        .await
        .map_err(from_postgres)?;
    let last: i64 = row.try_get(0).map_err(from_postgres)?;
    Ok(u64::try_from(last).unwrap_or(0))
}

/// The lockout policies stored for `org` and the instance default, in one
/// statement.
///
/// # Errors
/// Corrupt for a row that does not decode.
pub(crate) async fn policies(
    client: &ClientWrapper,
    statements: &Statements,
    org: &OrgId,
) -> Result<StoredPolicies> {
    let keys = [policy_key(Some(org)), policy_key(None)];
    let select = client
        .prepare_cached(&statements.policies)
        .await
        .map_err(from_postgres)?;
    let rows = client
        .query(&select, &[&&keys[..]])
        .await
        .map_err(from_postgres)?;
    let mut policies = StoredPolicies {
        org: None,
        default: None,
    };
    for row in &rows {
        let key: String = row.try_get(0).map_err(from_postgres)?;
        let record: String = row.try_get(1).map_err(from_postgres)?;
        let policy = decode_policy(&key, &record)?;
        if key.is_empty() {
            policies.default = Some(policy);
        } else {
            policies.org = Some(policy);
        }
    }
    Ok(policies)
}
