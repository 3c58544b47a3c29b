//! `userstate-sled`: the [`userstate`] storage contract on
//! [sled](https://docs.rs/sled/0.34.7) 0.34, an embedded key-value store in
//! pure Rust.
//!
//! ```
//! use std::sync::Arc;
//! use userstate::{
//!     Caller, InMemoryAuthorizer, InitialState, LockRequest, OrgId, Permission, UserId,
//!     UserService, UserState,
//! };
//! use userstate_sled::SledRepository;
//!
//! # fn main() -> Result<(), userstate::Error> {
//! // `SledRepository::open("path/to/dir")` for a real, durable database.
//! let repo = SledRepository::open_temporary()?;
//! let acme = OrgId::from_stored("acme")?;
//! let admin = Caller::new(UserId::from_stored("admin")?, acme.clone());
//! let grants = InMemoryAuthorizer::new();
//! grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
//! let service = UserService::new(Arc::new(repo), Arc::new(grants));
//!
//! // Any executor works: the blocking work runs on the repository's threads.
//! futures::executor::block_on(async {
//!     let alice = UserId::from_stored("alice")?;
//!     service.create(&admin, &alice, InitialState::Active).await?;
//!     let details = service.lock(&admin, &alice, LockRequest::new()).await?;
//!     assert_eq!(details.sequence, 2);
//!     assert_eq!(service.get(&admin, &alice).await?.state, UserState::Locked);
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Design
//!
//! The crate mirrors `userstate-sqlite` file for file: `options` (the
//! builder), `repository` (the [`userstate::UserRepository`]), `engine`
//! (opening sled and syncing its files), `writer` (a batch of
//! transactions and its sync), `reader` (the reads), `layout` (trees and
//! keys), `record` (what a value holds), `format` (versions and upgrades),
//! `error`.
//!
//! - **Writes** go through the core's [`GroupCommit`](userstate::storage::GroupCommit):
//!   the commands that queue while a batch commits form the next batch. The
//!   leader decides each on the user as stored and writes it in one sled
//!   transaction over the four trees (events, snapshot and indexes
//!   together), then, when durable, flushes sled and syncs its files once
//!   for the batch. Only the writer writes, so nothing conflicts; a lone
//!   caller waits for nothing but its own commit, and with
//!   [`SledOptions::inline_writes`] commits and syncs on its own thread.
//! - **Readers** are threads on the core's
//!   [`WorkerPool`](userstate::storage::WorkerPool). No async runtime is
//!   needed (tokio, `futures::executor`, ...).
//! - **Durability** ([`SledOptions::durability`]): durable acknowledges a
//!   batch after sled's flush and the `fdatasync`/`fsync`s sled 0.34 does
//!   not do itself; relaxed acknowledges on commit, within
//!   [`SledOptions::max_unsynced_commands`].
//!
//! # On-disk format
//!
//! Version [`DATABASE_FORMAT`], stored big-endian under the key
//! `userstate.format` of sled's default tree when the database is created
//! and checked on every open; a database of format 1 is upgraded in place
//! at open (the new records are written beside the old ones, and one write
//! of the version switches to them), an unknown version is refused. Trees
//! (ids never contain control characters, so a 0x00 byte ends an id inside
//! a key):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `userstate.snapshots.v2` | user id | the user's record |
//! | `userstate.events.v2` | user id, 0x00, sequence as big-endian u64 | the event's record |
//! | `userstate.by_org_state` | org id, 0x00, state code, user id | empty |
//! | `userstate.by_org` | org id, 0x00, user id (existing users only) | empty |
//!
//! A record is a format byte (2) followed by this crate's own record type in
//! [postcard](https://docs.rs/postcard), with every enum as a code from one
//! table (never 0), pinned byte for byte by its tests. A record that cannot
//! be decoded, or that is not the one its key names, is an Internal error
//! (`USER-CORRUPT`) for that user (and for a list page that would include
//! it); every other user stays readable.
//!
//! # Memory
//!
//! sled's page cache is bounded to [`DEFAULT_CACHE_BYTES`] (64 MiB) unless
//! set with [`SledOptions::cache_bytes`]; sled's own default of 1 GiB lets
//! a load of a million users grow past 3 GiB of resident memory.
//!
//! # Errors
//!
//! sled I/O errors (a full disk, a directory another process holds open)
//! are Unavailable; sled corruption, undecodable records and unknown formats
//! are Internal with id `USER-CORRUPT`; other sled faults are Internal.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

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

pub use format::DATABASE_FORMAT;
pub use options::{
    SledOptions, DEFAULT_CACHE_BYTES, DEFAULT_MAX_UNSYNCED_COMMANDS, DEFAULT_READER_THREADS,
};
pub use repository::SledRepository;
pub use userstate::storage::{AcceptedLoss, CheckAtOpen, Durability, Verification, WriterStats};

/// Compiles and runs the README's example as a doctest, so it cannot drift
/// from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
