//! Arbitrary bytes as the sled adapter's stored records, of both formats:
//! decoding must give a value or a typed error, never panic, and a decoded
//! snapshot must survive an encode/decode round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use userstate::{ErrorKind, UserId};
use userstate_sled::fuzzing::{
    decode_event, decode_event_v1, decode_user, decode_user_v1, encode_user,
};

fuzz_target!(|data: &[u8]| {
    // Records repeat their key's id, so the fuzzer finds this one quickly.
    let id = UserId::new("alice").expect("a valid id");
    for decoded in [decode_user(&id, data), decode_user_v1(&id, data)] {
        match decoded {
            Ok(user) => {
                let again = decode_user(&id, &encode_user(&user).expect("encodes"))
                    .expect("decodes");
                assert_eq!(again, user);
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::Internal),
        }
    }
    for decoded in [decode_event(&id, 7, data), decode_event_v1(&id, 7, data)] {
        if let Err(e) = decoded {
            assert_eq!(e.kind(), ErrorKind::Internal);
        }
    }
});
