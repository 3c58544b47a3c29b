//! The change feed: every committed event once, at a position strictly
//! increasing in commit order, each user's events in sequence order; a
//! reader that follows the feed while writers commit never skips one; the
//! service scopes and filters it like every read.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;

use super::fixture::{user, Fixture};
use super::race::on_threads;
use crate::{
    ErrorKind, FeedEvent, FeedQuery, InitialState, LockRequest, UserId, UserRepository, UserState,
    MAX_PAGE_SIZE,
};

/// Every event of the feed after `after`, page by page.
pub(crate) async fn whole_feed(repo: &dyn UserRepository, after: u64) -> Vec<FeedEvent> {
    let mut all: Vec<FeedEvent> = Vec::new();
    loop {
        let from = all.last().map_or(after, |e| e.position);
        let page = repo.feed(from, MAX_PAGE_SIZE).await.expect("feed");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Checks the feed's own rules and that it is exactly the union of the
/// users' histories.
async fn assert_feed_is_the_histories(f: &Fixture, users: &[UserId]) -> Vec<FeedEvent> {
    let feed = whole_feed(f.repo.as_ref(), 0).await;
    assert!(
        feed.windows(2).all(|w| w[0].position < w[1].position),
        "positions must strictly increase"
    );
    let mut by_user: BTreeMap<UserId, Vec<_>> = BTreeMap::new();
    for entry in &feed {
        by_user
            .entry(entry.event.user_id.clone())
            .or_default()
            .push(entry.event.clone());
    }
    let mut histories = 0;
    for id in users {
        let history = f.all_events(id).await;
        histories += history.len();
        assert_eq!(
            by_user.get(id).cloned().unwrap_or_default(),
            history,
            "the feed's events of {id} are its history, in sequence order"
        );
    }
    assert_eq!(feed.len(), histories, "the feed holds nothing else");
    feed
}

/// The feed equals the union of all histories, in commit order, with
/// strictly increasing positions; reading after a position gives the rest.
pub async fn feed_equals_the_union_of_all_histories(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let mut users = Vec::new();
    for i in 0..6 {
        let id = f
            .user_in_state(&format!("fed-{i}"), UserState::Active)
            .await;
        s.lock(&f.acme_admin, &id, LockRequest::new())
            .await
            .unwrap();
        if i % 2 == 0 {
            s.unlock(&f.acme_admin, &id, None).await.unwrap();
        }
        users.push(id);
    }
    let gina = user("gina");
    s.create(&f.globex_admin, &gina, InitialState::Initial)
        .await
        .unwrap();
    s.remove(&f.globex_admin, &gina, None).await.unwrap();
    users.push(gina);
    let feed = assert_feed_is_the_histories(&f, &users).await;
    // Commit order: the first user's events come before the last user's.
    assert_eq!(feed[0].event.user_id, users[0]);
    assert_eq!(feed.last().unwrap().event.event_type(), "user.removed");
    let middle = feed[5].position;
    let rest = whole_feed(f.repo.as_ref(), middle).await;
    assert_eq!(rest, feed[6..]);
    let beyond = f
        .repo
        .feed(feed.last().unwrap().position + 1_000, 10)
        .await
        .unwrap();
    assert!(
        beyond.is_empty(),
        "a position past the end is an empty page"
    );
}

/// Writers on 8 threads commit 2,008 events while a reader follows the
/// feed, checkpointing the last position it read and waiting for more:
/// it sees every committed event exactly once and never skips one.
pub async fn feed_followed_during_concurrent_writes_misses_nothing(repo: Arc<dyn UserRepository>) {
    const WRITERS: usize = 8;
    const CYCLES: usize = 125; // 2 events a cycle and 1 to create: 2,008 in all
    let f = Fixture::new(repo);
    let expected = WRITERS * (1 + 2 * CYCLES);
    let reader = {
        let repo = f.repo.clone();
        std::thread::spawn(move || {
            futures::executor::block_on(async {
                let mut seen: Vec<FeedEvent> = Vec::new();
                let mut checkpoint = 0;
                while seen.len() < expected {
                    let page = repo.feed(checkpoint, 97).await.expect("feed");
                    match page.last() {
                        Some(last) => {
                            checkpoint = last.position;
                            seen.extend(page);
                        }
                        None => repo.wait_for_events(checkpoint).await.expect("wait"),
                    }
                }
                seen
            })
        })
    };
    let jobs: Vec<Box<dyn FnOnce() -> Vec<UserId> + Send>> = (0..WRITERS)
        .map(|w| {
            let service = f.service.clone();
            let admin = f.acme_admin.clone();
            Box::new(move || {
                futures::executor::block_on(async {
                    let id = user(&format!("writer-{w}"));
                    service
                        .create(&admin, &id, InitialState::Active)
                        .await
                        .unwrap();
                    for _ in 0..CYCLES {
                        service.lock(&admin, &id, LockRequest::new()).await.unwrap();
                        service.unlock(&admin, &id, None).await.unwrap();
                    }
                    vec![id]
                })
            }) as Box<dyn FnOnce() -> Vec<UserId> + Send>
        })
        .collect();
    let users: Vec<UserId> = on_threads(jobs).await.into_iter().flatten().collect();
    let seen = reader.join().expect("the reader panicked");
    assert_eq!(seen.len(), expected, "the reader saw every event");
    let positions: HashSet<u64> = seen.iter().map(|e| e.position).collect();
    assert_eq!(positions.len(), seen.len(), "no event twice");
    let feed = assert_feed_is_the_histories(&f, &users).await;
    assert_eq!(seen, feed, "the follower saw the feed as it is, in order");
}

/// Through the service the feed is scoped like every read and filtered by
/// organisation, user and event type; `follow` delivers an event committed
/// after it started waiting.
pub async fn feed_through_the_service_is_scoped_filtered_and_followed(
    repo: Arc<dyn UserRepository>,
) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let carol = f.user_in_state("carol", UserState::Locked).await;
    let gina = user("gina");
    s.create(&f.globex_admin, &gina, InitialState::Active)
        .await
        .unwrap();
    s.lock(&f.globex_admin, &gina, LockRequest::new())
        .await
        .unwrap();
    let all = FeedQuery::after(0, 100);
    let acme = s.feed(&f.acme_reader, &all).await.unwrap();
    assert!(acme.events.iter().all(|e| e.event.org_id == f.acme));
    assert_eq!(acme.events.len(), 2);
    let root = s.feed(&f.root, &all).await.unwrap();
    assert_eq!(root.events.len(), 4);
    assert_eq!(root.checkpoint, root.events.last().unwrap().position);
    let locks = FeedQuery {
        event_types: vec!["user.locked".to_owned()],
        ..all.clone()
    };
    let locked: Vec<UserId> = s
        .feed(&f.root, &locks)
        .await
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.event.user_id)
        .collect();
    assert_eq!(locked, [carol.clone(), gina.clone()]);
    let of_gina = FeedQuery {
        user: Some(gina.clone()),
        ..all.clone()
    };
    assert_eq!(s.feed(&f.root, &of_gina).await.unwrap().events.len(), 2);
    let other_org = FeedQuery {
        org: Some(f.globex.clone()),
        ..all.clone()
    };
    let denied = s.feed(&f.acme_reader, &other_org).await.unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
    let bad = s.feed(&f.root, &FeedQuery::after(0, 0)).await.unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument);
    let past = s
        .feed(&f.root, &FeedQuery::after(1_000_000, 10))
        .await
        .unwrap();
    assert!(past.events.is_empty());

    // Follow from the checkpoint: the next lock in acme arrives, globex's
    // events and other types are left out for acme's reader.
    let follow = FeedQuery {
        event_types: vec!["user.locked".to_owned()],
        ..FeedQuery::after(root.checkpoint, 100)
    };
    let mut stream = Box::pin(s.follow(f.acme_reader.clone(), follow));
    let dave = user("dave");
    let write = async {
        s.create(&f.acme_admin, &dave, InitialState::Active)
            .await
            .unwrap();
        s.lock(&f.globex_admin, &gina, LockRequest::new())
            .await
            .unwrap_err();
        s.lock(&f.acme_admin, &dave, LockRequest::new())
            .await
            .unwrap();
    };
    let (next, ()) = futures::join!(stream.next(), write);
    let next = next.expect("the stream goes on").expect("an event");
    assert_eq!(
        (next.event.user_id.clone(), next.event.event_type()),
        (dave, "user.locked")
    );
}

/// A consumer's checkpoint survives a restart: the repository reopened by
/// `open` on the same `path` continues the feed after it, with positions
/// after those it had, and the events committed before are unchanged.
pub async fn feed_resumes_from_a_checkpoint_after_reopening(
    path: &Path,
    open: impl Fn(&Path) -> Arc<dyn UserRepository>,
) {
    let before = {
        let f = Fixture::new(open(path));
        f.user_in_state("resumed", UserState::Locked).await;
        let before = whole_feed(f.repo.as_ref(), 0).await;
        assert_eq!(before.len(), 2);
        before
    };
    let checkpoint = before[1].position;
    let f = Fixture::new(open(path));
    assert_eq!(whole_feed(f.repo.as_ref(), 0).await, before);
    let id = user("resumed");
    f.service.unlock(&f.acme_admin, &id, None).await.unwrap();
    let after = whole_feed(f.repo.as_ref(), checkpoint).await;
    assert_eq!(after.len(), 1);
    assert!(after[0].position > checkpoint);
    assert_eq!(after[0].event.event_type(), "user.unlocked");
}
