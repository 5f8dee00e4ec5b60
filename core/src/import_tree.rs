//! The tree an import builds: entries added one at a time (from a directory walk or an
//! archive), checked against each other, then written as one git tree plus the residual
//! overlay for what git cannot hold: file modes other than 644 and 755 (`Attr`), directory
//! modes other than 755 and empty directories (`Dir`), as writes through the API store them.
//!
//! A later entry at the same path replaces an earlier one, as when an archive is extracted,
//! except that a directory and a non-directory never replace each other (nor does anything
//! sit below a non-directory): such an archive is refused, since no extraction order makes it
//! one tree.

use std::collections::{HashMap, HashSet};

use gix::ObjectId;
use gix::objs::tree::EntryKind;

use crate::error::{Error, Result};
use crate::objects::Objects;
use crate::odb::TreeEdit;
use crate::overlay::{OverlayEntry, Timestamp};
use crate::path::{PathLimits, SessionPath};
use crate::view::Residual;

/// How many skipped paths the `created` event lists (all are counted).
const LISTED_SKIPS: usize = 100;

#[derive(Debug, Clone, Copy)]
enum Item {
    File { oid: ObjectId, mode: u32 },
    Link { oid: ObjectId },
    Dir { mode: u32 },
}

impl Item {
    fn is_dir(&self) -> bool {
        matches!(self, Item::Dir { .. })
    }
}

/// The default mode git's entry kind implies for a file with `mode`: 755 when any exec bit is
/// set (git keeps only the owner's), 644 otherwise.
fn file_kind(mode: u32) -> (EntryKind, u32) {
    if mode & 0o100 != 0 {
        (EntryKind::BlobExecutable, 0o755)
    } else {
        (EntryKind::Blob, 0o644)
    }
}

/// What a finished import holds.
pub(crate) struct Built {
    pub tree: ObjectId,
    pub residual: Residual,
    /// Entries taken from the source.
    pub entries: u64,
    /// Entries left out (special files), with the first few paths.
    pub skipped: u64,
    pub skipped_paths: Vec<String>,
}

pub(crate) struct ImportTree {
    items: HashMap<String, Item>,
    /// Every directory something was added below (all ancestors of all items and skips).
    parents: HashSet<String>,
    count: u64,
    max_files: u64,
    pub limits: PathLimits,
    pub max_file_size: u64,
    skipped: u64,
    skipped_paths: Vec<String>,
}

impl ImportTree {
    pub fn new(limits: crate::config::Limits) -> Self {
        ImportTree {
            items: HashMap::new(),
            parents: HashSet::new(),
            count: 0,
            max_files: limits.max_import_files,
            limits: limits.path,
            max_file_size: limits.max_file_size,
            skipped: 0,
            skipped_paths: Vec::new(),
        }
    }

    pub fn add_file(&mut self, path: SessionPath, oid: ObjectId, mode: u32) -> Result<()> {
        self.insert(
            path,
            Item::File {
                oid,
                mode: mode & 0o7777,
            },
        )
    }

    pub fn add_link(&mut self, path: SessionPath, oid: ObjectId) -> Result<()> {
        self.insert(path, Item::Link { oid })
    }

    /// A directory with its mode. The root's own mode is not kept (see the module docs of
    /// `import`).
    pub fn add_dir(&mut self, path: SessionPath, mode: u32) -> Result<()> {
        if path.is_root() {
            return Ok(());
        }
        self.insert(path, Item::Dir { mode: mode & 0o7777 })
    }

    /// Another name for the file or symlink added earlier at `target`.
    pub fn add_hard_link(&mut self, path: SessionPath, target: SessionPath) -> Result<()> {
        match self.items.get(target.as_str()).copied() {
            Some(item) if !item.is_dir() => self.insert(path, item),
            Some(_) => Err(Error::InvalidArgument(format!(
                "hard link '{path}' points to the directory '{target}'"
            ))),
            None => Err(Error::InvalidArgument(format!(
                "hard link '{path}' points to '{target}', which is not earlier in the archive"
            ))),
        }
    }

    /// Record an entry the session cannot hold (a fifo, socket or device), left out.
    /// Its directory is still made, as extracting the archive would.
    pub fn skip(&mut self, path: &SessionPath, what: &str) -> Result<()> {
        self.count_one()?;
        self.add_ancestors(path.as_str())?;
        self.skipped += 1;
        if self.skipped_paths.len() < LISTED_SKIPS {
            self.skipped_paths.push(format!("{path} ({what})"));
        }
        Ok(())
    }

    fn count_one(&mut self) -> Result<()> {
        self.count += 1;
        if self.count > self.max_files {
            return Err(Error::TooLarge {
                what: "number of files in the import".into(),
                limit: self.max_files,
            });
        }
        Ok(())
    }

    fn insert(&mut self, path: SessionPath, item: Item) -> Result<()> {
        if path.is_root() {
            return Err(Error::InvalidPath {
                path: String::new(),
                reason: "a file cannot be the root",
            });
        }
        self.count_one()?;
        let key = path.as_str();
        self.add_ancestors(key)?;
        let clash = match self.items.get(key) {
            Some(existing) => existing.is_dir() != item.is_dir(),
            None => !item.is_dir() && self.parents.contains(key),
        };
        if clash {
            return Err(Error::InvalidArgument(format!(
                "'{key}' appears both as a directory and as a file"
            )));
        }
        self.items.insert(key.to_owned(), item);
        Ok(())
    }

    /// Record the directories above `key`, which must not be files; once one is known to be a
    /// directory, so are those above it.
    fn add_ancestors(&mut self, key: &str) -> Result<()> {
        let mut p = key;
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if self.parents.contains(p) {
                break;
            }
            if let Some(existing) = self.items.get(p)
                && !existing.is_dir()
            {
                return Err(Error::InvalidArgument(format!(
                    "'{key}' lies below '{p}', which is not a directory"
                )));
            }
            self.parents.insert(p.to_owned());
        }
        Ok(())
    }

    /// Write the tree. Residual entries carry `now`, the session's base time.
    pub fn finish(self, objects: &Objects, now: Timestamp) -> Result<Built> {
        let mut edits = Vec::with_capacity(self.items.len());
        let mut residual = Vec::new();
        // Directories with a file or symlink below them exist in the git tree; every other
        // directory (empty, or holding only empty directories) is a residual entry.
        let mut in_tree: HashSet<&str> = HashSet::new();
        for (path, item) in &self.items {
            let (kind, oid) = match *item {
                Item::File { oid, mode } => {
                    let (kind, implied) = file_kind(mode);
                    if mode != implied {
                        residual.push((
                            path.clone(),
                            OverlayEntry::Attr {
                                mode,
                                mtime: now,
                                owner: None,
                                link: None,
                            },
                        ));
                    }
                    (kind, oid)
                }
                Item::Link { oid } => (EntryKind::Link, oid),
                Item::Dir { .. } => continue,
            };
            edits.push(TreeEdit::Upsert {
                path: path.clone(),
                kind,
                oid,
            });
            let mut p = path.as_str();
            while let Some(i) = p.rfind('/') {
                p = &p[..i];
                if !in_tree.insert(p) {
                    break;
                }
            }
        }
        let explicit = self.items.iter().filter_map(|(path, item)| match item {
            Item::Dir { mode } => Some((path.as_str(), *mode)),
            _ => None,
        });
        let implicit = self
            .parents
            .iter()
            .filter(|p| !self.items.contains_key(*p))
            .map(|p| (p.as_str(), 0o755));
        for (path, mode) in explicit.chain(implicit) {
            if mode != 0o755 || !in_tree.contains(path) {
                residual.push((
                    path.to_owned(),
                    OverlayEntry::Dir {
                        opaque: false,
                        mode,
                        mtime: now,
                        owner: None,
                    },
                ));
            }
        }
        residual.sort_by(|a, b| a.0.cmp(&b.0));
        let tree = objects.odb.edit_tree(objects.odb.empty_tree(), &edits)?;
        Ok(Built {
            tree,
            residual,
            entries: self.count,
            skipped: self.skipped,
            skipped_paths: self.skipped_paths,
        })
    }
}
