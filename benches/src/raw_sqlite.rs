//! The baseline on SQLite: the work of one lock or unlock written by hand on
//! rusqlite, on the same tables and indexes as `userstate-sqlite`, with the
//! same journal mode and synchronous level.
//!
//! One command is one `BEGIN IMMEDIATE` transaction that reads the user's
//! state and sequence, checks the transition, appends the event and rewrites
//! the snapshot row (its state changes, so the state index changes too).
//! What it leaves out is exactly what the library adds: the service's
//! checks, the typed decision and reducer, serde, the worker threads and
//! channels, group commit.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection};

use crate::fixture::{preloaded_locked, ADMIN, ORG};

/// The adapter's tables (schema version 1), created here by hand.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    id       TEXT    NOT NULL PRIMARY KEY,
    org      TEXT    NOT NULL,
    state    TEXT    NOT NULL,
    sequence INTEGER NOT NULL CHECK (sequence > 0),
    snapshot TEXT    NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS users_by_org_state ON users (org, state, id);
CREATE INDEX IF NOT EXISTS users_by_org ON users (org, id) WHERE state <> 'deleted';
CREATE TABLE IF NOT EXISTS events (
    user_id    TEXT    NOT NULL,
    sequence   INTEGER NOT NULL CHECK (sequence > 0),
    org        TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    creator    TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    PRIMARY KEY (user_id, sequence)
) STRICT, WITHOUT ROWID;
";

const LOCKED_PAYLOAD: &str = r#"{"locked":{"reason":null,"expiresAt":null,"cause":"command"}}"#;
const UNLOCKED_PAYLOAD: &str = r#"{"unlocked":{"cause":"command"}}"#;
const ADDED_PAYLOAD: &str = r#"{"added":{"state":"active"}}"#;

/// A hand-written store on one SQLite file.
#[derive(Debug)]
pub struct RawSqlite {
    conn: Connection,
}

/// The user ids of the raw stores: the same as the library's.
fn raw_id(i: usize) -> String {
    format!("user-{i:08}")
}

/// Milliseconds since the epoch, now.
fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The snapshot JSON of a user, of the same shape and size as the
/// adapter's (written with `format!`, as code without the library would).
fn snapshot_json(id: &str, locked: bool, sequence: i64, changed: i64) -> String {
    // Times as RFC 3339 text, like the adapter's JSON.
    let changed = userstate::Timestamp::from_unix_millis(changed)
        .unwrap_or(userstate::Timestamp::UNIX_EPOCH)
        .to_string();
    let lock = if locked {
        format!(
            r#"{{"reason":null,"expiresAt":null,"lockedAt":"{changed}","previousState":"active","cause":"command"}}"#
        )
    } else {
        "null".to_owned()
    };
    let state = if locked { "locked" } else { "active" };
    format!(
        r#"{{"id":"{id}","orgId":"{ORG}","state":"{state}","lock":{lock},"sequence":{sequence},"createdAt":"2026-01-01T00:00:00.000Z","changedAt":"{changed}","failedChecks":{{"password":0,"totp":0,"sms":0,"email":0}},"lockouts":0}}"#
    )
}

impl RawSqlite {
    /// Opens (creating) the file at `path` in WAL mode, `synchronous = FULL`
    /// when `durable`, else `NORMAL`: what the adapter sets.
    ///
    /// # Errors
    /// SQLite's.
    pub fn open(path: &Path, durable: bool) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
        conn.execute_batch(SCHEMA)?;
        Ok(RawSqlite { conn })
    }

    /// Switches between `synchronous = FULL` and `NORMAL` without reopening.
    ///
    /// # Errors
    /// SQLite's.
    pub fn set_durable(&self, durable: bool) -> rusqlite::Result<()> {
        self.conn
            .pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })
    }

    /// Inserts users `0..count` (every tenth locked) in one transaction.
    ///
    /// # Errors
    /// SQLite's.
    pub fn preload(&mut self, count: usize) -> rusqlite::Result<()> {
        let now = now_millis();
        let tx = self.conn.transaction()?;
        {
            let mut user = tx.prepare("INSERT INTO users VALUES (?1, ?2, ?3, ?4, ?5)")?;
            let mut event = tx.prepare("INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?;
            for i in 0..count {
                let id = raw_id(i);
                let locked = preloaded_locked(i);
                let sequence = if locked { 2 } else { 1 };
                let state = if locked { "locked" } else { "active" };
                event.execute(params![id, 1, ORG, "user.added", now, ADMIN, ADDED_PAYLOAD])?;
                if locked {
                    event.execute(params![
                        id,
                        2,
                        ORG,
                        "user.locked",
                        now,
                        ADMIN,
                        LOCKED_PAYLOAD
                    ])?;
                }
                user.execute(params![
                    id,
                    ORG,
                    state,
                    sequence,
                    snapshot_json(&id, locked, sequence, now)
                ])?;
            }
        }
        tx.commit()
    }

    /// Locks user `i` if it is active, unlocks it if it is locked, in one
    /// transaction. Returns whether it is locked now.
    ///
    /// # Errors
    /// SQLite's; a user in any other state is an error too.
    pub fn toggle_lock(&self, i: usize) -> rusqlite::Result<bool> {
        let id = raw_id(i);
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let outcome = self.toggle_in_transaction(&id);
        match outcome {
            Ok(locked) => {
                self.conn.execute_batch("COMMIT")?;
                Ok(locked)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn toggle_in_transaction(&self, id: &str) -> rusqlite::Result<bool> {
        let (state, sequence): (String, i64) = self
            .conn
            .prepare_cached("SELECT state, sequence FROM users WHERE id = ?1")?
            .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let (lock, event_type, payload) = match state.as_str() {
            "active" => (true, "user.locked", LOCKED_PAYLOAD),
            "locked" => (false, "user.unlocked", UNLOCKED_PAYLOAD),
            _ => return Err(rusqlite::Error::QueryReturnedNoRows),
        };
        let now = now_millis();
        let next = sequence + 1;
        self.conn
            .prepare_cached(
                "INSERT INTO events (user_id, sequence, org, event_type, created_at, creator, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![id, next, ORG, event_type, now, ADMIN, payload])?;
        let updated = self
            .conn
            .prepare_cached(
                "UPDATE users SET org = ?2, state = ?3, sequence = ?4, snapshot = ?5
                 WHERE id = ?1 AND sequence = ?6",
            )?
            .execute(params![
                id,
                ORG,
                if lock { "locked" } else { "active" },
                next,
                snapshot_json(id, lock, next, now),
                sequence
            ])?;
        if updated != 1 {
            return Err(rusqlite::Error::StatementChangedRows(updated));
        }
        Ok(lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggles_and_keeps_the_history() {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = RawSqlite::open(&dir.path().join("raw.db"), false).unwrap();
        raw.preload(20).unwrap();
        assert!(!raw.toggle_lock(0).unwrap(), "user 0 starts locked");
        assert!(raw.toggle_lock(0).unwrap());
        assert!(raw.toggle_lock(1).unwrap(), "user 1 starts active");
        let events: i64 = raw
            .conn
            .query_row(
                "SELECT count(*) FROM events WHERE user_id = 'user-00000000'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(events, 4);
        let snapshot: String = raw
            .conn
            .query_row(
                "SELECT snapshot FROM users WHERE id = 'user-00000000'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&snapshot).unwrap();
        assert_eq!(parsed["sequence"], 4);
        assert_eq!(parsed["state"], "locked");
    }
}
