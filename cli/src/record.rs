//! The export format: JSON Lines, one record per line, in this order:
//!
//! ```text
//! {"kind":"userstate-export","version":1}
//! {"kind":"policy","org":null,"policy":{"maxPasswordAttempts":5,...,"changedBy":"root","changedAt":1718261077424}}
//! {"kind":"policy","org":"acme","policy":{...}}
//! {"kind":"event","position":1,"user":"alice","org":"acme","sequence":1,"createdAt":1718261077424,
//!  "creator":"admin","type":"user.added","payload":{"state":"active"}}
//! ...
//! {"kind":"end","policies":2,"events":5}
//! ```
//!
//! Policies come first (the instance default, then each organisation's in
//! order), then every event in feed order, removed users' included, then a
//! count of both, so a cut-off file is told from a whole one. Times are
//! milliseconds since the Unix epoch; payloads and policies are the
//! records the storage adapters store ([`userstate::storage::json`]).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use userstate::storage::json;
use userstate::{
    Error, ErrorKind, Event, FeedEvent, OrgId, Result, StoredPolicy, Timestamp, UserId,
};

/// The format's name: the kind of the first line.
const FORMAT: &str = "userstate-export";
/// The format's version, in the first line.
pub const VERSION: u32 = 1;

/// The error id of an export that cannot be read or does not fit the
/// database it is read into.
pub const INVALID_EXPORT: &str = "USER-ARG-EXPORT";

/// InvalidArgument ([`INVALID_EXPORT`]) saying why.
pub fn invalid(why: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, INVALID_EXPORT, why.into())
}

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The first line: format and version.
    Header,
    /// A stored lockout policy (`org: None`: the instance default).
    Policy(Option<OrgId>, StoredPolicy),
    /// An event at its position in the source's feed.
    Event(FeedEvent),
    /// The last line: how many policies and events came before.
    End {
        /// Policy lines.
        policies: u64,
        /// Event lines.
        events: u64,
    },
}

/// A line as written.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Line<'a> {
    #[serde(rename = "userstate-export")]
    Header {
        version: u32,
    },
    Policy {
        org: Option<&'a str>,
        policy: &'a RawValue,
    },
    #[serde(rename_all = "camelCase")]
    Event {
        position: u64,
        user: &'a str,
        org: &'a str,
        sequence: u64,
        created_at: i64,
        creator: &'a str,
        #[serde(rename = "type")]
        event_type: &'a str,
        payload: &'a RawValue,
    },
    End {
        policies: u64,
        events: u64,
    },
}

/// A line as read: every field of every kind, the kind telling which
/// must be there (a tagged enum cannot borrow the raw payload).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Read<'a> {
    #[serde(borrow)]
    kind: Cow<'a, str>,
    version: Option<u32>,
    #[serde(borrow)]
    org: Option<Cow<'a, str>>,
    #[serde(borrow)]
    policy: Option<&'a RawValue>,
    position: Option<u64>,
    #[serde(borrow)]
    user: Option<Cow<'a, str>>,
    sequence: Option<u64>,
    created_at: Option<i64>,
    #[serde(borrow)]
    creator: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Option<&'a RawValue>,
    policies: Option<u64>,
    events: Option<u64>,
}

impl Record {
    /// The record as one line of JSON, without the newline.
    ///
    /// # Errors
    /// Internal if a payload or policy cannot be encoded.
    pub fn encode(&self) -> Result<String> {
        let raw = |text: String| {
            RawValue::from_string(text)
                .map_err(|e| Error::internal(format!("an encoded record is no JSON: {e}")))
        };
        let text = match self {
            Record::Header => to_line(&Line::Header { version: VERSION }),
            Record::Policy(org, policy) => {
                let policy = raw(json::encode_policy(policy)?)?;
                to_line(&Line::Policy {
                    org: org.as_ref().map(OrgId::as_str),
                    policy: &policy,
                })
            }
            Record::Event(FeedEvent { position, event }) => {
                let (event_type, payload) = json::encode_payload(&event.payload)?;
                let payload = raw(payload)?;
                to_line(&Line::Event {
                    position: *position,
                    user: event.user_id.as_str(),
                    org: event.org_id.as_str(),
                    sequence: event.sequence,
                    created_at: event.created_at.unix_millis(),
                    creator: event.creator.as_str(),
                    event_type,
                    payload: &payload,
                })
            }
            Record::End { policies, events } => to_line(&Line::End {
                policies: *policies,
                events: *events,
            }),
        };
        text
    }

    /// The record a line holds.
    ///
    /// # Errors
    /// InvalidArgument ([`INVALID_EXPORT`]) naming what is wrong with it.
    pub fn decode(line: &str) -> Result<Record> {
        let read: Read<'_> =
            serde_json::from_str(line).map_err(|e| invalid(format!("not a record: {e}")))?;
        let checked = |e: Error| invalid(e.message().to_owned());
        let kind = read.kind.as_ref();
        let missing = |field: &str| invalid(format!("a {kind} record without its {field}"));
        Ok(match kind {
            FORMAT => match read.version.ok_or_else(|| missing("version"))? {
                VERSION => Record::Header,
                version => {
                    return Err(invalid(format!(
                        "format version {version}; this userstate reads version {VERSION}"
                    )))
                }
            },
            "policy" => Record::Policy(
                read.org.map(OrgId::new).transpose().map_err(checked)?,
                json::decode_policy(read.policy.ok_or_else(|| missing("policy"))?.get())
                    .map_err(checked)?,
            ),
            "event" => {
                let text = |field: Option<Cow<'_, str>>, name: &str| {
                    field.map(Cow::into_owned).ok_or_else(|| missing(name))
                };
                let event_type = text(read.event_type, "type")?;
                let payload = read.payload.ok_or_else(|| missing("payload"))?;
                Record::Event(FeedEvent {
                    position: read.position.ok_or_else(|| missing("position"))?,
                    event: Event {
                        user_id: UserId::new(text(read.user, "user")?).map_err(checked)?,
                        org_id: OrgId::new(text(read.org, "org")?).map_err(checked)?,
                        sequence: read.sequence.ok_or_else(|| missing("sequence"))?,
                        created_at: Timestamp::from_unix_millis(
                            read.created_at.ok_or_else(|| missing("createdAt"))?,
                        )
                        .map_err(checked)?,
                        creator: UserId::new(text(read.creator, "creator")?).map_err(checked)?,
                        payload: json::decode_payload(&event_type, payload.get())
                            .map_err(checked)?,
                    },
                })
            }
            "end" => Record::End {
                policies: read.policies.ok_or_else(|| missing("policies"))?,
                events: read.events.ok_or_else(|| missing("events"))?,
            },
            other => return Err(invalid(format!("an unknown kind of record: {other:?}"))),
        })
    }
}

fn to_line(line: &Line<'_>) -> Result<String> {
    serde_json::to_string(line)
        .map_err(|e| Error::internal(format!("a record cannot be encoded: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use userstate::{EventPayload, InitialState, LockoutPolicy};

    #[test]
    fn every_record_reads_back_as_written() {
        let event = Event {
            user_id: UserId::new("operator:ann").unwrap(),
            org_id: OrgId::new("acme \"east\"").unwrap(),
            sequence: 1,
            created_at: Timestamp::from_unix_millis(1_718_261_077_424).unwrap(),
            creator: UserId::new("admin").unwrap(),
            payload: EventPayload::Added {
                state: InitialState::Active,
            },
        };
        let policy = StoredPolicy {
            policy: LockoutPolicy::default(),
            changed_by: UserId::new("root").unwrap(),
            changed_at: Timestamp::from_unix_millis(5).unwrap(),
        };
        let records = [
            Record::Header,
            Record::Policy(None, policy.clone()),
            Record::Policy(Some(OrgId::new("acme").unwrap()), policy),
            Record::Event(FeedEvent { position: 7, event }),
            Record::End {
                policies: 2,
                events: 1,
            },
        ];
        for record in records {
            let line = record.encode().unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(Record::decode(&line).unwrap(), record, "{line}");
        }
        assert_eq!(
            Record::Header.encode().unwrap(),
            r#"{"kind":"userstate-export","version":1}"#
        );
    }

    #[test]
    fn damaged_lines_are_refused_with_a_reason() {
        for line in [
            "",
            "{",
            r#"{"kind":"userstate-export","version":2}"#,
            r#"{"kind":"event","position":1}"#,
            r#"{"kind":"event","position":1,"user":"","org":"acme","sequence":1,"createdAt":0,"creator":"a","type":"user.added","payload":{"state":"active"}}"#,
            r#"{"kind":"event","position":1,"user":"u","org":"acme","sequence":1,"createdAt":0,"creator":"a","type":"user.exploded","payload":{}}"#,
            r#"{"kind":"policy","org":"acme","policy":{"bogus":1}}"#,
        ] {
            let e = Record::decode(line).unwrap_err();
            assert_eq!(
                e.kind(),
                userstate::ErrorKind::InvalidArgument,
                "{line}: {e}"
            );
        }
    }
}
