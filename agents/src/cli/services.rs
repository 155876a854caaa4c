//! The long-running services: `muster orchestrator`, `muster agent <role>`, `muster gateway` and
//! `muster bridge`.

use super::commands::{load, protocol_files};
use super::exit;
use super::settings::Settings;
use super::{BridgeArgs, Cluster};
use crate::agent::{Agent, AgentOptions};
use crate::bridge::answers::Signer;
use crate::bridge::matrix::{AccessToken, Login};
use crate::bridge::{Bridge, BridgeOptions};
use crate::gateway::{self, GatewayOptions, Webhooks};
use crate::orchestrator::{Orchestrator, OrchestratorOptions};
use muster_bus::nats::{NatsBus, NatsOptions};
use muster_bus::subjects::Subjects;
use muster_schemas::protocol::Protocol;
use muster_schemas::{CONTENT_TYPE, Role};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// Connects to NATS with the settings' layout; `Err` carries the exit code.
pub async fn connect(settings: &Settings, url: &str, name: &str) -> Result<NatsBus, u8> {
    let mut options = NatsOptions::new(url);
    options.prefix.clone_from(&settings.prefix);
    options.client_name = name.to_owned();
    options.content_type = CONTENT_TYPE.to_owned();
    options.work_ack_wait = settings.lease.0;
    options.max_deliver = settings.max_deliver;
    NatsBus::connect(options).await.map_err(|err| {
        eprintln!("error: cannot use NATS at {url}: {err}");
        exit::UNAVAILABLE
    })
}

fn require_url(settings: &Settings, cluster: Cluster) -> Result<String, u8> {
    cluster.nats.or_else(|| settings.nats_url.clone()).ok_or_else(|| {
        eprintln!("error: no NATS URL: pass --nats URL, set nats_url in muster.toml, or MUSTER_NATS_URL");
        exit::INVALID
    })
}

/// Cancels the token on SIGINT or SIGTERM.
fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => info!(signal = "SIGTERM", "shutting down"),
            _ = int.recv() => info!(signal = "SIGINT", "shutting down"),
        }
        trigger.cancel();
    });
    token
}

/// Loads every protocol file in `dir` (or `dir` itself when it is a file), keyed by id, printing
/// diagnostics; `Err` carries the exit code. The orchestrator and the gateway load the same way,
/// so a protocol the gateway accepts webhooks for is one the orchestrator can run.
fn load_protocols(dir: &Path) -> Result<BTreeMap<String, Protocol>, u8> {
    let files = protocol_files(dir).map_err(|err| {
        eprintln!("error: cannot read scenarios from {}: {err}", dir.display());
        exit::INVALID
    })?;
    let mut protocols = BTreeMap::new();
    for file in files {
        let protocol = load(&file)?;
        if let Some(previous) = protocols.insert(protocol.id.clone(), protocol) {
            eprintln!("error: {}: protocol id `{}` is defined twice", file.display(), previous.id);
            return Err(exit::INVALID);
        }
    }
    Ok(protocols)
}

/// `muster orchestrator`.
pub async fn orchestrator(settings: &Settings, cluster: Cluster, scenarios: Option<PathBuf>) -> u8 {
    let dir = scenarios.unwrap_or_else(|| settings.scenarios.clone());
    let protocols = match load_protocols(&dir) {
        Ok(protocols) => protocols,
        Err(code) => return code,
    };
    let url = match require_url(settings, cluster) {
        Ok(url) => url,
        Err(code) => return code,
    };
    let bus = match connect(settings, &url, "muster-orchestrator").await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let queues: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
    if let Err(err) = bus.provision(&queues).await {
        eprintln!("error: cannot create streams and buckets: {err}");
        return exit::UNAVAILABLE;
    }
    info!(protocols = ?protocols.keys().collect::<Vec<_>>(), "protocols loaded");
    let options = OrchestratorOptions {
        id: format!("orchestrator-{}-{}", hostname(), std::process::id()),
        subjects: Subjects::new(settings.prefix.clone()),
        protocols,
        result_ack_wait: Duration::from_secs(30),
        leader_ttl: settings.leader_ttl.0,
        responders: settings.responders.clone(),
    };
    match Orchestrator::new(bus, options).run(shutdown_on_signals()).await {
        Ok(()) => exit::OK,
        Err(err) => {
            error!(error = %err, "orchestrator failed");
            exit::UNAVAILABLE
        }
    }
}

/// `muster agent ROLE`.
pub async fn agent(
    settings: &Settings,
    role: Role,
    cluster: Cluster,
    concurrency: Option<usize>,
    id: Option<String>,
) -> u8 {
    let url = match require_url(settings, cluster) {
        Ok(url) => url,
        Err(code) => return code,
    };
    let id = id.unwrap_or_else(|| format!("{role}-{}-{}", hostname(), std::process::id()));
    let bus = match connect(settings, &url, &id).await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let options = AgentOptions {
        role,
        id,
        subjects: Subjects::new(settings.prefix.clone()),
        concurrency: concurrency.unwrap_or(settings.agent_concurrency).max(1),
        lease: settings.lease.0,
        heartbeat_interval: settings.heartbeat.0,
        shutdown_grace: settings.shutdown_grace.0,
    };
    match Agent::new(bus, options).run(shutdown_on_signals()).await {
        Ok(()) => exit::OK,
        Err(err) => {
            error!(error = %err, "agent failed");
            exit::UNAVAILABLE
        }
    }
}

/// `muster gateway`.
pub async fn gateway(settings: &Settings, cluster: Cluster, listen: SocketAddr, scenarios: Option<PathBuf>) -> u8 {
    let dir = scenarios.unwrap_or_else(|| settings.scenarios.clone());
    let protocols = match load_protocols(&dir) {
        Ok(protocols) => protocols,
        Err(code) => return code,
    };
    // Secrets are read here, once, so the gateway library never touches the environment.
    let webhooks = Webhooks::from_protocols(protocols.values(), |name| std::env::var(name).ok());
    let mut accepting = 0;
    for (protocol, missing) in webhooks.summary() {
        accepting += 1;
        if !missing.is_empty() {
            warn!(protocol, variables = ?missing, "webhook secret not set; its requests get 503 until restarted with it");
        }
    }
    if accepting == 0 {
        warn!(scenarios = %dir.display(), "no protocol declares a webhook trigger; every request gets 404");
    }
    let url = match require_url(settings, cluster) {
        Ok(url) => url,
        Err(code) => return code,
    };
    let id = format!("gateway-{}-{}", hostname(), std::process::id());
    let bus = match connect(settings, &url, &id).await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {listen}: {err}");
            return exit::UNAVAILABLE;
        }
    };
    let bound = listener.local_addr().map_or_else(|_| listen.to_string(), |addr| addr.to_string());
    let options = GatewayOptions::new(Subjects::new(settings.prefix.clone()), id, webhooks);
    let app = gateway::app(bus, options);
    info!(listen = %bound, webhook_protocols = accepting, "gateway ready");
    match gateway::serve(listener, app, shutdown_on_signals(), settings.shutdown_grace.0).await {
        Ok(()) => {
            info!("gateway stopped");
            exit::OK
        }
        Err(err) => {
            error!(error = %err, "gateway failed");
            exit::UNAVAILABLE
        }
    }
}

/// `muster bridge`.
pub async fn bridge(settings: &Settings, args: BridgeArgs) -> u8 {
    // Secrets are read here, once: the key from its file, the password or token from the
    // environment variable named on the command line.
    let signer = match read_signer(&args.key_file, &args.principal) {
        Ok(signer) => signer,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::INVALID;
        }
    };
    let secret = |var: &str| {
        std::env::var(var).ok().filter(|v| !v.is_empty()).map(AccessToken::new).ok_or_else(|| {
            eprintln!("error: the environment variable {var} is not set (or empty)");
            exit::INVALID
        })
    };
    let login = match (&args.matrix_user, &args.matrix_password_env, &args.matrix_token_env) {
        (Some(user), Some(var), None) => match secret(var) {
            Ok(password) => Login::Password { user: user.clone(), password, device_id: args.matrix_device_id.clone() },
            Err(code) => return code,
        },
        (None, None, Some(var)) => match secret(var) {
            Ok(token) => Login::Token(token),
            Err(code) => return code,
        },
        _ => {
            eprintln!("error: pass --matrix-user with --matrix-password-env, or --matrix-token-env");
            return exit::INVALID;
        }
    };
    let url = match require_url(settings, args.cluster) {
        Ok(url) => url,
        Err(code) => return code,
    };
    let id = format!("bridge-{}-{}", hostname(), std::process::id());
    let bus = match connect(settings, &url, &id).await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let subjects = Subjects::new(settings.prefix.clone());
    let mut options = BridgeOptions::new(subjects, id, args.matrix_homeserver, login, args.matrix_room, signer);
    options.notice_lease = args.notice_lease.0.max(Duration::from_secs(1));
    options.timeline_limit = args.matrix_timeline_limit;
    match Bridge::new(bus, options).run(shutdown_on_signals()).await {
        Ok(()) => exit::OK,
        Err(err) => {
            error!(error = %err, "bridge failed");
            exit::UNAVAILABLE
        }
    }
}

/// The principal's signer from its seed file, with a warning when others can read the file.
fn read_signer(path: &Path, principal: &str) -> Result<Signer, String> {
    let text =
        std::fs::read_to_string(path).map_err(|err| format!("cannot read the key file {}: {err}", path.display()))?;
    if let Ok(metadata) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            warn!(file = %path.display(), mode = format!("{:o}", mode & 0o777), "the key file is readable by others; chmod 600 it");
        }
    }
    Signer::new(principal, &text).map_err(|err| format!("{}: {err}", path.display()))
}

fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "host".into())
}
