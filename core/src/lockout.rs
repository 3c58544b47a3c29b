//! Automatic locking after failed authentication checks: the factors, the
//! per-organisation policy with an instance default, and the failure counters
//! a user carries.

use std::collections::HashMap;
use std::fmt;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::error::{ids, Error, Result};
use crate::id::OrgId;
use crate::timestamp::Timestamp;

/// An authentication factor whose checks are counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Factor {
    /// The password.
    Password,
    /// A time-based one-time password.
    Totp,
    /// A one-time password sent by SMS.
    Sms,
    /// A one-time password sent by email.
    Email,
}

impl Factor {
    /// All factors.
    pub const ALL: [Factor; 4] = [Factor::Password, Factor::Totp, Factor::Sms, Factor::Email];

    /// The lowercase name: `password`, `totp`, `sms`, `email`.
    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Password => "password",
            Factor::Totp => "totp",
            Factor::Sms => "sms",
            Factor::Email => "email",
        }
    }

    /// Parses a factor's lowercase name ([`Factor::as_str`]) exactly as
    /// written (case matters); the same rule serves [`std::str::FromStr`].
    ///
    /// # Errors
    /// InvalidArgument for an unknown name, naming the accepted values.
    pub fn parse(name: &str) -> Result<Self> {
        Factor::ALL
            .into_iter()
            .find(|f| f.as_str() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Factor::ALL.iter().map(|f| f.as_str()).collect();
                Error::invalid(
                    ids::INVALID_NAME,
                    format!(
                        "unknown authentication factor; accepted are {}",
                        names.join(", ")
                    ),
                )
            })
    }

    /// True for the one-time-password factors.
    pub fn is_otp(self) -> bool {
        self != Factor::Password
    }
}

impl fmt::Display for Factor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Consecutive failed checks per factor since the last reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedChecks {
    /// Failed password checks.
    pub password: u32,
    /// Failed TOTP checks.
    pub totp: u32,
    /// Failed SMS one-time-password checks.
    pub sms: u32,
    /// Failed email one-time-password checks.
    pub email: u32,
}

impl FailedChecks {
    /// The count for `factor`.
    pub fn get(&self, factor: Factor) -> u32 {
        match factor {
            Factor::Password => self.password,
            Factor::Totp => self.totp,
            Factor::Sms => self.sms,
            Factor::Email => self.email,
        }
    }

    pub(crate) fn get_mut(&mut self, factor: Factor) -> &mut u32 {
        match factor {
            Factor::Password => &mut self.password,
            Factor::Totp => &mut self.totp,
            Factor::Sms => &mut self.sms,
            Factor::Email => &mut self.email,
        }
    }

    /// True when no factor has failed checks.
    pub fn is_empty(&self) -> bool {
        *self == FailedChecks::default()
    }
}

/// When failed checks lock a user, and for how long.
///
/// The default locks never (both limits 0) and shows attempt counts in errors.
/// Deserialising refuses unknown fields, so a misspelt limit is an error
/// rather than a policy that silently never locks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LockoutPolicy {
    /// Failed password checks that lock the user; 0 = never lock.
    pub max_password_attempts: u32,
    /// Failed checks of one OTP factor that lock the user; 0 = never lock.
    pub max_otp_attempts: u32,
    /// Length of a lockout in milliseconds; `None` locks until an unlock.
    pub lock_duration_ms: Option<u64>,
    /// Each further lockout lasts this many times longer than the previous
    /// one (1 = always the same, 2 = doubling).
    pub duration_growth: u32,
    /// Upper bound for a grown lockout duration, in milliseconds.
    pub max_lock_duration_ms: Option<u64>,
    /// After this many temporary lockouts, the next one is permanent; 0 = never.
    pub permanent_after: u32,
    /// Whether the error of a failed check carries the failed-attempt count
    /// and the remaining attempts.
    pub show_attempts: bool,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            max_password_attempts: 0,
            max_otp_attempts: 0,
            lock_duration_ms: None,
            duration_growth: 1,
            max_lock_duration_ms: None,
            permanent_after: 0,
            show_attempts: true,
        }
    }
}

/// A lockout policy as a repository stores it: the policy, and who changed
/// it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPolicy {
    /// The policy.
    pub policy: LockoutPolicy,
    /// The caller that set it.
    pub changed_by: crate::id::UserId,
    /// When, by the service's clock.
    pub changed_at: Timestamp,
}

/// What a repository stores for one organisation: its own policy and the
/// instance default, either of which may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredPolicies {
    /// The organisation's own policy.
    pub org: Option<StoredPolicy>,
    /// The instance default.
    pub default: Option<StoredPolicy>,
}

/// The lockout policy in force for an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyInForce {
    /// The organisation.
    pub org: OrgId,
    /// The policy in force.
    pub policy: LockoutPolicy,
    /// True when the organisation has no policy of its own: the instance
    /// default (stored, or the built-in one that never locks) is in force.
    pub is_default: bool,
    /// Who set the policy in force and when; `None` for the built-in one.
    pub changed: Option<(crate::id::UserId, Timestamp)>,
}

impl StoredPolicies {
    /// The policy in force for `org`: its own, else the stored default,
    /// else [`LockoutPolicy::default`] (never lock).
    pub fn in_force(self, org: &OrgId) -> PolicyInForce {
        let (stored, is_default) = match (self.org, self.default) {
            (Some(own), _) => (Some(own), false),
            (None, default) => (default, true),
        };
        PolicyInForce {
            org: org.clone(),
            policy: stored
                .as_ref()
                .map_or_else(LockoutPolicy::default, |s| s.policy.clone()),
            is_default,
            changed: stored.map(|s| (s.changed_by, s.changed_at)),
        }
    }
}

impl std::str::FromStr for Factor {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        Factor::parse(name)
    }
}

impl LockoutPolicy {
    /// The number of failed checks of `factor` that locks; 0 = never.
    pub fn limit(&self, factor: Factor) -> u32 {
        if factor.is_otp() {
            self.max_otp_attempts
        } else {
            self.max_password_attempts
        }
    }

    /// When a lockout written at `now` expires, given the number of temporary
    /// lockouts the user already had; `None` = permanent.
    pub fn lock_expiry(&self, now: Timestamp, previous_lockouts: u32) -> Option<Timestamp> {
        let base = self.lock_duration_ms?;
        if self.permanent_after > 0 && previous_lockouts >= self.permanent_after {
            return None;
        }
        let growth = u64::from(self.duration_growth.max(1));
        let factor = growth.saturating_pow(previous_lockouts);
        let mut duration = base.saturating_mul(factor);
        if let Some(max) = self.max_lock_duration_ms {
            duration = duration.min(max);
        }
        Some(now.plus_millis(i64::try_from(duration).unwrap_or(i64::MAX)))
    }

    /// Checks the policy's own consistency.
    ///
    /// # Errors
    /// InvalidArgument for a zero duration or a growth of 0.
    pub fn validate(&self) -> Result<()> {
        if self.lock_duration_ms == Some(0) || self.max_lock_duration_ms == Some(0) {
            return Err(Error::invalid(
                ids::INVALID_POLICY,
                "lock durations must be positive",
            ));
        }
        if self.duration_growth == 0 {
            return Err(Error::invalid(
                ids::INVALID_POLICY,
                "duration growth must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The lockout policies in force: an instance default and per-organisation
/// overrides. Shared by reference; changes apply to the next check.
#[derive(Debug, Default)]
pub struct LockoutPolicies {
    default: RwLock<LockoutPolicy>,
    orgs: RwLock<HashMap<OrgId, LockoutPolicy>>,
}

impl LockoutPolicies {
    /// Policies with `default` for every organisation.
    ///
    /// # Errors
    /// InvalidArgument for an inconsistent policy (see [`LockoutPolicy::validate`]).
    pub fn new(default: LockoutPolicy) -> Result<Self> {
        default.validate()?;
        Ok(LockoutPolicies {
            default: RwLock::new(default),
            orgs: RwLock::default(),
        })
    }

    /// The policy of `org`: its own, or the instance default.
    pub fn policy_for(&self, org: &OrgId) -> LockoutPolicy {
        // Writers replace whole values, so a poisoned lock holds a complete one.
        let orgs = self.orgs.read().unwrap_or_else(|e| e.into_inner());
        match orgs.get(org) {
            Some(policy) => policy.clone(),
            None => self
                .default
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Replaces the instance default.
    ///
    /// # Errors
    /// InvalidArgument for an inconsistent policy.
    pub fn set_default(&self, policy: LockoutPolicy) -> Result<()> {
        policy.validate()?;
        *self.default.write().unwrap_or_else(|e| e.into_inner()) = policy;
        Ok(())
    }

    /// Sets the policy of `org`.
    ///
    /// # Errors
    /// InvalidArgument for an inconsistent policy.
    pub fn set_org(&self, org: &OrgId, policy: LockoutPolicy) -> Result<()> {
        policy.validate()?;
        let mut orgs = self.orgs.write().unwrap_or_else(|e| e.into_inner());
        orgs.insert(org.clone(), policy);
        Ok(())
    }

    /// Makes `org` follow the instance default again.
    pub fn clear_org(&self, org: &OrgId) {
        let mut orgs = self.orgs.write().unwrap_or_else(|e| e.into_inner());
        orgs.remove(org);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms).unwrap()
    }

    #[test]
    fn lockouts_grow_up_to_the_maximum_then_turn_permanent() {
        let policy = LockoutPolicy {
            lock_duration_ms: Some(1_000),
            duration_growth: 2,
            max_lock_duration_ms: Some(5_000),
            permanent_after: 4,
            ..LockoutPolicy::default()
        };
        let expiries: Vec<Option<i64>> = (0..6)
            .map(|n| policy.lock_expiry(t(0), n).map(Timestamp::unix_millis))
            .collect();
        assert_eq!(
            expiries,
            [
                Some(1_000),
                Some(2_000),
                Some(4_000),
                Some(5_000),
                None,
                None
            ]
        );
        assert_eq!(LockoutPolicy::default().lock_expiry(t(0), 0), None);
        let huge = LockoutPolicy {
            lock_duration_ms: Some(u64::MAX),
            duration_growth: u32::MAX,
            ..LockoutPolicy::default()
        };
        assert!(huge.lock_expiry(t(0), u32::MAX).is_some());
    }

    #[test]
    fn misspelt_policy_fields_are_refused() {
        assert!(serde_json::from_str::<LockoutPolicy>(r#"{"maxPasswordAttempt":3}"#).is_err());
        let partial: LockoutPolicy = serde_json::from_str(r#"{"maxPasswordAttempts":3}"#).unwrap();
        assert_eq!(partial.max_password_attempts, 3);
        assert!(partial.show_attempts);
    }

    #[test]
    fn inconsistent_policies_are_refused() {
        let policies = LockoutPolicies::default();
        let zero = LockoutPolicy {
            lock_duration_ms: Some(0),
            ..LockoutPolicy::default()
        };
        assert!(policies.set_default(zero.clone()).is_err());
        assert!(LockoutPolicies::new(zero).is_err());
        let no_growth = LockoutPolicy {
            duration_growth: 0,
            ..LockoutPolicy::default()
        };
        assert!(policies
            .set_org(&OrgId::new("acme").unwrap(), no_growth)
            .is_err());
    }
}
