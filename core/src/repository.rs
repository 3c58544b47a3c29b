//! The storage contract every adapter implements: object-safe async traits
//! with optimistic concurrency on a user's sequence.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{ids, Error, Result};
use crate::event::Event;
use crate::id::{OrgId, UserId};
use crate::state::UserState;
use crate::user::User;

/// Largest page a list or history read returns.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The events one command writes and the snapshot they lead to.
///
/// An adapter stores it atomically (events, snapshot and indexes in one
/// commit) if and only if the user's stored sequence still equals
/// `expected_sequence` (0: the user must not exist); otherwise it writes
/// nothing and returns [`Error::conflict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The user's sequence the command was decided on.
    pub expected_sequence: u64,
    /// The new events (at least one), numbered `expected_sequence + 1`
    /// onwards, all of the snapshot's user.
    pub events: Vec<Event>,
    /// [`User::replay`] of the whole history including `events`.
    pub snapshot: User,
}

impl Commit {
    /// [`Commit::validate`], and that the commit is of user `id`: the check
    /// an adapter runs on what a [`Decide`] returned for `id`.
    ///
    /// # Errors
    /// Internal for a malformed commit or one of another user.
    pub fn validate_for(&self, id: &UserId) -> Result<()> {
        if &self.snapshot.id != id {
            return Err(Error::internal(
                "malformed commit: decided for another user",
            ));
        }
        self.validate()
    }

    /// Checks the commit's shape: at least one event, numbered
    /// `expected_sequence + 1` onwards without overflow, all of the
    /// snapshot's user and organisation, and the snapshot at the last event.
    /// Adapters call it before writing; the service only builds valid commits.
    ///
    /// # Errors
    /// Internal for a malformed commit.
    pub fn validate(&self) -> Result<()> {
        let malformed = |why: &str| Error::internal(format!("malformed commit: {why}"));
        let snapshot = &self.snapshot;
        let mut next = self.expected_sequence;
        for event in &self.events {
            next = next
                .checked_add(1)
                .ok_or_else(|| malformed("sequence overflow"))?;
            if event.sequence != next {
                return Err(malformed(
                    "events are not numbered from the expected sequence on",
                ));
            }
            if event.user_id != snapshot.id || event.org_id != snapshot.org_id {
                return Err(malformed(
                    "an event belongs to another user or organisation",
                ));
            }
        }
        if self.events.is_empty() {
            return Err(malformed("no events"));
        }
        if snapshot.sequence != next {
            return Err(malformed("the snapshot is not at the last event"));
        }
        Ok(())
    }
}

/// What a [`Decide`] made of a user's stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to write; this is the user as it stays.
    Unchanged(User),
    /// Store this commit, built on the snapshot the decision was given.
    Write(Commit),
}

impl Decision {
    /// The user after the decision: the unchanged user or the commit's snapshot.
    pub fn user(&self) -> &User {
        match self {
            Decision::Unchanged(user) => user,
            Decision::Write(commit) => &commit.snapshot,
        }
    }
}

/// A command's decision on a user's stored snapshot (`None`: the id was
/// never used), run by [`UserRepository::update`] where the repository
/// chooses: on its writer, under its write lock, if it has one. It must not
/// block and should not panic; a panic fails the one update with Internal.
pub type Decide = Box<dyn FnOnce(Option<User>) -> Result<Decision> + Send>;

/// Runs `decide` on `stored`, the snapshot of `id`, and checks that what it
/// decided is of `id` (a commit also with [`Commit::validate`]). Adapters
/// call it on their writer threads, which must survive a faulty decision:
/// a panic becomes Internal.
///
/// # Errors
/// What `decide` returned; Internal if it panicked or decided for another
/// user or a malformed commit.
pub fn run_decide(decide: Decide, id: &UserId, stored: Option<User>) -> Result<Decision> {
    let decision = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || decide(stored)))
        .unwrap_or_else(|_| Err(Error::internal("a decision panicked")))?;
    match &decision {
        Decision::Unchanged(user) if &user.id != id => {
            Err(Error::internal("a decision answered with another user"))
        }
        Decision::Unchanged(_) => Ok(()),
        Decision::Write(commit) => commit.validate_for(id),
    }?;
    Ok(decision)
}

/// Which users of an organisation to list, and where the page starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only users in this state; `None` lists all users that exist (not deleted).
    pub state: Option<UserState>,
    /// Start after this user id (the previous page's `next_after`).
    pub after: Option<UserId>,
    /// Page size, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            state: None,
            after: None,
            limit: 100,
        }
    }
}

impl ListQuery {
    /// All existing users, first page of 100.
    pub fn all() -> Self {
        Self::default()
    }

    /// Users in `state`, first page of 100.
    pub fn in_state(state: UserState) -> Self {
        ListQuery {
            state: Some(state),
            ..Self::default()
        }
    }

    /// Checks the limit and the filter.
    ///
    /// # Errors
    /// InvalidArgument for a limit of 0 or above [`MAX_PAGE_SIZE`], or a
    /// `Deleted` filter (deleted users do not exist).
    pub fn validate(&self) -> Result<()> {
        check_limit(self.limit)?;
        if self.state == Some(UserState::Deleted) {
            return Err(Error::invalid(
                ids::INVALID_QUERY,
                "deleted users cannot be listed",
            ));
        }
        Ok(())
    }
}

/// One page of users, ordered by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// The users on this page.
    pub users: Vec<User>,
    /// Pass as [`ListQuery::after`] for the next page; `None` on the last page.
    pub next_after: Option<UserId>,
}

/// Which part of a user's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    /// Only events with a greater sequence.
    pub after_sequence: u64,
    /// At most this many events, 1 to [`MAX_PAGE_SIZE`].
    pub limit: u32,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            after_sequence: 0,
            limit: MAX_PAGE_SIZE,
        }
    }
}

impl HistoryQuery {
    /// Checks the limit.
    ///
    /// # Errors
    /// InvalidArgument for a limit of 0 or above [`MAX_PAGE_SIZE`].
    pub fn validate(&self) -> Result<()> {
        check_limit(self.limit)
    }
}

fn check_limit(limit: u32) -> Result<()> {
    if limit == 0 || limit > MAX_PAGE_SIZE {
        return Err(Error::invalid(
            ids::INVALID_QUERY,
            format!("page size must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    Ok(())
}

/// Storage for users: snapshots, histories and the per-organisation state index.
///
/// Object safe: a service holds an `Arc<dyn UserRepository>` and can pick its
/// backend at run time. Reads are not scoped by organisation; the service
/// checks the owner before revealing anything.
#[async_trait]
pub trait UserRepository: Send + Sync + fmt::Debug {
    /// The stored snapshot of `id`, deleted users included; `None` if the id
    /// was never used.
    ///
    /// # Errors
    /// Internal when the stored record cannot be decoded; Unavailable when
    /// the backend cannot be reached.
    async fn load(&self, id: &UserId) -> Result<Option<User>>;

    /// Writes `commit` atomically if the stored sequence is still the expected one.
    ///
    /// # Errors
    /// [`Error::conflict`] (kind Aborted) when the stored sequence differs;
    /// Unavailable or Internal for backend faults. Nothing is written on error.
    async fn append(&self, commit: Commit) -> Result<()>;

    /// Loads `id`, runs `decide` on the stored snapshot and stores the
    /// commit it decided, as one step; returns the user after it. This is
    /// how the service runs every command.
    ///
    /// The provided method is [`UserRepository::load`] then
    /// [`UserRepository::append`], so a writer that got in between makes it
    /// fail with a conflict, and the service decides again. Adapters
    /// override it to make one trip to their storage instead of two, and
    /// those that run `decide` under their write lock never conflict. Either
    /// way the decision is checked with [`run_decide`] and the commit as
    /// [`UserRepository::append`] checks it, and nothing is written when
    /// `decide` fails, decides [`Decision::Unchanged`] or panics.
    ///
    /// # Errors
    /// What `decide` returned; otherwise as [`UserRepository::append`].
    async fn update(&self, id: &UserId, decide: Decide) -> Result<User> {
        let stored = self.load(id).await?;
        let decision = run_decide(decide, id, stored)?;
        let after = decision.user().clone();
        if let Decision::Write(commit) = decision {
            self.append(commit).await?;
        }
        Ok(after)
    }

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
