//! What the bridge remembers across restarts, in the prompts bucket next to the orchestrator's
//! `n.<number>` entries (which it only reads):
//!
//! | key | value | written |
//! | --- | --- | --- |
//! | `bridge.matrix.since` | the `/sync` position after the last handled batch | after each batch |
//! | `bridge.matrix.thread.<prompt>` | event id of the prompt's thread root | once, on the first post |
//! | `bridge.notice.<prompt>` | JSON [`StoredNotice`]: the latest notice and where it went | after each post |
//!
//! Every write happens after the chat side effect it records, so a crash in between repeats
//! the side effect, and the deterministic transaction ids make the homeserver drop the repeat.

use super::Error;
use super::commands::PromptId;
use bytes::Bytes;
use muster_bus::{Bucket, Error as BusError, Kv};
use muster_schemas::message::{PromptKind, PromptNotice};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const SINCE: &str = "bridge.matrix.since";

/// How often a read-modify-write is retried when another writer got in between.
const CAS_ATTEMPTS: usize = 5;

/// A prompt as the orchestrator registered it (`n.<number>`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegisteredPrompt {
    /// The run that asks.
    pub run_id: Uuid,
    /// `escalation`, `form`, `approval`, `decision`, `manual`.
    pub kind: String,
    /// One line, for people.
    #[serde(default)]
    pub title: String,
}

impl RegisteredPrompt {
    /// Whether the registered kind is the one the typed prefix claims (`ESC-12` must be an
    /// escalation): a mistyped prefix must not answer another prompt.
    pub fn is_kind(&self, kind: PromptKind) -> bool {
        serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(|s| s == self.kind)).unwrap_or(false)
    }
}

/// The latest notice of a prompt and the chat event it became.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredNotice {
    /// The envelope it arrived in: a redelivery carries the same id.
    pub envelope_id: Uuid,
    /// The posted event.
    pub event_id: String,
    /// The notice.
    pub notice: PromptNotice,
}

/// The bridge's keys in the prompts bucket.
#[derive(Debug, Clone)]
pub struct State<K> {
    kv: K,
}

impl<K: Kv> State<K> {
    /// State over `kv`.
    pub fn new(kv: K) -> Self {
        Self { kv }
    }

    /// The saved `/sync` position, if any.
    pub async fn since(&self) -> Result<Option<String>, Error> {
        Ok(self.get(SINCE).await?.map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Saves the `/sync` position.
    pub async fn save_since(&self, token: &str) -> Result<(), Error> {
        self.put(SINCE, Bytes::copy_from_slice(token.as_bytes())).await
    }

    /// The orchestrator's entry for a prompt number.
    pub async fn registered(&self, prompt: PromptId) -> Result<Option<RegisteredPrompt>, Error> {
        match self.get(&prompt.registry_key()).await? {
            None => Ok(None),
            Some((bytes, _)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", prompt.registry_key()))),
        }
    }

    /// The event id of the prompt's thread root, once there is one.
    pub async fn thread_root(&self, prompt: PromptId) -> Result<Option<String>, Error> {
        Ok(self.get(&thread_key(prompt)).await?.map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Records `event_id` as the root unless one is already recorded; returns the root.
    pub async fn set_thread_root(&self, prompt: PromptId, event_id: &str) -> Result<String, Error> {
        let key = thread_key(prompt);
        match self.kv.kv_create(Bucket::Prompts, &key, Bytes::copy_from_slice(event_id.as_bytes())).await {
            Ok(_) => Ok(event_id.to_owned()),
            Err(BusError::AlreadyExists) => Ok(self.thread_root(prompt).await?.unwrap_or_else(|| event_id.to_owned())),
            Err(other) => Err(other.into()),
        }
    }

    /// The latest notice posted for a prompt.
    pub async fn notice(&self, prompt: PromptId) -> Result<Option<StoredNotice>, Error> {
        match self.get(&notice_key(prompt)).await? {
            None => Ok(None),
            Some((bytes, _)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", notice_key(prompt)))),
        }
    }

    /// Records a posted notice as the latest, unless a newer one (by envelope id, which is
    /// time-ordered) is already recorded: a late redelivery must not hide a newer stage.
    pub async fn save_notice(&self, prompt: PromptId, stored: &StoredNotice) -> Result<(), Error> {
        let key = notice_key(prompt);
        let value = Bytes::from(serde_json::to_vec(stored).map_err(|e| Error::Corrupt(e.to_string()))?);
        for _ in 0..CAS_ATTEMPTS {
            let current = self.kv.kv_get(Bucket::Prompts, &key).await?;
            let result = match current {
                None => self.kv.kv_create(Bucket::Prompts, &key, value.clone()).await,
                Some(entry) => {
                    let newer = serde_json::from_slice::<StoredNotice>(&entry.value)
                        .is_ok_and(|existing| existing.envelope_id > stored.envelope_id);
                    if newer {
                        return Ok(());
                    }
                    self.kv.kv_update(Bucket::Prompts, &key, value.clone(), entry.revision).await
                }
            };
            match result {
                Ok(_) => return Ok(()),
                Err(BusError::AlreadyExists | BusError::RevisionMismatch) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Contended(key))
    }

    async fn get(&self, key: &str) -> Result<Option<(Bytes, u64)>, Error> {
        Ok(self.kv.kv_get(Bucket::Prompts, key).await?.map(|entry| (entry.value, entry.revision)))
    }

    /// Create or replace, whoever wrote last.
    async fn put(&self, key: &str, value: Bytes) -> Result<(), Error> {
        for _ in 0..CAS_ATTEMPTS {
            let result = match self.get(key).await? {
                None => self.kv.kv_create(Bucket::Prompts, key, value.clone()).await,
                Some((_, revision)) => self.kv.kv_update(Bucket::Prompts, key, value.clone(), revision).await,
            };
            match result {
                Ok(_) => return Ok(()),
                Err(BusError::AlreadyExists | BusError::RevisionMismatch) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(Error::Contended(key.to_owned()))
    }
}

fn thread_key(prompt: PromptId) -> String {
    format!("bridge.matrix.thread.{prompt}")
}

fn notice_key(prompt: PromptId) -> String {
    format!("bridge.notice.{prompt}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use muster_bus::memory::MemoryBus;

    fn notice(stage: &str) -> PromptNotice {
        PromptNotice {
            run_id: Uuid::nil(),
            prompt: "ESC-1".into(),
            kind: PromptKind::Escalation,
            stage: stage.into(),
            severity: None,
            title: "t".into(),
            text: "x".into(),
            options: vec![],
            responders: vec![],
            channel: None,
            deadline: None,
        }
    }

    #[tokio::test]
    async fn positions_roots_and_notices_survive_in_kv() {
        let state = State::new(MemoryBus::new());
        let prompt = PromptId::parse("ESC-1").unwrap();
        assert_eq!(state.since().await.unwrap(), None);
        state.save_since("s1").await.unwrap();
        state.save_since("s2").await.unwrap();
        assert_eq!(state.since().await.unwrap().as_deref(), Some("s2"));

        assert_eq!(state.set_thread_root(prompt, "$a").await.unwrap(), "$a");
        assert_eq!(state.set_thread_root(prompt, "$b").await.unwrap(), "$a", "the first root stays");

        let older = StoredNotice { envelope_id: Uuid::now_v7(), event_id: "$1".into(), notice: notice("raised") };
        let newer = StoredNotice { envelope_id: Uuid::now_v7(), event_id: "$2".into(), notice: notice("renotified") };
        state.save_notice(prompt, &newer).await.unwrap();
        state.save_notice(prompt, &older).await.unwrap();
        assert_eq!(state.notice(prompt).await.unwrap(), Some(newer));
    }

    #[tokio::test]
    async fn registered_prompts_must_match_the_typed_kind() {
        let bus = MemoryBus::new();
        let run = Uuid::now_v7();
        let value = serde_json::json!({"run_id": run, "kind": "escalation", "title": "Disk full"});
        bus.kv_create(Bucket::Prompts, "n.7", Bytes::from(value.to_string())).await.unwrap();
        let state = State::new(bus);
        let entry = state.registered(PromptId::parse("esc-7").unwrap()).await.unwrap().unwrap();
        assert_eq!(entry.run_id, run);
        assert!(entry.is_kind(PromptKind::Escalation));
        assert!(!entry.is_kind(PromptKind::Form));
        assert_eq!(state.registered(PromptId::parse("ESC-8").unwrap()).await.unwrap(), None);
    }
}
