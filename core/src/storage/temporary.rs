//! A private directory for a throw-away database, removed when dropped: the
//! same for every adapter's `open_temporary`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// A new directory no other database of this or another process uses, in
/// memory (`/dev/shm`) where Linux offers it, else in the system's temporary
/// directory; readable by its owner only. Removed with everything in it
/// when dropped, so drop it after the database that lives in it closes.
#[derive(Debug)]
pub struct TemporaryDir {
    path: PathBuf,
}

impl TemporaryDir {
    /// Creates a directory whose name starts with `prefix`.
    ///
    /// # Errors
    /// Unavailable when it cannot be created.
    pub fn new(prefix: &str) -> Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "{prefix}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let shm = Path::new("/dev/shm");
        let base = if cfg!(target_os = "linux") && shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let path = base.join(name);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path).map_err(|e| {
            Error::unavailable(format!(
                "cannot create the temporary directory {}",
                path.display()
            ))
            .with_source(e)
        })?;
        Ok(TemporaryDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        // Nothing to report to: a leftover directory is harmless.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_distinct_private_and_removed() {
        let a = TemporaryDir::new("userstate-test").unwrap();
        let b = TemporaryDir::new("userstate-test").unwrap();
        assert_ne!(a.path(), b.path());
        std::fs::write(a.path().join("file"), b"x").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists());
    }
}
