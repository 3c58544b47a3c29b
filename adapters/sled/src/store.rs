//! The blocking storage operations on the four trees: the one transaction
//! that appends a command, and the reads. The async repository runs these on
//! its worker threads.

use std::ops::Bound;

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};
use userstate::{
    Commit, Error, Event, HistoryQuery, ListQuery, OrgId, Page, Result, User, UserId, UserState,
};

use crate::codec::{decode_event, decode_user, encode_event, encode_user};
use crate::format::{self, BY_ORG, BY_ORG_STATE, EVENTS, SNAPSHOTS};
use crate::keys;
use crate::sled_error::from_sled;

/// An open database with its trees.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    db: sled::Db,
    snapshots: Tree,
    events: Tree,
    by_org_state: Tree,
    by_org: Tree,
}

/// Everything an append writes, encoded before the transaction so that the
/// transaction closure (which sled may run several times) only reads and
/// writes trees.
struct PreparedCommit {
    user: UserId,
    expected_sequence: u64,
    snapshot_key: Vec<u8>,
    snapshot: Vec<u8>,
    events: Vec<(Vec<u8>, Vec<u8>)>,
    org_state_key: Vec<u8>,
    /// `None` for a deleted user: the unfiltered list shows existing users only.
    org_key: Option<Vec<u8>>,
}

impl Store {
    /// Checks the format version (writing it if sled just `created` the
    /// database) and opens the trees.
    ///
    /// # Errors
    /// See [`format::check_or_initialise`].
    pub(crate) fn open(db: sled::Db, created: bool) -> Result<Self> {
        format::check_or_initialise(&db, created)?;
        let tree = |name: &str| db.open_tree(name).map_err(from_sled);
        Ok(Store {
            snapshots: tree(SNAPSHOTS)?,
            events: tree(EVENTS)?,
            by_org_state: tree(BY_ORG_STATE)?,
            by_org: tree(BY_ORG)?,
            db,
        })
    }

    /// Writes sled's log buffers to its data file (without forcing them to
    /// the device: see `DeviceSync`).
    ///
    /// # Errors
    /// sled errors as mapped by [`from_sled`].
    pub(crate) fn flush(&self) -> Result<()> {
        self.db.flush().map(drop).map_err(from_sled)
    }

    /// The stored snapshot of `id`.
    ///
    /// # Errors
    /// Internal when the record cannot be decoded or names another user.
    pub(crate) fn load(&self, id: &UserId) -> Result<Option<User>> {
        let Some(bytes) = self
            .snapshots
            .get(keys::snapshot_key(id))
            .map_err(from_sled)?
        else {
            return Ok(None);
        };
        let user = decode_user(&bytes)?;
        if user.id != *id {
            return Err(Error::corrupt("stored user record belongs to another key"));
        }
        Ok(Some(user))
    }

    /// Appends `commit` in one transaction over all trees, if the stored
    /// sequence is still the expected one.
    ///
    /// # Errors
    /// [`Error::conflict`] when the sequence moved on; Internal when the
    /// stored snapshot cannot be decoded or the commit mixes users; sled
    /// errors as mapped by [`from_sled`]. Nothing is written on error.
    pub(crate) fn append(&self, commit: &Commit) -> Result<()> {
        let prepared = prepare(commit)?;
        let trees = (
            &self.events,
            &self.snapshots,
            &self.by_org_state,
            &self.by_org,
        );
        // Tree order is commit order: events before the snapshot before the
        // indexes, so a reader that sees a snapshot also sees its events.
        let outcome = trees.transaction(|(events, snapshots, by_org_state, by_org)| {
            let actual = match snapshots.get(&prepared.snapshot_key)? {
                Some(bytes) => {
                    Some(decode_user(&bytes).map_err(ConflictableTransactionError::Abort)?)
                }
                None => None,
            };
            let actual_sequence = actual.as_ref().map_or(0, |u| u.sequence);
            if actual_sequence != prepared.expected_sequence {
                return Err(ConflictableTransactionError::Abort(Error::conflict(
                    prepared.expected_sequence,
                    actual_sequence,
                )));
            }
            if let Some(old) = &actual {
                by_org_state.remove(keys::org_state_key(&old.org_id, old.state, &prepared.user))?;
                by_org.remove(keys::org_key(&old.org_id, &prepared.user))?;
            }
            for (key, value) in &prepared.events {
                // A stored event at a new sequence means the snapshot is
                // behind its history: never overwrite the audit trail.
                if events.insert(key.as_slice(), value.as_slice())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(Error::corrupt(
                        format!(
                            "user {} has stored events beyond its snapshot",
                            prepared.user
                        ),
                    )));
                }
            }
            snapshots.insert(
                prepared.snapshot_key.as_slice(),
                prepared.snapshot.as_slice(),
            )?;
            by_org_state.insert(prepared.org_state_key.as_slice(), &[][..])?;
            if let Some(key) = &prepared.org_key {
                by_org.insert(key.as_slice(), &[][..])?;
            }
            Ok(())
        });
        outcome.map_err(|e| match e {
            TransactionError::Abort(error) => error,
            TransactionError::Storage(error) => from_sled(error),
        })
    }

    /// Events of `id` after `query.after_sequence`, at most `query.limit`.
    ///
    /// # Errors
    /// Internal when an event cannot be decoded or does not belong where it
    /// is stored.
    pub(crate) fn history(&self, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
        let Some(first) = query.after_sequence.checked_add(1) else {
            return Ok(Vec::new());
        };
        let range = keys::event_key(id, first)..keys::events_end(id);
        let mut events = Vec::new();
        for entry in self.events.range(range).take(query.limit as usize) {
            let (key, bytes) = entry.map_err(from_sled)?;
            let event = decode_event(&bytes)?;
            if event.user_id != *id || keys::event_key(id, event.sequence) != key.as_ref() {
                return Err(Error::corrupt("stored event does not match its key"));
            }
            events.push(event);
        }
        Ok(events)
    }

    /// A page of the users of `org`, ordered by id.
    ///
    /// An index entry and the snapshot it names are read one after the
    /// other, so a user changed in between is checked against the query
    /// again and skipped if it no longer matches.
    ///
    /// # Errors
    /// Internal when an index entry or snapshot cannot be decoded.
    pub(crate) fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        let (tree, prefix) = match query.state {
            Some(state) => (&self.by_org_state, keys::org_state_prefix(org, state)),
            None => (&self.by_org, keys::org_prefix(org)),
        };
        let start = match &query.after {
            Some(after) => {
                let mut key = prefix.clone();
                key.extend_from_slice(after.as_str().as_bytes());
                Bound::Excluded(key)
            }
            None => Bound::Included(prefix.clone()),
        };
        let end = Bound::Excluded(keys::prefix_end(&prefix));
        let limit = query.limit as usize;
        let mut users: Vec<User> = Vec::new();
        let mut more = false;
        for entry in tree.range((start, end)) {
            let (key, _) = entry.map_err(from_sled)?;
            let id = keys::user_after_prefix(&key, &prefix)?;
            let user = self
                .load(&id)?
                .ok_or_else(|| Error::corrupt("index names a user without a snapshot"))?;
            let selected = user.org_id == *org
                && match query.state {
                    Some(state) => user.state == state,
                    None => user.state != UserState::Deleted,
                };
            if !selected {
                continue;
            }
            if users.len() >= limit {
                more = true;
                break;
            }
            users.push(user);
        }
        let next_after = if more {
            users.last().map(|u| u.id.clone())
        } else {
            None
        };
        Ok(Page { users, next_after })
    }

    /// The underlying database (tests overwrite raw records through it).
    #[cfg(test)]
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }
}

fn prepare(commit: &Commit) -> Result<PreparedCommit> {
    commit.validate()?;
    let snapshot = &commit.snapshot;
    let user = snapshot.id.clone();
    let mut events = Vec::with_capacity(commit.events.len());
    for event in &commit.events {
        events.push((keys::event_key(&user, event.sequence), encode_event(event)?));
    }
    Ok(PreparedCommit {
        expected_sequence: commit.expected_sequence,
        snapshot_key: keys::snapshot_key(&user),
        snapshot: encode_user(snapshot)?,
        events,
        org_state_key: keys::org_state_key(&snapshot.org_id, snapshot.state, &user),
        org_key: (snapshot.state != UserState::Deleted)
            .then(|| keys::org_key(&snapshot.org_id, &user)),
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use userstate::{ids, EventPayload, InitialState, Timestamp};

    fn store() -> Store {
        Store::open(sled::Config::new().temporary(true).open().unwrap(), true).unwrap()
    }

    fn user(id: &str) -> UserId {
        UserId::new(id).unwrap()
    }

    fn event(id: &str, sequence: u64, payload: EventPayload) -> Event {
        Event {
            user_id: user(id),
            org_id: OrgId::new("acme").unwrap(),
            sequence,
            created_at: Timestamp::from_unix_millis(1_000 * sequence as i64).unwrap(),
            creator: user("admin"),
            payload,
        }
    }

    /// Appends one event to `id`, deciding nothing: the store's contract only.
    fn append(store: &Store, id: &str, payload: EventPayload) -> Result<User> {
        let before = store.load(&user(id)).unwrap();
        let sequence = before.as_ref().map_or(0, |u| u.sequence);
        let event = event(id, sequence + 1, payload);
        let snapshot = User::apply(before, &event);
        store.append(&Commit {
            expected_sequence: sequence,
            events: vec![event],
            snapshot: snapshot.clone(),
        })?;
        Ok(snapshot)
    }

    fn added() -> EventPayload {
        EventPayload::Added {
            state: InitialState::Active,
        }
    }

    #[test]
    fn ids_that_are_prefixes_keep_separate_histories_and_lists() {
        let store = store();
        append(&store, "a", added()).unwrap();
        append(&store, "ab", added()).unwrap();
        append(&store, "ab", EventPayload::Deactivated).unwrap();
        assert_eq!(
            store
                .history(&user("a"), HistoryQuery::default())
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .history(&user("ab"), HistoryQuery::default())
                .unwrap()
                .len(),
            2
        );
        let acme = OrgId::new("acme").unwrap();
        let active = store
            .list(&acme, &ListQuery::in_state(UserState::Active))
            .unwrap();
        assert_eq!(active.users.len(), 1);
        assert_eq!(active.users[0].id, user("a"));
    }

    #[test]
    fn history_after_the_last_possible_sequence_is_empty() {
        let store = store();
        append(&store, "a", added()).unwrap();
        let query = HistoryQuery {
            after_sequence: u64::MAX,
            limit: 10,
        };
        assert!(store.history(&user("a"), query).unwrap().is_empty());
    }

    #[test]
    fn removed_users_leave_the_unfiltered_list() {
        let store = store();
        append(&store, "a", added()).unwrap();
        append(&store, "a", EventPayload::Removed).unwrap();
        let acme = OrgId::new("acme").unwrap();
        assert!(store
            .list(&acme, &ListQuery::all())
            .unwrap()
            .users
            .is_empty());
    }

    #[test]
    fn a_commit_mixing_users_writes_nothing() {
        let store = store();
        let snapshot = User::apply(None, &event("a", 1, added()));
        let err = store
            .append(&Commit {
                expected_sequence: 0,
                events: vec![event("b", 1, added())],
                snapshot,
            })
            .unwrap_err();
        assert_eq!(err.kind(), userstate::ErrorKind::Internal);
        assert_eq!(store.load(&user("a")).unwrap(), None);
    }

    #[test]
    fn a_corrupt_snapshot_blocks_only_its_user() {
        let store = store();
        append(&store, "a", added()).unwrap();
        append(&store, "b", added()).unwrap();
        store
            .db()
            .open_tree(SNAPSHOTS)
            .unwrap()
            .insert("a", &[1u8, 0xff][..])
            .unwrap();
        assert_eq!(store.load(&user("a")).unwrap_err().id(), ids::CORRUPT);
        // Appending to it is refused inside the transaction, not overwritten.
        let direct = store.append(&Commit {
            expected_sequence: 1,
            events: vec![event("a", 2, EventPayload::Deactivated)],
            snapshot: User::apply(None, &event("a", 2, EventPayload::Deactivated)),
        });
        assert_eq!(direct.unwrap_err().id(), ids::CORRUPT);
        assert!(store.load(&user("b")).unwrap().is_some());
        append(&store, "b", EventPayload::Deactivated).unwrap();
    }

    #[test]
    fn an_event_stored_under_the_wrong_key_is_corrupt() {
        let store = store();
        append(&store, "a", added()).unwrap();
        let foreign = encode_event(&event("b", 2, added())).unwrap();
        store
            .events
            .insert(keys::event_key(&user("a"), 2), foreign)
            .unwrap();
        let err = store
            .history(&user("a"), HistoryQuery::default())
            .unwrap_err();
        assert_eq!(err.id(), ids::CORRUPT);
    }
}
