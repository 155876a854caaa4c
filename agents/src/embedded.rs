//! The whole system in one process: an orchestrator and one agent per role over the memory bus.
//! This is `muster run`'s default, so a new user sees a protocol run with nothing installed. It
//! is not durable: the memory bus dies with the process.

use crate::agent::{Agent, AgentOptions};
use crate::orchestrator::{Orchestrator, OrchestratorOptions};
use muster_bus::memory::{MemoryBus, MemoryOptions};
use muster_bus::subjects::Subjects;
use muster_schemas::Role;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Settings of the embedded system.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Work lease.
    pub lease: Duration,
    /// Deliveries before a work message is dead-lettered.
    pub max_deliver: u32,
    /// Steps each agent runs at once.
    pub agent_concurrency: usize,
    /// How long running steps may finish on shutdown.
    pub shutdown_grace: Duration,
}

/// A running embedded system; [`Embedded::shutdown`] stops it.
#[derive(Debug)]
pub struct Embedded {
    /// The bus every component shares; clients use it to trigger and follow runs.
    pub bus: MemoryBus,
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl Embedded {
    /// Starts the orchestrator and one agent per role.
    pub fn start(options: &EmbeddedOptions) -> Self {
        let bus = MemoryBus::with_options(MemoryOptions {
            work_ack_wait: options.lease,
            max_deliver: options.max_deliver,
            ..MemoryOptions::default()
        });
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let orchestrator = Orchestrator::new(
            bus.clone(),
            OrchestratorOptions {
                id: "orchestrator-embedded".into(),
                subjects: Subjects::default(),
                protocols: BTreeMap::new(),
                result_ack_wait: Duration::from_secs(30),
                leader_ttl: Duration::from_secs(10),
                responders: Default::default(),
            },
        );
        let token = cancel.clone();
        tasks.spawn(async move {
            if let Err(err) = orchestrator.run(token).await {
                tracing::error!(error = %err, "embedded orchestrator stopped");
            }
        });
        for role in Role::ALL {
            let agent = Agent::new(
                bus.clone(),
                AgentOptions {
                    role,
                    id: format!("{role}-embedded"),
                    subjects: Subjects::default(),
                    concurrency: options.agent_concurrency,
                    lease: options.lease,
                    heartbeat_interval: Duration::from_secs(5),
                    shutdown_grace: options.shutdown_grace,
                },
            );
            let token = cancel.clone();
            tasks.spawn(async move {
                if let Err(err) = agent.run(token).await {
                    tracing::error!(role = %role, error = %err, "embedded agent stopped");
                }
            });
        }
        tasks.close();
        Self { bus, cancel, tasks }
    }

    /// Stops every component and waits for them.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        self.tasks.wait().await;
    }
}
