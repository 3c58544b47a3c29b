//! What the checks of a database cost: opens at each `CheckAtOpen`, the
//! whole `verify()`, SQLite's own `quick_check` and `integrity_check`, and
//! sled's open after an unclean stop (on a copy first), at each size.
//!
//! ```text
//! cargo run --release -p userstate-benches --bin checks -- [--users 100000,1000000] [--dir PATH]
//! ```
//!
//! Each database is loaded once (relaxed, as the comparison program loads),
//! closed, then opened and checked with a warm page cache; one line per
//! figure: `<what> <adapter> <users> <seconds>`, and `size <adapter> <users>
//! <MiB>`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use userstate::storage::{CheckAtOpen, CommitMark, Recorded};
use userstate_benches::fixture::{self, Adapter};
use userstate_sled::SledOptions;
use userstate_sqlite::SqliteOptions;

struct Args {
    sizes: Vec<usize>,
    dir: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        sizes: vec![100_000, 1_000_000],
        dir: std::env::temp_dir(),
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--users" => {
                args.sizes = value()?
                    .split(',')
                    .map(|n| n.parse().map_err(|e| format!("--users: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--dir" => args.dir = PathBuf::from(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    match args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("checks: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let runtime = fixture::runtime();
    for &users in &args.sizes {
        for adapter in [Adapter::Sqlite, Adapter::Sled] {
            let dir = tempfile::Builder::new()
                .prefix("userstate-checks")
                .tempdir_in(&args.dir)
                .map_err(|e| e.to_string())?;
            {
                let handle =
                    fixture::open_for_loading(adapter, dir.path()).map_err(|e| e.to_string())?;
                let took = fixture::preload(&runtime, &handle, users).map_err(|e| e.to_string())?;
                eprintln!("loaded {} {users} in {took:.1?}", adapter.name());
            }
            let path = fixture::database_path(adapter, dir.path());
            println!(
                "size {} {users} {:.0}",
                adapter.name(),
                size(&path) as f64 / (1024.0 * 1024.0)
            );
            match adapter {
                Adapter::Sqlite => sqlite(&path, users, &runtime)?,
                _ => sled(&path, users, &runtime)?,
            }
        }
    }
    Ok(())
}

fn sqlite(path: &Path, users: usize, runtime: &tokio::runtime::Runtime) -> Result<(), String> {
    for check in [
        CheckAtOpen::Nothing,
        CheckAtOpen::Structure,
        CheckAtOpen::Everything,
    ] {
        let took = timed(|| {
            SqliteOptions::new()
                .check_at_open(check)
                .open(path)
                .map(drop)
        })?;
        println!("open-{check:?} sqlite {users} {:.3}", took.as_secs_f64());
    }
    for pragma in ["quick_check", "integrity_check"] {
        let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let answer: String = conn
            .query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))
            .map_err(|e| e.to_string())?;
        let took = started.elapsed();
        if answer != "ok" {
            return Err(format!("{pragma}: {answer}"));
        }
        println!("{pragma} sqlite {users} {:.3}", took.as_secs_f64());
    }
    let repo = SqliteOptions::new()
        .check_at_open(CheckAtOpen::Nothing)
        .open(path)
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let verification = runtime.block_on(repo.verify()).map_err(|e| e.to_string())?;
    println!(
        "verify sqlite {users} {:.3}",
        started.elapsed().as_secs_f64()
    );
    sound(verification.is_sound(), verification.users, users)
}

fn sled(path: &Path, users: usize, runtime: &tokio::runtime::Runtime) -> Result<(), String> {
    for check in [CheckAtOpen::Nothing, CheckAtOpen::Everything] {
        let took = timed(|| SledOptions::new().check_at_open(check).open(path).map(drop))?;
        println!("open-{check:?} sled {users} {:.3}", took.as_secs_f64());
    }
    // As after a crash: the mark holds no seal of the data file, so the
    // open copies the database and recovers the copy first.
    let mark = path.join("userstate.commits");
    for check in [CheckAtOpen::Nothing, CheckAtOpen::Everything] {
        let committed = match Recorded::read(&mark).map_err(|e| e.to_string())? {
            Recorded::Committed { committed, .. } => committed,
            other => return Err(format!("unexpected mark {other:?}")),
        };
        drop(CommitMark::open(&mark, committed, false).map_err(|e| e.to_string())?);
        let took = timed(|| SledOptions::new().check_at_open(check).open(path).map(drop))?;
        println!(
            "open-unclean-{check:?} sled {users} {:.3}",
            took.as_secs_f64()
        );
    }
    let repo = SledOptions::new()
        .check_at_open(CheckAtOpen::Nothing)
        .open(path)
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let verification = runtime.block_on(repo.verify()).map_err(|e| e.to_string())?;
    println!("verify sled {users} {:.3}", started.elapsed().as_secs_f64());
    sound(verification.is_sound(), verification.users, users)
}

fn sound(sound: bool, read: u64, users: usize) -> Result<(), String> {
    if sound && read == users as u64 {
        Ok(())
    } else {
        Err(format!("verify found damage, or {read} users of {users}"))
    }
}

/// How long `open` took, open and close included.
fn timed(open: impl FnOnce() -> userstate::Result<()>) -> Result<Duration, String> {
    let started = Instant::now();
    open().map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

/// Bytes of a file, or of every file under a directory.
fn size(path: &Path) -> u64 {
    match std::fs::read_dir(path) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| size(&entry.path()))
            .sum(),
        Err(_) => std::fs::metadata(path).map_or(0, |m| m.len()),
    }
}
