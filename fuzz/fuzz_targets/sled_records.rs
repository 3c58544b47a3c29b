//! Arbitrary bytes as the sled adapter's stored records: decoding must give
//! a value or a typed error, never panic, and a decoded snapshot must
//! survive an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userstate::ErrorKind;
use userstate_sled::fuzzing::{decode_event, decode_user, encode_user};

fuzz_target!(|data: &[u8]| {
    match decode_user(data) {
        Ok(user) => {
            let again = decode_user(&encode_user(&user).expect("encodes")).expect("decodes");
            assert_eq!(again, user);
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::Internal),
    }
    if let Err(e) = decode_event(data) {
        assert_eq!(e.kind(), ErrorKind::Internal);
    }
});
