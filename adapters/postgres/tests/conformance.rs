//! The core's conformance suite and model-based property test, unchanged,
//! on a real PostgreSQL server, every way this adapter can be opened.

mod common;

/// The default: durable (`synchronous_commit = on`).
mod durable {
    userstate::conformance_tests!(super::common::durable(), if super::common::available());
}

/// Relaxed durability.
mod relaxed {
    userstate::conformance_tests!(super::common::relaxed(), if super::common::available());
}

/// Two handles on one database, used in turn, as two instances would.
mod two_handles {
    userstate::conformance_tests!(super::common::two_handles(), if super::common::available());
}
