//! Fuzzes `muster_schemas::codec::decode_value::<RunSnapshot>`, the decoder for the run state
//! the orchestrator reads back from the `muster_runs` KV bucket when it resumes.
//!
//! Property checked: decoding arbitrary bytes as a `RunSnapshot` never panics (it returns a
//! `DecodeError` instead).
#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_schemas::codec::decode_value;
use muster_schemas::run::RunSnapshot;

fuzz_target!(|data: &[u8]| {
    let _ = decode_value::<RunSnapshot>(data);
});
