//! Unmounting: `unmount` unmounts a directory and waits for its mount process's exit status,
//! so it returns only once the server holds every write the mount accepted (or says which it
//! does not). Also the unmount helper the mount process uses on a signal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::{MountError, Result};
use crate::options::{UnmountOptions, absolute, cache_dir, records_root};
use crate::records::{ExitStatus, Process, Records};
use crate::serve::not_on_server_error;

/// The directory `unmount` unmounted.
pub struct Unmounted {
    pub dir: std::path::PathBuf,
}

pub(crate) async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// How many more times an unmount (`aether unmount`, or the mount process on a signal) tries a
/// mount that answered busy.
const UNMOUNT_TRIES: usize = 4;

/// Unmount `dir`; a busy answer is tried again [`UNMOUNT_TRIES`] times before it is believed,
/// because the mount's own kernel cache refresh (`kernel_warm`) keeps a directory open for a few
/// microseconds at a time. `Ok(false)`: still mounted (busy, or not a mount).
pub(crate) fn unmount_retrying(dir: &Path) -> std::io::Result<bool> {
    let mut unmounted = unmount_dir(dir);
    for _ in 0..UNMOUNT_TRIES {
        if !matches!(unmounted, Ok(false)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        unmounted = unmount_dir(dir);
    }
    unmounted
}

fn unmount_dir(dir: &Path) -> std::io::Result<bool> {
    for (tool, args) in [
        ("fusermount3", vec!["-u"]),
        ("fusermount", vec!["-u"]),
        ("umount", vec![]),
    ] {
        match Command::new(tool).args(&args).arg(dir).stderr(Stdio::null()).status() {
            Ok(s) if s.success() => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Unmount, then wait for the mount process's exit status: returns once the server holds every
/// write the mount accepted, or fails naming what it does not hold.
pub fn unmount(opts: &UnmountOptions) -> Result<Unmounted> {
    let dir = absolute(&opts.dir)?;
    let cache_root = cache_dir(&opts.cache_dir)?;
    let mut records = Records::new(&records_root(&opts.cache_dir)?, &dir);
    if records.server().is_none() {
        // A mount made by an older version recorded itself in its own cache directory.
        let legacy = Records::new(&cache_root, &dir);
        if legacy.server().is_some() {
            records = legacy;
        }
    }
    let server = records.server();
    if server.is_none() && is_mount_point(&dir) {
        // Unmounting without waiting would give up the promise that the writes are sent.
        return Err(MountError::NotRecorded {
            dir,
            records: records_root(&opts.cache_dir)?.join("mounts"),
        });
    }
    let was_alive = server.is_some_and(|p| p.alive());
    match unmount_retrying(&dir) {
        Ok(true) => {}
        Ok(false) => return Err(MountError::NotMounted(dir)),
        Err(e) => return Err(MountError::UnmountTool(e)),
    }
    let status = match server {
        Some(p) if was_alive => wait_for_status(&records, p),
        _ => None,
    };
    let Some(status) = status else {
        return Err(MountError::StatusUnknown {
            dir,
            was_alive,
            lost_found: cache_root.join("lost+found"),
        });
    };
    if let Some(e) = not_on_server_error(&dir, &status) {
        return Err(e);
    }
    Ok(Unmounted { dir })
}

/// Wait while `server` lives for the exit status it leaves once it has sent what it could.
/// How long a mount process that has written its status may take to exit.
const EXIT_GRACE: Duration = Duration::from_secs(10);

fn wait_for_status(records: &Records, server: Process) -> Option<ExitStatus> {
    let start = std::time::Instant::now();
    let mut told = false;
    loop {
        if let Some(s) = records.take_status(server.pid) {
            // The status is the process's last word; let it finish exiting too, so nothing of
            // the mount is left running when the unmount returns (a script may mount again).
            let exiting = std::time::Instant::now();
            while server.alive() && exiting.elapsed() < EXIT_GRACE {
                std::thread::sleep(Duration::from_millis(5));
            }
            return Some(s);
        }
        if !server.alive() {
            return records.take_status(server.pid);
        }
        if !told && start.elapsed() > Duration::from_secs(2) {
            eprintln!(
                "waiting for the mount process (pid {}) to send the writes it holds",
                server.pid
            );
            told = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `dir` (absolute, canonical) is a mount point, from `/proc/self/mountinfo`.
fn is_mount_point(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|p| Path::new(&unescape_mountinfo(p)) == dir)
}

/// A mountinfo path field with its octal escapes (`\040` for a space) decoded.
fn unescape_mountinfo(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
