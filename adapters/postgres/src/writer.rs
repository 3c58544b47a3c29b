//! The writer: a batch of commands in ONE transaction, on the users as
//! read inside it, in a few pipelined round trips.
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

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::Object;
use userstate::storage::{BatchWriter, Decision, Durability, FeedSignal, Scope, Update};
use userstate::{Error, Result, User};

use crate::engine::{is_connection_fault, Engine};
use crate::error::{conflict, from_pool, from_postgres, timed_out};
use crate::reader::{load_many, Stored};
use crate::record::{encode_event, encode_user, to_column};

/// The group-commit engine of one repository.
pub(crate) struct Writer {
    engine: Arc<Engine>,
    client: Option<Object>,
    durability: Durability,
    signal: Arc<FeedSignal>,
}

impl Writer {
    pub(crate) fn new(
        engine: Arc<Engine>,
        durability: Durability,
        signal: Arc<FeedSignal>,
    ) -> Self {
        Writer {
            engine,
            client: None,
            durability,
            signal,
        }
    }
}

impl BatchWriter for Writer {
    fn commit(&mut self, batch: Vec<Update>) -> Vec<Result<User>> {
        let engine = self.engine.clone();
        engine.block_on(self.commit_batch(batch))
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

impl Writer {
    async fn commit_batch(&mut self, batch: Vec<Update>) -> Vec<Result<User>> {
        let size = batch.len();
        let timeout = self.engine.command_timeout;
        let client = match self.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => match tokio::time::timeout(timeout, self.engine.pool.get()).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => return vec![Err(from_pool(e)); size],
                Err(_) => return vec![Err(timed_out("waiting for a connection", timeout)); size],
            },
        };
        let mut stage = Stage::Open;
        let run = tokio::time::timeout(timeout, self.transaction(&client, batch, &mut stage));
        let (outcomes, failure) = match run.await {
            Ok(Ok(outcomes)) => (outcomes, None),
            Ok(Err((outcomes, error))) => (outcomes, Some(error)),
            Err(_) => (Vec::new(), Some(timed_out("a commit", timeout))),
        };
        let Some(error) = failure else {
            self.client = Some(client);
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
        if is_connection_fault(&error) || client.is_closed() {
            drop(Object::take(client));
        } else if stage == Stage::Open {
            // A statement failed on a live connection: end its transaction.
            if client.batch_execute("ROLLBACK").await.is_ok() {
                self.client = Some(client);
            } else {
                drop(Object::take(client));
            }
        } else {
            self.client = Some(client);
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

    /// The batch's transaction. On failure, the outcomes decided so far
    /// (none if it failed before deciding) and the error.
    async fn transaction(
        &self,
        client: &Object,
        batch: Vec<Update>,
        stage: &mut Stage,
    ) -> std::result::Result<Vec<Outcome>, (Vec<Outcome>, Error)> {
        let statements = &self.engine.statements;
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
        let begin = statements.begin_write(
            self.durability == Durability::Durable,
            self.engine.command_timeout.as_millis(),
        );
        // The lock first, then the read: the read sees every commit made
        // before the lock was granted.
        let (locked, read) = futures_util::future::join(
            client.simple_query(&begin),
            load_many(client, statements, &ids),
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
            let decided = decide(update, &users);
            let outcome = match decided {
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
                    if !written.contains(&user.id.as_str().to_owned()) {
                        written.push(user.id.as_str().to_owned());
                    }
                    users.insert(user.id.as_str().to_owned(), Stored::Found(user.clone()));
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
        if let Err(e) = self
            .write(client, &users, &read_at, &written, &events, last, position)
            .await
        {
            return Err((outcomes, e));
        }
        *stage = Stage::CommitSent;
        if let Err(e) = client.batch_execute("COMMIT").await {
            return Err((outcomes, from_postgres(e)));
        }
        self.signal.committed(position);
        Ok(outcomes)
    }

    /// Sends the batch's rows, the feed's new last position and the wake
    /// for listeners, together.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        client: &Object,
        users: &HashMap<String, Stored>,
        read_at: &HashMap<String, u64>,
        written: &[String],
        events: &[crate::record::EventRow],
        last: u64,
        position: u64,
    ) -> Result<()> {
        let statements = &self.engine.statements;
        let mut rows = UserColumns::default();
        for id in written {
            let user = users
                .get(id)
                .and_then(Stored::user)
                .ok_or_else(|| Error::internal("a written user went missing from its batch"))?;
            let row = encode_user(user)?;
            rows.id.push(row.id);
            rows.org.push(row.org);
            rows.state.push(row.state);
            rows.sequence.push(row.sequence);
            rows.snapshot.push(row.snapshot);
            rows.expected
                .push(to_column(read_at.get(id).copied().unwrap_or(0))?);
        }
        let mut columns = EventColumns::default();
        for row in events {
            columns.user_id.push(row.user_id.as_str());
            columns.sequence.push(row.sequence);
            columns.org.push(row.org.as_str());
            columns.event_type.push(row.event_type.as_str());
            columns.created_at.push(row.created_at);
            columns.creator.push(row.creator.as_str());
            columns.payload.push(row.payload.as_str());
            columns.position.push(row.position);
        }
        let (write_users, write_events, advance, notify) = futures_util::future::join4(
            client.prepare_cached(&statements.write_users),
            client.prepare_cached(&statements.write_events),
            client.prepare_cached(&statements.advance_feed),
            client.prepare_cached(&statements.notify),
        )
        .await;
        let (write_users, write_events, advance, notify) = (
            write_users.map_err(from_postgres)?,
            write_events.map_err(from_postgres)?,
            advance.map_err(from_postgres)?,
            notify.map_err(from_postgres)?,
        );
        let (new_last, old_last) = (to_column(position)?, to_column(last)?);
        let payload = position.to_string();
        let (users_written, events_written, advanced, notified) = futures_util::future::join4(
            client.execute(
                &write_users,
                &[
                    &rows.id,
                    &rows.org,
                    &rows.state,
                    &rows.sequence,
                    &rows.snapshot,
                    &rows.expected,
                ],
            ),
            client.execute(
                &write_events,
                &[
                    &columns.user_id,
                    &columns.sequence,
                    &columns.org,
                    &columns.event_type,
                    &columns.created_at,
                    &columns.creator,
                    &columns.payload,
                    &columns.position,
                ],
            ),
            client.execute(&advance, &[&new_last, &old_last]),
            client.query(&notify, &[&statements.channel, &payload]),
        )
        .await;
        let users_written = users_written.map_err(from_postgres)?;
        events_written.map_err(from_postgres)?;
        let advanced = advanced.map_err(from_postgres)?;
        notified.map_err(from_postgres)?;
        if users_written != written.len() as u64 || advanced != 1 {
            // Only a writer outside this adapter (or one ignoring the feed
            // lock) can have moved a user on: decide again.
            return Err(conflict());
        }
        Ok(())
    }
}

impl Outcome {
    fn answer(self) -> Result<User> {
        match self {
            Outcome::Done(done) => done,
            Outcome::Writes(user) => Ok(user),
        }
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

#[derive(Default)]
struct UserColumns {
    id: Vec<String>,
    org: Vec<String>,
    state: Vec<String>,
    sequence: Vec<i64>,
    snapshot: Vec<String>,
    expected: Vec<i64>,
}

#[derive(Default)]
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
