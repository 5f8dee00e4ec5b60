//! Engine configuration: where data lives, how large files are chunked, and the limits applied
//! to everything that comes from outside.

use std::path::PathBuf;

use crate::path::PathLimits;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Files of at least this many bytes go to the chunk store.
    pub large_file_threshold: u64,
    pub chunking: ChunkingConfig,
    pub limits: Limits,
    /// Identity written into checkpoint commits (commits carry their own author).
    pub committer: Identity,
    /// Size at which a chunk pack file is sealed and a new one started.
    pub pack_target_size: u64,
    /// zlib level of loose objects, as git's `core.looseCompression`: 0 stores the bytes as
    /// they are (the least CPU; see `loose.rs`), 1 to 9 compress.
    pub loose_compression: u32,
    /// Most bytes the git serving caches (`<data dir>/cache/git-zlib`, `git-delta`) may hold
    /// together; the least recently used entries go first. 0 keeps none.
    pub git_cache_bytes: u64,
    /// Which backend holds what (see [`StoreConfig`]); by default everything is under `data_dir`.
    pub stores: StoreConfig,
    /// How much memory the engine's caches may hold.
    pub caches: CacheConfig,
}

/// Caps, in bytes, of the engine's in-memory caches. Each holds what it caches least recently
/// used first out; what is weighed is the decoded form held (entries, names, ids), so a few
/// huge directories count as much as many small ones. 0 keeps nothing (every read decodes
/// again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Decoded git trees: every listing, lookup and walk reads through it.
    pub tree_bytes: u64,
    /// Chunk manifests of large files.
    pub manifest_bytes: u64,
    /// Recorded revisions' states (residual entries: mtimes, modes, empty directories), read
    /// by every access at a checkpoint.
    pub revision_bytes: u64,
    /// The sessions loaded in memory, weighed by their overlays: idle ones beyond it are
    /// evicted, and loaded again from the metadata store on their next use.
    pub session_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            tree_bytes: 64 << 20,
            manifest_bytes: 32 << 20,
            revision_bytes: 128 << 20,
            session_bytes: 256 << 20,
        }
    }
}

/// Where each store lives, as `<scheme>:<location>`; `None` is the default under the data
/// directory. The factory (`stores::open`) turns each into a backend:
///
/// - `metadata`: `sqlite:<file>` (default `sqlite:<data dir>/meta.db`), or `memory:` (nothing
///   kept after the process ends; tests and throwaway servers).
/// - `objects`: `local:<dir>`, a bare git repository (default `local:<data dir>/objects.git`).
/// - `chunks`: `local:<dir>` (default `local:<data dir>/chunks`), or `memory:`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreConfig {
    pub metadata: Option<String>,
    pub objects: Option<String>,
    pub chunks: Option<String>,
}

/// A store's `<scheme>:<location>`, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    pub scheme: String,
    pub location: String,
}

impl std::str::FromStr for StoreUrl {
    type Err = crate::Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        match s.split_once(':') {
            Some((scheme, location))
                if !scheme.is_empty() && scheme.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
            {
                Ok(StoreUrl {
                    scheme: scheme.to_owned(),
                    location: location.to_owned(),
                })
            }
            _ => Err(crate::Error::InvalidArgument(format!(
                "a store is given as <scheme>:<location> (for example sqlite:/var/lib/aether/meta.db), got '{}'",
                s.escape_debug()
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ChunkingConfig {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for ChunkingConfig {
    fn default() -> Self {
        ChunkingConfig {
            min: 16 * 1024,
            avg: 64 * 1024,
            max: 256 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub path: PathLimits,
    /// Largest file accepted by a write or an import.
    pub max_file_size: u64,
    /// Most entries accepted by one import.
    pub max_import_files: u64,
    /// Deepest level (components of a path) a walk over a tree (recursive listing, diff)
    /// descends to; a deeper tree is refused as too large. Trees come from outside (imported
    /// repositories), so their depth is not bounded by the path limit on its own.
    pub max_tree_depth: usize,
    /// Most entries one walk over a tree produces (a recursive listing, the changes of a
    /// diff). Trees share subtrees, so a small repository can describe a vast tree.
    pub max_walk_entries: u64,
}

impl Limits {
    /// The deepest tree whose every path fits in `path.max_path_len`: a path of `d` components
    /// takes at least `2d - 1` bytes.
    pub fn tree_depth_for(path: PathLimits) -> usize {
        path.max_path_len.div_ceil(2).max(1)
    }
}

impl Default for Limits {
    fn default() -> Self {
        let path = PathLimits::default();
        Limits {
            path,
            max_file_size: 64 << 30,
            max_import_files: 2_000_000,
            max_tree_depth: Limits::tree_depth_for(path),
            max_walk_entries: 10_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            name: "AetherFS".into(),
            email: "aether@localhost".into(),
        }
    }
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            large_file_threshold: 1 << 20,
            chunking: ChunkingConfig::default(),
            limits: Limits::default(),
            committer: Identity::default(),
            pack_target_size: 256 << 20,
            loose_compression: 0,
            git_cache_bytes: 10 << 30,
            stores: StoreConfig::default(),
            caches: CacheConfig::default(),
        }
    }

    pub(crate) fn validate(&self) -> crate::Result<()> {
        let c = self.chunking;
        let ok = c.min >= 64 && c.min <= c.avg && c.avg <= c.max && c.max <= 16 << 20;
        if !ok || [c.min, c.avg, c.max].iter().any(|v| !v.is_multiple_of(2)) {
            return Err(crate::Error::InvalidArgument(format!(
                "chunk sizes must be even and satisfy 64 <= min <= avg <= max <= 16 MiB, got {}/{}/{}",
                c.min, c.avg, c.max
            )));
        }
        if self.loose_compression > 9 {
            return Err(crate::Error::InvalidArgument(format!(
                "loose_compression is a zlib level from 0 to 9, got {}",
                self.loose_compression
            )));
        }
        if self.limits.max_tree_depth == 0 || self.limits.max_walk_entries == 0 {
            return Err(crate::Error::InvalidArgument(
                "max_tree_depth and max_walk_entries must be positive".into(),
            ));
        }
        if self.large_file_threshold == 0 {
            return Err(crate::Error::InvalidArgument(
                "large_file_threshold must be positive".into(),
            ));
        }
        Ok(())
    }
}
