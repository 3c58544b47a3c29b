//! The model-based property test: random command sequences from several
//! callers in several organisations, run against a plain reference model and
//! the real service; every answer and the final states must agree.
//!
//! The model is written from SPEC §2 and §5 directly and shares no decision
//! code with the library.

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::fixture::{at, user, Fixture, T0};
use crate::{
    ids, Caller, Command, Details, ErrorKind, HistoryQuery, InitialState, ListQuery, LockReason,
    LockRequest, OrgId, User, UserRepository, UserState,
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
/// acme-admin, acme-writer, acme-reader, globex-admin, root, nobody.
const CALLERS: usize = 6;
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
        ]).prop_map(|(caller, target, state)| Op::List { caller, target, state }),
        2 => (0..USERS).prop_map(|user| Op::Login { user }),
        2 => (1i64..3_000).prop_map(Op::Advance),
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
}

#[derive(Debug)]
struct Model {
    users: BTreeMap<usize, ModelUser>,
    now: i64,
}

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
        _ => false,
    }
}

impl Model {
    fn visible(&self, user: usize, org: usize) -> Option<&ModelUser> {
        self.users.get(&user).filter(|u| u.org == org)
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
        if !allowed(caller, org, perm) {
            return Err((ErrorKind::PermissionDenied, ids::PERMISSION_DENIED));
        }
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
                },
            );
            return Ok((1, now, now, org));
        }
        let current = match self.visible(user, org) {
            Some(u) if u.state != Deleted => u.state,
            _ => return Err((ErrorKind::NotFound, ids::NOT_FOUND)),
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
            (Cmd::Deactivate, Active | Locked) => (Inactive, None),
            (Cmd::Deactivate, Initial) => return fail(ids::INITIAL_CANNOT_DEACTIVATE),
            (Cmd::Deactivate, _) => return fail(ids::ALREADY_INACTIVE),
            (Cmd::Reactivate, Inactive) => (Active, None),
            (Cmd::Reactivate, _) => return fail(ids::NOT_INACTIVE),
            (Cmd::Remove, _) => (Deleted, None),
            (Cmd::CompleteInitialisation, Initial) => (Active, None),
            (Cmd::CompleteInitialisation, _) => return fail(ids::NOT_INITIAL),
            (Cmd::Create(_), _) => return Err((ErrorKind::AlreadyExists, ids::ALREADY_EXISTS)),
        };
        let Some(u) = self.users.get_mut(&user) else {
            return Err((ErrorKind::NotFound, ids::NOT_FOUND));
        };
        if next == Locked {
            u.before_lock = current;
        }
        u.state = next;
        u.expires_at = expires_at;
        u.sequence += 1;
        u.changed = u.changed.max(now);
        Ok((u.sequence, u.created, u.changed, u.org))
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
        ];
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

async fn run_case(repo: Arc<dyn UserRepository>, ops: &[Op]) -> Result<(), TestCaseError> {
    let real = Real::new(repo);
    let s = &real.fixture.service;
    let mut model = Model {
        users: BTreeMap::new(),
        now: T0,
    };
    let reason = LockReason::new("model").map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (step, op) in ops.iter().enumerate() {
        match op {
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
                    Cmd::Unlock => Command::Unlock,
                    Cmd::Deactivate => Command::Deactivate,
                    Cmd::Reactivate => Command::Reactivate,
                    Cmd::Remove => Command::Remove,
                    Cmd::CompleteInitialisation => Command::CompleteInitialisation,
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
                let want = if !allowed(*caller, org, Perm::Read) {
                    Err((ErrorKind::PermissionDenied, ids::PERMISSION_DENIED))
                } else {
                    match model.visible(*user, org) {
                        Some(u) if u.state != UserState::Deleted => Ok((u.state, u.sequence)),
                        _ => Err((ErrorKind::NotFound, ids::NOT_FOUND)),
                    }
                };
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
                let want = if !allowed(*caller, org, Perm::Read) {
                    Err((ErrorKind::PermissionDenied, ids::PERMISSION_DENIED))
                } else {
                    model
                        .visible(*user, org)
                        .map(|u| u.sequence)
                        .ok_or((ErrorKind::NotFound, ids::NOT_FOUND))
                };
                let got_len = got
                    .as_ref()
                    .map(|h| h.len() as u64)
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
                let want = if !allowed(*caller, org, Perm::Read) {
                    Err((ErrorKind::PermissionDenied, ids::PERMISSION_DENIED))
                } else {
                    Ok(model
                        .users
                        .iter()
                        .filter(|(_, u)| u.org == org && u.state != UserState::Deleted)
                        .filter(|(_, u)| state.is_none_or(|s| s == u.state))
                        .map(|(i, _)| user_name(*i))
                        .collect::<Vec<_>>())
                };
                let got_ids = got
                    .as_ref()
                    .map(|p| p.users.iter().map(|u| u.id.clone()).collect::<Vec<_>>())
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
                == (expected.state, expected.sequence, &real.orgs[expected.org]),
            "final state of {id}: model {expected:?}, stored {stored:?}"
        );
        let history = real.fixture.all_events(&id).await;
        check!(
            User::replay(&history).as_ref() == Some(&stored),
            "snapshot of {id} is not the replay"
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
    let strategy = proptest::collection::vec(op_strategy(), 1..80);
    let result = runner.run(&strategy, |ops| {
        futures::executor::block_on(run_case(factory(), &ops))
    });
    if let Err(e) = result {
        panic!("model-based test failed: {e}");
    }
}
