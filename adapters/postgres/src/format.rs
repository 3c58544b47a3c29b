//! The schema and its version: created in the host's schema name on first
//! open, its version recorded in the schema's `meta` table, and refused
//! when it is newer than this release knows. Creating and upgrading run in
//! one transaction under an advisory lock, so processes opening one
//! database at once migrate it once.

use tokio_postgres::Client;
use userstate::{Error, Result};

use crate::error::from_postgres;

/// The schema version this release writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// The tables of version 1, in schema `{schema}`.
///
/// - `users`: one row per user (its snapshot as the adapter's record),
///   indexed by organisation and state, and by organisation for the users
///   that exist.
/// - `events`: every event, keyed by (user, sequence), with its feed
///   `position`, unique.
/// - `feed`: one row holding the last position; a writing transaction
///   locks it to take positions and holds the lock to its commit, so
///   positions become visible in the order they were taken.
/// - `policies`: the lockout policies by organisation (`''`: the default).
const VERSION_1: &str = "
CREATE TABLE {schema}.users (
    id       text   NOT NULL PRIMARY KEY,
    org      text   NOT NULL,
    state    text   NOT NULL,
    sequence bigint NOT NULL CHECK (sequence > 0),
    snapshot text   NOT NULL
);
CREATE INDEX users_by_org_state ON {schema}.users (org, state, id);
CREATE INDEX users_by_org ON {schema}.users (org, id) WHERE state <> 'deleted';
CREATE TABLE {schema}.events (
    user_id    text   NOT NULL,
    sequence   bigint NOT NULL CHECK (sequence > 0),
    org        text   NOT NULL,
    event_type text   NOT NULL,
    created_at bigint NOT NULL,
    creator    text   NOT NULL,
    payload    text   NOT NULL,
    position   bigint NOT NULL UNIQUE,
    PRIMARY KEY (user_id, sequence)
);
CREATE TABLE {schema}.feed (
    only_row boolean NOT NULL PRIMARY KEY DEFAULT true CHECK (only_row),
    last     bigint  NOT NULL
);
INSERT INTO {schema}.feed (last) VALUES (0);
CREATE TABLE {schema}.policies (
    org    text NOT NULL PRIMARY KEY,
    record text NOT NULL
);
";

/// Creates the schema in `schema` if it is not there, or checks its
/// version; returns the version found or created.
///
/// # Errors
/// Corrupt for a schema of a newer version, or tables without a version;
/// Unavailable when the server cannot be reached; Internal for other
/// failures (the transaction is rolled back: nothing is half created).
pub(crate) async fn migrate(client: &Client, schema: &str) -> Result<i64> {
    client.batch_execute("BEGIN").await.map_err(from_postgres)?;
    match migrate_in_transaction(client, schema).await {
        Ok(version) => {
            client
                .batch_execute("COMMIT")
                .await
                .map_err(from_postgres)?;
            Ok(version)
        }
        Err(error) => {
            // The error says what went wrong, whether or not this reaches
            // the server (a connection that is gone rolls back anyway).
            let _ = client.batch_execute("ROLLBACK").await;
            Err(error)
        }
    }
}

async fn migrate_in_transaction(client: &Client, schema: &str) -> Result<i64> {
    let quoted = quote(schema)?;
    // Other processes opening the same database wait here for this one.
    client
        .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&schema])
        .await
        .map_err(from_postgres)?;
    client
        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
        .await
        .map_err(from_postgres)?;
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .await
        .map_err(from_postgres)?
        .get(0);
    if tables == 0 {
        client
            .batch_execute(&format!(
                "CREATE TABLE {quoted}.meta (key text NOT NULL PRIMARY KEY, value bigint NOT NULL);
                 {}
                 INSERT INTO {quoted}.meta (key, value) VALUES ('schema_version', {SCHEMA_VERSION});",
                VERSION_1.replace("{schema}", &quoted)
            ))
            .await
            .map_err(from_postgres)?;
        return Ok(SCHEMA_VERSION);
    }
    // A missing `meta` table fails the statement, which ends the
    // transaction: the caller rolls it back.
    let found = client
        .query_opt(
            &format!("SELECT value FROM {quoted}.meta WHERE key = 'schema_version'"),
            &[],
        )
        .await
        .map_err(|_| no_version(schema))?
        .ok_or_else(|| no_version(schema))?;
    let version: i64 = found.get(0);
    if version > SCHEMA_VERSION {
        return Err(Error::corrupt(format!(
            "schema {schema} is of version {version}, newer than this release reads \
             ({SCHEMA_VERSION}): use a newer userstate-postgres"
        )));
    }
    if version < 1 {
        return Err(Error::corrupt(format!(
            "schema {schema} records an unknown version {version}"
        )));
    }
    Ok(version)
}

fn no_version(schema: &str) -> Error {
    Error::corrupt(format!(
        "schema {schema} holds tables but no userstate schema version: another \
         application's schema, or one of another library; pick another schema name"
    ))
}

/// `schema` as a quoted identifier.
///
/// # Errors
/// InvalidArgument for an empty name, a name over PostgreSQL's 63 bytes, or
/// one with characters other than ASCII letters, digits and `_`.
pub(crate) fn quote(schema: &str) -> Result<String> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(Error::new(
            userstate::ErrorKind::InvalidArgument,
            userstate::ids::INVALID_NAME,
            "a schema name is 1 to 63 ASCII letters, digits or underscores",
        ));
    }
    Ok(format!("\"{schema}\""))
}
