//! What a command returns about the user it touched. The seeds' JSON shapes
//! of it are in [`crate::wire`].

use serde::{Deserialize, Serialize};

use crate::id::{OrgId, UserId};
use crate::timestamp::Timestamp;

/// The details of a user after a command, or as of its last event on read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    /// The user.
    pub id: UserId,
    /// Sequence of the last event written (on read: the last in the history).
    pub sequence: u64,
    /// Time of the user's first event.
    pub creation_date: Timestamp,
    /// Time of the last event written.
    pub change_date: Timestamp,
    /// The owning organisation.
    pub resource_owner: OrgId,
}
