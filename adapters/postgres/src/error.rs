//! PostgreSQL's errors as the library's: by SQLSTATE, never by message.

use tokio_postgres::error::SqlState;
use userstate::Error;

/// The library's error for a failed statement or connection: Unavailable
/// when the server cannot be reached, is shutting down, refuses more
/// connections or timed out; Internal otherwise. The server's own text is
/// kept in the message.
pub(crate) fn from_postgres(error: tokio_postgres::Error) -> Error {
    let unavailable = match error.code() {
        None => true, // no SQLSTATE: the connection itself failed
        Some(code) => [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::QUERY_CANCELED,
            SqlState::CONNECTION_EXCEPTION,
            SqlState::CONNECTION_FAILURE,
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
