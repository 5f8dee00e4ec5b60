//! The `aether` command-line client. It talks to aetherd over gRPC only (`aether-proto`); it
//! never opens a data directory itself.
//!
//! Every command parses its arguments, makes one or a few calls, and prints either a human form
//! or, with `--json`, a stable JSON shape. Failures are a [`error::CliError`]: one line saying
//! what went wrong, one hint line, and an exit code from [`error::EXIT_CODES`].

pub mod args;
pub mod client;
mod commands;
pub mod config;
pub mod error;
pub mod mount;
mod mount_status;
pub mod output;
mod progress;

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::error::{CliError, Kind};

static LOG_LEVEL: AtomicU8 = AtomicU8::new(1);

/// Print a diagnostic on stderr when the log level is at least `level` (0 error .. 3 debug).
pub(crate) fn log(level: u8, message: impl std::fmt::Display) {
    if LOG_LEVEL.load(Ordering::Relaxed) >= level {
        eprintln!("aether: {message}");
    }
}

/// Output options every command gets.
#[derive(Clone, Copy)]
pub struct Out {
    pub json: bool,
}

/// The clap command tree (for help and completions).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Run with the process's arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { Kind::Usage.exit_code() } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return report(&CliError::io("cannot start the async runtime", e), json),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(e) => report(&e, json),
    }
}

fn report(e: &CliError, json: bool) -> i32 {
    if json {
        let v = output::error_json(e);
        let _ = writeln!(std::io::stderr(), "{v}");
    } else {
        let _ = writeln!(std::io::stderr(), "error: {}\nhint: {}", e.message, e.hint);
    }
    e.kind.exit_code()
}

fn set_log_level(cli: &Cli) -> Result<(), CliError> {
    let base = match cli.log_level.as_deref() {
        None => 1,
        Some("error") => 0,
        Some("warn") => 1,
        Some("info") => 2,
        Some("debug") | Some("trace") => 3,
        Some(other) => {
            return Err(CliError::usage(
                format!("unknown log level '{other}'"),
                "use one of error, warn, info, debug",
            ));
        }
    };
    LOG_LEVEL.store(base.max(1 + cli.verbose).min(3), Ordering::Relaxed);
    Ok(())
}

async fn run(cli: Cli) -> Result<(), CliError> {
    set_log_level(&cli)?;
    let out = Out { json: cli.json };
    if let Command::Completions(a) = &cli.command {
        let mut cmd = command();
        clap_complete::generate(a.shell, &mut cmd, "aether", &mut std::io::stdout());
        return Ok(());
    }
    let resolved = config::resolve(config::Inputs {
        flag_server: cli.server.clone(),
        flag_token: cli.token.clone(),
        flag_config: cli.config.clone(),
    })?;
    log(
        2,
        format_args!(
            "server {} (from {}), token from {}",
            resolved.server, resolved.server_from, resolved.token_from
        ),
    );
    let command = match cli.command {
        Command::Unmount(a) => return mount::unmount(a, out),
        Command::Cache(c) => return mount::cache(c, out),
        Command::Mount(args::MountCommand {
            command: Some(args::MountCmd::Status(a)),
            ..
        }) => return mount_status::status(a, out),
        Command::Mount(args::MountCommand { mount: Some(a), .. }) => {
            mount::init_logging(&a, cli.log_level.as_deref(), cli.verbose);
            return mount::mount(&resolved, a, out).await;
        }
        Command::Mount(args::MountCommand { mount: None, .. }) => {
            return Err(CliError::usage(
                "aether mount needs a session and a directory",
                "aether mount SESSION DIR, or aether mount status DIR",
            ));
        }
        other => other,
    };
    if let Command::Doctor = &command {
        return commands::doctor::run(&resolved, out).await;
    }
    let client = client::Client::connect(&resolved).await?;
    commands::dispatch(&client, command, out).await
}
