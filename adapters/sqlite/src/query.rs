//! The reads: one user, a page of a user's history, a page of an
//! organisation's users. Each is a single statement, so it is its own read
//! transaction and sees every commit acknowledged before it started.

use rusqlite::{params, Connection, OptionalExtension, Row};
use userstate::{Event, HistoryQuery, ListQuery, OrgId, Page, Result, User, UserId};

use crate::codec::{decode_event, decode_user, EventRow, UserRow};
use crate::sqlite_error::from_sqlite;

pub(crate) const LOAD: &str = "SELECT id, org, state, sequence, snapshot FROM users WHERE id = ?1";

pub(crate) const HISTORY: &str = "SELECT sequence, org, event_type, created_at, creator, payload
     FROM events WHERE user_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3";

/// Served by `users_by_org_state`.
pub(crate) const LIST_IN_STATE: &str = "SELECT id, org, state, sequence, snapshot
     FROM users WHERE org = ?1 AND state = ?2 AND id > ?3 ORDER BY id LIMIT ?4";

/// Served by the partial index `users_by_org`: the literal `state <> 'deleted'`
/// is what lets SQLite match the index's own WHERE clause.
pub(crate) const LIST_EXISTING: &str = "SELECT id, org, state, sequence, snapshot
     FROM users WHERE org = ?1 AND state <> 'deleted' AND id > ?2 ORDER BY id LIMIT ?3";

/// The stored snapshot of `id`, if the id was ever used.
pub(crate) fn load(conn: &Connection, id: &UserId) -> Result<Option<User>> {
    let row = conn
        .prepare_cached(LOAD)
        .and_then(|mut select| select.query_row([id.as_str()], user_row).optional())
        .map_err(from_sqlite)?;
    row.as_ref().map(decode_user).transpose()
}

/// Events of `id` after `query.after_sequence`, at most `query.limit`.
pub(crate) fn history(conn: &Connection, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
    // Past i64::MAX there is nothing: no stored sequence is that large.
    let after = i64::try_from(query.after_sequence).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(HISTORY)
        .and_then(|mut select| {
            select
                .query_map(params![id.as_str(), after, query.limit], event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    rows.iter().map(|row| decode_event(id, row)).collect()
}

/// A page of the users of `org` as `query` selects them, ordered by id.
pub(crate) fn list(conn: &Connection, org: &OrgId, query: &ListQuery) -> Result<Page> {
    // Ids are never empty, so every id sorts after "".
    let after = query.after.as_ref().map_or("", UserId::as_str);
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
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
                    params![org.as_str(), state.as_str(), after, fetch],
                    user_row,
                ),
                None => select.query_map(params![org.as_str(), after, fetch], user_row),
            }?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    let more = rows.len() > limit;
    let users = rows
        .iter()
        .take(limit)
        .map(decode_user)
        .collect::<Result<Vec<_>>>()?;
    let next_after = if more {
        users.last().map(|user| user.id.clone())
    } else {
        None
    };
    Ok(Page { users, next_after })
}

fn user_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        org: row.get(1)?,
        state: row.get(2)?,
        sequence: row.get(3)?,
        snapshot: row.get(4)?,
    })
}

fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        sequence: row.get(0)?,
        org: row.get(1)?,
        event_type: row.get(2)?,
        created_at: row.get(3)?,
        creator: row.get(4)?,
        payload: row.get(5)?,
    })
}
