//! The service a host calls: checks arguments, permission, existence and the
//! transition in that order; the repository runs the decision on the stored
//! user and writes it, and a conflict with another writer re-decides.

use std::sync::Arc;

use crate::auth::{caller_cannot_log_in, permission_denied, Authorizer, Caller, Permission};
use crate::clock::{Clock, SystemClock};
use crate::command::{Command, LockRequest};
use crate::details::Details;
use crate::effective;
use crate::error::Attempts;
use crate::error::{ids, Error, ErrorKind, Result};
use crate::event::{Event, EventPayload};
use crate::feed::{FeedEvent, FeedPage, FeedQuery};
use crate::id::{OrgId, Reason, UserId};
use crate::lockout::{Factor, LockoutPolicies, LockoutPolicy, PolicyInForce, StoredPolicy};
use crate::query::{walk_pages, Cursor, HistoryQuery, ListQuery, Page, MAX_PAGE_SIZE};
use crate::state::{InitialState, UserState};
use crate::storage::{Actor, Commit, Decide, Decision, Scope, Update, UserRepository};
use crate::timestamp::Timestamp;
use crate::user::User;

/// How often a command is decided again after a repository's conflict
/// before the service gives up with Aborted. Every conflict means another
/// writer made progress.
pub const DEFAULT_CONFLICT_RETRIES: u32 = 15;

/// Pages of [`MAX_PAGE_SIZE`] events that one [`UserService::feed`] call
/// reads at most, whatever its filters leave.
pub const FEED_SCAN_PAGES: u32 = 10;

/// The entry point: user lifecycle commands and reads, for a caller.
///
/// Cheap to clone; clones share the repository, authoriser and clock.
#[derive(Debug, Clone)]
pub struct UserService {
    repository: Arc<dyn UserRepository>,
    authorizer: Arc<dyn Authorizer>,
    clock: Arc<dyn Clock>,
    /// `None`: the repository's stored policies.
    policies: Option<Arc<LockoutPolicies>>,
    conflict_retries: u32,
    caller_check: bool,
}

impl UserService {
    /// A service on `repository`, deciding permissions with `authorizer`,
    /// using the system clock.
    pub fn new(repository: Arc<dyn UserRepository>, authorizer: Arc<dyn Authorizer>) -> Self {
        UserService {
            repository,
            authorizer,
            clock: Arc::new(SystemClock),
            policies: None,
            conflict_retries: DEFAULT_CONFLICT_RETRIES,
            caller_check: true,
        }
    }

    /// Whether a caller whose own user is stored here must be able to log
    /// in to act (default on): when the user with the caller's id in the
    /// caller's own organisation is locked (a lock in force), inactive,
    /// initial or removed, every command and read is refused with
    /// PermissionDenied (`USER-CALLER-CANNOT-LOG-IN`). Callers not stored
    /// here (service accounts, an external identity provider) are never
    /// affected. Turn it off when the repository's users are not the
    /// callers.
    pub fn with_caller_check(mut self, on: bool) -> Self {
        self.caller_check = on;
        self
    }

    /// The service's clock's current time: what expiries and the state in
    /// force are measured on.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Uses `policies`, kept in this process's memory, for automatic
    /// locking instead of the policies the repository stores (for tests and
    /// demos: a restart or another process does not see them).
    pub fn with_lockout_policies(mut self, policies: Arc<LockoutPolicies>) -> Self {
        self.policies = Some(policies);
        self
    }

    /// The in-memory policies of [`UserService::with_lockout_policies`];
    /// `None` when the stored policies are in force (the default).
    pub fn lockout_policies(&self) -> Option<&Arc<LockoutPolicies>> {
        self.policies.as_ref()
    }

    /// The lockout policy in force for `org`: stored (as committed by any
    /// handle or process) or in memory.
    async fn policy_in_force(&self, org: &OrgId) -> Result<PolicyInForce> {
        match &self.policies {
            Some(memory) => Ok(PolicyInForce {
                org: org.clone(),
                policy: memory.policy_for(org),
                is_default: false,
                changed: None,
            }),
            None => Ok(self.repository.policies(org).await?.in_force(org)),
        }
    }

    /// The lockout policy in force for the caller's target organisation:
    /// its own, or the instance default. Needs `user.read` there (the
    /// policy shapes what reads and checks show).
    ///
    /// # Errors
    /// PermissionDenied without `user.read` or when the caller's own user
    /// cannot log in; Internal for a stored policy that cannot be decoded.
    pub async fn lockout_policy(&self, caller: &Caller) -> Result<PolicyInForce> {
        self.authorize(caller, Permission::Read).await?;
        self.check_caller(caller).await?;
        self.policy_in_force(caller.target()).await
    }

    /// Sets the lockout policy of the caller's target organisation, in force
    /// for the next command of every handle and process on the repository.
    /// Needs `policy.write` there.
    ///
    /// # Errors
    /// InvalidArgument for an inconsistent policy; PermissionDenied without
    /// `policy.write` or when the caller's own user cannot log in.
    pub async fn set_lockout_policy(
        &self,
        caller: &Caller,
        policy: LockoutPolicy,
    ) -> Result<PolicyInForce> {
        policy.validate()?;
        self.authorize(caller, Permission::PolicyWrite).await?;
        self.check_caller(caller).await?;
        let org = caller.target();
        match &self.policies {
            Some(memory) => memory.set_org(org, policy)?,
            None => {
                let stored = self.stored_policy(caller, policy);
                self.repository.set_policy(Some(org), stored).await?;
            }
        }
        self.policy_in_force(org).await
    }

    /// Sets the instance default, in force for every organisation without a
    /// policy of its own. Needs `policy.write` instance-wide.
    ///
    /// # Errors
    /// As [`UserService::set_lockout_policy`].
    pub async fn set_default_lockout_policy(
        &self,
        caller: &Caller,
        policy: LockoutPolicy,
    ) -> Result<()> {
        policy.validate()?;
        self.authorize_everywhere(caller, Permission::PolicyWrite)
            .await?;
        self.check_caller(caller).await?;
        match &self.policies {
            Some(memory) => memory.set_default(policy),
            None => {
                let stored = self.stored_policy(caller, policy);
                self.repository.set_policy(None, stored).await
            }
        }
    }

    /// `policy` as stored when `caller` sets it now.
    fn stored_policy(&self, caller: &Caller, policy: LockoutPolicy) -> StoredPolicy {
        StoredPolicy {
            policy,
            changed_by: caller.user_id.clone(),
            changed_at: self.clock.now(),
        }
    }

    /// Replaces the clock (tests use a [`crate::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets how many times a command is decided again after a conflict
    /// before it fails with Aborted (default [`DEFAULT_CONFLICT_RETRIES`];
    /// 0 gives up at the first conflict). Only a repository's
    /// [`Conflict`](crate::storage::Conflict) is retried, never another error.
    pub fn with_conflict_retries(mut self, retries: u32) -> Self {
        self.conflict_retries = retries;
        self
    }

    /// The repository the service writes to.
    pub fn repository(&self) -> &Arc<dyn UserRepository> {
        &self.repository
    }

    /// Creates `user` in the caller's target organisation.
    ///
    /// # Errors
    /// PermissionDenied without `user.write`; AlreadyExists if the id exists
    /// or existed in any organisation (ids are global and never reused).
    pub async fn create(
        &self,
        caller: &Caller,
        user: &UserId,
        state: InitialState,
    ) -> Result<Details> {
        self.execute(caller, user, Command::Create { state }).await
    }

    /// Completes initialisation: `Initial` → `Active`.
    ///
    /// # Errors
    /// See [`UserService::execute`].
    pub async fn complete_initialisation(&self, caller: &Caller, user: &UserId) -> Result<Details> {
        self.execute(caller, user, Command::CompleteInitialisation)
            .await
    }

    /// Locks an `Active` or `Initial` user, optionally with a reason and expiry.
    ///
    /// # Errors
    /// See [`UserService::execute`]; FailedPrecondition `User is already
    /// locked` or `User is not active or initial`.
    pub async fn lock(&self, caller: &Caller, user: &UserId, lock: LockRequest) -> Result<Details> {
        self.execute(caller, user, Command::Lock(lock)).await
    }

    /// Unlocks a `Locked` user back to the state it had before the lock,
    /// optionally saying why. An administrator's unlock starts the user
    /// afresh: failed checks and the escalation of temporary lockouts are
    /// reset (a lock that merely expires keeps the escalation).
    ///
    /// # Errors
    /// See [`UserService::execute`]; FailedPrecondition `User is not locked`.
    pub async fn unlock(
        &self,
        caller: &Caller,
        user: &UserId,
        reason: Option<Reason>,
    ) -> Result<Details> {
        self.execute(caller, user, Command::Unlock { reason }).await
    }

    /// Deactivates an `Active` or `Locked` user, optionally saying why.
    ///
    /// # Errors
    /// See [`UserService::execute`].
    pub async fn deactivate(
        &self,
        caller: &Caller,
        user: &UserId,
        reason: Option<Reason>,
    ) -> Result<Details> {
        self.execute(caller, user, Command::Deactivate { reason })
            .await
    }

    /// Reactivates an `Inactive` user, optionally saying why.
    ///
    /// # Errors
    /// See [`UserService::execute`].
    pub async fn reactivate(
        &self,
        caller: &Caller,
        user: &UserId,
        reason: Option<Reason>,
    ) -> Result<Details> {
        self.execute(caller, user, Command::Reactivate { reason })
            .await
    }

    /// Removes a user, optionally saying why; its id stays taken. Needs
    /// `user.delete`.
    ///
    /// # Errors
    /// See [`UserService::execute`].
    pub async fn remove(
        &self,
        caller: &Caller,
        user: &UserId,
        reason: Option<Reason>,
    ) -> Result<Details> {
        self.execute(caller, user, Command::Remove { reason }).await
    }

    /// Runs any lifecycle command for `caller` on `user`.
    ///
    /// Checks, in this order, so nothing leaks across organisations: the
    /// command's arguments (InvalidArgument), the permission in the targeted
    /// organisation (PermissionDenied), that the user exists there (NotFound:
    /// a user of another organisation looks like no user), the transition
    /// (FailedPrecondition). If the repository answers a conflict (another
    /// writer changed the user first), the command is decided again on the
    /// user as it is now, never blindly written again.
    ///
    /// # Errors
    /// The kinds above; Aborted when still conflicting after the configured
    /// retries; Unavailable or Internal from the repository.
    pub async fn execute(
        &self,
        caller: &Caller,
        user: &UserId,
        command: Command,
    ) -> Result<Details> {
        self.run(caller, user, &command)
            .await
            .map(|(after, _)| after.details())
    }

    /// Records the outcome of an authentication check that the host
    /// performed on `user` (the library never sees credentials). Needs
    /// `user.write`, like any command.
    ///
    /// A failure counts against the factor's limit in the organisation's
    /// [`LockoutPolicy`]; the failure that reaches it is written together
    /// with `user.locked`, atomically, so concurrent failures are counted
    /// exactly. A success resets the factor's count and the lockout
    /// escalation; it writes nothing when there is nothing to reset. The
    /// first check after a temporary lock expired records `user.unlocked`
    /// (cause `expired`) before it.
    ///
    /// # Errors
    /// FailedPrecondition `User is locked` (the check is refused and not
    /// counted) or `User is not active`, and the errors of
    /// [`UserService::execute`]. A failed check is not an error here; see
    /// [`CheckRecord::error`] for the error to show the person logging in.
    pub async fn record_check(
        &self,
        caller: &Caller,
        user: &UserId,
        factor: Factor,
        succeeded: bool,
    ) -> Result<CheckRecord> {
        let command = Command::RecordCheck { factor, succeeded };
        let (after, policy) = self.run(caller, user, &command).await?;
        let failed_attempts = after.failed_checks.get(factor);
        let limit = policy.limit(factor);
        Ok(CheckRecord {
            details: after.details(),
            state: after.state,
            factor,
            succeeded,
            failed_attempts,
            remaining_attempts: (limit > 0).then(|| limit.saturating_sub(failed_attempts)),
            locked: !succeeded && after.state == UserState::Locked,
            show_attempts: policy.show_attempts,
        })
    }

    /// Records that `user`'s password was changed, which resets its failed
    /// password checks. Needs `user.write`.
    ///
    /// # Errors
    /// See [`UserService::execute`].
    pub async fn change_password(&self, caller: &Caller, user: &UserId) -> Result<Details> {
        self.execute(caller, user, Command::ChangePassword).await
    }

    /// Checks, decides and appends `command`; returns the user after it and
    /// the lockout policy it was decided under.
    async fn run(
        &self,
        caller: &Caller,
        user: &UserId,
        command: &Command,
    ) -> Result<(User, LockoutPolicy)> {
        let decided = self.decide_and_write(caller, user, command);
        crate::trace::command(command.name(), caller.target(), user, decided).await
    }

    async fn decide_and_write(
        &self,
        caller: &Caller,
        user: &UserId,
        command: &Command,
    ) -> Result<(User, LockoutPolicy)> {
        let now = self.clock.now();
        command.validate(now)?;
        let creating = matches!(command, Command::Create { .. });
        let org = if caller.by_id && !creating {
            // The user's organisation never changes, so finding it before
            // the write is as good as finding it inside.
            match self.find(caller, user, command.permission()).await? {
                Some(found) => found.org_id,
                None => return Err(Error::not_found()),
            }
        } else {
            self.authorize(caller, command.permission()).await?;
            caller.target().clone()
        };
        // Only a check is decided under the lockout policy.
        let policy = if matches!(command, Command::RecordCheck { .. }) {
            self.policy_in_force(&org).await?.policy
        } else {
            LockoutPolicy::default()
        };
        // Creation must see the users of every organisation, to keep ids
        // unique; every other command sees its target organisation's only.
        let scope = if creating {
            Scope::Instance
        } else {
            Scope::Org(org.clone())
        };
        for attempt in 0..=self.conflict_retries {
            if attempt > 0 {
                crate::trace::retried(attempt);
            }
            let decide = decision(
                command.clone(),
                user,
                &org,
                &caller.user_id,
                now,
                policy.clone(),
            );
            let mut update = Update::new(user.clone(), scope.clone(), decide);
            if let Some(actor) = self.actor(caller) {
                update = update.acting(actor, Box::new(move |stored| caller_may_act(stored, now)));
            }
            match self.repository.update(update).await {
                Ok(after) => return Ok((after, policy)),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::Aborted,
            ids::ABORTED,
            "Concurrent modifications did not settle; try again",
        ))
    }

    /// The caller whose own user the check reads, when the check is on.
    fn actor(&self, caller: &Caller) -> Option<Actor> {
        self.caller_check.then(|| Actor {
            user: caller.user_id.clone(),
            org: caller.org_id.clone(),
        })
    }

    /// The stored user `user` (removed ones included) as `caller` may see
    /// it for `permission`: in the target organisation, or with
    /// [`Caller::by_id`] wherever the caller may read it; the caller's own
    /// user is checked in the same read. `None` when there is no such user
    /// for this caller.
    async fn find(
        &self,
        caller: &Caller,
        user: &UserId,
        permission: Permission,
    ) -> Result<Option<User>> {
        let scope = if caller.by_id {
            Scope::Instance
        } else {
            self.authorize(caller, permission).await?;
            Scope::Org(caller.target().clone())
        };
        let found = match self.actor(caller) {
            Some(actor) => {
                let mut both = self
                    .repository
                    .load_many(&[(user, &scope), (&actor.user, &actor.scope())])
                    .await?
                    .into_iter();
                let (found, stored_actor) = (both.next().flatten(), both.next().flatten());
                caller_may_act(stored_actor.as_ref(), self.clock.now())?;
                found
            }
            None => self.repository.load(user, &scope).await?,
        };
        let Some(found) = found else { return Ok(None) };
        if !caller.by_id {
            return Ok(Some(found));
        }
        let allowed = |permission| {
            self.authorizer
                .is_allowed(caller, &found.org_id, permission)
        };
        if !allowed(Permission::Read).await? {
            return Ok(None);
        }
        if permission != Permission::Read && !allowed(permission).await? {
            return Err(permission_denied(permission));
        }
        Ok(Some(found))
    }

    /// Refuses a caller whose own stored user cannot log in, when the check is on.
    async fn check_caller(&self, caller: &Caller) -> Result<()> {
        match self.actor(caller) {
            Some(actor) => {
                let stored = self.repository.load(&actor.user, &actor.scope()).await?;
                caller_may_act(stored.as_ref(), self.clock.now())
            }
            None => Ok(()),
        }
    }

    /// The user as of its last event, in the state in force now (a lock
    /// that expired is gone, see [`User::in_force`]).
    ///
    /// # Errors
    /// PermissionDenied without `user.read` (or when the caller's own user
    /// cannot log in); NotFound if the user does not exist in the targeted
    /// organisation (with [`Caller::by_id`]: anywhere the caller may read)
    /// or is deleted.
    pub async fn get(&self, caller: &Caller, user: &UserId) -> Result<User> {
        let now = self.clock.now();
        self.find(caller, user, Permission::Read)
            .await?
            .filter(|u| u.state != UserState::Deleted)
            .map(|u| u.in_force(now))
            .ok_or_else(Error::not_found)
    }

    /// A page of the user's events, oldest first. The history of a removed
    /// user stays readable, as an audit trail.
    ///
    /// # Errors
    /// InvalidArgument for a bad page size or cursor; PermissionDenied as
    /// for [`UserService::get`]; NotFound if the id was never used where
    /// the caller may read it.
    pub async fn history(
        &self,
        caller: &Caller,
        user: &UserId,
        query: HistoryQuery,
    ) -> Result<Page<Event>> {
        query.validate()?;
        let found = self
            .find(caller, user, Permission::Read)
            .await?
            .ok_or_else(Error::not_found)?;
        // One event past the page tells whether another page follows.
        let limit = query.limit;
        let probe = HistoryQuery {
            limit: limit + 1,
            ..query
        };
        let events = self
            .repository
            .history(user, &Scope::Org(found.org_id), probe)
            .await?;
        Ok(Page::of_probe(events, limit, |e| {
            Cursor::after_sequence(e.sequence)
        }))
    }

    /// Every event of the user, oldest first, page after page.
    pub fn history_all<'a>(
        &'a self,
        caller: &'a Caller,
        user: &'a UserId,
    ) -> impl futures_util::Stream<Item = Result<Event>> + 'a {
        walk_pages(move |after| {
            let query = HistoryQuery {
                after,
                limit: MAX_PAGE_SIZE,
            };
            self.history(caller, user, query)
        })
    }

    /// A page of the target organisation's users, optionally in one state:
    /// the state in force now, by the service's clock (a user whose
    /// temporary lock expired is listed in the state it had before the
    /// lock, not as locked). `Deleted` lists removed users, for callers
    /// with an instance-wide `user.read`.
    ///
    /// # Errors
    /// InvalidArgument for a bad query; PermissionDenied without `user.read`
    /// (instance-wide for `Deleted`) or when the caller's own user cannot
    /// log in.
    pub async fn list(&self, caller: &Caller, query: &ListQuery) -> Result<Page<User>> {
        query.validate()?;
        self.authorize_listing(caller, query.state).await?;
        effective::page(
            self.repository.as_ref(),
            caller.target(),
            query,
            self.clock.now(),
        )
        .await
    }

    /// Every user `query` selects, page after page from `query.after`.
    pub fn list_all<'a>(
        &'a self,
        caller: &'a Caller,
        query: ListQuery,
    ) -> impl futures_util::Stream<Item = Result<User>> + 'a {
        let first = query.after.clone();
        let mut started = false;
        walk_pages(move |after| {
            let after = if started { after } else { first.clone() };
            started = true;
            let query = ListQuery {
                after,
                ..query.clone()
            };
            async move { self.list(caller, &query).await }
        })
    }

    /// How many users of the target organisation [`UserService::list`]
    /// would list for `query` (its cursor and page size aside), from the
    /// indexes: the states in force now are told apart by reading the
    /// users stored as locked, never every user.
    ///
    /// # Errors
    /// As [`UserService::list`].
    pub async fn count(&self, caller: &Caller, query: &ListQuery) -> Result<u64> {
        query.validate()?;
        self.authorize_listing(caller, query.state).await?;
        effective::count(
            self.repository.as_ref(),
            caller.target(),
            query.state,
            self.clock.now(),
        )
        .await
    }

    /// A page of the organisations that have users (removed users
    /// included), in order, for callers with an instance-wide `user.read`.
    ///
    /// # Errors
    /// InvalidArgument for a bad page size or cursor; PermissionDenied
    /// without an instance-wide `user.read` or when the caller's own user
    /// cannot log in.
    pub async fn organisations(
        &self,
        caller: &Caller,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<OrgId>> {
        ListQuery {
            state: None,
            after: None,
            limit,
        }
        .validate()?;
        let after = after
            .map(|cursor| OrgId::new(cursor.as_str()))
            .transpose()
            .map_err(|_| Error::invalid(ids::INVALID_QUERY, "cursor is not one this read gave"))?;
        self.authorize_everywhere(caller, Permission::Read).await?;
        self.check_caller(caller).await?;
        let orgs = self
            .repository
            .organisations(after.as_ref(), limit + 1)
            .await?;
        Ok(Page::of_probe(orgs, limit, Cursor::after_org))
    }

    /// A page of the change feed for `caller`: the events after
    /// `query.after` that the query selects, of organisations where the
    /// caller holds `user.read` (an instance-wide grant sees all), in
    /// position order, and the checkpoint to read on from. A position past
    /// the end is an empty page. One call reads at most
    /// [`FEED_SCAN_PAGES`] pages of the repository's feed, so a page may
    /// hold fewer events than the limit (even none) while the feed goes
    /// on: read on from its checkpoint.
    ///
    /// # Errors
    /// InvalidArgument for a bad page size; PermissionDenied without
    /// `user.read` in `query.org` (when it names one) or when the caller's
    /// own user cannot log in.
    pub async fn feed(&self, caller: &Caller, query: &FeedQuery) -> Result<FeedPage> {
        query.validate()?;
        if let Some(org) = &query.org {
            self.authorize_in(caller, org, Permission::Read).await?;
        }
        self.check_caller(caller).await?;
        let everywhere = self
            .authorizer
            .is_allowed_everywhere(caller, Permission::Read)
            .await?;
        let mut readable: std::collections::HashMap<OrgId, bool> = Default::default();
        let mut events = Vec::new();
        let mut checkpoint = query.after;
        // A caller that sees little of a large feed gets a checkpoint after
        // a bounded scan rather than one request that reads everything.
        let mut scans = 0;
        while events.len() < query.limit as usize && scans < FEED_SCAN_PAGES {
            scans += 1;
            let batch = self.repository.feed(checkpoint, MAX_PAGE_SIZE).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                break;
            };
            for entry in batch {
                if events.len() == query.limit as usize {
                    return Ok(FeedPage { events, checkpoint });
                }
                checkpoint = entry.position;
                if !query.selects(&entry.event) {
                    continue;
                }
                let org = &entry.event.org_id;
                let visible = match readable.get(org) {
                    Some(visible) => *visible,
                    None => {
                        let visible = everywhere
                            || self
                                .authorizer
                                .is_allowed(caller, org, Permission::Read)
                                .await?;
                        readable.insert(org.clone(), visible);
                        visible
                    }
                };
                if visible {
                    events.push(entry);
                }
            }
            checkpoint = last;
        }
        Ok(FeedPage { events, checkpoint })
    }

    /// The feed as a live `Stream` from `query.after` (a consumer's
    /// checkpoint): every event the query selects and `caller` may see, as
    /// it commits, without polling (see
    /// [`UserRepository::wait_for_events`]). Owns what it needs (a clone
    /// of the service), so a host can hand it to a response or a task. Ends
    /// at the first error, which it yields; dropping it frees what it holds.
    pub fn follow(
        &self,
        caller: Caller,
        query: FeedQuery,
    ) -> impl futures_util::Stream<Item = Result<FeedEvent>> + Send + 'static {
        struct Follow {
            service: UserService,
            caller: Caller,
            query: FeedQuery,
            buffered: std::vec::IntoIter<FeedEvent>,
            failed: bool,
        }
        let start = Follow {
            service: self.clone(),
            caller,
            query,
            buffered: Vec::new().into_iter(),
            failed: false,
        };
        futures_util::stream::unfold(start, |mut follow| async move {
            loop {
                if follow.failed {
                    return None;
                }
                if let Some(event) = follow.buffered.next() {
                    return Some((Ok(event), follow));
                }
                let page = match follow.service.feed(&follow.caller, &follow.query).await {
                    Ok(page) => page,
                    Err(error) => {
                        follow.failed = true;
                        return Some((Err(error), follow));
                    }
                };
                let moved = page.checkpoint > follow.query.after;
                follow.query.after = page.checkpoint;
                follow.buffered = page.events.into_iter();
                if !moved {
                    let waited = follow
                        .service
                        .repository
                        .wait_for_events(follow.query.after)
                        .await;
                    if let Err(error) = waited {
                        follow.failed = true;
                        return Some((Err(error), follow));
                    }
                }
            }
        })
    }

    async fn authorize_in(
        &self,
        caller: &Caller,
        org: &OrgId,
        permission: Permission,
    ) -> Result<()> {
        if self.authorizer.is_allowed(caller, org, permission).await? {
            Ok(())
        } else {
            Err(permission_denied(permission))
        }
    }

    /// The checks before a listing: `user.read` in the target organisation
    /// (everywhere, for removed users) and the caller's own user.
    async fn authorize_listing(&self, caller: &Caller, state: Option<UserState>) -> Result<()> {
        self.authorize(caller, Permission::Read).await?;
        if state == Some(UserState::Deleted) {
            self.authorize_everywhere(caller, Permission::Read).await?;
        }
        self.check_caller(caller).await
    }

    async fn authorize_everywhere(&self, caller: &Caller, permission: Permission) -> Result<()> {
        if self
            .authorizer
            .is_allowed_everywhere(caller, permission)
            .await?
        {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::PermissionDenied,
                ids::PERMISSION_DENIED,
                format!("Permission {permission} is missing in the instance"),
            ))
        }
    }

    /// Whether `user` may log in now. For the host's login flow, so it needs
    /// no caller and no permission.
    ///
    /// # Errors
    /// FailedPrecondition `User is locked`, `User is not active` or `User is
    /// not initialised`; NotFound for an unknown or deleted user.
    pub async fn login_allowed(&self, user: &UserId) -> Result<()> {
        let stored = self.repository.load(user, &Scope::Instance).await?;
        let user = stored.ok_or_else(Error::not_found)?;
        user.login_allowed(self.clock.now())
    }

    /// Checks that `caller` holds `permission` in its target organisation,
    /// by the service's authoriser: for host endpoints the service does not
    /// guard itself (e.g. changing lockout policies).
    ///
    /// # Errors
    /// PermissionDenied, or the authoriser's own failure.
    pub async fn authorize(&self, caller: &Caller, permission: Permission) -> Result<()> {
        if self
            .authorizer
            .is_allowed(caller, caller.target(), permission)
            .await?
        {
            Ok(())
        } else {
            Err(permission_denied(permission))
        }
    }
}

/// The caller check on the caller's own stored user (`None`: not stored here).
fn caller_may_act(stored: Option<&User>, now: Timestamp) -> Result<()> {
    match stored {
        Some(user) => user
            .login_allowed(now)
            .map_err(|why| caller_cannot_log_in(&why)),
        None => Ok(()),
    }
}

/// The decision the repository runs on the stored user: the existence
/// check, the transition and the new commit.
fn decision(
    command: Command,
    user: &UserId,
    org: &OrgId,
    creator: &UserId,
    now: Timestamp,
    policy: LockoutPolicy,
) -> Decide {
    let (user, org, creator) = (user.clone(), org.clone(), creator.clone());
    // The repository gives the user only when it is in the command's scope.
    Box::new(move |visible| {
        // A user's times never go backwards, even if the clock steps back;
        // a lock's expiry is measured from the same instant as its event.
        let at = visible.as_ref().map_or(now, |u| now.max(u.changed_at));
        let payloads = command.decide(visible.as_ref(), at, &policy)?;
        if payloads.is_empty() {
            let unchanged =
                visible.ok_or_else(|| Error::internal("nothing decided for no user"))?;
            return Ok(Decision::Unchanged(unchanged));
        }
        build_commit(visible, &user, &org, &creator, at, payloads).map(Decision::Write)
    })
}

/// Numbers and stamps the decided events with `at` and folds them into the
/// new snapshot.
fn build_commit(
    before: Option<User>,
    user: &UserId,
    org: &OrgId,
    creator: &UserId,
    at: Timestamp,
    payloads: Vec<EventPayload>,
) -> Result<Commit> {
    let mut sequence = before.as_ref().map_or(0, |u| u.sequence);
    let owner = before.as_ref().map_or(org, |u| &u.org_id).clone();
    let mut events = Vec::with_capacity(payloads.len());
    for payload in payloads {
        sequence = sequence
            .checked_add(1)
            .ok_or_else(|| Error::corrupt(format!("the history of user {user} is full")))?;
        events.push(Event {
            user_id: user.clone(),
            org_id: owner.clone(),
            sequence,
            created_at: at,
            creator: creator.clone(),
            payload,
        });
    }
    Commit::new(before, events)
}

/// What recording an authentication check did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    /// The user's details after the check.
    pub details: Details,
    /// The user's state after the check (`Locked` if this failure locked it).
    pub state: UserState,
    /// The factor checked.
    pub factor: Factor,
    /// Whether the check succeeded.
    pub succeeded: bool,
    /// Consecutive failed checks of the factor now.
    pub failed_attempts: u32,
    /// Failures left before a lockout; `None` when the policy never locks.
    pub remaining_attempts: Option<u32>,
    /// True when this failure locked the user.
    pub locked: bool,
    /// Whether the policy lets errors show the attempt figures.
    pub show_attempts: bool,
}

impl CheckRecord {
    /// The error to show the person whose check failed; `None` on success.
    /// `Password is invalid` / `One-time password is invalid`
    /// (InvalidArgument), or `User is locked` (FailedPrecondition) when this
    /// failure locked the user; with the attempt figures unless the policy
    /// hides them.
    pub fn error(&self) -> Option<Error> {
        if self.succeeded {
            return None;
        }
        let error = if self.locked {
            Error::precondition(ids::LOGIN_LOCKED, "User is locked")
        } else if self.factor == Factor::Password {
            Error::invalid(ids::PASSWORD_INVALID, "Password is invalid")
        } else {
            Error::invalid(ids::OTP_INVALID, "One-time password is invalid")
        };
        Some(if self.show_attempts {
            error.with_attempts(Attempts {
                failed: self.failed_attempts,
                remaining: self.remaining_attempts,
            })
        } else {
            error
        })
    }
}
