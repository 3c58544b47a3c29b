//! Durable lock+unlock throughput through `UserService` on sled, with one
//! caller and with 64 concurrent callers on distinct users (group commit),
//! plus relaxed mode, beside raw sled doing the same atomic work by hand
//! (one transaction over the same four trees per command, then flush and
//! fdatasync each); or, with `--load N`, the peak resident memory while
//! creating N users.
//!
//! ```text
//! cargo run --release -p userstate-sled --example sled_throughput -- [--users N] [--seconds S] [--dir PATH]
//! cargo run --release -p userstate-sled --example sled_throughput -- --load 1000000 [--relaxed] [--dir PATH]
//! ```
//!
//! `--cache-mib N` sets sled's cache (default 64 MiB), `--readers N` the
//! repository's reader threads (default 2), `--max-unsynced N` relaxed
//! mode's bound on unsynced commands (default 1000).
//!
//! The database lives in a fresh temporary directory under `--dir` (default:
//! the system's temporary directory; make sure it is on the device you want
//! to measure, not a tmpfs).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use userstate::{
    Caller, InMemoryAuthorizer, InitialState, LockRequest, OrgId, Permission, UserId, UserService,
};
use userstate_sled::{Durability, SledOptions, SledRepository};

const CONCURRENT: usize = 64;

struct Args {
    users: usize,
    cache_mib: Option<u64>,
    readers: Option<usize>,
    max_unsynced: Option<u64>,
    seconds: f64,
    dir: Option<PathBuf>,
    load: Option<usize>,
    relaxed: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        users: 10_000,
        cache_mib: None,
        readers: None,
        max_unsynced: None,
        seconds: 3.0,
        dir: None,
        load: None,
        relaxed: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--users" => args.users = value()?.parse().map_err(|e| format!("--users: {e}"))?,
            "--seconds" => {
                args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--load" => args.load = Some(value()?.parse().map_err(|e| format!("--load: {e}"))?),
            "--relaxed" => args.relaxed = true,
            "--cache-mib" => {
                args.cache_mib = Some(value()?.parse().map_err(|e| format!("--cache-mib: {e}"))?)
            }
            "--max-unsynced" => {
                args.max_unsynced = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--max-unsynced: {e}"))?,
                )
            }
            "--readers" => {
                args.readers = Some(value()?.parse().map_err(|e| format!("--readers: {e}"))?)
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = parse_args()?;
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("database in {}", dir.path().display());
    match args.load {
        Some(count) => runtime.block_on(load(&args, dir.path().join("db"), count))?,
        None => runtime.block_on(throughput(&args, dir.path()))?,
    }
    Ok(())
}

/// The options the command line asks for.
fn options(args: &Args) -> SledOptions {
    let mut options = SledOptions::new();
    if let Some(mib) = args.cache_mib {
        options = options.cache_bytes(mib * 1024 * 1024);
    }
    if let Some(readers) = args.readers {
        options = options.reader_threads(readers);
    }
    if let Some(commands) = args.max_unsynced {
        options = options.max_unsynced_commands(commands);
    }
    options
}

struct Bench {
    service: UserService,
    admin: Caller,
    repo: SledRepository,
}

fn bench(repo: SledRepository) -> Result<Bench, userstate::Error> {
    let acme = OrgId::new("acme")?;
    let admin = Caller::new(UserId::new("admin")?, acme.clone());
    let grants = InMemoryAuthorizer::new();
    grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
    let service = UserService::new(Arc::new(repo.clone()), Arc::new(grants));
    Ok(Bench {
        service,
        admin,
        repo,
    })
}

fn user(i: usize) -> Result<UserId, userstate::Error> {
    UserId::new(format!("user-{i:08}"))
}

/// Creates users `0..count` with `CONCURRENT` callers; returns the elapsed time.
async fn create_users(
    bench: &Bench,
    count: usize,
) -> Result<Duration, Box<dyn std::error::Error + Send + Sync>> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..CONCURRENT {
        let (service, admin) = (bench.service.clone(), bench.admin.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = caller;
            while i < count {
                service
                    .create(&admin, &user(i)?, InitialState::Active)
                    .await?;
                i += CONCURRENT;
            }
            Ok::<(), userstate::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(start.elapsed())
}

/// Lock+unlock pairs by `callers` concurrent callers, each on its own user,
/// for `seconds`; returns commands per second.
async fn lock_unlock(
    bench: &Bench,
    callers: usize,
    seconds: f64,
) -> Result<f64, Box<dyn std::error::Error + Send + Sync>> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let (service, admin) = (bench.service.clone(), bench.admin.clone());
        tasks.push(tokio::spawn(async move {
            let id = user(caller)?;
            let mut commands = 0u64;
            while Instant::now() < deadline {
                service.lock(&admin, &id, LockRequest::new()).await?;
                service.unlock(&admin, &id, None).await?;
                commands += 2;
            }
            Ok::<u64, userstate::Error>(commands)
        }));
    }
    let mut commands = 0;
    for task in tasks {
        commands += task.await??;
    }
    Ok(commands as f64 / start.elapsed().as_secs_f64())
}

async fn throughput(
    args: &Args,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let users = args.users.max(CONCURRENT);
    for durable in [true, false] {
        let raw = raw::RawSled::open(
            &dir.join(if durable { "raw-durable" } else { "raw" }),
            durable,
        )?;
        raw.create_users(users)?;
        let mode = if durable {
            "raw sled, flush + fdatasync per command"
        } else {
            "raw sled, no flush"
        };
        let one = raw.lock_unlock(1, args.seconds)?;
        println!("{mode}: lock+unlock, 1 caller: {one:.0} ops/s");
        let many = raw.lock_unlock(CONCURRENT, args.seconds)?;
        println!(
            "{mode}: lock+unlock, {CONCURRENT} callers: {many:.0} ops/s ({:.1}x one caller)",
            many / one
        );
    }
    for durability in [Durability::Durable, Durability::Relaxed] {
        let path = dir.join(format!("{durability:?}").to_lowercase());
        let bench = bench(options(args).durability(durability).open(&path)?)?;
        let created = create_users(&bench, users).await?;
        println!(
            "{durability:?}: created {users} users in {:.2} s ({:.0}/s)",
            created.as_secs_f64(),
            users as f64 / created.as_secs_f64()
        );
        let mut one = 0.0;
        for callers in [1, CONCURRENT] {
            let before = bench.repo.stats();
            let cpu_before = cpu_seconds();
            let wall = Instant::now();
            let rate = lock_unlock(&bench, callers, args.seconds).await?;
            let after = bench.repo.stats();
            let cores = (cpu_seconds() - cpu_before) / wall.elapsed().as_secs_f64();
            println!("  (CPU busy: {cores:.2} cores)");
            let (commits, syncs) = (
                after.commands - before.commands,
                after.batches - before.batches,
            );
            let per_sync = if syncs == 0 || durability == Durability::Relaxed {
                String::new()
            } else {
                format!(
                    ", {:.1} commands per batch and sync",
                    commits as f64 / syncs as f64
                )
            };
            if callers == 1 {
                one = rate;
                println!("{durability:?}: lock+unlock, 1 caller: {rate:.0} ops/s{per_sync}");
            } else {
                println!(
                    "{durability:?}: lock+unlock, {callers} callers: {rate:.0} ops/s ({:.1}x one caller){per_sync}",
                    rate / one
                );
            }
        }
    }
    Ok(())
}

async fn load(
    args: &Args,
    path: PathBuf,
    count: usize,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let durability = if args.relaxed {
        Durability::Relaxed
    } else {
        Durability::Durable
    };
    let bench = bench(options(args).durability(durability).open(&path)?)?;
    let elapsed = create_users(&bench, count).await?;
    bench.repo.sync().await?;
    let stats = bench.repo.stats();
    println!(
        "{durability:?}: created {count} users in {:.1} s ({:.0}/s, {} batches)",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        stats.batches
    );
    // Reads after the load, so the cache is exercised too.
    let probe = user(count / 2)?;
    let found = bench.service.get(&bench.admin, &probe).await?;
    println!("probe {} sequence {}", found.id, found.sequence);
    match peak_rss_kib() {
        Some(kib) => println!("peak RSS (VmHWM): {} MiB", kib / 1024),
        None => println!("peak RSS: not available (no /proc/self/status)"),
    }
    Ok(())
}

/// VmHWM from /proc/self/status, in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User plus system CPU time of the process so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The same atomic work as the adapter, by hand: per command one sled
/// transaction over the same four trees that checks the sequence and writes
/// an event, the snapshot and the index moves (values of similar size, no
/// codec), then, when durable, `flush` and `fdatasync` of the data file.
mod raw {
    use std::fs::File;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use sled::transaction::{ConflictableTransactionError, TransactionError};
    use sled::{Transactional, Tree};

    type Failure = Box<dyn std::error::Error + Send + Sync>;

    pub struct RawSled {
        db: sled::Db,
        trees: [Tree; 4],
        data_file: Option<Arc<File>>,
    }

    impl RawSled {
        pub fn open(path: &Path, durable: bool) -> Result<Arc<Self>, Failure> {
            let db = sled::Config::new()
                .path(path)
                .cache_capacity(64 * 1024 * 1024)
                .open()?;
            let tree = |name: &str| db.open_tree(name);
            let trees = [
                tree("events")?,
                tree("snapshots")?,
                tree("by_org_state")?,
                tree("by_org")?,
            ];
            let data_file = if durable {
                Some(Arc::new(File::open(path.join("db"))?))
            } else {
                None
            };
            Ok(Arc::new(RawSled {
                db,
                trees,
                data_file,
            }))
        }

        fn user(i: usize) -> Vec<u8> {
            format!("user-{i:08}").into_bytes()
        }

        /// One command: check `expected`, append event `expected + 1`, move
        /// the user from `from` to `to` in the state index.
        fn command(&self, user: &[u8], expected: u64, from: u8, to: u8) -> Result<(), Failure> {
            let mut event_key = user.to_vec();
            event_key.push(0);
            event_key.extend_from_slice(&(expected + 1).to_be_bytes());
            let mut snapshot = (expected + 1).to_be_bytes().to_vec();
            snapshot.push(to);
            snapshot.extend_from_slice(&[7u8; 60]);
            let index_key = |state: u8| {
                let mut key = b"acme\0".to_vec();
                key.push(state);
                key.extend_from_slice(user);
                key
            };
            let (old_index, new_index) = (index_key(from), index_key(to));
            let mut org_key = b"acme\0".to_vec();
            org_key.extend_from_slice(user);
            let [events, snapshots, by_org_state, by_org] = &self.trees;
            let result: Result<(), TransactionError<String>> =
                (events, snapshots, by_org_state, by_org).transaction(
                    |(events, snapshots, by_org_state, by_org)| {
                        let actual = snapshots
                            .get(user)?
                            .and_then(|v| v.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()))
                            .map_or(0, u64::from_be_bytes);
                        if actual != expected {
                            return Err(ConflictableTransactionError::Abort(format!(
                                "conflict: expected {expected}, found {actual}"
                            )));
                        }
                        if expected > 0 {
                            by_org_state.remove(old_index.as_slice())?;
                        }
                        events.insert(event_key.as_slice(), &[9u8; 40][..])?;
                        snapshots.insert(user, snapshot.as_slice())?;
                        by_org_state.insert(new_index.as_slice(), &[][..])?;
                        by_org.insert(org_key.as_slice(), &[][..])?;
                        Ok(())
                    },
                );
            result.map_err(|e| format!("{e:?}"))?;
            if let Some(file) = &self.data_file {
                self.db.flush()?;
                file.sync_data()?;
            }
            Ok(())
        }

        pub fn create_users(self: &Arc<Self>, count: usize) -> Result<(), Failure> {
            for i in 0..count {
                self.command(&Self::user(i), 0, 0, 2)?;
            }
            Ok(())
        }

        /// Lock+unlock pairs by `callers` threads on distinct users for
        /// `seconds`; returns commands per second.
        pub fn lock_unlock(self: &Arc<Self>, callers: usize, seconds: f64) -> Result<f64, Failure> {
            let deadline = Instant::now() + Duration::from_secs_f64(seconds);
            let start = Instant::now();
            let threads: Vec<_> = (0..callers)
                .map(|caller| {
                    let raw = self.clone();
                    std::thread::spawn(move || -> Result<u64, Failure> {
                        let user = Self::user(caller);
                        let mut sequence = raw.sequence(&user)?;
                        let mut commands = 0;
                        while Instant::now() < deadline {
                            raw.command(&user, sequence, 2, 3)?;
                            raw.command(&user, sequence + 1, 3, 2)?;
                            sequence += 2;
                            commands += 2;
                        }
                        Ok(commands)
                    })
                })
                .collect();
            let mut commands = 0;
            for thread in threads {
                commands += thread.join().map_err(|_| "a raw caller panicked")??;
            }
            Ok(commands as f64 / start.elapsed().as_secs_f64())
        }

        fn sequence(&self, user: &[u8]) -> Result<u64, Failure> {
            let stored = self.trees[1].get(user)?.ok_or("user not created")?;
            let bytes = stored.get(..8).ok_or("short snapshot")?;
            Ok(u64::from_be_bytes(<[u8; 8]>::try_from(bytes)?))
        }
    }
}
