//! The conformance suite against both implementations. The NATS half starts a real
//! `nats-server` per check (free loopback port, own store, `sync_interval: always`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use muster_bus::conformance::{LEASE, MAX_DELIVER, QUEUES};
use muster_bus::memory::{MemoryBus, MemoryOptions};
use muster_bus::nats::{NatsBus, NatsOptions};
use muster_bus::testing::NatsServer;

mod memory {
    use super::*;

    async fn bus() -> (MemoryBus, ()) {
        let options = MemoryOptions { work_ack_wait: LEASE, max_deliver: MAX_DELIVER, ..MemoryOptions::default() };
        (MemoryBus::with_options(options), ())
    }

    muster_bus::conformance_tests!(bus);
}

mod nats {
    use super::*;

    async fn bus() -> (NatsBus, NatsServer) {
        let server = NatsServer::start().expect("nats-server starts");
        let mut options = NatsOptions::new(server.url());
        options.work_ack_wait = LEASE;
        options.max_deliver = MAX_DELIVER;
        let bus = NatsBus::connect(options).await.expect("connect");
        bus.provision(&QUEUES).await.expect("provision");
        (bus, server)
    }

    muster_bus::conformance_tests!(bus);

    #[tokio::test]
    async fn agents_cannot_claim_before_provisioning() {
        let server = NatsServer::start().expect("nats-server starts");
        let bus = NatsBus::connect(NatsOptions::new(server.url())).await.expect("connect");
        let err = muster_bus::WorkQueue::claim(&bus, "devops", std::time::Duration::from_millis(100)).await;
        assert!(matches!(err, Err(muster_bus::Error::NotProvisioned(_))), "{err:?}");
    }
}
