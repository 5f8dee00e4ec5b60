//! One module per command group; `dispatch` routes a parsed command to it.

/// `println!` for command output: a closed stdout ends the process quietly instead of panicking
/// (see `output::print_line`).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::print_line(format_args!($($arg)*))
    };
}

mod dir_archive;
pub mod doctor;
mod fs;
mod fsmonitor;
mod history;
mod limits;
mod observe;
mod session;
mod token;
pub(crate) mod transfer;

use crate::Out;
use crate::args::Command;
use crate::client::Client;
use crate::error::{CliError, Result};

pub async fn dispatch(c: &Client, cmd: Command, out: Out) -> Result<()> {
    match cmd {
        Command::Session(s) => session::run(c, s, out).await,
        Command::Fs(f) => fs::run(c, f, out).await,
        Command::Checkpoint(cp) => history::checkpoint(c, cp, out).await,
        Command::Commit(a) => history::commit(c, a, out).await,
        Command::Log(a) => history::log(c, a, out).await,
        Command::Export(a) => transfer::export(c, a, out).await,
        Command::Import(a) => session::import(c, a, out).await,
        Command::Token(t) => token::run(c, t, out).await,
        Command::Fsmonitor(a) => fsmonitor::run(c, a).await,
        Command::Activity(a) => session::activity(c, a, out).await,
        Command::Top(a) => observe::top(c, a, out).await,
        Command::Usage => limits::server(c, out).await,
        Command::Mount(_) => Ok(()), // served by crate::mount (no client needed)
        Command::Doctor | Command::Completions(_) | Command::Unmount(_) | Command::Cache(_) => Ok(()),
    }
}

/// `KEY=VALUE` pairs from the command line.
pub fn pairs(raw: &[String]) -> Result<Vec<(String, String)>> {
    raw.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| CliError::usage(format!("'{p}' is not KEY=VALUE"), "write labels as --label team=infra"))
        })
        .collect()
}

/// Octal permission bits.
pub fn mode(raw: &str) -> Result<u32> {
    u32::from_str_radix(raw.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            CliError::usage(
                format!("'{raw}' is not a mode"),
                "give octal permission bits such as 644 or 755",
            )
        })
}
