use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use aether_server::config::{Cli, Command, Config, LogFormat};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.clone();
    let config = Config::resolve(cli)?;
    let filter = EnvFilter::try_new(&config.log_level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level '{}': {e}", config.log_level))?;
    // Colours only for a person at a terminal: a log file or a pipe gets plain text. A
    // command that prints a result (`aetherd gc`) logs to stderr, keeping stdout for it.
    let to_stderr = command.is_some();
    let ansi = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(move || -> Box<dyn std::io::Write> {
            if to_stderr {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            }
        });
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    // Before the runtime starts any thread.
    aether_server::malloc::limit_arenas(config.malloc_arenas);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Some(Command::Gc { dry_run }) = command {
        return runtime.block_on(collect_garbage(&config, dry_run));
    }
    let result = runtime.block_on(async {
        let bound = aether_server::bind(&config).await?;
        bound.serve(shutdown_signal()).await
    });
    // The drain is bounded in `serve`; blocking work still running gets the grace time, then
    // the process exits whatever it was doing (what it staged is unreachable, never visible).
    runtime.shutdown_timeout(config.shutdown_grace);
    result
}

/// `aetherd gc`: a collection of a data directory no server is using.
async fn collect_garbage(config: &Config, dry_run: bool) -> anyhow::Result<()> {
    let _lock = aether_server::data_lock::lock_data_dir(&config.data_dir)?;
    let engine = aether_core::Engine::open(config.engine_config()).await?;
    let report = engine
        .collect_garbage(aether_core::GcOptions {
            dry_run,
            grace: config.gc.grace,
            events: config.gc.events.clone(),
            expiry: config.gc.expiry,
        })
        .await?;
    let report = aether_server::dto::GcReport::from(report);
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
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
