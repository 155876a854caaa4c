//! The long-running services: `muster orchestrator`, `muster agent <role>`, `muster gateway` and
//! `muster bridge`.

use super::commands::{load, protocol_files};
use super::exit;
use super::settings::Settings;
use super::{BridgeArgs, Cluster};
use crate::agent::{Agent, AgentOptions};
use crate::bridge::answers::Signer;
use crate::bridge::http_api::{HttpApiOptions, Tokens};
use crate::bridge::matrix::{AccessToken, Login};
use crate::bridge::slack::{
    BusAnswerSink, BusSinkOptions, Seed, SigningSecret, SlackOptions, WebhookOptions, WebhookUrl,
};
use crate::bridge::slack_notices::{self, SlackNoticeOptions};
use crate::bridge::{Bridge, BridgeOptions};
use crate::gateway::{self, GatewayOptions, Webhooks};
use crate::orchestrator::{Orchestrator, OrchestratorOptions};
use futures::FutureExt;
use muster_bus::nats::{NatsBus, NatsOptions};
use muster_bus::subjects::Subjects;
use muster_schemas::protocol::Protocol;
use muster_schemas::{CONTENT_TYPE, Role};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

/// `muster bridge`: whichever of Matrix, Slack and the HTTP API the flags configure, in one
/// process that stops as a whole (a signal, or one channel failing for good).
pub async fn bridge(settings: &Settings, args: BridgeArgs) -> u8 {
    // Secrets are read here, once: the key from its file, passwords, tokens and Slack secrets
    // from the files and environment variables named on the command line.
    let (signer, seed) = match read_signer(&args.key_file, &args.principal) {
        Ok(found) => found,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::INVALID;
        }
    };
    let channels = match BridgeChannels::from_args(&args) {
        Ok(channels) => channels,
        Err(message) => {
            eprintln!("error: {message}");
            return exit::INVALID;
        }
    };
    let url = match require_url(settings, args.cluster.clone()) {
        Ok(url) => url,
        Err(code) => return code,
    };
    let id = format!("bridge-{}-{}", hostname(), std::process::id());
    let bus = match connect(settings, &url, &id).await {
        Ok(bus) => bus,
        Err(code) => return code,
    };
    let listener = match channels.http_listen {
        Some(listen) => match tokio::net::TcpListener::bind(listen).await {
            Ok(listener) => Some(listener),
            Err(err) => {
                eprintln!("error: cannot listen on {listen}: {err}");
                return exit::UNAVAILABLE;
            }
        },
        None => None,
    };
    let subjects = Subjects::new(settings.prefix.clone());
    let notice_lease = args.notice_lease.0.max(Duration::from_secs(1));
    let shutdown = shutdown_on_signals();
    // One channel failing for good stops the others: a bridge that half works would look alive
    // while prompts go unanswered on the broken side.
    let tasks = shutdown.child_token();
    let mut running: Vec<(&str, tokio::task::JoinHandle<Result<(), String>>)> = Vec::new();
    let stop_on_error = |tasks: CancellationToken| {
        move |result: Result<(), String>| {
            if result.is_err() {
                tasks.cancel();
            }
            result
        }
    };
    if let Some((homeserver, room, login)) = channels.matrix {
        let mut options = BridgeOptions::new(subjects.clone(), id.clone(), homeserver, login, room, signer.clone());
        options.notice_lease = notice_lease;
        options.timeline_limit = args.matrix_timeline_limit;
        let run = Bridge::new(bus.clone(), options).run(tasks.clone());
        let run = run.map(|result| result.map_err(|err| err.to_string())).map(stop_on_error(tasks.clone()));
        running.push(("matrix", tokio::spawn(run)));
    }
    if let Some(url) = channels.slack_webhook {
        let options = SlackNoticeOptions {
            subjects: subjects.clone(),
            url,
            webhook: WebhookOptions::default(),
            lease: notice_lease,
        };
        let run = slack_notices::run(bus.clone(), options, tasks.clone());
        let run = run.map(|result| result.map_err(|err| err.to_string())).map(stop_on_error(tasks.clone()));
        running.push(("slack notices", tokio::spawn(run)));
    }
    if let Some(listener) = listener {
        let sink_options = BusSinkOptions::new(subjects.clone(), id.clone(), args.principal.clone(), seed);
        let sink = Arc::new(BusAnswerSink::new(bus.clone(), sink_options));
        let api = channels.http_tokens.map(HttpApiOptions::new);
        let slack = channels.slack_secret.map(SlackOptions::new);
        let (serves_api, serves_slack) = (api.is_some(), slack.is_some());
        if let Some(app) = crate::bridge::http_app(sink, api, slack) {
            let bound = listener.local_addr().map_or_else(|_| "?".to_owned(), |addr| addr.to_string());
            info!(
                listen = %bound,
                api = serves_api,
                slack = serves_slack,
                principal = signer.principal(),
                public_key = signer.public_key(),
                "bridge http ready"
            );
            let run = gateway::serve(listener, app, tasks.clone(), settings.shutdown_grace.0);
            let run = run.map(|result| result.map_err(|err| err.to_string())).map(stop_on_error(tasks.clone()));
            running.push(("http", tokio::spawn(run)));
        }
    }
    let mut code = exit::OK;
    for (channel, task) in running {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                error!(channel, error = %err, "bridge failed");
                code = exit::UNAVAILABLE;
            }
            Err(join) => {
                warn!(channel, error = %join, "a bridge task ended abnormally");
                code = exit::UNAVAILABLE;
            }
        }
    }
    info!("bridge stopped");
    code
}

/// The channels `muster bridge` was asked to serve, with their secrets read. Never `Debug`ged
/// as a whole into logs; each secret type hides itself anyway.
struct BridgeChannels {
    matrix: Option<(String, String, Login)>,
    http_listen: Option<SocketAddr>,
    http_tokens: Option<Tokens>,
    slack_secret: Option<SigningSecret>,
    slack_webhook: Option<WebhookUrl>,
}

impl BridgeChannels {
    /// Reads the secrets the flags name and checks that at least one channel is configured
    /// and that a listening address serves something; the error says how to fix it.
    fn from_args(args: &BridgeArgs) -> Result<Self, String> {
        let secret = |var: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("the environment variable {var} is not set (or empty)"))
        };
        let matrix = match (&args.matrix_homeserver, &args.matrix_room) {
            (Some(homeserver), Some(room)) => {
                let login = match (&args.matrix_user, &args.matrix_password_env, &args.matrix_token_env) {
                    (Some(user), Some(var), None) => Login::Password {
                        user: user.clone(),
                        password: AccessToken::new(secret(var)?),
                        device_id: args.matrix_device_id.clone(),
                    },
                    (None, None, Some(var)) => Login::Token(AccessToken::new(secret(var)?)),
                    _ => {
                        return Err(
                            "Matrix needs a login: --matrix-user with --matrix-password-env, or --matrix-token-env"
                                .to_owned(),
                        );
                    }
                };
                Some((homeserver.clone(), room.clone(), login))
            }
            (None, None) => None,
            _ => return Err("Matrix needs both --matrix-homeserver and --matrix-room".to_owned()),
        };
        let http_tokens = match &args.http_tokens_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|err| format!("cannot read the tokens file {}: {err}", path.display()))?;
                Some(Tokens::from_file_text(&text).map_err(|err| format!("{}: {err}", path.display()))?)
            }
            None => None,
        };
        let slack_secret = match &args.slack_signing_secret_env {
            Some(var) => Some(SigningSecret::new(secret(var)?.trim().as_bytes().to_vec())),
            None => None,
        };
        let slack_webhook = match &args.slack_webhook_url_env {
            Some(var) => Some(WebhookUrl::parse(&secret(var)?).map_err(|err| format!("{var}: {err}"))?),
            None => None,
        };
        if args.http_listen.is_some() && http_tokens.is_none() && slack_secret.is_none() {
            return Err("--http-listen serves nothing by itself: add --http-tokens-file (the HTTP API) and/or \
                 --slack-signing-secret-env (Slack's slash commands and buttons)"
                .to_owned());
        }
        if matrix.is_none() && args.http_listen.is_none() && slack_webhook.is_none() {
            return Err("the bridge has no channel to serve; give at least one of\n  \
                 Matrix:   --matrix-homeserver URL --matrix-room ROOM and --matrix-user/--matrix-password-env or --matrix-token-env\n  \
                 Slack:    --slack-webhook-url-env VAR (notices) and/or --http-listen ADDR --slack-signing-secret-env VAR (answers)\n  \
                 HTTP API: --http-listen ADDR --http-tokens-file FILE\n\
                 (see `muster bridge --help`)"
                .to_owned());
        }
        Ok(Self { matrix, http_listen: args.http_listen, http_tokens, slack_secret, slack_webhook })
    }
}

/// The principal's signer from its seed file, and the seed for the Slack and HTTP sink, with a
/// warning when others can read the file.
fn read_signer(path: &Path, principal: &str) -> Result<(Signer, Seed), String> {
    let text =
        std::fs::read_to_string(path).map_err(|err| format!("cannot read the key file {}: {err}", path.display()))?;
    if let Ok(metadata) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            warn!(file = %path.display(), mode = format!("{:o}", mode & 0o777), "the key file is readable by others; chmod 600 it");
        }
    }
    let signer = Signer::new(principal, &text).map_err(|err| format!("{}: {err}", path.display()))?;
    Ok((signer, Seed::new(text.trim())))
}

fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "host".into())
}
