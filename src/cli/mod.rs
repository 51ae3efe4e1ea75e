//! The binary's roles, one file each. `main.rs` only calls [`main`].
//! - `serve` ([`serve`]): the API server with its background tasks.
//! - `worker` ([`worker`]): webhook delivery only.
//! - `migrate` ([`migrate`]): run the database migrations alone.
//! - `vacuum` ([`vacuum`]): put an existing SQLite database in incremental auto-vacuum mode.
//! - `token` ([`token`]): create tokens directly in the database.
//! - `rules` ([`rules`]): manage rules through a running server ([`client`]).
//! - `integrations`, `modes`, `deliveries` ([`integrations`]): webhooks, likewise.
//! - `upload` ([`upload`]): send another scanner's findings (SARIF, `semgrep scan --json`).
//! - `openapi`: print the API's OpenAPI document.
//! - `rotate-secret-key` ([`secret_key`]): re-seal the stored secrets under a new key.

pub mod backup;
pub mod client;
pub mod integrations;
pub mod migrate;
pub mod rules;
pub mod secret_key;
pub mod serve;
pub mod token;
pub mod upload;
pub mod vacuum;
pub mod worker;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "scanhook",
    version,
    about = "Self-hosted findings hub for `semgrep ci`",
    after_help = "Logs go to stderr. Their filter is SCANHOOK_LOG, else RUST_LOG \
        (e.g. RUST_LOG=debug, or RUST_LOG=info,scanhook=debug); the default is info for \
        serve and worker, warn for the other commands."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: semgrep-ci protocol, JSON API, background tasks.
    Serve(Box<crate::config::ServeArgs>),
    /// Deliver webhooks only (no API): a worker process beside `serve --no-deliver`.
    Worker(worker::WorkerArgs),
    /// Run the database migrations and exit.
    Migrate(crate::config::DatabaseArgs),
    /// Copy a live SQLite database into FILE, consistently, while scanhook runs.
    Backup(backup::BackupArgs),
    /// Make FILE (a backup) the database; never overwrites an existing one.
    Restore(backup::RestoreArgs),
    /// Rewrite a SQLite database once in incremental auto-vacuum mode, so that pruned
    /// space goes back to the file system (stop serve first; new databases need not).
    Vacuum(crate::config::DatabaseArgs),
    /// Create, list and revoke API tokens (on the database, or with --server through the API).
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
    /// Upload SARIF or `semgrep scan --json` files as scans (exit 1: a new finding of a
    /// rule in Block mode; 2: an error).
    Upload(upload::UploadArgs),
    /// Print the OpenAPI document of the API (as served at /api/openapi.json).
    Openapi,
    /// Write the JSON Schema of every webhook body into DIR as EVENT.json (as served at
    /// /api/v1/schemas/EVENT).
    Schemas {
        #[arg(default_value = "docs/schemas")]
        dir: std::path::PathBuf,
    },
    /// Re-seal the database's secrets under a new key (stop the servers first).
    RotateSecretKey(secret_key::RotateArgs),
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
            Command::Serve(args) => serve::run(*args).await,
            Command::Worker(args) => worker::run(args).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::Vacuum(args) => vacuum::run(args).await,
            Command::Token(cmd) => token::run(cmd).await,
            Command::Rules(cmd) => rules::run(cmd).await,
            Command::Integrations(cmd) => integrations::run_integrations(cmd).await,
            Command::Modes(cmd) => integrations::run_modes(cmd).await,
            Command::Deliveries(cmd) => integrations::run_deliveries(cmd).await,
            Command::RotateSecretKey(args) => secret_key::run(args).await,
            Command::Upload(args) => upload::run(args).await,
            Command::Openapi => {
                print!("{}", crate::http::openapi_json());
                Ok(())
            }
            Command::Schemas { dir } => write_schemas(&dir),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<upload::Exit>() => {
            ExitCode::from(e.downcast_ref::<upload::Exit>().map_or(1, |x| x.0))
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_schemas(dir: &std::path::Path) -> anyhow::Result<()> {
    use crate::domain::events;
    std::fs::create_dir_all(dir)?;
    for kind in events::BODIES {
        let path = dir.join(format!("{kind}.json"));
        std::fs::write(&path, events::schema_json(kind))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Logs go to stderr, so that stdout stays for what a command prints (tokens, JSON). The
/// filter is `SCANHOOK_LOG`, else `RUST_LOG`, else the role's default. Every line passes
/// through [`EscapedStderr`]: what a client sent can never start a line of its own.
fn init_tracing(server: bool) {
    let default = if server { "info,sqlx=warn" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SCANHOOK_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(|| EscapedStderr(std::io::stderr()))
        .try_init();
}

/// Writes log records with what would break or disguise a line escaped: C0 controls
/// (`\n` → `\x0a`, ESC → `\x1b`, NUL → `\x00`) but for the newline that ends each record,
/// DEL and C1 controls (`\u{85}`, which some readers take for a line break), the Unicode
/// line and paragraph separators, and format characters such as the bidi overrides (`\u{202e}`,
/// which makes a terminal show text out of order). A log line is one record, and reads as
/// what it holds, whatever a field holds. The formatter writes each record whole, in one call.
pub struct EscapedStderr<W>(pub W);

impl<W: std::io::Write> std::io::Write for EscapedStderr<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&escape_controls(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `buf` with every control byte but a final newline (and tabs) written as `\xNN`, every
/// C1 control, line or paragraph separator and format character as `\u{NNNN}`, and bytes
/// that are not UTF-8 as `\xNN`.
pub fn escape_controls(buf: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(buf.len() + 16);
    let last = buf.len().saturating_sub(1);
    let mut at = 0;
    for chunk in buf.utf8_chunks() {
        for c in chunk.valid().chars() {
            let final_newline = c == '\n' && at == last;
            if final_newline || c == '\t' {
                out.push(c as u8);
            } else if c < ' ' || c == '\u{7f}' {
                let _ = write!(out, "\\x{:02x}", c as u32);
            } else if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}')
                || crate::domain::text::is_format(c)
            {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            } else {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
            at += c.len_utf8();
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
            at += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn a_record_stays_one_line() {
        let forged = b"scan started git_ref=main\n2026-12-01T00:00:00Z  INFO web UI session opened\x1b[2J\0\n";
        let out = String::from_utf8(escape_controls(forged)).unwrap();
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        assert!(out.ends_with('\n'));
        assert!(
            out.contains("main\\x0a2026") && out.contains("\\x1b[2J\\x00"),
            "{out}"
        );
        assert_eq!(escape_controls(b"a\tb\n"), b"a\tb\n");
    }

    #[test]
    fn unicode_that_breaks_or_disguises_a_line_is_escaped() {
        let record = "ref=main\u{85}next\u{9b}2J \u{2028}\u{2029} evil\u{202e}txt.exe \u{2066}x\u{2069} é 日本 😀\n";
        let out = String::from_utf8(escape_controls(record.as_bytes())).unwrap();
        assert_eq!(
            out,
            "ref=main\\u{85}next\\u{9b}2J \\u{2028}\\u{2029} evil\\u{202e}txt.exe \\u{2066}x\\u{2069} é 日本 😀\n"
        );
        for c in ('\u{80}'..='\u{9f}')
            .chain('\u{202a}'..='\u{202e}')
            .chain('\u{2066}'..='\u{2069}')
        {
            let out = String::from_utf8(escape_controls(format!("a{c}b").as_bytes())).unwrap();
            assert!(!out.contains(c), "{c:?} passed as {out:?}");
        }
        // A byte that is not UTF-8 cannot smuggle one either.
        assert_eq!(escape_controls(b"a\xc2b\n"), b"a\\xc2b\n");
    }
}
