//! The core's conformance suite and model-based property test, unchanged, on
//! temporary databases in the default durable mode (in memory where the
//! platform offers it, so the sync path runs but costs little).

use std::sync::Arc;

use userstate::UserRepository;
use userstate_sled::SledRepository;

fn fresh() -> Arc<dyn UserRepository> {
    SledRepository::open_temporary()
        .expect("open a temporary database")
        .into()
}

userstate::conformance_tests!(fresh());
