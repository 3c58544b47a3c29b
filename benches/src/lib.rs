//! `userstate-benches`: the benchmarks of `userstate`.
//!
//! - `cargo bench -p userstate-benches` runs the criterion benches
//!   (`benches/lifecycle.rs`): lock+unlock, get, history and a page of 100
//!   locked users on every backend, with 10 thousand users preloaded (and 1
//!   million with `USERSTATE_BENCH_LARGE=1`).
//! - `cargo run --release -p userstate-benches --bin compare` measures the
//!   library through its service beside the raw storage engines doing the
//!   same atomic work by hand, in alternate rounds of one run, with peak
//!   resident memory per adapter from a process of its own.
//!
//! This library holds what both share: the backends and how they are
//! preloaded ([`fixture`]), the hand-written baselines on rusqlite, sled and
//! tokio-postgres ([`raw_sqlite`], [`raw_sled`], [`raw_postgres`]) and the
//! measuring tools ([`measure`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod fixture;
pub mod measure;
pub mod raw_postgres;
pub mod raw_sled;
pub mod raw_sqlite;
