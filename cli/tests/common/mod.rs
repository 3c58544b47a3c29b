//! Driving the `userstate` binary as an operator would, and the databases
//! it is driven on.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use assert_cmd::Command;
use futures::executor::block_on;
use userstate::{
    Caller, Factor, InMemoryAuthorizer, InitialState, LockRequest, LockoutPolicy, OrgId,
    Permission, Reason, Timestamp, UserId, UserService,
};

/// The binary, with no database or operator from the environment.
pub fn userstate() -> Command {
    let mut command = Command::cargo_bin("userstate").expect("the userstate binary");
    command
        .env_remove("USERSTATE_DB")
        .env_remove("USERSTATE_OPERATOR")
        .env("USER", "tester");
    command
}

/// The binary as a plain process, for a test that kills it.
pub fn process() -> std::process::Command {
    let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("userstate"));
    command
        .env_remove("USERSTATE_DB")
        .env_remove("USERSTATE_OPERATOR")
        .env("USER", "tester");
    command
}

/// What a run printed and how it ended.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `userstate ARGS`.
pub fn run(args: &[&str]) -> Ran {
    let output = userstate().args(args).output().expect("userstate runs");
    Ran {
        code: output.status.code().expect("an exit code, not a signal"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 output"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 errors"),
    }
}

/// Runs `userstate ARGS` and insists it succeeds.
#[track_caller]
pub fn ok(args: &[&str]) -> String {
    let ran = run(args);
    assert_eq!(
        ran.code, 0,
        "userstate {args:?}: {}{}",
        ran.stdout, ran.stderr
    );
    ran.stdout
}

/// The export of `spec`, positions aside: what a copy must keep.
#[track_caller]
pub fn export_without_positions(spec: &str) -> Vec<String> {
    ok(&["--db", spec, "export"])
        .lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(fields) = record.as_object_mut() {
                fields.remove("position");
            }
            record.to_string()
        })
        .collect()
}

/// A temporary folder with a path for each database in it.
pub struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    pub fn new() -> Self {
        Place {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn sqlite(&self, name: &str) -> String {
        format!("sqlite:{}", self.path(name).display())
    }

    pub fn sled(&self, name: &str) -> String {
        format!("sled:{}", self.path(name).display())
    }
}

pub fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

pub fn org(id: &str) -> OrgId {
    OrgId::new(id).unwrap()
}

/// The service on `spec` with an instance-wide administrator.
pub fn service(spec: &str) -> (UserService, Caller) {
    let backend = userstate_backend::open(spec).unwrap();
    let grants = Arc::new(InMemoryAuthorizer::new());
    let root = Caller::new(user("root"), org("acme"));
    grants.grant_instance(
        &root.user_id,
        [
            Permission::Read,
            Permission::Write,
            Permission::Delete,
            Permission::PolicyWrite,
        ],
    );
    let service = UserService::new(backend.repository(), grants).with_caller_check(false);
    (service, root)
}

/// A database that holds a bit of everything, interleaved: users in every
/// state in two organisations, a removed user with a history, an
/// administrator locked out by the policy, a temporary lock, reasons with
/// quotes and non-ASCII text, and policies: the instance default, acme's
/// and that of an organisation without users. Returns how many events it
/// wrote.
pub fn seed(spec: &str) -> u64 {
    let (s, root) = service(spec);
    let acme = root.clone().in_org(org("acme"));
    let globex = root.clone().in_org(org("globex"));
    block_on(async {
        let policy = LockoutPolicy {
            max_password_attempts: 3,
            ..LockoutPolicy::default()
        };
        s.set_default_lockout_policy(&root, LockoutPolicy::default())
            .await
            .unwrap();
        s.set_lockout_policy(&acme, policy.clone()).await.unwrap();
        s.set_lockout_policy(&root.clone().in_org(org("no-users-yet")), policy)
            .await
            .unwrap();
        for id in ["admin", "ann", "bob", "cleo", "gone"] {
            s.create(&acme, &user(id), InitialState::Active)
                .await
                .unwrap();
        }
        s.create(&globex, &user("gus"), InitialState::Initial)
            .await
            .unwrap();
        s.create(&acme, &user("ivy"), InitialState::Initial)
            .await
            .unwrap();
        let why = |text: &str| Reason::new(text).unwrap();
        s.lock(
            &acme,
            &user("ann"),
            LockRequest::new().reason(why("left \"for now\" — ticket ü-7")),
        )
        .await
        .unwrap();
        let until = Timestamp::now().plus_millis(3_600_000);
        s.lock(&acme, &user("bob"), LockRequest::new().until(until))
            .await
            .unwrap();
        s.deactivate(&acme, &user("cleo"), Some(why("on leave")))
            .await
            .unwrap();
        s.lock(&acme, &user("gone"), LockRequest::new())
            .await
            .unwrap();
        s.remove(&acme, &user("gone"), Some(why("left the company")))
            .await
            .unwrap();
        for _ in 0..3 {
            s.record_check(&acme, &user("admin"), Factor::Password, false)
                .await
                .unwrap();
        }
        s.complete_initialisation(&globex, &user("gus"))
            .await
            .unwrap();
        s.record_check(&globex, &user("gus"), Factor::Totp, false)
            .await
            .unwrap();
    });
    let events = block_on(s.repository().feed(0, 1000)).unwrap();
    events.len() as u64
}

/// Whether `path` exists.
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}
