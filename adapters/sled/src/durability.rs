//! When an acknowledged command is safe: the choice between answering after
//! the data reached the device and answering as soon as sled committed it.

/// What an `Ok` from [`UserRepository::append`](userstate::UserRepository::append)
/// promises about surviving a crash.
///
/// Both modes commit each command atomically (events, snapshot and indexes
/// in one sled transaction), so after any crash a command is either
/// recovered whole or not at all, and every snapshot equals the replay of
/// its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// The default. A command is acknowledged only after a sled flush
    /// ([`sled::Tree::flush`]) that started after its commit, followed by
    /// `fsync` of any file sled created since the last sync (blob and
    /// snapshot files), `fsync` of the directories they appear in and
    /// `fdatasync` of sled's data file. An acknowledged command survives a
    /// process kill and an operating-system crash or power loss, as far as
    /// the device honours cache flushes.
    ///
    /// sled 0.34's own `flush` only issues `sync_file_range`, which writes
    /// the pages but neither the file's metadata nor the device cache, so on
    /// Linux it does not survive an OS crash; this mode adds the missing sync.
    /// Concurrent commands share one flush and sync (group commit).
    #[default]
    Durable,
    /// A command is acknowledged as soon as the sled transaction committed
    /// in memory. sled's background thread writes and fsyncs its log about
    /// every 500 ms, so a process kill or an OS crash loses the commands
    /// acknowledged since then (the database stays consistent). At most
    /// [`SledOptions::max_unsynced_commands`](crate::SledOptions::max_unsynced_commands)
    /// acknowledged commands wait for a sync at any time: the next one waits
    /// for a flush and sync like a durable command, which also keeps memory
    /// bounded under sustained load.
    /// [`SledRepository::sync`](crate::SledRepository::sync) makes
    /// everything acknowledged so far durable on demand.
    Relaxed,
}
