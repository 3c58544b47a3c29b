//! What the library tells `tracing` (feature `tracing`; without it these
//! are no-ops and the crate has no `tracing` dependency): a span per
//! command with its name, organisation and user, and, when it ends, its
//! outcome (`ok` or the error id) and the conflicts it was decided again
//! after; and each group commit's size and duration. Nothing a host would
//! not log: no reason, no payload.

#[cfg(feature = "tracing")]
mod enabled {
    use std::future::Future;
    use std::time::Duration;

    use tracing::Instrument;

    use crate::error::Result;
    use crate::id::{OrgId, UserId};

    /// Runs `command` in its span and reports its outcome.
    pub(crate) async fn command<T>(
        name: &'static str,
        org: &OrgId,
        user: &UserId,
        command: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let span = tracing::debug_span!(
            "userstate.command",
            command = name,
            org = %org,
            user = %user,
            retries = tracing::field::Empty,
        );
        async move {
            let done = command.await;
            match &done {
                Ok(_) => {
                    tracing::debug!(target: "userstate::service", outcome = "ok", "command done")
                }
                Err(e) => tracing::debug!(
                    target: "userstate::service",
                    outcome = e.id(),
                    kind = ?e.kind(),
                    "command done"
                ),
            }
            done
        }
        .instrument(span)
        .await
    }

    /// The command in progress met a conflict and is decided again.
    pub(crate) fn retried(attempt: u32) {
        tracing::Span::current().record("retries", attempt);
        tracing::debug!(target: "userstate::service", attempt, "conflict: deciding again");
    }

    /// A group commit's batch was committed (and synced, when durable).
    pub(crate) fn batch_committed(size: usize, conflicts: usize, took: Duration) {
        tracing::debug!(
            target: "userstate::storage::commit",
            size,
            conflicts,
            micros = took.as_micros() as u64,
            "batch committed"
        );
    }
}

#[cfg(not(feature = "tracing"))]
mod enabled {
    use std::future::Future;
    use std::time::Duration;

    use crate::error::Result;
    use crate::id::{OrgId, UserId};

    pub(crate) async fn command<T>(
        _: &'static str,
        _: &OrgId,
        _: &UserId,
        command: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        command.await
    }

    pub(crate) fn retried(_: u32) {}

    pub(crate) fn batch_committed(_: usize, _: usize, _: Duration) {}
}

pub(crate) use enabled::{batch_committed, command, retried};
