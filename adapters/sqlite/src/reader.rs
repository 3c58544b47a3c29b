//! The reads: one user, a page of a user's history, a page of an
//! organisation's users. Each runs in one read transaction, so it sees
//! every commit acknowledged before it started. The writer reads a user
//! with the same [`load`], inside its transaction.
//!
//! Every row is checked against its checksum, and what a query finds
//! against what it asked for: a damaged row is Corrupt naming its user,
//! never served, and a row that is missing shows as a gap, a history that
//! ends before its snapshot, or events without a snapshot. A user outside
//! the scope is absent even when damaged: its organisation is told from
//! its column, and from the copy in its snapshot when the row is damaged.

use rusqlite::{params, Connection, OptionalExtension, Row};
use userstate::storage::{page_of, AcceptedLoss, Loss, Scope};
use userstate::{
    Error, Event, FeedEvent, HistoryQuery, ListQuery, OrgId, Page, Result, StoredPolicies,
    StoredPolicy, Timestamp, User, UserId, UserState,
};

use crate::error::from_sqlite;
use crate::layout::{
    AN_EVENT_ORG, COUNT_EXISTING, COUNT_IN_STATE, FEED, HISTORY, LIST_EXISTING, LIST_IN_STATE,
    LOAD, LOSSES, NEXT_ORG, POLICY,
};
use crate::record::{
    decode_event, decode_user, from_column, snapshot_org, EventRow, StateName, UserRow,
};

/// The stored snapshot of `id` if it is in `scope`.
///
/// # Errors
/// Corrupt, naming the user, for a damaged row that may be in the scope or
/// events without a row.
pub(crate) fn load(conn: &Connection, id: &UserId, scope: &Scope) -> Result<Option<User>> {
    let row = conn
        .prepare_cached(LOAD)
        .and_then(|mut select| select.query_row([id.as_str()], user_row).optional())
        .map_err(|e| of_user(id, from_sqlite(e)))?;
    match row {
        Some(row) => visible(&row, id, scope),
        None => without_row(conn, id, scope),
    }
}

/// The user a row stores, if it is in the scope.
fn visible(row: &UserRow, id: &UserId, scope: &Scope) -> Result<Option<User>> {
    let damage = match decode_user(row) {
        // Found by its key, a row holding another id is damage too.
        Ok(user) if user.id == *id => return Ok(scope.admits(&user.org_id).then_some(user)),
        Ok(_) => Error::corrupt(format!("the row found for user {id} holds another id")),
        Err(damage) => damage,
    };
    // A damaged row may belong to the organisation of its column, or to the
    // one its snapshot names.
    let column = OrgId::from_stored(row.org.as_str()).ok();
    let copy = snapshot_org(row);
    if scope.may_admit(column.iter().chain(copy.iter())) {
        Err(damage)
    } else {
        Ok(None)
    }
}

/// No row: a user never created, unless events of it are stored.
fn without_row(conn: &Connection, id: &UserId, scope: &Scope) -> Result<Option<User>> {
    let org: Option<String> = conn
        .prepare_cached(AN_EVENT_ORG)
        .and_then(|mut select| select.query_row([id.as_str()], |row| row.get(0)).optional())
        .map_err(|e| of_user(id, from_sqlite(e)))?;
    let Some(org) = org else {
        return Ok(None);
    };
    let org = OrgId::from_stored(org).ok();
    if scope.may_admit(org.iter()) {
        Err(Error::corrupt(format!(
            "user {id} has stored events but no stored snapshot"
        )))
    } else {
        Ok(None)
    }
}

/// Events of `id` after `query.after_sequence`, at most `query.limit`; none
/// if its user is outside `scope`.
///
/// # Errors
/// Corrupt, naming the user, for a damaged row, a gap, or a history that
/// ends before the sequence its snapshot is at.
pub(crate) fn history(
    conn: &Connection,
    id: &UserId,
    scope: &Scope,
    query: HistoryQuery,
) -> Result<Vec<Event>> {
    let Some(user) = load(conn, id, scope)? else {
        return Ok(Vec::new());
    };
    let after_sequence = query.sequence()?;
    // Past i64::MAX there is nothing: no stored sequence is that large.
    let after = i64::try_from(after_sequence).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(HISTORY)
        .and_then(|mut select| {
            select
                .query_map(params![id.as_str(), after, query.limit], event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| of_user(id, from_sqlite(e)))?;
    let out_of_place = || Error::corrupt(format!("the history of user {id} has a gap"));
    let mut expected = after_sequence;
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        expected = expected.checked_add(1).ok_or_else(out_of_place)?;
        if u64::try_from(row.sequence).ok() != Some(expected) || expected > user.sequence {
            return Err(out_of_place());
        }
        events.push(decode_event(id, row)?);
    }
    let ended = rows.len() < usize::try_from(query.limit).unwrap_or(usize::MAX);
    if ended && expected < user.sequence {
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
pub(crate) fn list(conn: &Connection, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
    let after_user = query.after_user()?;
    // Ids are never empty, so every id sorts after "".
    let after = after_user.as_ref().map_or("", UserId::as_str);
    // One more than the page, to learn whether another page follows.
    let fetch = i64::from(query.limit) + 1;
    let rows = conn
        .prepare_cached(if query.state.is_some() {
            LIST_IN_STATE
        } else {
            LIST_EXISTING
        })
        .and_then(|mut select| {
            let rows = match query.state {
                Some(state) => select.query_map(
                    params![org.as_str(), StateName::from(state).as_str(), after, fetch],
                    user_row,
                ),
                None => select.query_map(params![org.as_str(), after, fetch], user_row),
            }?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    // One statement reads a consistent state, so a row the query did not
    // ask for, or out of order, means an index disagrees with its table:
    // damage, never a user to show (it may be of another organisation).
    let mut previous = after.to_owned();
    let selected = move |user: User| {
        let matches = user.org_id == *org
            && query
                .state
                .map_or(user.state != UserState::Deleted, |s| s == user.state)
            && user.id.as_str() > previous.as_str();
        if matches {
            previous = user.id.as_str().to_owned();
            Ok(user)
        } else {
            Err(Error::corrupt(format!(
                "an index of the users table names user {} wrongly",
                user.id
            )))
        }
    };
    let mut selected = selected;
    page_of(
        rows.iter()
            .map(|row| decode_user(row).and_then(&mut selected)),
        query.limit,
    )
}

/// Up to `limit` events after feed position `after`, in position order,
/// each checked against its checksum.
///
/// # Errors
/// Corrupt, naming the user, for a row that does not decode or match.
pub(crate) fn feed(conn: &Connection, after: u64, limit: u32) -> Result<Vec<FeedEvent>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(FEED)
        .and_then(|mut select| {
            select
                .query_map(params![after, limit], event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    rows.iter()
        .map(|row| {
            let user = UserId::from_stored(row.user_id.as_str()).map_err(|e| {
                Error::corrupt(format!("a feed row names no valid user: {}", e.message()))
            })?;
            Ok(FeedEvent {
                position: u64::try_from(row.position).map_err(|_| {
                    Error::corrupt(format!("event of user {user} has a negative position"))
                })?,
                event: decode_event(&user, row)?,
            })
        })
        .collect()
}

/// The lockout policies stored for `org` and the instance default, read
/// in one transaction.
///
/// # Errors
/// Corrupt for a row that does not match its checksum or decode.
pub(crate) fn policies(conn: &Connection, org: &OrgId) -> Result<StoredPolicies> {
    let read = |key: &str| -> Result<Option<StoredPolicy>> {
        let row: Option<(String, i64)> = conn
            .prepare_cached(POLICY)
            .and_then(|mut select| {
                select
                    .query_row(params![key], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(from_sqlite)?;
        row.map(|(stored, checksum)| crate::record::decode_policy(key, &stored, checksum))
            .transpose()
    };
    conn.execute_batch("BEGIN").map_err(from_sqlite)?;
    let both = read(crate::record::policy_key(Some(org))).and_then(|own| {
        Ok(StoredPolicies {
            org: own,
            default: read(crate::record::policy_key(None))?,
        })
    });
    let _ = conn.execute_batch("COMMIT");
    both
}

/// How many users of `org` are stored in `state` (`None`: all but
/// deleted ones), from the index alone.
///
/// # Errors
/// As SQLite answers.
pub(crate) fn count(conn: &Connection, org: &OrgId, state: Option<UserState>) -> Result<u64> {
    let count: i64 = match state {
        Some(state) => conn.query_row(
            COUNT_IN_STATE,
            params![org.as_str(), StateName::from(state).as_str()],
            |row| row.get(0),
        ),
        None => conn.query_row(COUNT_EXISTING, params![org.as_str()], |row| row.get(0)),
    }
    .map_err(from_sqlite)?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// The organisations with users (removed ones included), in order, after
/// `after`, at most `limit`.
///
/// # Errors
/// As SQLite answers; Corrupt for a stored organisation that is not valid.
/// The organisations with a lockout policy of their own, in order, after
/// `after`, at most `limit` of them.
///
/// # Errors
/// Corrupt when a stored key is not an organisation id.
pub(crate) fn policy_organisations(
    conn: &Connection,
    after: Option<&OrgId>,
    limit: u32,
) -> Result<Vec<OrgId>> {
    let after = crate::record::policy_key(after);
    let keys = conn
        .prepare_cached(crate::layout::POLICY_ORGS)
        .and_then(|mut select| {
            select
                .query_map(params![after, limit], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    keys.into_iter()
        .map(|key| {
            OrgId::from_stored(key.as_str()).map_err(|e| {
                Error::corrupt(format!(
                    "the policies table holds an invalid organisation: {}",
                    e.message()
                ))
            })
        })
        .collect()
}

pub(crate) fn organisations(
    conn: &Connection,
    after: Option<&OrgId>,
    limit: u32,
) -> Result<Vec<OrgId>> {
    let mut orgs = Vec::new();
    // Organisation ids are never empty, so every one sorts after "".
    let mut last = after.map_or_else(String::new, |org| org.as_str().to_owned());
    let mut next = conn.prepare_cached(NEXT_ORG).map_err(from_sqlite)?;
    while orgs.len() < limit as usize {
        let found: Option<String> = next
            .query_row(params![last], |row| row.get(0))
            .map_err(from_sqlite)?;
        let Some(found) = found else { break };
        let org = OrgId::from_stored(found.as_str()).map_err(|e| {
            Error::corrupt(format!(
                "the users table holds an invalid organisation: {}",
                e.message()
            ))
        })?;
        last = found;
        orgs.push(org);
    }
    Ok(orgs)
}

/// The losses accepted at open, oldest first.
///
/// # Errors
/// Corrupt for a row that does not decode.
pub(crate) fn accepted_losses(conn: &Connection) -> Result<Vec<AcceptedLoss>> {
    let rows = conn
        .prepare_cached(LOSSES)
        .and_then(|mut select| {
            select
                .query_map([], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    rows.into_iter()
        .map(|(at, expected, found)| {
            Ok(AcceptedLoss {
                accepted_at: Timestamp::from_unix_millis(at)?,
                loss: Loss {
                    expected: expected.map(from_column).transpose()?,
                    found: from_column(found)?,
                },
            })
        })
        .collect()
}

/// Damage met while reading `id`, said to be its: SQLite's own errors do
/// not know which row they were reading.
fn of_user(id: &UserId, error: Error) -> Error {
    if error.id() != userstate::ids::CORRUPT || error.message().contains(id.as_str()) {
        return error;
    }
    Error::corrupt(format!(
        "the stored data of user {id} cannot be read: {}",
        error.message()
    ))
    .with_source(error)
}

/// A `users` row as `LOAD` and the lists select it.
pub(crate) fn user_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        org: row.get(1)?,
        state: row.get(2)?,
        sequence: row.get(3)?,
        snapshot: row.get(4)?,
        checksum: row.get(5)?,
    })
}

/// An `events` row as `HISTORY` selects it.
pub(crate) fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        user_id: row.get(0)?,
        sequence: row.get(1)?,
        org: row.get(2)?,
        event_type: row.get(3)?,
        created_at: row.get(4)?,
        creator: row.get(5)?,
        payload: row.get(6)?,
        checksum: row.get(7)?,
        position: row.get(8)?,
    })
}
