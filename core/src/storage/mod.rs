//! The storage contract, for those who write a storage adapter: the
//! [`UserRepository`] trait, what a command hands it ([`Update`], [`Decide`],
//! [`Decision`], [`Commit`], [`Scope`]), the [`Conflict`] signal, the
//! parts every adapter needs the same way ([`GroupCommit`], [`WorkerPool`],
//! [`page_of`], [`Durability`], [`WriterStats`], [`CommitMark`], the private
//! files, [`TemporaryDir`]), and the record format adapters that store JSON
//! text share ([`json`]).
//!
//! A host only needs [`UserRepository`] (re-exported at the crate root) to
//! hold a backend as `Arc<dyn UserRepository>`.
//!
//! # The one write
//!
//! The service runs every command through [`UserRepository::update`]: it
//! hands the repository the command's decision as a closure, and the
//! repository runs it on the user as stored and stores what it decided, as
//! one step. An adapter that decides under its write lock (the in-memory
//! repository, SQLite's writer, sled's writer) never conflicts; one that
//! checks the stored sequence optimistically answers a [`Conflict`] when
//! another writer got there first, and the service decides again.
//!
//! ```
//! use userstate::storage::{self, Commit, Scope, Update, UserRepository};
//! use userstate::{Event, EventPayload, InMemoryRepository, InitialState, OrgId, Timestamp, UserId};
//!
//! # fn main() -> userstate::Result<()> {
//! # futures::executor::block_on(async {
//! let repo = InMemoryRepository::new();
//! let alice = UserId::new("alice")?;
//! let added = Event {
//!     user_id: alice.clone(),
//!     org_id: OrgId::new("acme")?,
//!     sequence: 1,
//!     created_at: Timestamp::from_unix_millis(0)?,
//!     creator: UserId::new("admin")?,
//!     payload: EventPayload::Added { state: InitialState::Active },
//! };
//! // A raw commit, written only if the user is still as it was built on.
//! let commit = Commit::new(None, vec![added])?;
//! let stored = repo.update(Update::new(alice.clone(), Scope::Instance, storage::append(commit.clone()))).await?;
//! assert_eq!(&stored, commit.snapshot());
//! let again = repo.update(Update::new(alice, Scope::Instance, storage::append(commit))).await.unwrap_err();
//! assert!(again.is_conflict());
//! # Ok(()) })
//! # }
//! ```

mod commit;
mod durability;
mod feed;
mod files;
pub mod json;
mod mark;
mod paging;
mod repository;
mod scope;
mod temporary;
mod verify;
mod workers;
mod writer;

pub use commit::{append, Actor, CheckActor, Commit, Conflict, Decide, Decision, Update};
pub use durability::Durability;
pub use feed::FeedSignal;
pub use files::{
    check_private, check_private_if_present, create_private_dir, create_private_file,
    open_private_file,
};
pub use mark::{AcceptedLoss, CommitMark, Loss, Recorded, Seal};
pub use paging::page_of;
pub use repository::UserRepository;
pub use scope::Scope;
pub use temporary::TemporaryDir;
pub use verify::{
    check_through, check_user, CheckAtOpen, Finding, Verification, CHECK_EVERYTHING_UP_TO,
};
pub use workers::WorkerPool;
pub use writer::{BatchWriter, GroupCommit, WriterStats, DEFAULT_MAX_BATCH};
