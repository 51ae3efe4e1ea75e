//! `scanhook serve`: runs until SIGINT or SIGTERM, then drains and stops.

use crate::config::{Config, ServeArgs};
use std::io::Write;
use tokio_util::sync::CancellationToken;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::from_args(&args)?;
    let public_url = config.public_url.clone();
    let signal = ShutdownSignal::install();
    let shutdown = CancellationToken::new();
    let running = crate::app::start(config, shutdown.clone()).await?;
    if let Some(token) = &running.first_admin_token {
        // Printed once, on stdout only (never logged): only the token's hash is stored. One
        // write, and a closed stdout is no reason to stop serving.
        let text = format!(
            "scanhook: created the first deployment and its admin token:\n\n    {token}\n\n\
             Keep it secret; it is not shown again. Use it as SCANHOOK_TOKEN for `scanhook rules …`,\n\
             and create a CI token for `semgrep ci` with `scanhook token create --scope ci`.\n\n"
        );
        let mut out = std::io::stdout().lock();
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            tracing::warn!(
                "could not print the first admin token (stdout is closed); make one with \
                 `scanhook token create --scope admin`"
            );
        }
    }
    tracing::info!(addr = %running.addr, public_url = %public_url, "scanhook listening");
    tokio::select! {
        _ = signal.recv() => tracing::info!("shutting down"),
        _ = running.stopped() => anyhow::bail!("the server stopped unexpectedly"),
    }
    running.stop().await;
    Ok(())
}

/// SIGINT and SIGTERM, caught from the moment this is made: made before anything starts,
/// so that a signal arriving while the process starts up (the port may already answer)
/// stops it cleanly instead of killing it.
pub struct ShutdownSignal {
    /// SIGINT and SIGTERM (`None` where they cannot be caught: Ctrl-C only).
    #[cfg(unix)]
    caught: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    pub fn install() -> ShutdownSignal {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let int = signal(SignalKind::interrupt()).ok();
            ShutdownSignal {
                caught: int.zip(signal(SignalKind::terminate()).ok()),
            }
        }
        #[cfg(not(unix))]
        ShutdownSignal {}
    }

    /// Resolves on the first SIGINT or SIGTERM.
    pub async fn recv(self) {
        #[cfg(unix)]
        if let Some((mut int, mut term)) = self.caught {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
