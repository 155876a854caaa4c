//! Fuzzes `muster_schemas::protocol::parse_protocol`, the scenario-file loader.
//!
//! Properties checked: for any UTF-8 text (other inputs are skipped), `parse_protocol` never
//! panics — bad YAML, wrong shapes and semantic problems must all come back as diagnostics —
//! and when it accepts a protocol, `resolve_inputs` with no caller inputs never panics either
//! (it may return an error, e.g. for a missing required input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use muster_schemas::protocol::{parse_protocol, resolve_inputs};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(protocol) = parse_protocol("fuzz.yaml", text) {
        let _ = resolve_inputs(&protocol, &Default::default());
    }
});
