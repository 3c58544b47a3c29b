//! Choosing a storage backend at run time from a short spec such as
//! `memory`, `sqlite:PATH`, `sled:PATH` or `postgres://HOST/DB`: the only
//! place where the examples differ by backend.

use std::path::PathBuf;
use std::sync::Arc;

use userstate::storage::create_private_dir;
use userstate::{InMemoryRepository, UserRepository};
use userstate_postgres::PostgresOptions;
use userstate_sled::SledRepository;
use userstate_sqlite::SqliteRepository;

/// The specs [`open`] accepts, for usage and error messages.
pub const SPECS: &str =
    "memory, sqlite:PATH, sled:PATH, postgres://URL (or postgresql://URL) or postgres:CONNSTRING";

/// Opens the repository a spec names:
///
/// - `memory`;
/// - `sqlite:PATH`: a file, created if missing, durable;
/// - `sled:PATH`: a folder, created if missing, durable;
/// - `postgres://...` or `postgresql://...`: a PostgreSQL database, the
///   whole spec being the connection URL as libpq reads it;
/// - `postgres:CONNSTRING`: the same with libpq's key=value form, e.g.
///   `postgres:host=/run/postgresql dbname=identity`.
///
/// PostgreSQL is opened with the default [`PostgresOptions`] (schema
/// `userstate`, durable, connect timeout 5 s, command timeout 10 s); the
/// schema is created if missing. Opening it blocks until the server
/// answers, so from inside an async runtime call this on a blocking thread
/// (`tokio::task::spawn_blocking`).
///
/// # Errors
/// A message for an unknown spec or a backend that cannot be opened; a
/// password in a PostgreSQL spec is not repeated in it.
pub fn open(spec: &str) -> Result<Arc<dyn UserRepository>, String> {
    let opened: Result<Arc<dyn UserRepository>, userstate::Error> =
        if let Some(connection) = postgres_connection(spec) {
            PostgresOptions::new(connection).open().map(Into::into)
        } else {
            match spec.split_once(':') {
                None if spec == "memory" => Ok(Arc::new(InMemoryRepository::new())),
                Some(("sqlite", path)) if !path.is_empty() => {
                    SqliteRepository::open(path).map(|r| Arc::new(r) as _)
                }
                Some(("sled", path)) if !path.is_empty() => {
                    SledRepository::open(path).map(|r| Arc::new(r) as _)
                }
                _ => return Err(format!("unknown backend {:?}: use {SPECS}", redacted(spec))),
            }
        };
    opened.map_err(|e| format!("cannot open {}: {e}", redacted(spec)))
}

/// The connection string of a PostgreSQL spec: a `postgres://` or
/// `postgresql://` URL whole, or what follows `postgres:`.
fn postgres_connection(spec: &str) -> Option<&str> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return Some(spec);
    }
    spec.strip_prefix("postgres:")
        .filter(|connection| !connection.trim().is_empty())
}

/// The spec as it may be shown or logged: the password of a PostgreSQL
/// spec (in a URL's `user:password@`, a `password=` pair or a `password`
/// query parameter) replaced by `***`; other specs unchanged.
pub fn redacted(spec: &str) -> String {
    let Some(connection) = postgres_connection(spec) else {
        return spec.to_owned();
    };
    if connection.contains("://") {
        redacted_url(spec)
    } else {
        redacted_pairs(spec)
    }
}

/// `postgres://user:secret@host/db?password=secret` with both secrets hidden.
fn redacted_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, hosts)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{hosts}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some(("password", _)) => "password=***".to_owned(),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// `postgres:host=h password=secret dbname=d` with the secret hidden (a
/// quoted value may hold spaces and escaped quotes).
fn redacted_pairs(spec: &str) -> String {
    let mut out = String::with_capacity(spec.len());
    let mut rest = spec;
    while let Some(at) = rest.find("password") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let at_word_start =
            before.is_empty() || before.ends_with(|c: char| c.is_whitespace() || c == ':');
        let after_key = from["password".len()..].trim_start();
        match after_key.strip_prefix('=') {
            Some(value) if at_word_start => {
                out.push_str("password=***");
                let value = value.trim_start();
                rest = if let Some(quoted) = value.strip_prefix('\'') {
                    let mut chars = quoted.char_indices();
                    let mut end = quoted.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                chars.next();
                            }
                            '\'' => {
                                end = i + 1;
                                break;
                            }
                            _ => {}
                        }
                    }
                    &quoted[end..]
                } else {
                    let end = value.find(char::is_whitespace).unwrap_or(value.len());
                    &value[end..]
                };
            }
            _ => {
                out.push_str("password");
                rest = &from["password".len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The folder where the examples keep their databases unless told
/// otherwise: `userstate-examples` in the user's local data folder
/// (`$XDG_DATA_HOME`, else `~/.local/share`, on Linux; `~/Library/Application
/// Support` on macOS; `%LOCALAPPDATA%` on Windows), created readable by its
/// owner only (0700). Never a fixed name in the shared temporary folder,
/// where another local account could create it first.
///
/// # Errors
/// A message when the system names no data folder for the user, or the
/// folder cannot be created or is not the user's own.
pub fn default_dir() -> Result<PathBuf, String> {
    let base = dirs::data_local_dir().ok_or(
        "the system names no local data folder for this user (is HOME set?); \
         name a database explicitly",
    )?;
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    let dir = base.join("userstate-examples");
    create_private_dir(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// The default spec: the SQLite file `file_name` in [`default_dir`].
///
/// # Errors
/// As [`default_dir`].
pub fn default_sqlite(file_name: &str) -> Result<String, String> {
    Ok(format!(
        "sqlite:{}",
        default_dir()?.join(file_name).display()
    ))
}

#[cfg(test)]
mod tests {
    use super::{postgres_connection, redacted};

    #[test]
    fn postgres_specs_name_their_connection_string() {
        assert_eq!(
            postgres_connection("postgres://me@db.example/identity"),
            Some("postgres://me@db.example/identity")
        );
        assert_eq!(
            postgres_connection("postgresql://db.example/identity"),
            Some("postgresql://db.example/identity")
        );
        assert_eq!(
            postgres_connection("postgres:host=/run/postgresql dbname=identity"),
            Some("host=/run/postgresql dbname=identity")
        );
        assert_eq!(postgres_connection("postgres:"), None);
        assert_eq!(postgres_connection("sqlite:/tmp/x"), None);
        assert_eq!(postgres_connection("memory"), None);
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("postgres://me:s3cret@db.example:5432/identity?sslmode=disable"),
            "postgres://me:***@db.example:5432/identity?sslmode=disable"
        );
        assert_eq!(
            redacted("postgresql://db.example/identity?user=me&password=s3cret"),
            "postgresql://db.example/identity?user=me&password=***"
        );
        assert_eq!(
            redacted("postgres:host=db password=s3cret dbname=identity"),
            "postgres:host=db password=*** dbname=identity"
        );
        assert_eq!(
            redacted(r"postgres:password = 'a \' b' dbname=identity"),
            "postgres:password=*** dbname=identity"
        );
        assert_eq!(
            redacted("postgres:host=/run/postgresql dbname=passwords"),
            "postgres:host=/run/postgresql dbname=passwords"
        );
        assert_eq!(redacted("sqlite:/tmp/password=x"), "sqlite:/tmp/password=x");
    }

    #[test]
    fn an_unknown_spec_lists_the_accepted_ones() {
        let Err(message) = super::open("mysql://db/identity") else {
            panic!("mysql is no backend here");
        };
        assert!(message.contains("postgres://URL"), "{message}");
        assert!(message.contains("sqlite:PATH"), "{message}");
    }
}
