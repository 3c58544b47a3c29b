//! The writer: a batch of commands in ONE transaction, on the users as
//! read inside it, in three pipelined round trips.
//!
//! 1. `BEGIN`, the durability and idle bounds, and the feed row's lock
//!    (`SELECT ... FOR UPDATE`), sent with the read of every user the batch
//!    names (callers included).
//! 2. Each command decides on its user as read (or as an earlier command
//!    of the batch left it), in memory.
//! 3. The users' rows (each written only where it is still at the sequence
//!    it was read at), the events with their feed positions, the feed's
//!    last position and a `NOTIFY`, sent together; then `COMMIT`.
//!
//! Every writing transaction of every instance takes the feed row's lock
//! first and holds it to its commit, so writers commit one after another:
//! a decision is made on the user as committed, and never conflicts with
//! another instance's, and feed positions become visible in the order they
//! were taken, so a reader that checkpoints the last position it saw never
//! skips an event committed later. Concurrent commands of one instance
//! share one transaction and one commit.
//!
//! With a connection string the writer has a connection of its own, driven
//! on the writer's thread by a runtime of the writer's own: a round trip
//! wakes no other thread. With a host's pool it borrows one connection of
//! the pool and keeps it while it works.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use deadpool_postgres::Object;
use futures_util::future::Either;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};
use userstate::storage::{BatchWriter, Decision, Durability, FeedSignal, Scope, Update};
use userstate::{Error, Result, User};

use crate::engine::{is_connection_fault, Engine};
use crate::error::{conflict, from_pool, from_postgres, timed_out};
use crate::layout::Statements;
use crate::reader::{load_many_with, Stored};
use crate::record::{encode_event, encode_user, to_column, EventRow, UserRow};

/// The group-commit engine of one repository.
pub(crate) struct Writer {
    engine: Arc<Engine>,
    /// Drives the writer's own connection, on whichever writer thread leads.
    runtime: tokio::runtime::Runtime,
    link: Option<Link>,
    durability: Durability,
    signal: Arc<FeedSignal>,
}

/// The writer's connection and its statements, prepared once.
struct Link {
    connection: Connection,
    prepared: Prepared,
}

enum Connection {
    /// The writer's own; its I/O future is polled beside each batch.
    Own {
        client: Client,
        io: Pin<Box<dyn Future<Output = std::result::Result<(), tokio_postgres::Error>> + Send>>,
    },
    /// Borrowed from the host's pool, driven by the adapter's runtime.
    Pooled(Object),
}

impl Connection {
    fn client(&self) -> &Client {
        match self {
            Connection::Own { client, .. } => client,
            Connection::Pooled(object) => object,
        }
    }
}

struct Prepared {
    load_many: Statement,
    write_users: Statement,
    write_events: Statement,
    write_user: Statement,
    write_event: Statement,
    advance_feed: Statement,
    notify: Statement,
}

impl Prepared {
    async fn on(client: &Client, statements: &Statements) -> Result<Prepared> {
        let prepare = |sql: &str| {
            let sql = sql.to_owned();
            async move { client.prepare(&sql).await.map_err(from_postgres) }
        };
        let (load_many, write_users, write_events, write_user) = futures_util::future::join4(
            prepare(&statements.load_many),
            prepare(&statements.write_users),
            prepare(&statements.write_events),
            prepare(&statements.write_user),
        )
        .await;
        let (write_event, advance_feed, notify) = futures_util::future::join3(
            prepare(&statements.write_event),
            prepare(&statements.advance_feed),
            prepare(&statements.notify),
        )
        .await;
        Ok(Prepared {
            load_many: load_many?,
            write_users: write_users?,
            write_events: write_events?,
            write_user: write_user?,
            write_event: write_event?,
            advance_feed: advance_feed?,
            notify: notify?,
        })
    }
}

impl Writer {
    pub(crate) fn new(
        engine: Arc<Engine>,
        durability: Durability,
        signal: Arc<FeedSignal>,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal("cannot start the writer's runtime").with_source(e))?;
        Ok(Writer {
            engine,
            runtime,
            link: None,
            durability,
            signal,
        })
    }

    /// A link for the next batch: the one kept, or a new one.
    fn link(&mut self) -> Result<Link> {
        if let Some(link) = self.link.take() {
            if !link.connection.client().is_closed() {
                return Ok(link);
            }
        }
        let engine = self.engine.clone();
        let timeout = engine.command_timeout;
        match &engine.listen {
            Some(config) => self.runtime.block_on(async {
                let connected = tokio::time::timeout(timeout, config.connect(NoTls))
                    .await
                    .map_err(|_| timed_out("connecting", timeout))?;
                let (client, connection) = connected.map_err(from_postgres)?;
                let mut io: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(connection);
                let (prepared, _) = drive(
                    tokio::time::timeout(timeout, Prepared::on(&client, &engine.statements)),
                    &mut io,
                )
                .await;
                let prepared = prepared.map_err(|_| timed_out("preparing", timeout))??;
                Ok(Link {
                    connection: Connection::Own { client, io },
                    prepared,
                })
            }),
            None => engine.block_on(async {
                let object = tokio::time::timeout(timeout, engine.pool.get())
                    .await
                    .map_err(|_| timed_out("waiting for a connection", timeout))?
                    .map_err(from_pool)?;
                let prepared =
                    tokio::time::timeout(timeout, Prepared::on(&object, &engine.statements))
                        .await
                        .map_err(|_| timed_out("preparing", timeout))??;
                Ok(Link {
                    connection: Connection::Pooled(object),
                    prepared,
                })
            }),
        }
    }
}

impl BatchWriter for Writer {
    fn commit(&mut self, batch: Vec<Update>) -> Vec<Result<User>> {
        let size = batch.len();
        let mut link = match self.link() {
            Ok(link) => link,
            Err(e) => return vec![Err(e); size],
        };
        let timeout = self.engine.command_timeout;
        let mut stage = Stage::Open;
        let this = &*self;
        let (run, alive) = match &mut link.connection {
            Connection::Own { client, io } => this.runtime.block_on(async {
                let run = tokio::time::timeout(
                    timeout,
                    this.transaction(client, &link.prepared, batch, &mut stage),
                );
                drive(run, io).await
            }),
            Connection::Pooled(object) => {
                let run = this.engine.block_on(async {
                    tokio::time::timeout(
                        timeout,
                        this.transaction(object, &link.prepared, batch, &mut stage),
                    )
                    .await
                });
                (run, true)
            }
        };
        let (outcomes, failure) = match run {
            Ok(Ok(outcomes)) => (outcomes, None),
            Ok(Err((outcomes, error))) => (outcomes, Some(error)),
            Err(_) => (Vec::new(), Some(timed_out("a commit", timeout))),
        };
        let Some(error) = failure else {
            self.link = alive.then_some(link);
            return outcomes.into_iter().map(Outcome::answer).collect();
        };
        let error = if stage == Stage::CommitSent && is_connection_fault(&error) {
            Error::outcome_unknown(format!(
                "{}; the commit was sent, so the command may have applied: read the user again",
                error.message()
            ))
        } else {
            error
        };
        // A connection in doubt is dropped; one whose statement failed ends
        // its transaction and is kept.
        if alive && !is_connection_fault(&error) && self.end_transaction(&mut link, stage) {
            self.link = Some(link);
        } else if let Connection::Pooled(object) = link.connection {
            drop(Object::take(object));
        }
        if outcomes.is_empty() {
            return vec![Err(error); size];
        }
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Done(done) => done,
                Outcome::Writes(_) => Err(error.clone()),
            })
            .collect()
    }
}

/// How far a batch got when it failed: before COMMIT was sent nothing of
/// it applied; after, all of it may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Open,
    CommitSent,
}

/// What one command of the batch came to.
enum Outcome {
    /// Answered without writing (refused, or nothing to change).
    Done(Result<User>),
    /// Writes; answered with this user once the transaction commits.
    Writes(User),
}

impl Outcome {
    fn answer(self) -> Result<User> {
        match self {
            Outcome::Done(done) => done,
            Outcome::Writes(user) => Ok(user),
        }
    }
}

/// What a failed transaction leaves: the outcomes decided so far (none if
/// it failed before deciding) and the error.
type Failed = (Vec<Outcome>, Error);

impl Writer {
    /// Rolls back what a failed statement left open (a failed COMMIT has
    /// ended its transaction already); whether the link is still good.
    fn end_transaction(&self, link: &mut Link, stage: Stage) -> bool {
        if stage == Stage::CommitSent {
            return true;
        }
        let timeout = self.engine.command_timeout;
        match &mut link.connection {
            Connection::Own { client, io } => {
                let (done, alive) = self.runtime.block_on(async {
                    let rollback = tokio::time::timeout(timeout, client.batch_execute("ROLLBACK"));
                    drive(rollback, io).await
                });
                alive && matches!(done, Ok(Ok(_)))
            }
            Connection::Pooled(object) => {
                let done = self.engine.block_on(async {
                    tokio::time::timeout(timeout, object.batch_execute("ROLLBACK")).await
                });
                matches!(done, Ok(Ok(_)))
            }
        }
    }

    /// The batch's transaction.
    async fn transaction(
        &self,
        client: &Client,
        prepared: &Prepared,
        batch: Vec<Update>,
        stage: &mut Stage,
    ) -> std::result::Result<Vec<Outcome>, Failed> {
        let fail = |e: Error| (Vec::new(), e);
        let mut ids: Vec<&str> = Vec::new();
        for update in &batch {
            ids.push(update.id().as_str());
            if let Some(actor) = update.actor() {
                ids.push(actor.user.as_str());
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let begin = self.engine.statements.begin_write(
            self.durability == Durability::Durable,
            self.engine.command_timeout.as_millis(),
        );
        // The lock first, then the read: the read sees every commit made
        // before the lock was granted.
        let (locked, read) = futures_util::future::join(
            client.simple_query(&begin),
            load_many_with(client, &prepared.load_many, &ids),
        )
        .await;
        let last = last_of(locked.map_err(from_postgres).map_err(fail)?).map_err(fail)?;
        let mut users: HashMap<String, Stored> = read.map_err(fail)?;
        // Each user's sequence as read: its row is written only if it is
        // still there.
        let read_at: HashMap<String, u64> = users
            .iter()
            .filter_map(|(id, stored)| stored.user().map(|u| (id.clone(), u.sequence)))
            .collect();

        let mut outcomes = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        let mut written: Vec<String> = Vec::new();
        let mut position = last;
        for update in batch {
            let outcome = match decide(update, &users) {
                Ok(Decision::Unchanged(user)) => Outcome::Done(Ok(user)),
                Err(e) => Outcome::Done(Err(e)),
                Ok(Decision::Write(commit)) => {
                    let (new_events, user) = commit.into_parts();
                    for event in &new_events {
                        position += 1;
                        match encode_event(event, position) {
                            Ok(row) => events.push(row),
                            Err(e) => return Err((outcomes, e)),
                        }
                    }
                    let id = user.id.as_str().to_owned();
                    if !written.contains(&id) {
                        written.push(id.clone());
                    }
                    users.insert(id, Stored::Found(user.clone()));
                    Outcome::Writes(user)
                }
            };
            outcomes.push(outcome);
        }
        if written.is_empty() {
            if let Err(e) = client.batch_execute("ROLLBACK").await {
                return Err((outcomes, from_postgres(e)));
            }
            return Ok(outcomes);
        }
        let rows = written
            .iter()
            .map(|id| {
                let user = users
                    .get(id)
                    .and_then(Stored::user)
                    .ok_or_else(|| Error::internal("a written user went missing from its batch"))?;
                Ok((
                    encode_user(user)?,
                    to_column(read_at.get(id).copied().unwrap_or(0))?,
                ))
            })
            .collect::<Result<Vec<_>>>();
        let written = match rows {
            Ok(rows) => {
                write(
                    client,
                    prepared,
                    &self.engine.statements,
                    &rows,
                    &events,
                    last,
                    position,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            return Err((outcomes, e));
        }
        *stage = Stage::CommitSent;
        if let Err(e) = client.batch_execute("COMMIT").await {
            return Err((outcomes, from_postgres(e)));
        }
        self.signal.committed(position);
        Ok(outcomes)
    }
}

/// Sends the batch's rows (each with the sequence it must still be at),
/// its events, the feed's new last position and the wake for listeners,
/// together. One user's row and events go as single-row statements, which
/// cost the server less than the array forms a larger batch uses.
async fn write(
    client: &Client,
    prepared: &Prepared,
    statements: &Statements,
    users: &[(UserRow, i64)],
    events: &[EventRow],
    last: u64,
    position: u64,
) -> Result<()> {
    let (new_last, old_last) = (to_column(position)?, to_column(last)?);
    let payload = position.to_string();
    let rows = async {
        if let [(row, expected)] = users {
            let user: [&(dyn ToSql + Sync); 6] = [
                &row.id,
                &row.org,
                &row.state,
                &row.sequence,
                &row.snapshot,
                expected,
            ];
            let each_event: Vec<[&(dyn ToSql + Sync); 8]> = events
                .iter()
                .map(|e| -> [&(dyn ToSql + Sync); 8] {
                    [
                        &e.user_id,
                        &e.sequence,
                        &e.org,
                        &e.event_type,
                        &e.created_at,
                        &e.creator,
                        &e.payload,
                        &e.position,
                    ]
                })
                .collect();
            let inserts = futures_util::future::try_join_all(
                each_event
                    .iter()
                    .map(|params| client.execute(&prepared.write_event, params)),
            );
            let (user, inserts) =
                futures_util::future::join(client.execute(&prepared.write_user, &user), inserts)
                    .await;
            inserts?;
            user
        } else {
            let mut columns = UserColumns::default();
            for (row, expected) in users {
                columns.push(row, *expected);
            }
            let events = EventColumns::of(events);
            let (users, inserted) = futures_util::future::join(
                client.execute(
                    &prepared.write_users,
                    &[
                        &columns.id,
                        &columns.org,
                        &columns.state,
                        &columns.sequence,
                        &columns.snapshot,
                        &columns.expected,
                    ],
                ),
                client.execute(
                    &prepared.write_events,
                    &[
                        &events.user_id,
                        &events.sequence,
                        &events.org,
                        &events.event_type,
                        &events.created_at,
                        &events.creator,
                        &events.payload,
                        &events.position,
                    ],
                ),
            )
            .await;
            inserted?;
            users
        }
    };
    let (users_written, advanced, notified) = futures_util::future::join3(
        rows,
        client.execute(&prepared.advance_feed, &[&new_last, &old_last]),
        client.query(&prepared.notify, &[&statements.channel, &payload]),
    )
    .await;
    let users_written = users_written.map_err(from_postgres)?;
    let advanced = advanced.map_err(from_postgres)?;
    notified.map_err(from_postgres)?;
    if users_written != users.len() as u64 || advanced != 1 {
        // Only a writer outside this adapter (or one ignoring the feed
        // lock) can have moved a user on: decide again.
        return Err(conflict());
    }
    Ok(())
}

/// Polls `work` and the connection's I/O `io` together on this thread;
/// whether the connection is still up after.
async fn drive<T>(
    work: impl Future<Output = T>,
    io: &mut Pin<Box<dyn Future<Output = std::result::Result<(), tokio_postgres::Error>> + Send>>,
) -> (T, bool) {
    let work = std::pin::pin!(work);
    match futures_util::future::select(work, io.as_mut()).await {
        Either::Left((done, _)) => (done, true),
        // The connection ended: what was in flight fails at once.
        Either::Right((_, work)) => (work.await, false),
    }
}

/// Runs `update`'s checks and decision on its users as the batch has them,
/// each seen in its scope.
fn decide(update: Update, users: &HashMap<String, Stored>) -> Result<Decision> {
    let seen = |id: &str, scope: &Scope| users.get(id).map_or(Ok(None), |s| s.in_scope(scope));
    let stored = seen(update.id().as_str(), update.scope())?;
    let actor = match update.actor() {
        Some(actor) => seen(actor.user.as_str(), &actor.scope())?,
        None => None,
    };
    update.decide(stored, actor)
}

/// The feed's last position, from the answer to `begin_write`.
fn last_of(messages: Vec<tokio_postgres::SimpleQueryMessage>) -> Result<u64> {
    messages
        .iter()
        .find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .and_then(|last| last.parse::<u64>().ok())
        .ok_or_else(|| Error::corrupt("the feed table holds no last position"))
}

/// The users' rows as the arrays `write_users` unnests.
#[derive(Default)]
struct UserColumns<'a> {
    id: Vec<&'a str>,
    org: Vec<&'a str>,
    state: Vec<&'a str>,
    sequence: Vec<i64>,
    snapshot: Vec<&'a str>,
    expected: Vec<i64>,
}

impl<'a> UserColumns<'a> {
    fn push(&mut self, row: &'a UserRow, expected: i64) {
        self.id.push(&row.id);
        self.org.push(&row.org);
        self.state.push(&row.state);
        self.sequence.push(row.sequence);
        self.snapshot.push(&row.snapshot);
        self.expected.push(expected);
    }
}

/// The events as the arrays `write_events` unnests.
struct EventColumns<'a> {
    user_id: Vec<&'a str>,
    sequence: Vec<i64>,
    org: Vec<&'a str>,
    event_type: Vec<&'a str>,
    created_at: Vec<i64>,
    creator: Vec<&'a str>,
    payload: Vec<&'a str>,
    position: Vec<i64>,
}

impl<'a> EventColumns<'a> {
    fn of(rows: &'a [EventRow]) -> Self {
        EventColumns {
            user_id: rows.iter().map(|r| r.user_id.as_str()).collect(),
            sequence: rows.iter().map(|r| r.sequence).collect(),
            org: rows.iter().map(|r| r.org.as_str()).collect(),
            event_type: rows.iter().map(|r| r.event_type.as_str()).collect(),
            created_at: rows.iter().map(|r| r.created_at).collect(),
            creator: rows.iter().map(|r| r.creator.as_str()).collect(),
            payload: rows.iter().map(|r| r.payload.as_str()).collect(),
            position: rows.iter().map(|r| r.position).collect(),
        }
    }
}
