//! The damage test every adapter runs on its own files: a database of
//! [`USERS`] users in two organisations, with locks (every third user,
//! with a reason), failed checks, deactivations and removals, is closed,
//! copied, and each copy damaged one way: a flipped bit ([`FLIPS`] of
//! them, spread over all the data files), a truncation of the main data
//! file ([`TRUNCATIONS`]), an empty main data file, a missing one.
//!
//! For every damaged copy, the open is refused with `USER-CORRUPT` and
//! leaves the files as they were; or every read answers exactly what was
//! stored, or `USER-CORRUPT` naming the user it could not serve. Nothing is
//! ever served missing or changed, and a user is never visible to, nor
//! changed by, another organisation.
//!
//! ```ignore
//! let expected = block_on(damage::populate(open(&original)?));
//! let summary = damage::run(&original, &["users.db"], "users.db", &expected, Reads::All, open);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fixture::Fixture;
use crate::storage::{Scope, Seal};
use crate::{
    ids, Cursor, Error, Event, Factor, HistoryQuery, InitialState, ListQuery, LockRequest, OrgId,
    Reason, Result, User, UserId, UserRepository, UserState,
};

/// Users [`populate`] writes: four in five in acme, the rest in globex.
pub const USERS: usize = 505;
/// Single-bit flips per run.
pub const FLIPS: usize = 32;
/// Truncations of the main data file per run.
pub const TRUNCATIONS: usize = 8;

/// Page size of the reads, small so that histories and lists take pages.
const PAGE: u32 = 7;

/// Everything a database held before it was damaged, read back through
/// the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    users: Vec<(User, Vec<Event>)>,
    lists: Vec<(OrgId, Option<UserState>, Vec<User>)>,
}

impl Expected {
    /// The stored users.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.iter().map(|(user, _)| user)
    }
}

/// Fills `repo` with [`USERS`] users and reads everything back.
///
/// # Panics
/// When a command or a read fails.
pub async fn populate(repo: Arc<dyn UserRepository>) -> Expected {
    let f = Fixture::new(repo.clone());
    let s = &f.service;
    for i in 0..USERS {
        let id = UserId::new(format!("damage-{i:03}")).expect("valid id");
        let admin = if i % 5 == 4 {
            &f.globex_admin
        } else {
            &f.acme_admin
        };
        let initial = if i % 11 == 0 {
            InitialState::Initial
        } else {
            InitialState::Active
        };
        s.create(admin, &id, initial).await.expect("create");
        if i % 11 == 0 && i % 2 == 0 {
            s.complete_initialisation(admin, &id).await.expect("init");
        }
        if i % 7 == 0 {
            let _ = s.record_check(admin, &id, Factor::Password, false).await;
        }
        if i % 3 == 0 {
            let reason = Reason::new(format!("damage test lock {i}")).expect("reason");
            let _ = s.lock(admin, &id, LockRequest::new().reason(reason)).await;
        } else if i % 13 == 0 {
            let _ = s.deactivate(admin, &id, None).await;
        } else if i % 17 == 0 {
            let _ = s.remove(admin, &id, None).await;
        }
    }
    read_expected(&*repo, &f.acme, &f.globex).await
}

async fn read_expected(repo: &dyn UserRepository, acme: &OrgId, globex: &OrgId) -> Expected {
    let mut users = Vec::new();
    for i in 0..USERS {
        let id = UserId::new(format!("damage-{i:03}")).expect("valid id");
        let user = repo
            .load(&id, &Scope::Instance)
            .await
            .expect("load")
            .expect("stored");
        let history = all_events(repo, &id, &Scope::Instance)
            .await
            .expect("history");
        users.push((user, history));
    }
    let mut lists = Vec::new();
    for org in [acme, globex] {
        for state in states() {
            let listed = all_listed(repo, org, state).await.expect("list");
            lists.push((org.clone(), state, listed));
        }
    }
    let locked = users
        .iter()
        .filter(|(u, _)| u.state == UserState::Locked)
        .count();
    assert!(locked >= USERS / 3, "every third user is locked");
    Expected { users, lists }
}

fn states() -> [Option<UserState>; 6] {
    [
        None,
        Some(UserState::Initial),
        Some(UserState::Active),
        Some(UserState::Locked),
        Some(UserState::Inactive),
        Some(UserState::Deleted),
    ]
}

async fn all_events(repo: &dyn UserRepository, id: &UserId, scope: &Scope) -> Result<Vec<Event>> {
    let mut events: Vec<Event> = Vec::new();
    loop {
        let query = HistoryQuery::after_sequence(events.last().map_or(0, |e| e.sequence), PAGE);
        let page = repo.history(id, scope, query).await?;
        if page.is_empty() {
            return Ok(events);
        }
        events.extend(page);
    }
}

async fn all_listed(
    repo: &dyn UserRepository,
    org: &OrgId,
    state: Option<UserState>,
) -> Result<Vec<User>> {
    let mut users = Vec::new();
    let mut after = None;
    loop {
        let query = ListQuery {
            state,
            after: after.clone(),
            limit: PAGE,
        };
        let page = repo.list(org, &query).await?;
        users.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(users),
        }
    }
}

/// One way of damaging a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// Bit `bit` of the byte at `offset` of `file` flipped.
    Flip {
        /// The file, relative to the database's directory.
        file: PathBuf,
        /// The byte.
        offset: u64,
        /// The bit, 0 to 7.
        bit: u8,
    },
    /// `file` cut to `length` bytes.
    Truncate {
        /// The file, relative to the database's directory.
        file: PathBuf,
        /// Bytes kept.
        length: u64,
    },
    /// `file` emptied.
    Empty(PathBuf),
    /// `file` removed.
    Missing(PathBuf),
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::Flip { file, offset, bit } => {
                write!(
                    f,
                    "bit {bit} of byte {offset} of {} flipped",
                    file.display()
                )
            }
            Damage::Truncate { file, length } => {
                write!(f, "{} cut to {length} bytes", file.display())
            }
            Damage::Empty(file) => write!(f, "{} emptied", file.display()),
            Damage::Missing(file) => write!(f, "{} removed", file.display()),
        }
    }
}

/// The damages of one run on the database in `dir`, from a fixed seed:
/// [`FLIPS`] flips, one in each of as many equal stretches of the data
/// `files` laid end to end (and one in the middle of each file no stretch
/// fell in), [`TRUNCATIONS`] truncations of `main` spread over its length,
/// `main` emptied, `main` removed.
///
/// # Panics
/// When a file cannot be read.
pub fn cases(dir: &Path, files: &[&str], main: &str) -> Vec<Damage> {
    let lengths: Vec<(PathBuf, u64)> = files
        .iter()
        .map(|file| {
            let length = fs::metadata(dir.join(file)).expect("data file").len();
            (PathBuf::from(file), length)
        })
        .collect();
    let total: u64 = lengths.iter().map(|(_, length)| length).sum();
    let mut seed = 0x5eed_da3a_6e00_0015_u64;
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut damages = Vec::new();
    for k in 0..FLIPS as u64 {
        let stretch = total / FLIPS as u64;
        let mut at = k * stretch + random() % stretch.max(1);
        for (file, length) in &lengths {
            if at < *length {
                damages.push(Damage::Flip {
                    file: file.clone(),
                    offset: at,
                    bit: (random() % 8) as u8,
                });
                break;
            }
            at -= length;
        }
    }
    // Files too small for a stretch of their own get a flip each too.
    for (file, length) in &lengths {
        let hit = damages
            .iter()
            .any(|d| matches!(d, Damage::Flip { file: f, .. } if f == file));
        if !hit && *length > 0 {
            damages.push(Damage::Flip {
                file: file.clone(),
                offset: length / 2,
                bit: (random() % 8) as u8,
            });
        }
    }
    let main_length = fs::metadata(dir.join(main)).expect("main data file").len();
    for k in 1..=TRUNCATIONS as u64 {
        damages.push(Damage::Truncate {
            file: PathBuf::from(main),
            length: main_length * k / (TRUNCATIONS as u64 + 1),
        });
    }
    damages.push(Damage::Empty(PathBuf::from(main)));
    damages.push(Damage::Missing(PathBuf::from(main)));
    damages
}

impl Damage {
    /// Damages the copy of the database in `dir`.
    ///
    /// # Panics
    /// When the file cannot be changed.
    pub fn apply(&self, dir: &Path) {
        match self {
            Damage::Flip { file, offset, bit } => {
                let path = dir.join(file);
                let mut bytes = fs::read(&path).expect("read data file");
                let at = usize::try_from(*offset).expect("offset");
                bytes[at] ^= 1 << bit;
                fs::write(&path, bytes).expect("write data file");
            }
            Damage::Truncate { file, length } => {
                fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join(file))
                    .and_then(|f| f.set_len(*length))
                    .expect("truncate data file");
            }
            Damage::Empty(file) => fs::write(dir.join(file), b"").expect("empty data file"),
            Damage::Missing(file) => fs::remove_file(dir.join(file)).expect("remove data file"),
        }
    }
}

/// What the damaged copies gave.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Copies whose open was refused.
    pub refused: usize,
    /// Copies that read back exactly.
    pub exact: usize,
    /// Copies that opened and reported damage on some reads.
    pub reported: usize,
    /// Reads that answered `USER-CORRUPT`, over all copies.
    pub corrupt_reads: usize,
}

/// What a run holds the reads of a damaged copy to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Users, histories and lists: exact, or `USER-CORRUPT`.
    All,
    /// Users and histories only: for an engine whose indexes carry no
    /// checksum of their own, opened without the check at open that
    /// compares them with the rows (a damaged index entry can then drop
    /// out of a listing unseen).
    UsersAndHistories,
}

/// Runs the damage test: every damage of [`cases`] on a fresh copy of the
/// database directory `original`, opened with `open` (given the copy's
/// directory), judged against `expected` as `reads` says.
///
/// # Panics
/// On anything missing or changed, an open refused with another error than
/// `USER-CORRUPT` or that changed the files it refused, a read that fails
/// otherwise or does not name its user.
pub fn run(
    original: &Path,
    files: &[&str],
    main: &str,
    expected: &Expected,
    reads: Reads,
    open: impl Fn(&Path) -> Result<Arc<dyn UserRepository>>,
) -> Summary {
    let mut summary = Summary::default();
    let scratch = original.with_extension("damaged");
    for damage in cases(original, files, main) {
        let _ = fs::remove_dir_all(&scratch);
        copy_dir(original, &scratch);
        damage.apply(&scratch);
        let before = contents(&scratch, files);
        match open(&scratch) {
            Err(e) => {
                assert_eq!(
                    e.id(),
                    ids::CORRUPT,
                    "{damage}: the open was refused with {e:?}"
                );
                let after = contents(&scratch, files);
                for (file, seal) in &before {
                    assert_eq!(
                        after.get(file),
                        Some(seal),
                        "{damage}: the refused open ({e}) changed {file}"
                    );
                }
                summary.refused += 1;
            }
            Ok(repo) => {
                let corrupt = super::block_on(judge(&*repo, expected, reads, &damage.to_string()));
                if corrupt == 0 {
                    summary.exact += 1;
                } else {
                    summary.reported += 1;
                    summary.corrupt_reads += corrupt;
                }
            }
        }
    }
    let _ = fs::remove_dir_all(&scratch);
    summary
}

/// Reads everything of a damaged copy against `expected`; returns how many
/// reads answered `USER-CORRUPT`.
///
/// # Panics
/// On anything served missing or changed, or a read that fails otherwise.
pub async fn judge(
    repo: &dyn UserRepository,
    expected: &Expected,
    reads: Reads,
    case: &str,
) -> usize {
    let mut corrupt = 0;
    let orgs: Vec<OrgId> = {
        let mut orgs: Vec<OrgId> = expected.users().map(|u| u.org_id.clone()).collect();
        orgs.sort();
        orgs.dedup();
        orgs
    };
    for (user, history) in &expected.users {
        let id = &user.id;
        let own = Scope::Org(user.org_id.clone());
        for scope in [Scope::Instance, own] {
            match repo.load(id, &scope).await {
                Ok(Some(stored)) if stored == *user => {}
                Ok(other) => panic!("{case}: user {id} read back as {other:?}, not {user:?}"),
                Err(e) => corrupt += reported(&e, id, case),
            }
            match all_events(repo, id, &scope).await {
                Ok(events) if events == *history => {}
                Ok(events) => panic!(
                    "{case}: the history of {id} read back with {} events, not {}",
                    events.len(),
                    history.len()
                ),
                Err(e) => corrupt += reported(&e, id, case),
            }
        }
        for other in orgs.iter().filter(|org| **org != user.org_id) {
            let scope = Scope::Org(other.clone());
            match repo.load(id, &scope).await {
                Ok(None) => {}
                Ok(Some(_)) => panic!("{case}: user {id} is visible to {other}"),
                // A damaged record whose organisation nothing tells.
                Err(e) => corrupt += reported(&e, id, case),
            }
            match repo.history(id, &scope, HistoryQuery::default()).await {
                Ok(events) if events.is_empty() => {}
                Ok(_) => panic!("{case}: the history of {id} is visible to {other}"),
                Err(e) => corrupt += reported(&e, id, case),
            }
        }
    }
    let lists = match reads {
        Reads::All => expected.lists.as_slice(),
        Reads::UsersAndHistories => &[],
    };
    for (org, state, listed) in lists {
        match all_listed(repo, org, *state).await {
            Ok(users) if users == *listed => {}
            Ok(users) => panic!(
                "{case}: the list of {org} in {state:?} read back {} users, not {}",
                users.len(),
                listed.len()
            ),
            Err(e) => {
                assert_eq!(
                    e.id(),
                    ids::CORRUPT,
                    "{case}: a list of {org} failed with {e:?}"
                );
                corrupt += 1;
            }
        }
    }
    corrupt
}

/// Checks that a read that could not serve `id` says so and names it.
fn reported(error: &Error, id: &UserId, case: &str) -> usize {
    assert_eq!(
        error.id(),
        ids::CORRUPT,
        "{case}: a read of {id} failed with {error:?}"
    );
    assert!(
        error.message().contains(id.as_str()),
        "{case}: a read of {id} failed without naming it: {error}"
    );
    1
}

/// The length and CRC of each data file in `dir` (`None` for a missing one).
fn contents(dir: &Path, files: &[&str]) -> BTreeMap<String, Option<Seal>> {
    files
        .iter()
        .map(|file| ((*file).to_owned(), Seal::of_file(&dir.join(file)).ok()))
        .collect()
}

/// Copies the directory `from` (recursively) to `to`.
///
/// # Panics
/// When a file cannot be copied.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create the copy");
    for entry in fs::read_dir(from).expect("list the database") {
        let entry = entry.expect("list the database");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// The user [`contained_damage`] expects damaged: in globex, locked.
pub const DAMAGED: &str = "gina";

/// A small database for [`contained_damage`]: `gail`, [`DAMAGED`] (locked,
/// with a reason) and `gwen` in globex, `alice` and `amy` in acme.
///
/// # Panics
/// When a command fails.
pub async fn populate_two_organisations(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo);
    let s = &f.service;
    for (id, admin) in [
        ("alice", &f.acme_admin),
        ("amy", &f.acme_admin),
        ("gail", &f.globex_admin),
        (DAMAGED, &f.globex_admin),
        ("gwen", &f.globex_admin),
    ] {
        let id = UserId::new(id).expect("valid id");
        s.create(admin, &id, InitialState::Active)
            .await
            .expect("create");
    }
    let reason = Reason::new("fraud suspected").expect("reason");
    s.lock(
        &f.globex_admin,
        &UserId::new(DAMAGED).expect("valid id"),
        LockRequest::new().reason(reason),
    )
    .await
    .expect("lock");
}

/// Checks, on the database of [`populate_two_organisations`] whose
/// [`DAMAGED`] user's record an adapter damaged (its organisation still
/// readable), that the damage stays inside globex: to acme the user is
/// NotFound like one never created, for reads and commands; to globex
/// every read and command of it answers `USER-CORRUPT` naming it, and a
/// listing that meets it fails naming it while other listings work; its
/// id stays taken.
///
/// # Panics
/// On any other outcome.
pub async fn contained_damage(repo: Arc<dyn UserRepository>) {
    let f = Fixture::new(repo.clone());
    let s = &f.service;
    let damaged = UserId::new(DAMAGED).expect("valid id");
    let corrupt = |result: Result<()>, what: &str| {
        let error = result.expect_err(what);
        assert_eq!(error.id(), ids::CORRUPT, "{what}: {error:?}");
        assert!(error.message().contains(DAMAGED), "{what}: {error}");
    };
    let not_found = |result: Result<()>, what: &str| {
        let error = result.expect_err(what);
        assert_eq!(error.id(), ids::NOT_FOUND, "{what}: {error:?}");
    };

    let acme = Scope::Org(f.acme.clone());
    assert_eq!(repo.load(&damaged, &acme).await.expect("load"), None);
    assert_eq!(
        repo.history(&damaged, &acme, HistoryQuery::default())
            .await
            .expect("history"),
        Vec::new()
    );
    not_found(
        s.get(&f.acme_admin, &damaged).await.map(drop),
        "get by acme",
    );
    not_found(
        s.history(&f.acme_admin, &damaged, HistoryQuery::default())
            .await
            .map(drop),
        "history by acme",
    );
    not_found(
        s.unlock(&f.acme_admin, &damaged, None).await.map(drop),
        "unlock by acme",
    );

    corrupt(
        s.get(&f.globex_admin, &damaged).await.map(drop),
        "get by globex",
    );
    corrupt(
        s.history(&f.globex_admin, &damaged, HistoryQuery::default())
            .await
            .map(drop),
        "history by globex",
    );
    corrupt(
        s.unlock(&f.globex_admin, &damaged, None).await.map(drop),
        "unlock by globex",
    );
    corrupt(
        s.list(&f.globex_admin, &ListQuery::all()).await.map(drop),
        "list of globex",
    );
    let after = ListQuery {
        after: Some(Cursor::after_user(&damaged)),
        ..ListQuery::all()
    };
    let rest = s
        .list(&f.globex_admin, &after)
        .await
        .expect("list after it");
    let rest: Vec<&str> = rest.items.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(rest, ["gwen"]);
    let gail = s
        .get(&f.globex_admin, &UserId::new("gail").expect("valid id"))
        .await
        .expect("the rest of globex reads");
    assert_eq!(gail.state, UserState::Active);
    let acme_users = s
        .list(&f.acme_admin, &ListQuery::all())
        .await
        .expect("acme lists");
    assert_eq!(acme_users.items.len(), 2);

    // The id stays taken, whoever tries.
    for admin in [&f.acme_admin, &f.globex_admin] {
        let taken = s.create(admin, &damaged, InitialState::Active).await;
        assert!(taken.is_err(), "{DAMAGED} created again: {taken:?}");
    }
}
