//! The same domain code on any backend: only the construction differs.
//!
//! ```sh
//! cargo run --example swap_backend -- memory
//! cargo run --example swap_backend -- sqlite:/tmp/users.sqlite3
//! cargo run --example swap_backend -- sled:/tmp/users.sled
//! cargo run --example swap_backend -- postgres://me@db.example/identity
//! cargo run --example swap_backend -- 'postgres:host=/run/postgresql dbname=identity'
//! ```
//!
//! Without an argument it runs on memory, SQLite and sled, the files in the
//! examples' private folder (see `userstate_examples::backend::default_dir`);
//! PostgreSQL needs a server, so it runs only when named.

use std::process::ExitCode;
use std::sync::Arc;

use userstate::{
    Caller, InMemoryAuthorizer, InitialState, ListQuery, LockRequest, OrgId, Permission, UserId,
    UserRepository, UserService, UserState,
};
use userstate_examples::backend;

/// The domain code: it sees only `Arc<dyn UserRepository>`.
async fn onboard_and_lock(repository: Arc<dyn UserRepository>) -> Result<(), userstate::Error> {
    let org = OrgId::new("acme")?;
    let admin = Caller::new(UserId::new("admin")?, org.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &org, [Permission::Read, Permission::Write]);
    let service = UserService::new(repository, Arc::new(grants));

    let run = std::process::id();
    for n in 0..3 {
        let id = UserId::new(format!("user-{run}-{n}"))?;
        service.create(&admin, &id, InitialState::Active).await?;
        if n != 1 {
            service.lock(&admin, &id, LockRequest::new()).await?;
        }
    }
    let locked = service
        .list(&admin, &ListQuery::in_state(UserState::Locked))
        .await?;
    println!("  locked users in acme: {}", locked.items.len());
    Ok(())
}

fn main() -> ExitCode {
    let specs: Vec<String> = match std::env::args().nth(1) {
        Some(help) if help == "-h" || help == "--help" => {
            println!(
                "usage: swap_backend [SPEC]\n\n  SPEC  {}",
                userstate_backend::SPECS
            );
            return ExitCode::SUCCESS;
        }
        Some(spec) => vec![spec],
        None => {
            let dir = match backend::default_dir() {
                Ok(dir) => dir,
                Err(message) => {
                    eprintln!("{message}");
                    return ExitCode::FAILURE;
                }
            };
            vec![
                "memory".to_owned(),
                format!("sqlite:{}", dir.join("swap.sqlite3").display()),
                format!("sled:{}", dir.join("swap.sled").display()),
            ]
        }
    };
    for spec in specs {
        println!("{}", userstate_backend::redacted(&spec));
        let outcome = userstate_backend::open(&spec)
            .map_err(|e| e.to_string())
            .and_then(|backend| {
                futures::executor::block_on(onboard_and_lock(backend.repository()))
                    .map_err(|e| e.to_string())
            });
        if let Err(message) = outcome {
            eprintln!("  {message}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
