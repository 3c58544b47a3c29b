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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
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
    /// Decides every update on the users as stored (and as earlier updates
    /// of the batch left them), then writes every decided commit in one
    /// sled transaction: a transaction per command would cost most of the
    /// batch. Should that transaction fail, each commit is written in a
    /// transaction of its own, so one user's damage fails only its updates.
    fn commit(&mut self, batch: Vec<Update>) -> Vec<Result<User>> {
        if let Some(failure) = &self.failure {
            return vec![Err(failure.clone()); batch.len()];
        }
        let mut decided = Vec::with_capacity(batch.len());
        let mut plans: Vec<Plan> = Vec::new();
        let mut seen: HashMap<UserId, User> = HashMap::new();
        for update in batch {
            decided.push(
                decide(&self.trees, &seen, update).and_then(|(decision, old)| match decision {
                    Decision::Unchanged(user) => Ok(Decided::Unchanged(user)),
                    Decision::Write(commit) => {
                        let plan = Plan::of(old, commit)?;
                        seen.insert(plan.user.id.clone(), plan.user.clone());
                        plans.push(plan);
                        Ok(Decided::Planned)
                    }
                }),
            );
        }
        let written = self.write_plans(&plans);
        let stored = written.iter().filter(|w| w.is_ok()).count() as u64;
        let synced = match self.durability {
            _ if stored == 0 => Ok(()),
            Durability::Durable => self.sync(),
            Durability::Relaxed => {
                self.unsynced += stored;
                if self.unsynced > self.max_unsynced {
                    self.sync()
                } else {
                    Ok(())
                }
            }
        };
        if stored > 0 {
            self.signal.committed(self.last_position);
        }
        // Plans are in the order of the updates that made them.
        let mut planned = plans.into_iter().zip(written);
        decided
            .into_iter()
            .map(|outcome| match outcome? {
                Decided::Unchanged(user) => Ok(user),
                Decided::Planned => {
                    let (plan, written) = planned
                        .next()
                        .ok_or_else(|| Error::internal("the writer lost a plan"))?;
                    written?;
                    // Committed but not made durable: not acknowledged.
                    synced.clone()?;
                    Ok(plan.user)
                }
            })
            .collect()
    }
}

impl Writer {
    /// Writes `plans` in one transaction, else each in its own; returns
    /// each one's outcome and advances the counts by what was written.
    fn write_plans(&mut self, plans: &[Plan]) -> Vec<Result<()>> {
        if plans.is_empty() {
            return Vec::new();
        }
        let events: u64 = plans.iter().map(|plan| plan.events.len() as u64).sum();
        match write(
            &self.trees,
            plans,
            self.committed + events,
            self.last_position,
        ) {
            Ok(()) => {
                self.committed += events;
                self.last_position += events;
                return vec![Ok(()); plans.len()];
            }
            Err(e) if plans.len() == 1 => return vec![Err(e)],
            Err(_) => {}
        }
        let mut failed: HashMap<&UserId, Error> = HashMap::new();
        plans
            .iter()
            .map(|plan| {
                if let Some(earlier) = failed.get(&plan.user.id) {
                    return Err(earlier.clone());
                }
                let events = plan.events.len() as u64;
                let plan_slice = std::slice::from_ref(plan);
                match write(
                    &self.trees,
                    plan_slice,
                    self.committed + events,
                    self.last_position,
                ) {
                    Ok(()) => {
                        self.committed += events;
                        self.last_position += events;
                        Ok(())
                    }
                    Err(e) => {
                        failed.insert(&plan.user.id, e.clone());
                        Err(e)
                    }
                }
            })
            .collect()
    }
}

/// What an update of a batch decided.
enum Decided {
    Unchanged(User),
    /// A commit, whose plan is the next of the batch's.
    Planned,
}

/// Reads the update's user (and its caller's) as stored or as an earlier
/// update of the batch left it, and runs the decision; returns it with the
/// index entries of the user it was decided on.
fn decide(
    trees: &Trees,
    seen: &HashMap<UserId, User>,
    update: Update,
) -> Result<(Decision, Option<IndexKeys>)> {
    let load = |id: &UserId, scope: &userstate::storage::Scope| match seen.get(id) {
        Some(user) => Ok(scope.admits(&user.org_id).then(|| user.clone())),
        None => reader::load(trees, id, scope),
    };
    let stored = load(update.id(), update.scope())?;
    let actor = match update.actor() {
        Some(actor) => load(&actor.user, &actor.scope())?,
        None => None,
    };
    let old = stored.as_ref().map(index_keys);
    Ok((update.decide(stored, actor)?, old))
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

/// One update on its own: the user as stored, the decision on it, and
/// what it decided, written in one transaction, on a database that has
/// `committed` events. Returns the user after it and the events it wrote.
#[cfg(test)]
pub(crate) fn apply(
    trees: &Trees,
    update: Update,
    committed: u64,
    last_position: u64,
) -> Result<(User, u64)> {
    match decide(trees, &HashMap::new(), update)? {
        (Decision::Unchanged(user), _) => Ok((user, 0)),
        (Decision::Write(commit), old) => {
            let plan = Plan::of(old, commit)?;
            let events = plan.events.len() as u64;
            write(
                trees,
                std::slice::from_ref(&plan),
                committed + events,
                last_position,
            )?;
            Ok((plan.user, events))
        }
    }
}

/// The index entries of a stored user.
struct IndexKeys {
    org_state: Vec<u8>,
    /// `None` for a removed user, which its organisation no longer lists.
    org: Option<Vec<u8>>,
}

fn index_keys(user: &User) -> IndexKeys {
    IndexKeys {
        org_state: layout::org_state_key(&user.org_id, user.state, &user.id),
        org: (user.state != UserState::Deleted).then(|| layout::org_key(&user.org_id, &user.id)),
    }
}

/// Moves an index entry from `old` to `new` (either absent). An entry that
/// stays is left alone: most commits keep the organisation, many the state,
/// and each transactional write costs sled a lookup.
fn move_entry(
    tree: &TransactionalTree,
    old: Option<&[u8]>,
    new: Option<&[u8]>,
) -> std::result::Result<(), UnabortableTransactionError> {
    if old != new {
        if let Some(old) = old {
            tree.remove(old)?;
        }
        if let Some(new) = new {
            tree.insert(new, &[][..])?;
        }
    }
    Ok(())
}

/// A decided commit, encoded: the records it writes and the index
/// entries it replaces.
struct Plan {
    events: Vec<(Vec<u8>, Vec<u8>)>,
    snapshot_key: Vec<u8>,
    snapshot_record: Vec<u8>,
    old: Option<IndexKeys>,
    new: IndexKeys,
    /// The user after the commit.
    user: User,
}

impl Plan {
    /// Encodes `commit`, decided on a user whose index entries are `old`.
    fn of(old: Option<IndexKeys>, commit: Commit) -> Result<Plan> {
        let (events, user) = commit.into_parts();
        let id = &user.id;
        let events = events
            .iter()
            .map(|event| {
                Ok((
                    layout::event_key(id, event.sequence),
                    record::encode_event(event)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Plan {
            events,
            snapshot_key: layout::snapshot_key(id),
            snapshot_record: record::encode_user(&user)?,
            old,
            new: index_keys(&user),
            user,
        })
    }
}

/// Writes `plans` in one transaction over all trees, with the count of
/// committed events after them; their events take the positions after
/// `last_position`, in order. Only this writer writes, so no user can have
/// moved on since it was read.
///
/// # Errors
/// Corrupt when an event is already stored at a sequence a commit writes
/// (the history ran ahead of its snapshot: never overwritten); sled errors
/// as mapped by [`from_sled`]. Nothing is written on error.
fn write(trees: &Trees, plans: &[Plan], committed: u64, last_position: u64) -> Result<()> {
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
            let mut position = last_position;
            for plan in plans {
                let id = &plan.user.id;
                for (key, value) in &plan.events {
                    position += 1;
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
                snapshots.insert(
                    plan.snapshot_key.as_slice(),
                    plan.snapshot_record.as_slice(),
                )?;
                let old = plan.old.as_ref();
                move_entry(
                    by_org_state,
                    old.map(|old| old.org_state.as_slice()),
                    Some(&plan.new.org_state),
                )?;
                move_entry(
                    by_org,
                    old.and_then(|old| old.org.as_deref()),
                    plan.new.org.as_deref(),
                )?;
            }
            meta.insert(layout::COMMITTED_KEY, &committed[..])?;
            Ok(())
        },
    );
    outcome.map_err(|e| match e {
        TransactionError::Abort(error) => error,
        TransactionError::Storage(error) => from_sled(error),
    })
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

    #[test]
    fn a_batch_with_one_damaged_user_writes_the_others_at_contiguous_positions() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path(), Durability::Durable, 5);
        // A stray event where b's creation would write its first event.
        let b = UserId::from_stored("b").unwrap();
        writer
            .trees
            .events
            .insert(layout::event_key(&b, 1), &b"stray"[..])
            .unwrap();
        let first = create("a");
        let created = Commit::new(
            None,
            vec![Event {
                user_id: UserId::from_stored("a").unwrap(),
                org_id: OrgId::from_stored("acme").unwrap(),
                sequence: 1,
                created_at: Timestamp::UNIX_EPOCH,
                creator: UserId::from_stored("a").unwrap(),
                payload: EventPayload::Added {
                    state: InitialState::Active,
                },
            }],
        )
        .unwrap();
        let locked = Commit::new(
            Some(created.snapshot().clone()),
            vec![Event {
                user_id: UserId::from_stored("a").unwrap(),
                org_id: OrgId::from_stored("acme").unwrap(),
                sequence: 2,
                created_at: Timestamp::UNIX_EPOCH,
                creator: UserId::from_stored("a").unwrap(),
                payload: EventPayload::Deactivated { reason: None },
            }],
        )
        .unwrap();
        let second = Update::new(
            UserId::from_stored("a").unwrap(),
            Scope::Instance,
            storage::append(locked),
        );
        let outcomes = writer.commit(vec![first, create("b"), second]);
        assert!(outcomes[0].is_ok(), "{outcomes:?}");
        assert_eq!(
            outcomes[1].as_ref().unwrap_err().id(),
            userstate::ids::CORRUPT
        );
        assert_eq!(outcomes[2].as_ref().unwrap().sequence, 2);
        assert_eq!(
            writer.last_position, 2,
            "b's refused event took no position"
        );
        assert_eq!(writer.committed, 2);
        let feed: Vec<_> = writer
            .trees
            .feed
            .iter()
            .keys()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            feed,
            [layout::feed_key(1).to_vec(), layout::feed_key(2).to_vec()]
        );
    }
}
