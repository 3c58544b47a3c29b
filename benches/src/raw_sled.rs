//! The baseline on sled: the work of one lock or unlock written by hand,
//! on four trees keyed like `userstate-sled`'s, with values of about the
//! size of its records.
//!
//! One command is one sled transaction over the four trees that reads the
//! user's snapshot, checks the transition, appends the event, rewrites the
//! snapshot and moves the user in the state index; in durable mode it is
//! followed by `Db::flush` and `fdatasync` of sled's data file, as the
//! adapter does for every group of commands; in relaxed mode every 1000th
//! command is, as in the adapter's relaxed mode.

use std::fs::File;
use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};

use crate::fixture::{preloaded_locked, ORG};

/// The cache the adapter gives sled unless told otherwise.
const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// State bytes, as the adapter's index keys use them.
const ACTIVE: u8 = 2;
const LOCKED: u8 = 3;

/// Bytes of a snapshot value besides the sequence and state: about what
/// postcard needs for the adapter's `User` record.
const SNAPSHOT_PADDING: usize = 40;
/// Bytes of an event value: about the adapter's `Event` record.
const EVENT_BYTES: usize = 40;

/// In relaxed mode, a flush and sync every this many commands: the bound
/// the adapter keeps (`DEFAULT_MAX_UNSYNCED_COMMANDS`). Without any flush,
/// sled 0.34's log runs ahead of its segments and a write can wait forever
/// in `SegmentAccountant::next` (sled issue #1412; seen here after a few
/// seconds of relaxed writes at 10,000 users).
const RELAXED_SYNC_EVERY: u64 = 1000;

/// Errors of the raw store.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// A hand-written store on one sled directory.
#[derive(Debug)]
pub struct RawSled {
    db: sled::Db,
    events: Tree,
    snapshots: Tree,
    by_org_state: Tree,
    by_org: Tree,
    /// sled's data file, `fdatasync`ed after the flushes.
    data_file: File,
    durable: bool,
    /// Commands since the last flush (relaxed mode).
    unsynced: std::cell::Cell<u64>,
}

fn user_key(i: usize) -> Vec<u8> {
    format!("user-{i:08}").into_bytes()
}

fn event_key(user: &[u8], sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(user.len() + 9);
    key.extend_from_slice(user);
    key.push(0);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn org_state_key(state: u8, user: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(ORG.len() + 2 + user.len());
    key.extend_from_slice(ORG.as_bytes());
    key.push(0);
    key.push(state);
    key.extend_from_slice(user);
    key
}

fn org_key(user: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(ORG.len() + 1 + user.len());
    key.extend_from_slice(ORG.as_bytes());
    key.push(0);
    key.extend_from_slice(user);
    key
}

/// Sequence (big-endian), state byte, padding.
fn snapshot_value(sequence: u64, state: u8) -> Vec<u8> {
    let mut value = Vec::with_capacity(9 + SNAPSHOT_PADDING);
    value.extend_from_slice(&sequence.to_be_bytes());
    value.push(state);
    value.resize(9 + SNAPSHOT_PADDING, 7);
    value
}

fn parse_snapshot(value: &[u8]) -> Option<(u64, u8)> {
    let sequence = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    Some((sequence, *value.get(8)?))
}

impl RawSled {
    /// Opens (creating) the database in the directory `path`, with the
    /// adapter's default cache size; `durable` syncs every command, relaxed
    /// every 1000th.
    ///
    /// # Errors
    /// sled's and the data file's.
    pub fn open(path: &Path, durable: bool) -> Result<Self, Failure> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let tree = |name: &str| db.open_tree(name);
        let (events, snapshots) = (tree("events")?, tree("snapshots")?);
        let (by_org_state, by_org) = (tree("by_org_state")?, tree("by_org")?);
        let data_file = File::open(path.join("db"))?;
        Ok(RawSled {
            db,
            events,
            snapshots,
            by_org_state,
            by_org,
            data_file,
            durable,
            unsynced: std::cell::Cell::new(0),
        })
    }

    /// Writes users `0..count` (every tenth locked) key by key, without
    /// transactions, with a flush every 10,000 users.
    ///
    /// Not with `Tree::apply_batch`: sled 0.34 does not split the nodes a
    /// batch grows, and every later write copies those huge nodes (120
    /// commands/s at 200,000 users, 2.5 GiB resident).
    ///
    /// # Errors
    /// sled's.
    pub fn preload(&self, count: usize) -> Result<(), Failure> {
        for i in 0..count {
            let user = user_key(i);
            let locked = preloaded_locked(i);
            let (sequence, state) = if locked { (2, LOCKED) } else { (1, ACTIVE) };
            for s in 1..=sequence {
                self.events
                    .insert(event_key(&user, s), vec![9u8; EVENT_BYTES])?;
            }
            self.snapshots
                .insert(user.as_slice(), snapshot_value(sequence, state))?;
            self.by_org_state
                .insert(org_state_key(state, &user), &[][..])?;
            self.by_org.insert(org_key(&user), &[][..])?;
            // sled 0.34 queues its log writes without bound until a flush.
            if i % 10_000 == 9_999 {
                self.db.flush()?;
            }
        }
        self.db.flush()?;
        Ok(())
    }

    /// Locks user `i` if it is active, unlocks it if it is locked, in one
    /// transaction (then flush and fdatasync when durable). Returns whether
    /// it is locked now.
    ///
    /// # Errors
    /// sled's; a missing user or one in another state is an error too.
    pub fn toggle_lock(&self, i: usize) -> Result<bool, Failure> {
        let user = user_key(i);
        let org = org_key(&user);
        let trees = (
            &self.events,
            &self.snapshots,
            &self.by_org_state,
            &self.by_org,
        );
        let outcome: Result<bool, TransactionError<String>> =
            trees.transaction(|(events, snapshots, by_org_state, by_org)| {
                let stored = snapshots.get(&user)?;
                let (sequence, state) = stored
                    .as_deref()
                    .and_then(parse_snapshot)
                    .ok_or_else(|| ConflictableTransactionError::Abort("no user".to_owned()))?;
                let next_state = match state {
                    ACTIVE => LOCKED,
                    LOCKED => ACTIVE,
                    _ => {
                        return Err(ConflictableTransactionError::Abort(
                            "neither active nor locked".to_owned(),
                        ))
                    }
                };
                let next = sequence + 1;
                by_org_state.remove(org_state_key(state, &user))?;
                by_org.remove(org.as_slice())?;
                events.insert(event_key(&user, next), vec![9u8; EVENT_BYTES])?;
                snapshots.insert(user.as_slice(), snapshot_value(next, next_state))?;
                by_org_state.insert(org_state_key(next_state, &user), &[][..])?;
                by_org.insert(org.as_slice(), &[][..])?;
                Ok(next_state == LOCKED)
            });
        let locked = outcome.map_err(|e| format!("{e:?}"))?;
        let unsynced = self.unsynced.get() + 1;
        if self.durable || unsynced >= RELAXED_SYNC_EVERY {
            self.db.flush()?;
            self.data_file.sync_data()?;
            self.unsynced.set(0);
        } else {
            self.unsynced.set(unsynced);
        }
        Ok(locked)
    }

    /// Switches between durable and relaxed without reopening.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggles_and_keeps_the_index_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let raw = RawSled::open(&dir.path().join("raw"), true).unwrap();
        raw.preload(20).unwrap();
        assert!(!raw.toggle_lock(0).unwrap(), "user 0 starts locked");
        assert!(raw.toggle_lock(0).unwrap());
        assert!(raw.toggle_lock(1).unwrap(), "user 1 starts active");
        let locked = raw.by_org_state.scan_prefix(b"acme\0\x03").count();
        assert_eq!(locked, 3, "users 0, 1, 10 are locked");
        assert_eq!(raw.events.scan_prefix(b"user-00000000\0").count(), 4);
    }
}
