//! Turns SQLite's errors into the library's error kinds, by result code and
//! never by message text.

use rusqlite::ErrorCode;
use userstate::Error;

/// SQLITE_CONSTRAINT_PRIMARYKEY: a row with this primary key exists.
const CONSTRAINT_PRIMARY_KEY: i32 = 1555;
/// SQLITE_CONSTRAINT_UNIQUE: a UNIQUE index already holds this key.
const CONSTRAINT_UNIQUE: i32 = 2067;

/// The library error for a SQLite failure outside the one case the writer
/// handles itself (a key violation).
pub(crate) fn from_sqlite(error: rusqlite::Error) -> Error {
    let stored_value_unreadable = matches!(
        error,
        rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..)
            | rusqlite::Error::InvalidColumnType(..)
    );
    if stored_value_unreadable {
        return Error::corrupt("a stored value has an unexpected type").with_source(error);
    }
    let mapped = match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            Error::unavailable("the SQLite database stayed locked past the busy timeout")
        }
        Some(ErrorCode::NotADatabase) => Error::corrupt("the file is not a SQLite database"),
        Some(ErrorCode::DatabaseCorrupt) => Error::corrupt("the SQLite database file is corrupt"),
        Some(ErrorCode::CannotOpen) => Error::unavailable("the SQLite database cannot be opened"),
        _ => Error::internal("SQLite failed"),
    };
    mapped.with_source(error)
}

/// True when `error` says a primary key or unique index already holds the key.
pub(crate) fn is_key_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == CONSTRAINT_PRIMARY_KEY
                || failure.extended_code == CONSTRAINT_UNIQUE
    )
}
