//! The bad-input corpus: `scenarios/invalid/` holds one file per class of mistake, each opening
//! with a `# Mistake:` line. Every file must be refused, every diagnostic must point at a line,
//! and the full text of the diagnostics is pinned by a snapshot (`snapshots/`), so a change in
//! wording or location is a reviewed change (`cargo insta review`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use muster_schemas::protocol::parse_protocol;
use std::path::PathBuf;

fn corpus() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("scenarios/invalid exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_mistake_is_refused_with_located_diagnostics() {
    let files = corpus();
    assert!(files.len() >= 30, "the corpus covers every mistake class ({} files)", files.len());
    for file in files {
        let name = file.file_stem().and_then(|s| s.to_str()).expect("file name").to_owned();
        let text = std::fs::read_to_string(&file).expect("read");
        assert!(text.starts_with("# Mistake: "), "{name} must say which mistake it shows");
        let label = format!("{name}.yaml");
        let diagnostics = match parse_protocol(&label, &text) {
            Ok(_) => panic!("{name} must be refused"),
            Err(d) => d,
        };
        assert!(!diagnostics.is_empty());
        for d in &diagnostics {
            assert!(d.line > 0 && d.column > 0, "{name}: diagnostic without a location: {d}");
        }
        let rendered = diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        insta::assert_snapshot!(name, rendered);
    }
}
