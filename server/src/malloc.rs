//! How many malloc arenas the process may use. glibc gives threads arenas of their own, up to
//! eight per core, and keeps what each freed for that arena's next use: memory a burst of
//! blocking jobs allocated and freed on many threads (checkpoints of a 200,000-entry directory,
//! one after another on whichever pool thread is free) stays resident however little is live.
//! The content soak (issue 34) rose 417 MiB above its start with glibc's default and 156 MiB
//! with two arenas, the engine's caches holding 15 MiB in both.
//!
//! glibc reads the cap (`MALLOC_ARENA_MAX`) from the environment once, when the process starts,
//! and setting it later takes `mallopt`, which this workspace's `forbid(unsafe_code)` rules out.
//! So `aetherd` starts itself again at once with the variable set: the same process (an `exec`
//! keeps the pid), arguments, descriptors and environment. An operator's own
//! `MALLOC_ARENA_MAX` is left as it is.

use std::os::unix::process::CommandExt;

/// The environment variable glibc reads the cap from.
pub const ENV: &str = "MALLOC_ARENA_MAX";

/// The default cap: one arena per core the process may use, at least two.
pub fn default_arenas() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).max(2)
}

/// Cap the malloc arenas at `arenas` (0: leave glibc's default) by executing this program
/// again with [`ENV`] set. Returns when there is nothing to do (the cap is set already, or not
/// wanted), or when the `exec` failed (logged; the process goes on with glibc's default).
/// Call before any thread starts or any resource is taken.
pub fn limit_arenas(arenas: usize) {
    if arenas == 0 || std::env::var_os(ENV).is_some() || !cfg!(target_env = "gnu") {
        return;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            tracing::warn!(error = %e, "cannot find this program to restart it with the malloc arena limit");
            return;
        }
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(ENV, arenas.to_string())
        .exec();
    tracing::warn!(error = %err, arenas, "could not restart with the malloc arena limit; glibc's default stays");
}
