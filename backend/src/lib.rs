//! Opens a userstate storage backend from a short spec, the one way every
//! program of the project does it (the operator's `userstate` command, the
//! `http_service` example) and hosts can too:
//!
//! | spec | backend |
//! |---|---|
//! | `memory` | [`InMemoryRepository`], gone with the process |
//! | `sqlite:PATH` | a [`SqliteRepository`] file |
//! | `sled:PATH` | a [`SledRepository`] folder |
//! | `postgres://...`, `postgresql://...` | a [`PostgresRepository`]: the whole spec is the URL |
//! | `postgres:CONNSTRING` | the same, with libpq's key=value form |
//!
//! A spec that names no backend, or a path of the wrong kind (a folder for
//! SQLite, a file for sled, nothing where an existing database is asked
//! for), is a configuration error: InvalidArgument with the id
//! [`USER-ARG-BACKEND`](userstate::ids::INVALID_BACKEND) and the spec named
//! (its password hidden), never Unavailable.
//!
//! ```
//! use userstate::{Error, ErrorKind};
//!
//! # fn main() -> userstate::Result<()> {
//! let backend = userstate_backend::open("memory")?;
//! let repository = backend.repository(); // Arc<dyn UserRepository>
//! # drop(repository);
//!
//! let wrong = userstate_backend::open("mysql://db/identity").unwrap_err();
//! assert_eq!(wrong.kind(), ErrorKind::InvalidArgument);
//! assert!(wrong.message().contains("mysql://db/identity"));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::path::Path;
use std::sync::Arc;

use userstate::storage::{check_through, CheckAtOpen, Durability, Verification};
use userstate::{ids, Error, ErrorKind, InMemoryRepository, Result, UserRepository};
use userstate_postgres::{PostgresOptions, PostgresRepository};
use userstate_sled::{SledOptions, SledRepository, DEFAULT_CACHE_BYTES};
use userstate_sqlite::{SqliteOptions, SqliteRepository};

/// The specs [`open`] accepts, for usage and error messages.
pub const SPECS: &str =
    "memory, sqlite:PATH, sled:PATH, postgres://URL (or postgresql://URL) or postgres:CONNSTRING";

/// An opened backend: the repository, and what only its engine can do.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Backend {
    /// `memory`.
    Memory(Arc<InMemoryRepository>),
    /// `sqlite:PATH`.
    Sqlite(Arc<SqliteRepository>),
    /// `sled:PATH`.
    Sled(Arc<SledRepository>),
    /// `postgres://...` or `postgres:CONNSTRING`.
    Postgres(Arc<PostgresRepository>),
}

/// How [`open_with`] opens a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpenOptions {
    /// Whether a missing SQLite file or sled folder is created (default
    /// true). A PostgreSQL schema is always created if missing.
    pub create_if_missing: bool,
    /// How commits are made durable (default [`Durability::Durable`]).
    pub durability: Durability,
    /// How much of an SQLite file or sled folder is checked at open
    /// (default [`CheckAtOpen::Auto`]); a tool that reports damage itself
    /// ([`Backend::verify`]) opens with less, so a damaged database opens.
    pub check_at_open: CheckAtOpen,
    /// The page cache sled keeps, in sled's own estimate of bytes
    /// (`None`, the default: the adapter's
    /// [`DEFAULT_CACHE_BYTES`]). A
    /// program that streams through a database once gains little from a
    /// large one. SQLite and PostgreSQL keep their own.
    pub cache_bytes: Option<u64>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create_if_missing: true,
            durability: Durability::Durable,
            check_at_open: CheckAtOpen::Auto,
            cache_bytes: None,
        }
    }
}

/// Opens the backend `spec` names, created if missing and durable: the
/// SQLite file and sled folder with their adapters' defaults, PostgreSQL
/// with the default [`PostgresOptions`] (schema `userstate`, connect
/// timeout 5 s, command timeout 10 s). Opening PostgreSQL blocks until the
/// server answers, so from inside an async runtime call this on a blocking
/// thread (`tokio::task::spawn_blocking`).
///
/// # Errors
/// InvalidArgument ([`ids::INVALID_BACKEND`]) for a spec that names no
/// backend or a path of the wrong kind; otherwise what the adapter
/// answers (Unavailable, Corrupt, ...), its message prefixed with the spec.
/// A password in a PostgreSQL spec is never repeated.
pub fn open(spec: &str) -> Result<Backend> {
    open_with(spec, &OpenOptions::default())
}

/// Opens the backend `spec` names as `options` say; see [`open`].
///
/// # Errors
/// As [`open`]; InvalidArgument too when nothing is at the path and
/// `options` do not create it.
pub fn open_with(spec: &str, options: &OpenOptions) -> Result<Backend> {
    let shown = redacted(spec);
    let config = |why: String| {
        Error::new(
            ErrorKind::InvalidArgument,
            ids::INVALID_BACKEND,
            format!("{shown}: {why}"),
        )
    };
    let opened = if let Some(connection) = postgres_connection(spec) {
        PostgresOptions::new(connection)
            .durability(options.durability)
            .open()
            .map(|repo| Backend::Postgres(Arc::new(repo)))
    } else {
        match spec.split_once(':') {
            None if spec == "memory" => Ok(Backend::Memory(Arc::new(InMemoryRepository::new()))),
            Some(("sqlite", path)) if !path.is_empty() => {
                check_path(Path::new(path), Kind::File, options).map_err(config)?;
                SqliteOptions::new()
                    .durability(options.durability)
                    .check_at_open(options.check_at_open)
                    .create_if_missing(options.create_if_missing)
                    .open(path)
                    .map(|repo| Backend::Sqlite(Arc::new(repo)))
            }
            Some(("sled", path)) if !path.is_empty() => {
                check_path(Path::new(path), Kind::Folder, options).map_err(config)?;
                SledOptions::new()
                    .durability(options.durability)
                    .check_at_open(options.check_at_open)
                    .create_if_missing(options.create_if_missing)
                    .cache_bytes(options.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES))
                    .open(path)
                    .map(|repo| Backend::Sled(Arc::new(repo)))
            }
            _ => return Err(config(format!("names no backend; use {SPECS}"))),
        }
    };
    opened.map_err(|e| Error::new(e.kind(), e.id(), format!("{shown}: {}", e.message())))
}

/// What a file-backed spec's path must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Folder,
}

/// Refuses a path of the wrong kind, a missing one that is not to be
/// created, and one whose folder does not exist.
fn check_path(path: &Path, kind: Kind, options: &OpenOptions) -> std::result::Result<(), String> {
    match (path.symlink_metadata(), kind) {
        (Ok(meta), Kind::File) if meta.is_dir() => {
            Err("is a folder; an SQLite database is a file (a sled database is a folder: sled:PATH)".to_owned())
        }
        (Ok(meta), Kind::Folder) if !meta.is_dir() => {
            Err("is not a folder; a sled database is a folder (an SQLite database is a file: sqlite:PATH)".to_owned())
        }
        (Ok(_), _) => Ok(()),
        (Err(_), _) if !options.create_if_missing => {
            Err("no database is there (nothing is created by this command)".to_owned())
        }
        (Err(_), _) => {
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            match parent {
                Some(parent) if !parent.is_dir() => Err(format!(
                    "the folder {} does not exist",
                    parent.display()
                )),
                _ => Ok(()),
            }
        }
    }
}

impl Backend {
    /// The repository, for a service or any reader.
    pub fn repository(&self) -> Arc<dyn UserRepository> {
        match self {
            Backend::Memory(repo) => repo.clone(),
            Backend::Sqlite(repo) => repo.clone(),
            Backend::Sled(repo) => repo.clone(),
            Backend::Postgres(repo) => repo.clone(),
        }
    }

    /// The backend's name: `memory`, `sqlite`, `sled` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Sqlite(_) => "sqlite",
            Backend::Sled(_) => "sled",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Checks the whole database: the engine's own check (every record
    /// against its checksum, every snapshot against the replay of its
    /// history, the events against what was committed; nothing for
    /// memory), then [`check_through`] (indexes against snapshots, the
    /// feed whole and in order, every stored policy decodable). The
    /// figures are the engine's where it has a check.
    ///
    /// # Errors
    /// Unavailable or Internal when the database cannot be read; damage is
    /// reported in the [`Verification`].
    pub async fn verify(&self) -> Result<Verification> {
        let engine = match self {
            Backend::Memory(_) => None,
            Backend::Sqlite(repo) => Some(repo.verify().await?),
            Backend::Sled(repo) => Some(repo.verify().await?),
            Backend::Postgres(repo) => Some(repo.verify().await?),
        };
        let through = check_through(self.repository().as_ref()).await?;
        Ok(match engine {
            None => through,
            Some(mut engine) => {
                for finding in through.findings {
                    if !engine.findings.contains(&finding) {
                        engine.findings.push(finding);
                    }
                }
                engine
            }
        })
    }

    /// Makes every acknowledged commit durable, for a backend opened with
    /// [`Durability::Relaxed`] (nothing to do for memory and PostgreSQL,
    /// whose relaxed commits the server makes durable on its own).
    ///
    /// # Errors
    /// Unavailable when the engine cannot sync.
    pub async fn sync(&self) -> Result<()> {
        match self {
            Backend::Sqlite(repo) => repo.sync().await,
            Backend::Sled(repo) => repo.sync().await,
            Backend::Memory(_) | Backend::Postgres(_) => Ok(()),
        }
    }
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

/// The connection string of a PostgreSQL spec: a `postgres://` or
/// `postgresql://` URL whole, or what follows `postgres:`.
fn postgres_connection(spec: &str) -> Option<&str> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return Some(spec);
    }
    spec.strip_prefix("postgres:")
        .filter(|connection| !connection.trim().is_empty())
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
        let e = super::open("mysql://db/identity").unwrap_err();
        assert_eq!(e.id(), userstate::ids::INVALID_BACKEND);
        assert!(e.message().contains("postgres://URL"), "{e}");
        assert!(e.message().contains("sqlite:PATH"), "{e}");
    }

    #[test]
    fn a_path_of_the_wrong_kind_is_a_configuration_error() {
        use userstate::ErrorKind::InvalidArgument;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"not a database").unwrap();
        let folder = dir.path().display();
        let missing = dir.path().join("missing");
        let cases = [
            (format!("sqlite:{folder}"), super::OpenOptions::default()),
            (
                format!("sled:{}", file.display()),
                super::OpenOptions::default(),
            ),
            (
                format!("sqlite:{}", dir.path().join("no/such/folder/db").display()),
                super::OpenOptions::default(),
            ),
            (
                format!("sled:{}", missing.display()),
                super::OpenOptions {
                    create_if_missing: false,
                    ..Default::default()
                },
            ),
            ("sqlite:".to_owned(), super::OpenOptions::default()),
            ("postgres:".to_owned(), super::OpenOptions::default()),
        ];
        for (spec, options) in cases {
            let e = super::open_with(&spec, &options).unwrap_err();
            assert_eq!(
                (e.kind(), e.id()),
                (InvalidArgument, userstate::ids::INVALID_BACKEND),
                "{spec}: {e}"
            );
            assert!(e.message().starts_with(&spec), "{spec}: {e}");
        }
        assert!(!missing.exists(), "nothing was created");
    }

    #[test]
    fn each_spec_opens_its_backend() {
        let dir = tempfile::tempdir().unwrap();
        for (spec, kind) in [
            ("memory".to_owned(), "memory"),
            (
                format!("sqlite:{}", dir.path().join("db.sqlite3").display()),
                "sqlite",
            ),
            (
                format!("sled:{}", dir.path().join("db.sled").display()),
                "sled",
            ),
        ] {
            let backend = super::open(&spec).unwrap();
            assert_eq!(backend.kind(), kind);
            let verified = futures::executor::block_on(backend.verify()).unwrap();
            assert!(verified.is_sound(), "{spec}: {:?}", verified.findings);
        }
    }
}
