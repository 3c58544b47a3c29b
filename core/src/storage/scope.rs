//! Whose users a read may see, so that an adapter can filter by
//! organisation before it decodes anything: a user of another organisation
//! is as absent as one never created, even when its record is damaged.

use crate::id::OrgId;

/// The organisations a read or an update may see.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One organisation.
    Org(OrgId),
    /// Every organisation: ids are unique in the instance (creation looks
    /// here, so an id taken anywhere stays taken).
    Instance,
}

impl Scope {
    /// Whether a user of `org` is visible.
    pub fn admits(&self, org: &OrgId) -> bool {
        match self {
            Scope::Org(scope) => scope == org,
            Scope::Instance => true,
        }
    }

    /// Whether a user whose organisation is one of `orgs` (the values a
    /// damaged record leaves: its column and its copy, say) may be visible.
    /// When nothing tells its organisation, it may be anyone's: its damage
    /// is reported rather than the user hidden from its own organisation.
    pub fn may_admit<'a>(&self, orgs: impl Iterator<Item = &'a OrgId>) -> bool {
        match self {
            Scope::Org(scope) => {
                let mut orgs = orgs.peekable();
                orgs.peek().is_none() || orgs.any(|org| org == scope)
            }
            Scope::Instance => true,
        }
    }
}
