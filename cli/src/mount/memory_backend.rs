//! A server kept in memory, with the same path rules as the engine: for tests of the mount's
//! local logic, and to count what the mount asks for.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::mount::backend::{Backend, BackendError, BackendResult, EntryKind, RemoteEntry, RemoteOp};

#[derive(Clone, Debug)]
enum Item {
    Dir { mode: u32 },
    File { mode: u32, id: String },
    Symlink { target: String },
}

#[derive(Default)]
pub struct MemoryBackend {
    items: Mutex<BTreeMap<String, Item>>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    down: AtomicBool,
    /// Refuse every change, as the server does for a token that may only read.
    read_only: AtomicBool,
    pub lists: AtomicU64,
    pub reads: AtomicU64,
    pub puts: AtomicU64,
}

fn content_id(data: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    format!("{:016x}{:08x}", h.finish(), data.len())
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// Make every call fail as if the server were unreachable.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Refuse every change from now on (or accept them again), as for a read-only token.
    pub fn set_read_only(&self, read_only: bool) {
        self.read_only.store(read_only, Ordering::SeqCst);
    }

    fn check_writable(&self) -> BackendResult<()> {
        self.check_up()?;
        if self.read_only.load(Ordering::SeqCst) {
            Err(BackendError::Denied("the token may only read".into()))
        } else {
            Ok(())
        }
    }

    fn check_up(&self) -> BackendResult<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(BackendError::Unavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }

    /// Write a file as another client would (not through the mount).
    pub fn write_external(&self, path: &str, data: &[u8]) {
        let id = content_id(data);
        self.blobs.lock().insert(id.clone(), data.to_vec());
        self.items
            .lock()
            .insert(path.to_owned(), Item::File { mode: 0o644, id });
    }

    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        match self.items.lock().get(path)? {
            Item::File { id, .. } => self.blobs.lock().get(id).cloned(),
            _ => None,
        }
    }

    /// Whether these bytes were ever stored, at any path.
    pub fn ever_held(&self, data: &[u8]) -> bool {
        self.blobs.lock().values().any(|b| b == data)
    }

    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.items.lock().get(path), Some(Item::Dir { .. }))
    }

    /// The content id of the file at `path`.
    pub fn oid(&self, path: &str) -> Option<String> {
        match self.items.lock().get(path)? {
            Item::File { id, .. } => Some(id.clone()),
            _ => None,
        }
    }

    pub fn mode(&self, path: &str) -> Option<u32> {
        match self.items.lock().get(path)? {
            Item::File { mode, .. } | Item::Dir { mode } => Some(*mode),
            Item::Symlink { .. } => Some(0o777),
        }
    }

    fn need_dir(items: &BTreeMap<String, Item>, path: &str) -> BackendResult<()> {
        if path.is_empty() {
            return Ok(());
        }
        match items.get(path) {
            Some(Item::Dir { .. }) => Ok(()),
            Some(_) => Err(BackendError::NotDir(path.into())),
            None => Err(BackendError::NotFound(path.into())),
        }
    }

    fn has_children(items: &BTreeMap<String, Item>, path: &str) -> bool {
        let prefix = format!("{path}/");
        items
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }
}

impl Backend for MemoryBackend {
    fn list(&self, path: &str) -> BackendResult<Vec<RemoteEntry>> {
        self.check_up()?;
        self.lists.fetch_add(1, Ordering::Relaxed);
        let items = self.items.lock();
        Self::need_dir(&items, path)?;
        let blobs = self.blobs.lock();
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}/")
        };
        let mut out = Vec::new();
        for (k, item) in items.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            let name = &k[prefix.len()..];
            if name.contains('/') {
                continue;
            }
            out.push(match item {
                Item::Dir { mode } => RemoteEntry {
                    name: name.into(),
                    kind: EntryKind::Dir,
                    size: 0,
                    mode: *mode,
                    mtime_ns: 0,
                    content_id: None,
                    symlink_target: None,
                },
                Item::File { mode, id } => RemoteEntry {
                    name: name.into(),
                    kind: EntryKind::File,
                    size: blobs.get(id).map_or(0, |b| b.len() as u64),
                    mode: *mode,
                    mtime_ns: 0,
                    content_id: Some(id.clone()),
                    symlink_target: None,
                },
                Item::Symlink { target } => RemoteEntry {
                    name: name.into(),
                    kind: EntryKind::Symlink,
                    size: target.len() as u64,
                    mode: 0o777,
                    mtime_ns: 0,
                    content_id: None,
                    symlink_target: Some(target.clone()),
                },
            });
        }
        Ok(out)
    }

    fn read(&self, _path: &str, content_id: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        self.check_up()?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let blobs = self.blobs.lock();
        let data = blobs
            .get(content_id)
            .ok_or_else(|| BackendError::NotFound(content_id.into()))?;
        let start = (offset as usize).min(data.len());
        let end = (offset.saturating_add(len) as usize).min(data.len());
        Ok(data[start..end].to_vec())
    }

    fn put(&self, path: &str, mode: u32, _size: u64, mut data: Box<dyn Read + Send>) -> BackendResult<String> {
        self.check_writable()?;
        self.puts.fetch_add(1, Ordering::Relaxed);
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)
            .map_err(|e| BackendError::Other(e.to_string()))?;
        let mut items = self.items.lock();
        Self::need_dir(&items, parent_of(path))?;
        if let Some(Item::Dir { .. }) = items.get(path) {
            return Err(BackendError::IsDir(path.into()));
        }
        let id = content_id(&buf);
        self.blobs.lock().insert(id.clone(), buf);
        items.insert(path.into(), Item::File { mode, id: id.clone() });
        Ok(id)
    }

    fn apply(&self, op: &RemoteOp) -> BackendResult<()> {
        self.check_writable()?;
        let mut items = self.items.lock();
        match op {
            RemoteOp::Mkdir { path } => {
                Self::need_dir(&items, parent_of(path))?;
                if items.contains_key(path) {
                    return Err(BackendError::Exists(path.clone()));
                }
                items.insert(path.clone(), Item::Dir { mode: 0o755 });
            }
            RemoteOp::Symlink { path, target } => {
                Self::need_dir(&items, parent_of(path))?;
                if items.contains_key(path) {
                    return Err(BackendError::Exists(path.clone()));
                }
                items.insert(path.clone(), Item::Symlink { target: target.clone() });
            }
            RemoteOp::Unlink { path } => match items.get(path) {
                Some(Item::Dir { .. }) => return Err(BackendError::IsDir(path.clone())),
                Some(_) => {
                    items.remove(path);
                }
                None => return Err(BackendError::NotFound(path.clone())),
            },
            RemoteOp::Rmdir { path } => match items.get(path) {
                Some(Item::Dir { .. }) if Self::has_children(&items, path) => {
                    return Err(BackendError::NotEmpty(path.clone()));
                }
                Some(Item::Dir { .. }) => {
                    items.remove(path);
                }
                Some(_) => return Err(BackendError::NotDir(path.clone())),
                None => return Err(BackendError::NotFound(path.clone())),
            },
            RemoteOp::Chmod { path, mode } => match items.get_mut(path) {
                Some(Item::File { mode: m, .. } | Item::Dir { mode: m }) => *m = *mode,
                Some(Item::Symlink { .. }) => {}
                None => return Err(BackendError::NotFound(path.clone())),
            },
            RemoteOp::Rename { from, to } => {
                let item = items
                    .get(from)
                    .cloned()
                    .ok_or_else(|| BackendError::NotFound(from.clone()))?;
                Self::need_dir(&items, parent_of(to))?;
                let is_dir = matches!(item, Item::Dir { .. });
                match items.get(to) {
                    Some(Item::Dir { .. }) if !is_dir => return Err(BackendError::IsDir(to.clone())),
                    Some(Item::Dir { .. }) if Self::has_children(&items, to) => {
                        return Err(BackendError::NotEmpty(to.clone()));
                    }
                    Some(Item::File { .. } | Item::Symlink { .. }) if is_dir => {
                        return Err(BackendError::NotDir(to.clone()));
                    }
                    _ => {}
                }
                let prefix = format!("{from}/");
                let moved: Vec<(String, Item)> = items
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                items.remove(from);
                items.insert(to.clone(), item);
                for (k, v) in moved {
                    items.remove(&k);
                    items.insert(format!("{to}/{}", &k[prefix.len()..]), v);
                }
            }
        }
        Ok(())
    }
}
