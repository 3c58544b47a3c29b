//! The reads: one user, a page of a user's history, a page of an
//! organisation's users, each on the trees as sled shows them now. The
//! writer reads a user with the same [`load`] before it decides.
//!
//! What cannot be read is Corrupt naming its user, never skipped: sled
//! checks every page it reads against its checksum, and the records repeat
//! their keys. A user outside the scope is absent even when damaged: its
//! organisation is told from its record, or from its first event when the
//! record cannot be read; when nothing tells it, the damage is reported.

use std::ops::Bound;
use std::panic::{catch_unwind, AssertUnwindSafe};

use userstate::storage::{page_of, AcceptedLoss, Scope};
use userstate::{
    Error, Event, FeedEvent, HistoryQuery, ListQuery, OrgId, Page, Result, StoredPolicies,
    StoredPolicy, User, UserId, UserState,
};

use crate::error::from_sled;
use crate::layout::{self, Trees};
use crate::record::{decode_event, decode_loss, decode_user, event_org, snapshot_org};

/// The stored snapshot of `id` if it is in `scope`.
///
/// # Errors
/// Corrupt, naming the user, when its record cannot be read or decoded
/// and it may be in the scope.
pub(crate) fn load(trees: &Trees, id: &UserId, scope: &Scope) -> Result<Option<User>> {
    let stored = guarded(|| trees.snapshots.get(layout::snapshot_key(id)));
    let damage = match stored {
        Ok(None) => return Ok(None),
        Ok(Some(bytes)) => match decode_user(id, &bytes) {
            Ok(user) => return Ok(scope.admits(&user.org_id).then_some(user)),
            Err(damage) => {
                if !scope.may_admit(snapshot_org(&bytes).iter()) {
                    return Ok(None);
                }
                damage
            }
        },
        Err(e) => Error::corrupt(format!(
            "the stored snapshot of user {id} cannot be read: {}",
            e.message()
        ))
        .with_source(e),
    };
    if scope.may_admit(first_event_org(trees, id).iter()) {
        Err(damage)
    } else {
        Ok(None)
    }
}

/// The organisation of the first stored event of `id`, if it can be read.
fn first_event_org(trees: &Trees, id: &UserId) -> Option<OrgId> {
    let range = layout::event_key(id, 0)..layout::events_end(id);
    let first = guarded(|| trees.events.range(range).next().transpose()).ok()??;
    event_org(&first.1)
}

/// Events of `id` after the query's sequence, at most `query.limit`; none
/// if its user is outside `scope`.
///
/// # Errors
/// Corrupt, naming the user, when an event cannot be read or decoded, is
/// not the one its key names, or is missing.
pub(crate) fn history(
    trees: &Trees,
    id: &UserId,
    scope: &Scope,
    query: HistoryQuery,
) -> Result<Vec<Event>> {
    let Some(user) = load(trees, id, scope)? else {
        return Ok(Vec::new());
    };
    let after = query.sequence()?;
    let Some(first) = after.checked_add(1) else {
        return Ok(Vec::new());
    };
    let unreadable = |e: Error| {
        Error::corrupt(format!(
            "the history of user {id} cannot be read: {}",
            e.message()
        ))
        .with_source(e)
    };
    let range = layout::event_key(id, first)..layout::events_end(id);
    let entries = guarded(|| {
        trees
            .events
            .range(range)
            .take(query.limit as usize)
            .collect::<sled::Result<Vec<_>>>()
    })
    .map_err(unreadable)?;
    let mut expected = after;
    let mut events = Vec::with_capacity(entries.len());
    for (key, bytes) in &entries {
        let (user_of_key, sequence) = layout::event_of_key(key)?;
        expected += 1;
        if user_of_key != *id || sequence != expected || sequence > user.sequence {
            return Err(Error::corrupt(format!(
                "the history of user {id} has a gap"
            )));
        }
        events.push(decode_event(id, sequence, bytes)?);
    }
    let ended = entries.len() < query.limit as usize;
    if ended && expected < user.sequence {
        return Err(Error::corrupt(format!(
            "the history of user {id} ends at {expected}, before its snapshot's sequence {}",
            user.sequence
        )));
    }
    Ok(events)
}

/// A page of the users of `org`, ordered by id.
///
/// An index entry and the snapshot it names are read one after the other,
/// so a user the writer changed in between is checked against the query
/// again and skipped if it no longer matches.
///
/// # Errors
/// Corrupt, naming the user (or the last one read before the damage), when
/// an index entry or snapshot cannot be read or decoded, or an index names
/// a user without a snapshot.
pub(crate) fn list(trees: &Trees, org: &OrgId, query: &ListQuery) -> Result<Page<User>> {
    let after = query.after_user()?;
    let (tree, prefix) = match query.state {
        Some(state) => (&trees.by_org_state, layout::org_state_prefix(org, state)),
        None => (&trees.by_org, layout::org_prefix(org)),
    };
    let start = match &after {
        Some(after) => {
            let mut key = prefix.clone();
            key.extend_from_slice(after.as_str().as_bytes());
            Bound::Excluded(key)
        }
        None => Bound::Included(prefix.clone()),
    };
    let end = Bound::Excluded(layout::prefix_end(&prefix));
    let mut entries = tree.range((start, end)).keys();
    let mut last_read = after;
    let scope = Scope::Org(org.clone());
    let users = std::iter::from_fn(move || {
        let key = match guarded(|| entries.next().transpose()) {
            Ok(key) => key?,
            Err(e) => {
                let after = last_read
                    .as_ref()
                    .map_or_else(|| "its start".to_owned(), |id| format!("user {id}"));
                return Some(Err(Error::corrupt(format!(
                    "the index of the users of {org} cannot be read after {after}: {}",
                    e.message()
                ))
                .with_source(e)));
            }
        };
        let user = layout::user_after_prefix(&key, &prefix).and_then(|id| {
            last_read = Some(id.clone());
            load(trees, &id, &scope)?.ok_or_else(|| {
                Error::corrupt(format!(
                    "an index names user {id}, which has no snapshot in {org}"
                ))
            })
        });
        Some(user)
    })
    .filter(|user| match user {
        Ok(user) => query
            .state
            .map_or(user.state != UserState::Deleted, |state| {
                user.state == state
            }),
        Err(_) => true,
    });
    page_of(users, query.limit)
}

/// Up to `limit` events after feed position `after`, in position order:
/// each position's key, then the event it names.
///
/// # Errors
/// Corrupt when the feed or an event cannot be read or decoded, or the
/// feed names an event that is not stored.
pub(crate) fn feed(trees: &Trees, after: u64, limit: u32) -> Result<Vec<FeedEvent>> {
    let Some(first) = after.checked_add(1) else {
        return Ok(Vec::new());
    };
    let unreadable = |e: Error| {
        Error::corrupt(format!(
            "the feed cannot be read after {after}: {}",
            e.message()
        ))
        .with_source(e)
    };
    let entries = guarded(|| {
        trees
            .feed
            .range(layout::feed_key(first)..)
            .take(limit as usize)
            .collect::<sled::Result<Vec<_>>>()
    })
    .map_err(unreadable)?;
    entries
        .iter()
        .map(|(key, event_key)| {
            let position = layout::position_of_key(key)?;
            let (id, sequence) = layout::event_of_key(event_key)?;
            let bytes = guarded(|| trees.events.get(event_key))
                .map_err(unreadable)?
                .ok_or_else(|| {
                    Error::corrupt(format!(
                        "the feed names event {sequence} of user {id} at {position}, which is not stored"
                    ))
                })?;
            Ok(FeedEvent {
                position,
                event: decode_event(&id, sequence, &bytes)?,
            })
        })
        .collect()
}

/// The lockout policies stored for `org` and the instance default.
///
/// # Errors
/// Corrupt when a policy cannot be read or decoded.
pub(crate) fn policies(trees: &Trees, org: &OrgId) -> Result<StoredPolicies> {
    let read = |org: Option<&OrgId>| -> Result<Option<StoredPolicy>> {
        guarded(|| trees.policies.get(layout::policy_key(org)))?
            .map(|bytes| crate::record::decode_policy(org, &bytes))
            .transpose()
    };
    Ok(StoredPolicies {
        org: read(Some(org))?,
        default: read(None)?,
    })
}

/// The organisations with a lockout policy of their own, in order, after
/// `after`, at most `limit` of them (the instance default's empty key
/// sorts first and is skipped).
///
/// # Errors
/// Corrupt when a key cannot be read or is not an organisation id.
pub(crate) fn policy_organisations(
    trees: &Trees,
    after: Option<&OrgId>,
    limit: u32,
) -> Result<Vec<OrgId>> {
    use std::ops::Bound;
    let start = match after {
        Some(org) => Bound::Excluded(layout::policy_key(Some(org)).to_vec()),
        None => Bound::Excluded(Vec::new()),
    };
    let keys = guarded(|| {
        trees
            .policies
            .range::<Vec<u8>, _>((start, Bound::Unbounded))
            .keys()
            .take(limit as usize)
            .collect::<sled::Result<Vec<_>>>()
    })?;
    let orgs = keys
        .iter()
        .map(|key| {
            String::from_utf8(key.to_vec())
                .map_err(|e| Error::corrupt(e.to_string()))
                .and_then(OrgId::from_stored)
                .map_err(|e| {
                    Error::corrupt(format!(
                        "the policies tree holds an invalid organisation: {}",
                        e.message()
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(orgs)
}

/// How many users of `org` the index holds in `state` (`None`: all but
/// deleted ones), counting keys without reading a snapshot.
///
/// # Errors
/// Corrupt when the index cannot be read.
pub(crate) fn count(trees: &Trees, org: &OrgId, state: Option<UserState>) -> Result<u64> {
    let (tree, prefix) = match state {
        Some(state) => (&trees.by_org_state, layout::org_state_prefix(org, state)),
        None => (&trees.by_org, layout::org_prefix(org)),
    };
    guarded(|| {
        let mut count = 0;
        for key in tree.scan_prefix(&prefix).keys() {
            key?;
            count += 1;
        }
        Ok(count)
    })
    .map_err(|e: Error| {
        Error::corrupt(format!(
            "the index of the users of {org} cannot be read: {}",
            e.message()
        ))
        .with_source(e)
    })
}

/// The organisations with users, in order, after `after`, at most `limit`:
/// one seek per organisation in the index by organisation and state, which
/// holds removed users too.
///
/// # Errors
/// Corrupt when the index cannot be read or holds a key of no organisation.
pub(crate) fn organisations(
    trees: &Trees,
    after: Option<&OrgId>,
    limit: u32,
) -> Result<Vec<OrgId>> {
    let mut orgs = Vec::new();
    let mut from = after.map_or_else(Vec::new, |org| layout::prefix_end(&layout::org_prefix(org)));
    while orgs.len() < limit as usize {
        let next = guarded(|| {
            trees
                .by_org_state
                .range(from.clone()..)
                .keys()
                .next()
                .transpose()
        })
        .map_err(|e: Error| {
            Error::corrupt(format!(
                "the index of organisations cannot be read: {}",
                e.message()
            ))
            .with_source(e)
        })?;
        let Some(key) = next else { break };
        let org = layout::org_of_index_key(&key)?;
        from = layout::prefix_end(&layout::org_prefix(&org));
        orgs.push(org);
    }
    Ok(orgs)
}

/// The losses accepted at open, oldest first.
///
/// # Errors
/// Corrupt for a record that cannot be read or decoded.
pub(crate) fn accepted_losses(trees: &Trees) -> Result<Vec<AcceptedLoss>> {
    let records = guarded(|| {
        trees
            .losses
            .iter()
            .values()
            .collect::<sled::Result<Vec<_>>>()
    })?;
    records.iter().map(|bytes| decode_loss(bytes)).collect()
}

/// Runs a sled read, turning its errors into ours and a panic on a page
/// it cannot read (sled 0.34 asserts on some damage) into Corrupt.
pub(crate) fn guarded<T>(read: impl FnOnce() -> sled::Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(read))
        .map_err(|_| Error::corrupt("sled cannot read a page of the database"))?
        .map_err(from_sled)
}

#[cfg(test)]
mod tests {
    use userstate::storage::{self, Commit, Scope, Update};
    use userstate::{ids, EventPayload, InitialState, Timestamp};

    use super::*;
    use crate::record::encode_event;
    use crate::writer;

    fn trees() -> Trees {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Trees::open(db).unwrap()
    }

    fn user(id: &str) -> UserId {
        UserId::from_stored(id).unwrap()
    }

    fn event(id: &str, sequence: u64, payload: EventPayload) -> Event {
        Event {
            user_id: user(id),
            org_id: OrgId::from_stored("acme").unwrap(),
            sequence,
            created_at: Timestamp::from_unix_millis(1_000 * sequence as i64).unwrap(),
            creator: user("admin"),
            payload,
        }
    }

    /// Appends one event to `id` through the writer's own path.
    fn append(trees: &Trees, id: &str, payload: EventPayload) -> User {
        let before = load(trees, &user(id), &Scope::Instance).unwrap();
        let sequence = before.as_ref().map_or(0, |u| u.sequence) + 1;
        let commit = Commit::new(before, vec![event(id, sequence, payload)]).unwrap();
        let update = Update::new(user(id), Scope::Instance, storage::append(commit));
        writer::apply(
            trees,
            update,
            0,
            layout::last_position(&trees.feed).unwrap(),
        )
        .unwrap()
        .0
    }

    fn added() -> EventPayload {
        EventPayload::Added {
            state: InitialState::Active,
        }
    }

    #[test]
    fn ids_that_are_prefixes_keep_separate_histories_and_lists() {
        let trees = trees();
        append(&trees, "a", added());
        append(&trees, "ab", added());
        append(&trees, "ab", EventPayload::Deactivated { reason: None });
        assert_eq!(
            history(
                &trees,
                &user("a"),
                &Scope::Instance,
                HistoryQuery::default()
            )
            .unwrap()
            .len(),
            1
        );
        assert_eq!(
            history(
                &trees,
                &user("ab"),
                &Scope::Instance,
                HistoryQuery::default()
            )
            .unwrap()
            .len(),
            2
        );
        let acme = OrgId::from_stored("acme").unwrap();
        let active = list(&trees, &acme, &ListQuery::in_state(UserState::Active)).unwrap();
        assert_eq!(active.items.len(), 1);
        assert_eq!(active.items[0].id, user("a"));
    }

    #[test]
    fn history_after_the_last_possible_sequence_is_empty() {
        let trees = trees();
        append(&trees, "a", added());
        let query = HistoryQuery::after_sequence(u64::MAX, 10);
        assert!(history(&trees, &user("a"), &Scope::Instance, query)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn removed_users_leave_the_unfiltered_list() {
        let trees = trees();
        append(&trees, "a", added());
        append(&trees, "a", EventPayload::Removed { reason: None });
        let acme = OrgId::from_stored("acme").unwrap();
        assert!(list(&trees, &acme, &ListQuery::all())
            .unwrap()
            .items
            .is_empty());
    }

    #[test]
    fn a_corrupt_snapshot_blocks_only_its_user() {
        let trees = trees();
        append(&trees, "a", added());
        append(&trees, "b", added());
        trees.snapshots.insert("a", &[2u8, 0xff][..]).unwrap();
        assert_eq!(
            load(&trees, &user("a"), &Scope::Instance).unwrap_err().id(),
            ids::CORRUPT
        );
        // A write to it is refused before the decision, nothing overwritten.
        let decide = storage::append(
            Commit::new(
                None,
                vec![event("a", 1, EventPayload::Deactivated { reason: None })],
            )
            .unwrap(),
        );
        let refused = writer::apply(
            &trees,
            Update::new(user("a"), Scope::Instance, decide),
            0,
            0,
        )
        .unwrap_err();
        assert_eq!(refused.id(), ids::CORRUPT);
        assert!(load(&trees, &user("b"), &Scope::Instance)
            .unwrap()
            .is_some());
        append(&trees, "b", EventPayload::Deactivated { reason: None });
    }

    #[test]
    fn an_event_stored_under_the_wrong_key_is_corrupt() {
        let trees = trees();
        append(&trees, "a", added());
        let foreign = encode_event(&event("b", 2, added())).unwrap();
        trees
            .events
            .insert(layout::event_key(&user("a"), 2), foreign)
            .unwrap();
        let err = history(
            &trees,
            &user("a"),
            &Scope::Instance,
            HistoryQuery::default(),
        )
        .unwrap_err();
        assert_eq!(err.id(), ids::CORRUPT);
    }

    #[test]
    fn an_event_already_stored_where_a_commit_writes_is_never_overwritten() {
        let trees = trees();
        append(&trees, "a", added());
        let stray = encode_event(&event("a", 2, EventPayload::Removed { reason: None })).unwrap();
        trees
            .events
            .insert(layout::event_key(&user("a"), 2), stray.clone())
            .unwrap();
        let before = load(&trees, &user("a"), &Scope::Instance).unwrap();
        let commit = Commit::new(
            before.clone(),
            vec![event("a", 2, EventPayload::Deactivated { reason: None })],
        )
        .unwrap();
        let err = writer::apply(
            &trees,
            Update::new(user("a"), Scope::Instance, storage::append(commit)),
            0,
            0,
        )
        .unwrap_err();
        assert_eq!(err.id(), ids::CORRUPT);
        assert_eq!(load(&trees, &user("a"), &Scope::Instance).unwrap(), before);
        let kept = trees
            .events
            .get(layout::event_key(&user("a"), 2))
            .unwrap()
            .unwrap();
        assert_eq!(kept.as_ref(), stray.as_slice());
    }
}
