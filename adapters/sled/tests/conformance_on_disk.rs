//! The core's conformance suite and model-based property test, unchanged, on
//! durable databases on the real file system: every acknowledged command
//! went through sled's flush and a device sync.

mod common;

userstate::conformance_tests!(common::durable_on_disk());
