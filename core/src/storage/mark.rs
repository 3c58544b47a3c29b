//! A record of how much a database has committed, kept in a small file
//! beside it, outside the engine's own files and log: an engine that
//! recovers a damaged log by dropping what follows the damage (sled), or a
//! write-ahead log that loses its last frames (SQLite), then opens with
//! fewer events than were committed, and the mark says so.
//!
//! The mark holds two slots, written in turn, each with its own checksum,
//! so that a torn write leaves the other one. It is written after the
//! commits it counts are durable, and not synced itself: it may lag behind
//! after an operating-system crash (which hides a loss of the commits since
//! its last write-back, about 30 s on Linux), but it never claims more than
//! the database made durable, so it cannot raise a false alarm.
//!
//! At a clean close the mark also gets a [`Seal`] of the engine's data
//! file: an engine whose recovery rewrites its files (sled zeroes what
//! follows damage in its log) can then be opened straight away when the
//! file still matches, and on a copy first when it does not, so that a
//! refused open leaves the files as they were.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::storage::files::{create_private_file, open_private_file};
use crate::timestamp::Timestamp;

const MAGIC: [u8; 8] = *b"usstmark";
const VERSION: u32 = 1;
const SLOT: usize = 48;
/// The seal length of a slot without a seal.
const UNSEALED: u64 = u64::MAX;

/// How many events a database held when a loss was accepted, and how many
/// its mark said it had committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loss {
    /// Events the mark recorded as committed; `None` when the mark itself
    /// was damaged.
    pub expected: Option<u64>,
    /// Events the database held.
    pub found: u64,
}

/// A loss an operator accepted when opening a database, as the database
/// records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AcceptedLoss {
    /// When the database was opened accepting it.
    pub accepted_at: Timestamp,
    /// What was lost.
    pub loss: Loss,
}

/// The length and CRC-32 of an engine's data file as a clean close left
/// it: at the next open, a file that still matches is known to be whole,
/// before the engine reads (and perhaps rewrites) any of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seal {
    /// Bytes in the file.
    pub length: u64,
    /// CRC-32 of the whole file.
    pub crc: u32,
}

impl Seal {
    /// The seal of the file at `path` as it is now: one read of the file.
    ///
    /// # Errors
    /// Unavailable when the file cannot be read.
    pub fn of_file(path: &Path) -> Result<Self> {
        let unreadable = |e: std::io::Error| {
            Error::unavailable(format!("cannot read {}: {e}", path.display())).with_source(e)
        };
        let mut file = File::open(path).map_err(unreadable)?;
        let mut crc = crc32fast::Hasher::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut length = 0u64;
        loop {
            match Read::read(&mut file, &mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    crc.update(&buffer[..n]);
                    length += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(unreadable(e)),
            }
        }
        Ok(Seal {
            length,
            crc: crc.finalize(),
        })
    }
}

/// What a mark holds, read without writing to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recorded {
    /// No mark yet: a new database, or one of an earlier format.
    Nothing,
    /// The newest whole slot.
    Committed {
        /// Events recorded as committed and durable.
        committed: u64,
        /// The data file as the last clean close left it, if the database
        /// was closed cleanly since its last commit.
        seal: Option<Seal>,
    },
    /// Both slots are damaged.
    Damaged,
}

impl Recorded {
    /// Reads the mark at `path`, if there is one, without writing.
    ///
    /// # Errors
    /// Unavailable when it cannot be read; as
    /// [`check_private`](super::check_private) for a file not the opener's own.
    pub fn read(path: &Path) -> Result<Self> {
        match path.try_exists() {
            Ok(true) => read(&open_private_file(path)?, path),
            Ok(false) => Ok(Recorded::Nothing),
            Err(e) => Err(io_error("cannot inspect", path, e)),
        }
    }

    /// The seal of the last clean close, if any.
    pub fn seal(&self) -> Option<Seal> {
        match self {
            Recorded::Committed { seal, .. } => *seal,
            _ => None,
        }
    }

    /// What is lost if the database holds `found` committed events.
    ///
    /// # Errors
    /// Internal (`USER-CORRUPT`) for a loss, or a damaged mark, unless
    /// `accept_loss`; then the loss is returned.
    pub fn check(&self, path: &Path, found: u64, accept_loss: bool) -> Result<Option<Loss>> {
        let loss = match *self {
            Recorded::Nothing => None,
            Recorded::Committed { committed, .. } if committed <= found => None,
            Recorded::Committed { committed, .. } => Some(Loss {
                expected: Some(committed),
                found,
            }),
            Recorded::Damaged => Some(Loss {
                expected: None,
                found,
            }),
        };
        match loss {
            Some(loss) if !accept_loss => Err(refusal(path, loss)),
            loss => Ok(loss),
        }
    }
}

/// The commit mark of one database.
#[derive(Debug)]
pub struct CommitMark {
    file: File,
    path: PathBuf,
    generation: u64,
    committed: u64,
}

impl CommitMark {
    /// Opens the mark at `path` for a database that holds `found` committed
    /// events, creating it (owner-only) if there is none yet: a database of
    /// an earlier format, or a new one. When the mark records more than
    /// `found`, committed events were lost: the open is refused, unless
    /// `accept_loss`, in which case the loss is returned for the adapter to
    /// record, and the mark starts again from `found`. Opening clears the
    /// seal of the last clean close.
    ///
    /// # Errors
    /// Internal (`USER-CORRUPT`) for a loss not accepted, or a mark whose
    /// both slots are damaged (also accepted with `accept_loss`);
    /// Unavailable when the file cannot be read or written; as
    /// [`check_private`](super::check_private) for a file not the opener's own.
    pub fn open(path: &Path, found: u64, accept_loss: bool) -> Result<(Self, Option<Loss>)> {
        Self::open_as_read(path, Recorded::read(path)?, found, accept_loss)
    }

    /// Opens the mark at `path` as [`CommitMark::open`] does, judging a loss
    /// by `recorded`: the mark as read *before* the database counted its
    /// `found` events. Where other processes write the same database
    /// (SQLite), each records its commits after making them, so a mark read
    /// first never counts more than the database then holds; one read after
    /// the count may count a commit made in between, a false loss.
    ///
    /// # Errors
    /// As [`CommitMark::open`].
    pub fn open_as_read(
        path: &Path,
        recorded: Recorded,
        found: u64,
        accept_loss: bool,
    ) -> Result<(Self, Option<Loss>)> {
        let (file, generation) = match path.try_exists() {
            Ok(true) => {
                let file = open_private_file(path)?;
                let generation = newest_generation(&file, path)?;
                (file, generation)
            }
            Ok(false) => (create_private_file(path)?, 0),
            Err(e) => return Err(io_error("cannot inspect", path, e)),
        };
        let loss = recorded.check(path, found, accept_loss)?;
        let mut mark = CommitMark {
            file,
            path: path.to_path_buf(),
            generation,
            committed: found,
        };
        mark.record(found)?;
        Ok((mark, loss))
    }

    /// Records that `committed` events are durable. Not synced: see the
    /// module's documentation.
    ///
    /// # Errors
    /// Unavailable when the file cannot be written.
    pub fn record(&mut self, committed: u64) -> Result<()> {
        self.committed = committed;
        self.write(committed, None)
    }

    /// Records a clean close: every committed event is durable, and the
    /// engine's data file is as `seal` says. Synced, as it is the last write.
    ///
    /// # Errors
    /// Unavailable when the file cannot be written or synced.
    pub fn seal(&mut self, seal: Seal) -> Result<()> {
        self.write(self.committed, Some(seal))?;
        self.file
            .sync_data()
            .map_err(|e| io_error("cannot sync", &self.path, e))
    }

    /// Events recorded so far.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The file beside the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, committed: u64, seal: Option<Seal>) -> Result<()> {
        self.generation += 1;
        let mut slot = [0u8; SLOT];
        slot[..8].copy_from_slice(&MAGIC);
        slot[8..12].copy_from_slice(&VERSION.to_le_bytes());
        slot[12..20].copy_from_slice(&self.generation.to_le_bytes());
        slot[20..28].copy_from_slice(&committed.to_le_bytes());
        let (length, crc) = seal.map_or((UNSEALED, 0), |s| (s.length, s.crc));
        slot[28..36].copy_from_slice(&length.to_le_bytes());
        slot[36..40].copy_from_slice(&crc.to_le_bytes());
        let checksum = crc32fast::hash(&slot[..SLOT - 4]);
        slot[SLOT - 4..].copy_from_slice(&checksum.to_le_bytes());
        let offset = (self.generation % 2) * SLOT as u64;
        write_at(&self.file, &slot, offset).map_err(|e| io_error("cannot write", &self.path, e))
    }
}

/// The refusal of a database that lost `loss`, or whose mark is damaged.
fn refusal(path: &Path, loss: Loss) -> Error {
    match loss.expected {
        Some(expected) => Error::corrupt(format!(
            "the database holds {} committed events, but {expected} were committed before: \
             {} are lost (its files are damaged, or older than the commit mark {}); nothing \
             was written. Restore the database from a backup, or, to go on with what is \
             left, open it accepting the loss, which is recorded",
            loss.found,
            expected.saturating_sub(loss.found),
            path.display()
        )),
        None => Error::corrupt(format!(
            "the commit mark {} is damaged, so a loss of committed data cannot be ruled \
             out; nothing was written. Restore the database and its mark from a backup, or \
             open it accepting a loss to start a new mark",
            path.display()
        )),
    }
}

/// One whole slot.
#[derive(Debug, Clone, Copy)]
struct Slot {
    generation: u64,
    committed: u64,
    seal: Option<Seal>,
}

/// What the file records; an empty file (a crash right after its
/// creation) records nothing.
fn read(file: &File, path: &Path) -> Result<Recorded> {
    let bytes = read_all(file, path)?;
    if bytes.is_empty() {
        return Ok(Recorded::Nothing);
    }
    Ok(
        match bytes
            .chunks(SLOT)
            .filter_map(slot)
            .max_by_key(|s| s.generation)
        {
            Some(slot) => Recorded::Committed {
                committed: slot.committed,
                seal: slot.seal,
            },
            None => Recorded::Damaged,
        },
    )
}

/// The highest generation of any whole slot, so new writes go on from it.
fn newest_generation(file: &File, path: &Path) -> Result<u64> {
    let bytes = read_all(file, path)?;
    Ok(bytes
        .chunks(SLOT)
        .filter_map(slot)
        .map(|s| s.generation)
        .max()
        .unwrap_or(0))
}

fn read_all(file: &File, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut reader = file;
    std::io::Seek::rewind(&mut reader).map_err(|e| io_error("cannot read", path, e))?;
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| io_error("cannot read", path, e))?;
    Ok(bytes)
}

fn slot(bytes: &[u8]) -> Option<Slot> {
    let bytes: &[u8; SLOT] = bytes.try_into().ok()?;
    let u64_at = |at: usize| bytes[at..at + 8].try_into().ok().map(u64::from_le_bytes);
    let u32_at = |at: usize| bytes[at..at + 4].try_into().ok().map(u32::from_le_bytes);
    if bytes[..8] != MAGIC || crc32fast::hash(&bytes[..SLOT - 4]) != u32_at(SLOT - 4)? {
        return None;
    }
    if u32_at(8)? != VERSION {
        return None;
    }
    let length = u64_at(28)?;
    Some(Slot {
        generation: u64_at(12)?,
        committed: u64_at(20)?,
        seal: (length != UNSEALED).then_some(Seal {
            length,
            crc: u32_at(36)?,
        }),
    })
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> Error {
    Error::unavailable(format!(
        "{what} the commit mark {}: {error}",
        path.display()
    ))
    .with_source(error)
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut bytes: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = std::os::windows::fs::FileExt::seek_write(file, bytes, offset)?;
        bytes = &bytes[written..];
        offset += written as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark_path(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("users.commits")
    }

    #[test]
    fn a_commit_between_reading_the_mark_and_counting_is_no_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = mark_path(&dir);
        let (mut other, _) = CommitMark::open(&path, 18, false).unwrap();
        // This opener reads the mark, another process commits its 19th
        // event and records it, then this opener counts 18 in its snapshot.
        let recorded = Recorded::read(&path).unwrap();
        other.record(19).unwrap();
        // Read after the count, the mark would claim a loss.
        let late = Recorded::read(&path).unwrap().check(&path, 18, false);
        assert_eq!(late.unwrap_err().kind(), crate::ErrorKind::Internal);
        let (mark, loss) = CommitMark::open_as_read(&path, recorded, 18, false).unwrap();
        assert_eq!(loss, None);
        assert_eq!(mark.committed(), 18);
    }

    #[test]
    fn a_mark_records_and_reads_back_the_newest_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = mark_path(&dir);
        let (mut mark, loss) = CommitMark::open(&path, 0, false).unwrap();
        assert_eq!(loss, None);
        for committed in [3, 7, 12] {
            mark.record(committed).unwrap();
        }
        drop(mark);
        let (_, loss) = CommitMark::open(&path, 12, false).unwrap();
        assert_eq!(loss, None);
        let (_, loss) = CommitMark::open(&path, 20, false).unwrap();
        assert_eq!(loss, None, "commits after the last mark are no loss");
    }

    #[test]
    fn fewer_events_than_the_mark_is_a_loss_refused_unless_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = mark_path(&dir);
        let (mut mark, _) = CommitMark::open(&path, 0, false).unwrap();
        mark.record(10).unwrap();
        drop(mark);
        let err = CommitMark::open(&path, 4, false).unwrap_err();
        assert_eq!(err.id(), crate::ids::CORRUPT);
        assert!(err.message().contains("6 are lost"), "{err}");
        let (_, loss) = CommitMark::open(&path, 4, true).unwrap();
        assert_eq!(
            loss,
            Some(Loss {
                expected: Some(10),
                found: 4
            })
        );
        let (_, loss) = CommitMark::open(&path, 4, false).unwrap();
        assert_eq!(loss, None, "the accepted loss starts the mark again");
    }

    #[test]
    fn a_seal_is_kept_until_the_next_open_and_tells_a_changed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = mark_path(&dir);
        let data = dir.path().join("data");
        std::fs::write(&data, b"the engine's pages").unwrap();
        let (mut mark, _) = CommitMark::open(&path, 0, false).unwrap();
        mark.record(3).unwrap();
        let seal = Seal::of_file(&data).unwrap();
        mark.seal(seal).unwrap();
        drop(mark);
        let recorded = Recorded::read(&path).unwrap();
        assert_eq!(recorded.seal(), Some(seal));
        assert_eq!(recorded.check(&path, 3, false).unwrap(), None);
        std::fs::write(&data, b"the engine's pageS").unwrap();
        assert_ne!(Seal::of_file(&data).unwrap(), seal);
        let (_, loss) = CommitMark::open(&path, 3, false).unwrap();
        assert_eq!(loss, None);
        assert_eq!(Recorded::read(&path).unwrap().seal(), None, "open unseals");
    }

    #[test]
    fn a_damaged_slot_falls_back_to_the_other_and_two_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = mark_path(&dir);
        let (mut mark, _) = CommitMark::open(&path, 0, false).unwrap();
        mark.record(5).unwrap();
        mark.record(9).unwrap();
        drop(mark);
        let mut bytes = std::fs::read(&path).unwrap();
        let newest = bytes
            .chunks(SLOT)
            .position(|s| slot(s).is_some_and(|r| r.committed == 9));
        bytes[newest.unwrap() * SLOT + 21] ^= 0x04;
        std::fs::write(&path, &bytes).unwrap();
        let (_, loss) = CommitMark::open(&path, 5, false).unwrap();
        assert_eq!(loss, None, "the older slot is still whole");

        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 1;
        bytes[SLOT + 3] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = CommitMark::open(&path, 5, false).unwrap_err();
        assert!(err.message().contains("damaged"), "{err}");
        let (_, loss) = CommitMark::open(&path, 5, true).unwrap();
        assert_eq!(
            loss,
            Some(Loss {
                expected: None,
                found: 5
            })
        );
    }
}
