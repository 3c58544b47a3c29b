//! The reads: one user, a page of a user's history, a page of an
//! organisation's users. Each is a single statement, so it is its own read
//! transaction and sees every commit acknowledged before it started. The
//! writer reads a user with the same [`load`], inside its transaction.

use rusqlite::{params, Connection, OptionalExtension, Row};
use userstate::storage::page_of;
use userstate::{
    Error, Event, HistoryQuery, ListQuery, OrgId, Page, Result, User, UserId, UserState,
};

use crate::error::from_sqlite;
use crate::layout::{HISTORY, LIST_EXISTING, LIST_IN_STATE, LOAD};
use crate::record::{decode_event, decode_user, EventRow, StateName, UserRow};

/// The stored snapshot of `id`, if the id was ever used.
pub(crate) fn load(conn: &Connection, id: &UserId) -> Result<Option<User>> {
    let row = conn
        .prepare_cached(LOAD)
        .and_then(|mut select| select.query_row([id.as_str()], user_row).optional())
        .map_err(from_sqlite)?;
    let user = row.as_ref().map(decode_user).transpose()?;
    match user {
        // The key the row was found by is the id it holds, unless damaged.
        Some(user) if user.id != *id => Err(Error::corrupt(format!(
            "the row found for user {id} holds another id"
        ))),
        user => Ok(user),
    }
}

/// Events of `id` after `query.after_sequence`, at most `query.limit`.
pub(crate) fn history(conn: &Connection, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
    // Past i64::MAX there is nothing: no stored sequence is that large.
    let after = i64::try_from(query.after_sequence).unwrap_or(i64::MAX);
    let rows = conn
        .prepare_cached(HISTORY)
        .and_then(|mut select| {
            select
                .query_map(params![id.as_str(), after, query.limit], |row| {
                    Ok((row.get::<_, String>(6)?, event_row(row)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    let mut previous = after;
    rows.iter()
        .map(|(user, row)| {
            // Found by (user, sequence), so a row of another user or out
            // of order is damage.
            if user != id.as_str() || row.sequence <= previous {
                return Err(Error::corrupt(format!(
                    "the history of user {id} holds a row out of place"
                )));
            }
            previous = row.sequence;
            decode_event(id, row)
        })
        .collect()
}

/// A page of the users of `org` as `query` selects them, ordered by id.
pub(crate) fn list(conn: &Connection, org: &OrgId, query: &ListQuery) -> Result<Page> {
    // Ids are never empty, so every id sorts after "".
    let after = query.after.as_ref().map_or("", UserId::as_str);
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
    // ask for means an index disagrees with its table: damage, never a
    // user to show (it may be of another organisation).
    let selected = |user: User| {
        let matches = user.org_id == *org
            && query
                .state
                .map_or(user.state != UserState::Deleted, |s| s == user.state);
        if matches {
            Ok(user)
        } else {
            Err(Error::corrupt(format!(
                "an index of the users table names user {} wrongly",
                user.id
            )))
        }
    };
    page_of(
        rows.iter().map(|row| decode_user(row).and_then(selected)),
        query.limit,
    )
}

/// A `users` row as `LOAD` and the lists select it.
pub(crate) fn user_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: row.get(0)?,
        org: row.get(1)?,
        state: row.get(2)?,
        sequence: row.get(3)?,
        snapshot: row.get(4)?,
    })
}

/// An `events` row as `HISTORY` selects it.
pub(crate) fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        sequence: row.get(0)?,
        org: row.get(1)?,
        event_type: row.get(2)?,
        created_at: row.get(3)?,
        creator: row.get(4)?,
        payload: row.get(5)?,
    })
}
