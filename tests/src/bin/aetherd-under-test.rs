//! `aetherd` under test: the server's own configuration, `bind` and `serve`, as this package's
//! binary. Two differences from `aetherd`, both for running under a test harness: once bound it
//! prints `listening ADDR` on stdout (so `--listen 127.0.0.1:0` can be used and the port found),
//! and it stops when the process that started it is gone, so a killed test run leaves no server
//! behind. It runs in its own process so that a hung or runaway server fails a test (the
//! harness watches its memory and can kill it) instead of taking the test process down.

use std::io::Write;
use std::time::Duration;

use clap::Parser;

use aether_server::config::{Cli, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::resolve(Cli::parse())?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level '{}': {e}", config.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let bound = aether_server::bind(&config).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", bound.addr)?;
        out.flush()?;
    }
    bound.serve(stop()).await
}

/// SIGTERM, SIGINT, or the parent process going away.
async fn stop() {
    let parent = std::os::unix::process::parent_id();
    let orphaned = async move {
        while std::os::unix::process::parent_id() == parent {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = orphaned => {},
        () = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
