//! Lock + unlock throughput through `UserService` on a durable SQLite file,
//! with one caller and with 64 concurrent callers on distinct users, beside
//! raw SQLite doing comparable atomic work by hand (one transaction and one
//! fsync per command) on the same tables.
//!
//! Run with `cargo run --release -p userstate-sqlite --example sqlite_throughput`
//! (optionally `-- <users> <operations>`, default 6400 users and 12800
//! lock/unlock commands per measurement).

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use futures::executor::block_on;
use userstate::{
    Caller, InMemoryAuthorizer, InitialState, LockRequest, OrgId, Permission, UserId, UserService,
};
use userstate_sqlite::{SqliteRepository, WriterStats};

const CONCURRENT_CALLERS: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().map_or(Ok(6400), |a| a.parse())?;
    let operations: usize = args.next().map_or(Ok(12_800), |a| a.parse())?;
    let users = users.max(CONCURRENT_CALLERS);
    let dir = tempfile::tempdir()?;

    println!(
        "raw SQLite, durable, same tables, {users} users, check + event + snapshot, \
         one transaction each:"
    );
    let raw = raw_sqlite(&dir.path().join("raw.db"), users, operations.min(6000))?;
    println!("  {:>10}: {raw:>8.0} transactions/s", "1 writer");

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
        for id in ids.iter().cycle().take(operations / 2) {
            service.lock(&admin, id, LockRequest::new()).await?;
            service.unlock(&admin, id, None).await?;
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
                    for id in mine.iter().cycle().take(per_caller / 2) {
                        service.lock(&admin, id, LockRequest::new()).await?;
                        service.unlock(&admin, id, None).await?;
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

fn report(
    label: &str,
    operations: usize,
    started: Instant,
    before: WriterStats,
    after: WriterStats,
) {
    let seconds = started.elapsed().as_secs_f64();
    let transactions = after.batches - before.batches;
    let commands = after.commands - before.commands;
    println!(
        "  {label:>10}: {:>8.0} commands/s ({operations} in {seconds:.2} s, \
         {transactions} transactions, {:.1} commands per transaction)",
        operations as f64 / seconds,
        commands as f64 / transactions.max(1) as f64,
    );
}

/// The same atomic work by hand, on the same tables and indexes: check the
/// user's sequence, append an event, rewrite the snapshot row (its state
/// flips, so the state index changes too), one durable transaction each,
/// cycling over `users` users.
fn raw_sqlite(path: &std::path::Path, users: usize, transactions: usize) -> rusqlite::Result<f64> {
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(
        "CREATE TABLE users (id TEXT NOT NULL PRIMARY KEY, org TEXT NOT NULL, state TEXT NOT NULL,
             sequence INTEGER NOT NULL, snapshot TEXT NOT NULL) STRICT, WITHOUT ROWID;
         CREATE INDEX users_by_org_state ON users (org, state, id);
         CREATE INDEX users_by_org ON users (org, id) WHERE state <> 'deleted';
         CREATE TABLE events (user_id TEXT NOT NULL, sequence INTEGER NOT NULL, org TEXT NOT NULL,
             event_type TEXT NOT NULL, created_at INTEGER NOT NULL, creator TEXT NOT NULL,
             payload TEXT NOT NULL, PRIMARY KEY (user_id, sequence)) STRICT, WITHOUT ROWID;",
    )?;
    // A snapshot of the size the adapter stores.
    let snapshot = format!("{{\"padding\":\"{}\"}}", "x".repeat(200));
    conn.execute_batch("BEGIN")?;
    for i in 0..users {
        conn.execute(
            "INSERT INTO users VALUES (?1, 'acme', 'active', 1, ?2)",
            (format!("user-{i:07}"), &snapshot),
        )?;
    }
    conn.execute_batch("COMMIT")?;
    let started = Instant::now();
    for n in 0..transactions {
        let id = format!("user-{:07}", n % users);
        let state = if (n / users).is_multiple_of(2) {
            "locked"
        } else {
            "active"
        };
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let stored: i64 = conn
            .prepare_cached("SELECT sequence FROM users WHERE id = ?1")?
            .query_row([&id], |r| r.get(0))?;
        conn.prepare_cached(
            "INSERT INTO events VALUES (?1, ?2, 'acme', 'user.locked', 0, 'admin', '{\"locked\":{}}')",
        )?
        .execute((&id, stored + 1))?;
        conn.prepare_cached(
            "UPDATE users SET state = ?2, sequence = ?3, snapshot = ?4 WHERE id = ?1 AND sequence = ?5",
        )?
        .execute((&id, state, stored + 1, &snapshot, stored))?;
        conn.execute_batch("COMMIT")?;
    }
    Ok(transactions as f64 / started.elapsed().as_secs_f64())
}
