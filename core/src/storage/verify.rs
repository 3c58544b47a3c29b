//! Checking a whole database: what an adapter's `verify` reports, what it
//! checks of each user the same way for every engine, and how much is
//! checked when a database is opened.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::error::Result;
use crate::event::Event;
use crate::id::{OrgId, UserId};
use crate::query::ListQuery;
use crate::state::UserState;
use crate::storage::UserRepository;
use crate::user::User;

/// How much of a database is checked when it is opened, beyond what every
/// open checks (the format, and that no committed event is missing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CheckAtOpen {
    /// The default: everything for a database of up to
    /// [`CHECK_EVERYTHING_UP_TO`] bytes (a few tens of thousands of
    /// users), the engine's structure beyond.
    #[default]
    Auto,
    /// The engine's own structure (SQLite's `quick_check`); nothing more
    /// for engines that check their log as they recover it (sled).
    Structure,
    /// Everything `verify` checks: every record decoded, every snapshot
    /// against its history, every index entry.
    Everything,
    /// Nothing beyond what every open checks.
    Nothing,
}

/// The largest database [`CheckAtOpen::Auto`] checks whole at open.
pub const CHECK_EVERYTHING_UP_TO: u64 = 16 * 1024 * 1024;

/// What a verification of a whole database found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verification {
    /// Users read.
    pub users: u64,
    /// Events read.
    pub events: u64,
    /// Everything that is not as it should be; empty for a sound database.
    pub findings: Vec<Finding>,
}

impl Verification {
    /// Whether nothing was found.
    pub fn is_sound(&self) -> bool {
        self.findings.is_empty()
    }
}

/// One thing a verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Finding {
    /// The user it concerns, when it concerns one.
    pub user: Option<UserId>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some(user) => write!(f, "user {user}: {}", self.problem),
            None => f.write_str(&self.problem),
        }
    }
}

/// What is wrong with a stored user given its whole stored history: events
/// numbered 1, 2, 3, ... without a gap, all of its id and organisation, and
/// a snapshot that is their replay. `None` when nothing is.
pub fn check_user(stored: &User, history: &[Event]) -> Option<String> {
    for (event, expected) in history.iter().zip(1u64..) {
        if event.sequence != expected {
            return Some(format!(
                "event {} stands where event {expected} should",
                event.sequence
            ));
        }
        if event.user_id != stored.id || event.org_id != stored.org_id {
            return Some(format!(
                "event {} belongs to another user or organisation",
                event.sequence
            ));
        }
    }
    match User::replay(history) {
        Some(replayed) if replayed == *stored => None,
        Some(_) => Some("the snapshot is not the replay of its events".to_owned()),
        None => Some("the user has no events".to_owned()),
    }
}

/// What any repository can be checked for through [`UserRepository`]
/// alone, the same way for every backend: each organisation's index of
/// each state lists users whose snapshots are of that organisation and
/// state, as many as it counts; the feed's positions increase, each user's
/// events in it are numbered 1, 2, 3, ... and end at its snapshot's
/// sequence; and every stored lockout policy decodes. An adapter's own
/// `verify` checks what only the engine can see (checksums, snapshot =
/// replay row by row); the two together are a whole check.
///
/// Holds one small entry per user while it runs (id and two sequences).
///
/// # Errors
/// Unavailable when the backend cannot be read; what is damaged is
/// reported in the [`Verification`].
pub async fn check_through(repo: &dyn UserRepository) -> Result<Verification> {
    let mut verification = Verification::default();
    let mut found = |user: Option<&UserId>, problem: String| {
        verification.findings.push(Finding {
            user: user.cloned(),
            problem,
        })
    };
    // Per user: the snapshot's sequence, then the last sequence the feed had.
    let mut users: HashMap<UserId, (u64, u64)> = HashMap::new();
    let mut indexed = 0u64;
    let mut unlisted: HashSet<OrgId> = HashSet::new();
    let mut after: Option<OrgId> = None;
    let mut some_org = None;
    loop {
        let orgs = repo.organisations(after.as_ref(), PAGE).await?;
        let Some(last) = orgs.last().cloned() else {
            break;
        };
        for org in orgs {
            for state in UserState::ALL {
                let listed = match indexed_users(repo, &org, state, &mut users).await {
                    Ok(listed) => listed,
                    Err(e) if damage(&e) => {
                        // A damaged user stops the listing; the others of
                        // the organisation go unchecked against the feed.
                        found(
                            None,
                            format!("the {state} users of {org} cannot be listed: {e}"),
                        );
                        unlisted.insert(org.clone());
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for (user, problem) in listed.findings {
                    found(Some(&user), problem);
                }
                indexed += listed.count;
                match repo.count(&org, Some(state)).await {
                    Ok(count) if count == listed.count => {}
                    Ok(count) => found(
                        None,
                        format!(
                            "{org} counts {count} {state} users but its index lists {}",
                            listed.count
                        ),
                    ),
                    Err(e) if damage(&e) => {
                        found(None, format!("{org}'s users cannot be counted: {e}"))
                    }
                    Err(e) => return Err(e),
                }
            }
            some_org.get_or_insert(org);
        }
        after = Some(last);
    }
    check_policies(repo, some_org, &mut found).await?;

    let mut position = 0u64;
    let mut events = 0u64;
    loop {
        let page = match repo.feed(position, PAGE).await {
            Ok(page) => page,
            Err(e) if damage(&e) => {
                found(
                    None,
                    format!("the feed cannot be read after position {position}: {e}"),
                );
                break;
            }
            Err(e) => return Err(e),
        };
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for fed in page {
            events += 1;
            let event = &fed.event;
            if fed.position <= position {
                found(
                    Some(&event.user_id),
                    format!("feed position {} follows position {position}", fed.position),
                );
            }
            position = position.max(fed.position);
            if unlisted.contains(&event.org_id) {
                users.remove(&event.user_id);
                continue;
            }
            let (_, seen) = users.entry(event.user_id.clone()).or_insert((0, 0));
            if event.sequence != *seen + 1 {
                found(
                    Some(&event.user_id),
                    format!(
                        "the feed has event {} after event {seen} (at position {})",
                        event.sequence, fed.position
                    ),
                );
            }
            *seen = event.sequence;
        }
        position = position.max(last);
    }
    let mut mismatched: Vec<(&UserId, u64, u64)> = users
        .iter()
        .filter(|(_, (snapshot, fed))| snapshot != fed)
        .map(|(id, (snapshot, fed))| (id, *snapshot, *fed))
        .collect();
    mismatched.sort();
    for (id, snapshot, fed) in mismatched {
        let problem = if snapshot == 0 {
            format!("the feed has {fed} events of the user, but no index lists it")
        } else {
            format!("the snapshot is at sequence {snapshot}, but the feed's events end at {fed}")
        };
        found(Some(id), problem);
    }
    verification.users = indexed;
    verification.events = events;
    Ok(verification)
}

/// Page size of the walk.
const PAGE: u32 = crate::query::MAX_PAGE_SIZE;

/// Whether `e` is damage to report rather than a reason to stop.
fn damage(e: &crate::Error) -> bool {
    e.kind() == crate::ErrorKind::Internal
}

/// What one index (an organisation's users in one state) lists.
struct Listed {
    count: u64,
    findings: Vec<(UserId, String)>,
}

async fn indexed_users(
    repo: &dyn UserRepository,
    org: &OrgId,
    state: UserState,
    users: &mut HashMap<UserId, (u64, u64)>,
) -> Result<Listed> {
    let mut listed = Listed {
        count: 0,
        findings: Vec::new(),
    };
    let mut query = ListQuery {
        state: Some(state),
        after: None,
        limit: PAGE,
    };
    loop {
        let page = repo.list(org, &query).await?;
        for user in page.items {
            listed.count += 1;
            if user.org_id != *org || user.state != state {
                listed.findings.push((
                    user.id.clone(),
                    format!(
                        "indexed as {state} in {org}, but its snapshot is {} in {}",
                        user.state, user.org_id
                    ),
                ));
            }
            if users.insert(user.id.clone(), (user.sequence, 0)).is_some() {
                listed
                    .findings
                    .push((user.id, "listed by more than one index".to_owned()));
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(listed),
        }
    }
}

/// Every stored lockout policy decodes: each organisation's own and the
/// instance default (read with any organisation's).
async fn check_policies(
    repo: &dyn UserRepository,
    some_org: Option<OrgId>,
    found: &mut impl FnMut(Option<&UserId>, String),
) -> Result<()> {
    let mut after: Option<OrgId> = None;
    let mut default_read = false;
    loop {
        let orgs = repo.policy_organisations(after.as_ref(), PAGE).await?;
        let Some(last) = orgs.last().cloned() else {
            break;
        };
        for org in orgs {
            match repo.policies(&org).await {
                Ok(_) => default_read = true,
                Err(e) if damage(&e) => found(None, format!("the lockout policies of {org}: {e}")),
                Err(e) => return Err(e),
            }
        }
        after = Some(last);
    }
    if !default_read {
        let org = match some_org {
            Some(org) => org,
            None => OrgId::new("-")?,
        };
        match repo.policies(&org).await {
            Ok(_) => {}
            Err(e) if damage(&e) => found(None, format!("the lockout policies: {e}")),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
