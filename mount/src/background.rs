//! A mount in the background: the command starts itself again, detached, as the mount process
//! and returns once that process says the mount is ready (or why it is not). The two talk over
//! the child's standard output, one line: `ready`, `ready<TAB>note` (something the user must
//! know about the mount, such as why it is read-only), or `error<TAB>kind<TAB>message<TAB>hint`.
//!
//! The parent stops reading once it has that line and exits; the child must never write to
//! that pipe again (it has no reader then: a write fails with EPIPE, and `println!` panics).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{MountError, Result};

/// Set in the environment of the background child: it reports readiness on its stdout.
pub const CHILD_ENV: &str = "AETHER_MOUNT_CHILD";
const READY: &str = "ready";

/// Whether this process is a background mount process started by [`spawn`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// A background mount process that said it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pid: u32,
    /// What it said the user must know (why it is read-only), if anything.
    pub note: Option<String>,
}

/// Start this executable again with the same arguments, detached, as the mount process (its
/// standard error appended to `log_file`, or discarded); returns once it says the mount is
/// ready.
pub fn spawn(log_file: Option<&Path>) -> Result<Started> {
    let exe = std::env::current_exe().map_err(|source| MountError::Io {
        what: "cannot find the aether binary".into(),
        source,
    })?;
    let log =
        match log_file {
            Some(p) => Stdio::from(std::fs::OpenOptions::new().create(true).append(true).open(p).map_err(
                |source| MountError::Io {
                    what: format!("cannot open the log file {}", p.display()),
                    source,
                },
            )?),
            None => Stdio::null(),
        };
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        // Its own process group: a Ctrl-C in this terminal does not take the mount down.
        .process_group(0)
        .spawn()
        .map_err(|source| MountError::Io {
            what: "cannot start the mount process".into(),
            source,
        })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| MountError::Spawn("no pipe to the mount process".into()))?;
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    match (read, line.trim_end()) {
        (Ok(_), l) if l == READY => Ok(Started {
            pid: child.id(),
            note: None,
        }),
        (Ok(_), l) if l.strip_prefix(READY).is_some_and(|rest| rest.starts_with('\t')) => Ok(Started {
            pid: child.id(),
            note: l.get(READY.len() + 1..).map(str::to_owned),
        }),
        (_, l) => {
            let _ = child.wait();
            let mut parts = l.splitn(4, '\t');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some("error"), Some(kind), Some(message), Some(hint)) => Err(MountError::Child {
                    kind: kind.to_owned(),
                    message: message.to_owned(),
                    hint: hint.to_owned(),
                }),
                _ => Err(MountError::ChildStopped),
            }
        }
    }
}

/// In the mount process: tell the parent the mount is ready, with `note` for the user. The
/// parent exits once it has read this; nothing may be written to standard output afterwards.
pub fn report_ready(note: Option<&str>) {
    let mut out = std::io::stdout().lock();
    let _ = match note {
        Some(n) => writeln!(out, "{READY}\t{}", n.replace(['\t', '\n'], " ")),
        None => writeln!(out, "{READY}"),
    };
    let _ = out.flush();
}

/// In the mount process, before it is ready: tell the parent why the mount failed (`kind` is
/// the caller's name for the kind of error; it comes back in [`MountError::Child`]).
pub fn report_failure(kind: &str, message: &str, hint: &str) {
    let line = format!("error\t{kind}\t{}\t{hint}", message.replace('\t', " "));
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
