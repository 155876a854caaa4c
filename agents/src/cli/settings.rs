//! The daemon's settings: defaults, then `muster.toml` (or `--config FILE`), then `MUSTER_*`
//! environment variables (`MUSTER_NATS_URL`, `MUSTER_LEASE`, ...), then command-line flags.

use crate::authority::ResponderMap;
use crate::authority::map::valid_principal_name;
use muster_schemas::protocol::DurationSpec;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every setting, with its default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// NATS URL; when unset, `muster run` uses the embedded memory bus.
    pub nats_url: Option<String>,
    /// Subject, stream and bucket prefix.
    pub prefix: String,
    /// Work lease (ack wait); agents extend it every third of this while a step runs.
    pub lease: DurationSpec,
    /// Deliveries of one work message before it is dead-lettered.
    pub max_deliver: u32,
    /// Steps one agent runs at once.
    pub agent_concurrency: usize,
    /// Agent heartbeat interval.
    pub heartbeat: DurationSpec,
    /// How long running steps may finish on SIGTERM before they are released.
    pub shutdown_grace: DurationSpec,
    /// Where the orchestrator loads protocols from.
    pub scenarios: PathBuf,
    /// How long the orchestrator's leadership lease lasts unrenewed; a standby takes over after it.
    pub leader_ttl: DurationSpec,
    /// The orchestrator's `[responders]` table: the people who answer prompts and the keys it
    /// believes their answers from. Empty means no answer is ever accepted. See docs/answers.md.
    pub responders: ResponderMap,
    /// The file holding this CLI user's nkey seed, which signs their answers (`muster keygen`
    /// writes it). Default: `$XDG_CONFIG_HOME/muster/answer.nk`, else `~/.config/muster/answer.nk`.
    pub answer_key: Option<PathBuf>,
    /// The principal name this CLI user signs as: their name in the orchestrator's responder map.
    /// Default: `$USER`.
    pub principal: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            nats_url: None,
            prefix: "muster".into(),
            lease: DurationSpec(Duration::from_secs(30)),
            max_deliver: 5,
            agent_concurrency: 4,
            heartbeat: DurationSpec(Duration::from_secs(5)),
            shutdown_grace: DurationSpec(Duration::from_secs(10)),
            scenarios: PathBuf::from("scenarios"),
            leader_ttl: DurationSpec(Duration::from_secs(10)),
            responders: ResponderMap::default(),
            answer_key: None,
            principal: None,
        }
    }
}

impl Settings {
    /// Loads the layers. `explicit` names a file that must exist; otherwise `muster.toml` in
    /// the current directory is read if present.
    pub fn load(explicit: Option<&Path>) -> Result<Self, String> {
        let file = match explicit {
            Some(path) => config::File::from(path).required(true),
            None => config::File::with_name("muster.toml").required(false),
        };
        let settings: Settings = config::Config::builder()
            .add_source(file)
            .add_source(
                config::Environment::with_prefix("MUSTER").prefix_separator("_").separator("__").try_parsing(true),
            )
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| format!("invalid configuration: {e}"))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Refuses settings that cannot work, before anything starts.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease.0 < Duration::from_secs(1) {
            return Err("lease must be at least 1s".into());
        }
        if self.leader_ttl.0 < Duration::from_secs(2) {
            return Err("leader_ttl must be at least 2s".into());
        }
        if self.max_deliver == 0 {
            return Err("max_deliver must be at least 1".into());
        }
        if self.agent_concurrency == 0 {
            return Err("agent_concurrency must be at least 1".into());
        }
        if self.prefix.is_empty() || !self.prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("prefix `{}` must be letters, digits or `_`", self.prefix));
        }
        if let Some(name) = &self.principal
            && !valid_principal_name(name)
        {
            return Err(format!("principal `{name}` must be 1-64 letters, digits, `-` or `_`"));
        }
        if let Err(problems) = self.responders.validate() {
            let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
            return Err(format!("invalid [responders] table:\n{}", lines.join("\n")));
        }
        Ok(())
    }

    /// Where this CLI user's answer key lives: `answer_key`, else the per-user default. `None`
    /// when neither is set nor derivable (no `$XDG_CONFIG_HOME` or `$HOME`).
    pub fn answer_key_path(&self) -> Option<PathBuf> {
        if let Some(path) = &self.answer_key {
            return Some(path.clone());
        }
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".config")))?;
        Some(config_home.join("muster").join("answer.nk"))
    }

    /// The principal this CLI user signs as: `principal`, else `$USER`.
    pub fn principal_name(&self) -> Option<String> {
        self.principal.clone().or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_schemas::answer::{Channel, new_key_pair};

    fn load(text: &str) -> Result<Settings, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("muster.toml");
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        Settings::load(Some(&path))
    }

    #[test]
    fn the_responders_table_loads_people_and_principals() {
        let (_, key) = new_key_pair().unwrap();
        let settings = load(&format!(
            r#"
            answer_key = "/keys/alice.nk"
            principal = "alice"
            [responders.people.Alice]
            groups = ["sre-oncall"]
            matrix = ["@alice:example.org"]
            cli = ["alice"]
            [responders.principals.bridge]
            public_key = "{key}"
            speaks_for = ["matrix", "slack", "http"]
            "#
        ))
        .unwrap();
        let alice = &settings.responders.people["Alice"];
        assert_eq!(alice.groups, ["sre-oncall"]);
        assert_eq!(alice.matrix, ["@alice:example.org"]);
        assert!(alice.slack.is_empty());
        assert_eq!(
            settings.responders.principals["bridge"].speaks_for,
            [Channel::Matrix, Channel::Slack, Channel::Http]
        );
        assert_eq!(settings.answer_key_path(), Some(PathBuf::from("/keys/alice.nk")));
        assert_eq!(settings.principal_name().as_deref(), Some("alice"));
        assert!(Settings::default().responders.people.is_empty(), "nobody by default");
    }

    #[test]
    fn a_bad_responders_table_is_refused_naming_the_entry() {
        let bad_key = load("[responders.principals.bridge]\npublic_key = \"UNOPE\"\nspeaks_for = [\"matrix\"]\n");
        let err = bad_key.unwrap_err();
        assert!(err.contains("responders.principals.bridge.public_key"), "{err}");

        let typo = load("[responders.principals.bridge]\npublic_key = \"U\"\nspeak_for = [\"matrix\"]\n");
        assert!(typo.unwrap_err().contains("speak_for"));

        let channel = load("[responders.people.a]\nirc = [\"a\"]\n");
        assert!(channel.unwrap_err().contains("irc"));

        let shared = load("[responders.people.a]\ncli = [\"x\"]\n[responders.people.b]\ncli = [\"x\"]\n");
        let err = shared.unwrap_err();
        assert!(err.contains("responders.people.a") && err.contains("responders.people.b"), "{err}");

        assert!(load("principal = \"a.b\"\n").unwrap_err().contains("principal `a.b`"));
    }
}
