//! Which format a database is in: its version under the key
//! `userstate.format` of sled's default tree, written when the database is
//! created and checked on every open, and the upgrades from earlier
//! versions, each one atomic.
//!
//! | version | written by | trees | records |
//! |---|---|---|---|
//! | 1 | 0.1.0 | `userstate.snapshots`, `userstate.events` | the core types' postcard ([`record::v1`]) |
//! | 2 | (development) | `userstate.snapshots.v2`, `userstate.events.v2` | the adapter's own ([`crate::record`]) |
//! | 3 | (development) | the same, and `userstate.losses` | the same, and the count of committed events |
//! | 4 | this release | the same, `userstate.feed` and `userstate.policies` | the same, and lockout policies |
//!
//! All keep the index trees `userstate.by_org_state` and `userstate.by_org`,
//! whose keys did not change.

use sled::{Batch, Db, Tree};
use userstate::{Error, Result};

use crate::error::from_sled;
use crate::layout::{
    self, BY_ORG, BY_ORG_STATE, COMMITTED_KEY, EVENTS, FEED, FORMAT_KEY, LOSSES, POLICIES,
    SNAPSHOTS,
};
use crate::record::{self, v1};

/// The on-disk format this build writes and reads.
pub const DATABASE_FORMAT: u32 = 4;

/// The trees of format 1 that format 2 replaced.
const V1_SNAPSHOTS: &str = "userstate.snapshots";
const V1_EVENTS: &str = "userstate.events";

/// Every tree name a userstate database of any format may hold.
const OUR_TREES: [&str; 9] = [
    V1_SNAPSHOTS,
    V1_EVENTS,
    SNAPSHOTS,
    EVENTS,
    BY_ORG_STATE,
    BY_ORG,
    LOSSES,
    FEED,
    POLICIES,
];

/// Records an upgrade writes per batch, so memory stays bounded whatever
/// the size of the database.
const UPGRADE_CHUNK: usize = 10_000;

/// Checks the format of `db`, writing the current version to a database
/// that sled has just `created` and upgrading one of an earlier version in
/// place. `durable` flushes sled and syncs its files: the upgrade calls it
/// before the step that makes its work visible, so a crash leaves either
/// the old format whole or the new one.
///
/// # Errors
/// Corrupt for an unknown or unreadable version, sled files without a
/// version (another application's database, a foreign or damaged file, or a
/// creation that crashed before its first sync), or a record an upgrade
/// cannot read (the database is left in its old format); sled errors as
/// mapped by [`from_sled`].
pub(crate) fn open(db: &Db, created: bool, durable: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    match stored_version(db)? {
        Some(DATABASE_FORMAT) => drop_trees(db, &[V1_SNAPSHOTS, V1_EVENTS]),
        Some(3) => upgrade_from_3(db, durable).map_err(|error| refused_upgrade(3, error)),
        Some(2) => {
            upgrade_from_2(db, durable).map_err(|error| refused_upgrade(2, error))?;
            upgrade_from_3(db, durable).map_err(|error| refused_upgrade(3, error))
        }
        Some(1) => {
            upgrade_from_1(db, durable).map_err(|error| {
                // What the attempt wrote beside format 1 goes; the next open
                // would drop it anyway.
                let _ = drop_trees(db, &[SNAPSHOTS, EVENTS]);
                refused_upgrade(1, error)
            })?;
            upgrade_from_2(db, durable).map_err(|error| refused_upgrade(2, error))?;
            upgrade_from_3(db, durable).map_err(|error| refused_upgrade(3, error))
        }
        Some(version) => Err(Error::corrupt(format!(
            "unknown database format version {version}: this release reads versions 1 to \
             {DATABASE_FORMAT}; open the database with a newer userstate-sled"
        ))),
        None => {
            let names = db.tree_names();
            let has_data = names.iter().any(|name| {
                OUR_TREES
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
            let mut batch = Batch::default();
            batch.insert(COMMITTED_KEY, &0u64.to_be_bytes());
            batch.insert(FORMAT_KEY, &DATABASE_FORMAT.to_be_bytes());
            db.apply_batch(batch).map_err(from_sled)
        }
    }
}

fn stored_version(db: &Db) -> Result<Option<u32>> {
    db.get(FORMAT_KEY)
        .map_err(from_sled)?
        .map(|stored| {
            <[u8; 4]>::try_from(stored.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| Error::corrupt("database format version is unreadable"))
        })
        .transpose()
}

/// Format 1 to 2: the records are rewritten into new trees, made durable,
/// then the version is switched in one write, and only then are the old
/// trees dropped. A crash before the switch leaves format 1 whole (the next
/// open starts the upgrade again); one after it leaves format 2 whole and
/// old trees that the next open drops.
fn upgrade_from_1(db: &Db, durable: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    drop_trees(db, &[SNAPSHOTS, EVENTS])?;
    let tree = |name: &str| db.open_tree(name).map_err(from_sled);
    rewrite(&tree(V1_SNAPSHOTS)?, &tree(SNAPSHOTS)?, |key, value| {
        let id = layout::user_of_snapshot_key(key)?;
        record::encode_user(&v1::decode_user(&id, value)?)
    })?;
    rewrite(&tree(V1_EVENTS)?, &tree(EVENTS)?, |key, value| {
        let (id, sequence) = layout::event_of_key(key)?;
        record::encode_event(&v1::decode_event(&id, sequence, value)?)
    })?;
    durable()?;
    db.insert(FORMAT_KEY, &2u32.to_be_bytes())
        .map_err(from_sled)?;
    durable()?;
    drop_trees(db, &[V1_SNAPSHOTS, V1_EVENTS])
}

/// Format 2 to 3: the events are counted, each checked to decode, and the
/// count and the version written in one batch, so a crash leaves format 2
/// whole or format 3 whole.
fn upgrade_from_2(db: &Db, durable: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    let events = db.open_tree(EVENTS).map_err(from_sled)?;
    let mut count = 0u64;
    for entry in events.iter() {
        let (key, value) = entry.map_err(from_sled)?;
        let (id, sequence) = layout::event_of_key(&key)?;
        record::decode_event(&id, sequence, &value)?;
        count += 1;
    }
    let mut batch = Batch::default();
    batch.insert(COMMITTED_KEY, &count.to_be_bytes());
    batch.insert(FORMAT_KEY, &3u32.to_be_bytes());
    db.apply_batch(batch).map_err(from_sled)?;
    durable()
}

/// Format 3 to 4: the feed, every event at a position in the order it was
/// written (by time, then user and sequence, so each user's events keep
/// their order), built in a tree of its own, made durable, then the version
/// switched in one write. A crash before the switch leaves format 3 and a
/// partial feed the next attempt drops first.
fn upgrade_from_3(db: &Db, durable: &mut dyn FnMut() -> Result<()>) -> Result<()> {
    drop_trees(db, &[FEED])?;
    let events = db.open_tree(EVENTS).map_err(from_sled)?;
    let mut order = Vec::new();
    for entry in events.iter() {
        let (key, value) = entry.map_err(from_sled)?;
        let (id, sequence) = layout::event_of_key(&key)?;
        let event = record::decode_event(&id, sequence, &value)?;
        order.push((event.created_at, key));
    }
    // Keys sort by user, then sequence: the tie-break keeps a user's order.
    order.sort();
    let feed = db.open_tree(FEED).map_err(from_sled)?;
    for (chunk, start) in order
        .chunks(UPGRADE_CHUNK)
        .zip((1u64..).step_by(UPGRADE_CHUNK))
    {
        let mut batch = Batch::default();
        for ((_, key), position) in chunk.iter().zip(start..) {
            batch.insert(&layout::feed_key(position), key.as_ref());
        }
        feed.apply_batch(batch).map_err(from_sled)?;
    }
    durable()?;
    db.insert(FORMAT_KEY, &DATABASE_FORMAT.to_be_bytes())
        .map_err(from_sled)?;
    durable()
}

/// Writes every record of `from`, converted by `convert`, under the same
/// key into `to`.
fn rewrite(
    from: &Tree,
    to: &Tree,
    convert: impl Fn(&[u8], &[u8]) -> Result<Vec<u8>>,
) -> Result<()> {
    let mut batch = Batch::default();
    let mut pending = 0;
    for entry in from.iter() {
        let (key, value) = entry.map_err(from_sled)?;
        batch.insert(key.as_ref(), convert(&key, &value)?);
        pending += 1;
        if pending == UPGRADE_CHUNK {
            to.apply_batch(std::mem::take(&mut batch))
                .map_err(from_sled)?;
            pending = 0;
        }
    }
    to.apply_batch(batch).map_err(from_sled)
}

fn drop_trees(db: &Db, names: &[&str]) -> Result<()> {
    for name in names {
        // `false`: there was no such tree.
        db.drop_tree(name).map_err(from_sled)?;
    }
    Ok(())
}

/// An upgrade that stopped at stored data it cannot read: says so, and that
/// the database stays in its old format. Other failures keep their kind.
fn refused_upgrade(from: u32, error: Error) -> Error {
    if error.id() != userstate::ids::CORRUPT {
        return error;
    }
    Error::corrupt(format!(
        "cannot upgrade the database from format {from} to {DATABASE_FORMAT}: {}; it stays \
         in format {from}, unchanged: restore it from a backup, or open it with the release \
         that wrote it and remove the user",
        error.message()
    ))
    .with_source(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use userstate::{ids, ErrorKind};

    fn db() -> Db {
        sled::Config::new().temporary(true).open().unwrap()
    }

    fn nothing() -> Result<()> {
        Ok(())
    }

    #[test]
    fn a_new_database_gets_the_current_version_and_reopens() {
        let db = db();
        open(&db, true, &mut nothing).unwrap();
        open(&db, false, &mut nothing).unwrap();
        assert_eq!(stored_version(&db).unwrap(), Some(DATABASE_FORMAT));
    }

    #[test]
    fn an_unknown_version_is_refused() {
        let db = db();
        db.insert(FORMAT_KEY, &7u32.to_be_bytes()).unwrap();
        let err = open(&db, true, &mut nothing).unwrap_err();
        assert_eq!((err.kind(), err.id()), (ErrorKind::Internal, ids::CORRUPT));
        assert!(err.message().contains("version 7"), "{err}");
    }

    #[test]
    fn an_unreadable_version_is_refused() {
        let db = db();
        db.insert(FORMAT_KEY, &[1u8][..]).unwrap();
        assert_eq!(
            open(&db, true, &mut nothing).unwrap_err().id(),
            ids::CORRUPT
        );
    }

    #[test]
    fn existing_files_without_version_are_refused() {
        let db = db();
        let err = open(&db, false, &mut nothing).unwrap_err();
        assert_eq!(err.id(), ids::CORRUPT);
        assert_eq!(db.get(FORMAT_KEY).unwrap(), None, "nothing written");
    }

    #[test]
    fn data_without_version_is_refused() {
        for tree in [V1_SNAPSHOTS, SNAPSHOTS, BY_ORG] {
            let db = db();
            db.open_tree(tree).unwrap();
            assert_eq!(
                open(&db, true, &mut nothing).unwrap_err().id(),
                ids::CORRUPT
            );
        }
    }

    #[test]
    fn an_upgrade_that_meets_an_unreadable_record_leaves_format_1() {
        let db = db();
        db.insert(FORMAT_KEY, &1u32.to_be_bytes()).unwrap();
        db.open_tree(V1_SNAPSHOTS)
            .unwrap()
            .insert("alice", &[1u8, 0xff][..])
            .unwrap();
        let err = open(&db, false, &mut nothing).unwrap_err();
        assert_eq!(err.id(), ids::CORRUPT);
        assert!(err.message().contains("user alice"), "{err}");
        assert!(err.message().contains("unchanged"), "{err}");
        assert_eq!(stored_version(&db).unwrap(), Some(1));
        assert_eq!(
            db.open_tree(V1_SNAPSHOTS)
                .unwrap()
                .get("alice")
                .unwrap()
                .unwrap()
                .as_ref(),
            &[1u8, 0xff]
        );
        let names = db.tree_names();
        assert!(
            !names
                .iter()
                .any(|name| name.as_ref() == SNAPSHOTS.as_bytes()),
            "no half-written tree of format 2 is left"
        );
    }
}
