//! Checking a whole database: what an adapter's `verify` reports, what it
//! checks of each user the same way for every engine, and how much is
//! checked when a database is opened.

use std::fmt;

use crate::event::Event;
use crate::id::UserId;
use crate::user::User;

/// How much of a database is checked when it is opened, beyond what every
/// open checks (the format, and that no committed event is missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CheckAtOpen {
    /// The default: everything for a database of up to
    /// [`CHECK_EVERYTHING_UP_TO`] bytes (a few tens of thousands of
    /// users), the engine's structure beyond.
    #[default]
    Auto,
    /// The engine's own structure (SQLite's `quick_check`); nothing more
    /// for engines that check their log as they recover it (sled).
    Structure,
    /// Everything `verify` checks: every record decoded, every snapshot
    /// against its history, every index entry.
    Everything,
    /// Nothing beyond what every open checks.
    Nothing,
}

/// The largest database [`CheckAtOpen::Auto`] checks whole at open.
pub const CHECK_EVERYTHING_UP_TO: u64 = 16 * 1024 * 1024;

/// What a verification of a whole database found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Users read.
    pub users: u64,
    /// Events read.
    pub events: u64,
    /// Everything that is not as it should be; empty for a sound database.
    pub findings: Vec<Finding>,
}

impl Verification {
    /// Whether nothing was found.
    pub fn is_sound(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One thing a verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Finding {
    /// The user it concerns, when it concerns one.
    pub user: Option<UserId>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some(user) => write!(f, "user {user}: {}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

/// What is wrong with a stored user given its whole stored history: events
/// numbered 1, 2, 3, ... without a gap, all of its id and organisation, and
/// a snapshot that is their replay. `None` when nothing is.
pub fn check_user(stored: &User, history: &[Event]) -> Option<String> {
    for (event, expected) in history.iter().zip(1u64..) {
        if event.sequence != expected {
            return Some(format!(
                "event {} stands where event {expected} should",
                event.sequence
            ));
        }
        if event.user_id != stored.id || event.org_id != stored.org_id {
            return Some(format!(
                "event {} belongs to another user or organisation",
                event.sequence
            ));
        }
    }
    match User::replay(history) {
        Some(replayed) if replayed == *stored => None,
        Some(_) => Some("the snapshot is not the replay of its events".to_owned()),
        None => Some("the user has no events".to_owned()),
    }
}
