//! Random command sequences against the in-memory repository, every answer
//! checked by the conformance suite's reference model.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use userstate::InMemoryRepository;

fuzz_target!(|data: &[u8]| {
    userstate::conformance::model_check_bytes(Arc::new(InMemoryRepository::new()), data);
});
