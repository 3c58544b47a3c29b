//! The baseline on PostgreSQL: the work of one lock or unlock written by
//! hand on tokio-postgres, on the adapter's own tables (created by the
//! adapter's migration, so the stored rows have the same shape), with the
//! same durability: `synchronous_commit` on (durable) or off (relaxed) for
//! every transaction.
//!
//! One command is one transaction on the caller's own connection, in the
//! three round trips the adapter's writer takes for a batch:
//!
//! 1. `BEGIN; SET LOCAL synchronous_commit TO on; SELECT last FROM feed FOR
//!    UPDATE` (the feed row's lock, which orders the adapter's writers too),
//!    sent with the read of the user's row;
//! 2. the transition checked by hand, then the user's row rewritten where it
//!    is still at the sequence read, the event inserted at the next feed
//!    position, the feed's last position moved on and `pg_notify`, sent
//!    together;
//! 3. `COMMIT`.
//!
//! What it leaves out is exactly what the library adds: the service's checks
//! (the caller's own row among them), the typed decision and reducer, serde,
//! the writer threads and the hand-offs to the adapter's runtime, and group
//! commit: concurrent callers here each commit (and, durable, wait for the
//! WAL flush) one after another, queued on the feed row's lock.
//!
//! [`copy_preload`] loads the users of [`crate::fixture`] in the adapter's
//! exact row format (the core's JSON encoders) with `COPY`; the compare
//! program loads the library's database with it too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Statement};
use userstate::storage::json;
use userstate::Timestamp;

use crate::fixture::{self, preload_commit, ADMIN, ORG};
use crate::measure::{Histogram, Sample};

/// Errors of the raw store.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The schema the adapter uses by default, which both sides use.
const SCHEMA: &str = userstate_postgres::DEFAULT_SCHEMA;

const LOCKED_TYPE: &str = "user.locked";
const UNLOCKED_TYPE: &str = "user.unlocked";
/// An administrator's lock: no reason, no expiry (the core's encoding).
const LOCKED_PAYLOAD: &str = r#"{"cause":"command"}"#;
/// An administrator's unlock starts the user afresh.
const UNLOCKED_PAYLOAD: &str = r#"{"cause":"command","resetsEscalation":true}"#;

/// The users' snapshot of a user of [`ORG`], as the core's JSON format
/// writes it (times in milliseconds; fields at their default left out),
/// written with `format!` as code without the library would.
fn snapshot_json(locked: bool, sequence: i64, created: i64, changed: i64) -> String {
    if locked {
        format!(
            r#"{{"org":"{ORG}","state":"locked","sequence":{sequence},"createdAt":{created},"changedAt":{changed},"lock":{{"lockedAt":{changed},"previousState":"active","cause":"command"}}}}"#
        )
    } else {
        format!(
            r#"{{"org":"{ORG}","state":"active","sequence":{sequence},"createdAt":{created},"changedAt":{changed}}}"#
        )
    }
}

/// Milliseconds since the epoch, now.
fn now_millis() -> i64 {
    Timestamp::now().unix_millis()
}

/// Connects to `connection` and drives the connection on the current
/// runtime.
async fn connect(connection: &str) -> Result<Client, Failure> {
    let (client, driver) = tokio_postgres::connect(connection, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = driver.await {
            eprintln!("raw postgres: connection ended: {e}");
        }
    });
    Ok(client)
}

/// Loads users `0..count` of [`crate::fixture`] (every tenth locked) into
/// the adapter's empty tables of the database `connection` names, in the
/// adapter's exact row format: the rows the adapter would write for
/// [`preload_commit`] at `at`, encoded with the core's JSON encoders, feed
/// positions in user order. Two `COPY ... (FORMAT binary)` run at once
/// (users, events), then the feed's last position is set and both tables
/// are vacuumed and analysed, as autovacuum would have done by the time a
/// server has served a million users. Returns the time it took.
///
/// The adapter's schema must exist ([`userstate_postgres::PostgresOptions::migrate`]).
///
/// # Errors
/// PostgreSQL's; a table that is not empty.
pub fn copy_preload(connection: &str, count: usize, at: Timestamp) -> Result<Duration, Failure> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (users, events) = (connect(connection).await?, connect(connection).await?);
        let found: i64 = users
            .query_one(&format!("SELECT count(*) FROM {SCHEMA}.users"), &[])
            .await?
            .get(0);
        if found != 0 {
            return Err(format!("{SCHEMA}.users already holds {found} users").into());
        }
        let (copied_users, copied_events) = futures::future::join(
            tokio::spawn(async move { copy_users(&users, count, at).await.map(|_| users) }),
            tokio::spawn(async move { copy_events(&events, count, at).await }),
        )
        .await;
        let users = copied_users??;
        let last = copied_events??;
        users
            .execute(&format!("UPDATE {SCHEMA}.feed SET last = $1"), &[&last])
            .await?;
        users.batch_execute(&vacuum_statement()).await?;
        Ok::<_, Failure>(())
    })?;
    Ok(started.elapsed())
}

fn vacuum_statement() -> String {
    format!("VACUUM (ANALYZE) {SCHEMA}.users, {SCHEMA}.events")
}

/// Vacuums and analyses the adapter's tables of the database `connection`
/// names, as [`copy_preload`] leaves them.
///
/// # Errors
/// PostgreSQL's.
pub fn vacuum_analyze(connection: &str) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = connect(connection).await?;
        client.batch_execute(&vacuum_statement()).await?;
        Ok(())
    })
}

async fn copy_users(client: &Client, count: usize, at: Timestamp) -> Result<(), Failure> {
    let sink = client
        .copy_in(&format!(
            "COPY {SCHEMA}.users (id, org, state, sequence, snapshot) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[Type::TEXT, Type::TEXT, Type::TEXT, Type::INT8, Type::TEXT],
    );
    pin_mut!(writer);
    for i in 0..count {
        let user = preload_commit(i, at).into_parts().1;
        let sequence = i64::try_from(user.sequence)?;
        let snapshot = json::encode_snapshot(&user)?;
        writer
            .as_mut()
            .write(&[
                &user.id.as_str(),
                &user.org_id.as_str(),
                &json::state_name(user.state),
                &sequence,
                &snapshot,
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Returns the last feed position written.
async fn copy_events(client: &Client, count: usize, at: Timestamp) -> Result<i64, Failure> {
    let sink = client
        .copy_in(&format!(
            "COPY {SCHEMA}.events (user_id, sequence, org, event_type, created_at, creator, \
             payload, position) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let types = [
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::INT8,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    let mut position: i64 = 0;
    for i in 0..count {
        for event in preload_commit(i, at).into_parts().0 {
            position += 1;
            let (event_type, payload) = json::encode_payload(&event.payload)?;
            let sequence = i64::try_from(event.sequence)?;
            writer
                .as_mut()
                .write(&[
                    &event.user_id.as_str(),
                    &sequence,
                    &event.org_id.as_str(),
                    &event_type,
                    &event.created_at.unix_millis(),
                    &event.creator.as_str(),
                    &payload,
                    &position,
                ])
                .await?;
        }
    }
    writer.finish().await?;
    Ok(position)
}

/// One caller's connection and its prepared statements.
struct Session {
    client: Client,
    read: Statement,
    write_user: Statement,
    insert_event: Statement,
    advance: Statement,
    notify: Statement,
}

impl Session {
    async fn open(connection: &str) -> Result<Self, Failure> {
        let client = connect(connection).await?;
        let read = client
            .prepare(&format!(
                "SELECT org, state, sequence, snapshot FROM {SCHEMA}.users WHERE id = $1"
            ))
            .await?;
        let write_user = client
            .prepare(&format!(
                "UPDATE {SCHEMA}.users SET state = $2, sequence = $3, snapshot = $4 \
                 WHERE id = $1 AND sequence = $5"
            ))
            .await?;
        let insert_event = client
            .prepare(&format!(
                "INSERT INTO {SCHEMA}.events (user_id, sequence, org, event_type, created_at, \
                 creator, payload, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ))
            .await?;
        let advance = client
            .prepare(&format!(
                "UPDATE {SCHEMA}.feed SET last = $1 WHERE last = $2"
            ))
            .await?;
        let notify = client.prepare("SELECT pg_notify($1, $2)").await?;
        Ok(Session {
            client,
            read,
            write_user,
            insert_event,
            advance,
            notify,
        })
    }

    /// Locks the user `id` if it is active, unlocks it if it is locked, in
    /// one transaction. Returns whether it is locked now.
    async fn toggle(&self, id: &str, durable: bool, created: i64) -> Result<bool, Failure> {
        let outcome = self.toggle_in_transaction(id, durable, created).await;
        if outcome.is_err() {
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
        outcome
    }

    async fn toggle_in_transaction(
        &self,
        id: &str,
        durable: bool,
        created: i64,
    ) -> Result<bool, Failure> {
        let begin = format!(
            "BEGIN; SET LOCAL synchronous_commit TO {}; SELECT last FROM {SCHEMA}.feed FOR UPDATE",
            if durable { "on" } else { "off" }
        );
        // Pipelined: the server runs the read after the lock is granted.
        let (locked, read) = futures::future::join(
            self.client.simple_query(&begin),
            self.client.query_one(&self.read, &[&id]),
        )
        .await;
        let last: i64 = locked?
            .iter()
            .find_map(|message| match message {
                SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse().ok()),
                _ => None,
            })
            .ok_or("the feed holds no last position")?;
        let row = read?;
        let (org, state, sequence): (&str, &str, i64) = (row.get(0), row.get(1), row.get(2));
        let (lock, event_type, payload) = match state {
            "active" => (true, LOCKED_TYPE, LOCKED_PAYLOAD),
            "locked" => (false, UNLOCKED_TYPE, UNLOCKED_PAYLOAD),
            other => return Err(format!("user {id} is {other}").into()),
        };
        let now = now_millis();
        let (next, position) = (sequence + 1, last + 1);
        let snapshot = snapshot_json(lock, next, created, now);
        let new_state = if lock { "locked" } else { "active" };
        let channel = format!("userstate_feed_{SCHEMA}");
        let notice = position.to_string();
        let (user, event, advanced, notified) = futures::future::join4(
            self.client.execute(
                &self.write_user,
                &[&id, &new_state, &next, &snapshot, &sequence],
            ),
            self.client.execute(
                &self.insert_event,
                &[
                    &id,
                    &next,
                    &org,
                    &event_type,
                    &now,
                    &ADMIN,
                    &payload,
                    &position,
                ],
            ),
            self.client.execute(&self.advance, &[&position, &last]),
            self.client.query(&self.notify, &[&channel, &notice]),
        )
        .await;
        let (user, advanced) = (user?, advanced?);
        event?;
        notified?;
        if user != 1 || advanced != 1 {
            return Err(format!("user {id} or the feed moved under the lock").into());
        }
        self.client.batch_execute("COMMIT").await?;
        Ok(lock)
    }
}

/// A hand-written store on the adapter's tables of one database: a runtime
/// like the library's callers' (a worker per core), and one connection per
/// concurrent caller.
pub struct RawPostgres {
    runtime: tokio::runtime::Runtime,
    connection: String,
    durable: bool,
    /// The `createdAt` of the preloaded users' snapshots.
    created: i64,
    sessions: Vec<Arc<Session>>,
}

impl std::fmt::Debug for RawPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawPostgres")
            .field("durable", &self.durable)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl RawPostgres {
    /// Opens the database `connection` names: creates the adapter's schema
    /// there through the adapter's own migration if it is missing, and
    /// connects one caller.
    ///
    /// # Errors
    /// The adapter's and PostgreSQL's.
    pub fn open(connection: &str, durable: bool) -> Result<Self, Failure> {
        userstate_postgres::PostgresOptions::new(connection).migrate()?;
        // Like the library's callers' runtime ([`fixture::runtime`]: a
        // worker per core), with the I/O driver the connections need.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let session = runtime.block_on(Session::open(connection))?;
        Ok(RawPostgres {
            runtime,
            connection: connection.to_owned(),
            durable,
            created: now_millis(),
            sessions: vec![Arc::new(session)],
        })
    }

    /// Durable (`synchronous_commit` on) or relaxed (off) from now on.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// Loads users `0..count` with [`copy_preload`].
    ///
    /// # Errors
    /// As [`copy_preload`].
    pub fn preload(&mut self, count: usize) -> Result<Duration, Failure> {
        let at = Timestamp::now();
        self.created = at.unix_millis();
        copy_preload(&self.connection, count, at)
    }

    /// Keeps exactly `callers` connections (at least one), opening or
    /// closing them: outside the measured rounds.
    ///
    /// # Errors
    /// PostgreSQL's.
    pub fn connect(&mut self, callers: usize) -> Result<(), Failure> {
        let callers = callers.max(1);
        self.sessions.truncate(callers);
        while self.sessions.len() < callers {
            let session = self.runtime.block_on(Session::open(&self.connection))?;
            self.sessions.push(Arc::new(session));
        }
        Ok(())
    }

    /// Locks user `i` if it is active, unlocks it if it is locked, in one
    /// transaction on the first connection. Returns whether it is locked now.
    ///
    /// # Errors
    /// PostgreSQL's; a user in any other state is an error too.
    pub fn toggle_lock(&self, i: usize) -> Result<bool, Failure> {
        let id = fixture::user_id(i);
        self.runtime
            .block_on(self.sessions[0].toggle(id.as_str(), self.durable, self.created))
    }

    /// `callers` concurrent callers (as many connections must be open, see
    /// [`RawPostgres::connect`]), each toggling its own users: caller `c`
    /// the users `visit(k, users / callers) * callers + c` for `k` from
    /// `cursor` on, as the compare program's library callers do, for as long
    /// as `more(started, commands done)` says. Answers the commands, the
    /// wall-clock seconds and the latencies.
    ///
    /// # Errors
    /// The first failed command's.
    pub fn run<F>(
        &self,
        callers: usize,
        users: usize,
        cursor: u64,
        more: F,
    ) -> Result<Sample, Failure>
    where
        F: Fn(Instant, u64) -> bool + Copy + Send + 'static,
    {
        let callers = callers.max(1);
        if self.sessions.len() < callers {
            return Err(format!("{callers} callers need as many connections").into());
        }
        let (durable, created) = (self.durable, self.created);
        let started = Instant::now();
        let mut sample = Sample::default();
        if callers == 1 {
            // On the calling thread, as the library's lone caller runs.
            let session = self.sessions[0].clone();
            let (ops, latencies) = self.runtime.block_on(async move {
                let mut latencies = Histogram::new();
                let mut ops = 0;
                while more(started, ops) {
                    let id = fixture::user_id(fixture::visit(cursor + ops, users));
                    let t = Instant::now();
                    session.toggle(id.as_str(), durable, created).await?;
                    latencies.record(t.elapsed());
                    ops += 1;
                }
                Ok::<_, Failure>((ops, latencies))
            })?;
            sample.ops = ops;
            sample.latencies = latencies;
        } else {
            let per_caller = users / callers;
            let tasks: Vec<_> = (0..callers)
                .map(|caller| {
                    let session = self.sessions[caller].clone();
                    self.runtime.spawn(async move {
                        let mut latencies = Histogram::new();
                        let mut ops = 0;
                        while more(started, ops) {
                            let u = fixture::visit(cursor + ops, per_caller) * callers + caller;
                            let id = fixture::user_id(u);
                            let t = Instant::now();
                            session.toggle(id.as_str(), durable, created).await?;
                            latencies.record(t.elapsed());
                            ops += 1;
                        }
                        Ok::<_, Failure>((ops, latencies))
                    })
                })
                .collect();
            for task in tasks {
                let (ops, latencies) = self.runtime.block_on(task)??;
                sample.ops += ops;
                sample.latencies.merge(&latencies);
            }
        }
        sample.secs = started.elapsed().as_secs_f64();
        sample.latencies = sample.latencies.compact();
        Ok(sample)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use userstate::storage::{Scope, UserRepository};
    use userstate::{HistoryQuery, InMemoryRepository, LockRequest};

    use super::*;

    /// The hand-written JSON is what the core's encoders write for the same
    /// user and events.
    #[test]
    fn rows_are_the_adapters_format() {
        let runtime = fixture::runtime();
        let repo = Arc::new(InMemoryRepository::new());
        let handle = fixture::Handle::Memory(repo.clone());
        fixture::preload(&runtime, &handle, 2).unwrap();
        let (service, admin) = fixture::service(handle.repository());
        let id = fixture::user_id(1);
        let user = |runtime: &tokio::runtime::Runtime| {
            runtime
                .block_on(repo.load(&id, &Scope::Instance))
                .unwrap()
                .unwrap()
        };
        let added = user(&runtime);
        let created = added.created_at.unix_millis();
        assert_eq!(
            json::encode_snapshot(&added).unwrap(),
            snapshot_json(false, 1, created, added.changed_at.unix_millis())
        );
        runtime
            .block_on(service.lock(&admin, &id, LockRequest::new()))
            .unwrap();
        let locked = user(&runtime);
        assert_eq!(
            json::encode_snapshot(&locked).unwrap(),
            snapshot_json(true, 2, created, locked.changed_at.unix_millis())
        );
        runtime.block_on(service.unlock(&admin, &id, None)).unwrap();
        let unlocked = user(&runtime);
        assert_eq!(
            json::encode_snapshot(&unlocked).unwrap(),
            snapshot_json(false, 3, created, unlocked.changed_at.unix_millis())
        );
        let history = runtime
            .block_on(repo.history(&id, &Scope::Instance, HistoryQuery::default()))
            .unwrap();
        let encoded: Vec<_> = history
            .iter()
            .map(|e| json::encode_payload(&e.payload).unwrap())
            .collect();
        assert_eq!(encoded[1], (LOCKED_TYPE, LOCKED_PAYLOAD.to_owned()));
        assert_eq!(encoded[2], (UNLOCKED_TYPE, UNLOCKED_PAYLOAD.to_owned()));
    }

    /// What the baseline loads and writes, the adapter reads and verifies
    /// as its own (skipped where no PostgreSQL can be had).
    #[test]
    fn the_adapter_reads_and_verifies_what_the_baseline_wrote() {
        let Some(db) = userstate_postgres::testing::database() else {
            return;
        };
        let mut raw = RawPostgres::open(db.connection_string(), true).unwrap();
        raw.preload(20).unwrap();
        assert!(!raw.toggle_lock(0).unwrap(), "user 0 starts locked");
        assert!(raw.toggle_lock(0).unwrap());
        assert!(raw.toggle_lock(1).unwrap(), "user 1 starts active");
        raw.connect(4).unwrap();
        // Four callers, five users each: every user toggled once more.
        let sample = raw.run(4, 20, 0, |_, done| done < 5).unwrap();
        assert_eq!(sample.ops, 20);
        raw.set_durable(false);
        raw.connect(1).unwrap();
        assert!(
            raw.toggle_lock(1).unwrap(),
            "user 1 was unlocked by its caller"
        );

        let repo = userstate_postgres::PostgresOptions::new(db.connection_string())
            .open()
            .unwrap();
        let runtime = fixture::runtime();
        let verification = runtime.block_on(repo.verify()).unwrap();
        assert!(verification.is_sound(), "{:?}", verification.findings);
        assert_eq!(verification.users, 20);
        let zero = runtime
            .block_on(repo.load(&fixture::user_id(0), &Scope::Instance))
            .unwrap()
            .unwrap();
        assert_eq!(
            (zero.sequence, zero.state),
            (5, userstate::UserState::Active)
        );
        // The adapter goes on from where the baseline left the feed.
        let (service, admin) = fixture::service(repo.clone().into());
        runtime
            .block_on(service.unlock(&admin, &fixture::user_id(2), None))
            .unwrap();
        let verification = runtime.block_on(repo.verify()).unwrap();
        assert!(verification.is_sound(), "{:?}", verification.findings);
    }
}
