//! `aether mount`, `aether unmount` and `aether cache`: thin callers of the mount crate
//! (`aether-mount`). This file turns the parsed arguments into the crate's options, prints what
//! it returns, and maps its errors to the CLI's kinds, messages and hints (here and nowhere
//! else).

use std::io::Write;

use aether_mount::access::ReadOnly;
use aether_mount::background;
use aether_mount::content_cache;
use aether_mount::logging::{self, LogTo};
use aether_mount::options::{absolute, cache_dir};
use aether_mount::{MountError, MountOptions, UnmountOptions};

use crate::Out;
use crate::args::{CacheCmd, MountArgs, UnmountArgs};
use crate::config::Resolved;
use crate::error::{CliError, Kind, Result};
use crate::output;

fn options(args: &MountArgs) -> MountOptions {
    MountOptions {
        session: args.session.clone(),
        dir: args.dir.clone(),
        read_only: args.ro,
        at: args.at.clone(),
        cache_mem: args.cache_mem,
        cache_dir: args.cache_dir.clone(),
        cache_size: args.cache_size,
        retry_secs: args.retry_secs,
        threads: args.threads,
        cpu_latency: args.cpu_latency,
        warm_kernel_cache: args.warm_kernel_cache,
        allow_other: args.allow_other,
    }
}

/// A line on standard output; a reader that went away is not this command's failure (a
/// background mount's parent, `| head`).
fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A mount error as the CLI reports it; `server` names the server in hints.
pub(crate) fn cli_error(e: MountError, server: &str) -> CliError {
    let message = e.to_string();
    match e {
        MountError::NoCacheDir => CliError::usage(message, "pass --cache-dir DIR"),
        MountError::MountPoint { .. } => {
            CliError::new(Kind::NotFound, message, "create the directory first (mkdir -p DIR)")
        }
        MountError::NotADirectory(_) => CliError::usage(message, "mount on an empty directory"),
        MountError::Io { what, source } => CliError::io(what, source),
        MountError::Server(status) => CliError::from_status(&status, server),
        MountError::AllowOtherNotPermitted => CliError::new(
            Kind::Other,
            message,
            "add a line user_allow_other to /etc/fuse.conf (as root), or mount as root",
        ),
        MountError::AllowOther { .. } => CliError::new(
            Kind::Other,
            message,
            "a user other than root needs user_allow_other in /etc/fuse.conf; \
             check /dev/fuse and fusermount3 too (aether doctor)",
        ),
        MountError::Kernel { .. } => CliError::new(
            Kind::Other,
            message,
            "check that /dev/fuse exists and fusermount3 is installed (aether doctor)",
        ),
        MountError::Task(_) => CliError::new(Kind::Other, message, "retry with -f"),
        MountError::Spawn(_) => CliError::new(Kind::Other, message, "retry with -f to see what happens"),
        MountError::ChildStopped => {
            CliError::new(Kind::Other, message, "run with -f (and --log-level debug) to see why")
        }
        MountError::Child { kind, message, hint } => CliError::new(Kind::from_name(&kind), message, hint),
        MountError::NotOnServer { lost_found, .. } => CliError::new(
            Kind::Other,
            message,
            format!(
                "the bytes of those uploads are kept in {}; write them again once the cause is fixed",
                lost_found.display()
            ),
        ),
        MountError::NotRecorded { .. } => CliError::new(
            Kind::NotFound,
            message,
            "pass the --cache-dir it was mounted with ('fusermount3 -u DIR' unmounts without waiting for its writes)",
        ),
        MountError::NotMounted(_) => CliError::new(
            Kind::NotFound,
            message,
            "close programs using it (lsof +D DIR) and retry",
        ),
        MountError::UnmountTool(e) => CliError::io("cannot run fusermount3", e),
        MountError::StatusUnknown { lost_found, .. } => CliError::new(
            Kind::Other,
            message,
            format!(
                "see the mount's log; refused uploads are kept in {}",
                lost_found.display()
            ),
        ),
    }
}

/// `aether mount`: in the background by default (returns once the mount is ready), or in the
/// foreground until unmounted.
pub async fn mount(resolved: &Resolved, args: MountArgs, out: Out) -> Result<()> {
    let server = resolved.server.as_str();
    let remote = crate::client::connect(resolved).await?;
    let dir = absolute(&args.dir).map_err(|e| cli_error(e, server))?;
    let child = background::is_child();
    if !args.foreground && !child {
        let started = background::spawn(args.log_file.as_deref()).map_err(|e| cli_error(e, server))?;
        let pid = started.pid;
        if out.json {
            output::print_json(&serde_json::json!({
                "mounted": dir.display().to_string(),
                "session": args.session,
                "pid": pid,
                "read_only": args.ro || args.at.is_some() || started.note.is_some(),
                "note": started.note,
            }));
        } else {
            say(format_args!(
                "mounted {} at {} (pid {pid})",
                args.session,
                dir.display()
            ));
            if let Some(note) = &started.note {
                say(format_args!("{note}"));
            }
        }
        return Ok(());
    }
    let result = aether_mount::serve(&remote, &options(&args), |ready| {
        // Only a read-only mount the user did not ask for needs saying.
        let note = ready
            .read_only
            .filter(|r| matches!(r, ReadOnly::Token { .. } | ReadOnly::Archived))
            .map(ToString::to_string);
        if child {
            background::report_ready(note.as_deref());
        } else if out.json {
            output::print_json(&serde_json::json!({
                "mounted": ready.dir.display().to_string(),
                "session": ready.session,
                "read_only": ready.read_only.is_some(),
                "note": note,
            }));
        } else {
            say(format_args!(
                "mounted {} at {} (Ctrl-C or 'aether unmount {}' to stop)",
                ready.session,
                ready.dir.display(),
                ready.dir.display()
            ));
            if let Some(note) = &note {
                say(format_args!("{note}"));
            }
        }
    })
    .await
    .map_err(|e| cli_error(e, server));
    if child && let Err(e) = &result {
        // Before readiness the parent reads this line and reports it (after, nobody does).
        background::report_failure(e.kind.name(), &e.message, &e.hint);
    }
    result
}

/// `aether unmount`: returns once the server holds every write the mount accepted.
pub fn unmount(args: UnmountArgs, out: Out) -> Result<()> {
    let opts = UnmountOptions {
        dir: args.dir,
        cache_dir: args.cache_dir,
    };
    let done = aether_mount::unmount(&opts).map_err(|e| cli_error(e, ""))?;
    if out.json {
        output::print_json(&serde_json::json!({"unmounted": done.dir.display().to_string()}));
    } else {
        say(format_args!("unmounted {}", done.dir.display()));
    }
    Ok(())
}

/// `aether cache stats` and `aether cache clear`.
pub fn cache(cmd: CacheCmd, out: Out) -> Result<()> {
    match cmd {
        CacheCmd::Stats { cache_dir: d } => {
            let root = cache_dir(&d).map_err(|e| cli_error(e, ""))?;
            let usage = content_cache::disk_usage(&root)
                .map_err(|e| CliError::io(format!("cannot read {}", root.display()), e))?;
            let integrity = usage.integrity;
            if out.json {
                output::print_json(&serde_json::json!({
                    "dir": root.display().to_string(), "bytes": usage.bytes, "blocks": usage.blocks,
                    "corrupt_blocks_dropped": integrity.corrupt_blocks_dropped,
                    "verification_failures": integrity.verification_failures,
                }));
            } else {
                say(format_args!(
                    "{}",
                    output::fields(&[
                        ("dir", root.display().to_string()),
                        ("size", output::size(usage.bytes)),
                        ("blocks", usage.blocks.to_string()),
                        ("corrupt blocks dropped", integrity.corrupt_blocks_dropped.to_string()),
                        ("verification failures", integrity.verification_failures.to_string()),
                    ])
                ));
            }
        }
        CacheCmd::Clear { cache_dir: d } => {
            let root = cache_dir(&d).map_err(|e| cli_error(e, ""))?;
            content_cache::clear(&root).map_err(|e| CliError::io(format!("cannot clear {}", root.display()), e))?;
            if out.json {
                output::print_json(&serde_json::json!({"cleared": root.display().to_string()}));
            } else {
                say(format_args!("cleared {}", root.display()));
            }
        }
    }
    Ok(())
}

/// The mount logs through `tracing`: to `--log-file` when given (in the foreground; a background
/// mount's standard error is its log file), else to standard error.
pub fn init_logging(args: &MountArgs, level: Option<&str>, verbose: u8) {
    let level = match (level, verbose) {
        (Some(l), _) => l.to_owned(),
        (None, 0) => "warn".into(),
        (None, 1) => "info".into(),
        (None, _) => "debug".into(),
    };
    let to = match args.log_file.as_deref().filter(|_| args.foreground) {
        Some(p) => LogTo::File(p),
        None => LogTo::Stderr,
    };
    logging::init(to, &level);
}
