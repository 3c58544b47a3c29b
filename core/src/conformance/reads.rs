//! The reads through storage: histories in pages, removed users' trails,
//! lists by organisation and state in pages, ids that stay taken, and ids
//! full of SQL and pattern characters stored and found literally.

use std::sync::Arc;

use super::fixture::{user, Fixture, T0};
use crate::{
    Cursor, ErrorKind, HistoryQuery, InitialState, ListQuery, LockRequest, OrgId, UserId,
    UserRepository, UserState,
};

/// The history holds one event per successful command with its type, owner,
/// sequence, time, creator and payload, and can be read in pages.
pub async fn history_records_every_event(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let id = user("audited");
    s.create(&f.acme_admin, &id, InitialState::Active)
        .await
        .expect("create");
    f.clock.advance(10);
    s.lock(&f.acme_writer, &id, LockRequest::new())
        .await
        .expect("lock");
    f.clock.advance(10);
    s.unlock(&f.root.clone().in_org(f.acme.clone()), &id, None)
        .await
        .expect("unlock");
    f.clock.advance(10);
    s.deactivate(&f.acme_admin, &id, None)
        .await
        .expect("deactivate");
    s.reactivate(&f.acme_admin, &id, None)
        .await
        .expect("reactivate");
    s.remove(&f.acme_admin, &id, None).await.expect("remove");

    let history = s
        .history(&f.acme_reader, &id, HistoryQuery::default())
        .await;
    // Removed users are not readable through `get`, but their trail is.
    let history = history.expect("history");
    let types: Vec<&str> = history.items.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        [
            "user.added",
            "user.locked",
            "user.unlocked",
            "user.deactivated",
            "user.reactivated",
            "user.removed"
        ]
    );
    let creators: Vec<&str> = history.items.iter().map(|e| e.creator.as_str()).collect();
    assert_eq!(
        creators,
        [
            "acme-admin",
            "acme-writer",
            "root",
            "acme-admin",
            "acme-admin",
            "acme-admin"
        ]
    );
    let times: Vec<i64> = history
        .items
        .iter()
        .map(|e| e.created_at.unix_millis())
        .collect();
    assert_eq!(times, [T0, T0 + 10, T0 + 20, T0 + 30, T0 + 30, T0 + 30]);
    for (event, sequence) in history.items.iter().zip(1u64..) {
        assert_eq!(event.sequence, sequence);
        assert_eq!(event.user_id, id);
        assert_eq!(event.org_id, f.acme);
    }

    let page = s
        .history(&f.acme_reader, &id, HistoryQuery::after_sequence(2, 3))
        .await
        .expect("page");
    let sequences: Vec<u64> = page.items.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [3, 4, 5]);
    let bad = s
        .history(&f.acme_reader, &id, HistoryQuery::after_sequence(0, 0))
        .await
        .expect_err("limit 0");
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument);
}

/// `get` of a removed user is NotFound; its history stays readable for audit.
pub async fn history_of_removed_user_stays_readable(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let id = f.user_in_state("gone", UserState::Deleted).await;
    let err = f
        .service
        .get(&f.acme_reader, &id)
        .await
        .expect_err("deleted");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let history = f
        .service
        .history(&f.acme_reader, &id, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(history.items.len(), 2);
    // Still invisible from another organisation.
    let err = f
        .service
        .history(&f.globex_admin, &id, HistoryQuery::default())
        .await
        .expect_err("other org");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

/// Lists are per organisation, ordered by id, filtered by state, paged with
/// `after`, and never show deleted users or users of other organisations.
pub async fn list_pages_and_filters(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let mut locked = Vec::new();
    for i in 0..23 {
        let state = match i % 3 {
            0 => UserState::Locked,
            1 => UserState::Active,
            _ => UserState::Inactive,
        };
        let id = f.user_in_state(&format!("acme-{i:02}"), state).await;
        if state == UserState::Locked {
            locked.push(id);
        }
    }
    f.user_in_state("acme-deleted", UserState::Deleted).await;
    let globex = f.globex_admin.clone();
    for i in 0..5 {
        let id = user(&format!("globex-{i}"));
        s.create(&globex, &id, InitialState::Active)
            .await
            .expect("create");
        s.lock(&globex, &id, LockRequest::new())
            .await
            .expect("lock");
    }

    let mut seen = Vec::new();
    let mut query = ListQuery {
        state: Some(UserState::Locked),
        after: None,
        limit: 3,
    };
    loop {
        let page = s.list(&f.acme_reader, &query).await.expect("list");
        assert!(page.items.len() <= 3);
        for u in &page.items {
            assert_eq!(u.state, UserState::Locked);
            assert_eq!(u.org_id, f.acme);
        }
        seen.extend(page.items.into_iter().map(|u| u.id));
        match page.next {
            Some(after) => query.after = Some(after),
            None => break,
        }
    }
    assert_eq!(
        seen, locked,
        "all locked acme users, in id order, once each"
    );

    let all = s
        .list(
            &f.acme_reader,
            &ListQuery {
                limit: 1000,
                ..ListQuery::all()
            },
        )
        .await
        .expect("list all");
    assert_eq!(all.items.len(), 23);
    assert_eq!(all.next, None);
    assert!(all.items.windows(2).all(|w| w[0].id < w[1].id));

    let exact = s
        .list(
            &f.acme_reader,
            &ListQuery {
                limit: 8,
                ..ListQuery::in_state(UserState::Locked)
            },
        )
        .await
        .expect("exact page");
    assert_eq!(exact.items.len(), 8);
    assert_eq!(exact.next, None, "no further page when exactly full");

    let none = s
        .list(&f.acme_reader, &ListQuery::in_state(UserState::Initial))
        .await
        .expect("empty");
    assert!(none.items.is_empty());

    let root_in_globex = f.root.clone().in_org(f.globex.clone());
    let g = s
        .list(&root_in_globex, &ListQuery::in_state(UserState::Locked))
        .await
        .expect("globex");
    assert_eq!(g.items.len(), 5);

    let removed = s
        .list(&f.acme_reader, &ListQuery::in_state(UserState::Deleted))
        .await
        .expect_err("removed users are for instance-wide readers");
    assert_eq!(removed.kind(), ErrorKind::PermissionDenied);
    for bad in [
        ListQuery {
            limit: 0,
            ..ListQuery::all()
        },
        ListQuery {
            limit: crate::MAX_PAGE_SIZE + 1,
            ..ListQuery::all()
        },
    ] {
        let err = s.list(&f.acme_reader, &bad).await.expect_err("bad query");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
    }
    let err = s
        .list(
            &f.globex_admin.clone().in_org(f.acme.clone()),
            &ListQuery::all(),
        )
        .await
        .expect_err("no grant in acme");
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
}

/// Ids are global and never reused: an id that exists in one organisation
/// cannot be created in another, and a removed user's id stays taken, while
/// its record stays stored as deleted.
pub async fn removed_and_foreign_ids_stay_taken(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let alice = user("alice");
    s.create(&f.acme_admin, &alice, InitialState::Active)
        .await
        .expect("create");
    let elsewhere = s
        .create(&f.globex_admin, &alice, InitialState::Active)
        .await
        .expect_err("taken in acme");
    assert_eq!(elsewhere.kind(), ErrorKind::AlreadyExists);

    s.remove(&f.acme_admin, &alice, None).await.expect("remove");
    for caller in [&f.acme_admin, &f.globex_admin] {
        let reused = s
            .create(caller, &alice, InitialState::Active)
            .await
            .expect_err("removed ids are never reused");
        assert_eq!(reused.kind(), ErrorKind::AlreadyExists);
    }
    let stored = f.stored(&alice).await;
    assert_eq!((stored.state, stored.sequence), (UserState::Deleted, 2));
    assert_eq!(stored.org_id, f.acme);
    f.assert_snapshot_is_replay(&alice).await;
}

/// Ids and organisations full of SQL and pattern metacharacters, or that
/// are prefixes of one another, are stored and returned literally and
/// never match each other.
pub async fn literal_ids_are_stored_and_listed_literally(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let literal_ids = [
        "'; DROP TABLE users; --",
        "Robert'); DELETE FROM events;--",
        "%",
        "_",
        "a%",
        "a_",
        "a",
        "ab",
        "a b",
        "\\",
        "\"quoted\"",
        "ü🙂",
        "*",
        "?",
    ];
    let literal_orgs = ["%", "_", "o", "o1", "o'; --", "o\\"];
    let s = &f.service;
    for (i, org_name) in literal_orgs.iter().enumerate() {
        let org = OrgId::new(*org_name).expect("valid org");
        let caller = f.root.clone().in_org(org.clone());
        for name in literal_ids {
            let id = UserId::new(format!("{name}#{i}")).expect("valid id");
            s.create(&caller, &id, InitialState::Active)
                .await
                .expect("create");
            if name.len() % 2 == 0 {
                s.lock(&caller, &id, LockRequest::new())
                    .await
                    .expect("lock");
            }
        }
    }
    for (i, org_name) in literal_orgs.iter().enumerate() {
        let org = OrgId::new(*org_name).expect("valid org");
        let caller = f.root.clone().in_org(org.clone());
        let page = s
            .list(
                &caller,
                &ListQuery {
                    limit: 1000,
                    ..ListQuery::all()
                },
            )
            .await
            .expect("list");
        let mut listed: Vec<String> = page.items.iter().map(|u| u.id.to_string()).collect();
        let mut expected: Vec<String> = literal_ids.iter().map(|n| format!("{n}#{i}")).collect();
        listed.sort();
        expected.sort();
        assert_eq!(
            listed, expected,
            "org {org_name:?} lists exactly its own users"
        );
        assert!(page.items.iter().all(|u| u.org_id == org));
        let locked = s
            .list(
                &caller,
                &ListQuery {
                    limit: 1000,
                    ..ListQuery::in_state(UserState::Locked)
                },
            )
            .await
            .expect("list locked");
        let want = literal_ids.iter().filter(|n| n.len() % 2 == 0).count();
        assert_eq!(locked.items.len(), want, "org {org_name:?}");
        for name in literal_ids {
            let id = UserId::new(format!("{name}#{i}")).expect("valid id");
            let user = s.get(&caller, &id).await.expect("get");
            assert_eq!(user.id, id);
            assert_eq!(user.org_id, org);
            let history = s
                .history(&caller, &id, HistoryQuery::default())
                .await
                .expect("history");
            assert!(history
                .items
                .iter()
                .all(|e| e.user_id == id && e.org_id == org));
            assert_eq!(history.items.len(), if name.len() % 2 == 0 { 2 } else { 1 });
        }
    }
}

/// Removed users stay visible to operators: an instance-wide reader lists
/// them with an explicit filter and reads their history; organisation
/// listings leave them out; an instance-wide reader lists the
/// organisations that have users.
pub async fn removed_users_are_listed_for_operators(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let gone = f.user_in_state("gone", UserState::Deleted).await;
    let kept = f.user_in_state("kept", UserState::Active).await;
    s.create(&f.globex_admin, &user("gina"), InitialState::Active)
        .await
        .unwrap();
    let root = f.root.clone().in_org(f.acme.clone());
    let removed = s
        .list(&root, &ListQuery::in_state(UserState::Deleted))
        .await
        .expect("root lists removed users");
    let ids: Vec<_> = removed.items.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids, std::slice::from_ref(&gone));
    assert_eq!(
        s.count(&root, &ListQuery::in_state(UserState::Deleted))
            .await
            .unwrap(),
        1
    );
    let all = s.list(&f.acme_admin, &ListQuery::all()).await.unwrap();
    let ids: Vec<_> = all.items.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids, [kept], "organisation lists leave removed users out");
    let history = s
        .history(&root, &gone, HistoryQuery::default())
        .await
        .expect("the trail of a removed user");
    assert_eq!(
        history.items.last().map(|e| e.event_type()),
        Some("user.removed")
    );
    let taken = s
        .create(&root, &gone, InitialState::Active)
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), ErrorKind::AlreadyExists);

    let orgs = s.organisations(&f.root, None, 1).await.expect("page one");
    assert_eq!(orgs.items, std::slice::from_ref(&f.acme));
    let rest = s
        .organisations(&f.root, orgs.next, 10)
        .await
        .expect("page two");
    assert_eq!((rest.items, rest.next), (vec![f.globex.clone()], None));
    let denied = s.organisations(&f.acme_admin, None, 10).await.unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::PermissionDenied);
}

/// A state filter means the state in force now, by the service's clock: a
/// user whose temporary lock expired is not listed or counted as locked but
/// in the state it had before the lock, and `get` agrees.
pub async fn state_filters_mean_the_state_in_force_now(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    let admin = &f.acme_admin;
    let active = f.user_in_state("a-active", UserState::Active).await;
    let brief = f.user_in_state("b-brief", UserState::Active).await;
    let long = f.user_in_state("c-long", UserState::Active).await;
    let initial = f.user_in_state("d-initial", UserState::Initial).await;
    let permanent = f.user_in_state("e-permanent", UserState::Locked).await;
    for (id, ms) in [(&brief, 1_000), (&long, 60_000), (&initial, 1_000)] {
        s.lock(admin, id, LockRequest::new().until(f.now_plus(ms)))
            .await
            .unwrap();
    }
    let listed = |state| async move {
        let page = s.list(admin, &ListQuery::in_state(state)).await.unwrap();
        let count = s.count(admin, &ListQuery::in_state(state)).await.unwrap();
        let ids: Vec<UserId> = page.items.iter().map(|u| u.id.clone()).collect();
        assert_eq!(count, ids.len() as u64, "count of {state:?}");
        assert!(page.items.iter().all(|u| u.state == state), "{state:?}");
        ids
    };
    assert_eq!(
        listed(UserState::Active).await,
        std::slice::from_ref(&active)
    );
    assert_eq!(
        listed(UserState::Locked).await,
        [
            brief.clone(),
            long.clone(),
            initial.clone(),
            permanent.clone()
        ]
    );
    f.clock.advance(1_000);
    assert_eq!(listed(UserState::Active).await, [active, brief.clone()]);
    assert_eq!(
        listed(UserState::Initial).await,
        std::slice::from_ref(&initial)
    );
    assert_eq!(listed(UserState::Locked).await, [long, permanent]);
    let now_active = s.get(admin, &brief).await.unwrap();
    assert_eq!(
        (now_active.state, now_active.lock),
        (UserState::Active, None)
    );
    assert_eq!(
        s.get(admin, &initial).await.unwrap().state,
        UserState::Initial
    );
    // Nothing was written: storage still holds the lock until a command.
    assert_eq!(f.stored(&brief).await.state, UserState::Locked);
}

/// Every paged read answers the same page shape: history pages with
/// cursors like listings do, and the Stream helpers walk every page.
pub async fn history_pages_by_cursor_and_streams_walk_every_page(repo: Arc<dyn UserRepository>) {
    use futures::TryStreamExt;
    let f = Fixture::new(repo);
    let s = &f.service;
    let admin = &f.acme_admin;
    let id = f.user_in_state("paged", UserState::Active).await;
    for _ in 0..6 {
        s.lock(admin, &id, LockRequest::new()).await.unwrap();
        s.unlock(admin, &id, None).await.unwrap();
    }
    let mut sequences = Vec::new();
    let mut query = HistoryQuery {
        after: None,
        limit: 5,
    };
    loop {
        let page = s.history(admin, &id, query.clone()).await.unwrap();
        assert!(page.items.len() <= 5);
        sequences.extend(page.items.iter().map(|e| e.sequence));
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    assert_eq!(sequences, (1..=13).collect::<Vec<u64>>());
    let exact = s
        .history(
            admin,
            &id,
            HistoryQuery {
                after: None,
                limit: 13,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (exact.items.len(), exact.next),
        (13, None),
        "no empty last page"
    );

    let streamed: Vec<u64> = s
        .history_all(admin, &id)
        .map_ok(|e| e.sequence)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed, sequences);
    for i in 0..7 {
        f.user_in_state(&format!("walk-{i}"), UserState::Active)
            .await;
    }
    let query = ListQuery {
        limit: 3,
        ..ListQuery::all()
    };
    let walked: Vec<UserId> = s
        .list_all(admin, query)
        .map_ok(|u| u.id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(walked.len(), 8);
    assert!(walked.windows(2).all(|w| w[0] < w[1]));
    let bad = s
        .history(
            admin,
            &id,
            HistoryQuery {
                after: Some(Cursor::parse("not-a-sequence").unwrap()),
                limit: 5,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument);
}
