//! Commits of other handles and processes on the same file, for readers
//! waiting on the change feed: this handle's own writer wakes them at once;
//! a watcher thread looks for everyone else's while someone waits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use rusqlite::Connection;
use userstate::storage::FeedSignal;
use userstate::{Error, Result};

use crate::layout::LAST_POSITION;

/// How often the watcher reads the feed's last position while a reader
/// waits: the bound on how late another process's commit is seen.
pub const FEED_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The watcher thread and its read connection; stopped and joined on drop,
/// so its connection closes before the writer's.
pub(crate) struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching the file of `conn` for `signal`'s waiters.
    ///
    /// # Errors
    /// Internal when the thread cannot be spawned.
    pub(crate) fn start(conn: Connection, signal: Arc<FeedSignal>) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::Builder::new()
            .name("userstate-sqlite-feed".to_owned())
            .spawn(move || {
                while !stopped.load(Ordering::Acquire) {
                    if signal.has_waiters() {
                        // A failed read is retried at the next round; the
                        // waiters' own reads report real faults.
                        if let Ok(last) =
                            conn.query_row(LAST_POSITION, [], |row| row.get::<_, i64>(0))
                        {
                            signal.committed(u64::try_from(last).unwrap_or(0));
                        }
                        thread::park_timeout(FEED_POLL_INTERVAL);
                    } else {
                        thread::park_timeout(FEED_POLL_INTERVAL * 10);
                    }
                }
            })
            .map_err(|e| Error::internal("cannot spawn the feed watcher").with_source(e))?;
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}
