//! Moving a whole database: every record of a repository in export order
//! ([`Records`]), writing records into a repository in ordered batches
//! ([`copy`]), and comparing two streams of records ([`compare`]).
//!
//! A copy writes each batch of events with one
//! [`UserRepository::update_many`], so the target's feed keeps the
//! source's order and an interrupted copy leaves whole batches, a prefix of
//! the source. Resuming skips what the target already has of each user
//! (its events up to the stored sequence) and writes the rest. Memory is
//! bounded by the batch: nothing is kept per user between batches.

use std::collections::HashMap;
use std::io::BufRead;

use indicatif::ProgressBar;
use userstate::storage::{self, Commit, Scope, Update};
use userstate::{Error, ErrorKind, Event, FeedEvent, OrgId, Result, User, UserId, UserRepository};

use crate::record::{invalid, Record};
use crate::wait;

/// Feed events and policies read per call.
const PAGE: u32 = userstate::MAX_PAGE_SIZE;

/// Every record of a repository, in export order, read a page at a time.
pub struct Records<'a> {
    repo: &'a dyn UserRepository,
    stage: Stage,
    buffered: std::vec::IntoIter<Record>,
    policies: u64,
    events: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Header,
    Default,
    Policies(Option<OrgId>),
    Events(u64),
    End,
    Done,
}

impl<'a> Records<'a> {
    /// The records of `repo`, from the header on.
    pub fn of(repo: &'a dyn UserRepository) -> Self {
        Records {
            repo,
            stage: Stage::Header,
            buffered: Vec::new().into_iter(),
            policies: 0,
            events: 0,
        }
    }

    /// The next page of records and the stage after it.
    fn next_page(&mut self) -> Result<(Vec<Record>, Stage)> {
        Ok(match self.stage.clone() {
            Stage::Header => (vec![Record::Header], Stage::Default),
            Stage::Default => {
                let default = wait(self.repo.policies(&placeholder_org()?))?.default;
                let page = default.map(|policy| Record::Policy(None, policy));
                (page.into_iter().collect(), Stage::Policies(None))
            }
            Stage::Policies(after) => {
                let orgs = wait(self.repo.policy_organisations(after.as_ref(), PAGE))?;
                let Some(last) = orgs.last().cloned() else {
                    return Ok((Vec::new(), Stage::Events(0)));
                };
                let mut page = Vec::with_capacity(orgs.len());
                for org in orgs {
                    if let Some(policy) = wait(self.repo.policies(&org))?.org {
                        page.push(Record::Policy(Some(org), policy));
                    }
                }
                (page, Stage::Policies(Some(last)))
            }
            Stage::Events(after) => {
                let events = wait(self.repo.feed(after, PAGE))?;
                let Some(last) = events.last().map(|e| e.position) else {
                    return Ok((Vec::new(), Stage::End));
                };
                (
                    events.into_iter().map(Record::Event).collect(),
                    Stage::Events(last),
                )
            }
            Stage::End => (
                vec![Record::End {
                    policies: self.policies,
                    events: self.events,
                }],
                Stage::Done,
            ),
            Stage::Done => (Vec::new(), Stage::Done),
        })
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            if let Some(record) = self.buffered.next() {
                match &record {
                    Record::Policy(..) => self.policies += 1,
                    Record::Event(_) => self.events += 1,
                    _ => {}
                }
                return Some(Ok(record));
            }
            if self.stage == Stage::Done {
                return None;
            }
            match self.next_page() {
                Ok((page, stage)) => {
                    self.buffered = page.into_iter();
                    self.stage = stage;
                }
                Err(e) => {
                    self.stage = Stage::Done;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The records of an export file, line by line.
pub fn file_records(input: impl BufRead) -> impl Iterator<Item = Result<Record>> {
    input.lines().zip(1u64..).map(|(line, number)| {
        let line = line.map_err(|e| {
            Error::unavailable(format!("cannot read line {number}: {e}")).with_source(e)
        })?;
        Record::decode(&line)
            .map_err(|e| Error::new(e.kind(), e.id(), format!("line {number}: {}", e.message())))
    })
}

/// Any organisation, to read the instance default with (the repository
/// reads it beside an organisation's own).
fn placeholder_org() -> Result<OrgId> {
    OrgId::new("-")
}

/// Whether `repo` holds nothing: no event and no policy.
///
/// # Errors
/// As the reads.
pub fn is_empty(repo: &dyn UserRepository) -> Result<bool> {
    Ok(wait(repo.feed(0, 1))?.is_empty()
        && wait(repo.policy_organisations(None, 1))?.is_empty()
        && wait(repo.policies(&placeholder_org()?))?.default.is_none())
}

/// What a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Policies set.
    pub policies: u64,
    /// Users (events at sequence 1) read.
    pub users: u64,
    /// Events written.
    pub events: u64,
    /// Events the target already had (a resumed copy).
    pub skipped: u64,
}

/// Writes `records` (a whole export, header to end) into `target`, events
/// in batches of `batch` at most, in their order.
///
/// # Errors
/// InvalidArgument for records out of place (no header, a cut-off stream,
/// counts that do not match, an event the target cannot follow on from);
/// the target's errors as it answers them.
pub fn copy(
    records: impl Iterator<Item = Result<Record>>,
    target: &dyn UserRepository,
    batch: usize,
    progress: &ProgressBar,
) -> Result<Copied> {
    let mut records = records.peekable();
    match records.next().transpose()? {
        Some(Record::Header) => {}
        _ => {
            return Err(invalid(
                "the export does not start with its header".to_owned(),
            ))
        }
    }
    let mut copied = Copied::default();
    let mut pending: Vec<Event> = Vec::with_capacity(batch);
    let mut read = (0u64, 0u64);
    loop {
        let record = records.next().transpose()?;
        match record {
            Some(Record::Policy(org, policy)) => {
                if read.1 > 0 {
                    return Err(invalid("a policy follows the events".to_owned()));
                }
                wait(target.set_policy(org.as_ref(), policy))?;
                read.0 += 1;
                copied.policies += 1;
            }
            Some(Record::Event(FeedEvent { event, .. })) => {
                read.1 += 1;
                if event.sequence == 1 {
                    copied.users += 1;
                }
                pending.push(event);
                if pending.len() >= batch {
                    write_batch(target, std::mem::take(&mut pending), &mut copied, progress)?;
                }
            }
            Some(Record::End { policies, events }) => {
                write_batch(target, std::mem::take(&mut pending), &mut copied, progress)?;
                if (policies, events) != read {
                    return Err(invalid(format!(
                        "the export ends saying it holds {policies} policies and {events} \
                         events, but {} and {} came before",
                        read.0, read.1
                    )));
                }
                if records.peek().is_some() {
                    return Err(invalid("records follow the export's end".to_owned()));
                }
                return Ok(copied);
            }
            Some(Record::Header) => return Err(invalid("a second header".to_owned())),
            None => {
                write_batch(target, std::mem::take(&mut pending), &mut copied, progress)?;
                return Err(invalid(format!(
                    "the export stops after {} policies and {} events, before its end: \
                     it was cut off. What came before was written; run again with a \
                     whole export and --resume",
                    read.0, read.1
                )));
            }
        }
    }
}

/// Attempts at one batch whose writes conflicted or found the backend
/// away: each reads the target again and writes what it still lacks.
const ATTEMPTS: u32 = 3;

fn write_batch(
    target: &dyn UserRepository,
    events: Vec<Event>,
    copied: &mut Copied,
    progress: &ProgressBar,
) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let count = events.len() as u64;
    let mut attempt = 1;
    loop {
        match try_batch(target, &events) {
            Ok((written, skipped)) => {
                copied.events += written;
                copied.skipped += skipped;
                progress.inc(count);
                return Ok(());
            }
            Err(e)
                if attempt < ATTEMPTS
                    && matches!(e.kind(), ErrorKind::Conflict | ErrorKind::Unavailable) =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes what the target lacks of `events` in one `update_many`; returns
/// how many were written and how many it had.
fn try_batch(target: &dyn UserRepository, events: &[Event]) -> Result<(u64, u64)> {
    let mut ids: Vec<&UserId> = events.iter().map(|e| &e.user_id).collect();
    ids.sort();
    ids.dedup();
    let wanted: Vec<(&UserId, &Scope)> = ids.iter().map(|id| (*id, &Scope::Instance)).collect();
    let stored = wait(target.load_many(&wanted))?;
    let mut users: HashMap<UserId, Option<User>> = ids.into_iter().cloned().zip(stored).collect();
    let mut updates = Vec::new();
    let (mut written, mut skipped) = (0u64, 0u64);
    let mut run: Vec<Event> = Vec::new();
    for event in events {
        if run
            .first()
            .is_some_and(|first| first.user_id != event.user_id)
        {
            updates.push(commit_run(std::mem::take(&mut run), &mut users)?);
        }
        let stored = users.get(&event.user_id).and_then(Option::as_ref);
        if let Some(user) = stored {
            if user.org_id != event.org_id {
                return Err(not_a_copy(format!(
                    "user {} is in {} in the target but in {} in the source",
                    event.user_id, user.org_id, event.org_id
                )));
            }
        }
        let at = stored.map_or(0, |user| user.sequence) + run.len() as u64;
        if event.sequence <= at {
            skipped += 1;
            continue;
        }
        if event.sequence != at + 1 {
            return Err(not_a_copy(format!(
                "event {} of user {} would follow event {at}: the target is not a copy of \
                 this source, or the source has a gap",
                event.sequence, event.user_id
            )));
        }
        run.push(event.clone());
        written += 1;
    }
    if !run.is_empty() {
        updates.push(commit_run(run, &mut users)?);
    }
    for outcome in wait(target.update_many(updates)) {
        outcome?;
    }
    Ok((written, skipped))
}

/// The update that appends `run` (consecutive events of one user) to the
/// user as `users` has it, which then has it after them.
fn commit_run(run: Vec<Event>, users: &mut HashMap<UserId, Option<User>>) -> Result<Update> {
    let id = run[0].user_id.clone();
    let slot = users.entry(id.clone()).or_default();
    let commit = Commit::new(slot.take(), run)?;
    *slot = Some(commit.snapshot().clone());
    Ok(Update::new(id, Scope::Instance, storage::append(commit)))
}

fn not_a_copy(why: String) -> Error {
    invalid(why)
}

/// Where two exports first differ, positions aside; `None` when they hold
/// the same policies and events in the same order.
///
/// # Errors
/// What reading either side answered.
pub fn compare(
    mut source: impl Iterator<Item = Result<Record>>,
    mut target: impl Iterator<Item = Result<Record>>,
    progress: &ProgressBar,
) -> Result<Option<String>> {
    let mut line = 0u64;
    loop {
        line += 1;
        let (ours, theirs) = (source.next().transpose()?, target.next().transpose()?);
        let same = match (&ours, &theirs) {
            (None, None) => return Ok(None),
            (Some(Record::Event(a)), Some(Record::Event(b))) => {
                progress.inc(1);
                a.event == b.event
            }
            (a, b) => a == b,
        };
        if !same {
            return Ok(Some(format!(
                "record {line} differs: the source has {}, the target {}",
                describe(ours.as_ref()),
                describe(theirs.as_ref())
            )));
        }
    }
}

fn describe(record: Option<&Record>) -> String {
    match record {
        None => "nothing more".to_owned(),
        Some(Record::Header) => "the header".to_owned(),
        Some(Record::Policy(None, _)) => "the instance default policy".to_owned(),
        Some(Record::Policy(Some(org), _)) => format!("the policy of {org}"),
        Some(Record::Event(e)) => format!(
            "event {} of user {} ({})",
            e.event.sequence,
            e.event.user_id,
            e.event.event_type()
        ),
        Some(Record::End { policies, events }) => {
            format!("the end ({policies} policies, {events} events)")
        }
    }
}
