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
//! let repo = SledRepository::temporary()?;
//! let acme = OrgId::new("acme")?;
//! let admin = Caller::new(UserId::new("admin")?, acme.clone());
//! let grants = InMemoryAuthorizer::new();
//! grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
//! let service = UserService::new(Arc::new(repo), Arc::new(grants));
//!
//! // Any executor works: the blocking work runs on the repository's threads.
//! futures::executor::block_on(async {
//!     let alice = UserId::new("alice")?;
//!     service.create(&admin, &alice, InitialState::Active).await?;
//!     let details = service.lock(&admin, &alice, LockRequest::new()).await?;
//!     assert_eq!(details.sequence, 2);
//!     assert_eq!(service.get(&admin, &alice).await?.state, UserState::Locked);
//!     Ok(())
//! })
//! # }
//! ```
//!
//! # Durability
//!
//! [`Durability::Durable`] (the default) acknowledges a command only after
//! sled flushed its log and the files were forced to the device, so an
//! acknowledged command survives a process kill and an operating-system
//! crash or power loss. Concurrent commands share one flush and sync (group
//! commit; see [`SyncStats`]). [`Durability::Relaxed`] acknowledges on
//! commit and may lose the last commands in a crash: those of the last half
//! second, and at most [`SledOptions::max_unsynced_commands`]. Both
//! keep every command atomic: events, snapshot and indexes are written in
//! one sled transaction, with the optimistic sequence check inside it.
//!
//! # Threads and executors
//!
//! The crate depends on no async runtime. Transactions and reads run on a
//! small pool of worker threads ([`SledOptions::worker_threads`]), syncs on
//! one flusher thread; callers await a `futures` oneshot channel, so the
//! repository works the same under tokio, `futures::executor::block_on` or
//! any other executor, and never blocks the executor's threads. A command
//! is one worker job: load, decide, commit. With
//! [`SledOptions::inline_writes`] writes run on the caller's thread instead,
//! and a durable one syncs there too when no sync is running: for hosts
//! whose callers may block.
//!
//! # On-disk format
//!
//! Version [`DATABASE_FORMAT`], stored big-endian under the key
//! `userstate.format` of sled's default tree when the database is created
//! and checked on every open; an unknown version is refused. Trees (ids
//! never contain control characters, so a 0x00 byte ends an id inside a key):
//!
//! | tree | key | value |
//! |---|---|---|
//! | `userstate.snapshots` | user id | record of the [`userstate::User`] |
//! | `userstate.events` | user id, 0x00, sequence as big-endian u64 | record of the [`userstate::Event`] |
//! | `userstate.by_org_state` | org id, 0x00, state byte, user id | empty |
//! | `userstate.by_org` | org id, 0x00, user id (existing users only) | empty |
//!
//! A record is a format byte (1) followed by the value in
//! [postcard](https://docs.rs/postcard), a compact format with a stable,
//! documented wire specification. A record that cannot be decoded, or of an
//! unknown format byte, is an Internal error (`USER-CORRUPT`) for that user
//! (and for a list page that would include it); every other user stays
//! readable. postcard writes fields in order and enum variants by index, so a
//! core change that adds, removes or reorders fields or variants of `User` or
//! `Event` needs a new record format.
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

mod codec;
mod device_sync;
mod durability;
mod flusher;
mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod options;
mod repository;
mod sled_error;
mod sled_files;
mod stats;
mod store;
mod workers;

pub use durability::Durability;
pub use format::DATABASE_FORMAT;
pub use options::{
    SledOptions, DEFAULT_CACHE_BYTES, DEFAULT_MAX_UNSYNCED_COMMANDS, DEFAULT_WORKER_THREADS,
};
pub use repository::SledRepository;
pub use stats::SyncStats;

/// Compiles and runs the README's example as a doctest, so it cannot drift
/// from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
