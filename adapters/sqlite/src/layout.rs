//! Where things are on disk: the tables and indexes of the current schema
//! and the statements that read and write them.
//!
//! ```sql
//! users  (id PRIMARY KEY, org, state, sequence, snapshot, checksum)  -- snapshot: the core's JSON record (userstate::storage::json)
//! events (user_id, sequence, org, event_type, created_at, creator, payload, checksum,
//!         PRIMARY KEY (user_id, sequence))                            -- payload: the type's record
//! INDEX users_by_org_state ON users (org, state, id)
//! INDEX users_by_org       ON users (org, id) WHERE state <> 'deleted'
//! meta   (key PRIMARY KEY, value)     -- committed_events: every event ever committed
//! losses (accepted_at, expected, found)  -- losses an operator accepted at open
//! ```

/// The tables and indexes of schema version 1; version 3 adds the
/// checksums and the `meta` and `losses` tables ([`crate::format`]).
///
/// - `users` holds the snapshot (a cache of the replay of the user's events)
///   and the columns the lists need (`org`, `state`) and the writer reads.
/// - `users_by_org_state` serves "users of an organisation in a state, by id";
///   `users_by_org` serves "users of an organisation that exist, by id"
///   (partial: deleted users are not in it).
/// - `events` is keyed by (user, sequence), so a stored event is never
///   overwritten.
///
/// Tables are STRICT so a value of the wrong type cannot be stored, and
/// WITHOUT ROWID because they are looked up by their text keys.
pub(crate) const TABLES: &str = "
CREATE TABLE users (
    id       TEXT    NOT NULL PRIMARY KEY,
    org      TEXT    NOT NULL,
    state    TEXT    NOT NULL,
    sequence INTEGER NOT NULL CHECK (sequence > 0),
    snapshot TEXT    NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX users_by_org_state ON users (org, state, id);
CREATE INDEX users_by_org ON users (org, id) WHERE state <> 'deleted';
CREATE TABLE events (
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

pub(crate) const LOAD: &str =
    "SELECT id, org, state, sequence, snapshot, checksum FROM users WHERE id = ?1";

/// The organisation of some event of a user: a user without a row but with
/// events lost its row.
pub(crate) const AN_EVENT_ORG: &str = "SELECT org FROM events WHERE user_id = ?1 LIMIT 1";

pub(crate) const HISTORY: &str =
    "SELECT user_id, sequence, org, event_type, created_at, creator, payload, checksum, position
     FROM events WHERE user_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3";

/// The change feed, served by `events_by_position`.
pub(crate) const FEED: &str =
    "SELECT user_id, sequence, org, event_type, created_at, creator, payload, checksum, position
     FROM events WHERE position > ?1 ORDER BY position LIMIT ?2";

/// The feed's last position: one step down `events_by_position`.
pub(crate) const LAST_POSITION: &str = "SELECT COALESCE(MAX(position), 0) FROM events";

/// Served by `users_by_org_state`.
pub(crate) const LIST_IN_STATE: &str = "SELECT id, org, state, sequence, snapshot, checksum
     FROM users WHERE org = ?1 AND state = ?2 AND id > ?3 ORDER BY id LIMIT ?4";

/// Served by the partial index `users_by_org`: the literal `state <> 'deleted'`
/// is what lets SQLite match the index's own WHERE clause.
pub(crate) const LIST_EXISTING: &str = "SELECT id, org, state, sequence, snapshot, checksum
     FROM users WHERE org = ?1 AND state <> 'deleted' AND id > ?2 ORDER BY id LIMIT ?3";

/// Served by `users_by_org_state`, without reading a row.
pub(crate) const COUNT_IN_STATE: &str = "SELECT COUNT(*) FROM users WHERE org = ?1 AND state = ?2";

/// Served by the partial index `users_by_org`.
pub(crate) const COUNT_EXISTING: &str =
    "SELECT COUNT(*) FROM users WHERE org = ?1 AND state <> 'deleted'";

/// The first organisation after `?1`, from `users_by_org_state`: one seek
/// per organisation, however many users each has.
pub(crate) const NEXT_ORG: &str = "SELECT MIN(org) FROM users WHERE org > ?1";

/// The organisations with a policy of their own after `?1`, in order, at
/// most `?2` (the instance default's key, the empty text, sorts first).
pub(crate) const POLICY_ORGS: &str =
    "SELECT org FROM policies WHERE org > ?1 ORDER BY org LIMIT ?2";

/// A stored lockout policy; the key `''` is the instance default.
pub(crate) const POLICY: &str = "SELECT record, checksum FROM policies WHERE org = ?1";

pub(crate) const SET_POLICY: &str =
    "INSERT INTO policies (org, record, checksum) VALUES (?1, ?2, ?3)
     ON CONFLICT (org) DO UPDATE SET record = excluded.record, checksum = excluded.checksum";

pub(crate) const INSERT_EVENT: &str = "INSERT INTO events
     (user_id, sequence, org, event_type, created_at, creator, payload, checksum, position)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

pub(crate) const INSERT_USER: &str =
    "INSERT INTO users (id, org, state, sequence, snapshot, checksum)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// By id alone: the writer read the user under the write lock, so there is
/// nothing left to check.
pub(crate) const UPDATE_USER: &str = "UPDATE users
     SET org = ?2, state = ?3, sequence = ?4, snapshot = ?5, checksum = ?6 WHERE id = ?1";

/// Every event ever committed: what the commit mark is compared with.
pub(crate) const COMMITTED: &str = "SELECT value FROM meta WHERE key = 'committed_events'";

pub(crate) const ADD_COMMITTED: &str =
    "UPDATE meta SET value = value + ?1 WHERE key = 'committed_events' RETURNING value";

pub(crate) const RECORD_LOSS: &str =
    "INSERT INTO losses (accepted_at, expected, found) VALUES (?1, ?2, ?3)";

pub(crate) const LOSSES: &str = "SELECT accepted_at, expected, found FROM losses ORDER BY rowid";

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// The lists must be served by their indexes, never a scan of all users.
    #[test]
    fn reads_use_their_indexes() {
        let conn = Connection::open_in_memory().unwrap();
        crate::format::upgrade(&conn, true).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let unbound = std::iter::repeat_n("x", stmt.parameter_count());
            let rows = stmt
                .query_map(rusqlite::params_from_iter(unbound), |row| {
                    row.get::<_, String>(3)
                })
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            rows.join("; ")
        };
        let by_state = plan(LIST_IN_STATE);
        assert!(
            by_state.contains("INDEX users_by_org_state ("),
            "{by_state}"
        );
        assert!(!by_state.contains("TEMP B-TREE"), "{by_state}");
        let existing = plan(LIST_EXISTING);
        assert!(existing.contains("INDEX users_by_org ("), "{existing}");
        assert!(!existing.contains("TEMP B-TREE"), "{existing}");
        let history = plan(HISTORY);
        assert!(history.contains("PRIMARY KEY"), "{history}");
        let feed = plan(FEED);
        assert!(feed.contains("INDEX events_by_position"), "{feed}");
        assert!(!feed.contains("TEMP B-TREE"), "{feed}");
        for count in [COUNT_IN_STATE, COUNT_EXISTING, NEXT_ORG] {
            let counted = plan(count);
            assert!(counted.contains("COVERING INDEX"), "{counted}");
        }
    }
}
