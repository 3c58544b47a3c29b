//! Checking a whole database: SQLite's own checks of its pages, then every
//! row decoded against its checksum, every snapshot against the replay of
//! its history, each user's feed positions in sequence order, and the count
//! of events against what was committed.

use rusqlite::{params, Connection};
use userstate::storage::{check_user, Finding, Verification};
use userstate::{Error, Result, UserId};

use crate::error::from_sqlite;
use crate::layout::{COMMITTED, HISTORY};
use crate::reader::{event_row, user_row};
use crate::record::{self, decode_event, decode_user};

/// The most problems SQLite's checks report before they stop.
const REPORTED: u32 = 100;

/// SQLite's `quick_check`: every page and b-tree well formed, every record
/// well formed, without comparing indexes with their tables. About half a
/// second for a million users.
///
/// # Errors
/// Corrupt with SQLite's first findings when the check finds anything.
pub(crate) fn structure(conn: &Connection) -> Result<()> {
    let findings = pragma_check(conn, "quick_check")?;
    match findings.first() {
        None => Ok(()),
        Some(first) => Err(Error::corrupt(format!(
            "SQLite's check of the file found {} problems (the first: {first}); \
             nothing was written. Restore the file from a backup",
            findings.len()
        ))),
    }
}

/// Everything: SQLite's `integrity_check` (which also compares every index
/// with its table), then every user and event, in one read transaction.
///
/// # Errors
/// Unavailable or Internal when the database cannot be read; what is
/// damaged is reported in the verification, not as an error.
pub(crate) fn everything(conn: &Connection) -> Result<Verification> {
    conn.execute_batch("BEGIN").map_err(from_sqlite)?;
    let mut verification = Verification::default();
    let read = read_everything(conn, &mut verification);
    let _ = conn.execute_batch("COMMIT");
    match read {
        Ok(()) => Ok(verification),
        // Damage SQLite met while reading ends the walk, as a finding.
        Err(e) if e.id() == userstate::ids::CORRUPT => {
            verification.findings.push(Finding {
                user: None,
                problem: e.message().to_owned(),
            });
            Ok(verification)
        }
        Err(e) => Err(e),
    }
}

fn read_everything(conn: &Connection, verification: &mut Verification) -> Result<()> {
    let findings = pragma_check(conn, "integrity_check")?;
    verification
        .findings
        .extend(findings.into_iter().map(|problem| Finding {
            user: None,
            problem: format!("SQLite: {problem}"),
        }));
    let mut users = conn
        .prepare("SELECT id, org, state, sequence, snapshot, checksum FROM users ORDER BY id")
        .map_err(from_sqlite)?;
    let mut rows = users.query([]).map_err(from_sqlite)?;
    while let Some(row) = rows.next().map_err(from_sqlite)? {
        verification.users += 1;
        let row = user_row(row).map_err(from_sqlite)?;
        let user_id = UserId::from_stored(row.id.as_str()).ok();
        let mut found = |problem: String| {
            verification.findings.push(Finding {
                user: user_id.clone(),
                problem,
            })
        };
        let user = match decode_user(&row) {
            Ok(user) => user,
            Err(e) => {
                found(e.message().to_owned());
                continue;
            }
        };
        match history_of(conn, &user.id) {
            Ok(history) => {
                verification.events += history.len() as u64;
                if let Some(problem) = check_user(&user, &history) {
                    found(problem);
                }
            }
            Err(e) => found(e.message().to_owned()),
        }
    }
    let orphans: Vec<String> = conn
        .prepare("SELECT DISTINCT user_id FROM events WHERE user_id NOT IN (SELECT id FROM users)")
        .and_then(|mut select| {
            select
                .query_map([], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    for orphan in orphans {
        verification.findings.push(Finding {
            user: UserId::from_stored(orphan).ok(),
            problem: "the user has stored events but no stored snapshot".to_owned(),
        });
    }
    // The feed: every event at a position (unique by its index), each
    // user's in sequence order.
    let out_of_order: Vec<(String, i64)> = conn
        .prepare(
            "SELECT user_id, sequence FROM (
                 SELECT user_id, sequence, position,
                        LAG(position) OVER (PARTITION BY user_id ORDER BY sequence) AS before
                 FROM events)
             WHERE position <= 0 OR before >= position",
        )
        .and_then(|mut select| {
            select
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    for (user, sequence) in out_of_order {
        verification.findings.push(Finding {
            user: UserId::from_stored(user).ok(),
            problem: format!("event {sequence} has no feed position after its predecessor's"),
        });
    }
    let committed: i64 = conn
        .query_row(COMMITTED, [], |row| row.get(0))
        .map_err(from_sqlite)?;
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .map_err(from_sqlite)?;
    if record::from_column(committed)? != record::from_column(stored)? {
        verification.findings.push(Finding {
            user: None,
            problem: format!("{stored} events are stored, but {committed} were committed"),
        });
    }
    Ok(())
}

/// Every event of `id`, decoded and checked.
fn history_of(conn: &Connection, id: &UserId) -> Result<Vec<userstate::Event>> {
    let rows = conn
        .prepare_cached(HISTORY)
        .and_then(|mut select| {
            select
                .query_map(params![id.as_str(), 0, i64::MAX], event_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    rows.iter().map(|row| decode_event(id, row)).collect()
}

/// The rows of `PRAGMA quick_check` or `integrity_check`, without the one
/// `ok` of a sound file.
fn pragma_check(conn: &Connection, pragma: &str) -> Result<Vec<String>> {
    let findings = conn
        .prepare(&format!("PRAGMA {pragma}({REPORTED})"))
        .and_then(|mut check| {
            check
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(from_sqlite)?;
    Ok(findings.into_iter().filter(|f| f != "ok").collect())
}
