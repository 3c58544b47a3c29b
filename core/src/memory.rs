//! The reference repository: everything in memory behind one mutex. It defines
//! the behaviour the conformance suite expects of every adapter.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::id::{OrgId, UserId};
use crate::repository::{
    run_decide, Commit, Decide, Decision, HistoryQuery, ListQuery, Page, UserRepository,
};
use crate::state::UserState;
use crate::user::User;

/// A repository that keeps users in memory; lost when dropped.
#[derive(Debug, Default)]
pub struct InMemoryRepository {
    inner: Mutex<Tables>,
}

#[derive(Debug, Default)]
struct Tables {
    users: HashMap<UserId, User>,
    events: HashMap<UserId, Vec<Event>>,
    /// Serves list by organisation and state.
    by_org_state: HashMap<(OrgId, UserState), BTreeSet<UserId>>,
    /// Users that exist (not deleted): serves the unfiltered list.
    by_org: HashMap<OrgId, BTreeSet<UserId>>,
}

impl InMemoryRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // Every write below completes before it can panic-free return, so a
        // poisoned lock never guards half-written tables.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Tables {
    /// Stores a valid commit if the stored sequence is the expected one.
    fn write(&mut self, commit: Commit) -> Result<()> {
        let id = &commit.snapshot.id;
        let old = self.users.get(id).cloned();
        let actual = old.as_ref().map_or(0, |u| u.sequence);
        if actual != commit.expected_sequence {
            return Err(Error::conflict(commit.expected_sequence, actual));
        }
        if let Some(old) = old {
            if let Some(ids) = self.by_org_state.get_mut(&(old.org_id.clone(), old.state)) {
                ids.remove(&old.id);
            }
            if let Some(ids) = self.by_org.get_mut(&old.org_id) {
                ids.remove(&old.id);
            }
        }
        let new = commit.snapshot;
        self.by_org_state
            .entry((new.org_id.clone(), new.state))
            .or_default()
            .insert(new.id.clone());
        if new.state != UserState::Deleted {
            self.by_org
                .entry(new.org_id.clone())
                .or_default()
                .insert(new.id.clone());
        }
        self.events
            .entry(new.id.clone())
            .or_default()
            .extend(commit.events);
        self.users.insert(new.id.clone(), new);
        Ok(())
    }
}

#[async_trait]
impl UserRepository for InMemoryRepository {
    async fn load(&self, id: &UserId) -> Result<Option<User>> {
        Ok(self.tables().users.get(id).cloned())
    }

    async fn append(&self, commit: Commit) -> Result<()> {
        commit.validate()?;
        self.tables().write(commit)
    }

    /// Decides under the tables' lock, so it never conflicts.
    async fn update(&self, id: &UserId, decide: Decide) -> Result<User> {
        let mut tables = self.tables();
        let stored = tables.users.get(id).cloned();
        let decision = run_decide(decide, id, stored)?;
        let after = decision.user().clone();
        if let Decision::Write(commit) = decision {
            tables.write(commit)?;
        }
        Ok(after)
    }

    async fn history(&self, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
        let t = self.tables();
        let events = t.events.get(id).map_or(&[][..], Vec::as_slice);
        Ok(events
            .iter()
            .filter(|e| e.sequence > query.after_sequence)
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        let t = self.tables();
        let ids = match query.state {
            Some(state) => t.by_org_state.get(&(org.clone(), state)),
            None => t.by_org.get(org),
        };
        let start = query
            .after
            .as_ref()
            .map_or(Bound::Unbounded, Bound::Excluded);
        let limit = query.limit as usize;
        let mut page: Vec<&UserId> = ids
            .map(|ids| {
                ids.range::<UserId, _>((start, Bound::Unbounded))
                    .take(limit + 1)
                    .collect()
            })
            .unwrap_or_default();
        let more = page.len() > limit;
        page.truncate(limit);
        let users = page
            .iter()
            .map(|id| {
                t.users
                    .get(*id)
                    .cloned()
                    .ok_or_else(|| Error::internal("index names a user without a snapshot"))
            })
            .collect::<Result<Vec<_>>>()?;
        let next_after = if more {
            page.last().map(|id| (*id).clone())
        } else {
            None
        };
        Ok(Page { users, next_after })
    }
}
