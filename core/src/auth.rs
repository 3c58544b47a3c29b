//! Who is acting and what they may do: callers, permissions, the
//! [`Authorizer`] trait a host plugs its own policy into, and a plain
//! in-memory table of grants.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::RwLock;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{ids, Error, ErrorKind, Result};
use crate::id::{OrgId, UserId};

/// A permission on the users of an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// `user.read`: get, history, list.
    #[serde(rename = "user.read")]
    Read,
    /// `user.write`: create, lock, unlock, deactivate, reactivate, complete
    /// initialisation, record checks, record password changes.
    #[serde(rename = "user.write")]
    Write,
    /// `user.delete`: remove.
    #[serde(rename = "user.delete")]
    Delete,
    /// `policy.write`: change the organisation's lockout policy (the
    /// instance default needs it instance-wide).
    #[serde(rename = "policy.write")]
    PolicyWrite,
}

impl Permission {
    /// The permission's name, e.g. `user.write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "user.read",
            Permission::Write => "user.write",
            Permission::Delete => "user.delete",
            Permission::PolicyWrite => "policy.write",
        }
    }

    /// Parses a permission name.
    ///
    /// # Errors
    /// InvalidArgument for an unknown name.
    pub fn parse(name: &str) -> Result<Self> {
        [
            Permission::Read,
            Permission::Write,
            Permission::Delete,
            Permission::PolicyWrite,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
        .ok_or_else(|| Error::invalid(ids::INVALID_NAME, "unknown permission"))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The acting user of a command, its own organisation, and the organisation
/// the command targets (the seeds' org header; by default the caller's own)
/// or, with [`Caller::by_id`], none: the service finds the user's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Caller {
    /// The acting user, recorded as the creator of the events written.
    pub user_id: UserId,
    /// The organisation the acting user belongs to.
    pub org_id: OrgId,
    /// The organisation the command targets, when not the caller's own.
    pub target_org: Option<OrgId>,
    /// Whether commands on a user address it by id alone, in whichever
    /// organisation the caller may see it.
    #[serde(default)]
    pub by_id: bool,
}

impl Caller {
    /// A caller acting in its own organisation.
    pub fn new(user_id: UserId, org_id: OrgId) -> Self {
        Caller {
            user_id,
            org_id,
            target_org: None,
            by_id: false,
        }
    }

    /// The same caller addressing users by id alone (ids are unique in the
    /// instance), as the v2 API does: the service finds the user's
    /// organisation, and a user the caller may not read there is NotFound,
    /// exactly like one that does not exist. Creating and listing still
    /// use [`Caller::target`].
    pub fn by_id(mut self) -> Self {
        self.by_id = true;
        self
    }

    /// The same caller targeting `org` instead of its own organisation.
    pub fn in_org(mut self, org: OrgId) -> Self {
        self.target_org = Some(org);
        self
    }

    /// The organisation the command targets.
    pub fn target(&self) -> &OrgId {
        self.target_org.as_ref().unwrap_or(&self.org_id)
    }
}

/// Decides whether a caller holds a permission in an organisation.
///
/// Implement it to plug in the host's own policy (a role table, a token's
/// claims, a remote policy service).
#[async_trait]
pub trait Authorizer: Send + Sync + fmt::Debug {
    /// Whether `caller` holds `permission` in `org`.
    ///
    /// # Errors
    /// Only for a failure to decide (e.g. Unavailable); a plain "no" is `Ok(false)`.
    async fn is_allowed(
        &self,
        caller: &Caller,
        org: &OrgId,
        permission: Permission,
    ) -> Result<bool>;

    /// Whether `caller` holds `permission` in every organisation (an
    /// instance-wide grant): what listing removed users and the
    /// organisations takes. The default answers no.
    ///
    /// # Errors
    /// Only for a failure to decide.
    async fn is_allowed_everywhere(&self, caller: &Caller, permission: Permission) -> Result<bool> {
        let _ = (caller, permission);
        Ok(false)
    }
}

/// The error the service returns when an [`Authorizer`] says no.
pub(crate) fn permission_denied(permission: Permission) -> Error {
    Error::new(
        ErrorKind::PermissionDenied,
        ids::PERMISSION_DENIED,
        format!("Permission {permission} is missing in the organisation"),
    )
}

/// The error for a caller whose own stored user cannot log in: locked (a
/// lock in force), inactive, initial or removed.
pub(crate) fn caller_cannot_log_in(why: &Error) -> Error {
    let why = match why.id() {
        ids::LOGIN_LOCKED => "is locked",
        ids::LOGIN_INACTIVE => "is not active",
        ids::LOGIN_INITIAL => "is not initialised",
        _ => "is removed",
    };
    Error::new(
        ErrorKind::PermissionDenied,
        ids::CALLER_CANNOT_LOG_IN,
        format!("The calling user {why} and cannot act"),
    )
}

/// Grants held by one user: per organisation and instance-wide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grants {
    /// Permissions in single organisations.
    #[serde(default)]
    pub orgs: HashMap<OrgId, BTreeSet<Permission>>,
    /// Permissions in every organisation.
    #[serde(default)]
    pub instance: BTreeSet<Permission>,
}

impl Grants {
    /// Whether these grants include `permission` in `org`.
    pub fn allows(&self, org: &OrgId, permission: Permission) -> bool {
        self.instance.contains(&permission)
            || self
                .orgs
                .get(org)
                .is_some_and(|perms| perms.contains(&permission))
    }
}

/// A plain in-memory table of grants, keyed by the acting user's id.
///
/// ```
/// use userstate::{Caller, InMemoryAuthorizer, OrgId, Permission, UserId};
/// # fn main() -> Result<(), userstate::Error> {
/// let grants = InMemoryAuthorizer::new();
/// let admin = UserId::new("admin")?;
/// grants.grant(&admin, &OrgId::new("acme")?, [Permission::Read, Permission::Write]);
/// grants.grant_instance(&UserId::new("root")?, [Permission::Delete]);
/// # Ok(()) }
/// ```
#[derive(Debug, Default)]
pub struct InMemoryAuthorizer {
    grants: RwLock<HashMap<UserId, Grants>>,
}

impl InMemoryAuthorizer {
    /// An empty table: nobody may do anything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Grants `permissions` in `org` to `user`.
    pub fn grant(
        &self,
        user: &UserId,
        org: &OrgId,
        permissions: impl IntoIterator<Item = Permission>,
    ) {
        self.update(user, |g| {
            g.orgs.entry(org.clone()).or_default().extend(permissions)
        });
    }

    /// Grants `permissions` in every organisation to `user`.
    pub fn grant_instance(&self, user: &UserId, permissions: impl IntoIterator<Item = Permission>) {
        self.update(user, |g| g.instance.extend(permissions));
    }

    /// Replaces all grants of `user`.
    pub fn set(&self, user: &UserId, grants: Grants) {
        self.update(user, |g| *g = grants);
    }

    /// Removes all grants of `user`.
    pub fn revoke_all(&self, user: &UserId) {
        let mut table = self.grants.write().unwrap_or_else(|e| e.into_inner());
        table.remove(user);
    }

    fn update(&self, user: &UserId, change: impl FnOnce(&mut Grants)) {
        // A panic elsewhere while holding the lock cannot leave a half-written
        // entry behind, so a poisoned lock is safe to keep using.
        let mut table = self.grants.write().unwrap_or_else(|e| e.into_inner());
        change(table.entry(user.clone()).or_default());
    }
}

#[async_trait]
impl Authorizer for InMemoryAuthorizer {
    async fn is_allowed(
        &self,
        caller: &Caller,
        org: &OrgId,
        permission: Permission,
    ) -> Result<bool> {
        let table = self.grants.read().unwrap_or_else(|e| e.into_inner());
        Ok(table
            .get(&caller.user_id)
            .is_some_and(|g| g.allows(org, permission)))
    }

    async fn is_allowed_everywhere(&self, caller: &Caller, permission: Permission) -> Result<bool> {
        let table = self.grants.read().unwrap_or_else(|e| e.into_inner());
        Ok(table
            .get(&caller.user_id)
            .is_some_and(|g| g.instance.contains(&permission)))
    }
}
