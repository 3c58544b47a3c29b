//! What a command hands the repository: the decision to run on the stored
//! user, what it may decide, and the one check of it every adapter relies on.

use std::fmt;

use crate::error::{ids, Error, ErrorKind, Result};
use crate::event::Event;
use crate::id::{OrgId, UserId};
use crate::storage::Scope;
use crate::user::User;

/// The events one command writes and the snapshot they lead to.
///
/// Well formed by construction ([`Commit::new`]): at least one event, all of
/// one user and organisation, numbered on from the user the commit was
/// built on, and a snapshot that is the replay of that user and the events.
/// An adapter stores it atomically (events, snapshot and indexes in one
/// commit) and checks nothing of its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    expected_sequence: u64,
    events: Vec<Event>,
    snapshot: User,
}

impl Commit {
    /// The commit of `events` on top of `before` (`None`: the user does not
    /// exist yet), with the snapshot folded from them by [`User::apply`].
    ///
    /// # Errors
    /// Internal when the events are empty, not numbered from
    /// `before.sequence + 1` on, would overflow the sequence, or belong to
    /// another user or organisation than `before` (or than the first event).
    pub fn new(before: Option<User>, events: Vec<Event>) -> Result<Self> {
        let malformed = |why: &str| Error::internal(format!("malformed commit: {why}"));
        let first = events.first().ok_or_else(|| malformed("no events"))?;
        let (user, org) = match &before {
            Some(before) => (&before.id, &before.org_id),
            None => (&first.user_id, &first.org_id),
        };
        let expected_sequence = before.as_ref().map_or(0, |u| u.sequence);
        let mut next = expected_sequence;
        for event in &events {
            next = next
                .checked_add(1)
                .ok_or_else(|| malformed("sequence overflow"))?;
            if event.sequence != next {
                return Err(malformed(
                    "events are not numbered from the expected sequence on",
                ));
            }
            if &event.user_id != user || &event.org_id != org {
                return Err(malformed(
                    "an event belongs to another user or organisation",
                ));
            }
        }
        let snapshot = events
            .iter()
            .fold(before, |user, event| Some(User::apply(user, event)))
            .ok_or_else(|| malformed("no events"))?;
        Ok(Commit {
            expected_sequence,
            events,
            snapshot,
        })
    }

    /// The user's sequence the commit was built on (0: the user did not exist).
    pub fn expected_sequence(&self) -> u64 {
        self.expected_sequence
    }

    /// The new events, in sequence order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The user after the events.
    pub fn snapshot(&self) -> &User {
        &self.snapshot
    }

    /// The events and the snapshot, for an adapter to store.
    pub fn into_parts(self) -> (Vec<Event>, User) {
        (self.events, self.snapshot)
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
            Decision::Write(commit) => commit.snapshot(),
        }
    }
}

/// A command's decision on a user's stored snapshot (`None`: the id was
/// never used), run by [`UserRepository::update`](super::UserRepository::update)
/// where the repository chooses: on its writer, under its write lock, if it
/// has one. It must not block; a panic fails the one update with Internal.
pub type Decide = Box<dyn FnOnce(Option<User>) -> Result<Decision> + Send>;

/// The decision that writes `commit` if the user is still at the sequence
/// it was built on, and answers a [`Conflict`] otherwise: a raw write, for
/// tests, imports and benchmarks that build their commits by hand.
pub fn append(commit: Commit) -> Decide {
    Box::new(move |stored| {
        let actual = stored.map_or(0, |user| user.sequence);
        if actual == commit.expected_sequence {
            Ok(Decision::Write(commit))
        } else {
            Err(Conflict {
                expected: commit.expected_sequence,
                actual,
            }
            .into())
        }
    })
}

/// The caller of a command, when its own user may be stored in the same
/// repository: the user with this id in this organisation (a user with the
/// same id elsewhere is someone else).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Actor {
    /// The caller's user id.
    pub user: UserId,
    /// The caller's own organisation.
    pub org: OrgId,
}

impl Actor {
    /// The scope the caller's own user is read in.
    pub fn scope(&self) -> Scope {
        Scope::Org(self.org.clone())
    }
}

/// The service's check of the caller's stored user (`None`: not stored),
/// run by [`Update::decide`] before the decision, on the same read.
pub type CheckActor = Box<dyn FnOnce(Option<&User>) -> Result<()> + Send>;

/// One command for a repository's writer: the user it is for, the scope it
/// may see it in, its decision and, when the service checks the caller,
/// the caller's own user to read with it.
pub struct Update {
    id: UserId,
    scope: Scope,
    decide: Decide,
    actor: Option<(Actor, CheckActor)>,
}

impl Update {
    /// The update of `id`, seen in `scope`, by `decide`.
    pub fn new(id: UserId, scope: Scope, decide: Decide) -> Self {
        Update {
            id,
            scope,
            decide,
            actor: None,
        }
    }

    /// The same update, refused unless `check` accepts the caller's user
    /// as the adapter reads it where it writes.
    pub fn acting(mut self, actor: Actor, check: CheckActor) -> Self {
        self.actor = Some((actor, check));
        self
    }

    /// The user the update is for.
    pub fn id(&self) -> &UserId {
        &self.id
    }

    /// The organisations the update may see its user in: the adapter reads
    /// the user as [`UserRepository::load`](super::UserRepository::load)
    /// does in this scope.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The caller whose own user the adapter reads, in [`Actor::scope`],
    /// in the same transaction as the user: `None` when nobody is checked.
    pub fn actor(&self) -> Option<&Actor> {
        self.actor.as_ref().map(|(actor, _)| actor)
    }

    /// Runs the caller's check on `actor` (the caller's user as read beside
    /// `stored`; ignored when [`Update::actor`] is `None`), then the
    /// decision on `stored`, the user as the adapter reads it where it will
    /// write (`None`: never stored, or outside the scope), and checks what
    /// came back: the only check an adapter needs before it stores a
    /// [`Decision::Write`]. Users outside their scopes are given as `None`.
    ///
    /// # Errors
    /// What the caller's check or the decision returned; Internal if the
    /// decision panicked or answered with another user (or an unchanged
    /// user that is not stored); a [`Conflict`] for a commit built on
    /// another sequence than `stored`'s.
    pub fn decide(self, stored: Option<User>, actor: Option<User>) -> Result<Decision> {
        let Update {
            id,
            scope,
            decide,
            actor: check,
        } = self;
        if let Some((actor_id, check)) = check {
            let actor =
                actor.filter(|user| user.id == actor_id.user && user.org_id == actor_id.org);
            check(actor.as_ref())?;
        }
        let stored = stored.filter(|user| scope.admits(&user.org_id));
        let actual = stored.as_ref().map_or(0, |user| user.sequence);
        let exists = stored.is_some();
        let decision =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || decide(stored)))
                .unwrap_or_else(|_| Err(Error::internal("a decision panicked")))?;
        match &decision {
            Decision::Unchanged(user) if user.id != id || !exists => {
                Err(Error::internal("a decision answered with another user"))
            }
            Decision::Write(commit) if commit.snapshot.id != id => {
                Err(Error::internal("a decision wrote another user"))
            }
            Decision::Write(commit) if commit.expected_sequence != actual => Err(Conflict {
                expected: commit.expected_sequence,
                actual,
            }
            .into()),
            _ => Ok(decision),
        }
    }
}

impl fmt::Debug for Update {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Update")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The user was not at the sequence a commit was built on: another writer
/// got there first. A repository answers it as an [`Error`] of kind
/// [`ErrorKind::Conflict`], and the service decides the command again on
/// the user as it is now; nothing else makes it retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conflict {
    /// The sequence the commit was built on.
    pub expected: u64,
    /// The sequence the repository found (0: no such user).
    pub actual: u64,
}

impl From<Conflict> for Error {
    fn from(conflict: Conflict) -> Self {
        Error::new(
            ErrorKind::Conflict,
            ids::CONFLICT,
            format!(
                "Concurrent modification: expected sequence {}, found {}",
                conflict.expected, conflict.actual
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventPayload, InitialState, OrgId, Timestamp};

    fn event(user: &str, org: &str, sequence: u64, payload: EventPayload) -> Event {
        Event {
            user_id: UserId::new(user).unwrap(),
            org_id: OrgId::new(org).unwrap(),
            sequence,
            created_at: Timestamp::UNIX_EPOCH,
            creator: UserId::new("admin").unwrap(),
            payload,
        }
    }

    fn added(sequence: u64) -> Event {
        event(
            "alice",
            "acme",
            sequence,
            EventPayload::Added {
                state: InitialState::Active,
            },
        )
    }

    fn alice() -> User {
        User::replay(&[added(1)]).unwrap()
    }

    #[test]
    fn a_commit_folds_its_events_into_the_snapshot() {
        let locked = event(
            "alice",
            "acme",
            2,
            EventPayload::Locked {
                reason: None,
                expires_at: None,
                cause: crate::LockCause::Command,
            },
        );
        let commit = Commit::new(Some(alice()), vec![locked.clone()]).unwrap();
        assert_eq!(commit.expected_sequence(), 1);
        assert_eq!(commit.events(), std::slice::from_ref(&locked));
        assert_eq!(
            commit.snapshot(),
            &User::replay(&[added(1), locked]).unwrap()
        );
    }

    #[test]
    fn malformed_commits_cannot_be_built() {
        let deactivated = |user, org, sequence| {
            event(
                user,
                org,
                sequence,
                EventPayload::Deactivated { reason: None },
            )
        };
        let cases = [
            ("no events", Some(alice()), vec![]),
            (
                "an overlap",
                Some(alice()),
                vec![deactivated("alice", "acme", 1)],
            ),
            (
                "a gap",
                Some(alice()),
                vec![deactivated("alice", "acme", 3)],
            ),
            (
                "another user",
                Some(alice()),
                vec![deactivated("bob", "acme", 2)],
            ),
            (
                "another org",
                Some(alice()),
                vec![deactivated("alice", "globex", 2)],
            ),
            ("a new user from 2", None, vec![added(2)]),
            (
                "two users at once",
                None,
                vec![added(1), deactivated("bob", "acme", 2)],
            ),
        ];
        for (case, before, events) in cases {
            let err = Commit::new(before, events).expect_err(case);
            assert_eq!(err.kind(), ErrorKind::Internal, "{case}");
        }
        let mut at_the_end = alice();
        at_the_end.sequence = u64::MAX;
        let err = Commit::new(Some(at_the_end), vec![deactivated("alice", "acme", 0)]).unwrap_err();
        assert!(err.message().contains("overflow"), "{err}");
    }

    #[test]
    fn an_update_checks_what_its_decision_answered() {
        let id = UserId::new("alice").unwrap();
        let fresh = Commit::new(None, vec![added(1)]).unwrap();
        let write = |commit: Commit| -> Decide { Box::new(move |_| Ok(Decision::Write(commit))) };

        let ok = Update::new(id.clone(), Scope::Instance, write(fresh.clone()))
            .decide(None, None)
            .unwrap();
        assert_eq!(ok, Decision::Write(fresh.clone()));

        let stale = Update::new(id.clone(), Scope::Instance, write(fresh.clone()))
            .decide(Some(alice()), None)
            .unwrap_err();
        assert_eq!(stale.kind(), ErrorKind::Conflict);
        assert!(stale.is_conflict());

        let bob = UserId::new("bob").unwrap();
        let foreign = Update::new(bob.clone(), Scope::Instance, write(fresh))
            .decide(None, None)
            .unwrap_err();
        assert_eq!(foreign.kind(), ErrorKind::Internal);

        let panicked = Update::new(
            id.clone(),
            Scope::Instance,
            Box::new(|_| panic!("a faulty decision")),
        )
        .decide(None, None)
        .unwrap_err();
        assert_eq!(panicked.kind(), ErrorKind::Internal);

        let unchanged_nobody = Update::new(
            id,
            Scope::Instance,
            Box::new(|_| Ok(Decision::Unchanged(alice()))),
        )
        .decide(None, None)
        .unwrap_err();
        assert_eq!(unchanged_nobody.kind(), ErrorKind::Internal);
        let unchanged_other = Update::new(
            bob,
            Scope::Instance,
            Box::new(|_| Ok(Decision::Unchanged(alice()))),
        )
        .decide(Some(alice()), None)
        .unwrap_err();
        assert_eq!(unchanged_other.kind(), ErrorKind::Internal);
    }

    #[test]
    fn only_a_conflict_is_a_conflict() {
        let conflict: Error = Conflict {
            expected: 1,
            actual: 2,
        }
        .into();
        assert!(conflict.is_conflict());
        assert_eq!(conflict.id(), ids::CONFLICT);
        // An error that merely carries the id is not one.
        let lookalike = Error::new(ErrorKind::Aborted, ids::CONFLICT, "from a host");
        assert!(!lookalike.is_conflict());
    }
}
