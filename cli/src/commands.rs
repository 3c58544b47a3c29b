//! What each command does, through the service as an operator or, for
//! what moves whole databases, through the repository.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Serialize;
use userstate::storage::{create_private_file, CheckAtOpen, Scope};
use userstate::{
    Caller, Cursor, ErrorKind, FeedQuery, HistoryQuery, InMemoryAuthorizer, ListQuery, LockRequest,
    OrgId, Permission, Reason, UserId, UserService,
};
use userstate_backend::{Backend, OpenOptions};

use crate::output::{self, EVENT_COLUMNS, USER_COLUMNS};
use crate::record::Record;
use crate::transfer::{self, Records};
use crate::{wait, Cli, Command, CopyArgs, EventsArgs, Failure, Policy, Users};

/// The organisation the operator acts from: not stored anywhere, and not
/// the target of any command (every command names its user or
/// organisation).
const OPERATORS: &str = "operators";

/// sled's page cache for every command, each of which passes through a
/// database once: with 8 MiB instead of the adapter's 64, a migrate of
/// 100,000 users into sled held 190 MiB instead of 370 at the same speed,
/// and its verify 130 MiB instead of 360 at three quarters of the speed.
const CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// How every command opens a database unless it says otherwise.
fn options() -> OpenOptions {
    OpenOptions {
        cache_bytes: Some(CACHE_BYTES),
        ..OpenOptions::default()
    }
}

/// Runs the command `cli` names.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let Cli {
        db,
        json,
        operator,
        command,
    } = cli;
    if let Command::Migrate { from, to, copy } = command {
        let from = from.or(db).ok_or_else(|| {
            Failure::Usage("name the source with --from SPEC (or --db, USERSTATE_DB)".to_owned())
        })?;
        return migrate(&from, &to, &copy, json);
    }
    let spec = db.ok_or_else(|| {
        Failure::Usage("name the database with --db SPEC or USERSTATE_DB".to_owned())
    })?;
    let options = OpenOptions {
        create_if_missing: matches!(command, Command::Import { .. }),
        // Verify reports damage user by user, which a full check at open
        // would refuse to let it see.
        check_at_open: match command {
            Command::Verify => CheckAtOpen::Nothing,
            _ => CheckAtOpen::Auto,
        },
        ..options()
    };
    let backend = open(&spec, &options)?;
    let operator = Operator::new(&backend, operator)?;
    match command {
        Command::Users(users) => self::users(&operator, users, json),
        Command::Events(args) => events(&operator, args, json),
        Command::Policy(policy) => self::policy(&operator, policy, json),
        Command::Verify => verify(&backend, json),
        Command::Export { output } => export(&backend, output.as_deref(), json),
        Command::Import { input, copy } => import(&backend, input.as_deref(), &copy, json),
        Command::Migrate { .. } => unreachable!("handled above"),
    }
}

/// Opens `spec`; a wrong spec is a usage error.
fn open(spec: &str, options: &OpenOptions) -> Result<Backend, Failure> {
    userstate_backend::open_with(spec, options).map_err(|e| match e.kind() {
        ErrorKind::InvalidArgument => Failure::Usage(e.message().to_owned()),
        _ => Failure::Refused(e.message().to_owned()),
    })
}

/// An argument that is not a valid id, reason, ...: a usage error.
fn argument<T>(what: &str, parsed: userstate::Result<T>) -> Result<T, Failure> {
    parsed.map_err(|e| Failure::Usage(format!("{what}: {}", e.message())))
}

/// The service as the operator sees it: every permission everywhere, the
/// caller being `operator:NAME`, who is not a stored user.
struct Operator {
    service: UserService,
    name: Option<String>,
}

impl Operator {
    fn new(backend: &Backend, name: Option<String>) -> Result<Self, Failure> {
        let name = name
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .filter(|name| !name.trim().is_empty());
        let authorizer = Arc::new(InMemoryAuthorizer::new());
        let caller = Operator::caller_named(name.as_deref().unwrap_or("unknown"))?;
        authorizer.grant_instance(
            &caller.user_id,
            [
                Permission::Read,
                Permission::Write,
                Permission::Delete,
                Permission::PolicyWrite,
            ],
        );
        let service = UserService::new(backend.repository(), authorizer).with_caller_check(false);
        Ok(Operator { service, name })
    }

    fn caller_named(name: &str) -> Result<Caller, Failure> {
        let id = argument("--operator", UserId::new(format!("operator:{name}")))?;
        Ok(Caller::new(id, OrgId::new(OPERATORS)?))
    }

    /// The caller for reads: who reads is not recorded.
    fn reader(&self) -> Result<Caller, Failure> {
        Operator::caller_named(self.name.as_deref().unwrap_or("unknown"))
    }

    /// The caller for what is recorded: the operator must have a name.
    fn writer(&self) -> Result<Caller, Failure> {
        match &self.name {
            Some(name) => Operator::caller_named(name),
            None => Err(Failure::Usage(
                "no login name to record as the operator: give --operator NAME".to_owned(),
            )),
        }
    }
}

fn user_id(id: &str) -> Result<UserId, Failure> {
    argument("the user id", UserId::new(id))
}

fn reason(reason: Option<String>) -> Result<Option<Reason>, Failure> {
    reason
        .map(|r| argument("--reason", Reason::new(r)))
        .transpose()
}

fn users(operator: &Operator, command: Users, json: bool) -> Result<(), Failure> {
    let service = &operator.service;
    match command {
        Users::List {
            org,
            state,
            after,
            limit,
        } => list(operator, org, state, after, limit, json),
        Users::Show { id } => {
            let id = user_id(&id)?;
            let user = wait(service.repository().load(&id, &Scope::Instance))?
                .ok_or_else(|| Failure::Refused(format!("no user {id}")))?
                .in_force(service.now());
            if json {
                return output::json(&user);
            }
            let mut table = output::table(&["field", "value"]);
            for (field, value) in USER_COLUMNS.iter().zip(output::user_row(&user)) {
                table.add_row(vec![field.to_string(), value]);
            }
            table.add_row(vec!["created".to_owned(), output::time(user.created_at)]);
            table.add_row(vec![
                "failed checks".to_owned(),
                format!(
                    "password {}, totp {}, sms {}, email {}",
                    user.failed_checks.password,
                    user.failed_checks.totp,
                    user.failed_checks.sms,
                    user.failed_checks.email
                ),
            ]);
            table.add_row(vec!["lockouts".to_owned(), user.lockouts.to_string()]);
            output::print_table(&table)
        }
        Users::History { id, after, limit } => {
            let id = user_id(&id)?;
            let caller = operator.reader()?.by_id();
            let page =
                wait(service.history(&caller, &id, HistoryQuery::after_sequence(after, limit)))?;
            let next = page
                .items
                .last()
                .map(|e| e.sequence)
                .filter(|_| page.next.is_some());
            if json {
                #[derive(Serialize)]
                struct History<'a> {
                    events: &'a [userstate::Event],
                    next: Option<u64>,
                }
                return output::json(&History {
                    events: &page.items,
                    next,
                });
            }
            let mut table = output::table(&EVENT_COLUMNS);
            for event in &page.items {
                table.add_row(output::event_row(event));
            }
            output::print_table(&table)?;
            if let Some(next) = next {
                eprintln!("more: userstate users history {id} --after {next}");
            }
            Ok(())
        }
        Users::Lock(args) => {
            let mut lock = LockRequest::new();
            if let Some(reason) = reason(args.reason)? {
                lock = lock.reason(reason);
            }
            command_done(operator, &args.id, json, |s, c, id| {
                wait(s.lock(c, id, lock))
            })
        }
        Users::Unlock(args) => {
            let why = reason(args.reason)?;
            command_done(operator, &args.id, json, |s, c, id| {
                wait(s.unlock(c, id, why))
            })
        }
        Users::Deactivate(args) => {
            let why = reason(args.reason)?;
            command_done(operator, &args.id, json, |s, c, id| {
                wait(s.deactivate(c, id, why))
            })
        }
        Users::Reactivate(args) => {
            let why = reason(args.reason)?;
            command_done(operator, &args.id, json, |s, c, id| {
                wait(s.reactivate(c, id, why))
            })
        }
    }
}

/// Runs a command on the user `id` by id alone, as the operator, and
/// prints the user after it.
fn command_done(
    operator: &Operator,
    id: &str,
    json: bool,
    command: impl FnOnce(&UserService, &Caller, &UserId) -> userstate::Result<userstate::Details>,
) -> Result<(), Failure> {
    let id = user_id(id)?;
    let caller = operator.writer()?.by_id();
    let details = command(&operator.service, &caller, &id)
        .map_err(|e| Failure::Refused(format!("user {id}: {e}")))?;
    if json {
        return output::json(&details);
    }
    let user = wait(operator.service.get(&caller, &id))?;
    let mut table = output::table(&USER_COLUMNS);
    table.add_row(output::user_row(&user));
    output::print_table(&table)?;
    eprintln!(
        "recorded as {} at sequence {}",
        caller.user_id, details.sequence
    );
    Ok(())
}

fn list(
    operator: &Operator,
    org: Option<OrgId>,
    state: Option<userstate::UserState>,
    after: Option<String>,
    limit: u32,
    json: bool,
) -> Result<(), Failure> {
    let service = &operator.service;
    let caller = operator.reader()?;
    let mut after = after
        .map(|id| user_id(&id).map(|id| Cursor::after_user(&id)))
        .transpose()?;
    let orgs = match org {
        Some(org) => vec![org],
        None => all_organisations(service)?,
    };
    let mut users = Vec::new();
    let mut next = None;
    'orgs: for (index, org) in orgs.iter().enumerate() {
        let caller = caller.clone().in_org(org.clone());
        loop {
            let query = ListQuery {
                state,
                after: after.take(),
                limit: limit - users.len() as u32,
            };
            let page = wait(service.list(&caller, &query))?;
            users.extend(page.items);
            let full = users.len() as u32 >= limit;
            match page.next {
                Some(cursor) if !full => after = Some(cursor),
                Some(_) => {
                    next = users
                        .last()
                        .map(|u: &userstate::User| (org.clone(), u.id.clone()));
                    break 'orgs;
                }
                None if full && index + 1 < orgs.len() => {
                    next = users.last().map(|u| (org.clone(), u.id.clone()));
                    break 'orgs;
                }
                None => continue 'orgs,
            }
        }
    }
    if json {
        #[derive(Serialize)]
        struct Next {
            org: OrgId,
            after: UserId,
        }
        #[derive(Serialize)]
        struct Listing {
            users: Vec<userstate::User>,
            next: Option<Next>,
        }
        return output::json(&Listing {
            users,
            next: next.map(|(org, after)| Next { org, after }),
        });
    }
    let mut table = output::table(&USER_COLUMNS);
    for user in &users {
        table.add_row(output::user_row(user));
    }
    output::print_table(&table)?;
    if let Some((org, id)) = next {
        eprintln!("more: userstate users list --org {org} --after {id} (or a larger --limit)");
    }
    Ok(())
}

/// Every organisation with users, removed ones included.
fn all_organisations(service: &UserService) -> Result<Vec<OrgId>, Failure> {
    let mut orgs = Vec::new();
    loop {
        let page = wait(
            service
                .repository()
                .organisations(orgs.last(), userstate::MAX_PAGE_SIZE),
        )?;
        if page.is_empty() {
            return Ok(orgs);
        }
        orgs.extend(page);
    }
}

fn events(operator: &Operator, args: EventsArgs, json: bool) -> Result<(), Failure> {
    let service = &operator.service;
    let caller = operator.reader()?;
    let query = FeedQuery {
        after: args.after,
        limit: userstate::MAX_PAGE_SIZE,
        org: args.org,
        user: args.user.as_deref().map(user_id).transpose()?,
        event_types: args.types,
    };
    let print = |fed: &userstate::FeedEvent| {
        if json {
            output::json(fed)
        } else {
            output::line(&output::feed_line(fed))
        }
    };
    let mut left = args.limit.unwrap_or(u64::MAX);
    if args.follow {
        let mut stream = Box::pin(service.follow(caller, query));
        while left > 0 {
            match wait(stream.next()) {
                Some(Ok(fed)) => {
                    print(&fed)?;
                    left -= 1;
                }
                Some(Err(e)) => return Err(e.into()),
                None => break,
            }
        }
        return Ok(());
    }
    let mut query = query;
    while left > 0 {
        let page = wait(service.feed(&caller, &query))?;
        for fed in page
            .events
            .iter()
            .take(left.min(usize::MAX as u64) as usize)
        {
            print(fed)?;
            left -= 1;
        }
        if page.checkpoint == query.after {
            break;
        }
        query.after = page.checkpoint;
    }
    Ok(())
}

fn policy(operator: &Operator, command: Policy, json: bool) -> Result<(), Failure> {
    let service = &operator.service;
    let org = match command {
        Policy::Get { org } => org,
        Policy::Set {
            org,
            max_password,
            max_otp,
            lock_duration_ms,
            duration_growth,
            max_lock_duration_ms,
            permanent_after,
            show_attempts,
        } => {
            let caller = operator.writer()?;
            let mut policy = policy_in_force(operator, org.as_ref())?.policy;
            let some = |ms: u64| (ms > 0).then_some(ms);
            if let Some(n) = max_password {
                policy.max_password_attempts = n;
            }
            if let Some(n) = max_otp {
                policy.max_otp_attempts = n;
            }
            if let Some(ms) = lock_duration_ms {
                policy.lock_duration_ms = some(ms);
            }
            if let Some(n) = duration_growth {
                policy.duration_growth = n;
            }
            if let Some(ms) = max_lock_duration_ms {
                policy.max_lock_duration_ms = some(ms);
            }
            if let Some(n) = permanent_after {
                policy.permanent_after = n;
            }
            if let Some(show) = show_attempts {
                policy.show_attempts = show;
            }
            let set = match &org {
                Some(org) => {
                    wait(service.set_lockout_policy(&caller.in_org(org.clone()), policy)).map(drop)
                }
                None => wait(service.set_default_lockout_policy(&caller, policy)),
            };
            set.map_err(|e| match e.kind() {
                ErrorKind::InvalidArgument => Failure::Usage(e.message().to_owned()),
                _ => e.into(),
            })?;
            org
        }
    };
    let shown_policy = policy_in_force(operator, org.as_ref())?;
    if json {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Shown<'a> {
            org: Option<&'a OrgId>,
            policy: &'a userstate::LockoutPolicy,
            is_default: bool,
            changed_by: Option<&'a UserId>,
            changed_at: Option<userstate::Timestamp>,
        }
        let changed = shown_policy.changed.as_ref();
        return output::json(&Shown {
            org: org.as_ref(),
            policy: &shown_policy.policy,
            is_default: shown_policy.is_default,
            changed_by: changed.map(|(by, _)| by),
            changed_at: changed.map(|(_, at)| *at),
        });
    }
    let p = &shown_policy.policy;
    let ms = |ms: Option<u64>| ms.map_or_else(|| "none".to_owned(), |ms| format!("{ms} ms"));
    let (by, at) = shown_policy
        .changed
        .as_ref()
        .map_or(("-".to_owned(), "-".to_owned()), |(by, at)| {
            (by.to_string(), output::time(*at))
        });
    let whose = match (&org, shown_policy.is_default) {
        (None, _) => "the instance default".to_owned(),
        (Some(org), true) => format!("{org} (the instance default)"),
        (Some(org), false) => format!("{org} (its own)"),
    };
    let mut table = output::table(&["field", "value"]);
    for (field, value) in [
        ("policy of", whose),
        ("max password attempts", p.max_password_attempts.to_string()),
        ("max otp attempts", p.max_otp_attempts.to_string()),
        ("lock duration", ms(p.lock_duration_ms)),
        ("duration growth", p.duration_growth.to_string()),
        ("max lock duration", ms(p.max_lock_duration_ms)),
        ("permanent after", p.permanent_after.to_string()),
        ("show attempts", p.show_attempts.to_string()),
        ("changed by", by),
        ("changed at", at),
    ] {
        table.add_row(vec![field.to_owned(), value]);
    }
    output::print_table(&table)
}

/// The policy in force for `org`, or the instance default.
fn policy_in_force(
    operator: &Operator,
    org: Option<&OrgId>,
) -> Result<userstate::PolicyInForce, Failure> {
    let service = &operator.service;
    match org {
        Some(org) => {
            let caller = operator.reader()?.in_org(org.clone());
            Ok(wait(service.lockout_policy(&caller))?)
        }
        None => {
            let org = OrgId::new(OPERATORS)?;
            let stored = wait(service.repository().policies(&org))?;
            let mut in_force = userstate::StoredPolicies {
                org: None,
                default: stored.default,
            }
            .in_force(&org);
            in_force.is_default = true;
            Ok(in_force)
        }
    }
}

fn verify(backend: &Backend, json: bool) -> Result<(), Failure> {
    let started = Instant::now();
    let progress = output::progress(0, "checked", json);
    progress.set_message("verifying");
    let verification = wait(backend.verify())?;
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if json {
        #[derive(Serialize)]
        struct Finding<'a> {
            user: Option<&'a UserId>,
            problem: &'a str,
        }
        #[derive(Serialize)]
        struct Verified<'a> {
            sound: bool,
            users: u64,
            events: u64,
            seconds: f64,
            findings: Vec<Finding<'a>>,
        }
        output::json(&Verified {
            sound: verification.is_sound(),
            users: verification.users,
            events: verification.events,
            seconds,
            findings: verification
                .findings
                .iter()
                .map(|f| Finding {
                    user: f.user.as_ref(),
                    problem: &f.problem,
                })
                .collect(),
        })?;
    } else {
        for finding in &verification.findings {
            output::line(&finding.to_string())?;
        }
        eprintln!(
            "{} users, {} events checked in {seconds:.1} s: {}",
            verification.users,
            verification.events,
            match verification.findings.len() {
                0 => "sound".to_owned(),
                1 => "1 finding".to_owned(),
                n => format!("{n} findings"),
            }
        );
    }
    if verification.is_sound() {
        Ok(())
    } else {
        Err(Failure::Refused(String::new()))
    }
}

fn export(backend: &Backend, to: Option<&Path>, json: bool) -> Result<(), Failure> {
    let repo = backend.repository();
    let out: Box<dyn Write> = match to {
        Some(path) => Box::new(
            create_private_file(path)
                .map_err(|e| Failure::Refused(format!("{}: {}", path.display(), e.message())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::new(out);
    let progress = output::progress(0, "events exported", json || to.is_none());
    let mut last = None;
    for record in Records::of(repo.as_ref()) {
        let record = record?;
        if let Record::Event(_) = record {
            progress.inc(1);
        }
        let line = record.encode()?;
        writeln!(out, "{line}").map_err(write_failed)?;
        last = Some(record);
    }
    out.flush().map_err(write_failed)?;
    progress.finish_and_clear();
    if let (Some(Record::End { policies, events }), Some(path)) = (last, to) {
        eprintln!(
            "{policies} policies and {events} events written to {}",
            path.display()
        );
    }
    Ok(())
}

fn write_failed(e: std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => Failure::Refused(String::new()),
        _ => Failure::Refused(format!("cannot write the export: {e}")),
    }
}

/// What an import or migrate did, as printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    policies: u64,
    users: u64,
    events: u64,
    skipped: u64,
    /// The whole run: the copy and the comparison.
    seconds: f64,
    copy_seconds: f64,
    /// `None` when nothing was compared (an import read from stdin).
    compare_seconds: Option<f64>,
    users_per_second: f64,
    verified: bool,
}

fn import(
    backend: &Backend,
    from: Option<&Path>,
    copy: &CopyArgs,
    json: bool,
) -> Result<(), Failure> {
    let repo = backend.repository();
    refuse_non_empty(repo.as_ref(), copy.resume)?;
    let input: Box<dyn BufRead> = match from {
        Some(path) => {
            Box::new(BufReader::new(File::open(path).map_err(|e| {
                Failure::Usage(format!("{}: {e}", path.display()))
            })?))
        }
        None => Box::new(std::io::stdin().lock()),
    };
    let started = Instant::now();
    let progress = output::progress(0, "events imported", json);
    let copied = transfer::copy(
        transfer::file_records(input),
        repo.as_ref(),
        copy.batch as usize,
        &progress,
    )?;
    progress.finish_and_clear();
    let copied_in = started.elapsed();
    let compared = match from {
        Some(path) => {
            let file = File::open(path)
                .map_err(|e| Failure::Refused(format!("{}: {e}", path.display())))?;
            let progress =
                output::progress(copied.events + copied.skipped, "events compared", json);
            let difference = transfer::compare(
                transfer::file_records(BufReader::new(file)),
                Records::of(repo.as_ref()),
                &progress,
            )?;
            progress.finish_and_clear();
            if let Some(difference) = difference {
                return Err(Failure::Refused(format!(
                    "imported, but the database is not the export: {difference}"
                )));
            }
            Some(started.elapsed() - copied_in)
        }
        None => None,
    };
    summary(copied, copied_in, compared, json)
}

fn migrate(from: &str, to: &str, copy: &CopyArgs, json: bool) -> Result<(), Failure> {
    if from == to {
        return Err(Failure::Usage(
            "--from and --to name the same database".to_owned(),
        ));
    }
    let source = open(
        from,
        &OpenOptions {
            create_if_missing: false,
            ..options()
        },
    )?;
    let target = open(to, &options())?;
    let (source, target) = (source.repository(), target.repository());
    refuse_non_empty(target.as_ref(), copy.resume)?;
    let started = Instant::now();
    let progress = output::progress(0, "events copied", json);
    let copied = transfer::copy(
        Records::of(source.as_ref()),
        target.as_ref(),
        copy.batch as usize,
        &progress,
    )?;
    progress.finish_and_clear();
    let copied_in = started.elapsed();
    let progress = output::progress(copied.events + copied.skipped, "events compared", json);
    let difference = transfer::compare(
        Records::of(source.as_ref()),
        Records::of(target.as_ref()),
        &progress,
    )?;
    progress.finish_and_clear();
    if let Some(difference) = difference {
        return Err(Failure::Refused(format!(
            "copied, but the target is not the source: {difference}. If the source \
             was written meanwhile, run again with --resume"
        )));
    }
    summary(copied, copied_in, Some(started.elapsed() - copied_in), json)
}

fn refuse_non_empty(repo: &dyn userstate::UserRepository, resume: bool) -> Result<(), Failure> {
    if !resume && !transfer::is_empty(repo)? {
        return Err(Failure::Refused(
            "the target database is not empty: nothing was written. Import into an empty \
             database, or, to go on after an interrupted import or migrate of the same \
             source, run again with --resume"
                .to_owned(),
        ));
    }
    Ok(())
}

fn summary(
    copied: transfer::Copied,
    copy: Duration,
    compare: Option<Duration>,
    json: bool,
) -> Result<(), Failure> {
    let seconds = (copy + compare.unwrap_or_default()).as_secs_f64();
    let users = copied.users;
    let verified = compare.is_some();
    let summary = Summary {
        policies: copied.policies,
        users,
        events: copied.events,
        skipped: copied.skipped,
        seconds,
        copy_seconds: copy.as_secs_f64(),
        compare_seconds: compare.map(|d| d.as_secs_f64()),
        users_per_second: users as f64 / seconds.max(f64::EPSILON),
        verified,
    };
    if json {
        return output::json(&summary);
    }
    let mut table = output::table(&[
        "policies", "users", "events", "skipped", "seconds", "users/s", "verified",
    ]);
    table.add_row(vec![
        summary.policies.to_string(),
        summary.users.to_string(),
        summary.events.to_string(),
        summary.skipped.to_string(),
        format!("{seconds:.1}"),
        format!("{:.0}", summary.users_per_second),
        if verified {
            "yes"
        } else {
            "no (read from stdin)"
        }
        .to_owned(),
    ]);
    output::print_table(&table)
}
