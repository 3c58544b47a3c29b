//! The statements that read and write the tables of [`crate::format`], in
//! the schema the host names: built once per repository, prepared once per
//! connection.
//!
//! Writes take many users and events in one statement (arrays unnested),
//! so a batch of commands costs the same few round trips as one command.

/// Every statement of the adapter, in one schema.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    /// The schema's plain name.
    pub(crate) schema: String,
    /// The schema's name as a quoted identifier.
    pub(crate) quoted: String,
    /// Opens a write transaction and takes the feed's row lock, held to
    /// its commit: `$1` is `on` or `off` (synchronous commit), `$2` the
    /// idle-in-transaction bound in milliseconds. Simple-query text: the
    /// settings cannot be bound.
    begin_write: String,
    /// Wakes the schema's feed listeners at commit: `$1` the channel, `$2`
    /// the last position written.
    pub(crate) notify: String,
    pub(crate) load_many: String,
    pub(crate) history: String,
    pub(crate) list_in_state: String,
    pub(crate) list_existing: String,
    pub(crate) count_in_state: String,
    pub(crate) count_existing: String,
    pub(crate) organisations: String,
    pub(crate) policy_organisations: String,
    pub(crate) feed: String,
    pub(crate) last_position: String,
    pub(crate) policies: String,
    pub(crate) set_policy: String,
    pub(crate) write_users: String,
    pub(crate) write_events: String,
    /// [`Statements::write_users`] for one user: cheaper for the server.
    pub(crate) write_user: String,
    /// [`Statements::write_events`] for one event.
    pub(crate) write_event: String,
    pub(crate) advance_feed: String,
    pub(crate) all_users: String,
    pub(crate) all_events: String,
    /// The NOTIFY channel of the schema's feed.
    pub(crate) channel: String,
}

impl Statements {
    /// The statements on the tables of `quoted`, a quoted schema name, whose
    /// plain name is `schema`.
    pub(crate) fn new(quoted: &str, schema: &str) -> Self {
        let s = quoted;
        let user_columns = "id, org, state, sequence, snapshot";
        let event_columns =
            "user_id, sequence, org, event_type, created_at, creator, payload, position";
        let channel = format!("userstate_feed_{schema}");
        Statements {
            schema: schema.to_owned(),
            quoted: quoted.to_owned(),
            begin_write: format!(
                "BEGIN; SET LOCAL synchronous_commit TO {{sync}}; \
                 SET LOCAL idle_in_transaction_session_timeout TO {{idle}}; \
                 SELECT last FROM {s}.feed FOR UPDATE"
            ),
            notify: "SELECT pg_notify($1, $2)".to_owned(),
            // Every id asked for, with its row if it has one, and else the
            // organisation of an event of it (a user with events but no row
            // lost its row).
            load_many: format!(
                "SELECT w.id, u.org, u.state, u.sequence, u.snapshot, \
                        CASE WHEN u.id IS NULL THEN \
                            (SELECT e.org FROM {s}.events e WHERE e.user_id = w.id LIMIT 1) END \
                 FROM unnest($1::text[]) AS w (id) LEFT JOIN {s}.users u ON u.id = w.id"
            ),
            history: format!(
                "SELECT {event_columns} FROM {s}.events \
                 WHERE user_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3"
            ),
            list_in_state: format!(
                "SELECT {user_columns} FROM {s}.users \
                 WHERE org = $1 AND state = $2 AND id > $3 ORDER BY id LIMIT $4"
            ),
            list_existing: format!(
                "SELECT {user_columns} FROM {s}.users \
                 WHERE org = $1 AND state <> 'deleted' AND id > $2 ORDER BY id LIMIT $3"
            ),
            count_in_state: format!(
                "SELECT count(*) FROM {s}.users WHERE org = $1 AND state = $2"
            ),
            count_existing: format!(
                "SELECT count(*) FROM {s}.users WHERE org = $1 AND state <> 'deleted'"
            ),
            // A loose index scan: one index probe per organisation, not a
            // scan of every user.
            organisations: format!(
                "WITH RECURSIVE orgs (org) AS ( \
                     (SELECT org FROM {s}.users WHERE org > $1 ORDER BY org LIMIT 1) \
                     UNION ALL \
                     SELECT (SELECT u.org FROM {s}.users u WHERE u.org > orgs.org ORDER BY u.org LIMIT 1) \
                     FROM orgs WHERE orgs.org IS NOT NULL) \
                 SELECT org FROM orgs WHERE org IS NOT NULL LIMIT $2"
            ),
            // The instance default's key, the empty text, sorts first.
            policy_organisations: format!(
                "SELECT org FROM {s}.policies WHERE org > $1 ORDER BY org LIMIT $2"
            ),
            feed: format!(
                "SELECT {event_columns} FROM {s}.events \
                 WHERE position > $1 ORDER BY position LIMIT $2"
            ),
            last_position: format!("SELECT last FROM {s}.feed"),
            policies: format!("SELECT org, record FROM {s}.policies WHERE org = ANY($1)"),
            set_policy: format!(
                "INSERT INTO {s}.policies (org, record) VALUES ($1, $2) \
                 ON CONFLICT (org) DO UPDATE SET record = excluded.record"
            ),
            // Each user's row, written only where it is still at the
            // sequence its commands were decided on (0: no row): fewer rows
            // than users means another writer got there first.
            write_users: format!(
                "WITH input AS ( \
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], \
                                          $5::text[], $6::bigint[]) \
                     AS t (id, org, state, sequence, snapshot, expected)) \
                 INSERT INTO {s}.users AS u ({user_columns}) \
                 SELECT {user_columns} FROM input \
                 ON CONFLICT (id) DO UPDATE \
                 SET org = excluded.org, state = excluded.state, \
                     sequence = excluded.sequence, snapshot = excluded.snapshot \
                 WHERE u.sequence = (SELECT expected FROM input WHERE input.id = excluded.id)"
            ),
            write_events: format!(
                "INSERT INTO {s}.events ({event_columns}) \
                 SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], \
                                      $5::bigint[], $6::text[], $7::text[], $8::bigint[])"
            ),
            write_user: format!(
                "INSERT INTO {s}.users AS u ({user_columns}) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (id) DO UPDATE \
                 SET org = excluded.org, state = excluded.state, \
                     sequence = excluded.sequence, snapshot = excluded.snapshot \
                 WHERE u.sequence = $6"
            ),
            write_event: format!(
                "INSERT INTO {s}.events ({event_columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            advance_feed: format!("UPDATE {s}.feed SET last = $1 WHERE last = $2"),
            all_users: format!(
                "SELECT {user_columns} FROM {s}.users WHERE id > $1 ORDER BY id LIMIT $2"
            ),
            all_events: format!(
                "SELECT {event_columns} FROM {s}.events \
                 WHERE user_id = ANY($1) ORDER BY user_id, sequence"
            ),
            channel,
        }
    }

    /// The statement that opens a write transaction with these settings.
    pub(crate) fn begin_write(&self, synchronous: bool, idle_millis: u128) -> String {
        self.begin_write
            .replace("{sync}", if synchronous { "on" } else { "off" })
            .replace("{idle}", &idle_millis.max(1).to_string())
    }
}
