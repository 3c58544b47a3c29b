//! The backends under test, the users they are preloaded with, and a
//! service over them with an administrator allowed to read and write.
//!
//! Every backend holds the users `user-00000000` to `user-NNNNNNNN` of the
//! organisation `acme`; every [`LOCKED_EVERY`]th user is locked, the others
//! active, so a page of locked users is never empty.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use userstate::storage::{self, Commit, Scope, Update};
use userstate::{
    Caller, Event, EventPayload, InMemoryAuthorizer, InMemoryRepository, InitialState, LockCause,
    OrgId, Permission, Timestamp, UserId, UserRepository, UserService,
};
use userstate_postgres::{PostgresOptions, PostgresRepository};
use userstate_sled::{SledOptions, SledRepository};
use userstate_sqlite::{SqliteOptions, SqliteRepository};

/// Every this many users, one is preloaded locked.
pub const LOCKED_EVERY: usize = 10;

/// The organisation every preloaded user belongs to.
pub const ORG: &str = "acme";

/// The acting administrator's id.
pub const ADMIN: &str = "admin";

/// Concurrent appends while preloading: enough to fill the SQLite writer's
/// batches and the sled flusher's groups.
const PRELOAD_CALLERS: usize = 512;

/// A storage adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Adapter {
    /// The core's [`InMemoryRepository`].
    Memory,
    /// `userstate-sqlite` on a file.
    Sqlite,
    /// `userstate-sled` on a directory.
    Sled,
    /// `userstate-postgres` on a database of a PostgreSQL server, whose
    /// connection string is kept in the benchmark's directory (see
    /// [`database_path`]).
    Postgres,
}

impl Adapter {
    /// Every adapter, in report order.
    pub const ALL: [Adapter; 4] = [
        Adapter::Memory,
        Adapter::Sqlite,
        Adapter::Sled,
        Adapter::Postgres,
    ];

    /// The adapters that need no server: they run wherever the benches do.
    pub const EMBEDDED: [Adapter; 3] = [Adapter::Memory, Adapter::Sqlite, Adapter::Sled];

    /// `memory`, `sqlite`, `sled` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Adapter::Memory => "memory",
            Adapter::Sqlite => "sqlite",
            Adapter::Sled => "sled",
            Adapter::Postgres => "postgres",
        }
    }

    /// The adapter called `name` (see [`Adapter::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        Adapter::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The durability modes the adapter offers.
    pub fn modes(self) -> &'static [Mode] {
        match self {
            Adapter::Memory => &[Mode::Volatile],
            Adapter::Sqlite | Adapter::Sled | Adapter::Postgres => &[Mode::Durable, Mode::Relaxed],
        }
    }

    /// Whether the adapter has `inline_writes` (a lone caller's write on
    /// its own thread).
    pub fn has_inline_writes(self) -> bool {
        matches!(self, Adapter::Sqlite | Adapter::Sled)
    }
}

impl fmt::Display for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an acknowledged command survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Synced to the device before the caller is answered.
    Durable,
    /// Answered before the sync (SQLite `synchronous = NORMAL`; sled without
    /// a flush per command; PostgreSQL `synchronous_commit = off`).
    Relaxed,
    /// In memory only.
    Volatile,
}

impl Mode {
    /// `durable`, `relaxed` or `volatile`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Durable => "durable",
            Mode::Relaxed => "relaxed",
            Mode::Volatile => "volatile",
        }
    }

    /// The mode called `name` (see [`Mode::name`]).
    pub fn parse(name: &str) -> Option<Self> {
        [Mode::Durable, Mode::Relaxed, Mode::Volatile]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The id of the `i`th preloaded user.
pub fn user_id(i: usize) -> UserId {
    UserId::new(format!("user-{i:08}")).expect("a valid generated id")
}

/// Whether the `i`th user is preloaded locked.
pub fn preloaded_locked(i: usize) -> bool {
    i.is_multiple_of(LOCKED_EVERY)
}

/// The `k`th user a caller visits among `n`: consecutive visits land far
/// apart, so a large database is read at random rather than from a warm
/// corner, and every user is visited once every `n` visits.
pub fn visit(k: u64, n: usize) -> usize {
    // Knuth's multiplicative constant: a prime, so coprime with every size
    // used here, which makes `k -> k * P mod n` a permutation.
    const P: u64 = 2_654_435_761;
    let n = n.max(1) as u64;
    ((k % n) * (P % n) % n) as usize
}

/// The environment variable that picks how the service checks its caller:
/// unset or `stored`, the caller is an active user stored in the database
/// and the check reads it with every command (what a host whose
/// administrators are users pays); `off`, the check is switched off.
pub const CALLER_CHECK_VAR: &str = "USERSTATE_BENCH_CALLER";

/// A service over `repository` and a caller allowed to read and write the
/// organisation [`ORG`], checked as [`CALLER_CHECK_VAR`] says.
///
/// # Panics
/// When the caller's own user cannot be stored.
pub fn service(repository: Arc<dyn UserRepository>) -> (UserService, Caller) {
    let org = OrgId::new(ORG).expect("a valid org id");
    let admin = Caller::new(UserId::new(ADMIN).expect("a valid id"), org.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &org, [Permission::Read, Permission::Write]);
    let service = UserService::new(repository, Arc::new(grants));
    let checked = std::env::var(CALLER_CHECK_VAR).map_or(true, |mode| mode != "off");
    if !checked {
        return (service.with_caller_check(false), admin);
    }
    let created = futures::executor::block_on(service.create(
        &admin,
        &admin.user_id,
        userstate::InitialState::Active,
    ));
    match created {
        Ok(_) => {}
        Err(e) if e.kind() == userstate::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("cannot store the benchmark's caller: {e}"),
    }
    (service, admin)
}

/// An open repository of one adapter, with the handle its counters are
/// read from.
#[derive(Debug, Clone)]
pub enum Handle {
    /// The in-memory repository.
    Memory(Arc<InMemoryRepository>),
    /// A SQLite file.
    Sqlite(SqliteRepository),
    /// A sled directory.
    Sled(SledRepository),
    /// A PostgreSQL schema.
    Postgres(PostgresRepository),
}

impl Handle {
    /// The repository, for a service.
    pub fn repository(&self) -> Arc<dyn UserRepository> {
        match self {
            Handle::Memory(repo) => repo.clone(),
            Handle::Sqlite(repo) => Arc::new(repo.clone()),
            Handle::Sled(repo) => Arc::new(repo.clone()),
            Handle::Postgres(repo) => repo.clone().into(),
        }
    }

    /// Commands answered and the batches (SQLite and PostgreSQL
    /// transactions, sled syncs) they shared so far: the group-commit batch is the ratio of the
    /// differences.
    pub fn commit_counters(&self) -> (u64, u64) {
        let stats = match self {
            Handle::Memory(_) => return (0, 0),
            Handle::Sqlite(repo) => repo.stats(),
            Handle::Sled(repo) => repo.stats(),
            Handle::Postgres(repo) => repo.stats(),
        };
        (stats.commands, stats.batches)
    }
}

/// Where an adapter keeps its database inside a benchmark's directory;
/// for PostgreSQL, the file that holds the database's connection string
/// (see [`write_connection`]).
pub fn database_path(adapter: Adapter, dir: &Path) -> PathBuf {
    match adapter {
        Adapter::Memory => dir.to_path_buf(),
        Adapter::Sqlite => dir.join("users.sqlite3"),
        Adapter::Sled => dir.join("users.sled"),
        Adapter::Postgres => dir.join("postgres-connection"),
    }
}

/// Keeps `connection`, the connection string of a PostgreSQL database, in
/// `dir` for the processes that open the database there.
///
/// # Errors
/// When the file cannot be written.
pub fn write_connection(dir: &Path, connection: &str) -> std::io::Result<()> {
    std::fs::write(database_path(Adapter::Postgres, dir), connection)
}

/// The connection string [`write_connection`] kept in `dir`.
///
/// # Errors
/// InvalidArgument when there is none.
pub fn connection(dir: &Path) -> userstate::Result<String> {
    let path = database_path(Adapter::Postgres, dir);
    std::fs::read_to_string(&path)
        .map(|text| text.trim().to_owned())
        .map_err(|e| {
            userstate::Error::new(
                userstate::ErrorKind::InvalidArgument,
                userstate::ids::INVALID_NAME,
                format!("no PostgreSQL connection string in {}: {e}", path.display()),
            )
        })
}

/// The adapter's durability for `mode`.
fn durability(mode: Mode) -> userstate::storage::Durability {
    match mode {
        Mode::Durable => userstate::storage::Durability::Durable,
        _ => userstate::storage::Durability::Relaxed,
    }
}

/// Opens the adapter's database in `dir` (created if missing) in `mode`,
/// with the adapters' default options otherwise. Memory gives a new, empty
/// repository.
///
/// # Errors
/// The adapter's open errors.
pub fn open(adapter: Adapter, mode: Mode, dir: &Path) -> userstate::Result<Handle> {
    open_with(adapter, mode, dir, false)
}

/// [`open`], with the adapters' `inline_writes` option set to `inline`.
///
/// # Errors
/// The adapter's open errors; InvalidArgument for `inline` on an adapter
/// without inline writes (PostgreSQL).
pub fn open_with(
    adapter: Adapter,
    mode: Mode,
    dir: &Path,
    inline: bool,
) -> userstate::Result<Handle> {
    let path = database_path(adapter, dir);
    Ok(match adapter {
        Adapter::Memory => Handle::Memory(Arc::new(InMemoryRepository::new())),
        Adapter::Sqlite => Handle::Sqlite(
            SqliteOptions::new()
                .durability(match mode {
                    Mode::Durable => userstate_sqlite::Durability::Durable,
                    _ => userstate_sqlite::Durability::Relaxed,
                })
                .inline_writes(inline)
                .open(path)?,
        ),
        Adapter::Sled => Handle::Sled(
            SledOptions::new()
                .durability(match mode {
                    Mode::Durable => userstate_sled::Durability::Durable,
                    _ => userstate_sled::Durability::Relaxed,
                })
                .inline_writes(inline)
                .open(path)?,
        ),
        Adapter::Postgres => {
            if inline {
                return Err(userstate::Error::new(
                    userstate::ErrorKind::InvalidArgument,
                    userstate::ids::INVALID_NAME,
                    "userstate-postgres has no inline writes",
                ));
            }
            Handle::Postgres(
                PostgresOptions::new(connection(dir)?)
                    .durability(durability(mode))
                    .open()?,
            )
        }
    })
}

/// Opens the adapter's database in `dir` the fastest way it allows for a
/// bulk load: relaxed, and for SQLite and PostgreSQL with batches of up to
/// 1000 commands per transaction.
///
/// # Errors
/// The adapter's open errors.
pub fn open_for_loading(adapter: Adapter, dir: &Path) -> userstate::Result<Handle> {
    match adapter {
        Adapter::Sqlite => Ok(Handle::Sqlite(
            SqliteOptions::new()
                .durability(userstate_sqlite::Durability::Relaxed)
                .max_batch(1000)
                .open(database_path(adapter, dir))?,
        )),
        Adapter::Postgres => Ok(Handle::Postgres(
            PostgresOptions::new(connection(dir)?)
                .durability(userstate::storage::Durability::Relaxed)
                .max_batch(1000)
                .open()?,
        )),
        _ => open(adapter, Mode::Relaxed, dir),
    }
}

/// The commit that creates user `i` as preloaded: `user.added`, and
/// `user.locked` too for every [`LOCKED_EVERY`]th user.
pub fn preload_commit(i: usize, at: Timestamp) -> Commit {
    let id = user_id(i);
    let org = OrgId::new(ORG).expect("a valid org id");
    let admin = UserId::new(ADMIN).expect("a valid id");
    let event = |sequence: u64, payload: EventPayload| Event {
        user_id: id.clone(),
        org_id: org.clone(),
        sequence,
        created_at: at,
        creator: admin.clone(),
        payload,
    };
    let mut events = vec![event(
        1,
        EventPayload::Added {
            state: InitialState::Active,
        },
    )];
    if preloaded_locked(i) {
        events.push(event(
            2,
            EventPayload::Locked {
                reason: None,
                expires_at: None,
                cause: LockCause::Command,
            },
        ));
    }
    Commit::new(None, events).expect("a well-formed commit")
}

/// Creates users `0..count` through the repository's `update` with a raw
/// commit ([`storage::append`]: the one write the service uses too), from
/// many concurrent callers so that group commit batches them. Returns the
/// time it took.
///
/// # Errors
/// The first append that failed.
pub fn preload(
    runtime: &tokio::runtime::Runtime,
    handle: &Handle,
    count: usize,
) -> userstate::Result<Duration> {
    // Memory has no commits to batch: one caller spares its mutex the
    // contention and the runtime the task switches.
    let callers = match handle {
        Handle::Memory(_) => 1,
        _ => PRELOAD_CALLERS,
    };
    preload_with(runtime, &handle.repository(), count, callers)
}

/// [`preload`] with `callers` concurrent callers.
///
/// # Errors
/// The first append that failed.
pub fn preload_with(
    runtime: &tokio::runtime::Runtime,
    repository: &Arc<dyn UserRepository>,
    count: usize,
    callers: usize,
) -> userstate::Result<Duration> {
    let started = Instant::now();
    let at = Timestamp::now();
    let callers = callers.clamp(1, count.max(1));
    runtime.block_on(async {
        let tasks: Vec<_> = (0..callers)
            .map(|caller| {
                let repository = repository.clone();
                tokio::spawn(async move {
                    for i in (caller..count).step_by(callers) {
                        let commit = preload_commit(i, at);
                        let id = commit.snapshot().id.clone();
                        repository
                            .update(Update::new(
                                id.clone(),
                                Scope::Instance,
                                storage::append(commit),
                            ))
                            .await?;
                    }
                    Ok::<(), userstate::Error>(())
                })
            })
            .collect();
        for task in tasks {
            task.await
                .map_err(|e| userstate::Error::internal(format!("preload task failed: {e}")))??;
        }
        Ok::<(), userstate::Error>(())
    })?;
    Ok(started.elapsed())
}

/// A runtime for the benchmarks' callers: as many worker threads as cores.
///
/// # Panics
/// When the runtime cannot be built (no threads left).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_are_a_permutation() {
        for n in [1, 7, 10, 1000] {
            let mut seen: Vec<usize> = (0..n as u64).map(|k| visit(k, n)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn preloaded_users_are_listed_in_their_state() {
        let runtime = runtime();
        let handle = open(Adapter::Memory, Mode::Volatile, Path::new("")).unwrap();
        preload(&runtime, &handle, 25).unwrap();
        let (service, admin) = service(handle.repository());
        let locked = runtime
            .block_on(service.list(
                &admin,
                &userstate::ListQuery::in_state(userstate::UserState::Locked),
            ))
            .unwrap();
        let ids: Vec<_> = locked.items.iter().map(|u| u.id.clone()).collect();
        assert_eq!(ids, vec![user_id(0), user_id(10), user_id(20)]);
    }
}
