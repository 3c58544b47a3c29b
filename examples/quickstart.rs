//! Quickstart: create a user, lock it with a reason, see login refused, see
//! the error body of locking again, unlock, and print the history.
//!
//! Run with `cargo run --example quickstart [PATH]`: the users live in an
//! embedded SQLite file, by default `quickstart.sqlite3` in the examples'
//! private folder (`~/.local/share/userstate-examples/` on Linux, see
//! `userstate_examples::backend::default_dir`), so a second run finds the
//! first run's users.

use std::sync::Arc;

use userstate::{
    Caller, HistoryQuery, InMemoryAuthorizer, InitialState, ListQuery, LockRequest, OrgId,
    Permission, Reason, UserId, UserService,
};
use userstate_sqlite::SqliteRepository;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    futures::executor::block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = match std::env::args().nth(1) {
        Some(path) => std::path::PathBuf::from(path),
        None => userstate_examples::backend::default_dir()?.join("quickstart.sqlite3"),
    };
    let repository = Arc::new(SqliteRepository::open(&path)?);
    println!("storage: SQLite file {}", path.display());

    // One organisation, an administrator who may read and write its users.
    let org = OrgId::new("69629023906488334")?;
    let admin = Caller::new(UserId::new("admin")?, org.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &org, [Permission::Read, Permission::Write]);
    let service = UserService::new(repository, Arc::new(grants));

    let user = UserId::new(format!("user-{}", std::process::id()))?;
    service.create(&admin, &user, InitialState::Active).await?;
    println!("created {user}");

    let reason = Reason::new("suspicious sign-in from a new country")?;
    let locked = service
        .lock(&admin, &user, LockRequest::new().reason(reason))
        .await?;
    println!(
        "lock (management v1):  {}",
        serde_json::to_string(&locked.to_v1())?
    );

    if let Err(refused) = service.login_allowed(&user).await {
        println!("login refused:         {refused}");
    }

    if let Err(again) = service.lock(&admin, &user, LockRequest::new()).await {
        println!(
            "lock again -> HTTP {}:  {}",
            again.kind().http_status(),
            serde_json::to_string(&again.body())?
        );
    }

    let unlocked = service.unlock(&admin, &user, None).await?;
    println!(
        "unlock (resources v3alpha): {}",
        serde_json::to_string(&unlocked.to_v3alpha())?
    );
    service.login_allowed(&user).await?;
    println!("login allowed again");

    let stored = service.count(&admin, &ListQuery::all()).await?;
    println!("users stored in the file so far: {stored} (run again to add one more)");

    println!("history:");
    for event in service
        .history(&admin, &user, HistoryQuery::default())
        .await?
        .items
    {
        println!(
            "  #{} {:<16} at {} by {}",
            event.sequence,
            event.event_type(),
            event.created_at,
            event.creator
        );
    }
    Ok(())
}
