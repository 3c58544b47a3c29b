//! Counters of the writer's work, cheap enough to keep always: they show
//! how well commands share commits.

use std::sync::atomic::{AtomicU64, Ordering};

/// What the writer of one repository handle (and its clones) has done since
/// it was opened. Read with [`SqliteRepository::stats`](crate::SqliteRepository::stats).
///
/// `commands / transactions` is the average group-commit batch: how many
/// writes (appends and updates, one per command) shared one transaction
/// and, in durable mode, one fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Write transactions committed.
    pub transactions: u64,
    /// Writes answered, whatever the outcome (a command its decision
    /// refused counts too).
    pub commands: u64,
    /// Writes answered with a conflict (the stored sequence had moved on).
    pub conflicts: u64,
    /// The most writes one transaction has held.
    pub largest_batch: u64,
}

/// The live counters behind [`Stats`], updated by whoever runs a batch.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    transactions: AtomicU64,
    commands: AtomicU64,
    conflicts: AtomicU64,
    largest_batch: AtomicU64,
}

impl Counters {
    /// Records one batch of `commands` writes, `conflicts` of them
    /// conflicting, and whether its transaction committed.
    pub(crate) fn record_batch(&self, commands: u64, conflicts: u64, committed: bool) {
        // Relaxed: the counters are independent figures, not a synchronisation point.
        if committed {
            self.transactions.fetch_add(1, Ordering::Relaxed);
        }
        self.commands.fetch_add(commands, Ordering::Relaxed);
        self.conflicts.fetch_add(conflicts, Ordering::Relaxed);
        self.largest_batch.fetch_max(commands, Ordering::Relaxed);
    }

    /// A copy of the counters now.
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            transactions: self.transactions.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            conflicts: self.conflicts.load(Ordering::Relaxed),
            largest_batch: self.largest_batch.load(Ordering::Relaxed),
        }
    }
}
