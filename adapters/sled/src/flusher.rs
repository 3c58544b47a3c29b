//! Group commit: one thread makes commits durable for all callers at once.
//!
//! A caller whose transaction committed queues its answer here. The thread
//! takes every queued answer, runs one flush-and-sync, and answers them all
//! with its outcome. Callers that queue while a sync runs wait for the next
//! one, so every caller is answered after a sync that started after its
//! commit, and under load one sync serves many commits.
//!
//! Relaxed commits are answered at once, but only while fewer than a bound
//! of them wait for a sync; past it, they queue here like durable ones. That
//! bounds both what a crash can lose and how far writers run ahead of sled's
//! log writes (without it, sled's queue of pending writes, and the memory it
//! holds, grows without limit under sustained load).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use futures::channel::oneshot;
use userstate::{Error, Result};

use crate::stats::SyncStats;

/// The work one sync does: flush sled, then force the files to the device.
pub(crate) type SyncFn = Box<dyn FnMut() -> Result<()> + Send>;

/// Where a waiting caller gets its answer: called once, with the outcome
/// of the sync that covers its commit.
pub(crate) struct Answer(Box<dyn FnOnce(Result<()>) + Send>);

impl Answer {
    /// An answer that runs `deliver` with the outcome.
    pub(crate) fn new(deliver: impl FnOnce(Result<()>) + Send + 'static) -> Self {
        Answer(Box::new(deliver))
    }

    fn send(self, outcome: Result<()>) {
        (self.0)(outcome);
    }
}

impl From<oneshot::Sender<Result<()>>> for Answer {
    fn from(reply: oneshot::Sender<Result<()>>) -> Self {
        // A caller that stopped waiting does not need its answer.
        Answer::new(move |outcome| {
            let _ = reply.send(outcome);
        })
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Answer")
    }
}

/// The group-commit thread; dropping it runs a last sync and stops it.
#[derive(Debug)]
pub(crate) struct GroupFlusher {
    queue: FlushQueue,
    thread: Option<JoinHandle<()>>,
}

/// Where callers queue for the next sync; cheap to clone into jobs.
#[derive(Debug, Clone)]
pub(crate) struct FlushQueue {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// Held while a sync runs, by the flusher thread or an inline sync.
    sync: Mutex<SyncFn>,
    commits: AtomicU64,
    syncs: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queue", &self.queue)
            .field("commits", &self.commits)
            .field("syncs", &self.syncs)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Queue {
    waiting: Vec<Waiter>,
    stopping: bool,
    /// Relaxed commits acknowledged or queued since the last completed sync
    /// started.
    unsynced_relaxed: u64,
    /// Set by the first failed sync: after it, nothing can be promised
    /// durable any more (the kernel may have dropped the dirty pages), so
    /// every later durable write is refused with this error.
    failure: Option<Error>,
}

#[derive(Debug)]
struct Waiter {
    answer: Answer,
    is_commit: bool,
}

impl GroupFlusher {
    /// Starts the thread that runs `sync` for each group.
    ///
    /// # Errors
    /// Unavailable when the thread cannot be spawned.
    pub(crate) fn start(sync: SyncFn) -> Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            wake: Condvar::new(),
            sync: Mutex::new(sync),
            commits: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
        });
        let thread = std::thread::Builder::new()
            .name("userstate-sled-flusher".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared)
            })
            .map_err(|e| Error::unavailable("cannot start the flusher thread").with_source(e))?;
        Ok(GroupFlusher {
            queue: FlushQueue { shared },
            thread: Some(thread),
        })
    }

    /// The queue, for callers to wait on.
    pub(crate) fn queue(&self) -> &FlushQueue {
        &self.queue
    }
}

impl FlushQueue {
    /// Answers `answer` after the next sync; `is_commit` counts it as a
    /// command in [`SyncStats`] (an explicit sync request is not one).
    pub(crate) fn enqueue(&self, answer: impl Into<Answer>, is_commit: bool) {
        let queue = self.shared.lock();
        self.push(queue, answer.into(), is_commit);
    }

    /// A relaxed commit: answered at once while at most `bound` relaxed
    /// commits wait for a sync, else after the next sync.
    pub(crate) fn relaxed_commit(&self, answer: impl Into<Answer>, bound: u64) {
        let answer = answer.into();
        let mut queue = self.shared.lock();
        queue.unsynced_relaxed = queue.unsynced_relaxed.saturating_add(1);
        if queue.unsynced_relaxed <= bound {
            answer.send(Ok(()));
        } else {
            self.push(queue, answer, true);
        }
    }

    /// A durable commit answered after a sync run on this thread, when no
    /// sync is running or queued; otherwise queued like [`FlushQueue::enqueue`].
    /// Saves the hand-off to the flusher thread and back for a lone caller.
    pub(crate) fn sync_here(&self, answer: Answer) {
        let queue = self.shared.lock();
        if queue.failure.is_some() || queue.stopping || !queue.waiting.is_empty() {
            return self.push(queue, answer, true);
        }
        let Some(mut sync) = self.shared.try_sync() else {
            return self.push(queue, answer, true);
        };
        let relaxed_covered = queue.unsynced_relaxed;
        drop(queue);
        let outcome = self.shared.run_sync(&mut sync, relaxed_covered, 1);
        drop(sync);
        answer.send(outcome);
    }

    fn push(&self, mut queue: MutexGuard<'_, Queue>, answer: Answer, is_commit: bool) {
        if let Some(failure) = &queue.failure {
            answer.send(Err(failure.clone()));
            return;
        }
        if queue.stopping {
            answer.send(Err(Error::unavailable("the repository is closing")));
            return;
        }
        queue.waiting.push(Waiter { answer, is_commit });
        self.shared.wake.notify_one();
    }

    /// The error of the first failed sync, if any: new durable writes must
    /// not start after it.
    pub(crate) fn health(&self) -> Result<()> {
        match &self.shared.lock().failure {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }

    /// Commands answered after a sync, and syncs run, so far.
    pub(crate) fn stats(&self) -> SyncStats {
        SyncStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
        }
    }
}

impl Drop for GroupFlusher {
    /// Answers everything still queued with one last sync, then stops.
    fn drop(&mut self) {
        let shared = &self.queue.shared;
        shared.lock().stopping = true;
        shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent after every statement, so a panic while it
        // was held leaves nothing half-done.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_sync(&self) -> MutexGuard<'_, SyncFn> {
        // A panicking sync is caught inside the lock; nothing is left half-done.
        self.sync.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn try_sync(&self) -> Option<MutexGuard<'_, SyncFn>> {
        match self.sync.try_lock() {
            Ok(sync) => Some(sync),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Runs one sync that covers `relaxed_covered` relaxed commits and
    /// `commits` waiting commands, records its outcome, and returns it.
    fn run_sync(&self, sync: &mut SyncFn, relaxed_covered: u64, commits: u64) -> Result<()> {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(sync))
            .unwrap_or_else(|_| Err(Error::internal("the sync panicked")));
        {
            let mut queue = self.lock();
            queue.unsynced_relaxed = queue.unsynced_relaxed.saturating_sub(relaxed_covered);
            if let Err(failure) = &outcome {
                queue.failure.get_or_insert_with(|| failure.clone());
            }
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.commits.fetch_add(commits, Ordering::Relaxed);
        outcome
    }
}

fn run(shared: &Shared) {
    loop {
        let group = {
            let mut queue = shared.lock();
            while queue.waiting.is_empty() && !queue.stopping {
                queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.waiting.is_empty() {
                // Stopping: relaxed commands acknowledged since the last sync
                // get their promised last sync before the thread ends.
                if queue.unsynced_relaxed > 0 && queue.failure.is_none() {
                    drop(queue);
                    let mut sync = shared.lock_sync();
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&mut *sync));
                }
                return;
            }
            if let Some(failure) = queue.failure.clone() {
                // A sync failed (an inline one, since these queued): a later
                // sync that succeeds proves nothing about their data.
                let group = std::mem::take(&mut queue.waiting);
                drop(queue);
                for waiter in group {
                    waiter.answer.send(Err(failure.clone()));
                }
                continue;
            }
            (std::mem::take(&mut queue.waiting), queue.unsynced_relaxed)
        };
        let (group, relaxed_covered) = group;
        let commits = group.iter().filter(|w| w.is_commit).count() as u64;
        let outcome = shared.run_sync(&mut shared.lock_sync(), relaxed_covered, commits);
        for waiter in group {
            waiter.answer.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A sync that reports when it starts and waits for permission to end.
    fn gated_sync() -> (SyncFn, mpsc::Receiver<()>, mpsc::Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let sync: SyncFn = Box::new(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok(())
        });
        (sync, started, release)
    }

    #[test]
    fn callers_queued_during_a_sync_wait_for_the_next_one() {
        let (sync, started, release) = gated_sync();
        let flusher = GroupFlusher::start(sync).unwrap();
        let (first, mut first_rx) = oneshot::channel();
        flusher.queue().enqueue(first, true);
        started.recv().unwrap();
        // These commit while the first sync runs: they must not ride on it.
        let mut late = Vec::new();
        for _ in 0..5 {
            let (tx, rx) = oneshot::channel();
            flusher.queue().enqueue(tx, true);
            late.push(rx);
        }
        release.send(()).unwrap();
        assert!(futures::executor::block_on(&mut first_rx).unwrap().is_ok());
        started.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        for rx in &mut late {
            assert_eq!(rx.try_recv().unwrap(), None, "answered before its sync");
        }
        release.send(()).unwrap();
        for rx in late {
            assert!(futures::executor::block_on(rx).unwrap().is_ok());
        }
        assert_eq!(
            flusher.queue().stats(),
            SyncStats {
                commits: 6,
                syncs: 2
            }
        );
    }

    #[test]
    fn sync_here_syncs_on_the_caller_unless_a_sync_runs() {
        let (ran_on_tx, ran_on) = mpsc::channel();
        let (gate_tx, gate) = mpsc::channel::<()>();
        let flusher = GroupFlusher::start(Box::new(move || {
            ran_on_tx.send(std::thread::current().id()).unwrap();
            gate.recv().unwrap();
            Ok(())
        }))
        .unwrap();
        let queue = flusher.queue().clone();
        gate_tx.send(()).unwrap();
        let (tx, rx) = oneshot::channel();
        queue.sync_here(tx.into());
        assert_eq!(ran_on.recv().unwrap(), std::thread::current().id());
        assert!(futures::executor::block_on(rx).unwrap().is_ok());

        // While the flusher syncs, a caller queues for the next sync.
        let (tx, first) = oneshot::channel();
        queue.enqueue(tx, true);
        let flusher_thread = ran_on.recv().unwrap();
        assert_ne!(flusher_thread, std::thread::current().id());
        let (tx, mut second) = oneshot::channel();
        queue.sync_here(tx.into());
        assert_eq!(second.try_recv().unwrap(), None, "answered before its sync");
        gate_tx.send(()).unwrap();
        assert!(futures::executor::block_on(first).unwrap().is_ok());
        assert_eq!(ran_on.recv().unwrap(), flusher_thread);
        gate_tx.send(()).unwrap();
        assert!(futures::executor::block_on(second).unwrap().is_ok());
        assert_eq!(
            queue.stats(),
            SyncStats {
                commits: 3,
                syncs: 3
            }
        );
    }

    #[test]
    fn a_failed_inline_sync_fails_its_caller_and_every_later_write() {
        let syncs = Arc::new(AtomicU64::new(0));
        let flusher = GroupFlusher::start(Box::new({
            let syncs = syncs.clone();
            move || {
                syncs.fetch_add(1, Ordering::SeqCst);
                Err(Error::unavailable("disk gone"))
            }
        }))
        .unwrap();
        let (tx, rx) = oneshot::channel();
        flusher.queue().sync_here(tx.into());
        let err = futures::executor::block_on(rx).unwrap().unwrap_err();
        assert_eq!(err.kind(), userstate::ErrorKind::Unavailable);
        assert!(flusher.queue().health().is_err());
        for _ in 0..2 {
            let (tx, rx) = oneshot::channel();
            flusher.queue().sync_here(tx.into());
            assert!(futures::executor::block_on(rx).unwrap().is_err());
            let (tx, rx) = oneshot::channel();
            flusher.queue().enqueue(tx, true);
            assert!(futures::executor::block_on(rx).unwrap().is_err());
        }
        assert_eq!(
            syncs.load(Ordering::SeqCst),
            1,
            "synced again after a failure"
        );
    }

    #[test]
    fn a_failed_sync_fails_its_group_and_every_later_write() {
        let flusher =
            GroupFlusher::start(Box::new(|| Err(Error::unavailable("disk gone")))).unwrap();
        let (tx, rx) = oneshot::channel();
        flusher.queue().enqueue(tx, true);
        let err = futures::executor::block_on(rx).unwrap().unwrap_err();
        assert_eq!(err.kind(), userstate::ErrorKind::Unavailable);
        assert_eq!(flusher.queue().health().unwrap_err(), err);
        let (tx, rx) = oneshot::channel();
        flusher.queue().enqueue(tx, false);
        assert_eq!(futures::executor::block_on(rx).unwrap().unwrap_err(), err);
    }

    #[test]
    fn relaxed_commits_wait_only_past_the_bound() {
        let (sync, started, release) = gated_sync();
        let flusher = GroupFlusher::start(sync).unwrap();
        let queue = flusher.queue();
        for _ in 0..3 {
            let (tx, mut rx) = oneshot::channel();
            queue.relaxed_commit(tx, 3);
            assert_eq!(rx.try_recv().unwrap(), Some(Ok(())), "answered at once");
        }
        let (tx, mut fourth) = oneshot::channel();
        queue.relaxed_commit(tx, 3);
        started.recv().unwrap();
        assert_eq!(fourth.try_recv().unwrap(), None, "waits for the sync");
        // Still over the bound while that sync runs: the fifth waits too.
        let (tx, mut fifth) = oneshot::channel();
        queue.relaxed_commit(tx, 3);
        release.send(()).unwrap();
        assert!(futures::executor::block_on(&mut fourth).unwrap().is_ok());
        started.recv().unwrap();
        release.send(()).unwrap();
        assert!(futures::executor::block_on(&mut fifth).unwrap().is_ok());
        // Both syncs done: the count starts again from zero.
        let (tx, mut rx) = oneshot::channel();
        queue.relaxed_commit(tx, 3);
        assert_eq!(rx.try_recv().unwrap(), Some(Ok(())));
        assert_eq!(
            queue.stats(),
            SyncStats {
                commits: 2,
                syncs: 2
            }
        );
        // That last relaxed commit still gets a sync when the flusher stops.
        let dropper = std::thread::spawn(move || drop(flusher));
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("a last sync on drop");
        release.send(()).unwrap();
        dropper.join().unwrap();
    }

    #[test]
    fn dropping_answers_what_is_queued() {
        let (sync, started, release) = gated_sync();
        let flusher = GroupFlusher::start(sync).unwrap();
        let (tx, rx) = oneshot::channel();
        flusher.queue().enqueue(tx, true);
        started.recv().unwrap();
        let (tx2, rx2) = oneshot::channel();
        flusher.queue().enqueue(tx2, true);
        // Two syncs: the running one and the last one for the second caller.
        release.send(()).unwrap();
        release.send(()).unwrap();
        drop(flusher);
        assert!(futures::executor::block_on(rx).unwrap().is_ok());
        assert!(futures::executor::block_on(rx2).unwrap().is_ok());
    }
}
