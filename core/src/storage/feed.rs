//! The change feed's waiting, the same for every adapter: readers wait for
//! a position to be passed, writers say what they committed, and no one
//! polls or needs a particular async runtime.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use futures_channel::oneshot;

/// The last committed position, and the readers waiting for a later one.
///
/// An adapter calls [`FeedSignal::committed`] after each commit (with the
/// last position it wrote) and answers
/// [`UserRepository::wait_for_events`](super::UserRepository::wait_for_events)
/// with [`FeedSignal::wait`]. Waiters are woken by any later commit and
/// read the feed again, so a spurious wake costs one read.
#[derive(Debug, Default)]
pub struct FeedSignal {
    state: Mutex<SignalState>,
}

#[derive(Debug, Default)]
struct SignalState {
    last: u64,
    waiters: Vec<oneshot::Sender<()>>,
    /// Told when a reader starts waiting (see [`FeedSignal::someone_waits`]).
    watchers: Vec<oneshot::Sender<()>>,
}

impl FeedSignal {
    /// A signal whose feed ends at `last`.
    pub fn new(last: u64) -> Self {
        FeedSignal {
            state: Mutex::new(SignalState {
                last,
                waiters: Vec::new(),
                watchers: Vec::new(),
            }),
        }
    }

    /// Records that the feed now reaches `last` (a lower value is ignored)
    /// and wakes every waiter when it moved.
    pub fn committed(&self, last: u64) {
        let waiters = {
            let mut state = self.lock();
            if last <= state.last {
                return;
            }
            state.last = last;
            std::mem::take(&mut state.waiters)
        };
        for waiter in waiters {
            // A waiter that went away needs no wake.
            let _ = waiter.send(());
        }
    }

    /// The last position the signal has seen.
    pub fn last(&self) -> u64 {
        self.lock().last
    }

    /// Whether some reader is waiting (an adapter that must look for other
    /// processes' commits does so only then).
    pub fn has_waiters(&self) -> bool {
        let mut state = self.lock();
        state.waiters.retain(|waiter| !waiter.is_canceled());
        !state.waiters.is_empty()
    }

    /// Resolves once some reader waits: at once if one does. An adapter
    /// that learns of other processes' commits only while someone waits
    /// (say, by listening to the database) starts then.
    pub fn someone_waits(&self) -> impl Future<Output = ()> + Send + 'static {
        let receiver = if self.has_waiters() {
            None
        } else {
            let (sender, receiver) = oneshot::channel();
            self.lock().watchers.push(sender);
            Some(receiver)
        };
        async move {
            if let Some(receiver) = receiver {
                let _ = receiver.await;
            }
        }
    }

    /// Resolves once the feed reaches past `after`: at once if it already
    /// does. Dropping the future frees its place.
    pub fn wait(&self, after: u64) -> impl Future<Output = ()> + Send + 'static {
        let (receiver, watchers) = {
            let mut state = self.lock();
            if state.last > after {
                (None, Vec::new())
            } else {
                let (sender, receiver) = oneshot::channel();
                state.waiters.push(sender);
                (Some(receiver), std::mem::take(&mut state.watchers))
            }
        };
        for watcher in watchers {
            let _ = watcher.send(());
        }
        async move {
            if let Some(receiver) = receiver {
                // A dropped sender (the adapter closing) ends the wait too.
                let _ = receiver.await;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SignalState> {
        // The state is a number and a list: a panic cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;
    use futures::FutureExt;

    use super::*;

    #[test]
    fn a_wait_resolves_once_the_feed_passes_its_position() {
        let signal = FeedSignal::new(3);
        assert!(signal.wait(2).now_or_never().is_some(), "already past");
        let mut pending = Box::pin(signal.wait(3));
        assert!(pending.as_mut().now_or_never().is_none());
        assert!(signal.has_waiters());
        signal.committed(3);
        assert!(pending.as_mut().now_or_never().is_none(), "not past 3 yet");
        signal.committed(4);
        block_on(pending);
        assert!(!signal.has_waiters());
        drop(signal.wait(10));
        assert!(!signal.has_waiters(), "a dropped wait frees its place");
    }

    #[test]
    fn a_watcher_learns_when_a_reader_starts_waiting() {
        let signal = FeedSignal::new(3);
        let mut watching = Box::pin(signal.someone_waits());
        assert!(watching.as_mut().now_or_never().is_none());
        drop(signal.wait(2)); // the feed is past 2 already: no one waits
        assert!(watching.as_mut().now_or_never().is_none());
        let _waiting = signal.wait(3);
        block_on(watching);
        assert!(
            signal.someone_waits().now_or_never().is_some(),
            "one waits now"
        );
    }
}
