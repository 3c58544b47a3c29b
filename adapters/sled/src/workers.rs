//! Threads that run the blocking sled work, so that no caller's async
//! executor thread ever waits on the disk. Jobs arrive over a channel and
//! answer over a oneshot, which any executor (or none) can await.

use std::future::Future;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use futures::channel::oneshot;
use userstate::{Error, Result};

type Job = Box<dyn FnOnce() + Send>;

/// Where a job sends its result.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// A fixed pool of worker threads.
#[derive(Debug)]
pub(crate) struct Workers {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` threads (at least one).
    ///
    /// # Errors
    /// Unavailable when a thread cannot be spawned.
    pub(crate) fn start(count: usize) -> Result<Self> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut workers = Workers {
            jobs: Some(sender),
            threads: Vec::new(),
        };
        for index in 0..count.max(1) {
            let receiver = receiver.clone();
            let thread = std::thread::Builder::new()
                .name(format!("userstate-sled-worker-{index}"))
                .spawn(move || work(&receiver))
                .map_err(|e| {
                    Error::unavailable("cannot start a storage worker thread").with_source(e)
                })?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Runs `job` on a worker; it answers through the [`Reply`] it is given,
    /// now or later (a durable append hands it on to the flusher). The
    /// returned future resolves to that answer.
    pub(crate) fn call<T, F>(&self, job: F) -> impl Future<Output = Result<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(Reply<T>) + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let submitted = match &self.jobs {
            Some(jobs) => jobs
                .send(Box::new(move || job(reply)))
                .map_err(|_| Error::unavailable("the storage workers have stopped")),
            None => Err(Error::unavailable("the repository is closing")),
        };
        async move {
            submitted?;
            answer.await.unwrap_or_else(|_| {
                Err(Error::internal(
                    "the storage worker stopped before answering",
                ))
            })
        }
    }

    /// Runs `work` on a worker and resolves to its result.
    pub(crate) fn run<T, F>(&self, work: F) -> impl Future<Output = Result<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T> + Send + 'static,
    {
        self.call(move |reply| {
            let _ = reply.send(work());
        })
    }
}

impl Drop for Workers {
    /// Lets the workers finish the jobs already queued, then joins them.
    fn drop(&mut self) {
        self.jobs = None;
        let current = std::thread::current().id();
        for thread in self.threads.drain(..) {
            // A worker never owns the pool, but joining oneself would hang.
            if thread.thread().id() != current {
                let _ = thread.join();
            }
        }
    }
}

fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        let job = {
            let receiver = jobs.lock().unwrap_or_else(|e| e.into_inner());
            match receiver.recv() {
                Ok(job) => job,
                Err(mpsc::RecvError) => return,
            }
        };
        // A panic inside sled drops the job's reply, so its caller gets an
        // Internal error; the worker lives on for the others.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use userstate::ErrorKind;

    #[test]
    fn runs_jobs_off_the_calling_thread() {
        let workers = Workers::start(2).unwrap();
        let caller = std::thread::current().id();
        let ran_on =
            futures::executor::block_on(workers.run(|| Ok(std::thread::current().id()))).unwrap();
        assert_ne!(ran_on, caller);
    }

    #[test]
    fn a_panicking_job_is_an_internal_error_and_the_pool_survives() {
        let workers = Workers::start(1).unwrap();
        let err = futures::executor::block_on(workers.run::<(), _>(|| panic!("boom"))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(
            futures::executor::block_on(workers.run(|| Ok(7))).unwrap(),
            7
        );
    }

    #[test]
    fn dropping_finishes_queued_jobs() {
        let workers = Workers::start(1).unwrap();
        let answers: Vec<_> = (0..10).map(|i| workers.run(move || Ok(i))).collect();
        drop(workers);
        let got: Vec<_> = answers
            .into_iter()
            .map(|a| futures::executor::block_on(a).unwrap())
            .collect();
        assert_eq!(got, (0..10).collect::<Vec<_>>());
    }
}
