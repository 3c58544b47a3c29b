//! What an acknowledged command survives: the one durability setting every
//! adapter offers.

/// When a repository answers a write: after its commit reached the device,
/// or as soon as it is committed.
///
/// Both keep every command atomic (events, snapshot and indexes in one
/// commit), so after any crash a command is recovered whole or not at all
/// and every snapshot equals the replay of its events. Each adapter's
/// options say what the mode means for its engine.
///
/// Exhaustive on purpose: a new mode fails to compile in every adapter
/// until the adapter says what it means for its engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// The default: a command is acknowledged after its commit was forced
    /// to the device, so it survives a process kill, an operating-system
    /// crash and a power loss. Concurrent commands share one sync.
    #[default]
    Durable,
    /// A command is acknowledged once committed; the device is synced later.
    /// It survives a process kill, but an operating-system crash or a power
    /// loss may lose the most recent commands (never corrupt the database).
    Relaxed,
}
