//! The write side of the engine: a batch of updates, each decided on the
//! user as stored and written in one sled transaction over the four trees,
//! then one flush and device sync for the whole batch when durable.
//! [`GroupCommit`](userstate::storage::GroupCommit) forms the batches, and
//! every caller is answered after its batch's sync.
//!
//! Relaxed batches are answered without a sync while fewer than a bound of
//! commands wait for one; the batch that passes it syncs first. That bounds
//! what a crash can lose, and keeps writers from running ahead of sled's
//! log writes (sled 0.34 queues those without limit, and the memory with
//! them).
//!
//! Every transaction that stores events also advances the count of
//! committed events in sled's default tree; after each sync the writer
//! records the count in the commit mark, outside sled, which the next open
//! compares with what sled recovered.
//!
//! A failed sync is final: the kernel may have dropped the pages it could
//! not write, so a later sync that succeeds proves nothing about them.
//! Every later batch is refused with the first failure.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use userstate::storage::{
    BatchWriter, Commit, CommitMark, Decision, Durability, FeedSignal, Update,
};
use userstate::{Error, Result, User, UserId, UserState};

use crate::engine::DeviceSync;
use crate::error::{from_io, from_sled};
use crate::layout::{self, Trees};
use crate::reader;
use crate::record;

/// The one writer of a database: its trees, its syncs and their state.
#[derive(Debug)]
pub(crate) struct Writer {
    trees: Trees,
    device: DeviceSync,
    durability: Durability,
    max_unsynced: u64,
    /// Relaxed commands acknowledged since the last sync.
    unsynced: u64,
    failure: Option<Error>,
    /// Every event committed so far, as the default tree counts them.
    committed: u64,
    mark: SharedMark,
    /// The feed's last position; only this writer writes the feed.
    last_position: u64,
    /// Told the last position after each batch, for the waiting readers.
    signal: Arc<FeedSignal>,
}

/// The commit mark, shared by the writer, which records every sync in it,
/// and the repository, which seals it once sled has closed.
pub(crate) type SharedMark = Arc<Mutex<Closing>>;

/// The commit mark and whether the writer closed with everything synced.
#[derive(Debug)]
pub(crate) struct Closing {
    pub(crate) mark: CommitMark,
    pub(crate) clean: bool,
}

impl Closing {
    pub(crate) fn shared(mark: CommitMark) -> SharedMark {
        Arc::new(Mutex::new(Closing { mark, clean: false }))
    }
}

impl Writer {
    pub(crate) fn new(
        trees: Trees,
        device: DeviceSync,
        durability: Durability,
        max_unsynced: u64,
        mark: SharedMark,
        signal: Arc<FeedSignal>,
    ) -> Self {
        let committed = lock(&mark).mark.committed();
        let last_position = signal.last();
        Writer {
            trees,
            device,
            durability,
            max_unsynced,
            unsynced: 0,
            failure: None,
            committed,
            mark,
            last_position,
            signal,
        }
    }

    /// Flushes sled and forces its files to the device.
    ///
    /// # Errors
    /// Unavailable when the flush or a sync fails, then and for good.
    pub(crate) fn sync(&mut self) -> Result<()> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        let synced = self.trees.db.flush().map_err(from_sled).and_then(|_| {
            self.device
                .sync()
                .map_err(|e| from_io("cannot sync the database files", e))
        });
        match synced {
            Ok(()) => {
                self.unsynced = 0;
                // A mark that cannot be written stays behind, which hides
                // a later loss but never claims one.
                let _ = lock(&self.mark).mark.record(self.committed);
                Ok(())
            }
            Err(failure) => {
                self.failure = Some(failure.clone());
                Err(failure)
            }
        }
    }
}

impl Writer {
    /// Stores `policy` as `org`'s (`None`: the instance default), synced
    /// when durable.
    ///
    /// # Errors
    /// sled errors as mapped by [`from_sled`]; Unavailable when the sync fails.
    pub(crate) fn set_policy(
        &mut self,
        org: Option<&userstate::OrgId>,
        policy: &userstate::StoredPolicy,
    ) -> Result<()> {
        let bytes = record::encode_policy(policy)?;
        self.trees
            .policies
            .insert(layout::policy_key(org), bytes)
            .map_err(from_sled)?;
        match self.durability {
            Durability::Durable => self.sync(),
            Durability::Relaxed => Ok(()),
        }
    }
}

impl BatchWriter for Writer {
    fn commit(&mut self, batch: Vec<Update>) -> Vec<Result<User>> {
        if let Some(failure) = &self.failure {
            return vec![Err(failure.clone()); batch.len()];
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut written = 0;
        for update in batch {
            let outcome = apply(&self.trees, update, self.committed, self.last_position);
            if let Ok((_, events)) = outcome {
                if events > 0 {
                    written += 1;
                    self.committed += events;
                    self.last_position += events;
                }
            }
            outcomes.push(outcome);
        }
        let synced = match self.durability {
            _ if written == 0 => Ok(()),
            Durability::Durable => self.sync(),
            Durability::Relaxed => {
                self.unsynced += written;
                if self.unsynced > self.max_unsynced {
                    self.sync()
                } else {
                    Ok(())
                }
            }
        };
        if written > 0 {
            self.signal.committed(self.last_position);
        }
        outcomes
            .into_iter()
            .map(|outcome| match (outcome, &synced) {
                // Committed but not made durable: not acknowledged.
                (Ok((_, events)), Err(failure)) if events > 0 => Err(failure.clone()),
                (outcome, _) => outcome.map(|(user, _)| user),
            })
            .collect()
    }
}

impl Drop for Writer {
    /// Relaxed commands acknowledged since the last sync get their promised
    /// sync when the database closes.
    fn drop(&mut self) {
        if self.unsynced > 0 {
            let _ = self.sync();
        }
        let clean = self.failure.is_none() && self.unsynced == 0;
        lock(&self.mark).clean = clean;
    }
}

/// The mark, also after a panic elsewhere poisoned its lock: it holds no
/// invariant a panic could break.
pub(crate) fn lock(mark: &SharedMark) -> MutexGuard<'_, Closing> {
    mark.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One update: the user as stored, the decision on it, and what it
/// decided, on a database that has `committed` events. Returns the user
/// after it and the events it wrote.
pub(crate) fn apply(
    trees: &Trees,
    update: Update,
    committed: u64,
    last_position: u64,
) -> Result<(User, u64)> {
    let stored = reader::load(trees, update.id(), update.scope())?;
    let actor = match update.actor() {
        Some(actor) => reader::load(trees, &actor.user, &actor.scope())?,
        None => None,
    };
    let old_keys = stored.as_ref().map(index_keys);
    match update.decide(stored, actor)? {
        Decision::Unchanged(user) => Ok((user, 0)),
        Decision::Write(commit) => {
            let events = commit.events().len() as u64;
            write(trees, old_keys, commit, committed + events, last_position)
                .map(|user| (user, events))
        }
    }
}

/// The index entries of a stored user.
struct IndexKeys {
    org_state: Vec<u8>,
    org: Vec<u8>,
}

fn index_keys(user: &User) -> IndexKeys {
    IndexKeys {
        org_state: layout::org_state_key(&user.org_id, user.state, &user.id),
        org: layout::org_key(&user.org_id, &user.id),
    }
}

/// Writes a commit decided on the stored user (whose index entries are
/// `old`) in one transaction over all trees, with the count of committed
/// events after it; returns the user after it.
/// Only this writer writes, so the user cannot have moved on since it was
/// read.
///
/// # Errors
/// Corrupt when an event is already stored at a sequence the commit writes
/// (the history ran ahead of its snapshot: never overwritten); sled errors
/// as mapped by [`from_sled`]. Nothing is written on error.
fn write(
    trees: &Trees,
    old: Option<IndexKeys>,
    commit: Commit,
    committed: u64,
    last_position: u64,
) -> Result<User> {
    let (events, snapshot) = commit.into_parts();
    let id: &UserId = &snapshot.id;
    let events = events
        .iter()
        .map(|event| {
            Ok((
                layout::event_key(id, event.sequence),
                record::encode_event(event)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let snapshot_key = layout::snapshot_key(id);
    let snapshot_record = record::encode_user(&snapshot)?;
    let new = index_keys(&snapshot);
    let exists = snapshot.state != UserState::Deleted;
    let committed = committed.to_be_bytes();
    let trees_in_order = (
        &trees.events,
        &trees.feed,
        &trees.snapshots,
        &trees.by_org_state,
        &trees.by_org,
        &*trees.db,
    );
    // Tree order is commit order: events before the feed and the snapshot
    // before the indexes, so a reader that sees a snapshot or a position
    // also sees its events.
    let outcome = trees_in_order.transaction(
        |(events_tree, feed, snapshots, by_org_state, by_org, meta)| {
            for ((key, value), position) in events.iter().zip(last_position + 1..) {
                if events_tree
                    .insert(key.as_slice(), value.as_slice())?
                    .is_some()
                {
                    return Err(ConflictableTransactionError::Abort(Error::corrupt(
                        format!("user {id} has stored events beyond its snapshot"),
                    )));
                }
                if feed
                    .insert(&layout::feed_key(position), key.as_slice())?
                    .is_some()
                {
                    return Err(ConflictableTransactionError::Abort(Error::corrupt(
                        format!("the feed already holds position {position}"),
                    )));
                }
            }
            snapshots.insert(snapshot_key.as_slice(), snapshot_record.as_slice())?;
            if let Some(old) = &old {
                by_org_state.remove(old.org_state.as_slice())?;
                by_org.remove(old.org.as_slice())?;
            }
            by_org_state.insert(new.org_state.as_slice(), &[][..])?;
            if exists {
                by_org.insert(new.org.as_slice(), &[][..])?;
            }
            meta.insert(layout::COMMITTED_KEY, &committed[..])?;
            Ok(())
        },
    );
    outcome.map_err(|e| match e {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => from_sled(error),
    })?;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use userstate::storage::{self, Commit, Scope};
    use userstate::{Event, EventPayload, InitialState, OrgId, Timestamp};

    use super::*;

    fn writer(dir: &std::path::Path, durability: Durability, max_unsynced: u64) -> Writer {
        let db = sled::Config::new().path(dir).open().unwrap();
        let device = DeviceSync::open(dir).unwrap();
        let (mark, _) = CommitMark::open(&dir.join("mark"), 0, false).unwrap();
        Writer::new(
            Trees::open(db).unwrap(),
            device,
            durability,
            max_unsynced,
            Closing::shared(mark),
            Arc::new(FeedSignal::new(0)),
        )
    }

    fn create(id: &str) -> Update {
        let id = UserId::from_stored(id).unwrap();
        let added = Event {
            user_id: id.clone(),
            org_id: OrgId::from_stored("acme").unwrap(),
            sequence: 1,
            created_at: Timestamp::UNIX_EPOCH,
            creator: id.clone(),
            payload: EventPayload::Added {
                state: InitialState::Active,
            },
        };
        Update::new(
            id,
            Scope::Instance,
            storage::append(Commit::new(None, vec![added]).unwrap()),
        )
    }

    #[test]
    fn relaxed_batches_sync_only_past_the_unsynced_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path(), Durability::Relaxed, 5);
        for (n, unsynced) in [(2, 2), (3, 5), (1, 0), (4, 4)] {
            let batch = (0..n)
                .map(|i| create(&format!("u{unsynced}-{i}")))
                .collect();
            let outcomes = writer.commit(batch);
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            assert_eq!(writer.unsynced, unsynced, "after a batch of {n}");
        }
        // A batch that writes nothing counts nothing.
        let refused = writer.commit(vec![create("u4-0")]);
        assert!(refused[0].is_err(), "created twice");
        assert_eq!(writer.unsynced, 4);
        writer.sync().unwrap();
        assert_eq!(writer.unsynced, 0);
    }

    #[test]
    fn durable_batches_leave_nothing_unsynced() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path(), Durability::Durable, 5);
        let outcomes = writer.commit((0..3).map(|i| create(&format!("u{i}"))).collect());
        assert!(outcomes.iter().all(Result::is_ok));
        assert_eq!(writer.unsynced, 0);
    }
}
