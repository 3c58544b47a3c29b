//! The `compare` program's lock/unlock workload on a peer: cqrs-es 0.5 with
//! its SQLite event store, sqlite-es 0.5.
//!
//! The same users (`user-00000000` ..., every tenth locked) are preloaded
//! into sqlite-es's own tables; then one caller locks an active user or
//! unlocks a locked one, visiting users in the same order as `compare`,
//! through `CqrsFramework::execute` on an aggregate store (the snapshot of
//! the aggregate is loaded, the command handled with a permission check and
//! a state check, and the event and new snapshot written in one
//! transaction), the closest cqrs-es setup to userstate's snapshot + events.
//! SQLite runs in WAL mode with `synchronous = FULL` (durable) or `NORMAL`
//! (relaxed), as `userstate-sqlite` does.
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml -- [--users N] [--seconds S] [--rounds N] [--dir PATH]
//! ```
//!
//! Measures one caller and 64 concurrent callers on distinct users, and
//! prints `ops cqrs-es <mode> <users> <callers> peer <ops/s>` lines like
//! `compare`'s.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, CqrsFramework, DomainEvent};
use serde::{Deserialize, Serialize};
use sqlite_es::SqliteEventRepository;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

type Failure = Box<dyn std::error::Error + Send + Sync>;

const ORG: &str = "acme";
const ADMIN: &str = "admin";
const LOCKED_EVERY: usize = 10;
/// The concurrent callers of the second measurement, on distinct users.
const CONCURRENT_CALLERS: usize = 64;

/// sqlite-es's tables, from its migration `20221114171845_init.sql`.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events
(
  aggregate_type text                          NOT NULL,
  aggregate_id   text                          NOT NULL,
  sequence       integer CHECK (sequence >= 0) NOT NULL,
  event_type     text                          NOT NULL,
  event_version  text                          NOT NULL,
  payload        text                          NOT NULL,
  metadata       text                          NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, sequence)
) STRICT;
CREATE TABLE IF NOT EXISTS snapshots
(
  aggregate_type   text                                  NOT NULL,
  aggregate_id     text                                  NOT NULL,
  last_sequence    integer CHECK (last_sequence >= 0)    NOT NULL,
  current_snapshot integer CHECK (current_snapshot >= 0) NOT NULL,
  payload          text                                  NOT NULL,
  PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
) STRICT;
";

/// A user's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum State {
    #[default]
    Active,
    Locked,
}

/// The aggregate: what userstate's snapshot holds for this workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserAggregate {
    id: String,
    org_id: String,
    state: State,
    previous_state: Option<State>,
    lock_reason: Option<String>,
    locked_at: Option<u64>,
    created_at: u64,
    changed_at: u64,
}

/// The commands, with the acting caller.
#[derive(Debug, Clone)]
enum UserCommand {
    Lock { caller: String, org: String },
    Unlock { caller: String, org: String },
}

/// The events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum UserEvent {
    Added {
        id: String,
        org_id: String,
        at: u64,
    },
    Locked {
        reason: Option<String>,
        expires_at: Option<u64>,
        at: u64,
        creator: String,
    },
    Unlocked {
        at: u64,
        creator: String,
    },
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            UserEvent::Added { .. } => "user.added",
            UserEvent::Locked { .. } => "user.locked",
            UserEvent::Unlocked { .. } => "user.unlocked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// A refused command.
#[derive(Debug)]
struct UserError(&'static str);

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for UserError {}

/// Who may write where: caller -> organisations with `user.write`.
#[derive(Debug, Default)]
struct Grants(HashMap<String, HashSet<String>>);

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Aggregate for UserAggregate {
    const TYPE: &'static str = "user";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = Grants;

    async fn handle(
        &mut self,
        command: Self::Command,
        grants: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let (caller, org) = match &command {
            UserCommand::Lock { caller, org } | UserCommand::Unlock { caller, org } => {
                (caller, org)
            }
        };
        if !grants.0.get(caller).is_some_and(|orgs| orgs.contains(org)) {
            return Err(UserError("permission denied"));
        }
        if self.id.is_empty() || &self.org_id != org {
            return Err(UserError("user not found"));
        }
        let at = now_millis().max(self.changed_at);
        let event = match (command, self.state) {
            (UserCommand::Lock { caller, .. }, State::Active) => UserEvent::Locked {
                reason: None,
                expires_at: None,
                at,
                creator: caller,
            },
            (UserCommand::Unlock { caller, .. }, State::Locked) => UserEvent::Unlocked {
                at,
                creator: caller,
            },
            (UserCommand::Lock { .. }, _) => return Err(UserError("user is already locked")),
            (UserCommand::Unlock { .. }, _) => return Err(UserError("user is not locked")),
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        // Idempotent: cqrs-es's aggregate store applies the events of a
        // command to the snapshot a second time.
        match event {
            UserEvent::Added { id, org_id, at } => {
                self.id = id;
                self.org_id = org_id;
                self.created_at = at;
                self.changed_at = at;
            }
            UserEvent::Locked { reason, at, .. } => {
                if self.state != State::Locked {
                    self.previous_state = Some(self.state);
                }
                self.state = State::Locked;
                self.lock_reason = reason;
                self.locked_at = Some(at);
                self.changed_at = at;
            }
            UserEvent::Unlocked { at, .. } => {
                self.state = self.previous_state.take().unwrap_or(State::Active);
                self.lock_reason = None;
                self.locked_at = None;
                self.changed_at = at;
            }
        }
    }
}

type Framework =
    CqrsFramework<UserAggregate, PersistedEventStore<SqliteEventRepository, UserAggregate>>;

fn user_id(i: usize) -> String {
    format!("user-{i:08}")
}

/// The same visiting order as `compare` (see its `fixture::visit`).
fn visit(k: u64, n: usize) -> usize {
    const P: u64 = 2_654_435_761;
    let n = n.max(1) as u64;
    ((k % n) * (P % n) % n) as usize
}

async fn pool(path: &std::path::Path, durable: bool) -> Result<Pool<Sqlite>, Failure> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if durable {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        .busy_timeout(Duration::from_secs(5));
    // sqlite-es's `default_sqlite_pool` uses 10 connections.
    Ok(SqlitePoolOptions::new()
        .max_connections(10)
        .connect_with(options)
        .await?)
}

/// Writes users `0..count` in sqlite-es's format, in one transaction.
async fn preload(pool: &Pool<Sqlite>, count: usize) -> Result<(), Failure> {
    sqlx::raw_sql(SCHEMA).execute(pool).await?;
    let at = now_millis();
    let mut tx = pool.begin().await?;
    for i in 0..count {
        let id = user_id(i);
        let mut events = vec![UserEvent::Added {
            id: id.clone(),
            org_id: ORG.to_owned(),
            at,
        }];
        if i.is_multiple_of(LOCKED_EVERY) {
            events.push(UserEvent::Locked {
                reason: None,
                expires_at: None,
                at,
                creator: ADMIN.to_owned(),
            });
        }
        let mut aggregate = UserAggregate::default();
        for (sequence, event) in events.iter().enumerate() {
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(UserAggregate::TYPE)
            .bind(&id)
            .bind(sequence as i64 + 1)
            .bind(event.event_type())
            .bind(event.event_version())
            .bind(serde_json::to_value(event)?)
            .bind(serde_json::json!({}))
            .execute(&mut *tx)
            .await?;
            aggregate.apply(event.clone());
        }
        sqlx::query(
            "INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, \
             current_snapshot, payload) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(UserAggregate::TYPE)
        .bind(&id)
        .bind(events.len() as i64)
        .bind(1i64)
        .bind(serde_json::to_value(&aggregate)?)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

struct Args {
    users: usize,
    seconds: f64,
    rounds: usize,
    dir: Option<PathBuf>,
}

fn parse() -> Result<Args, Failure> {
    let mut args = Args {
        users: 10_000,
        seconds: 0.75,
        rounds: 4,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--users" => args.users = value()?.parse()?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse()?,
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(args)
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

/// What one caller did in a round.
struct Outcome {
    ops: u64,
    failed: u64,
    latencies: Vec<Duration>,
}

/// One caller's round: locks an active user or unlocks a locked one, among
/// the users `u` with `u % callers == caller`, until `until` has passed.
/// Commands the framework fails (SQLite busy under concurrent writers) are
/// counted, not retried.
async fn lock_unlock(
    cqrs: &Framework,
    locked: &[AtomicBool],
    users: usize,
    caller: usize,
    callers: usize,
    cursor: u64,
    until: Duration,
) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        ops: 0,
        failed: 0,
        latencies: Vec::new(),
    };
    let per_caller = users / callers;
    while started.elapsed() < until {
        let u = visit(cursor + outcome.ops, per_caller) * callers + caller;
        let lock = !locked[u].load(Ordering::Relaxed);
        let (caller, org) = (ADMIN.to_owned(), ORG.to_owned());
        let command = if lock {
            UserCommand::Lock { caller, org }
        } else {
            UserCommand::Unlock { caller, org }
        };
        let t = Instant::now();
        match cqrs.execute(&user_id(u), command).await {
            Ok(()) => {
                outcome.latencies.push(t.elapsed());
                locked[u].store(lock, Ordering::Relaxed);
                outcome.ops += 1;
            }
            Err(_) => outcome.failed += 1,
        }
    }
    outcome
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args = parse()?;
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = std::env::temp_dir().join(format!("userstate-peer-{}", std::process::id()));
    let dir = if args.dir.is_some() {
        base.join(format!("userstate-peer-{}", std::process::id()))
    } else {
        dir
    };
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("cqrs-es.sqlite3");
    let started = Instant::now();
    {
        let pool = pool(&path, false).await?;
        preload(&pool, args.users).await?;
        pool.close().await;
    }
    eprintln!(
        "[cqrs-es {}] preloaded in {:.1} s",
        args.users,
        started.elapsed().as_secs_f64()
    );
    let locked: Arc<Vec<AtomicBool>> = Arc::new(
        (0..args.users)
            .map(|i| AtomicBool::new(i.is_multiple_of(LOCKED_EVERY)))
            .collect(),
    );
    let mut cursor = 0u64;
    let mut lines = Vec::new();
    for (mode, durable) in [("durable", true), ("relaxed", false)] {
        let pool = pool(&path, durable).await?;
        let grants = Grants(HashMap::from([(
            ADMIN.to_owned(),
            HashSet::from([ORG.to_owned()]),
        )]));
        let store =
            PersistedEventStore::new_aggregate_store(SqliteEventRepository::new(pool.clone()));
        let cqrs: Arc<Framework> = Arc::new(CqrsFramework::new(store, vec![], grants));
        for callers in [1, CONCURRENT_CALLERS] {
            let mut ops = 0u64;
            let mut failed = 0u64;
            let mut busy = Duration::ZERO;
            let mut latencies = Vec::new();
            for _ in 0..args.rounds {
                let round = Instant::now();
                let until = Duration::from_secs_f64(args.seconds);
                let tasks: Vec<_> = (0..callers)
                    .map(|caller| {
                        let (cqrs, locked) = (cqrs.clone(), locked.clone());
                        let users = args.users;
                        tokio::spawn(async move {
                            lock_unlock(&cqrs, &locked, users, caller, callers, cursor, until).await
                        })
                    })
                    .collect();
                let mut done = 0;
                for task in tasks {
                    let outcome = task.await?;
                    done = done.max(outcome.ops);
                    ops += outcome.ops;
                    failed += outcome.failed;
                    latencies.extend(outcome.latencies);
                }
                cursor += done;
                busy += round.elapsed();
            }
            latencies.sort_unstable();
            let rate = ops as f64 / busy.as_secs_f64();
            println!(
                "cqrs-es  {mode:<8} {:>9} users {callers:>3} callers {rate:>8.0} ops/s  \
                 p50 {:>8.1} µs  p99 {:>8.1} µs  {failed} failed",
                args.users,
                quantile(&latencies, 0.5),
                quantile(&latencies, 0.99)
            );
            lines.push(format!(
                "ops cqrs-es {mode} {} {callers} peer {rate:.0}",
                args.users
            ));
        }
        pool.close().await;
    }
    for line in lines {
        println!("{line}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
