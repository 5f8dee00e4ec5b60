//! The AetherFS mount: a session as a local directory through FUSE, talking to aetherd over
//! gRPC. The `aether` CLI (`aether mount`, `aether unmount`, `aether cache`) calls the entry
//! points here: [`serve`], [`background::spawn`], [`unmount`] and the `content_cache` functions.
//!
//! Every call is answered from a local picture of the session (`tree`): directories are listed
//! from the server on first use, file bytes are fetched by block, verified against their content
//! id (`content_reader`, `verify`) and kept in a content-addressed cache whose disk blocks are
//! checked on every read (`content_cache`, `block_file`), and changes are applied locally at
//! once and sent to the server in order by one worker (`writeback`); `fsync` waits for the
//! server's acknowledgement. The server's watch stream and listing refreshes invalidate what
//! changed elsewhere (`invalidate`); what the mount changed itself is listed again once quiet,
//! so the kernel's caches hold it (`kernel_warm`).

pub mod access;
pub mod backend;
pub mod background;
pub mod block_file;
pub mod cache_counters;
pub mod content_cache;
pub mod content_layout;
pub mod content_reader;
pub mod cpu_latency;
pub mod error;
pub mod events;
#[cfg(test)]
mod fetch_ahead_tests;
pub mod fs;
pub mod fuse;
pub mod grpc_backend;
pub mod handoff;
pub mod idle_upload;
pub mod ino;
#[cfg(test)]
mod ino_tests;
pub mod invalidate;
pub mod kernel_warm;
pub mod local_file;
pub mod logging;
pub mod lost_found;
#[cfg(test)]
mod memory_backend;
#[cfg(test)]
mod mtime_tests;
pub mod options;
#[cfg(test)]
mod permission_tests;
#[cfg(any(test, feature = "test-support"))]
pub mod posix_scenario;
#[cfg(test)]
mod posix_tests;
pub mod prefetch;
#[cfg(test)]
mod read_integrity_tests;
pub mod recent_events;
pub mod records;
#[cfg(test)]
mod refusal_errno_tests;
pub mod refused;
pub mod serve;
#[cfg(test)]
mod tests;
pub mod tree;
pub mod unmount;
#[cfg(test)]
mod unmounted_tests;
pub mod verify;
#[cfg(test)]
mod version_tests;
mod watch;
pub mod writeback;

pub use aether_proto::remote::Remote;
pub use error::MountError;
pub use options::{MountOptions, UnmountOptions};
pub use serve::{Ready, serve};
pub use unmount::{Unmounted, unmount};

pub(crate) fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The time the kernel stamps changes with: its clock as of the last tick, not this instant.
///
/// A file the mount creates carries this time, so that the kernel's write into it within the
/// same tick finds the times already current and leaves the inode clean. With the writeback
/// cache, a dirty inode costs a `setattr` carrying the times at the next close, chown, chmod or
/// utimens: one request per created file (a checkout of 3,000 files sent about 3,000 fewer
/// SETATTRs). Within a tick where a file system handed out a fine-grained time (multigrain
/// timestamps), the kernel's clock reads that later time instead; the write then dirties the
/// times and they are sent as before. Falls back to the precise clock if the coarse one cannot
/// be read.
pub fn coarse_now() -> std::time::SystemTime {
    use nix::time::{ClockId, clock_gettime};
    match clock_gettime(ClockId::CLOCK_REALTIME_COARSE) {
        Ok(ts) if ts.tv_sec() >= 0 => {
            std::time::UNIX_EPOCH + std::time::Duration::new(ts.tv_sec() as u64, ts.tv_nsec() as u32)
        }
        _ => std::time::SystemTime::now(),
    }
}
