use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use aether_server::config::{Cli, Config, LogFormat};

fn main() -> anyhow::Result<()> {
    let config = Config::resolve(Cli::parse())?;
    let filter = EnvFilter::try_new(&config.log_level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level '{}': {e}", config.log_level))?;
    // Colours only for a person at a terminal: a log file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        let bound = aether_server::bind(&config).await?;
        bound.serve(shutdown_signal()).await
    });
    // The drain is bounded in `serve`; blocking work still running gets the grace time, then
    // the process exits whatever it was doing (what it staged is unreachable, never visible).
    runtime.shutdown_timeout(config.shutdown_grace);
    result
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
