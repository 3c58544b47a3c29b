//! What sled 0.34 keeps in a database directory: `conf` (its storage
//! parameters, written first when it creates a database), `db` (the log and
//! pages), `blobs/` (values too large for a log segment) and `snap.<lsn>`
//! (recovery snapshots).

use std::path::Path;

/// sled's data file.
pub(crate) const DATA_FILE: &str = "db";
/// sled's configuration file.
pub(crate) const CONFIG_FILE: &str = "conf";
/// sled's directory of large values.
pub(crate) const BLOB_DIR: &str = "blobs";

/// What a directory holds before sled opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Existing {
    /// No data yet: sled will create the database.
    Nothing,
    /// A data file and sled's configuration: a sled database.
    SledDatabase,
    /// A data file sled did not create (no configuration next to it):
    /// sled must not open it, as recovery would overwrite parts of it.
    ForeignFile,
}

/// Looks at `root` without changing anything.
pub(crate) fn inspect(root: &Path) -> Existing {
    let has_data = std::fs::metadata(root.join(DATA_FILE)).is_ok_and(|m| m.len() > 0);
    if !has_data {
        Existing::Nothing
    } else if root.join(CONFIG_FILE).is_file() {
        Existing::SledDatabase
    } else {
        Existing::ForeignFile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_empty_sled_and_foreign_directories_apart() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(inspect(dir.path()), Existing::Nothing);
        assert_eq!(inspect(&dir.path().join("missing")), Existing::Nothing);
        std::fs::write(dir.path().join(DATA_FILE), b"someone else's").unwrap();
        assert_eq!(inspect(dir.path()), Existing::ForeignFile);
        std::fs::write(dir.path().join(CONFIG_FILE), b"conf").unwrap();
        assert_eq!(inspect(dir.path()), Existing::SledDatabase);
    }
}
