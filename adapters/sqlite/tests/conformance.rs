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

/// A temporary database (in `/dev/shm` where the system has it).
mod temporary {
    userstate::conformance_tests!(super::common::temporary());
}

/// Two handles on one file, used in turn: the guarantees hold across handles.
mod two_handles {
    userstate::conformance_tests!(super::common::two_handles());
}

/// Writes led by the caller that finds nobody writing, relaxed.
mod inline_writes {
    userstate::conformance_tests!(super::common::inline_file());
}

/// Writes led by the caller that finds nobody writing, durable.
mod inline_durable_writes {
    userstate::conformance_tests!(super::common::inline_durable_file());
}
