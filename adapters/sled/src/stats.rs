//! Counters that show whether group commit is working.

/// How many durable commands shared how many device syncs.
///
/// Read with [`SledRepository::sync_stats`](crate::SledRepository::sync_stats);
/// the counters only grow. Under concurrent load `syncs` stays well below
/// `commits`; with one caller at a time they are equal. Relaxed mode counts
/// only the commands that waited because too many were unsynced (see
/// [`SledOptions::max_unsynced_commands`](crate::SledOptions::max_unsynced_commands));
/// an explicit [`SledRepository::sync`](crate::SledRepository::sync) counts
/// a sync but no command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncStats {
    /// Commands (appends) acknowledged after a sync.
    pub commits: u64,
    /// Flush-and-sync rounds run.
    pub syncs: u64,
}

impl SyncStats {
    /// Commands per sync on average; 0 before the first sync.
    pub fn commits_per_sync(&self) -> f64 {
        if self.syncs == 0 {
            0.0
        } else {
            self.commits as f64 / self.syncs as f64
        }
    }
}
