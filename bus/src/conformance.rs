//! The checks every bus implementation must pass, run against both by
//! [`conformance_tests!`](crate::conformance_tests).
//!
//! Each check takes a fresh bus whose work queues have a lease of [`LEASE`] and dead-letter after
//! [`MAX_DELIVER`] deliveries, so lease expiry and redelivery are exercised in about a second.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::Error;
use crate::traits::{Bucket, Bus, Delivery, EventStream, Request, Subscription};
use bytes::Bytes;
use std::time::Duration;

/// Work lease the factories must configure.
pub const LEASE: Duration = Duration::from_secs(1);
/// Max deliveries the factories must configure.
pub const MAX_DELIVER: u32 = 2;
/// Queue names the factories must provision.
pub const QUEUES: [&str; 2] = ["devops", "sre"];

const SHORT: Duration = Duration::from_millis(300);

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// Events are delivered in order; a consumer bound again resumes after its last ack, and an
/// event that was delivered but not acked comes again after the ack wait.
pub async fn events_resume_after_last_ack<B: Bus>(bus: B) {
    for i in 1..=3 {
        bus.publish_event(&format!("muster.evt.r1.e{i}"), &format!("id-{i}"), b(&format!("e{i}"))).await.unwrap();
    }
    let mut stream = bus.event_stream("conf", "muster.evt.>", LEASE).await.unwrap();
    let first = stream.next(SHORT * 3).await.unwrap().expect("first event");
    assert_eq!(first.payload(), &b("e1"));
    assert_eq!(first.subject(), "muster.evt.r1.e1");
    first.ack().await.unwrap();
    let second = stream.next(SHORT * 3).await.unwrap().expect("second event");
    assert_eq!(second.payload(), &b("e2"));
    drop(second); // not acked: must come back
    drop(stream);

    let mut again = bus.event_stream("conf", "muster.evt.>", LEASE).await.unwrap();
    let mut seen = Vec::new();
    while let Some(d) = again.next(LEASE * 3).await.unwrap() {
        seen.push((String::from_utf8_lossy(d.payload()).into_owned(), d.deliveries()));
        d.ack().await.unwrap();
        if seen.len() == 2 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, vec![("e2".to_owned(), 2), ("e3".to_owned(), 1)], "e1 was acked and must not return");
    assert!(again.next(SHORT).await.unwrap().is_none());
}

/// A consumer only sees subjects matching its filter.
pub async fn events_are_filtered<B: Bus>(bus: B) {
    bus.publish_event("muster.evt.a.result", "fa", b("a")).await.unwrap();
    bus.publish_event("muster.evt.b.other", "fb", b("b")).await.unwrap();
    let mut stream = bus.event_stream("filtered", "muster.evt.*.result", LEASE).await.unwrap();
    let d = stream.next(SHORT * 3).await.unwrap().expect("matching event");
    assert_eq!(d.payload(), &b("a"));
    d.ack().await.unwrap();
    assert!(stream.next(SHORT).await.unwrap().is_none());
}

/// A repeated message id is dropped within the duplicate window and answers the same sequence.
pub async fn events_are_deduplicated<B: Bus>(bus: B) {
    let one = bus.publish_event("muster.evt.r.x", "same", b("1")).await.unwrap();
    let two = bus.publish_event("muster.evt.r.x", "same", b("2")).await.unwrap();
    assert_eq!(one, two);
    let mut stream = bus.event_stream("dedupe", "muster.evt.>", LEASE).await.unwrap();
    let d = stream.next(SHORT * 3).await.unwrap().expect("event");
    assert_eq!(d.payload(), &b("1"));
    d.ack().await.unwrap();
    assert!(stream.next(SHORT).await.unwrap().is_none());
}

/// The history of a subject filter is every stored event on it, oldest first, up to the limit,
/// and reading it consumes nothing (the audit trail is read this way, repeatedly).
pub async fn history_reads_without_consuming<B: Bus>(bus: B) {
    for i in 1..=5 {
        bus.publish_event(&format!("muster.audit.r{}", i % 2), &format!("h{i}"), b(&format!("a{i}"))).await.unwrap();
    }
    let read = |limit| {
        let bus = bus.clone();
        async move { bus.history("muster.audit.r1", limit).await.unwrap().into_iter().map(|(_, p)| p).collect::<Vec<_>>() }
    };
    assert_eq!(read(100).await, vec![b("a1"), b("a3"), b("a5")]);
    assert_eq!(read(100).await, vec![b("a1"), b("a3"), b("a5")], "a second read sees the same trail");
    assert_eq!(read(2).await, vec![b("a1"), b("a3")]);
    assert!(bus.history("muster.audit.none", 10).await.unwrap().is_empty());
}

/// Work goes to its own queue only, and an acked claim is gone.
pub async fn work_claim_and_ack<B: Bus>(bus: B) {
    bus.enqueue("devops", "w1", b("job")).await.unwrap();
    assert!(bus.claim("sre", SHORT).await.unwrap().is_none(), "another role's queue must stay empty");
    let work = bus.claim("devops", SHORT * 3).await.unwrap().expect("work");
    assert_eq!(work.payload(), &b("job"));
    assert_eq!(work.deliveries(), 1);
    work.ack().await.unwrap();
    assert!(bus.claim("devops", LEASE * 2).await.unwrap().is_none(), "acked work must not return");
}

/// Enqueueing the same message id twice gives one message.
pub async fn work_is_deduplicated<B: Bus>(bus: B) {
    bus.enqueue("devops", "dup", b("1")).await.unwrap();
    bus.enqueue("devops", "dup", b("2")).await.unwrap();
    bus.claim("devops", SHORT * 3).await.unwrap().expect("work").ack().await.unwrap();
    assert!(bus.claim("devops", SHORT).await.unwrap().is_none());
}

/// A claim that is neither acked nor extended is delivered again after the lease.
pub async fn work_lease_expiry_redelivers<B: Bus>(bus: B) {
    bus.enqueue("devops", "lease", b("job")).await.unwrap();
    let first = bus.claim("devops", SHORT * 3).await.unwrap().expect("work");
    assert!(bus.claim("devops", SHORT).await.unwrap().is_none(), "leased work is invisible");
    drop(first); // the agent died
    let second = bus.claim("devops", LEASE * 3).await.unwrap().expect("redelivered");
    assert_eq!(second.deliveries(), 2);
    second.ack().await.unwrap();
}

/// In-progress acks keep the lease alive past its length.
pub async fn work_in_progress_extends_the_lease<B: Bus>(bus: B) {
    bus.enqueue("devops", "long", b("job")).await.unwrap();
    let work = bus.claim("devops", SHORT * 3).await.unwrap().expect("work");
    for _ in 0..5 {
        tokio::time::sleep(LEASE / 3).await;
        work.in_progress().await.unwrap();
    }
    assert!(bus.claim("devops", LEASE / 3).await.unwrap().is_none(), "an extended lease must hold");
    work.ack().await.unwrap();
}

/// A nak with a delay hides the message until the delay passes.
pub async fn work_nak_with_delay<B: Bus>(bus: B) {
    bus.enqueue("sre", "nak", b("job")).await.unwrap();
    let work = bus.claim("sre", SHORT * 3).await.unwrap().expect("work");
    work.nak(Duration::from_millis(700)).await.unwrap();
    assert!(bus.claim("sre", Duration::from_millis(200)).await.unwrap().is_none(), "not before the delay");
    let again = bus.claim("sre", LEASE * 3).await.unwrap().expect("after the delay");
    assert_eq!(again.deliveries(), 2);
    again.ack().await.unwrap();
}

/// After [`MAX_DELIVER`] unacknowledged deliveries the message is moved to the dead letters.
pub async fn work_dead_letters_after_max_deliveries<B: Bus>(bus: B) {
    bus.enqueue("devops", "poison", b("boom")).await.unwrap();
    for n in 1..=MAX_DELIVER {
        let work = bus.claim("devops", LEASE * 3).await.unwrap().expect("delivery");
        assert_eq!(work.deliveries(), n);
        drop(work);
    }
    assert!(bus.claim("devops", LEASE * 2).await.unwrap().is_none(), "dead-lettered, not delivered again");
    let dead = bus.dead_letters("devops").await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].payload, b("boom"));
    assert!(dead[0].reason.contains("without an ack"), "{}", dead[0].reason);
}

/// A consumer can dead-letter a message explicitly, with a reason, and it is not redelivered.
pub async fn work_explicit_dead_letter<B: Bus>(bus: B) {
    bus.enqueue("sre", "garbage", b("\u{1}\u{2}")).await.unwrap();
    let work = bus.claim("sre", SHORT * 3).await.unwrap().expect("work");
    work.dead_letter("undecodable: malformed message").await.unwrap();
    assert!(bus.claim("sre", LEASE * 2).await.unwrap().is_none());
    let dead = bus.dead_letters("sre").await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "undecodable: malformed message");
    assert_eq!(dead[0].deliveries, 1);
    assert!(bus.dead_letters("devops").await.unwrap().is_empty());
}

/// KV create-if-absent and update-if-revision-matches.
pub async fn kv_compare_and_set<B: Bus>(bus: B) {
    assert!(bus.kv_get(Bucket::Runs, "r1").await.unwrap().is_none());
    let rev = bus.kv_create(Bucket::Runs, "r1", b("v1")).await.unwrap();
    assert!(matches!(bus.kv_create(Bucket::Runs, "r1", b("x")).await, Err(Error::AlreadyExists)));
    let rev2 = bus.kv_update(Bucket::Runs, "r1", b("v2"), rev).await.unwrap();
    assert!(rev2 > rev);
    assert!(matches!(bus.kv_update(Bucket::Runs, "r1", b("v3"), rev).await, Err(Error::RevisionMismatch)));
    let entry = bus.kv_get(Bucket::Runs, "r1").await.unwrap().expect("entry");
    assert_eq!((entry.value, entry.revision), (b("v2"), rev2));
    bus.kv_create(Bucket::Runs, "r2", b("w")).await.unwrap();
    let mut keys = bus.kv_keys(Bucket::Runs).await.unwrap();
    keys.sort();
    assert_eq!(keys, vec!["r1".to_owned(), "r2".to_owned()]);
}

/// A request reaches a server and its reply comes back; with no server it fails fast.
pub async fn request_reply<B: Bus>(bus: B) {
    let mut requests = bus.serve("muster.trigger.*").await.unwrap();
    let server = tokio::spawn(async move {
        let req = requests.next().await.expect("request");
        let answer = format!("{}:{}", req.subject(), String::from_utf8_lossy(req.payload()));
        req.respond(Bytes::from(answer)).await.unwrap();
    });
    let reply = bus.request("muster.trigger.p1", b("go"), Duration::from_secs(5)).await.unwrap();
    assert_eq!(reply, b("muster.trigger.p1:go"));
    server.await.unwrap();
    let err = bus.request("muster.nobody.here", b("?"), Duration::from_secs(2)).await;
    assert!(matches!(err, Err(Error::NoResponders(_) | Error::Timeout)), "{err:?}");
}

/// Signals reach every matching subscriber.
pub async fn signals_fan_out<B: Bus>(bus: B) {
    let mut one = bus.signals("muster.agent.hb.>").await.unwrap();
    let mut two = bus.signals("muster.agent.hb.sre.*").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    bus.signal("muster.agent.hb.sre.a1", b("alive")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), one.next()).await.unwrap().expect("signal");
    assert_eq!(got, ("muster.agent.hb.sre.a1".to_owned(), b("alive")));
    let got = tokio::time::timeout(Duration::from_secs(2), two.next()).await.unwrap().expect("signal");
    assert_eq!(got.1, b("alive"));
}

/// Generates one `#[tokio::test]` per conformance check, each with a fresh bus from `$factory`
/// (an async fn returning `(bus, guard)`; the guard keeps whatever backs the bus alive).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@each $factory,
            events_resume_after_last_ack, events_are_filtered, events_are_deduplicated, history_reads_without_consuming,
            work_claim_and_ack, work_is_deduplicated, work_lease_expiry_redelivers,
            work_in_progress_extends_the_lease, work_nak_with_delay,
            work_dead_letters_after_max_deliveries, work_explicit_dead_letter,
            kv_compare_and_set, request_reply, signals_fan_out);
    };
    (@each $factory:path, $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (bus, _guard) = $factory().await;
                $crate::conformance::$check(bus).await;
            }
        )+
    };
}
