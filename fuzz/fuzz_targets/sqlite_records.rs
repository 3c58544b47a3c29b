//! Arbitrary column values in the SQLite adapter's `users` and `events`
//! rows, of both formats: decoding must give a value or a typed error, never
//! panic; a decoded user must agree with its row and survive an
//! encode/decode round trip.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use userstate::{ErrorKind, UserId};
use userstate_sqlite::fuzzing::{decode_event, decode_user, decode_user_v1, encode_user};

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
    let r = &rows;
    match decode_user(r.id, r.org, r.state, r.sequence, r.snapshot) {
        Ok(user) => {
            assert_eq!((user.id.as_str(), user.org_id.as_str()), (r.id, r.org));
            let snapshot = encode_user(&user).expect("encodes");
            let again = decode_user(r.id, r.org, r.state, r.sequence, &snapshot).expect("decodes");
            assert_eq!(again, user);
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Internal),
    }
    match decode_user_v1(r.id, r.org, r.state, r.sequence, r.snapshot) {
        Ok(user) => assert_eq!((user.id.as_str(), user.org_id.as_str()), (r.id, r.org)),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Internal),
    }
    if let Ok(user) = UserId::new(r.id) {
        let event = decode_event(
            &user,
            r.event_sequence,
            r.org,
            r.event_type,
            r.created_at,
            r.creator,
            r.payload,
        );
        if let Err(e) = event {
            assert_eq!(e.kind(), ErrorKind::Internal);
        }
    }
});
