//! `userstate`: the lifecycle of user accounts in an identity system —
//! create, lock, unlock, deactivate, reactivate, remove — with an audit trail
//! of events, organisation (tenant) scoping, permission checks and pluggable
//! storage.
//!
//! The state of a user is derived by one reducer ([`User::apply`]) from its
//! events; commands are decided purely ([`Command::decide`]) and appended with
//! optimistic concurrency, so two concurrent `lock` calls give exactly one
//! success and one `User is already locked`.
//!
//! ```
//! use std::sync::Arc;
//! use userstate::{
//!     Caller, ErrorKind, InMemoryAuthorizer, InMemoryRepository, InitialState, Reason,
//!     LockRequest, OrgId, Permission, UserId, UserService,
//! };
//!
//! # fn main() -> Result<(), userstate::Error> {
//! # futures::executor::block_on(async {
//! let acme = OrgId::new("acme")?;
//! let admin = Caller::new(UserId::new("admin")?, acme.clone());
//! let grants = InMemoryAuthorizer::new();
//! grants.grant(&admin.user_id, &acme, [Permission::Read, Permission::Write]);
//! let service = UserService::new(Arc::new(InMemoryRepository::new()), Arc::new(grants));
//!
//! let alice = UserId::new("alice")?;
//! service.create(&admin, &alice, InitialState::Active).await?;
//! let reason = Reason::new("too many failed logins")?;
//! let details = service.lock(&admin, &alice, LockRequest::new().reason(reason)).await?;
//! assert_eq!(details.sequence, 2);
//!
//! let again = service.lock(&admin, &alice, LockRequest::new()).await.unwrap_err();
//! assert_eq!(again.kind(), ErrorKind::FailedPrecondition);
//! assert_eq!(again.body().code, 9);
//! assert!(service.login_allowed(&alice).await.is_err());
//! # Ok(()) })
//! # }
//! ```
//!
//! # Layout
//!
//! - The crate root is what a host needs: [`UserService`] and its inputs and
//!   answers (ids, [`Caller`], [`Command`], [`User`], [`Event`], [`Details`],
//!   [`Error`]), authorisation ([`Authorizer`]), lockout policies, clocks,
//!   the reads' queries and pages, and the [`UserRepository`] a backend
//!   implements with [`InMemoryRepository`] as the reference.
//! - [`storage`] is for adapter authors: the commit and decision an update
//!   carries, the conflict signal, and the group commit, worker pool and
//!   paging every adapter shares.
//! - [`wire`] holds the seeds' wire shapes: v1/v3alpha details, the error
//!   body, gRPC codes and HTTP statuses, API enum names.
//! - [`conformance`] (feature `conformance`) is the behaviour every adapter
//!   proves by running it unchanged.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod clock;
mod command;
mod details;
mod effective;
mod error;
mod event;
mod feed;
mod id;
mod lockout;
mod memory;
mod query;
mod service;
mod state;
mod timestamp;
mod trace;
mod user;

pub mod storage;
pub mod wire;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use auth::{Authorizer, Caller, Grants, InMemoryAuthorizer, Permission};
pub use clock::{Clock, ManualClock, SystemClock};
pub use command::{Command, LockRequest};
pub use details::Details;
pub use error::{ids, Attempts, Error, ErrorKind, Result};
pub use event::{Event, EventPayload, LockCause, UnlockCause};
pub use feed::{FeedEvent, FeedPage, FeedQuery};
pub use id::{OrgId, Reason, UserId, MAX_ID_BYTES, MAX_REASON_CHARS};
pub use lockout::{
    Factor, FailedChecks, LockoutPolicies, LockoutPolicy, PolicyInForce, StoredPolicies,
    StoredPolicy,
};
pub use memory::InMemoryRepository;
pub use query::{
    walk_pages, Cursor, HistoryQuery, ListQuery, Page, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
};
pub use service::{CheckRecord, UserService, DEFAULT_CONFLICT_RETRIES, FEED_SCAN_PAGES};
pub use state::{InitialState, UserState};
pub use storage::UserRepository;
pub use timestamp::Timestamp;
pub use user::{Lock, User};
