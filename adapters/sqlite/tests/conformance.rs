//! The core's conformance suite and model-based property test, unchanged, on
//! every way this adapter can be opened.

mod common;

/// The default: a durable file (one fsync per commit).
mod durable_file {
    userstate::conformance_tests!(super::common::durable_file());
}

/// Relaxed durability on a file.
mod relaxed_file {
    userstate::conformance_tests!(super::common::relaxed_file());
}

/// A private in-memory database (reads on the writer's connection).
mod in_memory {
    userstate::conformance_tests!(super::common::in_memory());
}

/// Two handles on one file, used in turn: the guarantees hold across handles.
mod two_handles {
    userstate::conformance_tests!(super::common::two_handles());
}

/// Writes on the caller's thread while the writer is idle, relaxed.
mod inline_writes {
    userstate::conformance_tests!(super::common::inline_file());
}

/// Writes on the caller's thread while the writer is idle, durable.
mod inline_durable_writes {
    userstate::conformance_tests!(super::common::inline_durable_file());
}
