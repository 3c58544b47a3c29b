//! `userstate-sqlite`: the storage of [`userstate`] on an embedded SQLite
//! database (bundled, no system library needed).
//!
//! ```
//! use std::sync::Arc;
//! use userstate::{
//!     Caller, InMemoryAuthorizer, InitialState, LockRequest, OrgId, Permission, UserId,
//!     UserService, UserState,
//! };
//! use userstate_sqlite::SqliteRepository;
//!
//! # fn main() -> Result<(), userstate::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("users.db");
//! let repository = SqliteRepository::open(&path)?; // created if missing
//! let acme = OrgId::new("acme")?;
//! let admin = Caller::new(UserId::new("admin")?, acme.clone());
//! let grants = InMemoryAuthorizer::new();
//! grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
//! let service = UserService::new(Arc::new(repository.clone()), Arc::new(grants));
//!
//! futures::executor::block_on(async {
//!     let alice = UserId::new("alice")?;
//!     service.create(&admin, &alice, InitialState::Active).await?;
//!     service.lock(&admin, &alice, LockRequest::new()).await?;
//!     assert_eq!(service.get(&admin, &alice).await?.state, UserState::Locked);
//!     Ok::<_, userstate::Error>(())
//! })?;
//! assert_eq!(repository.stats().commands, 2);
//! # Ok(()) }
//! ```
//!
//! # Design
//!
//! The crate mirrors `userstate-sled` file for file: `options` (the
//! builder), `repository` (the [`userstate::UserRepository`]), `engine`
//! (opening the engine), `writer` (a batch in one transaction), `reader`
//! (the reads), `layout` (tables and statements), `record` (what a row
//! holds), `format` (versions and upgrades), `error`.
//!
//! - **Writes** go through the core's [`GroupCommit`](userstate::storage::GroupCommit):
//!   the commands that queue while a batch commits form the next batch, run
//!   in ONE `BEGIN IMMEDIATE` transaction, each decided on the user as read
//!   inside it (so it never conflicts) and, in a batch of several, under its
//!   own SAVEPOINT with its own outcome. A lone caller waits for nothing but
//!   its own commit; with [`SqliteOptions::inline_writes`] it commits on its
//!   own thread.
//! - **Readers** are threads with their own connections on the core's
//!   [`WorkerPool`](userstate::storage::WorkerPool); in WAL mode they never
//!   wait for the writer. No async runtime is needed (tokio,
//!   `futures::executor`, ...).
//! - **Several handles and processes** on one file stay correct: every
//!   decision runs under SQLite's write lock, and the primary key (user,
//!   sequence) of the events means a stored event is never overwritten.
//! - **Format**: the schema version lives in `PRAGMA user_version`
//!   ([`SCHEMA_VERSION`]), with an `application_id`; a file of an earlier
//!   version is upgraded in place at open, in one transaction; a file of
//!   another application or of a newer version is refused untouched.
//!
//! # Schema
//!
//! ```sql
//! users  (id PRIMARY KEY, org, state, sequence, snapshot)   -- snapshot: the rest of the user, JSON
//! events (user_id, sequence, org, event_type, created_at, creator, payload,
//!         PRIMARY KEY (user_id, sequence))                  -- payload: the type's fields, JSON
//! INDEX users_by_org_state ON users (org, state, id)
//! INDEX users_by_org       ON users (org, id) WHERE state <> 'deleted'
//! ```
//!
//! Times are integer milliseconds; the records are this crate's own types,
//! pinned byte for byte by its tests.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod engine;
mod error;
mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod layout;
mod options;
mod reader;
mod record;
mod repository;
mod verify;
mod writer;

pub use crate::options::{SqliteOptions, DEFAULT_BUSY_TIMEOUT, DEFAULT_READER_THREADS};
pub use crate::repository::SqliteRepository;
pub use userstate::storage::{AcceptedLoss, CheckAtOpen, Durability, Verification, WriterStats};

/// The schema version this version of the crate writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = format::SCHEMA_VERSION;
