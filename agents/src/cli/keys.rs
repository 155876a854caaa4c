//! The CLI user's answer key: `muster keygen`, and signing answers with it.
//!
//! On the CLI a person is their own principal: they hold an nkey seed in a private file, the
//! orchestrator's responder map holds the public key under their name, and every answer they
//! send is signed for `Identity { channel: cli, id: <their principal name> }`.

use super::exit;
use super::settings::Settings;
use crate::authority::map::valid_principal_name;
use crate::authority::new_nonce;
use jiff::{SignedDuration, Timestamp};
use muster_schemas::answer::{AnswerAction, AnswerBody, Channel, Identity, SignedAnswer, new_key_pair};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// How long a CLI answer stays valid: enough for a slow network, far below
/// [`crate::authority::MAX_VALIDITY`].
pub const CLI_ANSWER_VALIDITY: SignedDuration = SignedDuration::from_mins(5);

/// Signs an answer as this CLI user, valid from now for [`CLI_ANSWER_VALIDITY`].
///
/// The errors are sentences for the user: a missing key file says to run `muster keygen`.
pub fn sign_cli_answer(
    settings: &Settings,
    run_id: Uuid,
    prompt: &str,
    action: AnswerAction,
    note: Option<String>,
) -> Result<SignedAnswer, String> {
    let principal = cli_principal(settings)?;
    let path = settings.answer_key_path().ok_or_else(|| {
        "no answer key: set `answer_key` in muster.toml (or HOME), then run `muster keygen`".to_owned()
    })?;
    let seed = read_seed(&path)?;
    let now = Timestamp::now();
    let body = AnswerBody {
        run_id,
        prompt: prompt.to_owned(),
        action,
        note,
        responder: Identity { channel: Channel::Cli, id: principal.clone() },
        nonce: new_nonce(),
        issued_at: now,
        expires_at: now + CLI_ANSWER_VALIDITY,
    };
    SignedAnswer::sign(&body, &principal, &seed)
        .map_err(|e| format!("cannot sign with the key in {}: {e}; run `muster keygen` for a new one", path.display()))
}

/// The principal name the CLI signs as, checked.
fn cli_principal(settings: &Settings) -> Result<String, String> {
    let name = settings
        .principal_name()
        .ok_or_else(|| "no principal name: set `principal` in muster.toml (or USER)".to_owned())?;
    if !valid_principal_name(&name) {
        return Err(format!(
            "principal `{name}` must be 1-64 letters, digits, `-` or `_`; set `principal` in muster.toml"
        ));
    }
    Ok(name)
}

/// Reads a seed file, refusing one others can read (like ssh does with private keys).
fn read_seed(path: &Path) -> Result<String, String> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "no answer key at {}: run `muster keygen` to create one, and have the orchestrator's operator add the public key it prints",
                path.display()
            ));
        }
        Err(e) => return Err(format!("cannot read the answer key {}: {e}", path.display())),
    };
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "the answer key {} is readable by others; run `chmod 600 {}` (or `muster keygen` for a new key if it leaked)",
            path.display(),
            path.display()
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("cannot read the answer key {}: {e}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// What `muster keygen` made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GeneratedKey {
    /// The nkey public key (`U…`) to put in the orchestrator's responder map.
    pub public_key: String,
    /// Where the seed was written.
    pub file: PathBuf,
}

/// Writes a fresh seed to `path` (mode 0600, parent directories 0700), never over an existing
/// file: overwriting would lock its owner out of every orchestrator that trusts the old key.
pub fn generate_key_file(path: &Path) -> Result<GeneratedKey, String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let (seed, public_key) = new_key_pair().map_err(|e| format!("cannot generate a key: {e}"))?;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} already exists; refusing to overwrite a key (choose another --out, or remove it first)",
                path.display()
            )
        } else {
            format!("cannot create {}: {e}", path.display())
        }
    })?;
    file.write_all(format!("{seed}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(GeneratedKey { public_key, file: path.to_owned() })
}

/// The `muster.toml` lines that make the orchestrator believe `name`'s CLI answers.
pub fn responder_snippet(name: &str, public_key: &str) -> String {
    format!(
        "[responders.principals.{name}]\npublic_key = \"{public_key}\"\nspeaks_for = [\"cli\"]\n\n\
         [responders.people.{name}]\ncli = [\"{name}\"]\ngroups = []\n"
    )
}

/// `muster keygen [--out FILE] [--name NAME] [--json]`.
pub fn keygen(settings: &Settings, out: Option<PathBuf>, name: Option<String>, json: bool) -> u8 {
    let name = match name.map(Ok).unwrap_or_else(|| cli_principal(settings)) {
        Ok(name) if valid_principal_name(&name) => name,
        Ok(name) => {
            eprintln!("error: name `{name}` must be 1-64 letters, digits, `-` or `_`");
            return exit::INVALID;
        }
        Err(err) => {
            eprintln!("error: {err}; or pass --name");
            return exit::INVALID;
        }
    };
    let Some(path) = out.or_else(|| settings.answer_key_path()) else {
        eprintln!("error: no place for the key: pass --out FILE or set `answer_key` in muster.toml");
        return exit::INVALID;
    };
    let generated = match generate_key_file(&path) {
        Ok(generated) => generated,
        Err(err) => {
            eprintln!("error: {err}");
            return exit::INVALID;
        }
    };
    if json {
        match serde_json::to_string(&generated) {
            Ok(text) => println!("{text}"),
            Err(err) => {
                eprintln!("error: {err}");
                return exit::INVALID;
            }
        }
        return exit::OK;
    }
    let file = generated.file.display();
    println!("Wrote the answer key of `{name}` to {file} (mode 0600; keep it private).");
    println!("Public key: {}", generated.public_key);
    println!();
    println!("Add this to the orchestrator's muster.toml (add groups as needed):");
    println!();
    print!("{}", responder_snippet(&name, &generated.public_key));
    let default_path = settings.answer_key.is_none() && settings.answer_key_path().as_deref() == Some(path.as_path());
    let default_name = settings.principal_name().as_deref() == Some(name.as_str());
    if !default_path || !default_name {
        println!();
        println!("And in your own muster.toml, where you run `muster answer`:");
        println!();
        if !default_path {
            println!("answer_key = \"{file}\"");
        }
        if !default_name {
            println!("principal = \"{name}\"");
        }
    }
    exit::OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::verify;

    fn settings(dir: &Path, name: &str) -> Settings {
        Settings {
            answer_key: Some(dir.join("keys").join("answer.nk")),
            principal: Some(name.into()),
            ..Settings::default()
        }
    }

    #[test]
    fn a_key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("answer.nk");
        let generated = generate_key_file(&path).unwrap();
        assert!(generated.public_key.starts_with('U'));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
        let seed = std::fs::read_to_string(&path).unwrap();
        assert!(seed.starts_with("SU"), "a user seed");
        let again = generate_key_file(&path).unwrap_err();
        assert!(again.contains("already exists"), "{again}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), seed, "untouched");
    }

    #[test]
    fn the_printed_snippet_makes_the_orchestrator_accept_the_cli_users_answers() {
        let dir = tempfile::tempdir().unwrap();
        let cli = settings(dir.path(), "alice");
        let generated = generate_key_file(cli.answer_key.as_deref().unwrap()).unwrap();
        let toml = dir.path().join("muster.toml");
        std::fs::write(&toml, responder_snippet("alice", &generated.public_key)).unwrap();
        let orchestrator = Settings::load(Some(&toml)).unwrap();
        assert_eq!(orchestrator.responders.principals["alice"].speaks_for, vec![Channel::Cli]);

        let run = Uuid::from_u128(1);
        let action = AnswerAction::Choose { option: "continue".into() };
        let signed = sign_cli_answer(&cli, run, "G-1", action.clone(), Some("looks fine".into())).unwrap();
        let verified = verify(&orchestrator.responders, &signed, Timestamp::now()).unwrap();
        assert_eq!((verified.person.as_str(), verified.principal.as_str()), ("alice", "alice"));
        assert_eq!(verified.body.action, action);
        assert_eq!(verified.body.responder, Identity { channel: Channel::Cli, id: "alice".into() });
        assert_eq!(verified.body.expires_at.duration_since(verified.body.issued_at), CLI_ANSWER_VALIDITY);

        // Two answers never share a nonce.
        let other = sign_cli_answer(&cli, run, "G-1", action, None).unwrap();
        let other = verify(&orchestrator.responders, &other, Timestamp::now()).unwrap();
        assert_ne!(other.body.nonce, verified.body.nonce);
    }

    #[test]
    fn a_missing_or_exposed_key_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let cli = settings(dir.path(), "alice");
        let missing = sign_cli_answer(&cli, Uuid::nil(), "G-1", AnswerAction::Confirm, None).unwrap_err();
        assert!(missing.contains("muster keygen"), "{missing}");

        let path = cli.answer_key.clone().unwrap();
        generate_key_file(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let exposed = sign_cli_answer(&cli, Uuid::nil(), "G-1", AnswerAction::Confirm, None).unwrap_err();
        assert!(exposed.contains("chmod 600"), "{exposed}");

        let bad_name = settings(dir.path(), "not a name");
        let refused = sign_cli_answer(&bad_name, Uuid::nil(), "G-1", AnswerAction::Confirm, None).unwrap_err();
        assert!(refused.contains("principal"), "{refused}");
    }
}
