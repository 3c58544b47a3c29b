//! React to locks: follow the change feed and act on every `user.locked`
//! (here: print that the user's sessions are revoked) within milliseconds
//! of its commit, resuming after a restart from a checkpoint it stores.
//!
//! Run with `cargo run --example react_to_locks [PATH] [--follow]`. The
//! users live in an embedded SQLite file, by default `react.sqlite3` in the
//! examples' private folder, the checkpoint beside it (`PATH.checkpoint`).
//! Without `--follow` the example also plays the rest of the host: it
//! creates three users, locks one by hand and one by failed logins, and
//! stops once the follower has reacted to both. With `--follow` it only
//! follows, until interrupted, reacting to locks made by any process on the
//! file (another run, `http_service --db sqlite:PATH`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use userstate::{
    Caller, Factor, FeedQuery, InMemoryAuthorizer, InitialState, LockRequest, LockoutPolicy, OrgId,
    Permission, Reason, Timestamp, UserId, UserService,
};
use userstate_sqlite::SqliteRepository;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let follow_only = args.iter().any(|a| a == "--follow");
    let path = match args.iter().find(|a| !a.starts_with("--")) {
        Some(path) => PathBuf::from(path),
        None => userstate_examples::backend::default_dir()?.join("react.sqlite3"),
    };
    let repository = Arc::new(SqliteRepository::open(&path)?);
    println!("storage: SQLite file {}", path.display());

    let org = OrgId::new("acme")?;
    let admin = Caller::new(UserId::new("admin")?, org.clone());
    // The follower reads the feed as a service account of its own.
    let reactor = Caller::new(UserId::new("session-revoker")?, org.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(
        &admin.user_id,
        &org,
        [Permission::Read, Permission::Write, Permission::PolicyWrite],
    );
    grants.grant(&reactor.user_id, &org, [Permission::Read]);
    let service = UserService::new(repository, Arc::new(grants));
    // Stored in the database, so every process on it locks alike.
    let policy = LockoutPolicy {
        max_password_attempts: 3,
        ..LockoutPolicy::default()
    };
    service.set_lockout_policy(&admin, policy).await?;

    let checkpoint_file = checkpoint_path(&path);
    let checkpoint = read_checkpoint(&checkpoint_file)?;
    println!("following the feed after position {checkpoint}");
    let query = FeedQuery {
        event_types: vec!["user.locked".to_owned()],
        ..FeedQuery::after(checkpoint, 100)
    };
    let mut locks = Box::pin(service.follow(reactor, query));

    let expected = if follow_only {
        usize::MAX
    } else {
        let host = service.clone();
        tokio::spawn(async move {
            if let Err(e) = play_the_host(&host, &admin).await {
                eprintln!("the host's part failed: {e}");
            }
        });
        2
    };
    let mut reacted = 0;
    while reacted < expected {
        let Some(next) = locks.next().await else {
            break;
        };
        let entry = next?;
        let event = &entry.event;
        let delay = Timestamp::now().unix_millis() - event.created_at.unix_millis();
        println!(
            "revoke the sessions of {} ({}, position {}, {delay} ms after the commit)",
            event.user_id,
            event
                .payload
                .reason()
                .map_or_else(|| "locked by failed logins".to_owned(), |r| r.to_string()),
            entry.position,
        );
        // The checkpoint is stored after the reaction: a crash in between
        // reacts once more, never not at all.
        std::fs::write(&checkpoint_file, entry.position.to_string())?;
        reacted += 1;
    }
    Ok(())
}

/// What the rest of a host does: users come, one is locked by an
/// administrator, one by three failed logins.
async fn play_the_host(
    service: &UserService,
    admin: &Caller,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let run = std::process::id();
    let [alice, bob, carol] =
        ["alice", "bob", "carol"].map(|name| UserId::new(format!("{name}-{run}")));
    let (alice, bob, carol) = (alice?, bob?, carol?);
    for user in [&alice, &bob, &carol] {
        service.create(admin, user, InitialState::Active).await?;
    }
    let reason = Reason::new("reported phishing")?;
    service
        .lock(admin, &bob, LockRequest::new().reason(reason))
        .await?;
    println!("locked {bob} by hand");
    for _ in 0..3 {
        service
            .record_check(admin, &carol, Factor::Password, false)
            .await?;
    }
    println!("locked {carol} after three failed logins");
    Ok(())
}

fn checkpoint_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".checkpoint");
    PathBuf::from(name)
}

fn read_checkpoint(file: &Path) -> Result<u64, Box<dyn std::error::Error>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text.trim().parse()?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e.into()),
    }
}
