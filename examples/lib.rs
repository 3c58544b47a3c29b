//! Runnable examples of `userstate` (`cargo run --example quickstart`); see
//! the README for what each one shows. The library part holds what the
//! examples share: where they keep their databases, and the demo data.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backend;
pub mod demo;

/// Compiles and runs the README's code blocks as doctests, so the README
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
