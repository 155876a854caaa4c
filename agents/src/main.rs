//! The `muster` binary: parse arguments, start logging, hand over to [`muster_agents::cli::run`].

use clap::Parser;
use muster_agents::cli::{Cli, Command};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // User commands keep quiet unless asked; services log at info.
    let service = matches!(
        cli.command,
        Command::Orchestrator { .. } | Command::Agent { .. } | Command::Gateway { .. } | Command::Bridge(_)
    );
    let level = match (cli.verbose, service) {
        (0, false) => "warn",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    muster_agents::cli::run(cli).await
}
