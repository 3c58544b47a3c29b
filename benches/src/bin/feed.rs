//! What the change feed costs a reader: how fast the whole feed of a
//! preloaded database reads in pages of 1,000 (events/s), and, on SQLite
//! in durable mode, how long a lock takes to reach a subscriber following
//! the feed in the same process (from the call to `lock` to the event in
//! the subscriber's hands, p50 and p99).
//!
//! ```text
//! cargo run --release -p userstate-benches --bin feed -- [--users 100000] [--locks 500] [--dir PATH]
//! ```
//!
//! One line per figure: `feed-read <adapter> <events> <events/s>` and
//! `lock-to-subscriber sqlite <locks> <p50 ms> <p99 ms>`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use userstate::{FeedQuery, LockRequest, UserRepository, MAX_PAGE_SIZE};
use userstate_benches::fixture::{self, Adapter, Mode};

struct Args {
    users: usize,
    locks: usize,
    dir: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        users: 100_000,
        locks: 500,
        dir: std::env::temp_dir(),
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--users" => args.users = value()?.parse().map_err(|e| format!("--users: {e}"))?,
            "--locks" => args.locks = value()?.parse().map_err(|e| format!("--locks: {e}"))?,
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
            eprintln!("feed: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let runtime = fixture::runtime();
    for adapter in [Adapter::Sqlite, Adapter::Sled] {
        let dir = tempfile::Builder::new()
            .prefix("userstate-feed")
            .tempdir_in(&args.dir)
            .map_err(|e| e.to_string())?;
        {
            let handle =
                fixture::open_for_loading(adapter, dir.path()).map_err(|e| e.to_string())?;
            let took =
                fixture::preload(&runtime, &handle, args.users).map_err(|e| e.to_string())?;
            eprintln!("loaded {} {} in {took:.1?}", adapter.name(), args.users);
        }
        let handle =
            fixture::open(adapter, Mode::Durable, dir.path()).map_err(|e| e.to_string())?;
        let repo = handle.repository();
        let (events, took) = runtime.block_on(read_all(repo.as_ref()))?;
        println!(
            "feed-read {} {events} {:.0}",
            adapter.name(),
            events as f64 / took.as_secs_f64()
        );
        if adapter == Adapter::Sqlite {
            let (p50, p99) = runtime.block_on(lock_to_subscriber(repo, args.users, args.locks))?;
            println!(
                "lock-to-subscriber sqlite {} {:.2} {:.2}",
                args.locks,
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}

/// Reads the whole feed in pages of [`MAX_PAGE_SIZE`].
async fn read_all(repo: &dyn UserRepository) -> Result<(usize, Duration), String> {
    let started = Instant::now();
    let mut after = 0;
    let mut events = 0;
    loop {
        let page = repo
            .feed(after, MAX_PAGE_SIZE)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.position;
        events += page.len();
    }
    Ok((events, started.elapsed()))
}

/// Locks `locks` active users one after the other while a subscriber
/// follows the feed for `user.locked`; the time from each call to `lock` to
/// the subscriber holding its event.
async fn lock_to_subscriber(
    repo: std::sync::Arc<dyn UserRepository>,
    users: usize,
    locks: usize,
) -> Result<(Duration, Duration), String> {
    let (service, admin) = fixture::service(repo.clone());
    let mut checkpoint = 0;
    loop {
        let page = repo
            .feed(checkpoint, MAX_PAGE_SIZE)
            .await
            .map_err(|e| e.to_string())?;
        match page.last() {
            Some(last) => checkpoint = last.position,
            None => break,
        }
    }
    let (received, arrivals) = mpsc::channel::<Instant>();
    let query = FeedQuery {
        event_types: vec!["user.locked".to_owned()],
        ..FeedQuery::after(checkpoint, MAX_PAGE_SIZE)
    };
    let mut stream = Box::pin(service.follow(admin.clone(), query));
    let subscriber = tokio::spawn(async move {
        for _ in 0..locks {
            match stream.next().await {
                Some(Ok(_)) => {
                    let _ = received.send(Instant::now());
                }
                _ => return,
            }
        }
    });
    let mut latencies = Vec::with_capacity(locks);
    let mut picked = 0;
    let mut k = 0u64;
    while picked < locks {
        let i = fixture::visit(k, users);
        k += 1;
        if fixture::preloaded_locked(i) {
            continue;
        }
        let id = fixture::user_id(i);
        let started = Instant::now();
        match service.lock(&admin, &id, LockRequest::new()).await {
            Ok(_) => {}
            Err(e) if e.id() == userstate::ids::ALREADY_LOCKED => continue,
            Err(e) => return Err(e.to_string()),
        }
        // The subscriber runs on the runtime's other threads.
        let at = arrivals
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the subscriber did not receive a lock within 10 s".to_owned())?;
        latencies.push(at.saturating_duration_since(started));
        picked += 1;
    }
    subscriber.await.map_err(|e| e.to_string())?;
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}
