//! Choosing a storage backend at run time from a short spec such as
//! `memory`, `sqlite:PATH` or `sled:PATH`: the only place where the examples
//! differ by backend.

use std::sync::Arc;

use userstate::{InMemoryRepository, UserRepository};
use userstate_sled::SledRepository;
use userstate_sqlite::SqliteRepository;

/// Opens the repository a spec names: `memory`, `sqlite:PATH` (created if
/// missing, durable) or `sled:PATH` (a folder, created if missing, durable).
///
/// # Errors
/// A message for an unknown spec or a backend that cannot be opened.
pub fn open(spec: &str) -> Result<Arc<dyn UserRepository>, String> {
    let opened: Result<Arc<dyn UserRepository>, userstate::Error> = match spec.split_once(':') {
        None if spec == "memory" => Ok(Arc::new(InMemoryRepository::new())),
        Some(("sqlite", path)) if !path.is_empty() => {
            SqliteRepository::open(path).map(|r| Arc::new(r) as _)
        }
        Some(("sled", path)) if !path.is_empty() => {
            SledRepository::open(path).map(|r| Arc::new(r) as _)
        }
        _ => {
            return Err(format!(
                "unknown backend {spec:?}: use memory, sqlite:PATH or sled:PATH"
            ))
        }
    };
    opened.map_err(|e| format!("cannot open {spec}: {e}"))
}

/// The default spec: an SQLite file in the system's temporary folder.
pub fn default_sqlite(file_name: &str) -> String {
    format!("sqlite:{}", std::env::temp_dir().join(file_name).display())
}
