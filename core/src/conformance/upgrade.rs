//! For adapters' upgrade tests: a database written by an earlier release
//! must read back exactly what that release read back from it. The release
//! recorded that as JSON (the core types' serde form) next to its database:
//! every user (or `null`) with its whole history, and every list of its
//! organisations in pages of 3.

use std::sync::Arc;

use serde::Deserialize;

use crate::storage::Scope;
use crate::{
    Cursor, Event, HistoryQuery, ListQuery, OrgId, User, UserId, UserRepository, UserState,
};

#[derive(Debug, Deserialize)]
struct Recorded {
    users: Vec<RecordedUser>,
    lists: Vec<RecordedList>,
}

#[derive(Debug, Deserialize)]
struct RecordedUser {
    id: UserId,
    user: Option<User>,
    history: Vec<Event>,
}

#[derive(Debug, Deserialize)]
struct RecordedList {
    org: OrgId,
    state: Option<UserState>,
    pages: Vec<RecordedPage>,
}

/// A page as the earlier release wrote it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordedPage {
    users: Vec<User>,
    next_after: Option<UserId>,
}

/// Reads back from `repo` every user, history and list page that
/// `recorded` (the earlier release's JSON) names, and compares each with
/// what that release read. Returns the number of users and events compared.
///
/// # Panics
/// On any difference, a read that fails, or JSON that does not parse.
pub async fn assert_reads_back(repo: Arc<dyn UserRepository>, recorded: &str) -> (usize, usize) {
    let recorded: Recorded = serde_json::from_str(recorded).expect("the recorded read-back parses");
    let mut events = 0;
    for expected in &recorded.users {
        let id = &expected.id;
        let user = repo.load(id, &Scope::Instance).await.expect("load");
        assert_eq!(user, expected.user, "user {id}");
        let mut history = Vec::new();
        loop {
            let query = HistoryQuery::after_sequence(history.len() as u64, 100);
            let page = repo
                .history(id, &Scope::Instance, query)
                .await
                .expect("history");
            if page.is_empty() {
                break;
            }
            history.extend(page);
        }
        assert_eq!(history, expected.history, "history of {id}");
        assert_eq!(
            user,
            crate::User::replay(&history),
            "the snapshot of {id} is not the replay of its history"
        );
        events += history.len();
    }
    for expected in &recorded.lists {
        let mut query = ListQuery {
            state: expected.state,
            after: None,
            limit: 3,
        };
        let mut pages = Vec::new();
        loop {
            let page = repo.list(&expected.org, &query).await.expect("list");
            let next = page.next.clone();
            pages.push(page);
            match next {
                Some(after) => query.after = Some(after),
                None => break,
            }
        }
        let recorded: Vec<_> = expected
            .pages
            .iter()
            .map(|page| {
                let next = page.next_after.as_ref().map(Cursor::after_user);
                (page.users.clone(), next)
            })
            .collect();
        let read: Vec<_> = pages.into_iter().map(|p| (p.items, p.next)).collect();
        assert_eq!(
            read, recorded,
            "list of {} in {:?}",
            expected.org, expected.state
        );
    }
    // The upgrade gave every stored event a position, each user's in order.
    let feed = super::feed::whole_feed(repo.as_ref(), 0).await;
    assert_eq!(feed.len(), events, "every stored event is in the feed");
    assert!(feed.windows(2).all(|w| w[0].position < w[1].position));
    for expected in &recorded.users {
        let of_user: Vec<&Event> = feed
            .iter()
            .map(|e| &e.event)
            .filter(|e| e.user_id == expected.id)
            .collect();
        let history: Vec<&Event> = expected.history.iter().collect();
        assert_eq!(of_user, history, "the feed's events of {}", expected.id);
    }
    (recorded.users.len(), events)
}
