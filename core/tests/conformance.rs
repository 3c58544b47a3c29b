//! The conformance suite and the model-based property test against the
//! reference in-memory repository.

use std::sync::Arc;

use userstate::{InMemoryRepository, UserRepository};

fn fresh() -> Arc<dyn UserRepository> {
    Arc::new(InMemoryRepository::new())
}

userstate::conformance_tests!(fresh());
