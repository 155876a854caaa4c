//! Run snapshots in the `muster_runs` KV bucket, read and written with compare-and-set.

use crate::Result;
use bytes::Bytes;
use muster_bus::{Bucket, Kv};
use muster_schemas::codec;
use muster_schemas::run::RunSnapshot;
use uuid::Uuid;

/// Typed access to run snapshots over any [`Kv`].
#[derive(Debug, Clone)]
pub struct RunStore<B> {
    bus: B,
}

impl<B: Kv> RunStore<B> {
    /// A store over `bus`.
    pub fn new(bus: B) -> Self {
        Self { bus }
    }

    /// Writes a new run; fails if the id exists.
    pub async fn create(&self, run: &RunSnapshot) -> Result<u64> {
        let bytes = Bytes::from(codec::encode_value(run)?);
        Ok(self.bus.kv_create(Bucket::Runs, &run.id.to_string(), bytes).await?)
    }

    /// The run and its revision.
    pub async fn load(&self, id: Uuid) -> Result<Option<(RunSnapshot, u64)>> {
        let Some(entry) = self.bus.kv_get(Bucket::Runs, &id.to_string()).await? else { return Ok(None) };
        Ok(Some((codec::decode_value(&entry.value)?, entry.revision)))
    }

    /// Replaces the run if it is still at `expected`; a concurrent change gives
    /// [`muster_bus::Error::RevisionMismatch`].
    pub async fn save(&self, run: &RunSnapshot, expected: u64) -> Result<u64> {
        let bytes = Bytes::from(codec::encode_value(run)?);
        Ok(self.bus.kv_update(Bucket::Runs, &run.id.to_string(), bytes, expected).await?)
    }

    /// Every run, oldest first (ids are UUID v7). Undecodable entries are skipped and logged.
    pub async fn list(&self) -> Result<Vec<RunSnapshot>> {
        Ok(self.list_with_revisions().await?.into_iter().map(|(run, _)| run).collect())
    }

    /// [`RunStore::list`] with each snapshot's revision.
    pub async fn list_with_revisions(&self) -> Result<Vec<(RunSnapshot, u64)>> {
        let mut ids: Vec<Uuid> = self.bus.kv_keys(Bucket::Runs).await?.iter().filter_map(|k| k.parse().ok()).collect();
        ids.sort();
        let mut runs = Vec::with_capacity(ids.len());
        for id in ids {
            match self.load(id).await {
                Ok(Some(found)) => runs.push(found),
                Ok(None) => {}
                Err(err) => tracing::warn!(run_id = %id, error = %err, "skipping unreadable run snapshot"),
            }
        }
        Ok(runs)
    }
}
