//! Any bytes from a peer: decoding never panics, and whatever decodes re-encodes to a frame
//! that decodes to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_spec::wire;

fuzz_target!(|frame: &[u8]| {
    if let Ok(msg) = wire::decode(frame) {
        let again = wire::encode(&msg);
        assert_eq!(wire::decode(&again).as_ref(), Ok(&msg));
    }
});
