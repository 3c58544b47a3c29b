//! Lock + unlock throughput through `UserService` on a durable SQLite file,
//! with one caller and with 64 concurrent callers on distinct users, beside
//! raw SQLite doing comparable atomic work by hand (one transaction and one
//! fsync per command).
//!
//! Run with `cargo run --release -p userstate-sqlite --example throughput`
//! (optionally `-- <users> <operations>`, default 6400 users and 12800
//! lock/unlock commands per measurement).

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use futures::executor::block_on;
use userstate::{
    Caller, InMemoryAuthorizer, InitialState, LockRequest, OrgId, Permission, UserId, UserService,
};
use userstate_sqlite::{SqliteRepository, Stats};

const CONCURRENT_CALLERS: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().map_or(Ok(6400), |a| a.parse())?;
    let operations: usize = args.next().map_or(Ok(12_800), |a| a.parse())?;
    let users = users.max(CONCURRENT_CALLERS);
    let dir = tempfile::tempdir()?;

    println!("raw SQLite, durable, 1 writer (UPDATE + INSERT, one transaction each):");
    let raw = raw_sqlite(&dir.path().join("raw.db"), operations.min(4000))?;
    println!("  {raw:>8.0} transactions/s");

    let repository = SqliteRepository::open(dir.path().join("users.db"))?;
    let (service, admin) = service(&repository)?;
    let ids: Vec<UserId> = (0..users)
        .map(|i| UserId::new(format!("user-{i:07}")))
        .collect::<Result<_, _>>()?;
    create_all(&service, &admin, &ids);
    println!("userstate-sqlite, durable, {users} users, lock + unlock through UserService:");

    let before = repository.stats();
    let started = Instant::now();
    block_on(async {
        for (id, n) in ids.iter().cycle().zip(0..operations / 2) {
            let _ = n;
            service.lock(&admin, id, LockRequest::new()).await?;
            service.unlock(&admin, id).await?;
        }
        Ok::<_, userstate::Error>(())
    })?;
    report("1 caller", operations, started, before, repository.stats());

    let before = repository.stats();
    let started = Instant::now();
    let per_caller = operations / CONCURRENT_CALLERS;
    let threads: Vec<_> = (0..CONCURRENT_CALLERS)
        .map(|caller| {
            // Distinct users per caller: every command succeeds first time.
            let mine: Vec<UserId> = ids
                .iter()
                .skip(caller)
                .step_by(CONCURRENT_CALLERS)
                .cloned()
                .collect();
            let (service, admin) = (service.clone(), admin.clone());
            thread::spawn(move || {
                block_on(async {
                    for (id, _) in mine.iter().cycle().zip(0..per_caller / 2) {
                        service.lock(&admin, id, LockRequest::new()).await?;
                        service.unlock(&admin, id).await?;
                    }
                    Ok::<_, userstate::Error>(())
                })
            })
        })
        .collect();
    for thread in threads {
        thread.join().map_err(|_| "a caller panicked")??;
    }
    let done = per_caller / 2 * 2 * CONCURRENT_CALLERS;
    report(
        &format!("{CONCURRENT_CALLERS} callers"),
        done,
        started,
        before,
        repository.stats(),
    );
    Ok(())
}

fn service(repository: &SqliteRepository) -> Result<(UserService, Caller), userstate::Error> {
    let org = OrgId::new("acme")?;
    let admin = Caller::new(UserId::new("admin")?, org.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &org, [Permission::Read, Permission::Write]);
    let service = UserService::new(Arc::new(repository.clone()), Arc::new(grants));
    Ok((service, admin))
}

/// Creates the users from many threads, so set-up is quick too.
fn create_all(service: &UserService, admin: &Caller, ids: &[UserId]) {
    thread::scope(|scope| {
        for chunk in ids.chunks(ids.len().div_ceil(CONCURRENT_CALLERS)) {
            scope.spawn(move || {
                for id in chunk {
                    block_on(service.create(admin, id, InitialState::Active)).expect("create");
                }
            });
        }
    });
}

fn report(label: &str, operations: usize, started: Instant, before: Stats, after: Stats) {
    let seconds = started.elapsed().as_secs_f64();
    let transactions = after.transactions - before.transactions;
    let commands = after.commands - before.commands;
    println!(
        "  {label:>10}: {:>8.0} commands/s ({operations} in {seconds:.2} s, \
         {transactions} transactions, {:.1} commands per transaction)",
        operations as f64 / seconds,
        commands as f64 / transactions.max(1) as f64,
    );
}

/// The same atomic work by hand: read the sequence, append an event, update
/// the snapshot row, one durable transaction each.
fn raw_sqlite(path: &std::path::Path, transactions: usize) -> rusqlite::Result<f64> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE users (id TEXT PRIMARY KEY, sequence INTEGER NOT NULL, snapshot TEXT NOT NULL) WITHOUT ROWID;
         CREATE TABLE events (user_id TEXT, sequence INTEGER, payload TEXT, PRIMARY KEY (user_id, sequence)) WITHOUT ROWID;
         INSERT INTO users VALUES ('raw', 0, '{}');",
    )?;
    let started = Instant::now();
    for sequence in 1..=transactions as i64 {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let stored: i64 =
            conn.query_row("SELECT sequence FROM users WHERE id = 'raw'", [], |r| {
                r.get(0)
            })?;
        conn.prepare_cached("INSERT INTO events VALUES ('raw', ?1, '{\"locked\":{}}')")?
            .execute([stored + 1])?;
        conn.prepare_cached("UPDATE users SET sequence = ?1, snapshot = '{}' WHERE id = 'raw'")?
            .execute([sequence])?;
        conn.execute_batch("COMMIT")?;
    }
    Ok(transactions as f64 / started.elapsed().as_secs_f64())
}
