//! Group commit, the same for every adapter: the writes that queue while one
//! batch commits form the next batch, which one leader decides, writes and
//! makes durable at once.
//!
//! The leader is a writer thread, or, with inline writes, the caller that
//! finds nobody leading: it commits its batch on its own thread, so a lone
//! caller pays no thread hand-off (LevelDB's and RocksDB's writer queue).
//! Callers that arrive while a batch commits queue for the next one; when a
//! caller-led batch ends with writes queued, a writer thread takes over
//! (waking it costs what waking the next queued caller would). The engine
//! lives in the queue's one lock and is taken out by whoever leads, so there
//! is exactly one leader and no second lock or counter beside it.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use futures_channel::oneshot;

use crate::error::{Error, ErrorKind, Result};
use crate::storage::Update;
use crate::user::User;

/// Threads that take turns leading when no caller does. The engine is
/// still used by one at a time; several only change which thread wakes for
/// the next batch: on this project's virtual machine, waking the thread that
/// has waited longest costs far less than waking the one that just went to
/// sleep (sled relaxed, one caller: one thread 3.7–4.1k commands/s at a p50
/// of 180 µs, four threads 5.3k at 55 µs, the same with the engine pinned).
const WRITER_THREADS: usize = 4;

/// The most writes one batch holds unless an adapter is told otherwise.
pub const DEFAULT_MAX_BATCH: usize = 128;

/// An engine's side of group commit.
pub trait BatchWriter: Send + 'static {
    /// Runs every update of `batch` in order on the user as stored (earlier
    /// updates of the batch included), stores what each decided, and
    /// commits them together: durably before returning, if the engine
    /// promises that. Returns each update's outcome (the user after it), in
    /// order; one update's failure leaves the others' outcomes alone.
    fn commit(&mut self, batch: Vec<Update>) -> Vec<Result<User>>;
}

/// What a repository's writer has done since it was opened; the counters
/// only grow.
///
/// `commands / batches` is the average group: how many commands shared one
/// commit (and, when durable, one sync).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct WriterStats {
    /// Commands answered, whatever the outcome (one refused by its decision too).
    pub commands: u64,
    /// Batches committed together.
    pub batches: u64,
    /// Commands answered with a conflict.
    pub conflicts: u64,
    /// The most commands one batch has held.
    pub largest_batch: u64,
    /// Writes waiting for a batch right now.
    pub queued: u64,
}

/// A repository's writer: the engine, the queue of writes waiting for it,
/// and the threads that lead when no caller does.
///
/// Dropping it lets the writer threads commit what is queued, then drops the
/// engine on one of them and waits for them.
pub struct GroupCommit<W: BatchWriter> {
    shared: Arc<Shared<W>>,
    threads: Vec<JoinHandle<()>>,
    inline: bool,
}

struct Shared<W> {
    state: Mutex<State<W>>,
    /// Wakes a writer thread: writes are queued or the queue closes.
    work: Condvar,
    max_batch: usize,
    commands: AtomicU64,
    batches: AtomicU64,
    conflicts: AtomicU64,
    largest_batch: AtomicU64,
}

struct State<W> {
    /// `None` while a leader holds the engine.
    writer: Option<W>,
    pending: VecDeque<Job<W>>,
    closing: bool,
}

/// What a write's caller does once its job is queued.
enum Lead<W> {
    /// Commit this batch here, on the caller's thread.
    Here(W, Vec<Job<W>>),
    /// An idle writer thread leads.
    WakeAWriter,
    /// A batch is committing; its leader takes this job next.
    Queued,
}

enum Job<W> {
    Update(Update, oneshot::Sender<Result<User>>),
    /// Commits alone, as one batch, whatever its size.
    Batch(Vec<Update>, oneshot::Sender<Vec<Result<User>>>),
    /// Runs alone on the engine between batches; it sends its own answer.
    Exclusive(Box<dyn FnOnce(&mut W) + Send>),
}

impl<W: BatchWriter> GroupCommit<W> {
    /// Starts the writer threads `{name}-{index}` on `writer`. With
    /// `inline`, a caller that finds nobody leading commits its batch on its
    /// own thread.
    ///
    /// # Errors
    /// Internal when a thread cannot be spawned.
    pub fn start(name: &str, writer: W, max_batch: usize, inline: bool) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                writer: Some(writer),
                pending: VecDeque::new(),
                closing: false,
            }),
            work: Condvar::new(),
            max_batch: max_batch.max(1),
            commands: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
        });
        let mut threads = Vec::with_capacity(WRITER_THREADS);
        for index in 0..WRITER_THREADS {
            let thread = thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn({
                    let shared = Arc::clone(&shared);
                    move || shared.serve()
                })
                .map_err(|e| Error::internal("cannot spawn a writer thread").with_source(e))?;
            threads.push(thread);
        }
        Ok(GroupCommit {
            shared,
            threads,
            inline,
        })
    }

    /// Queues `update` and resolves to its outcome once its batch
    /// committed. With inline writes and nobody leading, the batch commits
    /// here, on the polling thread.
    ///
    /// # Errors
    /// What the engine answered for it; Internal if the engine panicked.
    pub async fn update(&self, update: Update) -> Result<User> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Update(update, reply));
        answer
            .await
            .unwrap_or_else(|_| Err(Error::internal("the writer stopped before answering")))
    }

    /// Commits `updates` as one batch of their own, in order, after the
    /// writes queued before them, however many they are; resolves to each
    /// one's outcome, in order.
    pub async fn update_many(&self, updates: Vec<Update>) -> Vec<Result<User>> {
        if updates.is_empty() {
            return Vec::new();
        }
        let size = updates.len();
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Batch(updates, reply));
        answer.await.unwrap_or_else(|_| {
            vec![Err(Error::internal("the writer stopped before answering")); size]
        })
    }

    /// Runs `job` on the engine alone, after the writes queued before it.
    ///
    /// # Errors
    /// What `job` returned; Internal if it panicked.
    pub async fn exclusive<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut W) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Exclusive(Box::new(move |writer| {
            // A caller that stopped waiting does not need its answer.
            let _ = reply.send(job(writer));
        })));
        answer
            .await
            .unwrap_or_else(|_| Err(Error::internal("the writer stopped before answering")))
    }

    /// The writer's counters.
    pub fn stats(&self) -> WriterStats {
        let queued = self.shared.lock().pending.len() as u64;
        // Relaxed: independent figures, not a synchronisation point.
        WriterStats {
            commands: self.shared.commands.load(Ordering::Relaxed),
            batches: self.shared.batches.load(Ordering::Relaxed),
            conflicts: self.shared.conflicts.load(Ordering::Relaxed),
            largest_batch: self.shared.largest_batch.load(Ordering::Relaxed),
            queued,
        }
    }

    fn submit(&self, job: Job<W>) {
        let lead = {
            let mut state = self.shared.lock();
            state.pending.push_back(job);
            match state.writer.take() {
                Some(writer) if self.inline => {
                    let batch = self.shared.next_batch(&mut state);
                    Lead::Here(writer, batch)
                }
                Some(writer) => {
                    state.writer = Some(writer);
                    Lead::WakeAWriter
                }
                // Whoever leads looks at the queue again after its batch.
                None => Lead::Queued,
            }
        };
        let (mut writer, batch) = match lead {
            Lead::Here(writer, batch) => (writer, batch),
            Lead::WakeAWriter => {
                // After the lock is released, so it does not wake only to
                // wait for it.
                self.shared.work.notify_one();
                return;
            }
            Lead::Queued => return,
        };
        self.shared.run(&mut writer, batch);
        let queued = {
            let mut state = self.shared.lock();
            state.writer = Some(writer);
            !state.pending.is_empty()
        };
        if queued {
            // Writes queued behind this batch: a writer thread leads them.
            self.shared.work.notify_one();
        }
    }
}

impl<W> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // Every change to the state completes under the lock without
        // panicking, and the engine is outside it while it works.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<W: BatchWriter> Shared<W> {
    /// Takes the jobs of the next batch from the front of the queue.
    fn next_batch(&self, state: &mut State<W>) -> Vec<Job<W>> {
        let take = state.pending.len().min(self.max_batch);
        state.pending.drain(..take).collect()
    }

    /// A writer thread: leads whenever writes wait and nobody leads.
    fn serve(&self) {
        loop {
            let (mut writer, batch) = {
                let mut state = self.lock();
                loop {
                    if state.writer.is_some() && !state.pending.is_empty() {
                        break;
                    }
                    if state.closing && state.pending.is_empty() {
                        // The engine closes here if it is back from its last
                        // batch; else with the thread that brings it back.
                        let writer = state.writer.take();
                        drop(state);
                        drop(writer);
                        // The other writer threads look again, and stop too.
                        self.work.notify_all();
                        return;
                    }
                    state = self
                        .work
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                let writer = state.writer.take();
                let batch = self.next_batch(&mut state);
                match writer {
                    Some(writer) => (writer, batch),
                    None => continue,
                }
            };
            self.run(&mut writer, batch);
            self.lock().writer = Some(writer);
        }
    }

    /// Runs the jobs in order: consecutive updates as one batch, each
    /// exclusive job on its own.
    fn run(&self, writer: &mut W, jobs: Vec<Job<W>>) {
        let mut updates = Vec::new();
        let mut replies = Vec::new();
        for job in jobs {
            match job {
                Job::Update(update, reply) => {
                    updates.push(update);
                    replies.push(reply);
                }
                Job::Batch(batch, reply) => {
                    self.commit(writer, std::mem::take(&mut updates), &mut replies);
                    // A caller that stopped waiting does not need its answer.
                    let _ = reply.send(self.outcomes(writer, batch));
                }
                Job::Exclusive(job) => {
                    self.commit(writer, std::mem::take(&mut updates), &mut replies);
                    // A panic drops the job's reply, which answers Internal.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(writer)));
                }
            }
        }
        self.commit(writer, updates, &mut replies);
    }

    /// Commits `updates` as one batch and answers each.
    fn commit(
        &self,
        writer: &mut W,
        updates: Vec<Update>,
        replies: &mut Vec<oneshot::Sender<Result<User>>>,
    ) {
        if updates.is_empty() {
            return;
        }
        let mut outcomes = self.outcomes(writer, updates).into_iter();
        for reply in replies.drain(..) {
            let outcome = outcomes
                .next()
                .unwrap_or_else(|| Err(Error::internal("the writer lost an answer")));
            // A caller that stopped waiting does not need its answer.
            let _ = reply.send(outcome);
        }
    }

    /// Commits `updates` as one batch and counts it.
    fn outcomes(&self, writer: &mut W, updates: Vec<Update>) -> Vec<Result<User>> {
        let size = updates.len();
        let started = std::time::Instant::now();
        let outcomes =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.commit(updates)))
                .unwrap_or_else(|_| vec![Err(Error::internal("the write panicked")); size]);
        let conflicts = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, Err(e) if e.kind() == ErrorKind::Conflict))
            .count();
        crate::trace::batch_committed(size, conflicts, started.elapsed());
        self.commands.fetch_add(size as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.conflicts
            .fetch_add(conflicts as u64, Ordering::Relaxed);
        self.largest_batch.fetch_max(size as u64, Ordering::Relaxed);
        let mut outcomes = outcomes;
        outcomes.resize_with(size, || Err(Error::internal("the writer lost an answer")));
        outcomes
    }
}

impl<W: BatchWriter> fmt::Debug for GroupCommit<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupCommit")
            .field("inline", &self.inline)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<W: BatchWriter> Drop for GroupCommit<W> {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.work.notify_all();
        for thread in self.threads.drain(..) {
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use futures::executor::block_on;

    use super::*;
    use crate::storage::{Decide, Decision, Scope};
    use crate::{Event, EventPayload, InitialState, OrgId, Timestamp, UserId};

    fn user(id: &str) -> User {
        User::apply(
            None,
            &Event {
                user_id: UserId::new(id).unwrap(),
                org_id: OrgId::new("acme").unwrap(),
                sequence: 1,
                created_at: Timestamp::UNIX_EPOCH,
                creator: UserId::new("admin").unwrap(),
                payload: EventPayload::Added {
                    state: InitialState::Active,
                },
            },
        )
    }

    /// An engine whose batches wait for a gate, and which reports each
    /// batch's size and the thread it ran on.
    struct Gated {
        gate: mpsc::Receiver<()>,
        batches: mpsc::Sender<(usize, thread::ThreadId)>,
        panic_on: Option<&'static str>,
    }

    impl BatchWriter for Gated {
        fn commit(&mut self, batch: Vec<Update>) -> Vec<Result<User>> {
            self.batches
                .send((batch.len(), thread::current().id()))
                .unwrap();
            self.gate.recv().unwrap();
            if batch.iter().any(|u| Some(u.id().as_str()) == self.panic_on) {
                panic!("the engine failed");
            }
            batch
                .into_iter()
                .map(|update| {
                    let id = update.id().as_str().to_owned();
                    match update.decide(Some(user(&id)), None)? {
                        Decision::Unchanged(user) => Ok(user),
                        Decision::Write(commit) => Ok(commit.snapshot().clone()),
                    }
                })
                .collect()
        }
    }

    /// The queue, the gate that lets one batch finish, and the batches' sizes
    /// and threads.
    type Harness = (
        Arc<GroupCommit<Gated>>,
        mpsc::Sender<()>,
        mpsc::Receiver<(usize, thread::ThreadId)>,
    );

    fn gated(inline: bool, panic_on: Option<&'static str>) -> Harness {
        let (open, gate) = mpsc::channel();
        let (batches, sizes) = mpsc::channel();
        let writer = Gated {
            gate,
            batches,
            panic_on,
        };
        let queue = GroupCommit::start("test-writer", writer, 8, inline).unwrap();
        (Arc::new(queue), open, sizes)
    }

    fn unchanged() -> Decide {
        Box::new(|stored| Ok(Decision::Unchanged(stored.unwrap())))
    }

    /// Starts an update of `id` on a thread of its own.
    fn spawn_update(queue: &Arc<GroupCommit<Gated>>, id: &str) -> thread::JoinHandle<Result<User>> {
        let (queue, id) = (queue.clone(), UserId::new(id).unwrap());
        thread::spawn(move || block_on(queue.update(Update::new(id, Scope::Instance, unchanged()))))
    }

    fn wait_until_queued(queue: &GroupCommit<Gated>, queued: u64) {
        while queue.stats().queued < queued {
            thread::yield_now();
        }
    }

    #[test]
    fn writes_queued_during_a_batch_form_the_next_one() {
        for inline in [false, true] {
            let (queue, open, sizes) = gated(inline, None);
            let first = spawn_update(&queue, "first");
            let (size, _) = sizes.recv().unwrap();
            assert_eq!(size, 1);
            let later: Vec<_> = (0..5)
                .map(|i| spawn_update(&queue, &format!("u{i}")))
                .collect();
            wait_until_queued(&queue, 5);
            open.send(()).unwrap();
            assert_eq!(first.join().unwrap().unwrap().id.as_str(), "first");
            let (size, _) = sizes.recv().unwrap();
            assert_eq!(size, 5, "inline {inline}: the five queued share one batch");
            open.send(()).unwrap();
            for (i, handle) in later.into_iter().enumerate() {
                assert_eq!(handle.join().unwrap().unwrap().id.as_str(), format!("u{i}"));
            }
            let stats = queue.stats();
            assert_eq!(
                (
                    stats.commands,
                    stats.batches,
                    stats.largest_batch,
                    stats.queued
                ),
                (6, 2, 5, 0),
                "inline {inline}"
            );
        }
    }

    #[test]
    fn a_batch_never_exceeds_the_limit() {
        let (queue, open, sizes) = gated(false, None);
        let first = spawn_update(&queue, "first");
        sizes.recv().unwrap();
        let later: Vec<_> = (0..20)
            .map(|i| spawn_update(&queue, &format!("u{i}")))
            .collect();
        wait_until_queued(&queue, 20);
        for _ in 0..4 {
            open.send(()).unwrap();
        }
        first.join().unwrap().unwrap();
        for handle in later {
            handle.join().unwrap().unwrap();
        }
        let mut sizes: Vec<usize> = sizes.try_iter().map(|(size, _)| size).collect();
        sizes.sort_unstable();
        assert_eq!(sizes, [4, 8, 8]);
    }

    #[test]
    fn a_lone_inline_caller_leads_on_its_own_thread() {
        for inline in [false, true] {
            let (queue, open, sizes) = gated(inline, None);
            open.send(()).unwrap();
            let id = UserId::new("lone").unwrap();
            block_on(queue.update(Update::new(id, Scope::Instance, unchanged()))).unwrap();
            let (_, ran_on) = sizes.recv().unwrap();
            assert_eq!(ran_on == thread::current().id(), inline, "inline {inline}");
        }
    }

    #[test]
    fn a_panicking_engine_fails_its_batch_and_serves_the_next() {
        for inline in [false, true] {
            let (queue, open, _sizes) = gated(inline, Some("boom"));
            open.send(()).unwrap();
            let err = block_on(queue.update(Update::new(
                UserId::new("boom").unwrap(),
                Scope::Instance,
                unchanged(),
            )))
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Internal, "inline {inline}");
            open.send(()).unwrap();
            block_on(queue.update(Update::new(
                UserId::new("fine").unwrap(),
                Scope::Instance,
                unchanged(),
            )))
            .unwrap();
        }
    }

    #[test]
    fn exclusive_jobs_run_after_the_writes_queued_before_them() {
        let (queue, open, sizes) = gated(false, None);
        let first = spawn_update(&queue, "first");
        sizes.recv().unwrap();
        let before = spawn_update(&queue, "before");
        wait_until_queued(&queue, 1);
        let exclusive = {
            let queue = queue.clone();
            thread::spawn(move || {
                block_on(queue.exclusive(|writer: &mut Gated| {
                    // The batch with "before" was sent ahead of this job.
                    Ok(writer.batches.send((0, thread::current().id())).is_ok())
                }))
            })
        };
        wait_until_queued(&queue, 2);
        open.send(()).unwrap();
        open.send(()).unwrap();
        first.join().unwrap().unwrap();
        before.join().unwrap().unwrap();
        assert!(exclusive.join().unwrap().unwrap());
        let order: Vec<usize> = sizes.try_iter().map(|(size, _)| size).collect();
        assert_eq!(order, [1, 0], "the queued write's batch, then the job");
    }

    #[test]
    fn dropping_commits_what_is_queued() {
        use futures::FutureExt;
        let (queue, open, sizes) = gated(false, None);
        let queue = Arc::try_unwrap(queue).ok().unwrap();
        for i in 0..3 {
            // Queued by the first poll; the caller then stops waiting.
            let id = UserId::new(format!("u{i}")).unwrap();
            assert!(queue
                .update(Update::new(id, Scope::Instance, unchanged()))
                .now_or_never()
                .is_none());
        }
        open.send(()).unwrap();
        open.send(()).unwrap();
        open.send(()).unwrap();
        drop(queue);
        let committed: usize = sizes.try_iter().map(|(size, _)| size).sum();
        assert_eq!(
            committed, 3,
            "every queued write was committed before the drop returned"
        );
    }
}
