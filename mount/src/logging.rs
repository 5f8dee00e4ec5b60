//! The mount's log: `tracing` events of the mount (and errors of fuser) to a file or to
//! standard error. Colour codes only when a terminal reads them: a log file, or the standard
//! error of a background mount (its log file), gets plain text.

use std::io::IsTerminal;
use std::path::Path;

/// Where the log goes.
pub enum LogTo<'a> {
    /// Appended to this file (a foreground mount's `--log-file`).
    File(&'a Path),
    /// Standard error (a background mount's is its log file, or nothing).
    Stderr,
}

/// Install the mount's log subscriber at `level` (`error` .. `trace`); once per process (later
/// calls change nothing). A file that cannot be opened falls back to standard error.
pub fn init(to: LogTo<'_>, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("aether_mount={level},aether_cli={level},fuser=error"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let file = match to {
        LogTo::File(p) => std::fs::OpenOptions::new().create(true).append(true).open(p).ok(),
        LogTo::Stderr => None,
    };
    let _ = match file {
        Some(f) => {
            let ansi = f.is_terminal();
            builder.with_ansi(ansi).with_writer(std::sync::Mutex::new(f)).try_init()
        }
        None => {
            let ansi = std::io::stderr().is_terminal();
            builder.with_ansi(ansi).with_writer(std::io::stderr).try_init()
        }
    };
}
