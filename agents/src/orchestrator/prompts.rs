//! The service side of prompts: short numbers people can type (`ESC-12`), allocated once per
//! prompt from a counter in the `muster_prompts` bucket, and notices published for the bridge.

use super::{Orchestrator, engine};
use crate::{Error, Result, wire};
use bytes::Bytes;
use muster_bus::{Bucket, Bus, Kv};
use muster_schemas::Payload;
use muster_schemas::message::{PromptKind, PromptNotice};
use muster_schemas::run::RunSnapshot;
use tracing::info;
use uuid::Uuid;

/// What `n.<number>` in the prompts bucket says, so a prompt typed without its run can be found.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct PromptIndex {
    /// The run the prompt belongs to.
    pub run_id: Uuid,
    /// Its position in the run's prompts.
    pub index: usize,
    /// What kind of prompt it is (the prefix people type must match it).
    pub kind: muster_schemas::message::PromptKind,
    /// One line, for people.
    #[serde(default)]
    pub title: String,
}

/// The run of prompt number `number`, if any.
pub async fn lookup<K: Kv>(kv: &K, number: u64) -> Result<Option<PromptIndex>> {
    let Some(entry) = kv.kv_get(Bucket::Prompts, &format!("n.{number}")).await? else { return Ok(None) };
    serde_json::from_slice(&entry.value).map(Some).map_err(|e| Error::Invalid(format!("prompt {number}: {e}")))
}

/// The next number from the shared counter (compare-and-set, retried on a concurrent change).
async fn next_number<K: Kv>(kv: &K) -> Result<u64> {
    loop {
        match kv.kv_get(Bucket::Prompts, "counter").await? {
            None => match kv.kv_create(Bucket::Prompts, "counter", Bytes::from_static(b"1")).await {
                Ok(_) => return Ok(1),
                Err(muster_bus::Error::AlreadyExists) => continue,
                Err(err) => return Err(err.into()),
            },
            Some(entry) => {
                let last: u64 = std::str::from_utf8(&entry.value).ok().and_then(|t| t.parse().ok()).unwrap_or(0);
                let next = last + 1;
                match kv.kv_update(Bucket::Prompts, "counter", Bytes::from(next.to_string()), entry.revision).await {
                    Ok(_) => return Ok(next),
                    Err(muster_bus::Error::RevisionMismatch) => continue,
                    Err(err) => return Err(err.into()),
                }
            }
        }
    }
}

/// The number of prompt `index` of `run`: the one allocated before (a repeat after a crash),
/// else a new one, recorded under both keys.
async fn number_of<K: Kv>(kv: &K, run: Uuid, index: usize, kind: PromptKind, title: &str) -> Result<u64> {
    let key = format!("r.{run}.{index}");
    let parse = |bytes: &[u8]| std::str::from_utf8(bytes).ok().and_then(|t| t.parse::<u64>().ok());
    if let Some(entry) = kv.kv_get(Bucket::Prompts, &key).await? {
        return parse(&entry.value).ok_or_else(|| Error::Invalid(format!("{key} is unreadable")));
    }
    let number = next_number(kv).await?;
    let number = match kv.kv_create(Bucket::Prompts, &key, Bytes::from(number.to_string())).await {
        Ok(_) => number,
        Err(muster_bus::Error::AlreadyExists) => {
            let entry = kv.kv_get(Bucket::Prompts, &key).await?;
            entry.and_then(|e| parse(&e.value)).ok_or_else(|| Error::Invalid(format!("{key} is unreadable")))?
        }
        Err(err) => return Err(err.into()),
    };
    let value = serde_json::to_vec(&PromptIndex { run_id: run, index, kind, title: title.to_owned() })
        .map_err(|e| Error::Invalid(e.to_string()))?;
    match kv.kv_create(Bucket::Prompts, &format!("n.{number}"), Bytes::from(value)).await {
        Ok(_) | Err(muster_bus::Error::AlreadyExists) => Ok(number),
        Err(err) => Err(err.into()),
    }
}

impl<B: Bus> Orchestrator<B> {
    /// Gives every prompt of `run` that has none its short number, before the snapshot that
    /// holds it is written; returns the notices that numbering emits.
    pub(super) async fn number_prompts(&self, run: &mut RunSnapshot) -> Result<Vec<engine::Effect>> {
        let mut effects = Vec::new();
        for index in engine::prompts::unnumbered(run) {
            let prompt = &run.prompts[index];
            let number = number_of(&self.inner.bus, run.id, index, prompt.kind, &prompt.title).await?;
            if let engine::Applied::Changed(more) =
                engine::prompts::number_prompt(run, index, number, crate::clock::now())
            {
                effects.extend(more);
            }
        }
        Ok(effects)
    }

    /// Publishes a notice on `muster.evt.<run>.notice` (durable: the bridge consumes it).
    pub(super) async fn notify(&self, run_id: Uuid, index: usize, seq: u32, notice: &PromptNotice) -> Result<()> {
        let subject = self.inner.options.subjects.event(&run_id.to_string(), "notice");
        let bytes = wire::seal(&self.inner.sender, Some(run_id), Payload::PromptNotice(notice.clone()))?;
        self.inner.bus.publish_event(&subject, &format!("notice/{run_id}/{index}/{seq}"), bytes).await?;
        info!(run_id = %run_id, prompt = %notice.prompt, stage = %notice.stage, "notice published");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use muster_bus::memory::MemoryBus;

    #[tokio::test]
    async fn numbers_are_unique_and_stable_per_prompt() {
        let bus = MemoryBus::new();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let first = number_of(&bus, a, 0, PromptKind::Form, "f").await.unwrap();
        let second = number_of(&bus, b, 0, PromptKind::Escalation, "e").await.unwrap();
        assert_ne!(first, second);
        assert_eq!(number_of(&bus, a, 0, PromptKind::Form, "f").await.unwrap(), first, "a repeat gets the same number");
        let found = lookup(&bus, second).await.unwrap().unwrap();
        assert_eq!((found.run_id, found.index, found.kind), (b, 0, PromptKind::Escalation));
        assert!(lookup(&bus, 999).await.unwrap().is_none());
    }
}
