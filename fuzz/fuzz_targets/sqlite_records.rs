//! Arbitrary column values in the SQLite adapter's `users` and `events`
//! rows: decoding must give a value or a typed error, never panic, and a
//! decoded snapshot must agree with its row.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use userstate::{ErrorKind, UserId};
use userstate_sqlite::fuzzing::{decode_event, decode_user};

#[derive(Debug, Arbitrary)]
struct Rows<'a> {
    id: &'a str,
    org: &'a str,
    state: &'a str,
    sequence: i64,
    snapshot: &'a str,
    event_sequence: i64,
    event_type: &'a str,
    created_at: i64,
    creator: &'a str,
    payload: &'a str,
}

fuzz_target!(|rows: Rows<'_>| {
    match decode_user(rows.id, rows.org, rows.state, rows.sequence, rows.snapshot) {
        Ok(user) => {
            assert_eq!(user.id.as_str(), rows.id);
            assert_eq!(user.org_id.as_str(), rows.org);
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Internal),
    }
    if let Ok(user) = UserId::new(rows.id) {
        if let Err(e) = decode_event(
            &user,
            rows.event_sequence,
            rows.org,
            rows.event_type,
            rows.created_at,
            rows.creator,
            rows.payload,
        ) {
            assert_eq!(e.kind(), ErrorKind::Internal);
        }
    }
});
