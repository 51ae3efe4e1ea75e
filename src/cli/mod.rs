//! The binary's roles, one file each. `main.rs` only calls [`main`].
//! - `serve` ([`serve`]): the API server with its background tasks.
//! - `worker` ([`worker`]): webhook delivery only.
//! - `migrate` ([`migrate`]): run the database migrations alone.
//! - `token` ([`token`]): create tokens directly in the database.
//! - `rules` ([`rules`]): manage rules through a running server ([`client`]).
//! - `integrations`, `modes`, `deliveries` ([`integrations`]): webhooks, likewise.
//! - `openapi`: print the API's OpenAPI document.

pub mod client;
pub mod integrations;
pub mod migrate;
pub mod rules;
pub mod serve;
pub mod token;
pub mod worker;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "scanhook",
    version,
    about = "Self-hosted findings hub for `semgrep ci`"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: semgrep-ci protocol, JSON API, background tasks.
    Serve(crate::config::ServeArgs),
    /// Deliver webhooks only (no API): a worker process beside `serve --no-deliver`.
    Worker(worker::WorkerArgs),
    /// Run the database migrations and exit.
    Migrate(crate::config::DatabaseArgs),
    /// Manage API tokens (works directly on the database).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Manage rules and their modes (a client of a running server).
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Manage webhook integrations (a client of a running server).
    #[command(subcommand)]
    Integrations(integrations::IntegrationsCommand),
    /// Choose which integrations each rule mode notifies.
    #[command(subcommand)]
    Modes(integrations::ModesCommand),
    /// Read the delivery log; resend and recover messages.
    #[command(subcommand)]
    Deliveries(integrations::DeliveriesCommand),
    /// Print the OpenAPI document of the API (as served at /api/openapi.json).
    Openapi,
}

/// Parses the command line and runs the chosen role.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(matches!(
        cli.command,
        Command::Serve(_) | Command::Worker(_)
    ));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Worker(args) => worker::run(args).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Token(cmd) => token::run(cmd).await,
            Command::Rules(cmd) => rules::run(cmd).await,
            Command::Integrations(cmd) => integrations::run_integrations(cmd).await,
            Command::Modes(cmd) => integrations::run_modes(cmd).await,
            Command::Deliveries(cmd) => integrations::run_deliveries(cmd).await,
            Command::Openapi => {
                print!("{}", crate::http::openapi_json());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, so that stdout stays for what a command prints (tokens, JSON).
fn init_tracing(server: bool) {
    let default = if server { "info,sqlx=warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCANHOOK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
