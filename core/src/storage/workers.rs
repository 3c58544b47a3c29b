//! Threads that run an adapter's blocking reads, so that no caller's async
//! executor waits on the disk, whatever executor (or none) it runs.

use std::fmt;
use std::future::Future;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use futures_channel::oneshot;

use crate::error::{Error, Result};

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// A fixed pool of threads, each owning one state `S` (a read connection,
/// a handle to the store), taking jobs from one shared queue.
///
/// The panic policy is the same for every adapter: a job that panics is
/// answered with Internal, and its thread and state stay in service for the
/// next job. Dropping the pool lets the threads finish the queued jobs and
/// waits for them.
pub struct WorkerPool<S> {
    jobs: Option<Sender<Job<S>>>,
    threads: Vec<JoinHandle<()>>,
}

impl<S: Send + 'static> WorkerPool<S> {
    /// Starts one thread per state, named `{name}-{index}`.
    ///
    /// # Errors
    /// Internal when a thread cannot be spawned.
    pub fn start(name: &str, states: Vec<S>) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job<S>>();
        let queue = Arc::new(Mutex::new(queue));
        let mut pool = WorkerPool {
            jobs: Some(jobs),
            threads: Vec::with_capacity(states.len()),
        };
        for (index, state) in states.into_iter().enumerate() {
            let queue = Arc::clone(&queue);
            let thread = thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || serve(state, &queue))
                .map_err(|e| Error::internal("cannot spawn a storage thread").with_source(e))?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// Runs `job` on a thread of the pool, with its state, and resolves to
    /// its result.
    ///
    /// # Errors
    /// What `job` returned; Internal if it panicked or the pool has no
    /// thread left.
    pub fn run<T, F>(&self, job: F) -> impl Future<Output = Result<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&mut S) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job<S> = Box::new(move |state| {
            // A caller that stopped waiting does not need its answer.
            let _ = reply.send(job(state));
        });
        let queued = self
            .jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| Error::internal("the storage threads have stopped"));
        async move {
            queued?;
            answer.await.unwrap_or_else(|_| {
                Err(Error::internal(
                    "a storage job panicked or stopped before answering",
                ))
            })
        }
    }
}

impl<S> fmt::Debug for WorkerPool<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerPool")
            .field("threads", &self.threads.len())
            .finish_non_exhaustive()
    }
}

impl<S> Drop for WorkerPool<S> {
    fn drop(&mut self) {
        // Closing the queue ends each thread once the queued jobs are done.
        self.jobs = None;
        let current = thread::current().id();
        for thread in self.threads.drain(..) {
            // A job that drops the last handle must not join its own thread.
            if thread.thread().id() != current {
                let _ = thread.join();
            }
        }
    }
}

fn serve<S>(mut state: S, queue: &Mutex<Receiver<Job<S>>>) {
    loop {
        // Held only while waiting for a job, never while running one; a
        // poisoned receiver is still whole.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        // The job's reply is dropped by the unwinding, which answers its
        // caller; the thread and its state serve the next job.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut state)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use futures::executor::block_on;

    #[test]
    fn jobs_run_on_the_pool_with_their_thread_state() {
        let pool = WorkerPool::start("test", vec![10u32, 20]).unwrap();
        let here = thread::current().id();
        let (state, ran_on) =
            block_on(pool.run(|state: &mut u32| Ok((*state, thread::current().id())))).unwrap();
        assert!(state == 10 || state == 20);
        assert_ne!(ran_on, here);
    }

    #[test]
    fn a_panicking_job_is_internal_and_its_thread_serves_on() {
        let pool = WorkerPool::start("test", vec![0u32]).unwrap();
        let err = block_on(pool.run::<(), _>(|_| panic!("a faulty read"))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        for n in 1..=3 {
            let count = block_on(pool.run(|state: &mut u32| {
                *state += 1;
                Ok(*state)
            }))
            .unwrap();
            assert_eq!(count, n, "the one thread and its state survived");
        }
    }

    #[test]
    fn dropping_finishes_the_queued_jobs() {
        let pool = WorkerPool::start("test", vec![()]).unwrap();
        let answers: Vec<_> = (0..10).map(|i| pool.run(move |_| Ok(i))).collect();
        drop(pool);
        let got: Vec<_> = answers.into_iter().map(|a| block_on(a).unwrap()).collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }
}
