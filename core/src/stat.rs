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
    /// Owner and group as chown set them; `None` when never set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// Device number of a character or block device (0 otherwise).
    #[serde(skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// Names of this entry: its hard-link group's size (1 when never linked); for a directory
    /// 2 + its subdirectories.
    pub nlink: u32,
    /// The hard-link group, when the entry has one: the same for all its names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
        Content::Dir { .. } | Content::Special { .. } => None,
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
        uid: node.owner.and_then(|o| o.uid),
        gid: node.owner.and_then(|o| o.gid),
        rdev: match node.content {
            Content::Special { rdev } => rdev,
            _ => 0,
        },
        nlink: nlink(view, path, node)?,
        link: node.link,
    })
}

/// The link count of `node`: see [`Stat::nlink`].
pub(crate) fn nlink(view: &View<'_>, path: &SessionPath, node: &Node) -> Result<u32> {
    if node.is_dir() {
        return Ok(view.subdir_count(path, node)?.saturating_add(2));
    }
    Ok(match node.link {
        Some(l) => u32::try_from(view.overlay.link_count(l).max(1)).unwrap_or(u32::MAX),
        None => 1,
    })
}
