//! Turns SQLite's errors into the library's error kinds, by result code and
//! never by message text.

use std::path::Path;

use rusqlite::ErrorCode;
use userstate::Error;

/// SQLITE_CONSTRAINT_PRIMARYKEY: a row with this primary key exists.
const CONSTRAINT_PRIMARY_KEY: i32 = 1555;
/// SQLITE_CONSTRAINT_UNIQUE: a UNIQUE index already holds this key.
const CONSTRAINT_UNIQUE: i32 = 2067;

/// The library error for a SQLite failure outside the one case the writer
/// handles itself (a key violation), with SQLite's own reason in the
/// message: a full disk, a read-only file, an I/O error are the operator's
/// to see. A store that cannot be written or read answers Unavailable.
pub(crate) fn from_sqlite(error: rusqlite::Error) -> Error {
    let stored_value_unreadable = matches!(
        error,
        rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..)
            | rusqlite::Error::InvalidColumnType(..)
    );
    if stored_value_unreadable {
        return Error::corrupt(format!("a stored value has an unexpected type ({error})"))
            .with_source(error);
    }
    let mapped = match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::unavailable(format!(
            "the SQLite database stayed locked past the busy timeout ({error})"
        )),
        Some(ErrorCode::NotADatabase) => {
            Error::corrupt(format!("the file is not a SQLite database ({error})"))
        }
        Some(ErrorCode::DatabaseCorrupt) => {
            Error::corrupt(format!("the SQLite database file is corrupt ({error})"))
        }
        Some(ErrorCode::CannotOpen) => {
            Error::unavailable(format!("the SQLite database cannot be opened ({error})"))
        }
        Some(ErrorCode::ReadOnly) => {
            Error::unavailable(format!("the SQLite database cannot be written ({error})"))
        }
        Some(ErrorCode::DiskFull) => {
            Error::unavailable(format!("the disk of the SQLite database is full ({error})"))
        }
        Some(ErrorCode::SystemIoFailure | ErrorCode::PermissionDenied) => Error::unavailable(
            format!("the SQLite database cannot be read or written ({error})"),
        ),
        _ => Error::internal(format!("SQLite failed ({error})")),
    };
    mapped.with_source(error)
}

/// `error` with the database's path in its message, where it is not yet:
/// errors at open say which file they are about.
pub(crate) fn at(path: &Path, error: Error) -> Error {
    let shown = path.display().to_string();
    if error.message().contains(&shown) {
        return error;
    }
    Error::new(
        error.kind(),
        error.id(),
        format!("the database {shown}: {}", error.message()),
    )
    .with_source(error)
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
