//! Where things are on disk: the trees of the current format and the
//! layout of their keys. Ids never contain control characters, so a 0x00
//! byte after a variable-length id ends it unambiguously: `ab` and `a` can
//! never share a prefix once the separator follows.
//!
//! | tree | key | value |
//! |---|---|---|
//! | `userstate.snapshots.v2` | user id | the user's record |
//! | `userstate.events.v2` | user id, 0x00, sequence as big-endian u64 | the event's record |
//! | `userstate.by_org_state` | org id, 0x00, state code, user id | empty |
//! | `userstate.by_org` | org id, 0x00, user id (existing users only) | empty |
//! | `userstate.losses` | big-endian u64, from 1 | a loss accepted at open |
//! | `userstate.feed` | feed position as big-endian u64, from 1 | the event's key in `userstate.events.v2` |
//! | `userstate.policies` | org id (empty: the instance default) | the lockout policy's record |
//!
//! sled's default tree holds the format version (`userstate.format`) and
//! the count of committed events (`userstate.committed`, big-endian u64),
//! which every transaction that stores events advances; the commit mark
//! compares it with what it recorded outside sled.

use sled::{Db, Tree};
use userstate::{Error, OrgId, Result, UserId, UserState};

use crate::error::from_sled;
use crate::record::state_code;

/// Key of the format version in sled's default tree.
pub(crate) const FORMAT_KEY: &[u8] = b"userstate.format";

/// Key of the count of committed events in sled's default tree (format 3).
pub(crate) const COMMITTED_KEY: &[u8] = b"userstate.committed";

/// The commit mark, in the database directory beside sled's files.
pub(crate) const MARK_FILE: &str = "userstate.commits";

/// Where an open that must not touch a damaged database first opens a
/// copy of it (see [`crate::engine`]).
pub(crate) const PROBE_DIR: &str = "userstate.probe";

/// The snapshots of format 2.
pub(crate) const SNAPSHOTS: &str = "userstate.snapshots.v2";
/// The events of format 2.
pub(crate) const EVENTS: &str = "userstate.events.v2";
/// The index by organisation and state (every format).
pub(crate) const BY_ORG_STATE: &str = "userstate.by_org_state";
/// The index of existing users by organisation (every format).
pub(crate) const BY_ORG: &str = "userstate.by_org";
/// The losses accepted at open (format 3).
pub(crate) const LOSSES: &str = "userstate.losses";
/// The change feed: each event's key by position (format 4).
pub(crate) const FEED: &str = "userstate.feed";
/// The lockout policies by organisation id; the empty key is the instance
/// default (format 4).
pub(crate) const POLICIES: &str = "userstate.policies";

/// The open trees of a database of the current format: cheap to clone into
/// the reader threads and the writer.
#[derive(Debug, Clone)]
pub(crate) struct Trees {
    pub(crate) db: Db,
    pub(crate) snapshots: Tree,
    pub(crate) events: Tree,
    pub(crate) by_org_state: Tree,
    pub(crate) by_org: Tree,
    pub(crate) losses: Tree,
    pub(crate) feed: Tree,
    pub(crate) policies: Tree,
}

impl Trees {
    /// Opens the trees of `db`, which [`crate::format`] has checked.
    ///
    /// # Errors
    /// sled errors as mapped by [`from_sled`].
    pub(crate) fn open(db: Db) -> Result<Self> {
        let tree = |name: &str| db.open_tree(name).map_err(from_sled);
        Ok(Trees {
            snapshots: tree(SNAPSHOTS)?,
            events: tree(EVENTS)?,
            by_org_state: tree(BY_ORG_STATE)?,
            by_org: tree(BY_ORG)?,
            losses: tree(LOSSES)?,
            feed: tree(FEED)?,
            policies: tree(POLICIES)?,
            db,
        })
    }
}

/// The key of `org`'s lockout policy; the empty key is the instance
/// default (organisation ids are never empty).
pub(crate) fn policy_key(org: Option<&OrgId>) -> &[u8] {
    org.map_or(&[][..], |org| org.as_str().as_bytes())
}

/// The key of feed `position`.
pub(crate) fn feed_key(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

/// The position a key of the feed tree holds.
///
/// # Errors
/// Corrupt when the key is not eight bytes.
pub(crate) fn position_of_key(key: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| Error::corrupt("a key of the feed is not a position"))
}

/// The last position of the feed (0 when it is empty).
///
/// # Errors
/// sled errors as mapped by [`from_sled`]; Corrupt for a key that is not a
/// position.
pub(crate) fn last_position(feed: &Tree) -> Result<u64> {
    match feed.last().map_err(from_sled)? {
        Some((key, _)) => position_of_key(&key),
        None => Ok(0),
    }
}

/// The count stored under [`COMMITTED_KEY`].
///
/// # Errors
/// Corrupt when it is missing or not eight bytes.
pub(crate) fn committed(db: &Db) -> Result<u64> {
    let stored = db
        .get(COMMITTED_KEY)
        .map_err(from_sled)?
        .ok_or_else(|| Error::corrupt("the count of committed events is missing"))?;
    <[u8; 8]>::try_from(stored.as_ref())
        .map(u64::from_be_bytes)
        .map_err(|_| Error::corrupt("the count of committed events is unreadable"))
}

/// Ends a variable-length id inside a composite key.
const SEPARATOR: u8 = 0x00;
/// The byte after [`SEPARATOR`]: the exclusive upper bound of "everything
/// that starts with this id and a separator".
const AFTER_SEPARATOR: u8 = 0x01;

/// `snapshots` tree: the user id, as is.
pub(crate) fn snapshot_key(user: &UserId) -> Vec<u8> {
    user.as_str().as_bytes().to_vec()
}

/// `events` tree: user id, separator, big-endian sequence. Big-endian keeps
/// a user's events in sequence order, so a history is one range scan.
pub(crate) fn event_key(user: &UserId, sequence: u64) -> Vec<u8> {
    let mut key = id_prefix(user.as_str());
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

/// `by_org_state` tree: organisation, separator, state, user id.
pub(crate) fn org_state_key(org: &OrgId, state: UserState, user: &UserId) -> Vec<u8> {
    let mut key = org_state_prefix(org, state);
    key.extend_from_slice(user.as_str().as_bytes());
    key
}

/// `by_org` tree: organisation, separator, user id.
pub(crate) fn org_key(org: &OrgId, user: &UserId) -> Vec<u8> {
    let mut key = id_prefix(org.as_str());
    key.extend_from_slice(user.as_str().as_bytes());
    key
}

/// Every key of the `by_org_state` tree for `org` and `state` starts with this.
pub(crate) fn org_state_prefix(org: &OrgId, state: UserState) -> Vec<u8> {
    let mut key = id_prefix(org.as_str());
    key.push(state_code(state));
    key
}

/// Every key of the `by_org` tree for `org` starts with this.
pub(crate) fn org_prefix(org: &OrgId) -> Vec<u8> {
    id_prefix(org.as_str())
}

/// The exclusive end of the keys that start with `prefix` (which never ends
/// in 0xff here: it ends in a separator or a state code).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    match end.last_mut() {
        Some(last) if *last < u8::MAX => *last += 1,
        _ => end.push(u8::MAX),
    }
    end
}

/// The user id at the end of an index key that starts with `prefix`.
///
/// # Errors
/// Internal when the key does not start with `prefix` or the rest is not a
/// valid user id.
pub(crate) fn user_after_prefix(key: &[u8], prefix: &[u8]) -> Result<UserId> {
    let rest = key
        .strip_prefix(prefix)
        .ok_or_else(|| Error::corrupt("index key outside its range"))?;
    let text = std::str::from_utf8(rest)
        .map_err(|e| Error::corrupt("index key holds an invalid user id").with_source(e))?;
    UserId::from_stored(text)
        .map_err(|e| Error::corrupt("index key holds an invalid user id").with_source(e))
}

/// The user a `snapshots` key names.
///
/// # Errors
/// Corrupt when the key is not a valid user id.
pub(crate) fn user_of_snapshot_key(key: &[u8]) -> Result<UserId> {
    user_after_prefix(key, &[])
}

/// The user and sequence an `events` key names.
///
/// # Errors
/// Corrupt when the key is not an id, the separator and eight bytes.
pub(crate) fn event_of_key(key: &[u8]) -> Result<(UserId, u64)> {
    let split = key
        .len()
        .checked_sub(9)
        .filter(|at| key.get(*at) == Some(&SEPARATOR))
        .ok_or_else(|| Error::corrupt("an event key of the wrong shape"))?;
    let (id, rest) = key.split_at(split);
    let sequence = rest
        .get(1..)
        .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| Error::corrupt("an event key of the wrong shape"))?;
    Ok((user_after_prefix(id, &[])?, sequence))
}

/// The first key after `prefix` of a user's events: the separator ends the
/// id so `a` never matches events of `ab`.
fn id_prefix(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(id.len() + 1 + 8);
    key.extend_from_slice(id.as_bytes());
    key.push(SEPARATOR);
    key
}

/// The organisation an index key (of `by_org_state` or `by_org`) starts with.
///
/// # Errors
/// Corrupt when the key has no separator or the organisation is not valid.
pub(crate) fn org_of_index_key(key: &[u8]) -> Result<OrgId> {
    let org = key
        .split(|&b| b == SEPARATOR)
        .next()
        .filter(|org| org.len() < key.len())
        .ok_or_else(|| Error::corrupt("an index key holds no organisation"))?;
    std::str::from_utf8(org)
        .ok()
        .and_then(|org| OrgId::from_stored(org).ok())
        .ok_or_else(|| Error::corrupt("an index key holds an invalid organisation"))
}

/// The exclusive end of all events of `user`.
pub(crate) fn events_end(user: &UserId) -> Vec<u8> {
    let mut key = user.as_str().as_bytes().to_vec();
    key.push(AFTER_SEPARATOR);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::from_stored(id).unwrap()
    }

    fn org(id: &str) -> OrgId {
        OrgId::from_stored(id).unwrap()
    }

    #[test]
    fn events_of_an_id_never_include_events_of_a_longer_id() {
        let a = user("a");
        let ab = user("ab");
        let range = event_key(&a, 0)..events_end(&a);
        for sequence in [0, 1, 255, 256, u64::MAX] {
            assert!(range.contains(&event_key(&a, sequence)));
            assert!(!range.contains(&event_key(&ab, sequence)));
        }
        // An id ending just below the separator's successor stays outside too.
        let range_ab = event_key(&ab, 0)..events_end(&ab);
        assert!(!range_ab.contains(&event_key(&a, 7)));
    }

    #[test]
    fn events_sort_by_sequence() {
        let a = user("a");
        assert!(event_key(&a, 255) < event_key(&a, 256));
        assert!(event_key(&a, 1) < event_key(&a, u64::MAX));
    }

    #[test]
    fn organisations_that_are_prefixes_do_not_mix() {
        let a = org("a");
        let ab = org("ab");
        let u = user("u");
        let prefix = org_prefix(&a);
        let end = prefix_end(&prefix);
        let range = prefix.clone()..end;
        assert!(range.contains(&org_key(&a, &u)));
        assert!(!range.contains(&org_key(&ab, &u)));

        let locked = org_state_prefix(&a, UserState::Locked);
        let range = locked.clone()..prefix_end(&locked);
        assert!(range.contains(&org_state_key(&a, UserState::Locked, &u)));
        assert!(!range.contains(&org_state_key(&a, UserState::Active, &u)));
        assert!(!range.contains(&org_state_key(&ab, UserState::Locked, &u)));
    }

    #[test]
    fn index_keys_give_back_their_user() {
        let a = org("acme");
        let u = user("alice");
        let key = org_state_key(&a, UserState::Inactive, &u);
        let prefix = org_state_prefix(&a, UserState::Inactive);
        assert_eq!(user_after_prefix(&key, &prefix).unwrap(), u);
        assert!(user_after_prefix(&key, &org_prefix(&org("other"))).is_err());
        assert!(user_after_prefix(&[0, 0xff], &[0]).is_err());
        assert!(user_after_prefix(&[0], &[0]).is_err(), "empty id");
    }

    #[test]
    fn event_keys_give_back_their_user_and_sequence() {
        for (id, sequence) in [("a", 0), ("ab", 256), ("é", u64::MAX)] {
            let key = event_key(&user(id), sequence);
            assert_eq!(event_of_key(&key).unwrap(), (user(id), sequence));
        }
        assert!(event_of_key(b"short").is_err());
        assert!(event_of_key(&[b'a', 1, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(
            event_of_key(&[0, 0, 0, 0, 0, 0, 0, 0, 1]).is_err(),
            "empty id"
        );
    }

    #[test]
    fn id_order_is_key_order() {
        let a = org("acme");
        let ids = ["a", "a b", "aa", "b", "z", "é"];
        let keys: Vec<_> = ids.iter().map(|i| org_key(&a, &user(i))).collect();
        let users: Vec<_> = ids.iter().map(|i| user(i)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(users.windows(2).all(|w| w[0] < w[1]));
    }
}
