//! The `muster` command line.
//!
//! Exit codes, for scripts: `0` success, `1` the run failed (or was cancelled / rolled back),
//! `2` invalid input (a bad protocol file, unknown or ill-typed inputs, bad flags),
//! `3` the cluster could not be reached or answered an error.

mod audit;
mod bench;
mod client;
mod commands;
mod convert;
pub mod keys;
mod prompts;
mod services;
pub mod settings;

use clap::{Parser, Subcommand};
use muster_schemas::Role;
use muster_schemas::answer::AnswerAction;
use muster_schemas::message::{Control, RunTriggered};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Runs operational protocols as durable runs carried out by role agents.
#[derive(Debug, Parser)]
#[command(name = "muster", version, about = "Runs operational protocols as durable runs carried out by role agents (resource, devops, security, sre).", long_about = None, after_help = "Start here:\n  muster run scenarios/host-report.yaml     run a protocol end to end, in this process\n  muster validate scenarios/                 check protocol files\n\nAgainst a NATS cluster:\n  muster orchestrator --nats nats://127.0.0.1:4222 --scenarios scenarios/\n  muster agent devops --nats nats://127.0.0.1:4222\n  muster gateway --nats nats://127.0.0.1:4222 --scenarios scenarios/\n  muster trigger host-report --wait --nats nats://127.0.0.1:4222")]
pub struct Cli {
    /// Settings file (default: ./muster.toml if present). `MUSTER_*` variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// More logging (-v info, -vv debug). `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Connection flags shared by the cluster commands.
#[derive(Debug, Clone, clap::Args)]
pub struct Cluster {
    /// NATS server URL (or `nats_url` in muster.toml, or MUSTER_NATS_URL).
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a protocol file end to end and show progress. Without --nats, everything runs in
    /// this process on the in-memory bus (not durable).
    Run {
        /// The protocol file.
        file: PathBuf,
        /// An input value, `name=value` (repeatable).
        #[arg(short, long = "input", value_name = "NAME=VALUE", value_parser = parse_input)]
        inputs: Vec<(String, String)>,
        /// Submit to a running cluster instead and follow the run there.
        #[arg(long, value_name = "URL")]
        nats: Option<String>,
        /// Print the final status as JSON on stdout (progress goes to stderr).
        #[arg(long)]
        json: bool,
    },
    /// Start a run of a protocol the orchestrator has loaded.
    Trigger {
        /// The protocol id.
        protocol: String,
        /// An input value, `name=value` (repeatable).
        #[arg(short, long = "input", value_name = "NAME=VALUE", value_parser = parse_input)]
        inputs: Vec<(String, String)>,
        /// Follow the run until it ends; exit 0 only if it succeeded.
        #[arg(long)]
        wait: bool,
        /// Print JSON (the run id, or with --wait the final status).
        #[arg(long)]
        json: bool,
        /// Retry-safe key: every trigger of this protocol with the same key gets the run the
        /// first one started (the same key with other inputs is refused).
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Show one run.
    Status {
        /// The run id.
        run_id: String,
        /// Print the stable JSON status (see docs/status-json.md).
        #[arg(long)]
        json: bool,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Show a run's audit trail: every durable transition, what caused it and what changed.
    Audit {
        /// The run id.
        run_id: String,
        /// Print the records as a JSON array.
        #[arg(long)]
        json: bool,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Answer a prompt with one of its options: `muster answer ESC-12 rollback --note "disk full"`
    /// (escalations, decisions), or a gate that asks: `muster answer RUN GATE continue|rollback|block`.
    /// Signed with your key (`muster keygen`); the orchestrator checks you may answer it.
    Answer {
        /// `ESC-12 OPTION`, or `RUN GATE OPTION`.
        #[arg(num_args = 2..=3, value_name = "PROMPT OPTION", required = true)]
        words: Vec<String>,
        /// Why, kept with the answer.
        #[arg(long)]
        note: Option<String>,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Acknowledge an escalation (triage): you are on it; a decision is still needed.
    Ack(PromptRef),
    /// Fill (some of) a form: `muster form F-3 project=atlas replicas=3`. Invalid values are
    /// refused with the reason and nothing is kept; partial answers are kept.
    Form {
        /// The form, e.g. `F-3`.
        prompt: String,
        /// `field=value` (repeatable).
        #[arg(value_name = "FIELD=VALUE", required = true, value_parser = parse_input)]
        fields: Vec<(String, String)>,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Approve an approval step. If it is bound to a plan, pass the binding `muster show` prints.
    Approve {
        /// The approval, e.g. `A-4`.
        prompt: String,
        /// The binding shown with the approval (`sha256:...`).
        #[arg(long)]
        binding: Option<String>,
        /// Why, kept with the answer.
        #[arg(long)]
        note: Option<String>,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Reject an approval (its step fails) or an escalation (its fallback applies).
    Reject {
        /// The prompt, e.g. `A-4` or `ESC-12`.
        prompt: String,
        /// Why.
        #[arg(long, required = true)]
        reason: String,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Confirm a manual step done.
    Done(PromptRef),
    /// List what waits for people (escalations, forms, approvals, decisions, manual steps).
    Escalations {
        /// Include answered, expired and withdrawn ones.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Show a prompt: what happened, the evidence, the options and the deadlines.
    Show {
        /// The prompt, e.g. `ESC-12`.
        prompt: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Cancel a run: compensate what it did (reverse order) and end it `cancelled`.
    Cancel(RunRef),
    /// Pause a run: nothing new starts; running steps finish.
    Pause(RunRef),
    /// Resume a paused run.
    Resume(RunRef),
    /// Run a failed step again (reopens a failed run).
    Retry {
        /// The run and who asks.
        #[command(flatten)]
        run: RunRef,
        /// The failed step.
        step: String,
    },
    /// Skip a pending or failed step with a reason; the steps after it proceed.
    Skip {
        /// The run and who asks.
        #[command(flatten)]
        run: RunRef,
        /// The step.
        step: String,
        /// Why (recorded in the run).
        #[arg(long)]
        reason: String,
    },
    /// List runs, oldest first.
    Runs {
        /// Print a JSON array of statuses.
        #[arg(long)]
        json: bool,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
    },
    /// Check protocol files (or directories of them) without running anything.
    Validate {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Print diagnostics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Draw a protocol: phases as clusters, steps, human steps, gates, escalations.
    Graph {
        /// The protocol file.
        file: PathBuf,
        /// `mermaid` (Markdown previews) or `dot` (Graphviz: `dot -Tsvg`).
        #[arg(long, value_enum, default_value_t = crate::graph::Format::Mermaid)]
        format: crate::graph::Format,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Turn a document written for another tool into a protocol file.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Run the orchestrator service.
    Orchestrator {
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
        /// Directory of protocol files to load.
        #[arg(long, value_name = "DIR")]
        scenarios: Option<PathBuf>,
    },
    /// Run a role agent service.
    Agent {
        /// The role: resource, devops, security or sre.
        role: Role,
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
        /// Steps to run at once.
        #[arg(long)]
        concurrency: Option<usize>,
        /// Instance id (default: <role>-<host>-<pid>).
        #[arg(long)]
        id: Option<String>,
    },
    /// Run the HTTP gateway: signed webhook requests start runs of protocols that declare a
    /// `webhook` trigger.
    #[command(after_help = GATEWAY_HELP)]
    Gateway {
        /// Where the cluster is.
        #[command(flatten)]
        cluster: Cluster,
        /// Address and port to listen on (port 0 picks a free one; the log says which).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8480")]
        listen: SocketAddr,
        /// Directory of protocol files, the same the orchestrator loads; the gateway reads only
        /// their webhook triggers.
        #[arg(long, value_name = "DIR")]
        scenarios: Option<PathBuf>,
    },
    /// Run the chat bridge: carry prompts (escalations, approvals, forms, ...) to people in a
    /// Matrix room, Slack and an HTTP API, and their answers back, signed by the bridge's
    /// principal.
    #[command(after_help = BRIDGE_HELP)]
    Bridge(Box<BridgeArgs>),
    /// Measure step throughput and latency through NATS against the raw JetStream floor.
    Bench(bench::BenchArgs),
    /// Create the key that signs your answers, and print what the orchestrator's muster.toml
    /// needs to believe them. Never overwrites an existing key file.
    Keygen {
        /// Where to write the seed (mode 0600). Default: `answer_key` from muster.toml, else
        /// ~/.config/muster/answer.nk.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The principal name to sign as (default: `principal` from muster.toml, else $USER).
        #[arg(long)]
        name: Option<String>,
        /// Print {"public_key", "file"} as JSON instead of the muster.toml snippet.
        #[arg(long)]
        json: bool,
    },
}

/// `muster bridge`.
#[derive(Debug, Clone, clap::Args)]
pub struct BridgeArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub cluster: Cluster,
    /// Matrix: the homeserver's base URL, e.g. https://matrix.example.org. Give it with
    /// --matrix-room and a login to carry prompts to a room.
    #[arg(long, value_name = "URL", requires = "matrix_room", help_heading = "Matrix")]
    pub matrix_homeserver: Option<String>,
    /// The room to post in and read answers from: an id (!abc:example.org) or an alias
    /// (#ops:example.org). The bridge joins it at start, so invite its user first.
    #[arg(long, value_name = "ROOM_ID_OR_ALIAS", requires = "matrix_homeserver", help_heading = "Matrix")]
    pub matrix_room: Option<String>,
    /// Log in as this user (localpart or @user:server) with m.login.password.
    #[arg(
        long,
        value_name = "USER",
        requires_all = ["matrix_password_env", "matrix_homeserver"],
        conflicts_with = "matrix_token_env",
        help_heading = "Matrix"
    )]
    pub matrix_user: Option<String>,
    /// The environment variable holding that user's password (never a flag: flags show in `ps`).
    #[arg(long, value_name = "VAR", requires = "matrix_user", help_heading = "Matrix")]
    pub matrix_password_env: Option<String>,
    /// Use the access token in this environment variable instead of a password.
    #[arg(long, value_name = "VAR", requires = "matrix_homeserver", help_heading = "Matrix")]
    pub matrix_token_env: Option<String>,
    /// The device id of password logins. Keep it fixed: the homeserver scopes the transaction
    /// ids that keep retried posts from doubling to the device.
    #[arg(long, value_name = "ID", default_value = "MUSTER_BRIDGE", help_heading = "Matrix")]
    pub matrix_device_id: String,
    /// Messages read per /sync; more arriving at once (say, while the bridge was down) are read
    /// back page by page.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000), help_heading = "Matrix")]
    pub matrix_timeline_limit: u32,
    /// HTTP: serve the HTTP API (with --http-tokens-file) and the Slack endpoints (with
    /// --slack-signing-secret-env) on this address, e.g. 127.0.0.1:8481 behind a TLS proxy.
    #[arg(long, value_name = "ADDR", help_heading = "HTTP API and Slack")]
    pub http_listen: Option<SocketAddr>,
    /// The HTTP API's bearer tokens: one `<person> <token>` per line; each person answers as
    /// their `http` identity in the responder map.
    #[arg(long, value_name = "FILE", requires = "http_listen", help_heading = "HTTP API and Slack")]
    pub http_tokens_file: Option<PathBuf>,
    /// The environment variable holding the Slack app's signing secret: serves POST
    /// /slack/commands and /slack/actions on --http-listen.
    #[arg(long, value_name = "VAR", requires = "http_listen", help_heading = "HTTP API and Slack")]
    pub slack_signing_secret_env: Option<String>,
    /// The environment variable holding a Slack incoming-webhook URL: every notice is posted
    /// there too, from a consumer of its own (`bridge-slack`).
    #[arg(long, value_name = "VAR", help_heading = "HTTP API and Slack")]
    pub slack_webhook_url_env: Option<String>,
    /// File holding the principal's nkey seed (SU...). Answers from every channel are signed
    /// with it; the orchestrator's responder map must trust the matching public key (logged at
    /// start) to speak for `matrix`, `slack` and/or `http`.
    #[arg(long, value_name = "SEEDFILE")]
    pub key_file: PathBuf,
    /// The principal the bridge signs as (its name in the responder map).
    #[arg(long, value_name = "NAME", default_value = "bridge")]
    pub principal: String,
    /// How long a notice stays claimed while it is posted; after a crash it is posted (once)
    /// when this has passed.
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub notice_lease: muster_schemas::protocol::DurationSpec,
}

/// `muster gateway --help`: what a caller must send.
const GATEWAY_HELP: &str = r#"Endpoints:
  POST /v1/protocols/{id}/runs   body {"inputs": {"name": value}} (optional; values: string, number, bool)
       201 {"run_id": "...", "existing": false}   a run started
       200 {"run_id": "...", "existing": true}    this Idempotency-Key already started that run
       400 bad key or body · 401 bad signature · 404 unknown protocol or no webhook trigger
       413 body over 64 KiB · 422 inputs refused · 503/504 orchestrator unavailable or slow
       Errors are {"error": "..."}.
  GET  /healthz

Headers:
  X-Muster-Timestamp: <unix seconds>       at most 300 s from the gateway's clock
  X-Muster-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
  Idempotency-Key:    <1-200 printable ASCII characters>; retries with the same key never
                      start a second run

The secret is the value of the environment variable the protocol's trigger names, as the
gateway saw it when it started:
  triggers:
    - webhook: {secret_env: DEPLOY_HOOK_SECRET}

Signing with openssl and sending with curl:
  body='{"inputs":{"environment":"staging"}}'
  ts=$(date +%s)
  sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac "$DEPLOY_HOOK_SECRET" | sed 's/^.* //')
  curl -sS -X POST http://127.0.0.1:8480/v1/protocols/deploy/runs \
    -H "X-Muster-Timestamp: $ts" -H "X-Muster-Signature: v1=$sig" \
    -H "Idempotency-Key: deploy-$(uuidgen)" -H 'Content-Type: application/json' \
    --data-binary "$body"

Sign the exact bytes you send (curl -d would strip newlines; use --data-binary)."#;

/// `muster bridge --help`: what people type and what the bridge needs.
const BRIDGE_HELP: &str = r#"Channels (give at least one; any combination runs in one process):
  Matrix     --matrix-homeserver, --matrix-room and a login: notices in a room, one thread per
             prompt, answers typed in the room (below).
  Slack      --slack-webhook-url-env VAR: every notice is posted to that incoming webhook too;
             --slack-signing-secret-env VAR with --http-listen: /muster slash commands and
             buttons (POST /slack/commands, /slack/actions) answer prompts.
  HTTP API   --http-listen ADDR --http-tokens-file FILE: GET /v1/escalations,
             GET /v1/escalations/{id}, POST /v1/escalations/{id}/answer with a bearer token.
Secrets come only from files and environment variables, never flags, and are never logged.

What people type in the Matrix room (case does not matter; prefix with !muster or mention the
bot when it is not obviously a command):
  help                                   list the commands
  show ESC-12                            post the prompt's latest notice again
  ack ESC-12                             acknowledge an escalation
  answer ESC-12 <option> [because <why>] pick an option of an escalation or decision (ESC, D)
  approve A-4 [<binding>]                approve
  reject A-4 <reason>                    reject an approval or an escalation's request
  form F-3 field=value f2="two words"    fill form fields
  done M-6 [because <note>]              confirm a manual step

Answers are signed as the bridge's principal for the person who gave them (their matrix,
slack or http identity) and expire after 5 minutes; the orchestrator decides who may answer
what and says why when it refuses.

Examples:
  muster keygen --out bridge.nk --name bridge     # prints the responder-map entry
  # Matrix only
  export MATRIX_PASSWORD=...
  muster bridge --nats nats://127.0.0.1:4222 --key-file bridge.nk \
    --matrix-homeserver https://matrix.example.org --matrix-room '#ops:example.org' \
    --matrix-user muster --matrix-password-env MATRIX_PASSWORD
  # Slack and the HTTP API on one port (put a TLS proxy in front)
  export SLACK_SIGNING_SECRET=... SLACK_WEBHOOK_URL=https://hooks.slack.com/services/...
  muster bridge --nats nats://127.0.0.1:4222 --key-file bridge.nk \
    --http-listen 127.0.0.1:8481 --http-tokens-file /etc/muster/bridge-tokens \
    --slack-signing-secret-env SLACK_SIGNING_SECRET --slack-webhook-url-env SLACK_WEBHOOK_URL
  curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8481/v1/escalations

The log line `... ready` of each channel shows the public key (U...) to put in the responder
map. The Matrix side keeps its /sync position, each prompt's thread and latest notice in the
muster_prompts bucket, so a restart neither repeats nor misses anything; notices go to the room
and to Slack from separate durable consumers (`bridge`, `bridge-slack`), so one being down does
not hold the other back. SIGINT/SIGTERM stop every channel; open HTTP requests get the shutdown
grace period to finish."#;

/// A run to act on, who acts, and where the cluster is.
#[derive(Debug, Clone, clap::Args)]
pub struct RunRef {
    /// The run id.
    pub run_id: String,
    /// Who asks (recorded in the run); your user name by default.
    #[arg(long = "as", value_name = "NAME")]
    pub by: Option<String>,
    /// Where the cluster is.
    #[command(flatten)]
    pub cluster: Cluster,
}

/// A prompt to act on, and where the cluster is.
#[derive(Debug, Clone, clap::Args)]
pub struct PromptRef {
    /// The prompt id, e.g. `ESC-12`.
    pub prompt: String,
    /// Why, kept with the answer.
    #[arg(long)]
    pub note: Option<String>,
    /// Where the cluster is.
    #[command(flatten)]
    pub cluster: Cluster,
}

/// What `muster import` reads.
#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A spec-kit tasks.md: `## Phase N` sections of `- [ ] T001 [P] [US1] ...` tasks, and its
    /// Dependencies section. Each task becomes a manual step for the `implementers` group.
    Speckit {
        /// The tasks.md file.
        file: PathBuf,
        /// Protocol id (default: from the `# Tasks: <name>` heading, else the file name).
        #[arg(long)]
        id: Option<String>,
        /// One role owning every step (default: inferred per task from its text).
        #[arg(long, value_name = "ROLE")]
        owner: Option<Role>,
        /// Owner of tasks whose text matches no role.
        #[arg(long, value_name = "ROLE", default_value = "devops")]
        default_owner: Role,
        /// Run a program for a task instead of asking people, e.g. `T039=make lint` (repeatable).
        #[arg(long = "exec", value_name = "TASK=PROGRAM [ARGS]", value_parser = crate::import::speckit::parse_exec_mapping)]
        exec: Vec<(String, crate::import::speckit::ExecMapping)>,
        /// How long people have for each task (`3d`, `1w`).
        #[arg(long, value_name = "DURATION")]
        deadline: Option<muster_schemas::protocol::DurationSpec>,
        /// Write the protocol to this file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

fn parse_input(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("`{text}` has an empty name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Exit codes (see the module docs).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The run did not succeed.
    pub const RUN_FAILED: u8 = 1;
    /// Invalid input.
    pub const INVALID: u8 = 2;
    /// The cluster could not be reached or failed.
    pub const UNAVAILABLE: u8 = 3;
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    let settings = match settings::Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(exit::INVALID);
        }
    };
    let code = match cli.command {
        Command::Run { file, inputs, nats, json } => commands::run(&settings, &file, inputs, nats, json).await,
        Command::Trigger { protocol, inputs, wait, json, idempotency_key, cluster } => {
            let request = RunTriggered {
                protocol_id: protocol,
                inputs: inputs.into_iter().collect(),
                protocol: None,
                idempotency_key,
                requested_by: std::env::var("USER").ok(),
            };
            commands::trigger(&settings, request, wait, json, cluster).await
        }
        Command::Status { run_id, json, cluster } => commands::status(&settings, &run_id, json, cluster).await,
        Command::Audit { run_id, json, cluster } => audit::audit(&settings, &run_id, json, cluster).await,
        Command::Runs { json, cluster } => commands::runs(&settings, json, cluster).await,
        Command::Cancel(r) => commands::control(&settings, &r.run_id, Control::Cancel, r.by, r.cluster).await,
        Command::Pause(r) => commands::control(&settings, &r.run_id, Control::Pause, r.by, r.cluster).await,
        Command::Resume(r) => commands::control(&settings, &r.run_id, Control::Resume, r.by, r.cluster).await,
        Command::Retry { run, step } => {
            commands::control(&settings, &run.run_id, Control::Retry { step }, run.by, run.cluster).await
        }
        Command::Skip { run, step, reason } => {
            commands::control(&settings, &run.run_id, Control::Skip { step, reason }, run.by, run.cluster).await
        }
        Command::Answer { mut words, note, cluster } => {
            let option = words.pop().unwrap_or_default();
            prompts::respond(&settings, &words, AnswerAction::Choose { option }, note, cluster).await
        }
        Command::Ack(p) => prompts::respond(&settings, &[p.prompt], AnswerAction::Acknowledge, p.note, p.cluster).await,
        Command::Form { prompt, fields, cluster } => {
            let action = AnswerAction::Fill { fields: fields.into_iter().collect() };
            prompts::respond(&settings, &[prompt], action, None, cluster).await
        }
        Command::Approve { prompt, binding, note, cluster } => {
            prompts::respond(&settings, &[prompt], AnswerAction::Approve { binding }, note, cluster).await
        }
        Command::Reject { prompt, reason, cluster } => {
            prompts::respond(&settings, &[prompt], AnswerAction::Reject { reason }, None, cluster).await
        }
        Command::Done(p) => prompts::respond(&settings, &[p.prompt], AnswerAction::Confirm, p.note, p.cluster).await,
        Command::Escalations { all, json, cluster } => prompts::list(&settings, all, json, cluster).await,
        Command::Show { prompt, json, cluster } => prompts::show(&settings, &prompt, json, cluster).await,
        Command::Validate { paths, json } => commands::validate(&paths, json),
        Command::Orchestrator { cluster, scenarios } => services::orchestrator(&settings, cluster, scenarios).await,
        Command::Agent { role, cluster, concurrency, id } => {
            services::agent(&settings, role, cluster, concurrency, id).await
        }
        Command::Gateway { cluster, listen, scenarios } => {
            services::gateway(&settings, cluster, listen, scenarios).await
        }
        Command::Bench(args) => bench::run(&settings, args).await,
        Command::Keygen { out, name, json } => keys::keygen(&settings, out, name, json),
        Command::Bridge(args) => services::bridge(&settings, *args).await,
        Command::Graph { file, format, output } => convert::graph(&file, format, output.as_deref()),
        Command::Import(ImportCommand::Speckit { file, id, owner, default_owner, exec, deadline, output }) => {
            let options = crate::import::speckit::ImportOptions {
                id,
                file_name: Some(file.display().to_string()),
                owner,
                default_owner,
                exec: exec.into_iter().collect(),
                deadline,
            };
            convert::import_speckit(&file, &options, output.as_deref())
        }
    };
    ExitCode::from(code)
}
