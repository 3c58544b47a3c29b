//! The callers, organisations and clock every conformance test starts from.

use std::sync::Arc;

use crate::storage::Scope;
use crate::{
    Caller, CheckRecord, Details, Event, Factor, HistoryQuery, InMemoryAuthorizer, InitialState,
    LockRequest, LockoutPolicy, ManualClock, OrgId, Permission, Timestamp, User, UserId,
    UserRepository, UserService, UserState, MAX_PAGE_SIZE,
};

/// 2024-06-13T06:44:37.424Z, the time of the seeds' Management API example.
pub const T0: i64 = 1_718_261_077_424;

/// A service on the repository under test with a manual clock and a fixed
/// cast of callers:
///
/// | caller | organisation | grants |
/// |---|---|---|
/// | `acme_admin` | acme | read, write, delete, policy.write in acme |
/// | `acme_writer` | acme | read, write in acme |
/// | `acme_reader` | acme | read in acme |
/// | `globex_admin` | globex | read, write, delete in globex |
/// | `root` | root-org | read, write, delete, policy.write everywhere |
/// | `nobody` | acme | none |
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The service under test.
    pub service: UserService,
    /// The repository under test.
    pub repo: Arc<dyn UserRepository>,
    /// The clock the service reads; starts at [`T0`].
    pub clock: ManualClock,
    /// The organisation `acme`.
    pub acme: OrgId,
    /// The organisation `globex`.
    pub globex: OrgId,
    /// All permissions in acme.
    pub acme_admin: Caller,
    /// Read and write in acme.
    pub acme_writer: Caller,
    /// Read in acme.
    pub acme_reader: Caller,
    /// All permissions in globex.
    pub globex_admin: Caller,
    /// All permissions in every organisation.
    pub root: Caller,
    /// No permissions.
    pub nobody: Caller,
    /// The service's grants, for tests that need more callers.
    pub grants: Arc<InMemoryAuthorizer>,
}

impl Fixture {
    /// The fixture on `repo`, which should be empty.
    pub fn new(repo: Arc<dyn UserRepository>) -> Self {
        let acme = org("acme");
        let globex = org("globex");
        let grants = InMemoryAuthorizer::new();
        let caller = |name: &str, org: &OrgId| Caller::new(user(name), org.clone());
        let acme_admin = caller("acme-admin", &acme);
        let acme_writer = caller("acme-writer", &acme);
        let acme_reader = caller("acme-reader", &acme);
        let globex_admin = caller("globex-admin", &globex);
        let root = caller("root", &org("root-org"));
        let nobody = caller("nobody", &acme);
        use Permission::*;
        grants.grant(
            &acme_admin.user_id,
            &acme,
            [Read, Write, Delete, PolicyWrite],
        );
        grants.grant(&acme_writer.user_id, &acme, [Read, Write]);
        grants.grant(&acme_reader.user_id, &acme, [Read]);
        grants.grant(&globex_admin.user_id, &globex, [Read, Write, Delete]);
        grants.grant_instance(&root.user_id, [Read, Write, Delete, PolicyWrite]);
        let clock = ManualClock::new(at(T0));
        let grants = Arc::new(grants);
        let service =
            UserService::new(repo.clone(), grants.clone()).with_clock(Arc::new(clock.clone()));
        Fixture {
            service,
            repo,
            clock,
            acme,
            globex,
            acme_admin,
            acme_writer,
            acme_reader,
            globex_admin,
            root,
            nobody,
            grants,
        }
    }

    /// Creates `id` in acme in `state` by the acme admin, driving it through
    /// the commands that lead there (`Locked` is reached from `Active`).
    pub async fn user_in_state(&self, id: &str, state: UserState) -> UserId {
        let id = user(id);
        let admin = &self.acme_admin;
        let s = &self.service;
        let initial = if state == UserState::Initial {
            InitialState::Initial
        } else {
            InitialState::Active
        };
        s.create(admin, &id, initial).await.expect("create");
        match state {
            UserState::Initial | UserState::Active => {}
            UserState::Locked => {
                s.lock(admin, &id, LockRequest::new()).await.expect("lock");
            }
            UserState::Inactive => {
                s.deactivate(admin, &id, None).await.expect("deactivate");
            }
            UserState::Deleted => {
                s.remove(admin, &id, None).await.expect("remove");
            }
        }
        id
    }

    /// The clock's time plus `millis`.
    pub fn now_plus(&self, millis: i64) -> Timestamp {
        crate::Clock::now(&self.clock).plus_millis(millis)
    }

    /// The stored snapshot of `id`, which must exist.
    pub async fn stored(&self, id: &UserId) -> User {
        self.repo
            .load(id, &Scope::Instance)
            .await
            .expect("load")
            .expect("user exists")
    }

    /// Checks that the stored snapshot equals the replay of the stored history.
    pub async fn assert_snapshot_is_replay(&self, id: &UserId) {
        let snapshot = self.repo.load(id, &Scope::Instance).await.expect("load");
        let history = self.all_events(id).await;
        assert_eq!(
            snapshot,
            User::replay(&history),
            "snapshot of {id} differs from the replay of its events"
        );
        for (event, expected) in history.iter().zip(1u64..) {
            assert_eq!(event.sequence, expected, "gap in the history of {id}");
        }
    }

    /// Sets acme's lockout policy, as the acme admin, in the repository.
    pub async fn acme_policy(&self, policy: LockoutPolicy) {
        self.service
            .set_lockout_policy(&self.acme_admin, policy)
            .await
            .expect("valid policy");
    }

    /// Sets the instance default lockout policy, as root, in the repository.
    pub async fn default_policy(&self, policy: LockoutPolicy) {
        self.service
            .set_default_lockout_policy(&self.root, policy)
            .await
            .expect("valid policy");
    }

    /// The feed's last position after `after` (`after` when nothing follows).
    pub async fn feed_after(&self, after: u64) -> u64 {
        let feed = super::feed::whole_feed(self.repo.as_ref(), after).await;
        feed.last().map_or(after, |entry| entry.position)
    }

    /// Records a check on `id` as the acme admin.
    pub async fn check(&self, id: &UserId, factor: Factor, succeeded: bool) -> CheckRecord {
        self.service
            .record_check(&self.acme_admin, id, factor, succeeded)
            .await
            .expect("check recorded")
    }

    /// The event types of `id`'s stored history, oldest first.
    pub async fn event_types(&self, id: &UserId) -> Vec<&'static str> {
        self.all_events(id)
            .await
            .iter()
            .map(|e| e.event_type())
            .collect()
    }

    /// Every stored event of `id`, read page by page.
    pub async fn all_events(&self, id: &UserId) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let query = HistoryQuery::after_sequence(events.len() as u64, MAX_PAGE_SIZE);
            let page = self
                .repo
                .history(id, &Scope::Instance, query)
                .await
                .expect("history");
            if page.is_empty() {
                return events;
            }
            events.extend(page);
        }
    }
}

/// A valid user id (test input; panics on an invalid literal).
pub fn user(id: &str) -> UserId {
    UserId::new(id).expect("valid user id")
}

/// A valid organisation id (test input; panics on an invalid literal).
pub fn org(id: &str) -> OrgId {
    OrgId::new(id).expect("valid org id")
}

/// The instant `millis` after the epoch (test input; panics out of range).
pub fn at(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(millis).expect("valid time")
}

/// A lockout policy with these limits and nothing else set (test input).
pub fn policy(max_password: u32, max_otp: u32) -> LockoutPolicy {
    LockoutPolicy {
        max_password_attempts: max_password,
        max_otp_attempts: max_otp,
        ..LockoutPolicy::default()
    }
}

/// Details as a command on a user created at `created` should return them.
pub fn details(id: &UserId, org: &OrgId, sequence: u64, created: i64, changed: i64) -> Details {
    Details {
        id: id.clone(),
        sequence,
        creation_date: at(created),
        change_date: at(changed),
        resource_owner: org.clone(),
    }
}
