//! Commits of other handles and processes, for readers waiting on the
//! change feed: this handle's own writer wakes them at once; every writer
//! sends a `NOTIFY` at its commit, which a listening connection of this
//! handle turns into a wake. The connection listens only while some reader
//! waits (and [`LISTEN_LINGER`] after), so commits wake nobody here when
//! nobody follows the feed. Without such a connection (a host's pool, or
//! while the listener reconnects), the feed's last position is read every
//! [`FEED_POLL_INTERVAL`] while someone waits.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use userstate::storage::FeedSignal;

use crate::layout::Statements;
use crate::reader::last_position;

/// How often the feed's last position is read while a reader waits and no
/// listener connection is up: the bound on how late another process's
/// commit is seen then.
pub const FEED_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// How long the listener keeps listening after the last reader stopped
/// waiting: a follower between two reads is not waiting.
const LISTEN_LINGER: Duration = Duration::from_secs(1);

/// How long the listener waits before connecting again after its
/// connection failed.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Starts the listener on `runtime`; it ends with the runtime.
pub(crate) fn start(
    runtime: &tokio::runtime::Handle,
    listen: Option<tokio_postgres::Config>,
    pool: Pool,
    statements: Arc<Statements>,
    signal: Arc<FeedSignal>,
) {
    runtime.spawn(async move {
        loop {
            if let Some(config) = &listen {
                // Returns when the connection fails.
                listen_on(config, &statements, &signal).await;
            }
            poll(
                &pool,
                &statements,
                &signal,
                RECONNECT_DELAY,
                listen.is_none(),
            )
            .await;
        }
    });
}

/// Wakes waiters on every notification, listening while someone waits.
async fn listen_on(config: &tokio_postgres::Config, statements: &Statements, signal: &FeedSignal) {
    signal.someone_waits().await;
    let Ok((client, mut connection)) = config.connect(NoTls).await else {
        return;
    };
    let (sender, mut notifications) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(notification) = message {
                if sender.send(notification.payload().to_owned()).is_err() {
                    break;
                }
            }
        }
    });
    let channel = format!("\"{}\"", statements.channel);
    loop {
        signal.someone_waits().await;
        if client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .is_err()
        {
            break;
        }
        // Commits made before the LISTEN took effect sent no wake here.
        match last_position(&client, statements).await {
            Ok(last) => signal.committed(last),
            Err(_) => break,
        }
        loop {
            match tokio::time::timeout(LISTEN_LINGER, notifications.recv()).await {
                Ok(Some(payload)) => {
                    if let Ok(last) = payload.parse::<u64>() {
                        signal.committed(last);
                    }
                }
                Ok(None) => {
                    driver.abort();
                    return;
                }
                Err(_) if signal.has_waiters() => {}
                Err(_) => break,
            }
        }
        if client
            .batch_execute(&format!("UNLISTEN {channel}"))
            .await
            .is_err()
        {
            break;
        }
        // Wakes already on their way are stale: the next LISTEN reads the
        // last position afresh.
        while notifications.try_recv().is_ok() {}
    }
    driver.abort();
}

/// Reads the feed's last position every [`FEED_POLL_INTERVAL`] while a
/// reader waits: for `period`, or for good when `forever`.
async fn poll(
    pool: &Pool,
    statements: &Statements,
    signal: &FeedSignal,
    period: Duration,
    forever: bool,
) {
    let started = tokio::time::Instant::now();
    while forever || started.elapsed() < period {
        tokio::time::sleep(FEED_POLL_INTERVAL).await;
        if !signal.has_waiters() {
            continue;
        }
        // A failed read is tried again at the next round; the waiters' own
        // reads report real faults.
        if let Ok(client) = pool.get().await {
            if let Ok(last) = last_position(&client, statements).await {
                signal.committed(last);
            }
        }
    }
}
