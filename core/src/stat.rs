//! What `stat` and directory listings return: every attribute of an entry in one struct, so a
//! listing is one round trip (readdirplus) for every surface.

use serde::Serialize;

use crate::chunk_store::Extent;
use crate::error::Result;
use crate::overlay::Timestamp;
use crate::path::SessionPath;
use crate::view::{Content, FileKind, Node, View};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stat {
    pub path: String,
    pub kind: FileKind,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub mtime_ns: Timestamp,
    /// Git blob id of a file or symlink.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    /// Whether the bytes live in the chunk store.
    pub chunked: bool,
    /// Chunks of a chunked file (only from `stat`, not from listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extents: Option<Vec<Extent>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirEntry {
    pub name: String,
    #[serde(flatten)]
    pub stat: Stat,
}

pub(crate) fn stat_node(view: &View<'_>, path: &SessionPath, node: &Node, with_extents: bool) -> Result<Stat> {
    let oid = match &node.content {
        Content::Blob { oid, .. } | Content::SymlinkBlob(oid) => Some(*oid),
        Content::SymlinkTarget(t) => Some(
            gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, t.as_bytes())
                .map_err(crate::Error::odb)?,
        ),
        Content::Dir { .. } => None,
    };
    let manifest = match (&node.content, node.kind) {
        (Content::Blob { oid, .. }, FileKind::File) => view.objects.manifest(oid)?,
        _ => None,
    };
    Ok(Stat {
        path: path.as_str().to_owned(),
        kind: node.kind,
        mode: node.mode & 0o7777,
        size: view.size_of(node)?,
        mtime_ns: node.mtime,
        oid: oid.map(|o| o.to_hex().to_string()),
        chunked: manifest.is_some(),
        extents: if with_extents {
            manifest.map(|m| m.extents())
        } else {
            None
        },
        symlink_target: view.symlink_target(node)?,
    })
}
