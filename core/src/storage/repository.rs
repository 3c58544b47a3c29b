//! The trait every storage backend implements.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::event::Event;
use crate::id::{OrgId, UserId};
use crate::query::{HistoryQuery, ListQuery, Page};
use crate::storage::Decide;
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
    /// The stored snapshot of `id`, deleted users included; `None` if the id
    /// was never used.
    ///
    /// # Errors
    /// Internal when the stored record cannot be decoded; Unavailable when
    /// the backend cannot be reached.
    async fn load(&self, id: &UserId) -> Result<Option<User>>;

    /// Reads `id` where the repository writes, runs `decide` on it (see
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
    async fn update(&self, id: &UserId, decide: Decide) -> Result<User>;

    /// Events of `id` in sequence order, as selected by `query`.
    ///
    /// # Errors
    /// As [`UserRepository::load`].
    async fn history(&self, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>>;

    /// A page of the users of `org`, ordered by id.
    ///
    /// # Errors
    /// As [`UserRepository::load`].
    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page>;
}

/// Shared ownership forwards every method.
#[async_trait]
impl<T: UserRepository + ?Sized> UserRepository for Arc<T> {
    async fn load(&self, id: &UserId) -> Result<Option<User>> {
        (**self).load(id).await
    }

    async fn update(&self, id: &UserId, decide: Decide) -> Result<User> {
        (**self).update(id, decide).await
    }

    async fn history(&self, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
        (**self).history(id, query).await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        (**self).list(org, query).await
    }
}

/// A boxed repository forwards every method.
#[async_trait]
impl<T: UserRepository + ?Sized> UserRepository for Box<T> {
    async fn load(&self, id: &UserId) -> Result<Option<User>> {
        (**self).load(id).await
    }

    async fn update(&self, id: &UserId, decide: Decide) -> Result<User> {
        (**self).update(id, decide).await
    }

    async fn history(&self, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
        (**self).history(id, query).await
    }

    async fn list(&self, org: &OrgId, query: &ListQuery) -> Result<Page> {
        (**self).list(org, query).await
    }
}
