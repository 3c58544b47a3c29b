//! Support for adapters' group-commit tests: where a lone update's decision
//! runs, and a writer held inside a batch so that the next batch can be
//! queued behind it deterministically (the test then waits for the queue to
//! fill, never for a time).

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle, ThreadId};

use crate::storage::{Decide, Decision, Scope, Update};
use crate::{UserId, UserRepository};

/// The thread on which `repo` ran the decision of an update of `id` (which
/// must exist): the caller's own with inline writes, a writer's otherwise.
///
/// # Panics
/// If the update fails or its decision never ran.
pub fn decided_on(repo: &dyn UserRepository, id: &UserId) -> ThreadId {
    let (seen, ran_on) = mpsc::channel();
    let decide: Decide = Box::new(move |stored| {
        let _ = seen.send(thread::current().id());
        Ok(Decision::Unchanged(stored.expect("the user exists")))
    });
    futures::executor::block_on(repo.update(Update::new(id.clone(), Scope::Instance, decide)))
        .expect("update");
    ran_on.recv().expect("the decision ran")
}

/// A writer held inside a batch by a decision that waits; dropping it (or
/// [`Stall::release`]) lets the batch finish.
#[derive(Debug)]
pub struct Stall {
    release: Option<mpsc::Sender<()>>,
    update: Option<JoinHandle<()>>,
}

impl Stall {
    /// Starts, on a thread of its own, an update of `id` (which must exist)
    /// whose decision waits until released; returns once the decision runs,
    /// that is once the writer is inside its batch.
    ///
    /// # Panics
    /// If the update fails.
    pub fn hold(repo: Arc<dyn UserRepository>, id: &UserId) -> Self {
        let (started, running) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let decide: Decide = Box::new(move |stored| {
            let _ = started.send(());
            let _ = released.recv();
            Ok(Decision::Unchanged(stored.expect("the user exists")))
        });
        let id = id.clone();
        let update = thread::spawn(move || {
            futures::executor::block_on(repo.update(Update::new(
                id.clone(),
                Scope::Instance,
                decide,
            )))
            .expect("the held update");
        });
        running.recv().expect("the held decision runs");
        Stall {
            release: Some(release),
            update: Some(update),
        }
    }

    /// Lets the held batch finish and waits for its update.
    pub fn release(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        if let Some(update) = self.update.take() {
            update.join().expect("the held update");
        }
    }
}

impl Drop for Stall {
    fn drop(&mut self) {
        self.finish();
    }
}
