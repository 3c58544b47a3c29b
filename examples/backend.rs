//! Where the examples keep their databases unless told otherwise. A spec
//! such as `memory`, `sqlite:PATH`, `sled:PATH` or `postgres://HOST/DB` is
//! opened by [`userstate_backend::open`], as every program of the project
//! opens one.

use std::path::PathBuf;

use userstate::storage::create_private_dir;

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
