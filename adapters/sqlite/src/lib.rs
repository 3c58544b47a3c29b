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
//! let acme = OrgId::from_stored("acme")?;
//! let admin = Caller::new(UserId::from_stored("admin")?, acme.clone());
//! let grants = InMemoryAuthorizer::new();
//! grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
//! let service = UserService::new(Arc::new(repository.clone()), Arc::new(grants));
//!
//! futures::executor::block_on(async {
//!     let alice = UserId::from_stored("alice")?;
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
//! users  (id PRIMARY KEY, org, state, sequence, snapshot, checksum)  -- snapshot: the rest of the user, JSON
//! events (user_id, sequence, org, event_type, created_at, creator, payload, checksum, position,
//!         PRIMARY KEY (user_id, sequence))                            -- payload: the type's fields, JSON
//! UNIQUE INDEX events_by_position ON events (position)               -- the change feed
//! INDEX users_by_org_state ON users (org, state, id)
//! INDEX users_by_org       ON users (org, id) WHERE state <> 'deleted'
//! meta   (key PRIMARY KEY, value)       -- committed_events: every event ever committed
//! losses (accepted_at, expected, found) -- losses accepted at open
//! ```
//!
//! Times are integer milliseconds; the records are this crate's own types,
//! pinned byte for byte by its tests. `checksum` is the CRC-32 of the row's
//! other columns, each length-prefixed. `position` is the event's place in
//! the change feed, assigned under the write lock as the last position plus
//! one, so it increases in commit order (format 4; events stored before got
//! positions in the order they were written). A reader waiting for the feed
//! is woken by this handle's writer at once, and sees the commits of other
//! handles and processes within [`FEED_POLL_INTERVAL`].
//!
//! # Damage and loss
//!
//! - **Every read checks** the row's checksum (a flipped bit inside a value
//!   is found, not served), that the row is the one asked for, and, for a
//!   history, that it has no gap and ends at its snapshot's sequence. What
//!   fails is `USER-CORRUPT` naming the user. Reads are scoped: the
//!   organisation is told from the row's column, or the copy in its
//!   snapshot, before anything is decoded, so a damaged user of another
//!   organisation is NotFound.
//! - **Loss is refused**: every commit advances `committed_events` in the
//!   same transaction; after each durable commit (relaxed: each checkpoint)
//!   the count goes to the commit mark `PATH-commits`, two checksummed slots
//!   outside SQLite's files. An open that finds fewer events (frames of the
//!   write-ahead log that failed their checksum, an older copy of the file
//!   restored) is refused with `USER-CORRUPT`, and writes nothing: not the
//!   mark, and not the checkpoint SQLite runs when the last connection
//!   closes. [`SqliteOptions::accept_loss`] goes on with what is left and
//!   records it ([`SqliteRepository::accepted_losses`]).
//! - **Checks at open** ([`SqliteOptions::check_at_open`]): SQLite's
//!   `quick_check` (every page and b-tree well formed) on every open; up to
//!   16 MiB also `integrity_check` (which compares every index with its
//!   table) and every row and history ([`SqliteRepository::verify`], also on
//!   demand).
//! - **What is not seen at open** past 16 MiB: a flipped bit that leaves an
//!   index well formed but names a row wrongly can drop that row out of a
//!   listing until `verify` runs (SQLite's index entries carry no checksum);
//!   users and histories are never served short. And, as for every commit
//!   mark: relaxed commits not yet checkpointed, and after an OS crash the
//!   commits since the mark's last write-back (it is not synced; it may lag,
//!   never lead).
//! - **Refused rather than adopted**: an empty file, an empty database of
//!   another application, a missing file whose `-wal` or mark is left, a
//!   file that cannot be written (Unavailable, with the system's reason), a
//!   symbolic link, another user's file. A new file is created 0600 where
//!   nothing is; SQLite creates `-wal` and `-shm` with the file's mode.
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
mod watcher;
mod writer;

pub use crate::options::{SqliteOptions, DEFAULT_BUSY_TIMEOUT, DEFAULT_READER_THREADS};
pub use crate::repository::SqliteRepository;
pub use crate::watcher::FEED_POLL_INTERVAL;
pub use userstate::storage::{AcceptedLoss, CheckAtOpen, Durability, Verification, WriterStats};

/// The schema version this version of the crate writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = format::SCHEMA_VERSION;
