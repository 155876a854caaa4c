//! The complete examples in `scenarios/README.md` (YAML blocks that start with `id:`) must be
//! valid protocols, so the reference cannot drift from the language.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use muster_schemas::protocol::parse_protocol;

#[test]
fn complete_examples_in_the_reference_validate() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/README.md")).unwrap();
    let mut checked = 0;
    for block in readme.split("```yaml\n").skip(1) {
        let body = block.split("```").next().unwrap_or_default();
        if !body.starts_with("id:") {
            continue;
        }
        if let Err(diagnostics) = parse_protocol("README.md", body) {
            panic!(
                "README example does not validate:\n{}",
                diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
            );
        }
        checked += 1;
    }
    assert!(checked >= 1, "the reference has at least one complete example");
}
