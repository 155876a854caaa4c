//! KV buckets with compare-and-set.

use super::{NatsBus, unavailable};
use crate::traits::{Bucket, Kv, KvEntry};
use crate::{Error, Result};
use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use bytes::Bytes;
use futures::TryStreamExt;

impl NatsBus {
    async fn store(&self, bucket: Bucket) -> Result<Store> {
        let name = self.bucket_name(bucket);
        self.inner.js.get_key_value(&name).await.map_err(|e| Error::NotProvisioned(format!("bucket {name}: {e}")))
    }
}

impl Kv for NatsBus {
    async fn kv_get(&self, bucket: Bucket, key: &str) -> Result<Option<KvEntry>> {
        let entry = self.store(bucket).await?.entry(key).await.map_err(unavailable)?;
        Ok(entry.filter(|e| e.operation == Operation::Put).map(|e| KvEntry { value: e.value, revision: e.revision }))
    }

    async fn kv_create(&self, bucket: Bucket, key: &str, value: Bytes) -> Result<u64> {
        self.store(bucket).await?.create(key, value).await.map_err(|e| match e.kind() {
            CreateErrorKind::AlreadyExists => Error::AlreadyExists,
            _ => unavailable(e),
        })
    }

    async fn kv_update(&self, bucket: Bucket, key: &str, value: Bytes, expected: u64) -> Result<u64> {
        self.store(bucket).await?.update(key, value, expected).await.map_err(|e| match e.kind() {
            UpdateErrorKind::WrongLastRevision => Error::RevisionMismatch,
            _ => unavailable(e),
        })
    }

    async fn kv_keys(&self, bucket: Bucket) -> Result<Vec<String>> {
        let keys = self.store(bucket).await?.keys().await.map_err(unavailable)?;
        keys.try_collect().await.map_err(unavailable)
    }
}
