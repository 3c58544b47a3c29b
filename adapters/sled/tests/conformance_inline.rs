//! The core's conformance suite and model-based property test, unchanged, on
//! temporary durable databases whose writes, and syncs when none is running,
//! happen on the caller's thread.

use std::sync::Arc;

use userstate::UserRepository;
use userstate_sled::SledOptions;

fn fresh() -> Arc<dyn UserRepository> {
    SledOptions::new()
        .inline_writes(true)
        .open_temporary()
        .expect("open a temporary database")
        .into()
}

userstate::conformance_tests!(fresh());
