//! The trait every storage backend implements.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::event::Event;
use crate::id::{OrgId, UserId};
use crate::query::{HistoryQuery, ListQuery, Page};
use crate::storage::{Decide, Scope};
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

    /// Reads `id` where the repository writes, as [`UserRepository::load`]
    /// reads it in `scope`, runs `decide` on it (see
    /// [`Update::decide`](super::Update::decide), which checks what it
    /// answers) and stores what it decided, atomically; returns the user
    /// after it. The one write: the service runs every command through it.
    ///
    /// Nothing is written when `decide` fails, panics or decides
    /// [`Decision::Unchanged`](super::Decision::Unchanged). An adapter that
    /// decides under its write lock never conflicts; one that checks the
    /// stored sequence optimistically answers a [`Conflict`](super::Conflict).
    ///
    /// # Errors
    /// What `decide` returned; [`Conflict`](super::Conflict) (kind
    /// Conflict) when the user moved on before the commit; Unavailable or
    /// Internal for backend faults.
    async fn update(&self, id: &UserId, scope: &Scope, decide: Decide) -> Result<User>;

    /// Events of `id` in sequence order, as selected by `query`; none when
    /// its user is outside `scope`.
    ///
    /// # Errors
    /// As [`UserRepository::load`].
    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>>;

    /// A page of the users of `org`, ordered by id.
    ///
    /// # Errors
    /// As [`UserRepository::load`].
    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page>;
}

/// Shared ownership forwards every method.
#[async_trait]
impl<T: UserRepository + ?Sized> UserRepository for Arc<T> {
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
        (**self).load(id, scope).await
    }

    async fn update(&self, id: &UserId, scope: &Scope, decide: Decide) -> Result<User> {
        (**self).update(id, scope, decide).await
    }

    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
        (**self).history(id, scope, query).await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        (**self).list(org, query).await
    }
}

/// A boxed repository forwards every method.
#[async_trait]
impl<T: UserRepository + ?Sized> UserRepository for Box<T> {
    async fn load(&self, id: &UserId, scope: &Scope) -> Result<Option<User>> {
        (**self).load(id, scope).await
    }

    async fn update(&self, id: &UserId, scope: &Scope, decide: Decide) -> Result<User> {
        (**self).update(id, scope, decide).await
    }

    async fn history(&self, id: &UserId, scope: &Scope, query: HistoryQuery) -> Result<Vec<Event>> {
        (**self).history(id, scope, query).await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        (**self).list(org, query).await
    }
}
