//! Choosing a storage backend at run time from a short spec such as
//! `memory`, `sqlite:PATH` or `sled:PATH`: the only place where the examples
//! differ by backend.

use std::path::PathBuf;
use std::sync::Arc;

use userstate::storage::create_private_dir;
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

/// The folder where the examples keep their databases unless told
/// otherwise: `userstate-examples` in the user's local data folder
/// (`$XDG_DATA_HOME`, else `~/.local/share`, on Linux; `~/Library/Application
/// Support` on macOS; `%LOCALAPPDATA%` on Windows), created readable by its
/// owner only (0700). Never a fixed name in the shared temporary folder,
/// where another local account could create it first.
///
/// # Errors
/// A message when the system names no data folder for the user, or the
/// folder cannot be created or is not the user's own.
pub fn default_dir() -> Result<PathBuf, String> {
    let base = dirs::data_local_dir().ok_or(
        "the system names no local data folder for this user (is HOME set?); \
         name a database explicitly",
    )?;
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    let dir = base.join("userstate-examples");
    create_private_dir(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// The default spec: the SQLite file `file_name` in [`default_dir`].
///
/// # Errors
/// As [`default_dir`].
pub fn default_sqlite(file_name: &str) -> Result<String, String> {
    Ok(format!(
        "sqlite:{}",
        default_dir()?.join(file_name).display()
    ))
}
