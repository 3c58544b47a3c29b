//! The reads: one user, a page of a user's history, a page of an
//! organisation's users, each on the trees as sled shows them now. The
//! writer reads a user with the same [`load`] before it decides.

use std::ops::Bound;

use userstate::storage::page_of;
use userstate::{
    Error, Event, HistoryQuery, ListQuery, OrgId, Page, Result, User, UserId, UserState,
};

use crate::error::from_sled;
use crate::layout::{self, Trees};
use crate::record::{decode_event, decode_user};

/// The stored snapshot of `id`.
///
/// # Errors
/// Corrupt when the record cannot be decoded or is of another user.
pub(crate) fn load(trees: &Trees, id: &UserId) -> Result<Option<User>> {
    trees
        .snapshots
        .get(layout::snapshot_key(id))
        .map_err(from_sled)?
        .map(|bytes| decode_user(id, &bytes))
        .transpose()
}

/// Events of `id` after `query.after_sequence`, at most `query.limit`.
///
/// # Errors
/// Corrupt when an event cannot be decoded or is not the one its key names.
pub(crate) fn history(trees: &Trees, id: &UserId, query: HistoryQuery) -> Result<Vec<Event>> {
    let Some(first) = query.after_sequence.checked_add(1) else {
        return Ok(Vec::new());
    };
    let range = layout::event_key(id, first)..layout::events_end(id);
    let mut events = Vec::new();
    for entry in trees.events.range(range).take(query.limit as usize) {
        let (key, bytes) = entry.map_err(from_sled)?;
        let (user, sequence) = layout::event_of_key(&key)?;
        if user != *id {
            return Err(Error::corrupt("an event key outside its user's range"));
        }
        events.push(decode_event(id, sequence, &bytes)?);
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
/// Corrupt when an index entry or snapshot cannot be decoded.
pub(crate) fn list(trees: &Trees, org: &OrgId, query: &ListQuery) -> Result<Page> {
    let (tree, prefix) = match query.state {
        Some(state) => (&trees.by_org_state, layout::org_state_prefix(org, state)),
        None => (&trees.by_org, layout::org_prefix(org)),
    };
    let start = match &query.after {
        Some(after) => {
            let mut key = prefix.clone();
            key.extend_from_slice(after.as_str().as_bytes());
            Bound::Excluded(key)
        }
        None => Bound::Included(prefix.clone()),
    };
    let end = Bound::Excluded(layout::prefix_end(&prefix));
    let users = tree
        .range((start, end))
        .map(|entry| {
            let (key, _) = entry.map_err(from_sled)?;
            let id = layout::user_after_prefix(&key, &prefix)?;
            load(trees, &id)?.ok_or_else(|| Error::corrupt("index names a user without a snapshot"))
        })
        .filter(|user| match user {
            Ok(user) => {
                user.org_id == *org
                    && query
                        .state
                        .map_or(user.state != UserState::Deleted, |state| {
                            user.state == state
                        })
            }
            Err(_) => true,
        });
    page_of(users, query.limit)
}

#[cfg(test)]
mod tests {
    use userstate::storage::{self, Commit, Update};
    use userstate::{ids, EventPayload, InitialState, Timestamp};

    use super::*;
    use crate::record::encode_event;
    use crate::writer;

    fn trees() -> Trees {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Trees::open(db).unwrap()
    }

    fn user(id: &str) -> UserId {
        UserId::new(id).unwrap()
    }

    fn event(id: &str, sequence: u64, payload: EventPayload) -> Event {
        Event {
            user_id: user(id),
            org_id: OrgId::new("acme").unwrap(),
            sequence,
            created_at: Timestamp::from_unix_millis(1_000 * sequence as i64).unwrap(),
            creator: user("admin"),
            payload,
        }
    }

    /// Appends one event to `id` through the writer's own path.
    fn append(trees: &Trees, id: &str, payload: EventPayload) -> User {
        let before = load(trees, &user(id)).unwrap();
        let sequence = before.as_ref().map_or(0, |u| u.sequence) + 1;
        let commit = Commit::new(before, vec![event(id, sequence, payload)]).unwrap();
        let update = Update::new(user(id), storage::append(commit));
        writer::apply(trees, update).unwrap().0
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
        append(&trees, "ab", EventPayload::Deactivated);
        assert_eq!(
            history(&trees, &user("a"), HistoryQuery::default())
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            history(&trees, &user("ab"), HistoryQuery::default())
                .unwrap()
                .len(),
            2
        );
        let acme = OrgId::new("acme").unwrap();
        let active = list(&trees, &acme, &ListQuery::in_state(UserState::Active)).unwrap();
        assert_eq!(active.users.len(), 1);
        assert_eq!(active.users[0].id, user("a"));
    }

    #[test]
    fn history_after_the_last_possible_sequence_is_empty() {
        let trees = trees();
        append(&trees, "a", added());
        let query = HistoryQuery {
            after_sequence: u64::MAX,
            limit: 10,
        };
        assert!(history(&trees, &user("a"), query).unwrap().is_empty());
    }

    #[test]
    fn removed_users_leave_the_unfiltered_list() {
        let trees = trees();
        append(&trees, "a", added());
        append(&trees, "a", EventPayload::Removed);
        let acme = OrgId::new("acme").unwrap();
        assert!(list(&trees, &acme, &ListQuery::all())
            .unwrap()
            .users
            .is_empty());
    }

    #[test]
    fn a_corrupt_snapshot_blocks_only_its_user() {
        let trees = trees();
        append(&trees, "a", added());
        append(&trees, "b", added());
        trees.snapshots.insert("a", &[2u8, 0xff][..]).unwrap();
        assert_eq!(load(&trees, &user("a")).unwrap_err().id(), ids::CORRUPT);
        // A write to it is refused before the decision, nothing overwritten.
        let decide = storage::append(
            Commit::new(None, vec![event("a", 1, EventPayload::Deactivated)]).unwrap(),
        );
        let refused = writer::apply(&trees, Update::new(user("a"), decide)).unwrap_err();
        assert_eq!(refused.id(), ids::CORRUPT);
        assert!(load(&trees, &user("b")).unwrap().is_some());
        append(&trees, "b", EventPayload::Deactivated);
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
        let err = history(&trees, &user("a"), HistoryQuery::default()).unwrap_err();
        assert_eq!(err.id(), ids::CORRUPT);
    }

    #[test]
    fn an_event_already_stored_where_a_commit_writes_is_never_overwritten() {
        let trees = trees();
        append(&trees, "a", added());
        let stray = encode_event(&event("a", 2, EventPayload::Removed)).unwrap();
        trees
            .events
            .insert(layout::event_key(&user("a"), 2), stray.clone())
            .unwrap();
        let before = load(&trees, &user("a")).unwrap();
        let commit = Commit::new(
            before.clone(),
            vec![event("a", 2, EventPayload::Deactivated)],
        )
        .unwrap();
        let err =
            writer::apply(&trees, Update::new(user("a"), storage::append(commit))).unwrap_err();
        assert_eq!(err.id(), ids::CORRUPT);
        assert_eq!(load(&trees, &user("a")).unwrap(), before);
        let kept = trees
            .events
            .get(layout::event_key(&user("a"), 2))
            .unwrap()
            .unwrap();
        assert_eq!(kept.as_ref(), stray.as_slice());
    }
}
