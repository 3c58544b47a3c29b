//! `compare`: the library's lock/unlock throughput through its service
//! beside the raw storage engines doing the same atomic work by hand, per
//! adapter, durability mode and number of users, in one run.
//!
//! ```text
//! cargo run --release -p userstate-benches --bin compare -- [--users N] [--ops N] [--quick]
//!     [--rounds N] [--seconds S] [--only memory,sqlite,sled,postgres] [--dir PATH]
//!     [--postgres CONNECTION]
//! ```
//!
//! - `--users N`: the large database (default 1,000,000; `--quick`: 100,000);
//!   the small one has 10,000 users.
//! - `--ops N`: commands per measured round (default: rounds of `--seconds`,
//!   0.6 s, or 0.3 s with `--quick`).
//! - `--rounds N`: alternate library/raw rounds per figure (default 4, `--quick` 2).
//! - `--only`: the adapters to measure; `--dir`: where the databases go
//!   (default the system's temporary directory: put it on the disk to measure).
//! - `--postgres CONNECTION` (or `USERSTATE_POSTGRES_URL`): a PostgreSQL
//!   server (key=value connection string without `dbname`) on which the run
//!   creates its databases, and drops them when done. Without it the run
//!   starts a throwaway PostgreSQL cluster of its own in the temporary
//!   directory (`userstate_postgres::testing`), which this process owns and
//!   stops when it exits; the child processes are handed their databases'
//!   connection strings and never start a cluster. Without a server and
//!   the binaries to start one, `postgres` is left out.
//!
//! Every (adapter, size) runs in two child processes of this program, one
//! for the library and one for the raw baseline, so that each has its own
//! peak resident memory (`VmHWM`). The parent sends them commands on stdin
//! and reads JSON lines back, alternating library and raw rounds so that
//! drift of the machine cancels out. It prints a table, then one line per
//! figure:
//!
//! ```text
//! ratio <adapter> <mode> <users> <library ops/s ÷ raw ops/s>
//! ratio-inline <adapter> <mode> <users> <the same with the adapter's inline writes>
//! ratio-64 <adapter> <mode> <users> <the same with 64 callers; PostgreSQL only>
//! scale <adapter> <mode> <ops/s at the large size ÷ ops/s at 10,000>
//! group <adapter> <mode> <ops/s with 64 callers ÷ ops/s with 1>
//! group-raw <adapter> <mode> <the same for the raw baseline; PostgreSQL only>
//! rss <adapter> <peak MiB of the library process at the large size>
//! ops <adapter> <mode> <users> <callers> <engine> <ops/s>
//! target postgres ...   (PostgreSQL's targets, each with its figures and met / MISSED)
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use userstate::{Caller, ErrorKind, LockRequest, UserService};
use userstate_benches::fixture::{self, Adapter, Handle, Mode};
use userstate_benches::measure::{self, Histogram, Sample, Usage};
use userstate_benches::raw_postgres::{self, RawPostgres};
use userstate_benches::raw_sled::RawSled;
use userstate_benches::raw_sqlite::RawSqlite;
use userstate_postgres::testing::{self as postgres_testing, TestDatabase};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The small database of every comparison.
const SMALL: usize = 10_000;
/// Concurrent callers measured at the small size (1 is the ratio's run).
const CALLERS: [usize; 2] = [8, 64];
/// Callers on one user.
const SAME_USER_CALLERS: usize = 8;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = if args.first().map(String::as_str) == Some("--child") {
        child::main(&args[1..])
    } else {
        parent(&args)
    };
    if let Err(error) = outcome {
        eprintln!("compare: {error}");
        std::process::exit(1);
    }
}

/// The command line of the parent.
#[derive(Debug, Clone)]
struct Options {
    large: usize,
    ops: u64,
    seconds: f64,
    rounds: usize,
    quick: bool,
    only: Vec<Adapter>,
    dir: Option<PathBuf>,
    postgres: Option<String>,
}

fn parse(args: &[String]) -> Result<Options, Failure> {
    let quick = args.iter().any(|a| a == "--quick");
    let mut options = Options {
        large: if quick { 100_000 } else { 1_000_000 },
        ops: 0,
        seconds: if quick { 0.3 } else { 0.6 },
        rounds: if quick { 2 } else { 4 },
        quick,
        only: Adapter::ALL.to_vec(),
        dir: None,
        postgres: None,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--quick" => {}
            "--users" => options.large = value()?.parse()?,
            "--ops" => options.ops = value()?.parse()?,
            "--seconds" => options.seconds = value()?.parse()?,
            "--rounds" => options.rounds = value()?.parse::<usize>()?.max(1),
            "--dir" => options.dir = Some(PathBuf::from(value()?)),
            "--postgres" => options.postgres = Some(value()?.to_owned()),
            "--only" => {
                options.only = value()?
                    .split(',')
                    .map(|name| Adapter::parse(name).ok_or(format!("unknown adapter {name}")))
                    .collect::<Result<_, _>>()?
            }
            "-h" | "--help" => {
                println!(
                    "compare [--users N] [--ops N] [--quick] [--rounds N] [--seconds S] \
                     [--only memory,sqlite,sled,postgres] [--dir PATH] [--postgres CONNECTION]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if options.large == 0 {
        return Err("--users must be at least 1".into());
    }
    Ok(options)
}

/// What a child reports once its database is loaded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Ready {
    preload_secs: f64,
    load_rss_kib: Option<u64>,
}

/// What a child reports when it quits.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Done {
    rss_kib: Option<u64>,
}

/// A child process, spoken to over its stdin and stdout.
struct Worker {
    child: Child,
    input: ChildStdin,
    /// The child's stdout, line by line, from a thread that reads it.
    output: mpsc::Receiver<std::io::Result<String>>,
    label: String,
    /// How long a measuring command may take before the child is deemed
    /// stuck (a storage engine that hangs must not hang the whole run).
    patience: Duration,
}

impl Worker {
    fn spawn(
        engine: &str,
        adapter: Adapter,
        users: usize,
        dir: &Path,
        mode: Option<Mode>,
    ) -> Result<Self, Failure> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["--child", engine, adapter.name(), &users.to_string()])
            .arg(dir)
            .args(mode.map(|m| m.name()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let input = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let (lines, output) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Worker {
            child,
            input,
            output,
            label: format!("{engine} {adapter} {users}"),
            patience: Duration::from_secs(120),
        })
    }

    fn send(&mut self, command: &str) -> Result<(), Failure> {
        writeln!(self.input, "{command}")?;
        self.input.flush()?;
        Ok(())
    }

    /// The next reply, however long loading takes.
    fn receive<T: for<'de> Deserialize<'de>>(&mut self) -> Result<T, Failure> {
        match self.output.recv() {
            Ok(line) => Ok(serde_json::from_str(&line?)?),
            Err(_) => Err(format!("the {} process stopped", self.label).into()),
        }
    }

    /// Sends a command and waits for its reply, at most `patience`.
    fn ask<T: for<'de> Deserialize<'de>>(&mut self, command: &str) -> Result<T, Failure> {
        self.send(command)?;
        match self.output.recv_timeout(self.patience) {
            Ok(line) => Ok(serde_json::from_str(&line?)?),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                Err(format!(
                    "the {} process did not answer `{command}` within {} s; stopped it",
                    self.label,
                    self.patience.as_secs()
                )
                .into())
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(format!("the {} process stopped", self.label).into())
            }
        }
    }

    fn quit(mut self) -> Result<Done, Failure> {
        let done = self.ask("quit")?;
        self.child.wait()?;
        Ok(done)
    }

    /// Waits for a loader, which exits once it has reported.
    fn finish(mut self) -> Result<(), Failure> {
        self.child.wait()?;
        Ok(())
    }
}

/// One measured figure: adapter, mode, size, callers, engine, and the sum
/// of its rounds.
#[derive(Debug, Clone)]
struct Row {
    adapter: Adapter,
    mode: Mode,
    users: usize,
    /// `"1"`, `"8"`, `"64"` or `"8 same"`.
    callers: String,
    engine: &'static str,
    sample: Sample,
    /// Library ÷ raw per pair of adjacent rounds (1 caller only).
    ratios: Vec<f64>,
}

/// Peak memory of one (adapter, size).
#[derive(Debug, Clone)]
struct Memory {
    adapter: Adapter,
    users: usize,
    mode: Mode,
    preload_secs: f64,
    load_kib: Option<u64>,
    run_kib: Option<u64>,
    raw_kib: Option<u64>,
}

/// Makes sure a PostgreSQL server is at hand when `postgres` is to be
/// measured: the one `--postgres` names, or `USERSTATE_POSTGRES_URL`, or a
/// throwaway cluster this process starts (in `--dir` when given) and stops
/// when it exits. Without one, `postgres` is left out, saying why.
fn start_postgres(options: &mut Options) {
    if !options.only.contains(&Adapter::Postgres) {
        return;
    }
    // Before any thread of this process starts: the environment is read
    // by `testing` (and inherited by the children, which never use it).
    if let Some(connection) = &options.postgres {
        std::env::set_var(postgres_testing::URL_VAR, connection);
    }
    if let Some(dir) = &options.dir {
        std::env::set_var("TMPDIR", dir);
    }
    let started = Instant::now();
    if postgres_testing::available() {
        eprintln!(
            "PostgreSQL server ready after {:.1} s ({})",
            started.elapsed().as_secs_f64(),
            if std::env::var_os(postgres_testing::URL_VAR).is_some() {
                "the one named"
            } else {
                "a throwaway cluster of this run"
            }
        );
    } else {
        eprintln!("no PostgreSQL server: leaving postgres out");
        options.only.retain(|a| *a != Adapter::Postgres);
    }
}

/// Runs `sql` (one statement or several) on the database `connection`
/// names.
fn postgres_sql(connection: &str, sql: &str) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (client, driver) = tokio_postgres::connect(connection, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(driver);
        let done = client.batch_execute(sql).await;
        drop(client);
        let _ = driver.await;
        Ok(done?)
    })
}

/// The first row of `sql`'s answer on the database `connection` names, as
/// text.
fn postgres_row(connection: &str, sql: &str) -> Result<Vec<String>, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (client, driver) = tokio_postgres::connect(connection, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(driver);
        let answer = client.simple_query(sql).await;
        drop(client);
        let _ = driver.await;
        let row = answer?.into_iter().find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("").to_owned())
                    .collect(),
            ),
            _ => None,
        });
        Ok(row.unwrap_or_default())
    })
}

/// The connection string of the server's `postgres` database, beside `db`.
fn postgres_admin(db: &TestDatabase) -> String {
    db.connection_string()
        .replace(&format!("dbname={}", db.name()), "dbname=postgres")
}

fn parent(args: &[String]) -> Result<(), Failure> {
    let mut options = parse(args)?;
    start_postgres(&mut options);
    if options.only.is_empty() {
        return Err("nothing left to measure".into());
    }
    let started = Instant::now();
    let base = options.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("userstate-compare-")
        .tempdir_in(&base)?;
    let mut sizes = vec![SMALL.min(options.large), options.large];
    sizes.dedup();
    print_machine(dir.path());
    let round = if options.ops > 0 {
        format!("{} commands", options.ops)
    } else {
        format!("{} s", options.seconds)
    };
    println!(
        "sizes {sizes:?} users, {} alternate rounds of {round} per figure{}",
        options.rounds,
        if options.quick { " (--quick)" } else { "" }
    );
    // Every database is loaded first, all at once (loading is the slow
    // part, and uses the two cores better in parallel); the measurements
    // then run one process pair at a time on an otherwise idle machine.
    let mut pending = Vec::new();
    for &adapter in &options.only {
        for &users in &sizes {
            pending.push(Pair::spawn(adapter, users, dir.path())?);
        }
    }
    if let Some(db) = pending.iter().find_map(|pair| pair.databases.first()) {
        let settings = postgres_row(
            db.connection_string(),
            "SELECT current_setting('server_version'), current_setting('fsync'), \
             current_setting('synchronous_commit'), current_setting('shared_buffers')",
        )?;
        println!(
            "postgres: server {} ({}), fsync {}, default synchronous_commit {} (both sides set it \
             per transaction), shared_buffers {}",
            settings.first().map_or("?", String::as_str),
            if std::env::var_os(postgres_testing::URL_VAR).is_some() {
                "the one named"
            } else {
                "a throwaway cluster of this run, on a Unix socket"
            },
            settings.get(1).map_or("?", String::as_str),
            settings.get(2).map_or("?", String::as_str),
            settings.get(3).map_or("?", String::as_str),
        );
    }
    let mut loaded = Vec::new();
    for pair in pending {
        loaded.push(pair.ready()?);
    }
    eprintln!(
        "all databases loaded after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // The loads leave gigabytes of dirty pages; written back during the
    // rounds they would stall reads and fsyncs of whichever engine ran then.
    let writeback = Instant::now();
    match Command::new("sync").status() {
        Ok(status) if status.success() => eprintln!(
            "written back to the disk in {:.0} s",
            writeback.elapsed().as_secs_f64()
        ),
        _ => eprintln!("could not run `sync`; measuring with the loads' pages unwritten"),
    }
    // PostgreSQL keeps the loads' pages in its own buffers until a
    // checkpoint: take it now rather than during the rounds.
    if let Some(db) = loaded.iter().find_map(|pair| pair.databases.first()) {
        let checkpoint = Instant::now();
        match postgres_sql(&postgres_admin(db), "CHECKPOINT") {
            Ok(()) => eprintln!(
                "PostgreSQL checkpoint in {:.1} s",
                checkpoint.elapsed().as_secs_f64()
            ),
            Err(e) => eprintln!("no PostgreSQL checkpoint ({e}); measuring without"),
        }
    }
    let mut rows = Vec::new();
    let mut memory = Vec::new();
    for pair in loaded {
        let (new_rows, mem) = compare(&options, pair, sizes[0])?;
        rows.extend(new_rows);
        memory.extend(mem);
    }
    print_table(&rows, &memory);
    print_figures(&rows, &memory, &sizes);
    print_targets(&rows, &memory, &sizes);
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The processes of one adapter and size: the library's loader (the
/// library's measuring processes, one per mode, come later) and the raw
/// baseline.
struct Pair {
    adapter: Adapter,
    users: usize,
    dir: PathBuf,
    /// Memory's measuring process, which holds its only copy of the users;
    /// for the others, the loader until it finished.
    lib: Option<Worker>,
    raw: Option<Worker>,
    ready: Ready,
    /// PostgreSQL: the library's database and the baseline's, dropped
    /// once measured.
    databases: Vec<TestDatabase>,
}

impl Pair {
    /// Starts the loading processes; they load their databases meanwhile.
    fn spawn(adapter: Adapter, users: usize, base: &Path) -> Result<Self, Failure> {
        let dir = base.join(format!("{adapter}-{users}"));
        std::fs::create_dir_all(dir.join("lib"))?;
        std::fs::create_dir_all(dir.join("raw"))?;
        let mut databases = Vec::new();
        if adapter == Adapter::Postgres {
            // This process owns the server; the children get their
            // databases' connection strings, each in its directory.
            for side in ["lib", "raw"] {
                let db = postgres_testing::database().ok_or("no PostgreSQL database")?;
                fixture::write_connection(&dir.join(side), db.connection_string())?;
                databases.push(db);
            }
        }
        eprintln!("[{adapter} {users}] preloading ...");
        let lib = match adapter {
            // Memory cannot hand its users to another process: it loads and
            // measures in one.
            Adapter::Memory => Worker::spawn(
                "lib",
                adapter,
                users,
                &dir.join("lib"),
                Some(Mode::Volatile),
            )?,
            _ => Worker::spawn("load", adapter, users, &dir.join("lib"), None)?,
        };
        let raw = match adapter {
            Adapter::Memory => None,
            _ => Some(Worker::spawn(
                "raw",
                adapter,
                users,
                &dir.join("raw"),
                None,
            )?),
        };
        Ok(Pair {
            adapter,
            users,
            dir,
            lib: Some(lib),
            raw,
            ready: Ready::default(),
            databases,
        })
    }

    /// Waits until both have loaded their databases (and the loader exited).
    fn ready(mut self) -> Result<Self, Failure> {
        let mut lib = self.lib.take().ok_or("no loader")?;
        self.ready = lib.receive()?;
        if self.adapter == Adapter::Memory {
            self.lib = Some(lib);
        } else {
            lib.finish()?;
        }
        if let Some(raw) = self.raw.as_mut() {
            let _: Ready = raw.receive()?;
        }
        eprintln!(
            "[{} {}] preloaded in {:.1} s",
            self.adapter, self.users, self.ready.preload_secs
        );
        Ok(self)
    }
}

/// Measures one adapter at one size, each mode in a library process of its
/// own, beside the raw process.
fn compare(
    options: &Options,
    pair: Pair,
    small: usize,
) -> Result<(Vec<Row>, Vec<Memory>), Failure> {
    let Pair {
        adapter,
        users,
        dir,
        lib: mut memory_lib,
        mut raw,
        ready,
        databases,
    } = pair;
    let run = |callers: usize| {
        format!(
            "run {callers} {} {}",
            options.seconds,
            options.ops.div_ceil(callers as u64)
        )
    };
    let mut rows = Vec::new();
    let mut memory = Vec::new();
    for &mode in adapter.modes() {
        let (mut lib, opened) = match memory_lib.take() {
            Some(lib) => (lib, ready.clone()),
            None => {
                let mut lib = Worker::spawn("lib", adapter, users, &dir.join("lib"), Some(mode))?;
                let opened: Ready = lib.receive()?;
                (lib, opened)
            }
        };
        // A round of --ops commands may take long on a slow disk.
        let patience = Duration::from_secs(120) + Duration::from_millis(2 * options.ops);
        lib.patience = patience;
        if let Some(raw) = raw.as_mut() {
            raw.patience = patience;
            let _: Done = raw.ask(&format!("mode {mode}"))?;
        }
        let (lib_total, raw_total, ratios) = alternate(&mut lib, raw.as_mut(), options, &run(1))?;
        let row = |callers: &str, engine, sample, ratios| Row {
            adapter,
            mode,
            users,
            callers: callers.to_owned(),
            engine,
            sample,
            ratios,
        };
        eprintln!(
            "[{adapter} {users}] {mode}: library {:.0} ops/s, raw {:.0} ops/s",
            lib_total.ops_per_sec(),
            raw_total.ops_per_sec()
        );
        rows.push(row("1", "library", lib_total, ratios));
        if raw.is_some() {
            rows.push(row("1", "raw", raw_total, Vec::new()));
        }
        if users == small {
            for callers in CALLERS {
                let sample: Sample = lib.ask(&run(callers))?;
                eprintln!(
                    "[{adapter} {users}] {mode}: {callers} callers {:.0} ops/s",
                    sample.ops_per_sec()
                );
                rows.push(row(&callers.to_string(), "library", sample, Vec::new()));
                // Only the PostgreSQL baseline runs concurrent callers,
                // each on a connection of its own.
                if let (Some(raw), Adapter::Postgres) = (raw.as_mut(), adapter) {
                    let sample: Sample = raw.ask(&run(callers))?;
                    eprintln!(
                        "[{adapter} {users}] {mode}: raw, {callers} callers {:.0} ops/s",
                        sample.ops_per_sec()
                    );
                    rows.push(row(&callers.to_string(), "raw", sample, Vec::new()));
                }
            }
            let same = format!(
                "same {SAME_USER_CALLERS} {} {}",
                options.seconds, options.ops
            );
            let sample: Sample = lib.ask(&same)?;
            rows.push(row(
                &format!("{SAME_USER_CALLERS} same"),
                "library",
                sample,
                Vec::new(),
            ));
        }
        let lib_done = lib.quit()?;
        if let (Some(raw), true) = (raw.as_mut(), adapter.has_inline_writes()) {
            // The same rounds with the adapter's inline writes, in a process
            // of its own (sled allows one open database per directory).
            let mut inline =
                Worker::spawn("lib-inline", adapter, users, &dir.join("lib"), Some(mode))?;
            let _: Ready = inline.receive()?;
            inline.patience = patience;
            let (inline_total, raw_again, ratios) =
                alternate(&mut inline, Some(raw), options, &run(1))?;
            eprintln!(
                "[{adapter} {users}] {mode}: inline library {:.0} ops/s, raw {:.0} ops/s",
                inline_total.ops_per_sec(),
                raw_again.ops_per_sec()
            );
            rows.push(row("1", "inline", inline_total, ratios));
            inline.quit()?;
        }
        memory.push(Memory {
            adapter,
            users,
            mode,
            preload_secs: ready.preload_secs,
            load_kib: ready.load_rss_kib,
            run_kib: lib_done.rss_kib.max(opened.load_rss_kib),
            raw_kib: None,
        });
    }
    let raw_done = match raw {
        Some(raw) => Some(raw.quit()?),
        None => None,
    };
    if let Some(last) = memory.last_mut() {
        last.raw_kib = raw_done.and_then(|d| d.rss_kib);
    }
    // The databases of this size are no longer needed: free the disk.
    let _ = std::fs::remove_dir_all(&dir);
    for db in &databases {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name());
        if let Err(e) = postgres_sql(&postgres_admin(db), &drop) {
            eprintln!("could not drop PostgreSQL database {}: {e}", db.name());
        }
    }
    Ok((rows, memory))
}

/// Alternates `options.rounds` rounds of `command` on the library and the
/// raw baseline (library first, then raw first, ...), so that drift of the
/// machine cancels out. Returns both totals and the ratio of each pair.
fn alternate(
    lib: &mut Worker,
    mut raw: Option<&mut Worker>,
    options: &Options,
    command: &str,
) -> Result<(Sample, Sample, Vec<f64>), Failure> {
    let mut lib_total = Sample::default();
    let mut raw_total = Sample::default();
    let mut ratios = Vec::new();
    for r in 0..options.rounds {
        let (lib_round, raw_round) = match raw.as_deref_mut() {
            Some(raw) if r % 2 == 1 => {
                let raw_round: Sample = raw.ask(command)?;
                (lib.ask::<Sample>(command)?, Some(raw_round))
            }
            Some(raw) => {
                let lib_round: Sample = lib.ask(command)?;
                (lib_round, Some(raw.ask::<Sample>(command)?))
            }
            None => (lib.ask::<Sample>(command)?, None),
        };
        if let Some(raw_round) = raw_round {
            ratios.push(lib_round.ops_per_sec() / raw_round.ops_per_sec());
            raw_total.add(&raw_round);
        }
        lib_total.add(&lib_round);
    }
    Ok((lib_total, raw_total, ratios))
}

fn print_machine(dir: &Path) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or("unknown".to_owned(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1048576.0)
        });
    println!(
        "machine: {cpus} CPUs ({cpu}), {memory} memory; databases in {}",
        dir.display()
    );
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn print_table(rows: &[Row], memory: &[Memory]) {
    println!();
    println!(
        "{:<7} {:<8} {:>9} {:>7} {:<8} {:>10} {:>9} {:>9} {:>7} {:>9} {:>7} {:>9}",
        "adapter",
        "mode",
        "users",
        "callers",
        "engine",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "batch",
        "CPU µs",
        "ctx",
        "lib/raw"
    );
    for row in rows {
        let s = &row.sample;
        let batch = s.batch().map_or("-".to_owned(), |b| format!("{b:.1}"));
        let ratio = measure::median(&row.ratios).map_or("-".to_owned(), |r| format!("{r:.2}"));
        let callers = if s.refused > 0 {
            format!("{}*", row.callers)
        } else {
            row.callers.clone()
        };
        println!(
            "{:<7} {:<8} {:>9} {:>7} {:<8} {:>10.0} {:>9.1} {:>9.1} {:>7} {:>9.1} {:>7.1} {:>9}",
            row.adapter.name(),
            row.mode.name(),
            row.users,
            callers,
            row.engine,
            s.ops_per_sec(),
            micros(s.latencies.quantile(0.5)),
            micros(s.latencies.quantile(0.99)),
            batch,
            s.cpu_micros_per_op(),
            s.switches_per_op(),
            ratio
        );
    }
    println!(
        "(batch: commands per SQLite or PostgreSQL transaction or sled sync; CPU µs and \
         ctx: CPU time and context switches per command, all threads of the process (not \
         the PostgreSQL server's); lib/raw: median of the per-round ratios; * some \
         commands refused as expected on one user)"
    );
    println!();
    println!(
        "{:<7} {:>9} {:<8} {:>11} {:>14} {:>13} {:>13}",
        "adapter", "users", "mode", "preload s", "load peak MiB", "run peak MiB", "raw peak MiB"
    );
    let mib = |kib: Option<u64>| kib.map_or("-".to_owned(), |k| format!("{}", k / 1024));
    for m in memory {
        println!(
            "{:<7} {:>9} {:<8} {:>11.1} {:>14} {:>13} {:>13}",
            m.adapter.name(),
            m.users,
            m.mode.name(),
            m.preload_secs,
            mib(m.load_kib),
            mib(m.run_kib),
            mib(m.raw_kib)
        );
    }
    println!();
}

fn print_figures(rows: &[Row], memory: &[Memory], sizes: &[usize]) {
    let find = |adapter: Adapter, mode: Mode, users: usize, callers: &str, engine: &str| {
        rows.iter().find(|r| {
            r.adapter == adapter
                && r.mode == mode
                && r.users == users
                && r.callers == callers
                && r.engine == engine
        })
    };
    let adapters: Vec<Adapter> = {
        let mut seen = Vec::new();
        for row in rows {
            if !seen.contains(&row.adapter) {
                seen.push(row.adapter);
            }
        }
        seen
    };
    let (small, large) = (sizes[0], sizes[sizes.len() - 1]);
    for (engine, figure) in [("library", "ratio"), ("inline", "ratio-inline")] {
        for &adapter in &adapters {
            for &mode in adapter.modes() {
                for &users in sizes {
                    if let Some(ratio) = find(adapter, mode, users, "1", engine)
                        .and_then(|r| measure::median(&r.ratios))
                    {
                        println!("{figure} {adapter} {mode} {users} {ratio:.2}");
                    }
                }
            }
        }
    }
    for &adapter in &adapters {
        for &mode in adapter.modes() {
            let at = |users| find(adapter, mode, users, "1", "library");
            if let (Some(s), Some(l)) = (at(small), at(large)) {
                if small != large {
                    let scale = l.sample.ops_per_sec() / s.sample.ops_per_sec();
                    println!("scale {adapter} {mode} {scale:.2}");
                }
            }
        }
    }
    for &adapter in &adapters {
        for &mode in adapter.modes() {
            let lib64 = find(adapter, mode, small, "64", "library");
            let raw64 = find(adapter, mode, small, "64", "raw");
            if let (Some(lib64), Some(raw64)) = (lib64, raw64) {
                let ratio = lib64.sample.ops_per_sec() / raw64.sample.ops_per_sec();
                println!("ratio-64 {adapter} {mode} {small} {ratio:.2}");
            }
        }
    }
    for &adapter in &adapters {
        for &mode in adapter.modes() {
            for (engine, figure) in [("library", "group"), ("raw", "group-raw")] {
                let one = find(adapter, mode, small, "1", engine);
                let many = find(adapter, mode, small, "64", engine);
                if let (Some(one), Some(many)) = (one, many) {
                    let group = many.sample.ops_per_sec() / one.sample.ops_per_sec();
                    println!("{figure} {adapter} {mode} {group:.2}");
                }
            }
        }
    }
    for &adapter in &adapters {
        // The worst peak of a process serving the large database, over the
        // modes (each mode runs in a process of its own). The bulk load's
        // peak is in the table.
        let peak = memory
            .iter()
            .filter(|m| m.adapter == adapter && m.users == large)
            .filter_map(|m| m.run_kib)
            .max();
        if let Some(kib) = peak {
            println!("rss {adapter} {}", kib / 1024);
        }
    }
    for row in rows {
        println!(
            "ops {} {} {} {} {} {:.0}",
            row.adapter,
            row.mode,
            row.users,
            row.callers.replace(' ', "-"),
            row.engine,
            row.sample.ops_per_sec()
        );
    }
}

/// PostgreSQL's targets, each with the figures it is made of.
fn print_targets(rows: &[Row], memory: &[Memory], sizes: &[usize]) {
    let adapter = Adapter::Postgres;
    let mode = Mode::Durable;
    let find = |users: usize, callers: &str, engine: &str| {
        rows.iter().find(|r| {
            r.adapter == adapter
                && r.mode == mode
                && r.users == users
                && r.callers == callers
                && r.engine == engine
        })
    };
    let (small, large) = (sizes[0], sizes[sizes.len() - 1]);
    let verdict = |met: bool| if met { "met" } else { "MISSED" };
    let ops = |row: &Row| row.sample.ops_per_sec();
    if !rows.iter().any(|r| r.adapter == adapter) {
        return;
    }
    println!();
    for users in sizes {
        let (Some(lib), Some(raw)) = (find(*users, "1", "library"), find(*users, "1", "raw"))
        else {
            continue;
        };
        let Some(ratio) = measure::median(&lib.ratios) else {
            continue;
        };
        println!(
            "target postgres durable one caller, {users} users: library {:.0} ops/s, raw {:.0} \
             ops/s, library/raw {ratio:.2} (median of the round pairs; target >= 0.85: {})",
            ops(lib),
            ops(raw),
            verdict(ratio >= 0.85)
        );
    }
    if let (Some(one), Some(many)) = (find(small, "1", "library"), find(small, "64", "library")) {
        let group = ops(many) / ops(one);
        let raw = match (find(small, "1", "raw"), find(small, "64", "raw")) {
            (Some(raw1), Some(raw64)) => format!(
                "; raw 64 callers {:.0} ops/s ({:.2}x raw's one caller; library/raw {:.2})",
                ops(raw64),
                ops(raw64) / ops(raw1),
                ops(many) / ops(raw64)
            ),
            _ => String::new(),
        };
        println!(
            "target postgres durable 64 callers, {small} users: library {:.0} ops/s, {group:.2}x \
             its one caller's {:.0} (target >= 10: {}){raw}",
            ops(many),
            ops(one),
            verdict(group >= 10.0)
        );
    }
    let peak = memory
        .iter()
        .filter(|m| m.adapter == adapter && m.users == large)
        .filter_map(|m| m.run_kib)
        .max();
    if let Some(kib) = peak {
        let target = if large >= 1_000_000 {
            verdict(kib <= 64 * 1024).to_owned()
        } else {
            "the target is for 1,000,000 users".to_owned()
        };
        println!(
            "target postgres rss, {large} users: library process peak {} MiB, worst of its modes \
             (target <= 64 MiB: {target})",
            kib / 1024
        );
    }
    if small != large {
        if let (Some(s), Some(l)) = (find(small, "1", "library"), find(large, "1", "library")) {
            let scale = ops(l) / ops(s);
            println!(
                "target postgres durable scale: one caller {:.0} ops/s at {large} users, {:.0} at \
                 {small}, {scale:.2} (target >= 0.8: {})",
                ops(l),
                ops(s),
                verdict(scale >= 0.8)
            );
        }
    }
}

/// The child processes: one engine (library or raw) on one database.
mod child {
    use super::*;

    /// `--child load ADAPTER USERS DIR` loads the library's database and
    /// exits; `--child lib ADAPTER USERS DIR MODE` measures the library in
    /// one mode (`lib-inline`: with the adapter's inline writes) and `--child raw ADAPTER USERS DIR` loads the raw baseline
    /// and measures it, in the modes it is sent, with commands on stdin.
    pub(super) fn main(args: &[String]) -> Result<(), Failure> {
        let (engine, adapter, users, dir, mode) = match args {
            [engine, adapter, users, dir] => (engine, adapter, users, dir, None),
            [engine, adapter, users, dir, mode] => (engine, adapter, users, dir, Some(mode)),
            _ => return Err("--child needs ENGINE ADAPTER USERS DIR [MODE]".into()),
        };
        let adapter = Adapter::parse(adapter).ok_or("unknown adapter")?;
        let users: usize = users.parse()?;
        let dir = PathBuf::from(dir);
        let mut engine: Box<dyn Engine> = match (engine.as_str(), mode) {
            ("load", None) => return Library::load_only(adapter, users, &dir),
            (engine @ ("lib" | "lib-inline"), Some(mode)) => {
                let mode = Mode::parse(mode).ok_or("unknown mode")?;
                let inline = engine == "lib-inline";
                Box::new(Library::open(adapter, users, &dir, mode, inline)?)
            }
            ("raw", None) => Box::new(Raw::load(adapter, users, &dir)?),
            _ => return Err(format!("unknown child {args:?}").into()),
        };
        let stdin = std::io::stdin();
        let mut stdout = std::io::stdout();
        for line in stdin.lock().lines() {
            let line = line?;
            let words: Vec<&str> = line.split_whitespace().collect();
            let reply = match words.as_slice() {
                ["mode", mode] => {
                    engine.mode(Mode::parse(mode).ok_or("unknown mode")?)?;
                    serde_json::to_string(&Done::default())?
                }
                ["run", callers, secs, ops] => {
                    let limit = Limit::new(secs.parse()?, ops.parse()?);
                    serde_json::to_string(&engine.run(callers.parse()?, limit)?)?
                }
                ["same", callers, secs, ops] => {
                    let limit = Limit::new(secs.parse()?, ops.parse()?);
                    serde_json::to_string(&engine.same_user(callers.parse()?, limit)?)?
                }
                ["quit"] => {
                    engine.finish()?;
                    drop(engine);
                    let done = Done {
                        rss_kib: measure::peak_rss_kib(),
                    };
                    writeln!(stdout, "{}", serde_json::to_string(&done)?)?;
                    return Ok(());
                }
                _ => return Err(format!("unknown command {line}").into()),
            };
            writeln!(stdout, "{reply}")?;
            stdout.flush()?;
        }
        Ok(())
    }

    /// When a round ends: after a number of commands, or after a time.
    #[derive(Debug, Clone, Copy)]
    pub(super) struct Limit {
        until: Duration,
        ops: u64,
    }

    impl Limit {
        fn new(secs: f64, ops: u64) -> Self {
            Limit {
                until: Duration::from_secs_f64(secs),
                ops,
            }
        }

        fn more(&self, started: Instant, done: u64) -> bool {
            if self.ops > 0 {
                done < self.ops
            } else {
                started.elapsed() < self.until
            }
        }
    }

    /// Announces the loaded database and starts the peak memory afresh.
    fn ready(preload: Duration) -> Result<(), Failure> {
        let ready = Ready {
            preload_secs: preload.as_secs_f64(),
            load_rss_kib: measure::peak_rss_kib(),
        };
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", serde_json::to_string(&ready)?)?;
        stdout.flush()?;
        measure::reset_peak_rss();
        Ok(())
    }

    pub(super) trait Engine {
        fn mode(&mut self, mode: Mode) -> Result<(), Failure>;
        /// Called before quitting.
        fn finish(&mut self) -> Result<(), Failure> {
            Ok(())
        }
        fn run(&mut self, callers: usize, limit: Limit) -> Result<Sample, Failure>;
        fn same_user(&mut self, callers: usize, limit: Limit) -> Result<Sample, Failure>;
    }

    /// The library: `UserService` over the adapter, in one mode.
    pub(super) struct Library {
        dir: PathBuf,
        users: usize,
        runtime: tokio::runtime::Runtime,
        handle: Handle,
        service: (UserService, Caller),
        /// Which users are locked now, so each command is a valid transition.
        locked: Arc<Vec<AtomicBool>>,
        cursor: u64,
    }

    /// Set to `library`, the PostgreSQL loader creates the users through
    /// the adapter (512 concurrent raw commits, relaxed, batches of up to
    /// 1000) instead of with `COPY`.
    const POSTGRES_LOAD_VAR: &str = "USERSTATE_BENCH_POSTGRES_LOAD";

    fn postgres_loads_through_library() -> bool {
        std::env::var(POSTGRES_LOAD_VAR).is_ok_and(|v| v == "library")
    }

    /// Where a measuring process leaves the users' lock states and its
    /// position for the next one (the next mode) on the same database.
    const STATE_FILE: &str = "lock-states";

    impl Library {
        /// Loads the database and exits: the peak memory of the bulk load
        /// stays out of the measuring processes'.
        pub(super) fn load_only(adapter: Adapter, users: usize, dir: &Path) -> Result<(), Failure> {
            if adapter == Adapter::Postgres && !postgres_loads_through_library() {
                // The adapter creates its schema; the rows go in with COPY.
                let connection = fixture::connection(dir)?;
                userstate_postgres::PostgresOptions::new(connection.as_str()).migrate()?;
                let took =
                    raw_postgres::copy_preload(&connection, users, userstate::Timestamp::now())?;
                return ready(took);
            }
            let runtime = fixture::runtime();
            let handle = fixture::open_for_loading(adapter, dir)?;
            let mut preload = fixture::preload(&runtime, &handle, users)?;
            drop(handle);
            if adapter == Adapter::Postgres {
                // As `copy_preload` leaves its tables.
                let started = Instant::now();
                raw_postgres::vacuum_analyze(&fixture::connection(dir)?)?;
                preload += started.elapsed();
            }
            ready(preload)
        }

        /// Opens the loaded database in `mode` (memory loads its own).
        /// With `inline`, the adapter's `inline_writes` option is on.
        pub(super) fn open(
            adapter: Adapter,
            users: usize,
            dir: &Path,
            mode: Mode,
            inline: bool,
        ) -> Result<Self, Failure> {
            let runtime = fixture::runtime();
            let (handle, preload) = match adapter {
                Adapter::Memory => {
                    let handle = fixture::open(adapter, mode, dir)?;
                    let preload = fixture::preload(&runtime, &handle, users)?;
                    (handle, preload)
                }
                _ => (
                    fixture::open_with(adapter, mode, dir, inline)?,
                    Duration::ZERO,
                ),
            };
            let service = fixture::service(handle.repository());
            let (locked, cursor) = match std::fs::read(dir.join(STATE_FILE)) {
                Ok(bytes) if bytes.len() == 8 + users => {
                    let cursor = u64::from_le_bytes(bytes[..8].try_into()?);
                    let locked = bytes[8..].iter().map(|b| AtomicBool::new(*b == 1));
                    (locked.collect(), cursor)
                }
                _ => {
                    let locked = (0..users).map(|i| AtomicBool::new(fixture::preloaded_locked(i)));
                    (locked.collect(), 0)
                }
            };
            ready(preload)?;
            Ok(Library {
                dir: dir.to_path_buf(),
                users,
                runtime,
                handle,
                service,
                locked: Arc::new(locked),
                cursor,
            })
        }

        fn service(&self) -> Result<(UserService, Caller), Failure> {
            Ok(self.service.clone())
        }

        fn counters(&self) -> (u64, u64) {
            self.handle.commit_counters()
        }
    }

    /// One lock or unlock through the service, whichever is valid for `u`.
    async fn toggle(
        service: &UserService,
        admin: &Caller,
        locked: &[AtomicBool],
        u: usize,
    ) -> userstate::Result<()> {
        let id = fixture::user_id(u);
        let lock = !locked[u].load(Ordering::Relaxed);
        if lock {
            service.lock(admin, &id, LockRequest::new()).await?;
        } else {
            service.unlock(admin, &id, None).await?;
        }
        locked[u].store(lock, Ordering::Relaxed);
        Ok(())
    }

    impl Engine for Library {
        fn mode(&mut self, _mode: Mode) -> Result<(), Failure> {
            Err("a library process runs in the mode it was started in".into())
        }

        fn finish(&mut self) -> Result<(), Failure> {
            let mut bytes = self.cursor.to_le_bytes().to_vec();
            bytes.extend(
                self.locked
                    .iter()
                    .map(|l| u8::from(l.load(Ordering::Relaxed))),
            );
            std::fs::write(self.dir.join(STATE_FILE), bytes)?;
            Ok(())
        }

        fn run(&mut self, callers: usize, limit: Limit) -> Result<Sample, Failure> {
            let (service, admin) = self.service()?;
            let before = self.counters();
            let usage = Usage::now();
            let started = Instant::now();
            let start_cursor = self.cursor;
            let users = self.users;
            let mut sample = Sample::default();
            if callers == 1 {
                let locked = self.locked.clone();
                let (ops, latencies) = self.runtime.block_on(async {
                    let mut latencies = Histogram::new();
                    let mut ops = 0;
                    while limit.more(started, ops) {
                        let u = fixture::visit(start_cursor + ops, users);
                        let t = Instant::now();
                        toggle(&service, &admin, &locked, u).await?;
                        latencies.record(t.elapsed());
                        ops += 1;
                    }
                    Ok::<_, userstate::Error>((ops, latencies))
                })?;
                sample.ops = ops;
                sample.latencies = latencies;
            } else {
                let per_caller = users / callers;
                let tasks: Vec<_> = (0..callers)
                    .map(|caller| {
                        let (service, admin) = (service.clone(), admin.clone());
                        let locked = self.locked.clone();
                        self.runtime.spawn(async move {
                            let mut latencies = Histogram::new();
                            let mut ops = 0;
                            while limit.more(started, ops) {
                                let k = start_cursor + ops;
                                let u = fixture::visit(k, per_caller) * callers + caller;
                                let t = Instant::now();
                                toggle(&service, &admin, &locked, u).await?;
                                latencies.record(t.elapsed());
                                ops += 1;
                            }
                            Ok::<_, userstate::Error>((ops, latencies))
                        })
                    })
                    .collect();
                for task in tasks {
                    let (ops, latencies) = self.runtime.block_on(task)??;
                    sample.ops += ops;
                    sample.latencies.merge(&latencies);
                }
            }
            sample.secs = started.elapsed().as_secs_f64();
            usage.finish(&mut sample);
            self.cursor += sample.ops;
            let after = self.counters();
            sample.commits = (after.0 - before.0, after.1 - before.1);
            sample.latencies = sample.latencies.compact();
            Ok(sample)
        }

        fn same_user(&mut self, callers: usize, limit: Limit) -> Result<Sample, Failure> {
            let (service, admin) = self.service()?;
            let before = self.counters();
            let usage = Usage::now();
            let started = Instant::now();
            // User 1 is preloaded active; every caller locks and unlocks it
            // in turn, and half of the commands find it already so.
            let id = fixture::user_id(1);
            let tasks: Vec<_> = (0..callers)
                .map(|caller| {
                    let (service, admin, id) = (service.clone(), admin.clone(), id.clone());
                    self.runtime.spawn(async move {
                        let mut latencies = Histogram::new();
                        let (mut ops, mut refused) = (0u64, 0u64);
                        while limit.more(started, ops) {
                            let t = Instant::now();
                            let outcome = if (ops + caller as u64).is_multiple_of(2) {
                                service.lock(&admin, &id, LockRequest::new()).await
                            } else {
                                service.unlock(&admin, &id, None).await
                            };
                            match outcome {
                                Ok(_) => {}
                                Err(e) if e.kind() == ErrorKind::FailedPrecondition => refused += 1,
                                Err(e) => return Err(e),
                            }
                            latencies.record(t.elapsed());
                            ops += 1;
                        }
                        Ok((ops, refused, latencies))
                    })
                })
                .collect();
            let mut sample = Sample::default();
            for task in tasks {
                let (ops, refused, latencies) = self.runtime.block_on(task)??;
                sample.ops += ops;
                sample.refused += refused;
                sample.latencies.merge(&latencies);
            }
            sample.secs = started.elapsed().as_secs_f64();
            usage.finish(&mut sample);
            let after = self.counters();
            sample.commits = (after.0 - before.0, after.1 - before.1);
            sample.latencies = sample.latencies.compact();
            // The user's lock state is unknown now: the single-user runs
            // never visit user 1 again unless they cycle, so mark it by what
            // the store says.
            let now_locked = self.runtime.block_on(service.get(&admin, &id))?.state
                == userstate::UserState::Locked;
            self.locked[1].store(now_locked, Ordering::Relaxed);
            Ok(sample)
        }
    }

    /// The raw baseline of one adapter.
    pub(super) struct Raw {
        store: Option<RawStore>,
        users: usize,
        cursor: u64,
    }

    enum RawStore {
        Sqlite(RawSqlite),
        Sled(RawSled),
        Postgres(RawPostgres),
    }

    impl RawStore {
        fn open(adapter: Adapter, dir: &Path, durable: bool) -> Result<Self, Failure> {
            Ok(match adapter {
                Adapter::Sqlite => RawStore::Sqlite(RawSqlite::open(&dir.join("raw.db"), durable)?),
                Adapter::Sled => RawStore::Sled(RawSled::open(&dir.join("raw.sled"), durable)?),
                Adapter::Postgres => {
                    RawStore::Postgres(RawPostgres::open(&fixture::connection(dir)?, durable)?)
                }
                Adapter::Memory => return Err("memory has no raw baseline".into()),
            })
        }

        fn toggle_lock(&self, i: usize) -> Result<bool, Failure> {
            match self {
                RawStore::Sqlite(raw) => Ok(raw.toggle_lock(i)?),
                RawStore::Sled(raw) => raw.toggle_lock(i),
                RawStore::Postgres(raw) => raw.toggle_lock(i),
            }
        }
    }

    impl Raw {
        pub(super) fn load(adapter: Adapter, users: usize, dir: &Path) -> Result<Self, Failure> {
            let started = Instant::now();
            let mut store = RawStore::open(adapter, dir, false)?;
            match &mut store {
                RawStore::Sqlite(raw) => raw.preload(users)?,
                RawStore::Sled(raw) => raw.preload(users)?,
                RawStore::Postgres(raw) => {
                    raw.preload(users)?;
                }
            }
            ready(started.elapsed())?;
            Ok(Raw {
                store: Some(store),
                users,
                cursor: 0,
            })
        }
    }

    impl Engine for Raw {
        fn mode(&mut self, mode: Mode) -> Result<(), Failure> {
            // Switched in place: reopening sled in the same process is where
            // its 0.34 line is least robust.
            let durable = mode == Mode::Durable;
            match self.store.as_mut().ok_or("no store")? {
                RawStore::Sqlite(raw) => raw.set_durable(durable)?,
                RawStore::Sled(raw) => raw.set_durable(durable),
                RawStore::Postgres(raw) => raw.set_durable(durable),
            }
            Ok(())
        }

        fn run(&mut self, callers: usize, limit: Limit) -> Result<Sample, Failure> {
            if let Some(RawStore::Postgres(raw)) = self.store.as_mut() {
                // Its callers' connections are opened outside the round.
                raw.connect(callers)?;
                let usage = Usage::now();
                let more = move |started, done| limit.more(started, done);
                let mut sample = raw.run(callers, self.users, self.cursor, more)?;
                usage.finish(&mut sample);
                self.cursor += sample.ops;
                raw.connect(1)?;
                return Ok(sample);
            }
            if callers != 1 {
                return Err("the raw baseline runs one caller".into());
            }
            let store = self.store.as_ref().ok_or("no mode chosen")?;
            let usage = Usage::now();
            let started = Instant::now();
            let mut sample = Sample::default();
            let mut latencies = Histogram::new();
            while limit.more(started, sample.ops) {
                let u = fixture::visit(self.cursor + sample.ops, self.users);
                let t = Instant::now();
                store.toggle_lock(u)?;
                latencies.record(t.elapsed());
                sample.ops += 1;
            }
            sample.secs = started.elapsed().as_secs_f64();
            usage.finish(&mut sample);
            sample.latencies = latencies.compact();
            self.cursor += sample.ops;
            Ok(sample)
        }

        fn same_user(&mut self, _callers: usize, _limit: Limit) -> Result<Sample, Failure> {
            Err("the raw baseline runs one caller".into())
        }
    }
}
