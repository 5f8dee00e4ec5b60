//! AetherFS engine: sessions (a base git tree plus a durable overlay) over one shared git object
//! database and a chunk store for large files, with metadata in a [`meta::MetaStore`].
//!
//! This crate knows no transport. Every surface (HTTP, gRPC, WebDAV, FUSE) translates a request
//! into one [`Engine`] call and its [`Error`] into its own vocabulary via [`ErrorKind`].

mod activity;
pub mod archive;
mod archive_error;
mod batch;
mod blocking;
mod body_pump;
pub mod byte_lru;
mod changes;
pub mod chunk_store;
mod chunker;
pub mod config;
pub mod diff;
mod dirs_walk;
mod disk_usage;
mod engine;
pub mod error;
pub mod event;
mod expiry;
mod export;
pub mod foreign_trees;
mod freeze;
pub use dirs_walk::{DirPiece, DirsWalk};
pub use disk_usage::DiskUsage;
mod fs_ops;
mod gc;
mod gc_barrier;
pub mod git_cache;
pub mod git_view;
mod held;
pub mod ids;
mod import;
pub mod import_git;
mod import_tree;
mod links;
mod loaded;
mod loose;
pub mod meta;
mod meta_check;
#[cfg(test)]
mod module_graph;
pub mod names;
pub mod object_store;
pub mod objects;
pub mod odb;
mod open;
pub mod overlay;
pub mod pack_format;
mod pack_write;
pub mod path;
mod pending_imports;
mod pinned;
mod posix_ops;
pub mod quota;
mod quota_check;
mod read;
mod repack;
mod repair;
pub mod residual;
pub mod retention;
mod revision;
mod revision_cache;
mod session_usage;
mod sessions;
mod snapshots;
mod stat;
pub mod store_error;
pub mod stores;
pub mod tokens;
pub mod tree_names;
pub mod usage;
pub mod view;
mod walk;
pub mod watch;

pub use activity::{ActivityPage, ActivityQuery, EventRetention, MAX_PAGE as MAX_ACTIVITY_PAGE};
pub use batch::{BatchOp, BatchOutcome};
pub use chunk_store::Extent;
pub use config::{CacheConfig, ChunkingConfig, EngineConfig, Identity, Limits, StoreConfig, StoreUrl};
pub use engine::{Engine, KeepLoaded};
pub use error::{Error, ErrorKind, Result};
pub use event::{EventKind, Origin, Surface};
pub use expiry::{Expired, ExpiryOptions};
pub use fs_ops::{Listed, WriteOptions, check_mtime};
pub use gc::{GcOptions, GcReport};
pub use gix::ObjectId;
pub use ids::SessionId;
pub use import_git::{ImportedHistory, PendingImport};
pub use meta::{CheckpointRecord, Event, SessionRecord, SessionState};
pub use odb::{CommitInfo, Signature};
pub use overlay::{Owner, SpecialKind};
pub use path::{PathLimits, SessionPath};
pub use read::{ContentReader, OpenFile, Opened};
pub use repack::{ObjectFiles, PackReport};
pub use session_usage::{ServerUsage, SessionUsage, dedup_ratio};
pub use sessions::{CreateOptions, ListFilter, Page, SessionSource, SessionUpdate};
pub use snapshots::{CheckpointOutcome, RestoreOutcome};
pub use stat::{DirEntry, Stat};
pub use store_error::{StoreError, StoreKind};
pub use tokens::{Access, TokenRecord};
pub use view::FileKind;
pub use walk::TreeWalk;
pub use watch::SessionWatch;

/// Object ids as hex strings in serialized form.
pub(crate) mod oid_hex {
    use gix::ObjectId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(oid: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&oid.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectId, D::Error> {
        let s = <&str>::deserialize(d)?;
        ObjectId::from_hex(s.as_bytes()).map_err(serde::de::Error::custom)
    }
}

pub(crate) use oid_hex::serialize as serde_oid;

pub(crate) fn serde_opt_oid<S: serde::Serializer>(
    oid: &Option<ObjectId>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match oid {
        Some(o) => s.collect_str(&o.to_hex()),
        None => s.serialize_none(),
    }
}
