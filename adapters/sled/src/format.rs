//! The database format version: written when a database is created, checked
//! on every open, so that a build never reads a layout it does not know.

use userstate::{Error, Result};

use crate::sled_error::from_sled;

/// The on-disk layout this build writes and reads: the four trees described
/// in the crate docs, their key encodings and record format 1.
pub const DATABASE_FORMAT: u32 = 1;

/// Key of the format version in sled's default tree.
const FORMAT_KEY: &[u8] = b"userstate.format";

/// The trees of format 1: snapshots, events, and the two list indexes.
pub(crate) const SNAPSHOTS: &str = "userstate.snapshots";
pub(crate) const EVENTS: &str = "userstate.events";
pub(crate) const BY_ORG_STATE: &str = "userstate.by_org_state";
pub(crate) const BY_ORG: &str = "userstate.by_org";
const TREE_NAMES: [&str; 4] = [SNAPSHOTS, EVENTS, BY_ORG_STATE, BY_ORG];

/// Checks the format version of `db`, writing it to a database that sled
/// has just created (`created`: its data file did not exist or was empty
/// before the open). Runs before any tree is opened, so a refused database
/// is left untouched.
///
/// # Errors
/// Internal (`USER-CORRUPT`) for an unknown or unreadable version, or
/// existing sled files without a version (another application's database,
/// a foreign or damaged file, or a creation that crashed before its first
/// sync); sled errors as mapped by [`from_sled`].
pub(crate) fn check_or_initialise(db: &sled::Db, created: bool) -> Result<()> {
    match db.get(FORMAT_KEY).map_err(from_sled)? {
        Some(stored) => {
            let version = <[u8; 4]>::try_from(stored.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| Error::corrupt("database format version is unreadable"))?;
            if version == DATABASE_FORMAT {
                Ok(())
            } else {
                Err(Error::corrupt(format!(
                    "unknown database format version {version} (this build reads version {DATABASE_FORMAT})"
                )))
            }
        }
        None => {
            let has_data = db.tree_names().iter().any(|name| {
                TREE_NAMES
                    .iter()
                    .any(|ours| name.as_ref() == ours.as_bytes())
            });
            if has_data {
                return Err(Error::corrupt(
                    "database holds userstate trees but no format version",
                ));
            }
            if !created {
                return Err(Error::corrupt(
                    "the directory holds sled files without a userstate format version: \
                     another application's database, a damaged file, or a creation \
                     interrupted by a crash (then remove the directory)",
                ));
            }
            db.insert(FORMAT_KEY, &DATABASE_FORMAT.to_be_bytes())
                .map_err(from_sled)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use userstate::{ids, ErrorKind};

    fn db() -> sled::Db {
        sled::Config::new().temporary(true).open().unwrap()
    }

    #[test]
    fn new_database_gets_the_current_version_and_reopens() {
        let db = db();
        check_or_initialise(&db, true).unwrap();
        check_or_initialise(&db, false).unwrap();
        assert_eq!(
            db.get(FORMAT_KEY).unwrap().unwrap().as_ref(),
            &DATABASE_FORMAT.to_be_bytes()
        );
    }

    #[test]
    fn unknown_version_is_refused() {
        let db = db();
        db.insert(FORMAT_KEY, &2u32.to_be_bytes()).unwrap();
        let err = check_or_initialise(&db, true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(err.id(), ids::CORRUPT);
        assert!(err.message().contains("version 2"), "{err}");
    }

    #[test]
    fn unreadable_version_is_refused() {
        let db = db();
        db.insert(FORMAT_KEY, &[1u8][..]).unwrap();
        assert_eq!(
            check_or_initialise(&db, true).unwrap_err().id(),
            ids::CORRUPT
        );
    }

    #[test]
    fn existing_files_without_version_are_refused() {
        let db = db();
        let err = check_or_initialise(&db, false).unwrap_err();
        assert_eq!(err.id(), ids::CORRUPT);
        assert_eq!(db.get(FORMAT_KEY).unwrap(), None, "nothing written");
    }

    #[test]
    fn data_without_version_is_refused() {
        let db = db();
        db.open_tree(SNAPSHOTS).unwrap();
        assert_eq!(
            check_or_initialise(&db, true).unwrap_err().id(),
            ids::CORRUPT
        );
    }
}
