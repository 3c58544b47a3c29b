//! The reference repository: everything in memory behind one mutex. It defines
//! the behaviour the conformance suite expects of every adapter.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::event::Event;
use crate::feed::FeedEvent;
use crate::id::{OrgId, UserId};
use crate::lockout::{StoredPolicies, StoredPolicy};
use crate::query::{HistoryQuery, ListQuery, Page};
use crate::state::UserState;
use crate::storage::{page_of, Commit, Decision, FeedSignal, Scope, Update, UserRepository};
use crate::user::User;

/// A repository that keeps users in memory; lost when dropped.
///
/// Decides every update under its one lock, so it never conflicts.
#[derive(Debug, Default)]
pub struct InMemoryRepository {
    inner: Mutex<Tables>,
    signal: FeedSignal,
}

#[derive(Debug, Default)]
struct Tables {
    users: HashMap<UserId, User>,
    events: HashMap<UserId, Vec<Event>>,
    /// Serves list by organisation and state.
    by_org_state: HashMap<(OrgId, UserState), BTreeSet<UserId>>,
    /// Users that exist (not deleted): serves the unfiltered list.
    by_org: HashMap<OrgId, BTreeSet<UserId>>,
    /// Every committed event in commit order; an event's position is its
    /// index plus one.
    feed: Vec<Event>,
    /// Lockout policies by organisation; `None`: the instance default.
    policies: HashMap<Option<OrgId>, StoredPolicy>,
}

impl InMemoryRepository {
    /// An empty repository.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // Decisions run inside `Update::decide`, which catches their panics,
        // and every write completes without panicking: a poisoned lock never
        // guards half-written tables.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Tables {
    fn visible(&self, id: &UserId, scope: &Scope) -> Option<User> {
        self.users
            .get(id)
            .filter(|u| scope.admits(&u.org_id))
            .cloned()
    }

    /// Runs `update` on the user as stored and stores what it decided.
    fn decide(&mut self, update: Update) -> Result<User> {
        let stored = self.users.get(update.id()).cloned();
        let actor = update
            .actor()
            .and_then(|actor| self.visible(&actor.user, &actor.scope()));
        match update.decide(stored, actor)? {
            Decision::Unchanged(user) => Ok(user),
            Decision::Write(commit) => Ok(self.write(commit)),
        }
    }

    /// Stores a commit decided on the stored user; returns the user after it.
    fn write(&mut self, commit: Commit) -> User {
        let (events, new) = commit.into_parts();
        if let Some(old) = self.users.get(&new.id) {
            if let Some(ids) = self.by_org_state.get_mut(&(old.org_id.clone(), old.state)) {
                ids.remove(&old.id);
            }
            if let Some(ids) = self.by_org.get_mut(&old.org_id) {
                ids.remove(&old.id);
            }
        }
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
        self.feed.extend(events.iter().cloned());
        self.events
            .entry(new.id.clone())
            .or_default()
            .extend(events);
        self.users.insert(new.id.clone(), new.clone());
        new
    }
}

#[async_trait]
impl UserRepository for InMemoryRepository {
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
        Ok(self.tables().visible(id, scope))
    }

    async fn load_many(&self, wanted: &[(&UserId, &Scope)]) -> Result<Vec<Option<User>>> {
        let tables = self.tables();
        Ok(wanted
            .iter()
            .map(|(id, scope)| tables.visible(id, scope))
            .collect())
    }

    async fn update(&self, update: Update) -> Result<User> {
        let mut tables = self.tables();
        let outcome = tables.decide(update);
        let last = tables.feed.len() as u64;
        drop(tables);
        self.signal.committed(last);
        outcome
    }

    async fn update_many(&self, updates: Vec<Update>) -> Vec<Result<User>> {
        let mut tables = self.tables();
        let outcomes = updates
            .into_iter()
            .map(|update| tables.decide(update))
            .collect();
        let last = tables.feed.len() as u64;
        drop(tables);
        self.signal.committed(last);
        outcomes
    }

    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
        let after = query.sequence()?;
        let t = self.tables();
        let visible = t.users.get(id).is_some_and(|u| scope.admits(&u.org_id));
        let events = match t.events.get(id) {
            Some(events) if visible => events.as_slice(),
            _ => &[],
        };
        Ok(events
            .iter()
            .filter(|e| e.sequence > after)
            .take(query.limit as usize)
            .cloned()
            .collect())
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
        let after = query.after_user()?;
        let t = self.tables();
        let ids = match query.state {
            Some(state) => t.by_org_state.get(&(org.clone(), state)),
            None => t.by_org.get(org),
        };
        let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let users = ids
            .into_iter()
            .flat_map(|ids| ids.range::<UserId, _>((start, Bound::Unbounded)))
            .map(|id| {
                t.users
                    .get(id)
                    .cloned()
                    .ok_or_else(|| Error::internal("index names a user without a snapshot"))
            });
        page_of(users, query.limit)
    }

    async fn count(&self, org: &OrgId, state: Option<UserState>) -> Result<u64> {
        let t = self.tables();
        let ids = match state {
            Some(state) => t.by_org_state.get(&(org.clone(), state)),
            None => t.by_org.get(org),
        };
        Ok(ids.map_or(0, |ids| ids.len() as u64))
    }

    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<FeedEvent>> {
        let t = self.tables();
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(t.feed
            .iter()
            .zip(1u64..)
            .skip(start)
            .take(limit as usize)
            .map(|(event, position)| FeedEvent {
                position,
                event: event.clone(),
            })
            .collect())
    }

    async fn wait_for_events(&self, after: u64) -> Result<()> {
        self.signal.wait(after).await;
        Ok(())
    }

    async fn policies(&self, org: &OrgId) -> Result<StoredPolicies> {
        let t = self.tables();
        Ok(StoredPolicies {
            org: t.policies.get(&Some(org.clone())).cloned(),
            default: t.policies.get(&None).cloned(),
        })
    }

    async fn set_policy(&self, org: Option<&OrgId>, policy: StoredPolicy) -> Result<()> {
        self.tables().policies.insert(org.cloned(), policy);
        Ok(())
    }

    async fn policy_organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        let t = self.tables();
        let orgs: BTreeSet<&OrgId> = t
            .policies
            .keys()
            .flatten()
            .filter(|org| after.is_none_or(|after| *org > after))
            .collect();
        Ok(orgs.into_iter().take(limit as usize).cloned().collect())
    }

    async fn organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        let t = self.tables();
        let orgs: BTreeSet<&OrgId> = t
            .by_org_state
            .iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|((org, _), _)| org)
            .filter(|org| after.is_none_or(|after| *org > after))
            .collect();
        Ok(orgs.into_iter().take(limit as usize).cloned().collect())
    }
}
