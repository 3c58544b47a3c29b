//! Support for corrupt-file tests: an adapter fills a database with
//! [`populate`], damages the file on disk its own way, reopens it and calls
//! [`read_back`], which reads everything and accepts only values or typed
//! errors — never a panic, never a wrong user.

use std::sync::Arc;

use super::fixture::Fixture;
use crate::storage::Scope;
use crate::{
    ErrorKind, HistoryQuery, LockRequest, Result, UserId, UserRepository, UserState, MAX_PAGE_SIZE,
};

/// Users [`populate`] writes.
pub const USERS: usize = 60;

/// Writes [`USERS`] users in acme with a few events each, in mixed states.
pub async fn populate(repo: Arc<dyn UserRepository>) -> Vec<UserId> {
    let f = Fixture::new(repo);
    let mut ids = Vec::new();
    for i in 0..USERS {
        let state = match i % 4 {
            0 => UserState::Locked,
            1 => UserState::Inactive,
            2 => UserState::Initial,
            _ => UserState::Active,
        };
        let id = f.user_in_state(&format!("corrupt-{i:03}"), state).await;
        if state == UserState::Locked {
            let _ = f.service.unlock(&f.acme_admin, &id, None).await;
            let _ = f.service.lock(&f.acme_admin, &id, LockRequest::new()).await;
        }
        ids.push(id);
    }
    ids
}

/// Reads every user, history and list page of a possibly damaged database.
/// Each read must give a value (whose ids match what was asked) or an
/// Internal or Unavailable error. Returns how many users read back intact.
///
/// # Panics
/// On any other outcome.
pub async fn read_back(repo: Arc<dyn UserRepository>, ids: &[UserId]) -> usize {
    fn typed<T>(r: &Result<T>, what: &str) {
        if let Err(e) = r {
            assert!(
                matches!(e.kind(), ErrorKind::Internal | ErrorKind::Unavailable),
                "{what}: untyped failure {e:?}"
            );
        }
    }
    let mut intact = 0;
    for id in ids {
        let user = repo.load(id, &Scope::Instance).await;
        typed(&user, "load");
        let history = repo
            .history(id, &Scope::Instance, HistoryQuery::default())
            .await;
        typed(&history, "history");
        if let Ok(Some(user)) = &user {
            assert_eq!(&user.id, id, "a load returned another user");
        }
        if let Ok(events) = &history {
            assert!(
                events.iter().all(|e| &e.user_id == id),
                "history of another user"
            );
        }
        if let (Ok(Some(user)), Ok(events)) = (&user, &history) {
            if crate::User::replay(events).as_ref() == Some(user) {
                intact += 1;
            }
        }
    }
    let org = crate::OrgId::new("acme").expect("valid org");
    for state in [None, Some(UserState::Locked), Some(UserState::Active)] {
        let query = crate::ListQuery {
            state,
            after: None,
            limit: MAX_PAGE_SIZE,
        };
        let page = repo.list(&org, &query).await;
        typed(&page, "list");
        if let Ok(page) = page {
            assert!(
                page.items.iter().all(|u| u.org_id == org),
                "list leaked another org"
            );
        }
    }
    intact
}

/// Damages a database file's bytes deterministically: case by case, 16
/// flipped bits, a smashed byte in the first 100 (headers), a zeroed 4 KiB
/// block, or a truncation.
pub fn damage(bytes: &mut Vec<u8>, case: u64) {
    let mut x = case.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = |bound: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % bound.max(1) as u64) as usize
    };
    let len = bytes.len();
    if len == 0 {
        return;
    }
    match case % 4 {
        0 => {
            for _ in 0..16 {
                let at = next(len);
                bytes[at] ^= 1 << next(8);
            }
        }
        1 => {
            let at = next(len.min(100));
            bytes[at] ^= 0xFF;
        }
        2 => {
            let start = next(len / 4096) * 4096;
            bytes[start..(start + 4096).min(len)].fill(0);
        }
        _ => bytes.truncate(next(len)),
    }
}

/// Checks what opening a damaged database gave: a typed error (`None`), or a
/// repository that [`read_back`] reads (the number of intact users).
///
/// # Panics
/// On an untyped open error or a bad read.
pub async fn read_back_opened(
    opened: Result<Arc<dyn UserRepository>>,
    ids: &[UserId],
) -> Option<usize> {
    match opened {
        Ok(repo) => Some(read_back(repo, ids).await),
        Err(e) => {
            assert!(
                matches!(e.kind(), ErrorKind::Internal | ErrorKind::Unavailable),
                "open failed with an untyped error: {e:?}"
            );
            None
        }
    }
}
