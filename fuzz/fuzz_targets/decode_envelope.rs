//! Fuzzes `muster_schemas::codec::decode`, the decoder every bus message goes through.
//!
//! Properties checked:
//! 1. `decode` never panics, whatever the bytes (it must return a `DecodeError` instead).
//! 2. Round trip: when `decode` accepts the bytes, `encode` of the decoded envelope succeeds,
//!    that encoding decodes again, and encoding *that* gives the same bytes — the codec is
//!    stable. (Bytes, not `==`: a NaN in a protocol's numbers is equal to nothing, itself
//!    included; `fuzz/regressions/decode_envelope/` keeps the input that showed it.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_schemas::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = decode(data) else { return };
    let bytes = match encode(&envelope) {
        Ok(bytes) => bytes,
        Err(err) => panic!("decoded envelope does not re-encode: {err}\n{envelope:#?}"),
    };
    match decode(&bytes).map(|again| encode(&again)) {
        Ok(Ok(again)) => assert_eq!(bytes, again, "encoding is not stable across decode/encode"),
        Ok(Err(err)) => panic!("re-decoded envelope does not re-encode: {err}"),
        Err(err) => panic!("re-encoded envelope does not decode: {err}\n{envelope:#?}"),
    }
});
