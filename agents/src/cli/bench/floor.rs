//! The floor: the raw JetStream round trip muster is compared against, measured one at a time
//! on the same server with two connections.
//!
//! Work published by A, taken and double-acked by B, result published by B, taken and acked by
//! A: the least a step dispatched through JetStream and answered through JetStream can cost.

use super::figures::Summary;
use super::report::Floor;
use async_nats::jetstream::{self, consumer::PullConsumer};
use bytes::Bytes;
use futures::StreamExt;
use std::time::{Duration, Instant};

/// The raw-floor stream; named so that the cleanup of an external server can remove it too.
pub(super) const RAW_STREAM: &str = "BENCH_RAW";
const RAW_WORK: &str = "bench.raw.work";
const RAW_RESULT: &str = "bench.raw.result";
/// Body size of a raw-floor message (about a muster step envelope); echoed in the JSON output
/// so that the floor can be reproduced.
pub(super) const RAW_PAYLOAD: usize = 512;
/// Unmeasured raw round trips before the measured ones.
const RAW_WARMUP: u32 = 20;

/// Measures `iterations` raw round trips through a fresh `BENCH_RAW` stream (deleted again
/// afterwards), as the baseline that muster's step latency and throughput are set against.
pub(super) async fn measure_floor(client_a: &async_nats::Client, url: &str, iterations: u32) -> Result<Floor, String> {
    let js_a = jetstream::new(client_a.clone());
    let client_b =
        async_nats::connect(url).await.map_err(|e| format!("cannot open a second connection to {url}: {e}"))?;
    let js_b = jetstream::new(client_b);
    let raw = RawPath::create(js_a, js_b).await?;
    let measured = raw.round_trips(iterations).await;
    if let Err(err) = raw.js_a.delete_stream(RAW_STREAM).await {
        eprintln!("warning: cannot delete stream {RAW_STREAM}: {err}");
    }
    let (millis, elapsed) = measured?;
    Ok(Floor { round_trip: Summary::of(millis), per_second: f64::from(iterations) / elapsed.as_secs_f64() })
}

/// The two connections and the consumer each of them pulls from.
struct RawPath {
    /// Client A: publishes work, takes results.
    js_a: jetstream::Context,
    /// Client B: takes work, publishes results.
    js_b: jetstream::Context,
    /// The work consumer, as seen by client B.
    work: PullConsumer,
    /// The result consumer, as seen by client A.
    results: PullConsumer,
}

impl RawPath {
    /// Creates `BENCH_RAW` afresh with its two durable consumers and binds each to its client.
    async fn create(js_a: jetstream::Context, js_b: jetstream::Context) -> Result<Self, String> {
        let _ = js_a.delete_stream(RAW_STREAM).await;
        let config = jetstream::stream::Config {
            name: RAW_STREAM.to_owned(),
            subjects: vec!["bench.raw.>".to_owned()],
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let stream = js_a.create_stream(config).await.map_err(|e| format!("cannot create stream {RAW_STREAM}: {e}"))?;
        for (durable, filter) in [("bench-work", RAW_WORK), ("bench-result", RAW_RESULT)] {
            let config = jetstream::consumer::pull::Config {
                durable_name: Some(durable.to_owned()),
                filter_subject: filter.to_owned(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            };
            stream.create_consumer(config).await.map_err(|e| format!("cannot create consumer {durable}: {e}"))?;
        }
        let results: PullConsumer =
            stream.get_consumer("bench-result").await.map_err(|e| format!("cannot bind bench-result: {e}"))?;
        let stream_b = js_b
            .get_stream(RAW_STREAM)
            .await
            .map_err(|e| format!("cannot open {RAW_STREAM} from the second client: {e}"))?;
        let work: PullConsumer =
            stream_b.get_consumer("bench-work").await.map_err(|e| format!("cannot bind bench-work: {e}"))?;
        Ok(Self { js_a, js_b, work, results })
    }

    /// The timed loop; returns each measured round trip in milliseconds and the loop's wall time.
    async fn round_trips(&self, iterations: u32) -> Result<(Vec<f64>, Duration), String> {
        let payload = Bytes::from(vec![b'x'; RAW_PAYLOAD]);
        for _ in 0..RAW_WARMUP {
            self.round_trip(&payload).await?;
        }
        let mut millis = Vec::with_capacity(usize::try_from(iterations).unwrap_or(0));
        let started = Instant::now();
        for _ in 0..iterations {
            let one = Instant::now();
            self.round_trip(&payload).await?;
            millis.push(one.elapsed().as_secs_f64() * 1000.0);
        }
        Ok((millis, started.elapsed()))
    }

    /// Work published by A, taken and acked by B, result published by B, taken and acked by A.
    async fn round_trip(&self, payload: &Bytes) -> Result<(), String> {
        publish(&self.js_a, RAW_WORK, payload).await?;
        let msg = pull_one(&self.work).await?;
        msg.double_ack().await.map_err(|e| format!("raw double ack failed: {e}"))?;
        publish(&self.js_b, RAW_RESULT, payload).await?;
        let msg = pull_one(&self.results).await?;
        msg.ack().await.map_err(|e| format!("raw ack failed: {e}"))
    }
}

/// Publishes and waits for the stream's acknowledgement, as the muster bus does it.
async fn publish(js: &jetstream::Context, subject: &'static str, payload: &Bytes) -> Result<(), String> {
    let failed = |e: &dyn std::fmt::Display| format!("raw publish failed: {e}");
    js.publish(subject, payload.clone()).await.map_err(|e| failed(&e))?.await.map_err(|e| failed(&e))?;
    Ok(())
}

/// A batch-1 pull, as the muster bus does it.
async fn pull_one(consumer: &PullConsumer) -> Result<jetstream::Message, String> {
    let mut batch = consumer
        .batch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .map_err(|e| format!("raw pull failed: {e}"))?;
    match batch.next().await {
        Some(Ok(msg)) => Ok(msg),
        Some(Err(err)) => Err(format!("raw pull failed: {err}")),
        None => Err("raw pull: no message within 5s".to_owned()),
    }
}
