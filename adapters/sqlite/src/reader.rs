//! The readers of a database file: a few threads, each owning a read-only
//! connection, taking read jobs from one shared queue.
//!
//! In WAL mode they read the last committed state without blocking the
//! writer or being blocked by it; every read is its own short transaction, so
//! it sees every commit acknowledged before it was queued.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use rusqlite::Connection;
use userstate::{Error, Result};

use crate::connection::open_reader;
use crate::options::SqliteOptions;
use crate::sqlite_error::worker_stopped;

/// A read to run on some connection; it sends its own answer.
pub(crate) type ReadJob = Box<dyn FnOnce(&Connection) + Send + 'static>;

/// The reader threads of one repository handle. Dropping it lets them finish
/// the queued reads and waits for them, which closes their connections.
#[derive(Debug)]
pub(crate) struct ReaderPool {
    jobs: Option<Sender<ReadJob>>,
    threads: Vec<JoinHandle<()>>,
}

impl ReaderPool {
    /// Opens `options.reader_threads` connections to `path` and starts a
    /// thread for each.
    ///
    /// # Errors
    /// As [`open_reader`]; Internal when a thread cannot be spawned.
    pub(crate) fn spawn(path: &Path, options: &SqliteOptions) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<ReadJob>();
        let queue = Arc::new(Mutex::new(queue));
        let mut pool = ReaderPool {
            jobs: Some(jobs),
            threads: Vec::with_capacity(options.reader_threads),
        };
        for index in 0..options.reader_threads.max(1) {
            // Opened here so that a failure is reported by `open`.
            let conn = open_reader(path, options)?;
            let queue = Arc::clone(&queue);
            let thread = thread::Builder::new()
                .name(format!("userstate-sqlite-reader-{index}"))
                .spawn(move || serve(&conn, &queue))
                .map_err(|e| {
                    Error::internal("cannot spawn a SQLite reader thread").with_source(e)
                })?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Queues a read.
    ///
    /// # Errors
    /// Internal when every reader thread has stopped.
    pub(crate) fn submit(&self, job: ReadJob) -> Result<()> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| worker_stopped("reader"))
    }
}

impl Drop for ReaderPool {
    fn drop(&mut self) {
        self.jobs = None;
        let current = thread::current().id();
        for thread in self.threads.drain(..) {
            if thread.thread().id() != current {
                let _ = thread.join();
            }
        }
    }
}

/// A reader thread's loop: take the next job from the shared queue, run it.
fn serve(conn: &Connection, queue: &Mutex<Receiver<ReadJob>>) {
    loop {
        // The lock is held only while waiting, never while reading. Poisoning
        // cannot leave the receiver half-updated, so it is ignored.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match job {
            Ok(job) => job(conn),
            Err(_) => return,
        }
    }
}
