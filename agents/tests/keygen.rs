//! `muster keygen` as a user runs it: the real binary, a scratch home directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn muster(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_muster"))
        .args(args)
        .current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("USER", "alice")
        .output()
        .unwrap()
}

#[test]
fn keygen_writes_a_private_key_once_and_prints_what_to_trust() {
    let home = tempfile::tempdir().unwrap();
    let out = muster(home.path(), &["keygen"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let key = home.path().join(".config/muster/answer.nk");
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(text.contains("[responders.principals.alice]"), "{text}");
    assert!(text.contains("speaks_for = [\"cli\"]"), "{text}");
    assert!(text.contains("[responders.people.alice]\ncli = [\"alice\"]"), "{text}");
    assert!(!text.contains("answer_key ="), "the default path needs no setting: {text}");
    assert!(!text.contains(std::fs::read_to_string(&key).unwrap().trim()), "the seed is never printed");

    let again = muster(home.path(), &["keygen"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let json = muster(home.path(), &["keygen", "--name", "bridge", "--out", "keys/bridge.nk", "--json"]);
    assert!(json.status.success(), "{}", String::from_utf8_lossy(&json.stderr));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["file"], "keys/bridge.nk");
    let public_key = value["public_key"].as_str().unwrap();
    assert!(public_key.starts_with('U') && public_key.len() == 56, "{public_key}");
    assert!(std::fs::read_to_string(home.path().join("keys/bridge.nk")).unwrap().starts_with("SU"));

    let bad = muster(home.path(), &["keygen", "--name", "no spaces", "--out", "x.nk"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(!home.path().join("x.nk").exists());
}
