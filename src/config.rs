//! Configuration of the server roles, in layers: defaults, then an optional TOML file
//! (`--config` / `SCANHOOK_CONFIG`), then `SCANHOOK_*` environment variables, then flags
//! (clap resolves the last two). Every setting has one name everywhere: the flag
//! `--delivery-timeout`, the variable `SCANHOOK_DELIVERY_TIMEOUT`, the file key
//! `delivery_timeout`. Everything is validated here, at start-up, so a bad setting stops
//! the process with a message that names it and where it came from.

use crate::clock::parse_duration;
use crate::delivery::guard::Guard;
use crate::delivery::schedule::Schedule;
use crate::delivery::sender::OutboundProxy;
use crate::delivery::worker::DeliveryConfig;
use crate::domain::client::TrustedProxies;
use crate::retention::{parse_retention, Retention};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every setting: its name (the file key; the flag and the variable are derived from it),
/// its default as it would be typed, and what it means. `docs/CONFIG.md` is this table.
pub const SETTINGS: &[(&str, Option<&str>, &str)] = &[
    ("listen", Some("127.0.0.1:8080"), "address to listen on"),
    (
        "public_url",
        None,
        "the URL users and semgrep ci reach this server at (default http://LISTEN)",
    ),
    (
        "data_dir",
        Some("./scanhook-data"),
        "directory of the SQLite database file scanhook.db",
    ),
    (
        "database_url",
        None,
        "sqlite://PATH or postgres://…; wins over data_dir",
    ),
    (
        "secret_key_file",
        None,
        "the key that seals integration secrets (default DATA_DIR/secret.key, made on first start)",
    ),
    (
        "deployment",
        Some("scanhook"),
        "slug of the deployment made on first start",
    ),
    (
        "abandon_after",
        Some("2h"),
        "scans with no /complete or /error by then are abandoned",
    ),
    (
        "max_results_mb",
        Some("256"),
        "largest accepted /results body, in MiB",
    ),
    (
        "max_uploads_in_flight_mb",
        Some("1024"),
        "the most MiB of uploads held at once; beyond, uploads wait, then get 503 and Retry-After",
    ),
    (
        "header_read_timeout",
        Some("10s"),
        "a request's whole header must arrive within this; also how long a kept-alive connection waits for its next request",
    ),
    (
        "body_read_timeout",
        Some("30s"),
        "longest wait for the next piece of a request body (progress, not the whole upload)",
    ),
    (
        "max_connections",
        Some("1024"),
        "most connections open at once; more wait to be accepted until one closes",
    ),
    (
        "max_connections_per_ip",
        Some("256"),
        "most connections open at once from one client address (IPv6: one /64); more are closed as they come",
    ),
    (
        "min_body_rate_kib",
        Some("16"),
        "slowest accepted request body, in KiB/s: a body must have arrived by body_read_timeout + its length at this rate, or 408 (0: no floor)",
    ),
    (
        "trusted_proxies",
        Some(""),
        "reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For names the client for the sign-in throttle; their connections are not capped per address",
    ),
    (
        "no_deliver",
        Some("false"),
        "serve the API only; scanhook worker processes deliver",
    ),
    (
        "retry_schedule",
        Some("5s,5m,30m,2h,5h,10h,10h"),
        "delays between delivery attempts (±20 % jitter)",
    ),
    (
        "deliver_allow_cidrs",
        Some(""),
        "non-global networks that may be delivered to, comma-separated",
    ),
    (
        "outbound_proxy",
        None,
        "deliver through this http(s) proxy; targets are still vetted here first",
    ),
    (
        "delivery_timeout",
        Some("15s"),
        "timeout of one delivery attempt",
    ),
    (
        "delivery_concurrency",
        Some("8"),
        "requests in flight per integration",
    ),
    (
        "disable_after",
        Some("5d"),
        "an integration failing continuously this long is disabled",
    ),
    (
        "retain_delivered",
        Some("30d"),
        "delivered messages and their attempts are pruned this long after delivery (0 or off: kept forever)",
    ),
    (
        "retain_failed",
        Some("90d"),
        "failed messages and their attempts are pruned this long after their last attempt (0 or off: kept forever)",
    ),
    (
        "retain_uploads",
        Some("14d"),
        "raw /results uploads of scans that never completed, and fail-open reports, are pruned this long after they arrived (0 or off: kept forever)",
    ),
];

/// The flag of a setting: `delivery_timeout` → `--delivery-timeout`.
pub fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// The environment variable of a setting: `delivery_timeout` → `SCANHOOK_DELIVERY_TIMEOUT`.
pub fn env_var(key: &str) -> String {
    format!("SCANHOOK_{}", key.to_ascii_uppercase())
}

/// The configuration file, read once: its keys as the text they would be typed as.
#[derive(Debug, Clone, Default)]
pub struct File {
    path: Option<PathBuf>,
    values: toml::Table,
}

impl File {
    /// Reads and checks `path`: TOML, known keys only, values of a simple type.
    pub fn load(path: Option<&Path>) -> anyhow::Result<File> {
        let Some(path) = path else {
            return Ok(File::default());
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the config file {} (--config / SCANHOOK_CONFIG): {e}",
                path.display()
            )
        })?;
        File::parse(path, &text)
    }

    fn parse(path: &Path, text: &str) -> anyhow::Result<File> {
        let values: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            anyhow::anyhow!("config file {}: not valid TOML: {e}", path.display())
        })?;
        for (key, value) in &values {
            if !SETTINGS.iter().any(|(k, _, _)| k == key) {
                let known: Vec<&str> = SETTINGS.iter().map(|(k, _, _)| *k).collect();
                anyhow::bail!(
                    "config file {}: unknown key `{key}`; the keys are {}",
                    path.display(),
                    known.join(", ")
                );
            }
            if as_text(value).is_none() {
                anyhow::bail!(
                    "config file {}: `{key}` must be a string, a number, a boolean or a list of strings",
                    path.display()
                );
            }
        }
        Ok(File {
            path: Some(path.to_path_buf()),
            values,
        })
    }

    /// The value of setting `key`: `given` (a flag or its variable) if set, else the file's,
    /// else the default; parsed by `parse`, whose error is prefixed with where the value
    /// came from.
    pub fn get<T>(
        &self,
        key: &'static str,
        given: Option<&str>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<Option<T>> {
        let (text, from) = match (given, self.values.get(key)) {
            (Some(v), _) => (v.to_string(), format!("{} / {}", flag(key), env_var(key))),
            (None, Some(v)) => (
                as_text(v).expect("checked at load"),
                format!(
                    "config file {}: `{key}`",
                    self.path.as_deref().unwrap_or(Path::new("?")).display()
                ),
            ),
            (None, None) => match default(key) {
                Some(d) => (d.to_string(), format!("the default of {}", flag(key))),
                None => return Ok(None),
            },
        };
        parse(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{from}: {e}"))
    }

    /// Like [`File::get`] for a setting that has a default.
    pub fn value<T>(
        &self,
        key: &'static str,
        given: Option<&str>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<T> {
        self.get(key, given, parse)?
            .ok_or_else(|| anyhow::anyhow!("{} has no default", flag(key)))
    }
}

fn default(key: &str) -> Option<&'static str> {
    SETTINGS
        .iter()
        .find(|(k, _, _)| *k == key)
        .and_then(|(_, d, _)| *d)
}

/// A TOML value as the text a flag would take: lists become comma-separated.
fn as_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

fn text(s: &str) -> Result<String, String> {
    Ok(s.to_string())
}

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))
}

fn boolean(s: &str) -> Result<bool, String> {
    match s.trim() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

/// Where the database is, and the config file: shared by every role that opens the
/// database (`serve`, `worker`, `migrate`, `token`).
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// A TOML file of settings, each key named as its flag (`delivery_timeout = "15s"`);
    /// flags and environment variables win over it.
    #[arg(long, env = "SCANHOOK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory that holds the SQLite database file (`scanhook.db`) [default: ./scanhook-data].
    #[arg(long, env = "SCANHOOK_DATA_DIR")]
    pub data_dir: Option<String>,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; wins over --data-dir.
    #[arg(long, env = "SCANHOOK_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The file of the key that seals integration secrets in the database; made on first
    /// start if missing [default: DATA_DIR/secret.key]. Every process of one database needs
    /// the same file.
    #[arg(long, env = "SCANHOOK_SECRET_KEY_FILE")]
    pub secret_key_file: Option<String>,
}

impl DatabaseArgs {
    /// The config file these arguments name (empty without one).
    pub fn file(&self) -> anyhow::Result<File> {
        File::load(self.config.as_deref())
    }

    /// The database URL to connect to, creating the data directory for SQLite.
    pub fn resolve(&self) -> anyhow::Result<String> {
        self.resolve_with(&self.file()?)
    }

    /// [`DatabaseArgs::resolve`] with the config file already read.
    pub fn resolve_with_file(&self, file: &File) -> anyhow::Result<String> {
        self.resolve_with(file)
    }

    fn resolve_with(&self, file: &File) -> anyhow::Result<String> {
        if let Some(url) = file.get("database_url", self.database_url.as_deref(), text)? {
            if let Some(path) = sqlite_file(&url) {
                // A bare file name has the empty path as its parent: the working directory.
                let dir = match path.parent() {
                    Some(p) if p.as_os_str().is_empty() => Path::new("."),
                    Some(p) => p,
                    None => Path::new("/"),
                };
                // A missing directory is left to sqlx, whose error names the file.
                if dir.exists() {
                    crate::files::private_file(&path).map_err(|e| {
                        anyhow::anyhow!(
                            "cannot make the database file {} private: {e}",
                            path.display()
                        )
                    })?;
                }
            }
            return Ok(url);
        }
        let dir = self.data_dir_with(file)?;
        crate::files::private_dir(&dir).map_err(|e| {
            anyhow::anyhow!(
                "cannot create the data directory {}: {e} (set --data-dir or SCANHOOK_DATA_DIR)",
                dir.display()
            )
        })?;
        // SQLite gives its -wal and -shm files the mode of the database file.
        let db = dir.join("scanhook.db");
        crate::files::private_file(&db).map_err(|e| {
            anyhow::anyhow!("cannot create the database file {}: {e}", db.display())
        })?;
        Ok(format!("sqlite://{}", db.display()))
    }

    /// The SQLite database file these arguments name, without creating anything; `None`
    /// for PostgreSQL or an in-memory database.
    pub fn sqlite_target(&self, file: &File) -> anyhow::Result<Option<PathBuf>> {
        match file.get("database_url", self.database_url.as_deref(), text)? {
            Some(url) => Ok(sqlite_file(&url)),
            None => Ok(Some(self.data_dir_with(file)?.join("scanhook.db"))),
        }
    }

    fn data_dir_with(&self, file: &File) -> anyhow::Result<PathBuf> {
        Ok(PathBuf::from(file.value(
            "data_dir",
            self.data_dir.as_deref(),
            text,
        )?))
    }

    /// Where the secret key is: the setting, else `secret.key` in the data directory.
    pub fn secret_key_path(&self, file: &File) -> anyhow::Result<PathBuf> {
        match file.get("secret_key_file", self.secret_key_file.as_deref(), text)? {
            Some(p) => Ok(PathBuf::from(p)),
            None => {
                let dir = self.data_dir_with(file)?;
                crate::files::private_dir(&dir).map_err(|e| {
                    anyhow::anyhow!("cannot create the data directory {}: {e}", dir.display())
                })?;
                Ok(dir.join("secret.key"))
            }
        }
    }
}

/// The file a `sqlite:` database URL names, read as sqlx reads it: `sqlite://PATH` or
/// `sqlite:PATH`, a relative PATH from the working directory, `%` escapes decoded, the
/// query string apart. `None` for an in-memory database, or a URL of another backend.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    if !url.starts_with("sqlite:") {
        return None;
    }
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory =
        url::form_urlencoded::parse(params.as_bytes()).any(|(k, v)| k == "mode" && v == "memory");
    if database.is_empty() || database == ":memory:" || in_memory {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(database)
        .decode_utf8()
        .ok()?;
    Some(PathBuf::from(decoded.as_ref()))
}

/// Delivery flags, shared by `serve` and `worker`.
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Delays between delivery attempts, comma-separated (±20 % jitter)
    /// [default: 5s,5m,30m,2h,5h,10h,10h].
    #[arg(long, env = "SCANHOOK_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,
    /// CIDRs that may be delivered to although not global (e.g. 10.0.0.0/8), comma-separated.
    #[arg(long, env = "SCANHOOK_DELIVER_ALLOW_CIDRS")]
    pub deliver_allow_cidrs: Option<String>,
    /// Deliver through this forward proxy, `http(s)://[USER:PASSWORD@]HOST:PORT`; each
    /// target's name is still resolved and vetted here first. HTTP_PROXY and the like are
    /// ignored [default: none: connect to targets directly].
    #[arg(long, env = "SCANHOOK_OUTBOUND_PROXY", hide_env_values = true)]
    pub outbound_proxy: Option<String>,
    /// Timeout of one delivery attempt [default: 15s].
    #[arg(long, env = "SCANHOOK_DELIVERY_TIMEOUT")]
    pub delivery_timeout: Option<String>,
    /// Requests in flight per integration [default: 8].
    #[arg(long, env = "SCANHOOK_DELIVERY_CONCURRENCY")]
    pub delivery_concurrency: Option<String>,
    /// Disable an integration that has failed continuously this long [default: 5d].
    #[arg(long, env = "SCANHOOK_DISABLE_AFTER")]
    pub disable_after: Option<String>,
}

/// The delivery settings of `serve` and `worker`, checked.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub config: DeliveryConfig,
    /// Non-global networks that may be delivered to.
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// The proxy deliveries go through, if not straight to their targets.
    pub outbound_proxy: Option<OutboundProxy>,
}

impl DeliveryArgs {
    /// These flags and variables over `file` over the defaults.
    pub fn resolve(&self, file: &File) -> anyhow::Result<Delivery> {
        let schedule = file.value("retry_schedule", self.retry_schedule.as_deref(), |s| {
            Schedule::parse(s)
        })?;
        let allow_cidrs = file.value(
            "deliver_allow_cidrs",
            self.deliver_allow_cidrs.as_deref(),
            Guard::parse_allow_list,
        )?;
        // Empty means none, so that a variable can switch off a file's proxy.
        let outbound_proxy = file
            .get(
                "outbound_proxy",
                self.outbound_proxy.as_deref(),
                |s| match s.trim() {
                    "" => Ok(None),
                    s => OutboundProxy::parse(s).map(Some),
                },
            )?
            .flatten();
        let per_integration = file.value(
            "delivery_concurrency",
            self.delivery_concurrency.as_deref(),
            |s| match number::<usize>(s)? {
                0 => Err("must be at least 1".into()),
                n => Ok(n),
            },
        )?;
        let config = DeliveryConfig {
            schedule,
            timeout: file.value(
                "delivery_timeout",
                self.delivery_timeout.as_deref(),
                positive_duration,
            )?,
            per_integration,
            disable_after: file.value(
                "disable_after",
                self.disable_after.as_deref(),
                positive_duration,
            )?,
            ..DeliveryConfig::default()
        };
        Ok(Delivery {
            config,
            allow_cidrs,
            outbound_proxy,
        })
    }
}

fn positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?} must be longer than zero")),
        d => Ok(d),
    }
}

/// Longest connection timeout: hyper adds the header timeout to `Instant::now()`, which
/// panics on overflow, and a wait longer than a day protects nothing.
const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(86_400);

fn connection_timeout(s: &str) -> Result<Duration, String> {
    match positive_duration(s)? {
        d if d > MAX_CONNECTION_TIMEOUT => Err(format!("{s:?} must be at most 1d")),
        d => Ok(d),
    }
}

/// Flags of `scanhook serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SCANHOOK_LISTEN")]
    pub listen: Option<String>,
    /// The URL users and `semgrep ci` reach this server at (used in links such as
    /// `semgrep.url`) [default: http://LISTEN].
    #[arg(long, env = "SCANHOOK_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Scans without /complete or /error for this long are marked abandoned (e.g. 90m, 2h)
    /// [default: 2h].
    #[arg(long, env = "SCANHOOK_ABANDON_AFTER")]
    pub abandon_after: Option<String>,
    /// Largest accepted /results body, in MiB [default: 256].
    #[arg(long, env = "SCANHOOK_MAX_RESULTS_MB")]
    pub max_results_mb: Option<String>,
    /// The most MiB of uploads held at once [default: 1024].
    #[arg(long, env = "SCANHOOK_MAX_UPLOADS_IN_FLIGHT_MB")]
    pub max_uploads_in_flight_mb: Option<String>,
    /// A client must send a request's whole header within this; it also bounds how long a
    /// kept-alive connection waits for its next request [default: 10s].
    #[arg(long, env = "SCANHOOK_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// Longest wait for the next piece of a request body; a slow upload that keeps sending
    /// is not cut off [default: 30s].
    #[arg(long, env = "SCANHOOK_BODY_READ_TIMEOUT")]
    pub body_read_timeout: Option<String>,
    /// Most connections open at once; more wait in the listen backlog until one closes
    /// [default: 1024].
    #[arg(long, env = "SCANHOOK_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Most connections open at once from one client address (an IPv6 client: its /64);
    /// more are closed as they are accepted [default: 256].
    #[arg(long, env = "SCANHOOK_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<String>,
    /// Slowest accepted request body, in KiB/s: a body must have arrived within
    /// --body-read-timeout plus its length at this rate, or it gets a 408; 0 sets no floor
    /// [default: 16].
    #[arg(long, env = "SCANHOOK_MIN_BODY_RATE_KIB")]
    pub min_body_rate_kib: Option<String>,
    /// Reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For names
    /// the client for the sign-in throttle, and whose connections are not capped per
    /// address [default: none: the connection's peer is the client].
    #[arg(long, env = "SCANHOOK_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Slug of the deployment created on first start of an empty database
    /// [default: scanhook].
    #[arg(long, env = "SCANHOOK_DEPLOYMENT")]
    pub deployment: Option<String>,
    /// Prune delivered messages and their attempts this long after delivery; 0 or off
    /// keeps them [default: 30d].
    #[arg(long, env = "SCANHOOK_RETAIN_DELIVERED")]
    pub retain_delivered: Option<String>,
    /// Prune failed messages and their attempts this long after their last attempt; 0 or
    /// off keeps them [default: 90d].
    #[arg(long, env = "SCANHOOK_RETAIN_FAILED")]
    pub retain_failed: Option<String>,
    /// Prune raw /results uploads of scans that never completed (errored, abandoned) and
    /// fail-open reports this long after they arrived; 0 or off keeps them [default: 14d].
    #[arg(long, env = "SCANHOOK_RETAIN_UPLOADS")]
    pub retain_uploads: Option<String>,
    /// Serve the API only; deliveries are left to `scanhook worker` processes.
    #[arg(long, env = "SCANHOOK_NO_DELIVER", num_args = 0..=1, default_missing_value = "true")]
    pub no_deliver: Option<String>,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// How long an upload waits for room among the uploads in flight before it is turned away:
/// long enough to ride out a burst, short enough that the client's retry takes over.
pub const UPLOAD_WAIT: Duration = Duration::from_secs(10);

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub database_url: String,
    pub abandon_after: Duration,
    pub max_results_bytes: usize,
    /// Bytes of uploads held at once, all requests together.
    pub max_uploads_in_flight_bytes: usize,
    /// How long an upload waits for room among those in flight before a 503.
    pub upload_wait: Duration,
    /// Time to send a request's header, and a kept-alive connection's idle limit.
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_read_timeout: Duration,
    /// Most connections served at once.
    pub max_connections: usize,
    /// Most connections served at once from one client address (`limit_key`).
    pub max_connections_per_ip: usize,
    /// Slowest request body, in KiB/s, on top of `body_read_timeout` (0: no floor).
    pub min_body_rate_kib: u64,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    pub deployment: String,
    /// Run delivery workers in this process.
    pub deliver: bool,
    pub delivery: DeliveryConfig,
    /// Non-global networks that may be delivered to.
    pub allow_cidrs: Vec<ipnet::IpNet>,
    /// The key file that seals secrets (made if missing); `None`: a key made for this run
    /// only (tests and benchmarks on throwaway databases).
    pub secret_key_file: Option<PathBuf>,
    /// The proxy deliveries go through, if not straight to their targets.
    pub outbound_proxy: Option<OutboundProxy>,
    /// What is kept how long, and the pruner's pace.
    pub retention: Retention,
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
            max_uploads_in_flight_bytes: 1024 * 1024 * 1024,
            upload_wait: UPLOAD_WAIT,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_ip: 256,
            min_body_rate_kib: 16,
            trusted_proxies: TrustedProxies::default(),
            deployment: "scanhook".into(),
            deliver: true,
            delivery: DeliveryConfig::default(),
            allow_cidrs: vec![],
            secret_key_file: None,
            outbound_proxy: None,
            retention: Retention::default(),
        }
    }

    /// The configuration of `serve`: its flags and variables over its config file over
    /// the defaults, every value checked.
    pub fn from_args(args: &ServeArgs) -> anyhow::Result<Config> {
        Config::layered(args, &args.db.file()?)
    }

    fn layered(args: &ServeArgs, file: &File) -> anyhow::Result<Config> {
        let listen: SocketAddr = file.value("listen", args.listen.as_deref(), |s| {
            s.trim()
                .parse()
                .map_err(|_| format!("{s:?} is not an address like 127.0.0.1:8080"))
        })?;
        let public_url = file
            .get("public_url", args.public_url.as_deref(), |u| {
                let parsed = url::Url::parse(u).map_err(|e| format!("{u:?} is not a URL: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!("{u:?} must be an http(s) URL"));
                }
                Ok(u.trim_end_matches('/').to_string())
            })?
            .unwrap_or_else(|| format!("http://{listen}"));
        let max_results_mb =
            file.value(
                "max_results_mb",
                args.max_results_mb.as_deref(),
                |s| match number::<usize>(s)? {
                    n if (1..=4096).contains(&n) => Ok(n),
                    _ => Err("must be 1 to 4096".into()),
                },
            )?;
        let in_flight_mb = file.value(
            "max_uploads_in_flight_mb",
            args.max_uploads_in_flight_mb.as_deref(),
            |s| match number::<usize>(s)? {
                n if (1..=1_048_576).contains(&n) => Ok(n),
                _ => Err("must be 1 to 1048576".into()),
            },
        )?;
        if in_flight_mb < max_results_mb {
            anyhow::bail!(
                "--max-uploads-in-flight-mb ({in_flight_mb}) must be at least --max-results-mb ({max_results_mb}): the largest upload must fit"
            );
        }
        let deployment =
            file.value(
                "deployment",
                args.deployment.as_deref(),
                |s| match crate::ids::slugify(s) {
                    slug if slug.is_empty() => Err(format!("{s:?} needs letters or digits")),
                    slug => Ok(slug),
                },
            )?;
        let max_connections = file.value(
            "max_connections",
            args.max_connections.as_deref(),
            |s| match number::<usize>(s)? {
                n if (1..=tokio::sync::Semaphore::MAX_PERMITS).contains(&n) => Ok(n),
                0 => Err("must be at least 1".into()),
                _ => Err("is more connections than can be counted".into()),
            },
        )?;
        let max_connections_per_ip = file.value(
            "max_connections_per_ip",
            args.max_connections_per_ip.as_deref(),
            |s| match number::<usize>(s)? {
                n if (1..=tokio::sync::Semaphore::MAX_PERMITS).contains(&n) => Ok(n),
                0 => Err("must be at least 1".into()),
                _ => Err("is more connections than can be counted".into()),
            },
        )?;
        let min_body_rate_kib = file.value(
            "min_body_rate_kib",
            args.min_body_rate_kib.as_deref(),
            |s| match number::<u64>(s)? {
                n if n <= 1_048_576 => Ok(n),
                _ => Err("must be at most 1048576 (1 GiB/s)".into()),
            },
        )?;
        let trusted_proxies = file.value(
            "trusted_proxies",
            args.trusted_proxies.as_deref(),
            TrustedProxies::parse,
        )?;
        let Delivery {
            config: delivery,
            allow_cidrs,
            outbound_proxy,
        } = args.delivery.resolve(file)?;
        let retention = Retention {
            delivered: file.value(
                "retain_delivered",
                args.retain_delivered.as_deref(),
                parse_retention,
            )?,
            failed: file.value(
                "retain_failed",
                args.retain_failed.as_deref(),
                parse_retention,
            )?,
            uploads: file.value(
                "retain_uploads",
                args.retain_uploads.as_deref(),
                parse_retention,
            )?,
            ..Retention::default()
        };
        Ok(Config {
            retention,
            deliver: !file.value("no_deliver", args.no_deliver.as_deref(), boolean)?,
            delivery,
            allow_cidrs,
            outbound_proxy,
            listen,
            public_url,
            database_url: args.db.resolve_with(file)?,
            secret_key_file: Some(args.db.secret_key_path(file)?),
            abandon_after: file.value(
                "abandon_after",
                args.abandon_after.as_deref(),
                positive_duration,
            )?,
            max_results_bytes: max_results_mb * 1024 * 1024,
            max_uploads_in_flight_bytes: in_flight_mb * 1024 * 1024,
            upload_wait: UPLOAD_WAIT,
            header_read_timeout: file.value(
                "header_read_timeout",
                args.header_read_timeout.as_deref(),
                connection_timeout,
            )?,
            body_read_timeout: file.value(
                "body_read_timeout",
                args.body_read_timeout.as_deref(),
                connection_timeout,
            )?,
            max_connections,
            max_connections_per_ip,
            min_body_rate_kib,
            trusted_proxies,
            deployment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(flags: &[&str]) -> ServeArgs {
        let mut argv = vec!["scanhook"];
        argv.extend(flags);
        Cli::try_parse_from(argv).unwrap().serve
    }

    fn file(text: &str) -> File {
        File::parse(Path::new("scanhook.toml"), text).unwrap()
    }

    fn dir() -> (tempfile::TempDir, String) {
        let d = tempfile::tempdir().unwrap();
        let s = d.path().join("data").display().to_string();
        (d, s)
    }

    #[test]
    fn defaults_then_file_then_flags() {
        let (_d, data) = dir();
        let c = Config::layered(&args(&["--data-dir", &data]), &File::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.delivery.timeout, Duration::from_secs(15));
        assert!(c.deliver);
        assert!(c.database_url.ends_with("scanhook.db"));
        let local = Config::local(String::new());
        assert_eq!(
            (
                c.header_read_timeout,
                c.body_read_timeout,
                c.max_connections
            ),
            (
                local.header_read_timeout,
                local.body_read_timeout,
                local.max_connections
            ),
            "Config::local has the defaults of SETTINGS"
        );
        assert_eq!(c.header_read_timeout, Duration::from_secs(10));
        assert_eq!(
            (
                c.max_connections_per_ip,
                c.min_body_rate_kib,
                &c.trusted_proxies
            ),
            (
                local.max_connections_per_ip,
                local.min_body_rate_kib,
                &local.trusted_proxies
            ),
            "Config::local has the defaults of SETTINGS"
        );
        assert!(c.trusted_proxies.is_empty());

        let f = file(&format!(
            "listen = \"127.0.0.1:9000\"\ndelivery_timeout = \"3s\"\ndelivery_concurrency = 2\n\
             deliver_allow_cidrs = [\"10.0.0.0/8\", \"127.0.0.0/8\"]\nno_deliver = true\n\
             max_connections = 64\nbody_read_timeout = \"2m\"\ndata_dir = {data:?}\n\
             trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\nmax_connections_per_ip = 8\n\
             min_body_rate_kib = 0\n"
        ));
        let c = Config::layered(&args(&[]), &f).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(c.public_url, "http://127.0.0.1:9000");
        assert_eq!(c.delivery.timeout, Duration::from_secs(3));
        assert_eq!(c.delivery.per_integration, 2);
        assert_eq!(c.allow_cidrs.len(), 2);
        assert!(!c.deliver);
        assert_eq!(c.max_connections, 64);
        assert_eq!(c.body_read_timeout, Duration::from_secs(120));
        assert!(c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(c.trusted_proxies.contains("::1".parse().unwrap()));
        assert_eq!((c.max_connections_per_ip, c.min_body_rate_kib), (8, 0));

        let c = Config::layered(
            &args(&["--delivery-timeout", "9s", "--no-deliver=false"]),
            &f,
        )
        .unwrap();
        assert_eq!(c.delivery.timeout, Duration::from_secs(9), "the flag wins");
        assert!(c.deliver);
        assert_eq!(
            c.delivery.per_integration, 2,
            "the rest still from the file"
        );
    }

    #[test]
    fn errors_name_the_key_and_where_it_came_from() {
        let (_d, data) = dir();
        let e = File::parse(Path::new("/etc/scanhook.toml"), "delivery_timout = \"3s\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/scanhook.toml") && e.contains("`delivery_timout`"),
            "{e}"
        );
        assert!(e.contains("delivery_timeout"), "lists the keys: {e}");
        let e = File::parse(Path::new("f.toml"), "listen = ")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not valid TOML"), "{e}");
        let f = file(&format!("delivery_timeout = \"soon\"\ndata_dir = {data:?}"));
        let e = Config::layered(&args(&[]), &f).unwrap_err().to_string();
        assert!(
            e.contains("config file scanhook.toml: `delivery_timeout`") && e.contains("soon"),
            "{e}"
        );
        let e = Config::layered(
            &args(&["--delivery-concurrency", "0", "--data-dir", &data]),
            &File::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--delivery-concurrency / SCANHOOK_DELIVERY_CONCURRENCY"),
            "{e}"
        );
        let e = Config::layered(
            &args(&["--public-url", "ftp://x", "--data-dir", &data]),
            &File::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("--public-url") && e.contains("http(s)"), "{e}");
        for (flag, value, says) in [
            ("--max-connections", "0", "at least 1"),
            ("--header-read-timeout", "0s", "longer than zero"),
            ("--body-read-timeout", "2d", "at most 1d"),
            ("--max-connections-per-ip", "0", "at least 1"),
            ("--min-body-rate-kib", "fast", "whole number"),
            (
                "--trusted-proxies",
                "10.0.0.0/8,proxy",
                "\"proxy\" is not an IP address",
            ),
        ] {
            let e = Config::layered(&args(&[flag, value, "--data-dir", &data]), &File::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(flag) && e.contains(says), "{e}");
        }
        assert!(File::parse(Path::new("f.toml"), "listen = { a = 1 }").is_err());
    }

    #[test]
    fn sqlite_urls_name_the_file_sqlx_opens() {
        let file = |u: &str| sqlite_file(u).map(|p| p.display().to_string());
        for (url, path) in [
            (
                "sqlite:///var/lib/scanhook/db",
                Some("/var/lib/scanhook/db"),
            ),
            ("sqlite://rel.db", Some("rel.db")),
            ("sqlite:rel.db", Some("rel.db")),
            ("sqlite:data/rel.db?mode=rwc", Some("data/rel.db")),
            ("sqlite://a%20b.db", Some("a b.db")),
            ("sqlite::memory:", None),
            ("sqlite://:memory:", None),
            ("sqlite://?mode=memory", None),
            ("sqlite://x.db?mode=memory", None),
            ("postgres://u@h/db", None),
        ] {
            assert_eq!(file(url).as_deref(), path, "{url}");
        }
    }

    #[test]
    fn the_outbound_proxy_is_an_http_url_from_any_layer() {
        let (_d, data) = dir();
        let d = ["--data-dir", data.as_str()];
        let c = Config::layered(&args(&d), &File::default()).unwrap();
        assert_eq!(c.outbound_proxy, None, "direct by default");
        let f = file("outbound_proxy = \"http://u:hunter2@proxy.internal:3128\"");
        let c = Config::layered(&args(&d), &f).unwrap();
        let proxy = c.outbound_proxy.unwrap();
        assert_eq!(proxy.to_string(), "http://u:***@proxy.internal:3128/");
        assert!(!format!("{proxy:?}").contains("hunter2"));
        let flag = args(&[&d[..], &["--outbound-proxy", "https://egress:8443"]].concat());
        let c = Config::layered(&flag, &f).unwrap();
        assert_eq!(
            c.outbound_proxy.unwrap().to_string(),
            "https://egress:8443/"
        );
        let off = args(&[&d[..], &["--outbound-proxy", ""]].concat());
        assert_eq!(Config::layered(&off, &f).unwrap().outbound_proxy, None);
        for bad in [
            "socks5://egress:1080",
            "egress:3128",
            "http://egress:3128/x",
        ] {
            let bad = args(&[&d[..], &["--outbound-proxy", bad]].concat());
            let e = Config::layered(&bad, &File::default())
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("--outbound-proxy / SCANHOOK_OUTBOUND_PROXY"),
                "{e}"
            );
        }
    }

    #[test]
    fn retention_goes_through_the_layers_and_zero_or_off_disables_it() {
        let (_d, data) = dir();
        let c = Config::layered(&args(&["--data-dir", &data]), &File::default()).unwrap();
        assert_eq!(c.retention, Config::local(String::new()).retention);
        assert_eq!(
            c.retention.delivered,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(c.retention.failed, Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(c.retention.uploads, Some(Duration::from_secs(14 * 86_400)));
        let f = file("retain_delivered = \"7d\"\nretain_failed = \"off\"\nretain_uploads = 0\n");
        let c = Config::layered(&args(&["--data-dir", &data]), &f).unwrap();
        assert_eq!(c.retention.delivered, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!((c.retention.failed, c.retention.uploads), (None, None));
        let c = Config::layered(
            &args(&["--data-dir", &data, "--retain-delivered", "off"]),
            &f,
        )
        .unwrap();
        assert_eq!(c.retention.delivered, None, "a flag wins over the file");
        let e = Config::layered(
            &args(&["--data-dir", &data, "--retain-failed", "a while"]),
            &f,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("--retain-failed / SCANHOOK_RETAIN_FAILED") && e.contains("off"),
            "{e}"
        );
    }

    #[test]
    fn every_setting_has_a_flag_a_variable_and_a_description() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        for (key, _, what) in SETTINGS {
            let long = key.replace('_', "-");
            let arg = cmd
                .get_arguments()
                .find(|a| a.get_long() == Some(long.as_str()))
                .unwrap_or_else(|| panic!("no flag {}", flag(key)));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(env_var(key).as_str()),
                "{key}"
            );
            assert!(!what.is_empty());
        }
    }
}
