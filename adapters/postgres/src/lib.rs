//! `userstate-postgres`: PostgreSQL storage for `userstate`, for services
//! that run several instances against one shared database.
//!
//! **Work in progress.** This release holds the schema and its migration
//! ([`PostgresOptions::migrate`]) and the test harness ([`testing`], feature
//! `testing`) that starts a throwaway cluster; the repository itself
//! follows.
//!
//! ```no_run
//! use userstate_postgres::PostgresOptions;
//! # fn main() -> userstate::Result<()> {
//! let version = PostgresOptions::new("host=localhost user=identity dbname=identity").migrate()?;
//! println!("schema version {version}");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod format;
mod options;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::format::SCHEMA_VERSION;
pub use crate::options::{PostgresOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_SCHEMA};
