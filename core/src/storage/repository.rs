//! The trait every storage backend implements.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::event::Event;
use crate::feed::FeedEvent;
use crate::id::{OrgId, UserId};
use crate::lockout::{StoredPolicies, StoredPolicy};
use crate::query::{HistoryQuery, ListQuery, Page};
use crate::state::UserState;
use crate::storage::{Scope, Update};
use crate::user::User;

/// Storage for users: snapshots, histories and the per-organisation indexes.
///
/// Object safe: a service holds an `Arc<dyn UserRepository>` and can pick
/// its backend at run time. Every method is required, so a wrapper
/// forwards each one and cannot inherit a write path unnoticed. Reads are
/// not scoped by organisation; the service checks the owner before
/// revealing anything.
#[async_trait]
pub trait UserRepository: Send + Sync + fmt::Debug {
    /// The stored snapshot of `id`, deleted users included, if it is in
    /// `scope`; `None` if the id was never used or its user is outside the
    /// scope. The organisation is told before anything else is decoded, so
    /// a damaged user outside the scope is `None` too.
    ///
    /// # Errors
    /// Internal (`USER-CORRUPT`, naming the user) when the stored record of
    /// a user that may be in the scope cannot be decoded; Unavailable when
    /// the backend cannot be reached.
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>>;

    /// Several users at once, each as [`UserRepository::load`] reads it in
    /// its scope, in one round trip to the backend (the service reads a
    /// caller's own user with the user it asks for).
    ///
    /// # Errors
    /// As [`UserRepository::load`], for any of them.
    async fn load_many(&self, wanted: &[(&UserId, &Scope)]) -> Result<Vec<Option<User>>>;

    /// Reads the update's user where the repository writes, as
    /// [`UserRepository::load`] reads it in [`Update::scope`] (and, when
    /// [`Update::actor`] names one, the caller's own user in the same
    /// read), runs [`Update::decide`] on them, which checks what the
    /// decision answers, and stores what it decided, atomically; returns
    /// the user after it. The one write: the service runs every command
    /// through it.
    ///
    /// Nothing is written when the caller's check or the decision fails,
    /// the decision panics or decides
    /// [`Decision::Unchanged`](super::Decision::Unchanged). An adapter that
    /// decides under its write lock never conflicts; one that checks the
    /// stored sequence optimistically answers a [`Conflict`](super::Conflict).
    ///
    /// # Errors
    /// What `decide` returned; [`Conflict`](super::Conflict) (kind
    /// Conflict) when the user moved on before the commit; Unavailable or
    /// Internal for backend faults.
    async fn update(&self, update: Update) -> Result<User>;

    /// Runs `updates` in order, each as [`UserRepository::update`] runs it
    /// (a later one sees what an earlier one stored, of the same user too),
    /// and commits what they decided together, as one write; returns each
    /// one's outcome, in order. Their events take feed positions in this
    /// order. For imports and migrations, which must keep a feed's order
    /// and cannot afford a commit per event; a service runs its commands
    /// through `update`.
    ///
    /// One update's refusal or conflict leaves the others alone. When the
    /// write as a whole fails, every outcome is that error and none of the
    /// updates is stored (an outcome marked unknown may have been stored
    /// whole).
    async fn update_many(&self, updates: Vec<Update>) -> Vec<Result<User>>;

    /// Events of `id` in sequence order, as selected by `query`; none when
    /// its user is outside `scope`.
    ///
    /// # Errors
    /// As [`UserRepository::load`].
    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>>;

    /// A page of the users of `org` in their stored state (`query.state`:
    /// that state, `Deleted` included; `None`: all but deleted ones),
    /// ordered by id. The service tells expired locks apart.
    ///
    /// # Errors
    /// As [`UserRepository::load`].
    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page<User>>;

    /// How many users of `org` are stored in `state` (`None`: all but
    /// deleted ones), from the indexes, without decoding users.
    ///
    /// # Errors
    /// Unavailable or Internal for backend faults.
    async fn count(&self, org: &OrgId, state: Option<UserState>) -> Result<u64>;

    /// The organisations that have users (removed ones included), in
    /// order, after `after`, at most `limit` of them.
    ///
    /// # Errors
    /// Unavailable or Internal for backend faults.
    async fn organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>>;

    /// The change feed: up to `limit` committed events after `after`, in
    /// position order. Positions are assigned inside the commit, strictly
    /// increasing in commit order, so a reader that checkpoints the last
    /// position it saw never skips an event committed later.
    ///
    /// # Errors
    /// Internal (`USER-CORRUPT`) when a stored event cannot be decoded.
    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<FeedEvent>>;

    /// Resolves once an event after `after` is committed (at once if one
    /// is), without polling and without a particular async runtime. An
    /// adapter whose database other processes write may look for their
    /// commits at a bounded interval, and says so.
    ///
    /// # Errors
    /// Unavailable or Internal for backend faults.
    async fn wait_for_events(&self, after: u64) -> Result<()>;

    /// The lockout policies stored for `org`: its own and the instance
    /// default, read together, as committed by any handle or process.
    ///
    /// # Errors
    /// Internal (`USER-CORRUPT`) when a stored policy cannot be decoded.
    async fn policies(&self, org: &OrgId) -> Result<StoredPolicies>;

    /// Stores `policy` as `org`'s (`None`: the instance default), replacing
    /// what was there, durably as the repository stores commands.
    ///
    /// # Errors
    /// Unavailable or Internal for backend faults.
    async fn set_policy(&self, org: Option<&OrgId>, policy: StoredPolicy) -> Result<()>;

    /// The organisations that have a lockout policy of their own (whether
    /// or not they have users), in order, after `after`, at most `limit`
    /// of them: how an export finds every stored policy.
    ///
    /// # Errors
    /// Unavailable or Internal for backend faults.
    async fn policy_organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>>;
}

/// Shared ownership forwards every method.
#[async_trait]
impl<T: UserRepository + ?Sized> UserRepository for Arc<T> {
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
        (**self).load(id, scope).await
    }

    async fn load_many(&self, wanted: &[(&UserId, &Scope)]) -> Result<Vec<Option<User>>> {
        (**self).load_many(wanted).await
    }

    async fn update(&self, update: Update) -> Result<User> {
        (**self).update(update).await
    }

    async fn update_many(&self, updates: Vec<Update>) -> Vec<Result<User>> {
        (**self).update_many(updates).await
    }

    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
        (**self).history(id, scope, query).await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
        (**self).list(org, query).await
    }

    async fn count(&self, org: &OrgId, state: Option<UserState>) -> Result<u64> {
        (**self).count(org, state).await
    }

    async fn organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        (**self).organisations(after, limit).await
    }

    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<FeedEvent>> {
        (**self).feed(after, limit).await
    }

    async fn wait_for_events(&self, after: u64) -> Result<()> {
        (**self).wait_for_events(after).await
    }

    async fn policies(&self, org: &OrgId) -> Result<StoredPolicies> {
        (**self).policies(org).await
    }

    async fn set_policy(&self, org: Option<&OrgId>, policy: StoredPolicy) -> Result<()> {
        (**self).set_policy(org, policy).await
    }

    async fn policy_organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        (**self).policy_organisations(after, limit).await
    }
}

/// A boxed repository forwards every method.
#[async_trait]
impl<T: UserRepository + ?Sized> UserRepository for Box<T> {
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
        (**self).load(id, scope).await
    }

    async fn load_many(&self, wanted: &[(&UserId, &Scope)]) -> Result<Vec<Option<User>>> {
        (**self).load_many(wanted).await
    }

    async fn update(&self, update: Update) -> Result<User> {
        (**self).update(update).await
    }

    async fn update_many(&self, updates: Vec<Update>) -> Vec<Result<User>> {
        (**self).update_many(updates).await
    }

    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
        (**self).history(id, scope, query).await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
        (**self).list(org, query).await
    }

    async fn count(&self, org: &OrgId, state: Option<UserState>) -> Result<u64> {
        (**self).count(org, state).await
    }

    async fn organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        (**self).organisations(after, limit).await
    }

    async fn feed(&self, after: u64, limit: u32) -> Result<Vec<FeedEvent>> {
        (**self).feed(after, limit).await
    }

    async fn wait_for_events(&self, after: u64) -> Result<()> {
        (**self).wait_for_events(after).await
    }

    async fn policies(&self, org: &OrgId) -> Result<StoredPolicies> {
        (**self).policies(org).await
    }

    async fn set_policy(&self, org: Option<&OrgId>, policy: StoredPolicy) -> Result<()> {
        (**self).set_policy(org, policy).await
    }

    async fn policy_organisations(&self, after: Option<&OrgId>, limit: u32) -> Result<Vec<OrgId>> {
        (**self).policy_organisations(after, limit).await
    }
}
