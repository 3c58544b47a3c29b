//! `userstate-postgres`: PostgreSQL storage for [`userstate`], for services
//! that run several instances against one shared database.
//!
//! ```no_run
//! use std::sync::Arc;
//! use userstate::{Caller, InMemoryAuthorizer, InitialState, OrgId, Permission, UserId, UserService};
//! use userstate_postgres::PostgresOptions;
//!
//! # fn main() -> userstate::Result<()> {
//! let repository = PostgresOptions::new("host=/run/postgresql dbname=identity").open()?;
//! let acme = OrgId::new("acme")?;
//! let admin = Caller::new(UserId::new("admin")?, acme.clone());
//! let grants = InMemoryAuthorizer::new();
//! grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
//! let service = UserService::new(Arc::new(repository), Arc::new(grants)).with_caller_check(false);
//! futures::executor::block_on(service.create(&admin, &UserId::new("alice")?, InitialState::Active))?;
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! The crate mirrors `userstate-sqlite` file for file: `options` (the
//! builder), `repository` (the [`userstate::UserRepository`]), `engine`
//! (the runtime, the pool and the bounds on calls), `writer` (a batch in
//! one transaction), `reader` (the reads), `watcher` (other processes'
//! commits, for the feed), `layout` (the statements), `record` (what a row
//! holds), `format` (the schema and its version), `verify`, `error`.
//!
//! - **Writes** go through the core's [`GroupCommit`](userstate::storage::GroupCommit):
//!   the commands that queue while a batch commits form the next batch, in
//!   ONE transaction of a few pipelined round trips (see `writer`), each
//!   decided on its user as read inside it.
//! - **Many instances**: every writing transaction takes the schema's one
//!   feed row lock first and holds it to its commit. Instances therefore
//!   commit one after another (each a whole batch at a time), decisions are
//!   made on the users as committed, and feed positions become visible in
//!   the order they were taken: a reader that checkpoints the last position
//!   it saw never skips an event committed later. The users' rows are still
//!   written only where they are at the sequence read (a unique key on
//!   (user, sequence) backs it), so a writer outside this adapter shows as
//!   a conflict, never as a lost update.
//! - **Durability**: `synchronous_commit = on` for every write transaction
//!   unless [`Durability::Relaxed`](userstate::storage::Durability) is asked
//!   for, whatever the server's default.
//! - **No call hangs**: connecting is bounded by
//!   [`PostgresOptions::connect_timeout`], every call (a read, or a batch
//!   from its first statement to its commit) by
//!   [`PostgresOptions::command_timeout`]; the server ends a transaction
//!   whose client went silent after the same time. A call past its bound is
//!   Unavailable; a commit whose answer was lost is Unavailable with its
//!   outcome unknown ([`userstate::Error::is_outcome_unknown`]): it applied
//!   whole or not at all, and reading the user tells which. A connection
//!   that failed is dropped, so the repository works again once the server
//!   is back, without being rebuilt.
//! - **Conflicts** of PostgreSQL-compatible distributed databases (SQLSTATE
//!   40001, 40P01) and unique violations are answered as conflicts, which
//!   the service retries by deciding again (a test injects both codes).
//!   **CockroachDB and YugabyteDB were not tested**: nothing here shows
//!   the adapter runs on them. Known differences: the schema is created
//!   under `pg_advisory_xact_lock`, and commits wake readers with
//!   `pg_notify`, which CockroachDB lacks as far as its documentation says;
//!   the rest (arrays, `unnest`, `ON CONFLICT`, `FOR UPDATE`, `WITH
//!   RECURSIVE`) is in what they document.
//! - **Runtime**: the adapter drives tokio-postgres on a runtime of its own
//!   (two threads), so callers need none: it works under tokio and under
//!   `futures::executor::block_on` alike.
//!
//! # Schema
//!
//! Created in the schema the host names ([`PostgresOptions::schema`],
//! default [`DEFAULT_SCHEMA`]) with its version recorded
//! ([`SCHEMA_VERSION`]); a newer version, or tables of another
//! application, are refused.
//!
//! ```sql
//! users    (id PRIMARY KEY, org, state, sequence, snapshot)   -- snapshot: the core's JSON record
//! events   (user_id, sequence, org, event_type, created_at, creator, payload, position UNIQUE,
//!           PRIMARY KEY (user_id, sequence))
//! feed     (only_row, last)      -- the last position; its row lock orders the writers
//! policies (org PRIMARY KEY, record)   -- '' is the instance default
//! meta     (key PRIMARY KEY, value)    -- schema_version
//! ```
//!
//! # Tests
//!
//! [`testing`] (feature `testing`) starts a throwaway cluster from the
//! server binaries on the machine, one per test binary.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod engine;
mod error;
mod format;
mod layout;
mod options;
mod reader;
mod record;
mod repository;
#[cfg(feature = "testing")]
pub mod testing;
mod verify;
mod watcher;
mod writer;

pub use crate::format::SCHEMA_VERSION;
pub use crate::options::{
    PostgresOptions, DEFAULT_COMMAND_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_SIZE,
    DEFAULT_SCHEMA,
};
pub use crate::repository::PostgresRepository;
pub use crate::watcher::FEED_POLL_INTERVAL;
pub use deadpool_postgres;
pub use userstate::storage::{Durability, Verification, WriterStats};
