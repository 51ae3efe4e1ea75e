//! Configuration of the server roles: defaults, then `SCANHOOK_*` environment variables,
//! then flags (clap resolves the last two). Everything is validated here, at start-up,
//! so a bad setting stops the process with a message that names it.

use crate::clock::parse_duration;
use crate::delivery::guard::Guard;
use crate::delivery::schedule::Schedule;
use crate::delivery::worker::DeliveryConfig;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where the database is: shared by `serve`, `migrate` and `token`.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Directory that holds the SQLite database file (`scanhook.db`).
    #[arg(long, env = "SCANHOOK_DATA_DIR", default_value = "./scanhook-data")]
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; wins over --data-dir.
    #[arg(long, env = "SCANHOOK_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl DatabaseArgs {
    /// The database URL to connect to, creating the data directory for SQLite.
    pub fn resolve(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the data directory {}: {e} (set --data-dir or SCANHOOK_DATA_DIR)",
                self.data_dir.display()
            )
        })?;
        Ok(format!(
            "sqlite://{}",
            self.data_dir.join("scanhook.db").display()
        ))
    }
}

/// Delivery flags, shared by `serve` and `worker`.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Delays between delivery attempts, comma-separated (±20 % jitter).
    #[arg(
        long,
        env = "SCANHOOK_RETRY_SCHEDULE",
        default_value = "5s,5m,30m,2h,5h,10h,10h"
    )]
    pub retry_schedule: String,
    /// CIDRs that may be delivered to although not global (e.g. 10.0.0.0/8), comma-separated.
    #[arg(long, env = "SCANHOOK_DELIVER_ALLOW_CIDRS", default_value = "")]
    pub deliver_allow_cidrs: String,
    /// Timeout of one delivery attempt.
    #[arg(long, env = "SCANHOOK_DELIVERY_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub delivery_timeout: Duration,
    /// Requests in flight per integration.
    #[arg(long, env = "SCANHOOK_DELIVERY_CONCURRENCY", default_value_t = 8)]
    pub delivery_concurrency: usize,
    /// Disable an integration that has failed continuously this long.
    #[arg(long, env = "SCANHOOK_DISABLE_AFTER", default_value = "5d", value_parser = parse_duration)]
    pub disable_after: Duration,
}

impl DeliveryArgs {
    pub fn resolve(&self) -> anyhow::Result<(DeliveryConfig, Vec<ipnet::IpNet>)> {
        let schedule = Schedule::parse(&self.retry_schedule)
            .map_err(|e| anyhow::anyhow!("--retry-schedule / SCANHOOK_RETRY_SCHEDULE: {e}"))?;
        let allow = Guard::parse_allow_list(&self.deliver_allow_cidrs).map_err(|e| {
            anyhow::anyhow!("--deliver-allow-cidrs / SCANHOOK_DELIVER_ALLOW_CIDRS: {e}")
        })?;
        anyhow::ensure!(
            self.delivery_concurrency >= 1,
            "--delivery-concurrency must be at least 1"
        );
        let config = DeliveryConfig {
            schedule,
            timeout: self.delivery_timeout,
            per_integration: self.delivery_concurrency,
            disable_after: self.disable_after,
            ..DeliveryConfig::default()
        };
        Ok((config, allow))
    }
}

/// Flags of `scanhook serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SCANHOOK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The URL users and `semgrep ci` reach this server at (used in links such as
    /// `semgrep.url`). Default: http://LISTEN.
    #[arg(long, env = "SCANHOOK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Scans without /complete or /error for this long are marked abandoned (e.g. 90m, 2h).
    #[arg(long, env = "SCANHOOK_ABANDON_AFTER", default_value = "2h", value_parser = parse_duration)]
    pub abandon_after: Duration,
    /// Largest accepted /results body, in MiB.
    #[arg(long, env = "SCANHOOK_MAX_RESULTS_MB", default_value_t = 256)]
    pub max_results_mb: usize,
    /// Slug of the deployment created on first start of an empty database.
    #[arg(long, env = "SCANHOOK_DEPLOYMENT", default_value = "scanhook")]
    pub deployment: String,
    /// Serve the API only; deliveries are left to `scanhook worker` processes.
    #[arg(long, env = "SCANHOOK_NO_DELIVER")]
    pub no_deliver: bool,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub database_url: String,
    pub abandon_after: Duration,
    pub max_results_bytes: usize,
    pub deployment: String,
    /// Run delivery workers in this process.
    pub deliver: bool,
    pub delivery: DeliveryConfig,
    /// Non-global networks that may be delivered to.
    pub allow_cidrs: Vec<ipnet::IpNet>,
}

impl Config {
    /// Defaults around a database, listening on an ephemeral loopback port (tests, benches).
    pub fn local(database_url: String) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().expect("a socket address"),
            public_url: "http://scanhook.test".into(),
            database_url,
            abandon_after: Duration::from_secs(2 * 3600),
            max_results_bytes: 256 * 1024 * 1024,
            deployment: "scanhook".into(),
            deliver: true,
            delivery: DeliveryConfig::default(),
            allow_cidrs: vec![],
        }
    }

    pub fn from_args(args: &ServeArgs) -> anyhow::Result<Config> {
        let public_url = match &args.public_url {
            Some(u) => {
                let parsed = url::Url::parse(u).map_err(|e| {
                    anyhow::anyhow!("--public-url / SCANHOOK_PUBLIC_URL {u:?} is not a URL: {e}")
                })?;
                anyhow::ensure!(
                    matches!(parsed.scheme(), "http" | "https"),
                    "--public-url must be an http(s) URL, got {u:?}"
                );
                u.trim_end_matches('/').to_string()
            }
            None => format!("http://{}", args.listen),
        };
        anyhow::ensure!(
            args.max_results_mb >= 1,
            "--max-results-mb must be at least 1"
        );
        anyhow::ensure!(
            !crate::ids::slugify(&args.deployment).is_empty(),
            "--deployment needs letters or digits"
        );
        let (delivery, allow_cidrs) = args.delivery.resolve()?;
        Ok(Config {
            deliver: !args.no_deliver,
            delivery,
            allow_cidrs,
            listen: args.listen,
            public_url,
            database_url: args.db.resolve()?,
            abandon_after: args.abandon_after,
            max_results_bytes: args.max_results_mb * 1024 * 1024,
            deployment: crate::ids::slugify(&args.deployment),
        })
    }
}
