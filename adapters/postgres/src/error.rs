//! PostgreSQL's errors as the library's: by SQLSTATE, never by message.

use tokio_postgres::error::SqlState;
use userstate::{ids, Error, ErrorKind};

/// The library's error for a failed statement or connection.
///
/// - Conflict for a unique violation (another writer stored the same event
///   or user first) and for a serialization failure or deadlock (SQLSTATE
///   40001, 40P01, which distributed PostgreSQL-compatible databases answer
///   where PostgreSQL waits): nothing was written, and the service decides
///   the command again on the user as it is now.
/// - Unavailable when the server cannot be reached, is shutting down,
///   refuses more connections or cancelled the statement.
/// - Internal otherwise. The server's own text is kept in the message.
pub(crate) fn from_postgres(error: tokio_postgres::Error) -> Error {
    let code = error.code();
    if let Some(code) = code {
        if [
            SqlState::UNIQUE_VIOLATION,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
        ]
        .contains(code)
        {
            return conflict().with_source(error);
        }
    }
    let unavailable = match code {
        None => true, // no SQLSTATE: the connection itself failed
        Some(code) => [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::QUERY_CANCELED,
            SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
            SqlState::CONNECTION_EXCEPTION,
            SqlState::CONNECTION_FAILURE,
            SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        ]
        .contains(code),
    };
    let message = format!("PostgreSQL: {error}");
    if unavailable {
        Error::unavailable(message).with_source(error)
    } else {
        Error::internal(message).with_source(error)
    }
}

/// The library's error for a connection the pool could not hand out.
pub(crate) fn from_pool(error: deadpool_postgres::PoolError) -> Error {
    match error {
        deadpool_postgres::PoolError::Backend(error) => from_postgres(error),
        other => {
            Error::unavailable(format!("PostgreSQL: no connection: {other}")).with_source(other)
        }
    }
}

/// The error for a call that ran past its bound.
pub(crate) fn timed_out(what: &str, after: std::time::Duration) -> Error {
    Error::unavailable(format!(
        "PostgreSQL: {what} did not finish within {} ms",
        after.as_millis()
    ))
}

/// Another writer committed first: nothing was written, and the service
/// decides the command again.
pub(crate) fn conflict() -> Error {
    Error::new(
        ErrorKind::Conflict,
        ids::CONFLICT,
        "Concurrent modification: another writer committed first",
    )
}
