//! The tenant-isolation matrix: every kind of caller × every command and read
//! × users of two organisations, each outcome exactly as the README's order
//! of checks says, and never a difference between "in another organisation"
//! and "does not exist".

use std::sync::Arc;

use super::fixture::{org, user};
use crate::storage::Scope;
use crate::{
    ids, Caller, Error, ErrorKind, Factor, HistoryQuery, InMemoryAuthorizer, InitialState,
    ListQuery, LockRequest, OrgId, Permission, UserId, UserRepository, UserService, UserState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Create,
    Lock,
    Unlock,
    Deactivate,
    Reactivate,
    Remove,
    CompleteInitialisation,
    RecordCheck,
    ChangePassword,
    Get,
    History,
    List,
}

const PROBES: [Probe; 12] = [
    Probe::Create,
    Probe::Lock,
    Probe::Unlock,
    Probe::Deactivate,
    Probe::Reactivate,
    Probe::Remove,
    Probe::CompleteInitialisation,
    Probe::RecordCheck,
    Probe::ChangePassword,
    Probe::Get,
    Probe::History,
    Probe::List,
];

impl Probe {
    fn permission(self) -> Permission {
        match self {
            Probe::Remove => Permission::Delete,
            Probe::Get | Probe::History | Probe::List => Permission::Read,
            _ => Permission::Write,
        }
    }

    /// The outcome on an active user of the targeted organisation, when permitted.
    fn on_active_user(self) -> Result<(), &'static str> {
        match self {
            Probe::Unlock => Err(ids::NOT_LOCKED),
            Probe::Reactivate => Err(ids::NOT_INACTIVE),
            Probe::CompleteInitialisation => Err(ids::NOT_INITIAL),
            _ => Ok(()),
        }
    }

    /// Runs the probe; `Ok` carries the ids of the users a list returned.
    async fn run(
        self,
        service: &UserService,
        caller: &Caller,
        id: &UserId,
    ) -> Result<Vec<UserId>, Error> {
        let s = service;
        match self {
            Probe::Create => s
                .create(caller, id, InitialState::Active)
                .await
                .map(|_| vec![]),
            Probe::Lock => s.lock(caller, id, LockRequest::new()).await.map(|_| vec![]),
            Probe::Unlock => s.unlock(caller, id, None).await.map(|_| vec![]),
            Probe::Deactivate => s.deactivate(caller, id, None).await.map(|_| vec![]),
            Probe::Reactivate => s.reactivate(caller, id, None).await.map(|_| vec![]),
            Probe::Remove => s.remove(caller, id, None).await.map(|_| vec![]),
            Probe::CompleteInitialisation => {
                s.complete_initialisation(caller, id).await.map(|_| vec![])
            }
            Probe::RecordCheck => s
                .record_check(caller, id, Factor::Password, false)
                .await
                .map(|_| vec![]),
            Probe::ChangePassword => s.change_password(caller, id).await.map(|_| vec![]),
            Probe::Get => s.get(caller, id).await.map(|_| vec![]),
            Probe::History => s
                .history(caller, id, HistoryQuery::default())
                .await
                .map(|_| vec![]),
            Probe::List => s
                .list(
                    caller,
                    &ListQuery {
                        limit: crate::MAX_PAGE_SIZE,
                        ..ListQuery::all()
                    },
                )
                .await
                .map(|page| page.items.into_iter().map(|u| u.id).collect()),
        }
    }
}

/// A kind of caller in the matrix.
#[derive(Debug, Clone)]
struct Who {
    caller: Caller,
    /// Permissions in the caller's own organisation.
    own: Vec<Permission>,
    /// Permissions everywhere.
    instance: bool,
}

impl Who {
    fn may(&self, permission: Permission, target: &OrgId) -> bool {
        self.instance || (target == &self.caller.org_id && self.own.contains(&permission))
    }
}

fn subsets() -> Vec<Vec<Permission>> {
    (0u8..8)
        .map(|bits| {
            [Permission::Read, Permission::Write, Permission::Delete]
                .into_iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .map(|(_, p)| p)
                .collect()
        })
        .collect()
}

/// Every caller (each permission combination in acme and in globex, an
/// instance-wide root, the target user itself with and without a grant) ×
/// both target organisations × every command and read × users of both
/// organisations. Each outcome follows the order of checks exactly; a user of
/// another organisation gives the very error a missing id gives; lists never
/// show another organisation's users; nothing is written on any error.
pub async fn tenant_isolation_matrix(repo: Arc<dyn UserRepository>) {
    let grants = Arc::new(InMemoryAuthorizer::new());
    let service = UserService::new(repo.clone(), grants.clone());
    let orgs = [org("acme"), org("globex")];
    let setup = Caller::new(user("setup"), org("setup-org"));
    grants.grant_instance(&setup.user_id, [Permission::Write]);

    let mut whos = Vec::new();
    for own_org in &orgs {
        for (n, perms) in subsets().into_iter().enumerate() {
            let caller = Caller::new(user(&format!("{own_org}-caller-{n}")), own_org.clone());
            grants.grant(&caller.user_id, own_org, perms.clone());
            whos.push(Who {
                caller,
                own: perms,
                instance: false,
            });
        }
    }
    let root = Caller::new(user("root"), org("root-org"));
    grants.grant_instance(
        &root.user_id,
        [Permission::Read, Permission::Write, Permission::Delete],
    );
    whos.push(Who {
        caller: root,
        own: vec![],
        instance: true,
    });

    let mut cell = 0usize;
    for user_org in &orgs {
        for probe in PROBES {
            for who in &whos {
                for target in [None, Some(&orgs[0]), Some(&orgs[1])] {
                    cell += 1;
                    let id = user(&format!("m-{cell}"));
                    let caller = match target {
                        Some(t) => who.caller.clone().in_org(t.clone()),
                        None => who.caller.clone(),
                    };
                    check_cell(&service, &setup, &caller, who, user_org, probe, &id).await;
                }
            }
            // The user acting on itself: no grant, then a write grant in its org.
            cell += 1;
            let id = user(&format!("m-{cell}"));
            let me = Caller::new(id.clone(), user_org.clone());
            let who = Who {
                caller: me.clone(),
                own: vec![],
                instance: false,
            };
            check_cell(&service, &setup, &me, &who, user_org, probe, &id).await;
            cell += 1;
            let id = user(&format!("m-{cell}"));
            let me = Caller::new(id.clone(), user_org.clone());
            let all = vec![Permission::Read, Permission::Write, Permission::Delete];
            grants.grant(&id, user_org, all.clone());
            let who = Who {
                caller: me.clone(),
                own: all,
                instance: false,
            };
            check_cell(&service, &setup, &me, &who, user_org, probe, &id).await;
        }
    }
}

async fn check_cell(
    service: &UserService,
    setup: &Caller,
    caller: &Caller,
    who: &Who,
    user_org: &OrgId,
    probe: Probe,
    id: &UserId,
) {
    let target = caller.target().clone();
    let existing = if probe == Probe::Create {
        None
    } else {
        service
            .create(
                &setup.clone().in_org(user_org.clone()),
                id,
                InitialState::Active,
            )
            .await
            .expect("setup create");
        Some(id)
    };
    let cell = format!("{probe:?} by {:?} on a user of {user_org}", caller);
    let before = service
        .repository()
        .load(id, &Scope::Instance)
        .await
        .expect("load");
    let result = probe.run(service, caller, id).await;

    if !who.may(probe.permission(), &target) {
        let err = result.expect_err(&cell);
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{cell}");
        assert_eq!(
            service
                .repository()
                .load(id, &Scope::Instance)
                .await
                .expect("load"),
            before,
            "{cell}"
        );
        return;
    }
    match probe {
        Probe::Create => {
            result.expect(&cell);
            let stored = service
                .repository()
                .load(id, &Scope::Instance)
                .await
                .expect("load")
                .expect(&cell);
            assert_eq!(stored.org_id, target, "{cell}: created in the target org");
        }
        Probe::List => {
            let listed = result.expect(&cell);
            let visible = listed.contains(id);
            assert_eq!(visible, &target == user_org, "{cell}: {listed:?}");
            for other in &listed {
                let u = service
                    .repository()
                    .load(other, &Scope::Instance)
                    .await
                    .expect("load")
                    .expect("listed user");
                assert_eq!(
                    u.org_id, target,
                    "{cell}: listed a user of another organisation"
                );
                assert_ne!(u.state, UserState::Deleted);
            }
        }
        _ if existing.is_some() && &target != user_org => {
            let err = result.expect_err(&cell);
            assert_eq!(
                (err.kind(), err.id()),
                (ErrorKind::NotFound, ids::NOT_FOUND),
                "{cell}"
            );
            let missing = user(&format!("{id}-never-created"));
            let absent = probe.run(service, caller, &missing).await.expect_err(&cell);
            assert_eq!(
                err, absent,
                "{cell}: foreign and missing users must look alike"
            );
            assert_eq!(
                service
                    .repository()
                    .load(id, &Scope::Instance)
                    .await
                    .expect("load"),
                before,
                "{cell}"
            );
        }
        _ => match (probe.on_active_user(), result) {
            (Ok(()), Ok(_)) => {}
            (Err(expected), Err(err)) => {
                assert_eq!(err.id(), expected, "{cell}");
                assert_eq!(
                    service
                        .repository()
                        .load(id, &Scope::Instance)
                        .await
                        .expect("load"),
                    before,
                    "{cell}"
                );
            }
            (want, got) => panic!("{cell}: expected {want:?}, got {got:?}"),
        },
    }
}
