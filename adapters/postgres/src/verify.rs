//! The whole-schema check: every user's row decodes and equals the replay
//! of its history, numbered from 1 without a gap, every event belongs to a
//! user with a row, and the feed holds every position from 1 to its last
//! once, each user's in sequence order.

use deadpool_postgres::ClientWrapper;
use userstate::storage::{check_user, Finding, Verification};
use userstate::{Result, UserId};

use crate::error::from_postgres;
use crate::layout::Statements;
use crate::record::{decode_event, decode_user, EventRow, UserRow};

/// Users read per round.
const PAGE: i64 = 1000;

/// Checks everything, a page of users at a time, in one repeatable-read
/// transaction so that commands going on do not show as damage.
///
/// # Errors
/// Unavailable or Internal when the database cannot be read; damage is
/// reported in the [`Verification`].
pub(crate) async fn everything(
    client: &ClientWrapper,
    statements: &Statements,
) -> Result<Verification> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(from_postgres)?;
    let checked = check(client, statements).await;
    let _ = client.batch_execute("ROLLBACK").await;
    checked
}

async fn check(client: &ClientWrapper, statements: &Statements) -> Result<Verification> {
    let mut verification = Verification::default();
    let found = |user: Option<&str>, problem: String| Finding {
        user: user.and_then(|id| UserId::from_stored(id).ok()),
        problem,
    };
    let users = client
        .prepare_cached(&statements.all_users)
        .await
        .map_err(from_postgres)?;
    let events = client
        .prepare_cached(&statements.all_events)
        .await
        .map_err(from_postgres)?;
    let mut after = String::new();
    loop {
        let rows = client
            .query(&users, &[&after, &PAGE])
            .await
            .map_err(from_postgres)?;
        let Some(last) = rows.last() else { break };
        after = last.try_get(0).map_err(from_postgres)?;
        let rows: Vec<UserRow> = rows
            .iter()
            .map(UserRow::read)
            .collect::<std::result::Result<_, _>>()
            .map_err(from_postgres)?;
        let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
        let event_rows: Vec<EventRow> = client
            .query(&events, &[&ids])
            .await
            .map_err(from_postgres)?
            .iter()
            .map(EventRow::read)
            .collect::<std::result::Result<_, _>>()
            .map_err(from_postgres)?;
        for row in &rows {
            verification.users += 1;
            let history: Vec<&EventRow> =
                event_rows.iter().filter(|e| e.user_id == row.id).collect();
            verification.events += history.len() as u64;
            let user = match decode_user(row) {
                Ok(user) => user,
                Err(damage) => {
                    verification
                        .findings
                        .push(found(Some(&row.id), damage.message().to_owned()));
                    continue;
                }
            };
            let decoded: Result<Vec<_>> =
                history.iter().map(|e| decode_event(&user.id, e)).collect();
            match decoded {
                Err(damage) => verification
                    .findings
                    .push(found(Some(&row.id), damage.message().to_owned())),
                Ok(history) => {
                    if let Some(problem) = check_user(&user, &history) {
                        verification.findings.push(found(Some(&row.id), problem));
                    }
                }
            }
        }
    }
    let sql = |query: String| async move {
        let row = client.query_one(&query, &[]).await.map_err(from_postgres)?;
        let value: i64 = row.try_get(0).map_err(from_postgres)?;
        Ok::<i64, userstate::Error>(value)
    };
    let s = &statements.quoted;
    let orphans = sql(format!(
        "SELECT count(*) FROM {s}.events e WHERE NOT EXISTS \
         (SELECT 1 FROM {s}.users u WHERE u.id = e.user_id)"
    ))
    .await?;
    if orphans > 0 {
        verification.findings.push(found(
            None,
            format!("{orphans} stored events belong to no stored user"),
        ));
    }
    let events = sql(format!("SELECT count(*) FROM {s}.events")).await?;
    let highest = sql(format!("SELECT coalesce(max(position), 0) FROM {s}.events")).await?;
    let last = sql(format!("SELECT last FROM {s}.feed")).await?;
    if events != last || highest != last {
        verification.findings.push(found(
            None,
            format!(
                "the feed is not whole: {events} events, positions up to {highest}, \
                 the feed's last position {last}"
            ),
        ));
    }
    let out_of_order = sql(format!(
        "SELECT count(*) FROM (SELECT position < lag(position) OVER \
         (PARTITION BY user_id ORDER BY sequence) AS earlier FROM {s}.events) t WHERE earlier"
    ))
    .await?;
    if out_of_order > 0 {
        verification.findings.push(found(
            None,
            format!("{out_of_order} events are in the feed before an earlier event of their user"),
        ));
    }
    Ok(verification)
}
