//! A tree as one surface shows it: for every entry its full name (bytes), kind, permission bits,
//! size, a blake3 digest of a file's bytes and a symlink's target (bytes). Two snapshots compare
//! entry by entry into [`Differences`].

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::report::Differences;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One entry. A symlink's mode means nothing on Linux and is not kept (0); a directory has no
/// size or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// `mode & 0o7777`.
    pub mode: u32,
    pub size: u64,
    pub digest: Option<[u8; 32]>,
    pub target: Option<Vec<u8>>,
}

impl Entry {
    pub fn dir(mode: u32) -> Entry {
        Entry {
            kind: Kind::Dir,
            mode: mode & 0o7777,
            size: 0,
            digest: None,
            target: None,
        }
    }

    pub fn file(mode: u32, bytes: &[u8]) -> Entry {
        Entry {
            kind: Kind::File,
            mode: mode & 0o7777,
            size: bytes.len() as u64,
            digest: Some(*blake3::hash(bytes).as_bytes()),
            target: None,
        }
    }

    pub fn symlink(target: &[u8]) -> Entry {
        Entry {
            kind: Kind::Symlink,
            mode: 0,
            size: target.len() as u64,
            digest: None,
            target: Some(target.to_vec()),
        }
    }

    /// A short human description (`file 0644 4097 bytes blake3 1a2b3c4d`).
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Dir => format!("dir {:04o}", self.mode),
            Kind::File => format!(
                "file {:04o} {} bytes blake3 {}",
                self.mode,
                self.size,
                self.digest.map(|d| hex(&d[..6])).unwrap_or_default()
            ),
            Kind::Symlink => format!("symlink -> {}", show(self.target.as_deref().unwrap_or_default())),
        }
    }
}

/// Every entry below a root (not the root itself) by its path relative to the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub entries: BTreeMap<Vec<u8>, Entry>,
}

impl Snapshot {
    pub fn insert(&mut self, path: impl Into<Vec<u8>>, entry: Entry) -> Option<Entry> {
        self.entries.insert(path.into(), entry)
    }

    pub fn get(&self, path: &[u8]) -> Option<&Entry> {
        self.entries.get(path)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.entries.values().filter(|e| e.kind == kind).count()
    }

    pub fn file_bytes(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.kind == Kind::File)
            .map(|e| e.size)
            .sum()
    }

    /// Paths of the regular files, in name order.
    pub fn files(&self) -> Vec<Vec<u8>> {
        self.entries
            .iter()
            .filter(|(_, e)| e.kind == Kind::File)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// "N entries (F files, D dirs, L symlinks), B file bytes".
    pub fn summary(&self) -> String {
        format!(
            "{} entries ({} files, {} dirs, {} symlinks), {} file bytes",
            self.len(),
            self.count(Kind::File),
            self.count(Kind::Dir),
            self.count(Kind::Symlink),
            self.file_bytes()
        )
    }

    /// Read `root` through the kernel: names from `readdir`, modes from `lstat`, every file's
    /// bytes read whole (a file whose byte count differs from its `lstat` size is recorded in
    /// `diffs` under `surface`).
    pub fn from_dir(root: &Path, diffs: &Differences, surface: &str) -> std::io::Result<Snapshot> {
        let mut out = Snapshot::default();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir)? {
                let e = e?;
                let path = e.path();
                let rel = path
                    .strip_prefix(root)
                    .map_err(std::io::Error::other)?
                    .as_os_str()
                    .as_bytes()
                    .to_vec();
                let m = std::fs::symlink_metadata(&path)?;
                let entry = if m.file_type().is_symlink() {
                    Entry::symlink(std::fs::read_link(&path)?.as_os_str().as_bytes())
                } else if m.is_dir() {
                    stack.push(path.clone());
                    Entry::dir(m.mode())
                } else if m.is_file() {
                    let bytes = std::fs::read(&path)?;
                    if bytes.len() as u64 != m.len() {
                        diffs.add(
                            surface,
                            show(&rel),
                            format!("lstat says {} bytes, reading gave {}", m.len(), bytes.len()),
                        );
                    }
                    Entry::file(m.mode(), &bytes)
                } else {
                    diffs.add(surface, show(&rel), format!("special file (mode {:o})", m.mode()));
                    continue;
                };
                out.insert(rel, entry);
            }
        }
        Ok(out)
    }

    /// The same tree with `f` applied to every entry; `None` drops the entry.
    pub fn map(&self, mut f: impl FnMut(&[u8], &Entry) -> Option<(Vec<u8>, Entry)>) -> Snapshot {
        Snapshot {
            entries: self.entries.iter().filter_map(|(p, e)| f(p, e)).collect(),
        }
    }

    /// Record in `diffs` every way `got` (as `surface` showed it) differs from `self`.
    pub fn compare(&self, got: &Snapshot, surface: &str, diffs: &Differences) {
        for (path, e) in &self.entries {
            match got.entries.get(path) {
                None => diffs.add(surface, show(path), format!("missing (expected {})", e.describe())),
                Some(g) if g != e => diffs.add(surface, show(path), what_differs(e, g)),
                Some(_) => {}
            }
        }
        for (path, g) in &got.entries {
            if !self.entries.contains_key(path) {
                diffs.add(surface, show(path), format!("unexpected entry ({})", g.describe()));
            }
        }
    }
}

fn what_differs(e: &Entry, g: &Entry) -> String {
    if e.kind != g.kind {
        return format!("expected {}, got {}", e.describe(), g.describe());
    }
    let mut parts = Vec::new();
    if e.mode != g.mode {
        parts.push(format!("mode {:04o} instead of {:04o}", g.mode, e.mode));
    }
    if e.size != g.size && e.kind != Kind::Symlink {
        parts.push(format!("size {} instead of {}", g.size, e.size));
    }
    if e.digest != g.digest {
        parts.push(format!(
            "content blake3 {} instead of {}",
            g.digest.map(|d| hex(&d[..6])).unwrap_or_default(),
            e.digest.map(|d| hex(&d[..6])).unwrap_or_default()
        ));
    }
    if e.target != g.target {
        parts.push(format!(
            "symlink target {} instead of {}",
            show(g.target.as_deref().unwrap_or_default()),
            show(e.target.as_deref().unwrap_or_default())
        ));
    }
    parts.join(", ")
}

/// A path or target for a message: quoted, every byte outside printable ASCII escaped
/// (`\u{301}` for a combining mark, `\xff` for a byte that is not UTF-8), so `a//b`, a trailing
/// `/` and NFC/NFD spellings stay distinguishable.
pub fn show(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' | '\\' => {
                    out.push('\\');
                    out.push(c);
                }
                ' '..='~' => out.push(c),
                _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
