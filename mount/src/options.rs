//! What a caller decides about a mount: the typed form of `aether mount`'s arguments.

use std::path::{Path, PathBuf};

use crate::error::{MountError, Result};

/// How to mount one session (see [`crate::serve`] and [`crate::background::spawn`]).
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// The session to mount.
    pub session: String,
    /// An existing directory to mount on.
    pub dir: PathBuf,
    /// Read-only (implied by `at`).
    pub read_only: bool,
    /// A checkpoint or commit to mount, read-only.
    pub at: Option<String>,
    /// Memory for cached file content, in bytes.
    pub cache_mem: u64,
    /// Directory of the on-disk content cache; `None`: [`default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Size limit of the on-disk content cache, in bytes.
    pub cache_size: u64,
    /// How long fsync and close wait for an unreachable server before failing with EIO.
    pub retry_secs: u64,
    /// Threads serving kernel requests; `None`: one per CPU, at most 8.
    pub threads: Option<usize>,
    /// Keep idle CPUs polling while requests come (see `cpu_latency`).
    pub cpu_latency: bool,
    /// Refresh the kernel's caches of what the mount changed once quiet (see `kernel_warm`).
    pub warm_kernel_cache: bool,
    /// Let every user of the machine use the mount, the kernel checking each access against
    /// the mode, owner and group the mount reports (`allow_other` with `default_permissions`).
    pub allow_other: bool,
}

impl MountOptions {
    /// Whether the caller asked for a read-only mount (`--ro`, or a revision). The mount is also
    /// read-only when its token may only read or the session is archived (see `access`).
    pub fn read_only(&self) -> bool {
        self.read_only || self.at.is_some()
    }
}

/// How to unmount (see [`crate::unmount::unmount`]).
#[derive(Debug, Clone)]
pub struct UnmountOptions {
    /// The mounted directory.
    pub dir: PathBuf,
    /// The cache directory the mount was started with.
    pub cache_dir: Option<PathBuf>,
}

/// The cache directory every mount shares unless told otherwise: `$XDG_CACHE_HOME/aether`, else
/// `~/.cache/aether`; `None` when neither variable is set.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("XDG_CACHE_HOME")
        .or_else(|| var("HOME").map(|h| h.join(".cache")))
        .map(|b| b.join("aether"))
}

/// `arg`, or the default cache directory.
pub fn cache_dir(arg: &Option<PathBuf>) -> Result<PathBuf> {
    match arg {
        Some(d) => Ok(d.clone()),
        None => default_cache_dir().ok_or(MountError::NoCacheDir),
    }
}

/// Where mount processes record themselves for `aether unmount` (see `records`): the default
/// cache directory, whatever `--cache-dir` a mount uses, so that the `aether unmount DIR` a
/// mount prints finds it; `fallback` (the mount's own cache directory) only when neither
/// XDG_CACHE_HOME nor HOME is set.
pub fn records_root(fallback: &Option<PathBuf>) -> Result<PathBuf> {
    match (default_cache_dir(), fallback) {
        (Some(d), _) => Ok(d),
        (None, fallback) => cache_dir(fallback),
    }
}

/// `dir` made absolute and canonical; it must be an existing directory.
pub fn absolute(dir: &Path) -> Result<PathBuf> {
    let abs = std::fs::canonicalize(dir).map_err(|source| MountError::MountPoint {
        dir: dir.to_path_buf(),
        source,
    })?;
    if !abs.is_dir() {
        return Err(MountError::NotADirectory(abs));
    }
    Ok(abs)
}
