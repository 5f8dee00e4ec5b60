//! A view of a session's files: a base tree seen through an overlay. Resolution, listing and
//! freezing (turning the overlay into tree edits) live here and nowhere else. A view never
//! writes; the engine decides what to persist.

use gix::ObjectId;
use gix::objs::tree::EntryKind;

use crate::error::{Error, Result};
use crate::objects::Objects;
use crate::odb::TreeEdit;
use crate::overlay::{Overlay, OverlayEntry, Owner, SpecialKind, Timestamp};
use crate::path::SessionPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl FileKind {
    /// The kind of a special file.
    pub fn special(kind: SpecialKind) -> FileKind {
        match kind {
            SpecialKind::Fifo => FileKind::Fifo,
            SpecialKind::Socket => FileKind::Socket,
            SpecialKind::CharDevice => FileKind::CharDevice,
            SpecialKind::BlockDevice => FileKind::BlockDevice,
        }
    }

    /// The special kind of a FIFO, socket or device node.
    pub fn as_special(self) -> Option<SpecialKind> {
        Some(match self {
            FileKind::Fifo => SpecialKind::Fifo,
            FileKind::Socket => SpecialKind::Socket,
            FileKind::CharDevice => SpecialKind::CharDevice,
            FileKind::BlockDevice => SpecialKind::BlockDevice,
            FileKind::File | FileKind::Dir | FileKind::Symlink => return None,
        })
    }

    /// Whether this is a FIFO, socket or device node.
    pub fn is_special(self) -> bool {
        matches!(
            self,
            FileKind::Fifo | FileKind::Socket | FileKind::CharDevice | FileKind::BlockDevice
        )
    }

    /// The name surfaces use for this kind (`"file"`, `"dir"`, `"symlink"`, `"fifo"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "char_device",
            FileKind::BlockDevice => "block_device",
        }
    }
}

/// What a path resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: FileKind,
    pub mode: u32,
    pub mtime: Timestamp,
    pub content: Content,
    /// As chown set it (`None`: never set).
    pub owner: Option<Owner>,
    /// The hard-link group, when the entry has more than one name (or had).
    pub link: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A file's blob; size when already known without a lookup.
    Blob {
        oid: ObjectId,
        size: Option<u64>,
    },
    SymlinkTarget(String),
    SymlinkBlob(ObjectId),
    /// A directory; `base` is the git tree whose entries show through, if any.
    Dir {
        base: Option<ObjectId>,
    },
    /// A FIFO, socket or device node (no bytes); `rdev` is a device's number.
    Special {
        rdev: u64,
    },
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// Why the bytes of this node (not a regular file) at `path` cannot be read or written.
    pub(crate) fn not_a_file(&self, path: &SessionPath) -> Error {
        match self.kind {
            FileKind::Dir => Error::IsADirectory { path: path.to_string() },
            FileKind::Symlink => Error::InvalidArgument(format!("'{path}' is a symbolic link; use readlink")),
            other => Error::InvalidArgument(format!(
                "'{path}' is a special file ({}); it has no bytes here",
                other.as_str()
            )),
        }
    }

    /// The base tree below this directory, if it is one.
    pub fn dir_base(&self) -> Option<ObjectId> {
        match self.content {
            Content::Dir { base } => base,
            _ => None,
        }
    }
}

/// Overlay entries that stay after a freeze, keyed by path.
pub type Residual = Vec<(String, OverlayEntry)>;

/// A directory's children in name order, produced one at a time: what [`View::children`]
/// returns, without building a node for every child at once. It holds the directory's base tree
/// (shared with the tree cache) and the names its overlay has there, so a walk over a
/// 200,000-entry directory holds those and one node, not 200,000 nodes. Owns no borrow: give it
/// the view it came from at each step.
#[derive(Clone)]
pub struct Children {
    dir: SessionPath,
    tree: Option<std::sync::Arc<crate::object_store::Tree>>,
    next_base: usize,
    /// Names of the overlay's entries directly in `dir`, sorted.
    overlay: Vec<String>,
    next_overlay: usize,
}

impl Children {
    /// Whether the directory has no children at all (deleted overlay entries are not looked
    /// at: a directory whose only names are deletions counts as not empty).
    pub fn is_empty(&self) -> bool {
        self.tree.as_ref().is_none_or(|t| t.entries.is_empty()) && self.overlay.is_empty()
    }

    /// At most how many children it produces (the base tree's entries and the overlay's names,
    /// deletions included), known without producing any.
    pub fn bound(&self) -> usize {
        self.tree.as_ref().map_or(0, |t| t.entries.len()) + self.overlay.len()
    }

    /// The next child (name and node), or `None` once all were produced.
    pub fn next(&mut self, view: &View<'_>) -> Option<(String, Node)> {
        loop {
            let base = self.tree.as_ref().and_then(|t| t.entries.get(self.next_base));
            let over = self.overlay.get(self.next_overlay);
            // Which comes next in name order; `true` when the overlay has an entry for it.
            let (name, base, in_overlay) = match (base, over) {
                (None, None) => return None,
                (Some(b), Some(o)) if b.name == *o => {
                    self.next_base += 1;
                    self.next_overlay += 1;
                    (o.clone(), Some(b), true)
                }
                (Some(b), Some(o)) if b.name > *o => {
                    self.next_overlay += 1;
                    (o.clone(), None, true)
                }
                (Some(b), _) => {
                    self.next_base += 1;
                    (b.name.clone(), Some(b), false)
                }
                (None, Some(o)) => {
                    self.next_overlay += 1;
                    (o.clone(), None, true)
                }
            };
            let base = base.map(|e| node_from_tree_entry(e.kind, e.oid, view.base_mtime));
            if !in_overlay {
                return base.map(|n| (name, n));
            }
            let entry = view.overlay.get(self.dir.join(&name).as_str());
            // Deleted in the overlay: not a child; go on to the next name.
            if let Some(node) = view.merge(base, entry) {
                return Some((name, node));
            }
        }
    }
}

pub struct View<'a> {
    pub objects: &'a Objects,
    pub base: ObjectId,
    pub overlay: &'a Overlay,
    pub base_mtime: Timestamp,
    /// For a session's live state: the frozen residual its overlay starts from and the paths
    /// changed since that freeze, so a freeze costs what changed (see `snapshots`). `None` for
    /// a pinned copy, which is never frozen.
    pub frozen: Option<(&'a crate::residual::Residual, &'a imbl::OrdSet<String>)>,
}

fn node_from_tree_entry(kind: EntryKind, oid: ObjectId, mtime: Timestamp) -> Node {
    match kind {
        EntryKind::Tree => Node {
            kind: FileKind::Dir,
            mode: 0o755,
            mtime,
            content: Content::Dir { base: Some(oid) },
            owner: None,
            link: None,
        },
        EntryKind::Link => Node {
            kind: FileKind::Symlink,
            mode: 0o777,
            mtime,
            content: Content::SymlinkBlob(oid),
            owner: None,
            link: None,
        },
        EntryKind::BlobExecutable => Node {
            kind: FileKind::File,
            mode: 0o755,
            mtime,
            content: Content::Blob { oid, size: None },
            owner: None,
            link: None,
        },
        // Submodule links (Commit) have no bytes here; present them as empty directories.
        EntryKind::Commit => Node {
            kind: FileKind::Dir,
            mode: 0o755,
            mtime,
            content: Content::Dir { base: None },
            owner: None,
            link: None,
        },
        EntryKind::Blob => Node {
            kind: FileKind::File,
            mode: 0o644,
            mtime,
            content: Content::Blob { oid, size: None },
            owner: None,
            link: None,
        },
    }
}

impl View<'_> {
    fn root(&self) -> Node {
        let (mode, mtime, owner) = match self.overlay.get("") {
            Some(OverlayEntry::Dir { mode, mtime, owner, .. }) => (*mode, *mtime, *owner),
            _ => (0o755, self.base_mtime, None),
        };
        Node {
            kind: FileKind::Dir,
            mode,
            mtime,
            content: Content::Dir { base: Some(self.base) },
            owner,
            link: None,
        }
    }

    /// Combine what the base has at a path with the overlay entry there.
    fn merge(&self, base: Option<Node>, entry: Option<&OverlayEntry>) -> Option<Node> {
        let Some(entry) = entry else { return base };
        Some(match *entry {
            OverlayEntry::Deleted => return None,
            OverlayEntry::File {
                oid,
                size,
                mode,
                mtime,
                owner,
                link,
            } => Node {
                kind: FileKind::File,
                mode,
                mtime,
                content: Content::Blob { oid, size: Some(size) },
                owner,
                link,
            },
            OverlayEntry::Symlink {
                ref target,
                mtime,
                owner,
                link,
            } => Node {
                kind: FileKind::Symlink,
                mode: 0o777,
                mtime,
                content: Content::SymlinkTarget(target.clone()),
                owner,
                link,
            },
            OverlayEntry::Dir {
                opaque,
                mode,
                mtime,
                owner,
            } => {
                let base = if opaque { None } else { base.and_then(|b| b.dir_base()) };
                Node {
                    kind: FileKind::Dir,
                    mode,
                    mtime,
                    content: Content::Dir { base },
                    owner,
                    link: None,
                }
            }
            OverlayEntry::Graft {
                tree,
                mode,
                mtime,
                owner,
            } => Node {
                kind: FileKind::Dir,
                mode,
                mtime,
                content: Content::Dir { base: Some(tree) },
                owner,
                link: None,
            },
            OverlayEntry::Attr {
                mode,
                mtime,
                owner,
                link,
            } => {
                let mut node = base?;
                node.mode = mode;
                node.mtime = mtime;
                node.owner = owner;
                node.link = link;
                node
            }
            OverlayEntry::Special {
                kind,
                rdev,
                mode,
                mtime,
                owner,
                link,
            } => Node {
                kind: FileKind::special(kind),
                mode,
                mtime,
                content: Content::Special { rdev },
                owner,
                link,
            },
        })
    }

    /// Resolve `path` to what it names, or `None`. A file met where a directory is needed is
    /// an error (`NotADirectory`), as in POSIX.
    pub fn resolve(&self, path: &SessionPath) -> Result<Option<Node>> {
        let mut node = self.root();
        let mut prefix = String::new();
        for comp in path.components() {
            if !node.is_dir() {
                return Err(Error::NotADirectory { path: prefix });
            }
            let base_child = match node.dir_base() {
                Some(tree) => self
                    .objects
                    .tree(&tree)?
                    .get(comp)
                    .map(|e| node_from_tree_entry(e.kind, e.oid, self.base_mtime)),
                None => None,
            };
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            match self.merge(base_child, self.overlay.get(&prefix)) {
                Some(n) => node = n,
                None => return Ok(None),
            }
        }
        Ok(Some(node))
    }

    pub fn require(&self, path: &SessionPath) -> Result<Node> {
        self.resolve(path)?.ok_or_else(|| Error::not_found(format!("'{path}'")))
    }

    /// The children of the directory `node` at `path`, sorted by name.
    pub fn children(&self, path: &SessionPath, node: &Node) -> Result<Vec<(String, Node)>> {
        let mut it = self.children_iter(path, node)?;
        let mut out = Vec::new();
        while let Some(child) = it.next(self) {
            out.push(child);
        }
        Ok(out)
    }

    /// The children of the directory `node` at `path`, one at a time (see [`Children`]).
    pub fn children_iter(&self, path: &SessionPath, node: &Node) -> Result<Children> {
        let tree = node.dir_base().map(|t| self.objects.tree(&t)).transpose()?;
        let mut overlay: Vec<String> = if self.overlay.is_empty() {
            Vec::new()
        } else {
            self.overlay
                .children(path.as_str())
                .into_iter()
                .map(|(name, _)| name.to_owned())
                .collect()
        };
        overlay.sort_unstable();
        Ok(Children {
            dir: path.clone(),
            tree,
            next_base: 0,
            overlay,
            next_overlay: 0,
        })
    }

    /// How many directories the directory `node` at `path` holds (its link count is 2 more),
    /// counted from its base tree (cached) and its overlay children without building a node
    /// for each child: O(children), like the listing that usually comes with it.
    pub fn subdir_count(&self, path: &SessionPath, node: &Node) -> Result<u32> {
        let is_tree = |k: EntryKind| matches!(k, EntryKind::Tree | EntryKind::Commit);
        let tree = node.dir_base().map(|t| self.objects.tree(&t)).transpose()?;
        let in_base = |name: &str| tree.as_ref().and_then(|t| t.get(name)).is_some_and(|e| is_tree(e.kind));
        let mut n = tree
            .as_ref()
            .map_or(0, |t| t.entries.iter().filter(|e| is_tree(e.kind)).count()) as i64;
        if !self.overlay.is_empty() {
            for (name, entry) in self.overlay.children(path.as_str()) {
                let was = in_base(name);
                let is = match entry {
                    OverlayEntry::Dir { .. } | OverlayEntry::Graft { .. } => true,
                    OverlayEntry::Attr { .. } => was,
                    _ => false,
                };
                n += i64::from(is) - i64::from(was);
            }
        }
        Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
    }

    /// The tree edits that turn the base into the current state, for entries below `dir`
    /// (paths relative to it), plus the residual overlay (POSIX details) keyed the same way.
    pub fn freeze_edits(&self, dir: &SessionPath) -> Result<(Vec<TreeEdit>, Residual)> {
        let mut edits = Vec::new();
        let mut residual = Vec::new();
        let strip = |p: &str| -> String {
            if dir.is_root() {
                p.to_owned()
            } else {
                p[dir.as_str().len() + 1..].to_owned()
            }
        };
        let entries: Box<dyn Iterator<Item = (&str, &OverlayEntry)>> = if dir.is_root() {
            Box::new(
                self.overlay
                    .iter()
                    .map(|(k, v)| (k.as_str(), v))
                    .filter(|(k, _)| !k.is_empty()),
            )
        } else {
            Box::new(self.overlay.below(dir.as_str()))
        };
        for (full, entry) in entries {
            let path = strip(full);
            edits.extend(self.freeze_edit(&path, entry)?);
            if let Some(r) = entry.residual() {
                residual.push((path, r));
            }
        }
        Ok((edits, residual))
    }

    /// The tree edit that freezes `entry` at `path` into the base tree, if it needs one.
    pub fn freeze_edit(&self, path: &str, entry: &OverlayEntry) -> Result<Option<TreeEdit>> {
        let path = path.to_owned();
        Ok(match entry {
            // A special file: git cannot hold it, so whatever the base had there goes and the
            // entry stays whole in the residual.
            OverlayEntry::Deleted | OverlayEntry::Dir { opaque: true, .. } | OverlayEntry::Special { .. } => {
                Some(TreeEdit::Remove { path })
            }
            OverlayEntry::File { oid, mode, .. } => {
                let kind = if mode & 0o100 != 0 {
                    EntryKind::BlobExecutable
                } else {
                    EntryKind::Blob
                };
                Some(TreeEdit::Upsert { path, kind, oid: *oid })
            }
            OverlayEntry::Symlink { target, .. } => {
                let oid = self.objects.odb.write_blob(target.as_bytes())?;
                Some(TreeEdit::Upsert {
                    path,
                    kind: EntryKind::Link,
                    oid,
                })
            }
            OverlayEntry::Graft { tree, .. } => Some(TreeEdit::Upsert {
                path,
                kind: EntryKind::Tree,
                oid: *tree,
            }),
            OverlayEntry::Dir { opaque: false, .. } | OverlayEntry::Attr { .. } => None,
        })
    }

    /// Size of a file node (looked up in the object layer when the overlay does not know it).
    pub fn size_of(&self, node: &Node) -> Result<u64> {
        Ok(match &node.content {
            Content::Blob { size: Some(s), .. } => *s,
            Content::Blob { oid, size: None } => self.objects.blob_size(oid)?,
            Content::SymlinkTarget(t) => t.len() as u64,
            Content::SymlinkBlob(oid) => self.objects.blob_size(oid)?,
            Content::Dir { .. } | Content::Special { .. } => 0,
        })
    }

    pub fn symlink_target(&self, node: &Node) -> Result<Option<String>> {
        Ok(match &node.content {
            Content::SymlinkTarget(t) => Some(t.clone()),
            Content::SymlinkBlob(oid) => {
                // Never more than a target can be: a hostile tree's symlink blob may be huge.
                let max = crate::names::MAX_SYMLINK_TARGET as u64;
                let target = self.objects.read_range(oid, 0, max + 1)?;
                if target.len() as u64 > max {
                    return Err(Error::TooLarge {
                        what: format!("the target of symlink blob {oid}"),
                        limit: max,
                    });
                }
                Some(String::from_utf8_lossy(&target).into_owned())
            }
            _ => None,
        })
    }
}
