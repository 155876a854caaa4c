//! The daemon's settings: defaults, then `muster.toml` (or `--config FILE`), then `MUSTER_*`
//! environment variables (`MUSTER_NATS_URL`, `MUSTER_LEASE`, ...), then command-line flags.

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
        Ok(())
    }
}
