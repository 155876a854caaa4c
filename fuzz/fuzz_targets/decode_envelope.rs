//! Fuzzes `muster_schemas::codec::decode`, the decoder every bus message goes through.
//!
//! Properties checked:
//! 1. `decode` never panics, whatever the bytes (it must return a `DecodeError` instead).
//! 2. Round trip: when `decode` accepts the bytes, `encode` of the decoded envelope succeeds,
//!    and decoding that encoding yields an envelope equal (`==`) to the first one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_schemas::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = decode(data) else { return };
    let bytes = match encode(&envelope) {
        Ok(bytes) => bytes,
        Err(err) => panic!("decoded envelope does not re-encode: {err}\n{envelope:#?}"),
    };
    match decode(&bytes) {
        Ok(again) => assert_eq!(envelope, again, "envelope changed across encode/decode"),
        Err(err) => panic!("re-encoded envelope does not decode: {err}\n{envelope:#?}"),
    }
});
