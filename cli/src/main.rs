//! `userstate`, the operator's command line for a userstate database on
//! any backend: read users, their histories and the change feed, lock and
//! unlock as an operator (recorded as the events' actor), get and set
//! lockout policies, verify a database, and export, import or migrate it
//! between backends with every user, event, feed order and policy.
//!
//! ```text
//! $ export USERSTATE_DB=sqlite:/var/lib/identity/users.sqlite3
//! $ userstate users unlock admin --reason "locked out by the policy; ticket 4711"
//! $ userstate verify
//! $ userstate migrate --to postgres://identity@db.internal/identity
//! ```
//!
//! Every command takes `--db SPEC` (or `USERSTATE_DB`) as
//! [`userstate_backend::open`] reads it, prints a table (or, with `--json`,
//! JSON), and exits 0 when it did what it was asked, 1 when it found
//! problems or was refused, 2 for a usage or configuration error.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod commands;
mod output;
mod record;
mod transfer;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use userstate::{OrgId, UserState};

/// What the command line says.
#[derive(Debug, Parser)]
#[command(
    name = "userstate",
    version,
    about = "The operator's tool for a userstate database"
)]
struct Cli {
    /// The database: sqlite:PATH, sled:PATH, postgres://URL or postgres:CONNSTRING.
    #[arg(long, env = "USERSTATE_DB", global = true, value_name = "SPEC")]
    db: Option<String>,
    /// Machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// The operator's login name, recorded as `operator:NAME` on what
    /// commands write (default: the login name of the account).
    #[arg(long, env = "USERSTATE_OPERATOR", global = true, value_name = "NAME")]
    operator: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read users, or change their state as the operator.
    #[command(subcommand)]
    Users(Users),
    /// The change feed: every committed event in commit order.
    Events(EventsArgs),
    /// Lockout policies.
    #[command(subcommand)]
    Policy(Policy),
    /// Check the whole database; prints each finding and exits 1 if any.
    Verify,
    /// Write every policy and event as JSON Lines (to stdout by default).
    Export {
        /// The file to write.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Read an export into an empty database.
    Import {
        /// The export to read (stdin by default).
        #[arg(long, short)]
        input: Option<PathBuf>,
        #[command(flatten)]
        copy: CopyArgs,
    },
    /// Copy every user, event, feed order and policy to another backend,
    /// then compare the copy with the source.
    Migrate {
        /// The source (default: --db).
        #[arg(long, value_name = "SPEC")]
        from: Option<String>,
        /// The target.
        #[arg(long, value_name = "SPEC")]
        to: String,
        #[command(flatten)]
        copy: CopyArgs,
    },
}

#[derive(Debug, Args)]
struct CopyArgs {
    /// Go on into a database that is not empty: after an interrupted import
    /// or migrate of the same source, what the target already has is
    /// skipped.
    #[arg(long)]
    resume: bool,
    /// Events written per commit.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
}

#[derive(Debug, Subcommand)]
enum Users {
    /// Users by organisation and id, in the state in force now.
    List {
        /// Only this organisation's (default: every organisation's).
        #[arg(long)]
        org: Option<OrgId>,
        /// Only users in this state (`deleted` lists removed users).
        #[arg(long)]
        state: Option<UserState>,
        /// Start after this user id (with --org).
        #[arg(long, requires = "org")]
        after: Option<String>,
        /// At most this many users.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// One user, removed ones included.
    Show {
        /// The user's id.
        id: String,
    },
    /// A user's events, oldest first.
    History {
        /// The user's id.
        id: String,
        /// Start after this sequence.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many events.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Lock a user, as the operator.
    Lock(Reasoned),
    /// Unlock a user (a lockout too), as the operator.
    Unlock(Reasoned),
    /// Deactivate a user, as the operator.
    Deactivate(Reasoned),
    /// Reactivate a user, as the operator.
    Reactivate(Reasoned),
}

#[derive(Debug, Args)]
struct Reasoned {
    /// The user's id, in whichever organisation it is.
    id: String,
    /// Why, recorded in the event.
    #[arg(long)]
    reason: Option<String>,
}

#[derive(Debug, Args)]
struct EventsArgs {
    /// Start after this position.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// At most this many events (default: all; with --follow, none).
    #[arg(long)]
    limit: Option<u64>,
    /// Keep following: print each event as it commits, until interrupted.
    #[arg(long)]
    follow: bool,
    /// Only this organisation's events.
    #[arg(long)]
    org: Option<OrgId>,
    /// Only this user's events.
    #[arg(long)]
    user: Option<String>,
    /// Only events of these types (e.g. user.locked), repeatable.
    #[arg(long = "type")]
    types: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Policy {
    /// The lockout policy in force for an organisation, or the instance default.
    Get {
        /// The organisation (default: the instance default).
        #[arg(long)]
        org: Option<OrgId>,
    },
    /// Change fields of the policy of an organisation or of the instance
    /// default; the others keep their values in force.
    Set {
        /// The organisation (default: the instance default).
        #[arg(long)]
        org: Option<OrgId>,
        /// Failed password checks that lock (0: never).
        #[arg(long)]
        max_password: Option<u32>,
        /// Failed checks of one OTP factor that lock (0: never).
        #[arg(long)]
        max_otp: Option<u32>,
        /// A lockout expires after this many milliseconds (0: permanent).
        #[arg(long)]
        lock_duration_ms: Option<u64>,
        /// Each repeated lockout lasts this many times the previous one.
        #[arg(long)]
        duration_growth: Option<u32>,
        /// The longest a growing lockout lasts (0: no bound).
        #[arg(long)]
        max_lock_duration_ms: Option<u64>,
        /// After this many temporary lockouts the next is permanent (0: never).
        #[arg(long)]
        permanent_after: Option<u32>,
        /// Whether failed attempts are shown to callers.
        #[arg(long)]
        show_attempts: Option<bool>,
    },
}

/// Why a command did not succeed, and so its exit code.
#[derive(Debug)]
enum Failure {
    /// Exit 1: the command found problems or was refused; already reported
    /// when the message is empty.
    Refused(String),
    /// Exit 2: the command line or configuration is wrong.
    Usage(String),
}

impl From<userstate::Error> for Failure {
    fn from(e: userstate::Error) -> Self {
        Failure::Refused(format!("{e}"))
    }
}

/// Runs `future` to completion on this thread: the adapters need no
/// particular runtime.
fn wait<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(message)) => {
            if !message.is_empty() {
                eprintln!("userstate: {message}");
            }
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("userstate: {message}");
            ExitCode::from(2)
        }
    }
}
