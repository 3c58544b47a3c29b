//! The model-based property test: random command sequences from several
//! callers in several organisations, run against a plain reference model and
//! the real service; every answer and the final states must agree.
//!
//! The model is written from the README's transition table and order of
//! checks directly and shares no decision code with the library.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::fixture::{at, user, Fixture, T0};
use crate::{
    ids, Caller, Command, Details, ErrorKind, Factor, HistoryQuery, InitialState, ListQuery,
    LockRequest, LockoutPolicy, OrgId, Reason, User, UserRepository, UserState,
};

/// The number of cases [`model_test`] runs by default: `PROPTEST_CASES` if
/// set, else 256.
pub fn model_test_cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

const USERS: usize = 4;
/// acme-admin, acme-writer, acme-reader, globex-admin, root, nobody, and
/// `model-0` of acme (the model's user 0, when it is in acme) with all
/// permissions in acme: a caller whose own user is stored.
const CALLERS: usize = 7;
/// The caller that is the model's user 0 in acme.
const STORED_CALLER: usize = 6;
/// acme, globex, root-org.
const ORGS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Perm {
    Read,
    Write,
    Delete,
}

#[derive(Debug, Clone)]
enum Cmd {
    Create(InitialState),
    Lock {
        reason: bool,
        expires_in: Option<i64>,
    },
    Unlock,
    Deactivate,
    Reactivate,
    Remove,
    CompleteInitialisation,
    Check {
        factor: usize,
        succeeded: bool,
    },
    ChangePassword,
}

#[derive(Debug, Clone)]
enum Op {
    Command {
        caller: usize,
        target: Option<usize>,
        user: usize,
        cmd: Cmd,
    },
    Get {
        caller: usize,
        target: Option<usize>,
        user: usize,
    },
    History {
        caller: usize,
        target: Option<usize>,
        user: usize,
    },
    List {
        caller: usize,
        target: Option<usize>,
        state: Option<UserState>,
    },
    Login {
        user: usize,
    },
    Advance(i64),
    /// Sets the policy of an organisation (`None`: the instance default).
    SetPolicy {
        org: Option<usize>,
        policy: usize,
    },
}

const FACTORS: [Factor; 4] = [Factor::Password, Factor::Totp, Factor::Sms, Factor::Email];

/// The policies the test switches between.
fn policies() -> [LockoutPolicy; 4] {
    [
        LockoutPolicy::default(),
        LockoutPolicy {
            max_password_attempts: 2,
            max_otp_attempts: 3,
            ..LockoutPolicy::default()
        },
        LockoutPolicy {
            max_password_attempts: 1,
            max_otp_attempts: 1,
            lock_duration_ms: Some(1_000),
            duration_growth: 2,
            max_lock_duration_ms: Some(4_000),
            permanent_after: 2,
            ..LockoutPolicy::default()
        },
        LockoutPolicy {
            max_password_attempts: 3,
            lock_duration_ms: Some(500),
            show_attempts: false,
            ..LockoutPolicy::default()
        },
    ]
}

fn cmd_strategy() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        2 => prop_oneof![Just(InitialState::Active), Just(InitialState::Initial)].prop_map(Cmd::Create),
        3 => (any::<bool>(), prop_oneof![
            3 => Just(None),
            1 => Just(Some(0i64)),
            2 => (1i64..5_000).prop_map(Some),
        ]).prop_map(|(reason, expires_in)| Cmd::Lock { reason, expires_in }),
        3 => Just(Cmd::Unlock),
        2 => Just(Cmd::Deactivate),
        2 => Just(Cmd::Reactivate),
        1 => Just(Cmd::Remove),
        2 => Just(Cmd::CompleteInitialisation),
        6 => (0..FACTORS.len(), prop_oneof![2 => Just(false), 1 => Just(true)])
            .prop_map(|(factor, succeeded)| Cmd::Check { factor, succeeded }),
        1 => Just(Cmd::ChangePassword),
    ]
}

fn target_strategy() -> impl Strategy<Value = Option<usize>> {
    prop_oneof![5 => Just(None), 1 => (0..ORGS).prop_map(Some)]
}

/// Mostly callers that may write, so that sequences get deep into the table.
fn caller_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![6 => Just(0usize), 2 => Just(1usize), 2 => 2..CALLERS]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let who = || (caller_strategy(), target_strategy(), 0..USERS);
    prop_oneof![
        12 => (who(), cmd_strategy()).prop_map(|((caller, target, user), cmd)| Op::Command { caller, target, user, cmd }),
        2 => who().prop_map(|(caller, target, user)| Op::Get { caller, target, user }),
        1 => who().prop_map(|(caller, target, user)| Op::History { caller, target, user }),
        1 => (caller_strategy(), target_strategy(), prop_oneof![
            Just(None),
            Just(Some(UserState::Initial)),
            Just(Some(UserState::Active)),
            Just(Some(UserState::Locked)),
            Just(Some(UserState::Inactive)),
            Just(Some(UserState::Deleted)),
        ]).prop_map(|(caller, target, state)| Op::List { caller, target, state }),
        2 => (0..USERS).prop_map(|user| Op::Login { user }),
        2 => (1i64..3_000).prop_map(Op::Advance),
        1 => (prop_oneof![Just(None), (0..ORGS).prop_map(Some)], 0..4usize)
            .prop_map(|(org, policy)| Op::SetPolicy { org, policy }),
    ]
}

#[derive(Debug, Clone)]
struct ModelUser {
    org: usize,
    state: UserState,
    before_lock: UserState,
    expires_at: Option<i64>,
    sequence: u64,
    created: i64,
    changed: i64,
    failed: [u32; 4],
    lockouts: u32,
}

#[derive(Debug)]
struct Model {
    users: BTreeMap<usize, ModelUser>,
    now: i64,
    default_policy: usize,
    org_policy: [Option<usize>; ORGS],
}

/// What a recorded check answers: state, failed count, locked, sequence, remaining.
type CheckAnswer = (UserState, u32, bool, u64, Option<u32>);

/// (kind, id) of an expected error.
type Failure = (ErrorKind, &'static str);

fn own_org(caller: usize) -> usize {
    match caller {
        3 => 1,
        4 => 2,
        _ => 0,
    }
}

fn allowed(caller: usize, org: usize, perm: Perm) -> bool {
    match caller {
        0 => org == 0,
        1 => org == 0 && perm != Perm::Delete,
        2 => org == 0 && perm == Perm::Read,
        3 => org == 1,
        4 => true,
        STORED_CALLER => org == 0,
        _ => false,
    }
}

impl Model {
    fn visible(&self, user: usize, org: usize) -> Option<&ModelUser> {
        self.users.get(&user).filter(|u| u.org == org)
    }

    /// The state of `u` in force now: an expired lock no longer counts.
    fn state_now(&self, u: &ModelUser) -> UserState {
        match u.state {
            UserState::Locked if u.expires_at.is_some_and(|at| at <= self.now) => u.before_lock,
            state => state,
        }
    }

    /// Whether `caller` is refused because its own stored user cannot log
    /// in: only the stored caller, when user 0 is in acme and is locked,
    /// inactive, initial or removed.
    fn blocked(&self, caller: usize) -> bool {
        caller == STORED_CALLER
            && self
                .visible(0, 0)
                .is_some_and(|u| self.state_now(u) != UserState::Active)
    }

    /// Permission, then the caller check, as the service orders them.
    fn admit(&self, caller: usize, org: usize, perm: Perm) -> Result<(), Failure> {
        if !allowed(caller, org, perm) {
            return Err((ErrorKind::PermissionDenied, ids::PERMISSION_DENIED));
        }
        if self.blocked(caller) {
            return Err((ErrorKind::PermissionDenied, ids::CALLER_CANNOT_LOG_IN));
        }
        Ok(())
    }

    fn command(
        &mut self,
        caller: usize,
        target: Option<usize>,
        user: usize,
        cmd: &Cmd,
    ) -> Result<(u64, i64, i64, usize), Failure> {
        use UserState::*;
        if let Cmd::Lock {
            expires_in: Some(ms),
            ..
        } = cmd
        {
            if *ms <= 0 {
                return Err((ErrorKind::InvalidArgument, ids::INVALID_TIME));
            }
        }
        let org = target.unwrap_or(own_org(caller));
        let perm = if matches!(cmd, Cmd::Remove) {
            Perm::Delete
        } else {
            Perm::Write
        };
        self.admit(caller, org, perm)?;
        let now = self.now;
        if let Cmd::Create(initial) = cmd {
            if self.users.contains_key(&user) {
                return Err((ErrorKind::AlreadyExists, ids::ALREADY_EXISTS));
            }
            let state = match initial {
                InitialState::Active => Active,
                InitialState::Initial => Initial,
            };
            self.users.insert(
                user,
                ModelUser {
                    org,
                    state,
                    before_lock: Active,
                    expires_at: None,
                    sequence: 1,
                    created: now,
                    changed: now,
                    failed: [0; 4],
                    lockouts: 0,
                },
            );
            return Ok((1, now, now, org));
        }
        let (stored, lock_expired) = match self.visible(user, org) {
            Some(u) if u.state != Deleted => (
                u.state,
                u.state == Locked && u.expires_at.is_some_and(|at| at <= now),
            ),
            _ => return Err((ErrorKind::NotFound, ids::NOT_FOUND)),
        };
        // A command other than an unlock decides on the state in force:
        // an expired lock is first recorded as unlocked.
        let expire_first = lock_expired && !matches!(cmd, Cmd::Unlock);
        let current = if expire_first {
            self.users[&user].before_lock
        } else {
            stored
        };
        let fail = |id| Err((ErrorKind::FailedPrecondition, id));
        let (next, expires_at) = match (cmd, current) {
            (Cmd::Lock { expires_in, .. }, Active | Initial) => {
                (Locked, expires_in.map(|ms| now + ms))
            }
            (Cmd::Lock { .. }, Locked) => return fail(ids::ALREADY_LOCKED),
            (Cmd::Lock { .. }, _) => return fail(ids::NOT_ACTIVE_OR_INITIAL),
            (Cmd::Unlock, Locked) => (self.users[&user].before_lock, None),
            (Cmd::Unlock, _) => return fail(ids::NOT_LOCKED),
            (Cmd::Deactivate, Locked) if self.users[&user].before_lock == Initial => {
                return fail(ids::INITIAL_CANNOT_DEACTIVATE)
            }
            (Cmd::Deactivate, Active | Locked) => (Inactive, None),
            (Cmd::Deactivate, Initial) => return fail(ids::INITIAL_CANNOT_DEACTIVATE),
            (Cmd::Deactivate, _) => return fail(ids::ALREADY_INACTIVE),
            (Cmd::Reactivate, Inactive) => (Active, None),
            (Cmd::Reactivate, _) => return fail(ids::NOT_INACTIVE),
            (Cmd::Remove, _) => (Deleted, None),
            (Cmd::CompleteInitialisation, Initial) => (Active, None),
            (Cmd::CompleteInitialisation, _) => return fail(ids::NOT_INITIAL),
            (Cmd::Create(_), _) => return Err((ErrorKind::AlreadyExists, ids::ALREADY_EXISTS)),
            (Cmd::ChangePassword, state) => (state, None),
            (Cmd::Check { .. }, _) => {
                return Err((ErrorKind::Internal, "checks go through Model::check"))
            }
        };
        let Some(u) = self.users.get_mut(&user) else {
            return Err((ErrorKind::NotFound, ids::NOT_FOUND));
        };
        if expire_first {
            u.state = current;
            u.expires_at = None;
            u.failed = [0; 4];
            u.sequence += 1;
        }
        if next == Locked && current != Locked {
            u.before_lock = current;
        }
        match cmd {
            // An administrator's unlock starts the user afresh.
            Cmd::Unlock => {
                u.failed = [0; 4];
                u.lockouts = 0;
            }
            Cmd::ChangePassword => u.failed[0] = 0,
            _ => {}
        }
        if !matches!(cmd, Cmd::ChangePassword) || current != Locked {
            u.expires_at = expires_at;
        }
        u.state = next;
        u.sequence += 1;
        u.changed = u.changed.max(now);
        Ok((u.sequence, u.created, u.changed, u.org))
    }

    fn policy(&self, org: usize) -> LockoutPolicy {
        let index = self.org_policy[org].unwrap_or(self.default_policy);
        policies()[index].clone()
    }

    fn check(
        &mut self,
        caller: usize,
        target: Option<usize>,
        user: usize,
        factor: usize,
        succeeded: bool,
    ) -> Result<CheckAnswer, Failure> {
        let org = target.unwrap_or(own_org(caller));
        self.admit(caller, org, Perm::Write)?;
        let policy = self.policy(org);
        let now = self.now;
        let Some(mut u) = self
            .visible(user, org)
            .filter(|u| u.state != UserState::Deleted)
            .cloned()
        else {
            return Err((ErrorKind::NotFound, ids::NOT_FOUND));
        };
        let mut written = 0;
        match u.state {
            UserState::Active | UserState::Initial => {}
            UserState::Locked if u.expires_at.is_some_and(|at| at <= now) => {
                u.state = u.before_lock;
                u.expires_at = None;
                u.failed = [0; 4];
                written += 1;
            }
            UserState::Locked => return Err((ErrorKind::FailedPrecondition, ids::LOGIN_LOCKED)),
            _ => return Err((ErrorKind::FailedPrecondition, ids::LOGIN_INACTIVE)),
        }
        let limit = if factor == 0 {
            policy.max_password_attempts
        } else {
            policy.max_otp_attempts
        };
        let mut locked = false;
        if succeeded {
            if u.failed[factor] > 0 || u.lockouts > 0 || written > 0 {
                u.failed[factor] = 0;
                u.lockouts = 0;
                written += 1;
            }
        } else {
            u.failed[factor] += 1;
            written += 1;
            if limit > 0 && u.failed[factor] >= limit {
                u.before_lock = u.state;
                u.state = UserState::Locked;
                u.expires_at = model_expiry(&policy, now, u.lockouts);
                u.lockouts += 1;
                locked = true;
                written += 1;
            }
        }
        if written > 0 {
            u.sequence += written;
            u.changed = u.changed.max(now);
        }
        let answer = (
            u.state,
            u.failed[factor],
            locked,
            u.sequence,
            (limit > 0).then(|| limit.saturating_sub(u.failed[factor])),
        );
        self.users.insert(user, u);
        Ok(answer)
    }

    fn login(&self, user: usize) -> Result<(), &'static str> {
        let Some(u) = self.users.get(&user) else {
            return Err(ids::NOT_FOUND);
        };
        match u.state {
            UserState::Active => Ok(()),
            UserState::Locked if u.expires_at.is_some_and(|at| at <= self.now) => {
                if u.before_lock == UserState::Initial {
                    Err(ids::LOGIN_INITIAL)
                } else {
                    Ok(())
                }
            }
            UserState::Locked => Err(ids::LOGIN_LOCKED),
            UserState::Inactive => Err(ids::LOGIN_INACTIVE),
            UserState::Initial => Err(ids::LOGIN_INITIAL),
            UserState::Deleted => Err(ids::NOT_FOUND),
        }
    }
}

/// The lockout expiry, computed step by step rather than as the library does.
fn model_expiry(policy: &LockoutPolicy, now: i64, lockouts: u32) -> Option<i64> {
    let mut duration = policy.lock_duration_ms? as i64;
    if policy.permanent_after > 0 && lockouts >= policy.permanent_after {
        return None;
    }
    for _ in 0..lockouts {
        duration *= i64::from(policy.duration_growth);
    }
    if let Some(max) = policy.max_lock_duration_ms {
        duration = duration.min(max as i64);
    }
    Some(now + duration)
}

struct Real {
    fixture: Fixture,
    callers: Vec<Caller>,
    orgs: Vec<OrgId>,
}

impl Real {
    fn new(repo: Arc<dyn UserRepository>) -> Self {
        let fixture = Fixture::new(repo);
        let f = &fixture;
        let callers = vec![
            f.acme_admin.clone(),
            f.acme_writer.clone(),
            f.acme_reader.clone(),
            f.globex_admin.clone(),
            f.root.clone(),
            f.nobody.clone(),
            Caller::new(user_name(0), f.acme.clone()),
        ];
        f.grants.grant(
            &user_name(0),
            &f.acme,
            [
                crate::Permission::Read,
                crate::Permission::Write,
                crate::Permission::Delete,
            ],
        );
        let orgs = vec![f.acme.clone(), f.globex.clone(), f.root.org_id.clone()];
        Real {
            fixture,
            callers,
            orgs,
        }
    }

    fn caller(&self, caller: usize, target: Option<usize>) -> Caller {
        let c = self.callers[caller].clone();
        match target {
            Some(org) => c.in_org(self.orgs[org].clone()),
            None => c,
        }
    }
}

fn user_name(i: usize) -> crate::UserId {
    user(&format!("model-{i}"))
}

fn failure<T: std::fmt::Debug>(r: &crate::Result<T>) -> Option<Failure> {
    r.as_ref().err().map(|e| (e.kind(), e.id()))
}

macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($msg)+)));
        }
    };
}

async fn run_case(
    repo: Arc<dyn UserRepository>,
    initial_policy: usize,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let real = Real::new(repo);
    let s = &real.fixture.service;
    s.set_default_lockout_policy(&real.fixture.root, policies()[initial_policy].clone())
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = Model {
        users: BTreeMap::new(),
        now: T0,
        default_policy: initial_policy,
        org_policy: [None; ORGS],
    };
    let reason = Reason::new("model").map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Command {
                caller,
                target,
                user,
                cmd: Cmd::Check { factor, succeeded },
            } => {
                let who = real.caller(*caller, *target);
                let got = s
                    .record_check(&who, &user_name(*user), FACTORS[*factor], *succeeded)
                    .await;
                let want = model.check(*caller, *target, *user, *factor, *succeeded);
                let got_answer = got
                    .as_ref()
                    .map(|r| {
                        (
                            r.state,
                            r.failed_attempts,
                            r.locked,
                            r.details.sequence,
                            r.remaining_attempts,
                        )
                    })
                    .map_err(|e| (e.kind(), e.id()));
                check!(
                    got_answer == want,
                    "step {step} {op:?}: model {want:?}, real {got:?}"
                );
            }
            Op::SetPolicy { org, policy } => {
                let chosen = policies()[*policy].clone();
                let root = real.fixture.root.clone();
                match org {
                    Some(org) => {
                        model.org_policy[*org] = Some(*policy);
                        s.set_lockout_policy(&root.in_org(real.orgs[*org].clone()), chosen)
                            .await
                            .map(drop)
                    }
                    None => {
                        model.default_policy = *policy;
                        s.set_default_lockout_policy(&root, chosen).await
                    }
                }
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Command {
                caller,
                target,
                user,
                cmd,
            } => {
                let who = real.caller(*caller, *target);
                let id = user_name(*user);
                let command = match cmd {
                    Cmd::Create(state) => Command::Create { state: *state },
                    Cmd::Lock {
                        reason: with_reason,
                        expires_in,
                    } => {
                        let mut lock = LockRequest::new();
                        if *with_reason {
                            lock = lock.reason(reason.clone());
                        }
                        if let Some(ms) = expires_in {
                            lock = lock.until(at(model.now + ms));
                        }
                        Command::Lock(lock)
                    }
                    Cmd::Unlock => Command::Unlock { reason: None },
                    Cmd::Deactivate => Command::Deactivate { reason: None },
                    Cmd::Reactivate => Command::Reactivate { reason: None },
                    Cmd::Remove => Command::Remove { reason: None },
                    Cmd::CompleteInitialisation => Command::CompleteInitialisation,
                    Cmd::ChangePassword => Command::ChangePassword,
                    Cmd::Check { .. } => {
                        return Err(TestCaseError::fail("checks are matched above"))
                    }
                };
                let got = s.execute(&who, &id, command).await;
                let want = model.command(*caller, *target, *user, cmd);
                match (&want, &got) {
                    (Ok((sequence, created, changed, org)), Ok(details)) => {
                        let expected = Details {
                            id: id.clone(),
                            sequence: *sequence,
                            creation_date: at(*created),
                            change_date: at(*changed),
                            resource_owner: real.orgs[*org].clone(),
                        };
                        check!(
                            details == &expected,
                            "step {step} {op:?}: {details:?} != {expected:?}"
                        );
                    }
                    (Err(w), Err(_)) => {
                        check!(
                            Some(*w) == failure(&got),
                            "step {step} {op:?}: model {w:?}, real {got:?}"
                        );
                    }
                    _ => check!(false, "step {step} {op:?}: model {want:?}, real {got:?}"),
                }
            }
            Op::Get {
                caller,
                target,
                user,
            } => {
                let got = s
                    .get(&real.caller(*caller, *target), &user_name(*user))
                    .await;
                let org = target.unwrap_or(own_org(*caller));
                let want = model.admit(*caller, org, Perm::Read).and_then(|()| {
                    match model.visible(*user, org) {
                        Some(u) if u.state != UserState::Deleted => {
                            Ok((model.state_now(u), u.sequence))
                        }
                        _ => Err((ErrorKind::NotFound, ids::NOT_FOUND)),
                    }
                });
                let got_view = got
                    .as_ref()
                    .map(|u| (u.state, u.sequence))
                    .map_err(|e| (e.kind(), e.id()));
                check!(
                    got_view == want,
                    "step {step} {op:?}: model {want:?}, real {got:?}"
                );
            }
            Op::History {
                caller,
                target,
                user,
            } => {
                let got = s
                    .history(
                        &real.caller(*caller, *target),
                        &user_name(*user),
                        HistoryQuery::default(),
                    )
                    .await;
                let org = target.unwrap_or(own_org(*caller));
                let want = model.admit(*caller, org, Perm::Read).and_then(|()| {
                    model
                        .visible(*user, org)
                        .map(|u| u.sequence)
                        .ok_or((ErrorKind::NotFound, ids::NOT_FOUND))
                });
                let got_len = got
                    .as_ref()
                    .map(|h| h.items.len() as u64)
                    .map_err(|e| (e.kind(), e.id()));
                check!(
                    got_len == want,
                    "step {step} {op:?}: model {want:?}, real {got:?}"
                );
            }
            Op::List {
                caller,
                target,
                state,
            } => {
                let query = ListQuery {
                    state: *state,
                    after: None,
                    limit: 100,
                };
                let got = s.list(&real.caller(*caller, *target), &query).await;
                let org = target.unwrap_or(own_org(*caller));
                let removed = *state == Some(UserState::Deleted);
                let want = if !allowed(*caller, org, Perm::Read)
                    || (removed && !allowed(*caller, usize::MAX, Perm::Read))
                {
                    Err((ErrorKind::PermissionDenied, ids::PERMISSION_DENIED))
                } else if model.blocked(*caller) {
                    Err((ErrorKind::PermissionDenied, ids::CALLER_CANNOT_LOG_IN))
                } else {
                    Ok(model
                        .users
                        .iter()
                        .filter(|(_, u)| u.org == org)
                        .filter(|(_, u)| match state {
                            None => u.state != UserState::Deleted,
                            Some(s) => *s == model.state_now(u),
                        })
                        .map(|(i, _)| user_name(*i))
                        .collect::<Vec<_>>())
                };
                let got_ids = got
                    .as_ref()
                    .map(|p| p.items.iter().map(|u| u.id.clone()).collect::<Vec<_>>())
                    .map_err(|e| (e.kind(), e.id()));
                check!(
                    got_ids == want,
                    "step {step} {op:?}: model {want:?}, real {got:?}"
                );
            }
            Op::Login { user } => {
                let got = s.login_allowed(&user_name(*user)).await;
                let want = model.login(*user);
                check!(
                    got.as_ref().map_err(|e| e.id()) == want.as_ref().map_err(|e| *e),
                    "step {step} {op:?}: model {want:?}, real {got:?}"
                );
            }
            Op::Advance(ms) => {
                model.now += ms;
                real.fixture.clock.advance(*ms);
            }
        }
    }
    for (i, expected) in &model.users {
        let id = user_name(*i);
        let stored = real.fixture.stored(&id).await;
        check!(
            (stored.state, stored.sequence, &stored.org_id)
                == (expected.state, expected.sequence, &real.orgs[expected.org])
                && FACTORS.map(|f| stored.failed_checks.get(f)) == expected.failed
                && stored.lockouts == expected.lockouts,
            "final state of {id}: model {expected:?}, stored {stored:?}"
        );
        let history = real.fixture.all_events(&id).await;
        check!(
            User::replay(&history).as_ref() == Some(&stored),
            "snapshot of {id} is not the replay"
        );
    }
    // The feed holds exactly the model's events, each user's in order.
    let feed = super::feed::whole_feed(real.fixture.repo.as_ref(), 0).await;
    let events: u64 = model.users.values().map(|u| u.sequence).sum();
    check!(
        feed.len() as u64 == events && feed.windows(2).all(|w| w[0].position < w[1].position),
        "the feed has {} events, the model {events}",
        feed.len()
    );
    for i in model.users.keys() {
        let id = user_name(*i);
        let of_user: Vec<_> = feed
            .iter()
            .filter(|e| e.event.user_id == id)
            .map(|e| e.event.clone())
            .collect();
        check!(
            of_user == real.fixture.all_events(&id).await,
            "the feed's events of {id} are not its history"
        );
    }
    Ok(())
}

/// Runs `cases` random command sequences, each on a fresh repository from
/// `factory`, against the reference model. Panics with the shrunk failing
/// sequence on a mismatch.
pub fn model_test(factory: impl Fn() -> Arc<dyn UserRepository>, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let strategy = (
        0..policies().len(),
        proptest::collection::vec(op_strategy(), 1..80),
    );
    let result = runner.run(&strategy, |(policy, ops)| {
        futures::executor::block_on(run_case(factory(), policy, &ops))
    });
    if let Err(e) = result {
        panic!("model-based test failed: {e}");
    }
}

/// Decodes arbitrary bytes into an initial policy and a command sequence
/// (four bytes an operation), for fuzzers.
fn ops_from_bytes(data: &[u8]) -> (usize, Vec<Op>) {
    let policy = usize::from(data.first().copied().unwrap_or(0)) % policies().len();
    let ops = data
        .get(1..)
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|c| {
            let (kind, who, where_, extra) = (c[0], c[1], c[2], c[3]);
            let caller = usize::from(who) % CALLERS;
            let target = match where_ % 8 {
                n @ 1..=3 => Some(usize::from(n) - 1),
                _ => None,
            };
            let user = usize::from(extra) % USERS;
            let flag = extra & 0x80 != 0;
            let cmd = |cmd| Op::Command {
                caller,
                target,
                user,
                cmd,
            };
            match kind % 18 {
                0 => cmd(Cmd::Create(if flag {
                    InitialState::Initial
                } else {
                    InitialState::Active
                })),
                1 => cmd(Cmd::Lock {
                    reason: flag,
                    expires_in: match where_ >> 3 {
                        0 => None,
                        1 => Some(0),
                        n => Some(i64::from(n) * 97),
                    },
                }),
                2 => cmd(Cmd::Unlock),
                3 => cmd(Cmd::Deactivate),
                4 => cmd(Cmd::Reactivate),
                5 => cmd(Cmd::Remove),
                6 => cmd(Cmd::CompleteInitialisation),
                7..=10 => cmd(Cmd::Check {
                    factor: usize::from(extra >> 4) % FACTORS.len(),
                    succeeded: flag,
                }),
                11 => cmd(Cmd::ChangePassword),
                12 => Op::Get {
                    caller,
                    target,
                    user,
                },
                13 => Op::History {
                    caller,
                    target,
                    user,
                },
                14 => Op::List {
                    caller,
                    target,
                    state: [
                        None,
                        Some(UserState::Initial),
                        Some(UserState::Active),
                        Some(UserState::Locked),
                        Some(UserState::Inactive),
                        Some(UserState::Deleted),
                    ][usize::from(extra) % 6],
                },
                15 => Op::Login { user },
                16 => Op::Advance(1 + i64::from(u16::from_le_bytes([who, extra])) % 3_000),
                _ => Op::SetPolicy {
                    org: target,
                    policy: usize::from(extra) % policies().len(),
                },
            }
        })
        .collect();
    (policy, ops)
}

/// For fuzzers: runs the command sequence that `data` decodes to on `repo`
/// (fresh and empty) against the reference model.
///
/// # Panics
/// When the repository and the model disagree, with the step that differs.
pub fn model_check_bytes(repo: Arc<dyn UserRepository>, data: &[u8]) {
    let (policy, ops) = ops_from_bytes(data);
    if let Err(e) = futures::executor::block_on(run_case(repo, policy, &ops)) {
        panic!("model and repository disagree: {e}");
    }
}
