//! `aether mount status [DIR]`: what the server refused from a mount (or from every mount of a
//! cache directory), read from the lost+found journal the mount processes keep
//! (`aether_mount::lost_found`): each change, why, its errno, and where its bytes are. Works
//! while the mount runs and after it is gone; needs no server. Exits non-zero while a refusal
//! stands (no later upload of the same file through the same mount replaced it).

use aether_mount::lost_found::{self, Kept};
use aether_mount::options::{absolute, cache_dir};
use aether_mount::refused::errno_name;

use crate::Out;
use crate::args::MountStatusArgs;
use crate::error::{CliError, Kind, Result};
use crate::mount::cli_error;
use crate::output;

pub fn status(args: MountStatusArgs, out: Out) -> Result<()> {
    let root = cache_dir(&args.cache_dir).map_err(|e| cli_error(e, ""))?;
    let lost = root.join("lost+found");
    // A mount point is named as the mount recorded it: absolute and canonical. One that no
    // longer exists is taken as written.
    let dir = args.dir.as_ref().map(|d| absolute(d).unwrap_or_else(|_| d.clone()));
    let kept = lost_found::list(&lost, dir.as_deref())
        .map_err(|e| CliError::io(format!("cannot read {}", lost.join(lost_found::JOURNAL).display()), e))?;
    let standing = kept.iter().filter(|k| !k.replaced).count();
    let whose = match &dir {
        Some(d) => d.display().to_string(),
        None => format!("the mounts using {}", root.display()),
    };
    if out.json {
        output::print_json(&serde_json::json!({
            "mount": dir.as_ref().map(|d| d.display().to_string()),
            "lost_found": lost.display().to_string(),
            "standing": standing,
            "refused": kept.iter().map(entry_json).collect::<Vec<_>>(),
        }));
    } else if kept.is_empty() {
        output::print_line(format_args!("the server refused nothing from {whose}"));
    } else {
        for k in &kept {
            output::print_line(format_args!("{}", entry_human(k)));
        }
    }
    if standing == 0 {
        return Ok(());
    }
    Err(CliError::new(
        Kind::Other,
        format!(
            "the server does not hold {standing} change{} made through {whose}",
            if standing == 1 { "" } else { "s" }
        ),
        format!(
            "write the kept bytes again once the cause is fixed; then remove {} to forget them",
            lost.join(lost_found::JOURNAL).display()
        ),
    ))
}

fn entry_json(k: &Kept) -> serde_json::Value {
    let r = &k.refusal;
    serde_json::json!({
        "at": k.at,
        "mount": k.mount.display().to_string(),
        "session": k.session,
        "pid": k.pid,
        "path": r.path,
        "change": r.change,
        "error": r.error,
        "errno": errno_name(r.errno),
        "kept": r.kept.as_ref().map(|p| p.display().to_string()),
        "bytes_present": k.bytes_present,
        "standing": !k.replaced,
    })
}

fn entry_human(k: &Kept) -> String {
    let r = &k.refusal;
    let mut s = format!(
        "{} {} of {}: {} ({})\n  mount {} (session {}, pid {})",
        output::time_ms(k.at as i64),
        r.change,
        r.path,
        r.error,
        errno_name(r.errno),
        k.mount.display(),
        k.session,
        k.pid
    );
    match (&r.kept, k.bytes_present) {
        (Some(p), true) => s.push_str(&format!("\n  bytes kept in {}", p.display())),
        (Some(p), false) => s.push_str(&format!("\n  bytes were kept in {} (moved away since)", p.display())),
        (None, _) => {}
    }
    if k.replaced {
        s.push_str("\n  replaced since: a later upload of the file was accepted");
    }
    s
}
