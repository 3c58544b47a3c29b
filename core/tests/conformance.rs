//! The conformance suite and the model-based property test against the
//! reference in-memory repository.

use std::sync::Arc;

use userstate::{InMemoryRepository, UserRepository};

fn fresh() -> Arc<dyn UserRepository> {
    Arc::new(InMemoryRepository::new())
}

userstate::conformance_tests!(fresh());

#[test]
fn model_check_accepts_arbitrary_bytes() {
    // The fuzz target's entry point: any bytes decode to some valid sequence.
    let mut data = vec![0u8; 1];
    for i in 0..4096u32 {
        data.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
    }
    for len in [0, 1, 5, 64, 4097] {
        userstate::conformance::model_check_bytes(fresh(), &data[..len]);
    }
}
