//! A server kept in memory, with the same path rules as the engine: for tests of the mount's
//! local logic, and to count what the mount asks for. Content ids are git blob ids and files
//! from a size on are chunked (blake3 extents), as on the real server; it can also answer like
//! a faulty or racing server, with other bytes than the content asked for.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::backend::{Backend, BackendError, BackendResult, EntryKind, RemoteEntry, RemoteOp};
use crate::content_layout::ChunkRef;

#[derive(Clone, Debug)]
enum Content {
    Dir,
    File {
        id: String,
    },
    Symlink {
        target: String,
    },
    /// A FIFO, socket or device node.
    Special {
        kind: EntryKind,
        rdev: u64,
    },
}

/// One entry with all its names (more than one: hard links share it, as the server's link
/// groups do: a write or chmod through one name is seen through every other).
#[derive(Clone, Debug)]
struct Item {
    content: Content,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
    /// How many names it has.
    names: u32,
    /// Nanoseconds since the epoch: 0 until a put stamps it with the time of the upload (as the
    /// server does) or a set-times change sets it.
    mtime_ns: i64,
}

impl Item {
    fn new(content: Content, mode: u32) -> Item {
        Item {
            content,
            mode,
            uid: None,
            gid: None,
            names: 1,
            mtime_ns: 0,
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.content, Content::Dir)
    }
}

/// Names (session paths) and the entries they name.
#[derive(Default)]
struct Items {
    paths: BTreeMap<String, u64>,
    nodes: HashMap<u64, Item>,
    next: u64,
}

impl Items {
    fn get(&self, path: &str) -> Option<&Item> {
        self.nodes.get(self.paths.get(path)?)
    }

    fn get_mut(&mut self, path: &str) -> Option<&mut Item> {
        self.nodes.get_mut(self.paths.get(path)?)
    }

    fn contains_key(&self, path: &str) -> bool {
        self.paths.contains_key(path)
    }

    /// A new entry named `path` (which must be free).
    fn insert(&mut self, path: &str, item: Item) {
        self.next += 1;
        self.nodes.insert(self.next, item);
        self.paths.insert(path.to_owned(), self.next);
    }

    /// Remove the name `path`; the entry goes with its last name.
    fn remove(&mut self, path: &str) {
        let Some(node) = self.paths.remove(path) else { return };
        if let Some(item) = self.nodes.get_mut(&node) {
            item.names -= 1;
            if item.names == 0 {
                self.nodes.remove(&node);
            }
        }
    }
}

pub struct MemoryBackend {
    items: Mutex<Items>,
    blobs: Mutex<HashMap<String, Vec<u8>>>,
    down: AtomicBool,
    /// Contents of at least this many bytes are chunked (the server's default threshold).
    chunk_at: AtomicU64,
    /// Other bytes to answer reads of a content id with.
    wrong: Mutex<HashMap<String, WrongBytes>>,
    /// The content id to acknowledge the next upload with, whatever it stored.
    misack: Mutex<Option<String>>,
    /// Refuse every change, as the server does for a token that may only read.
    /// What every change is refused with, while set.
    refusing: Mutex<Option<BackendError>>,
    pub lists: AtomicU64,
    pub reads: AtomicU64,
    pub puts: AtomicU64,
    /// Calls asking how a content is stored (`chunks`).
    pub layouts: AtomicU64,
    /// Holds the next listing between being computed and being answered: it tells the first
    /// sender, then waits for the second to send (a listing overtaken by later changes).
    hold_list: Mutex<Option<ListGate>>,
    /// The version of the state: changes so far (see `recent_events`).
    version: std::sync::atomic::AtomicI64,
}

type ListGate = (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>);

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend {
            items: Mutex::default(),
            blobs: Mutex::default(),
            down: AtomicBool::new(false),
            chunk_at: AtomicU64::new(1 << 20),
            wrong: Mutex::default(),
            misack: Mutex::default(),
            refusing: Mutex::new(None),
            lists: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            puts: AtomicU64::new(0),
            layouts: AtomicU64::new(0),
            hold_list: Mutex::new(None),
            version: std::sync::atomic::AtomicI64::new(0),
        }
    }
}

/// Bytes to answer reads with instead of a content's own, and for how many reads (`None`: all).
type WrongBytes = (Vec<u8>, Option<u32>);

fn content_id(data: &[u8]) -> String {
    crate::verify::git_blob_id(data)
}

/// Chunk lengths, in turn: uneven, and none a divisor of a block, so chunk-aligned blocks
/// start anywhere and chunks cross block boundaries.
const CHUNK_LENS: [u32; 5] = [200_003, 65_536, 131_079, 262_141, 90_001];

/// The chunks of `data` as this backend stores a chunked content.
pub fn chunks_of(data: &[u8]) -> Vec<ChunkRef> {
    let mut out = Vec::new();
    let (mut at, mut i) = (0usize, 0usize);
    while at < data.len() {
        let len = (CHUNK_LENS[i % CHUNK_LENS.len()] as usize).min(data.len() - at);
        out.push(ChunkRef {
            offset: at as u64,
            len: len as u32,
            blake3: *blake3::hash(&data[at..at + len]).as_bytes(),
        });
        at += len;
        i += 1;
    }
    out
}

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// Hold the next `list` once computed: `computed` is told, and the answer goes once
    /// `release` sends.
    pub fn hold_next_list(&self, computed: std::sync::mpsc::Sender<()>, release: std::sync::mpsc::Receiver<()>) {
        *self.hold_list.lock() = Some((computed, release));
    }

    /// Make every call fail as if the server were unreachable.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Chunk contents of at least `bytes` bytes (`u64::MAX`: keep every content whole, as a
    /// server with a raised `large_file_threshold`).
    pub fn set_chunk_at(&self, bytes: u64) {
        self.chunk_at.store(bytes, Ordering::SeqCst);
    }

    /// Answer the next `times` reads of content `id` (every one with `None`) with the bytes of
    /// `other` at the offsets asked for, as a server racing a write did: the mount must refuse
    /// them.
    pub fn serve_wrong_bytes(&self, id: &str, other: Vec<u8>, times: Option<u32>) {
        self.wrong.lock().insert(id.to_owned(), (other, times));
    }

    /// Answer reads of content `id` with its own bytes again.
    pub fn serve_right_bytes(&self, id: &str) {
        self.wrong.lock().remove(id);
    }

    /// Acknowledge the next upload with content id `id` instead of the id of what it stored,
    /// as a server that mixed up two uploads would.
    pub fn misack_next_put(&self, id: &str) {
        *self.misack.lock() = Some(id.to_owned());
    }

    /// The bytes content `id` is read as now (its own, or wrong ones still to be served).
    fn read_source(&self, id: &str) -> Option<Vec<u8>> {
        let mut wrong = self.wrong.lock();
        if let Some((other, times)) = wrong.get_mut(id) {
            let data = other.clone();
            if let Some(n) = times {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    wrong.remove(id);
                }
            }
            return Some(data);
        }
        drop(wrong);
        self.blobs.lock().get(id).cloned()
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Refuse every change from now on (or accept them again), as for a read-only token.
    pub fn set_read_only(&self, read_only: bool) {
        self.refuse_changes(read_only.then(|| BackendError::Denied("the token may only read".into())));
    }

    /// Refuse every change with `why` from now on (`None`: accept them again).
    pub fn refuse_changes(&self, why: Option<BackendError>) {
        *self.refusing.lock() = why;
    }

    fn check_writable(&self) -> BackendResult<()> {
        self.check_up()?;
        match self.refusing.lock().clone() {
            Some(e) => Err(e),
            None => Ok(()),
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
        let mut items = self.items.lock();
        match items.get_mut(path) {
            // Every name of a linked file sees the new bytes.
            Some(
                item @ Item {
                    content: Content::File { .. },
                    ..
                },
            ) => item.content = Content::File { id },
            _ => {
                items.remove(path);
                items.insert(path, Item::new(Content::File { id }, 0o644));
            }
        }
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    /// The version of the state now: the number of changes so far (a server's event number).
    pub fn version(&self) -> i64 {
        self.version.load(Ordering::SeqCst)
    }

    pub fn file(&self, path: &str) -> Option<Vec<u8>> {
        match &self.items.lock().get(path)?.content {
            Content::File { id } => self.blobs.lock().get(id).cloned(),
            _ => None,
        }
    }

    /// Whether these bytes were ever stored, at any path.
    pub fn ever_held(&self, data: &[u8]) -> bool {
        self.blobs.lock().values().any(|b| b == data)
    }

    pub fn is_dir(&self, path: &str) -> bool {
        self.items.lock().get(path).is_some_and(Item::is_dir)
    }

    /// The content id of the file at `path`.
    pub fn oid(&self, path: &str) -> Option<String> {
        match &self.items.lock().get(path)?.content {
            Content::File { id } => Some(id.clone()),
            _ => None,
        }
    }

    pub fn mode(&self, path: &str) -> Option<u32> {
        self.items.lock().get(path).map(|i| i.mode)
    }

    /// The modification time the server holds for `path` (nanoseconds since the epoch).
    pub fn mtime(&self, path: &str) -> Option<i64> {
        self.items.lock().get(path).map(|i| i.mtime_ns)
    }

    /// The owner and group set at `path` (`None` each: never set).
    pub fn owner(&self, path: &str) -> Option<(Option<u32>, Option<u32>)> {
        self.items.lock().get(path).map(|i| (i.uid, i.gid))
    }

    /// The kind of entry at `path`.
    pub fn kind(&self, path: &str) -> Option<EntryKind> {
        self.items.lock().get(path).map(|i| kind_of(&i.content))
    }

    /// How many names the entry at `path` has.
    pub fn names(&self, path: &str) -> Option<u32> {
        self.items.lock().get(path).map(|i| i.names)
    }

    fn need_dir(items: &Items, path: &str) -> BackendResult<()> {
        if path.is_empty() {
            return Ok(());
        }
        match items.get(path) {
            Some(i) if i.is_dir() => Ok(()),
            Some(_) => Err(BackendError::NotDir(path.into())),
            None => Err(BackendError::NotFound(path.into())),
        }
    }

    fn has_children(items: &Items, path: &str) -> bool {
        let prefix = format!("{path}/");
        items
            .paths
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// A new entry `path` (free, in an existing directory).
    fn create(items: &mut Items, path: &str, item: Item) -> BackendResult<()> {
        Self::need_dir(items, parent_of(path))?;
        if items.contains_key(path) {
            return Err(BackendError::Exists(path.to_owned()));
        }
        items.insert(path, item);
        Ok(())
    }
}

fn kind_of(c: &Content) -> EntryKind {
    match c {
        Content::Dir => EntryKind::Dir,
        Content::File { .. } => EntryKind::File,
        Content::Symlink { .. } => EntryKind::Symlink,
        Content::Special { kind, .. } => *kind,
    }
}

impl Backend for MemoryBackend {
    /// Listings one by one, stamped with the version read before the first (a server's
    /// answer shows at least that version).
    fn list_dirs(
        &self,
        path: &str,
        opts: &crate::prefetch::ListDirs,
    ) -> BackendResult<Vec<crate::prefetch::ListedDir>> {
        let version = self.version();
        let mut dirs = crate::prefetch::list_dirs_one_by_one(self, path, opts)?;
        for d in &mut dirs {
            d.seq = Some(version);
        }
        Ok(dirs)
    }

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
        for (k, node) in items.paths.range(prefix.clone()..) {
            if !k.starts_with(&prefix) {
                break;
            }
            let name = &k[prefix.len()..];
            if name.contains('/') {
                continue;
            }
            let Some(item) = items.nodes.get(node) else { continue };
            let mut e = RemoteEntry {
                name: name.into(),
                kind: kind_of(&item.content),
                mode: item.mode,
                uid: item.uid,
                gid: item.gid,
                nlink: item.names,
                link: (item.names > 1).then_some(*node),
                mtime_ns: item.mtime_ns,
                ..RemoteEntry::default()
            };
            match &item.content {
                Content::Dir => {
                    let subdirs = items
                        .paths
                        .range(format!("{k}/")..)
                        .take_while(|(p, _)| p.starts_with(&format!("{k}/")))
                        .filter(|(p, n)| {
                            !p[k.len() + 1..].contains('/') && items.nodes.get(n).is_some_and(Item::is_dir)
                        })
                        .count();
                    e.nlink = 2 + u32::try_from(subdirs).unwrap_or(0);
                }
                Content::File { id } => {
                    e.size = blobs.get(id).map_or(0, |b| b.len() as u64);
                    e.content_id = Some(id.clone());
                }
                Content::Symlink { target } => {
                    e.size = target.len() as u64;
                    e.symlink_target = Some(target.clone());
                }
                Content::Special { rdev, .. } => e.rdev = *rdev,
            }
            out.push(e);
        }
        drop((items, blobs));
        let gate = self.hold_list.lock().take();
        if let Some((computed, release)) = gate {
            let _ = computed.send(());
            let _ = release.recv();
        }
        Ok(out)
    }

    fn read(&self, _path: &str, content_id: &str, offset: u64, len: u64) -> BackendResult<Vec<u8>> {
        self.check_up()?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let data = self
            .read_source(content_id)
            .ok_or_else(|| BackendError::NotFound(content_id.into()))?;
        let start = (offset as usize).min(data.len());
        let end = (offset.saturating_add(len) as usize).min(data.len());
        Ok(data[start..end].to_vec())
    }

    fn chunks(&self, path: &str, content_id: &str) -> BackendResult<Option<Vec<ChunkRef>>> {
        self.check_up()?;
        self.layouts.fetch_add(1, Ordering::Relaxed);
        match self.items.lock().get(path).map(|i| &i.content) {
            Some(Content::File { id }) if id == content_id => {}
            _ => return Err(BackendError::Stale(format!("{path} changed"))),
        }
        let blobs = self.blobs.lock();
        let data = blobs
            .get(content_id)
            .ok_or_else(|| BackendError::NotFound(content_id.into()))?;
        if (data.len() as u64) < self.chunk_at.load(Ordering::SeqCst) {
            return Ok(None);
        }
        Ok(Some(chunks_of(data)))
    }

    fn put(
        &self,
        path: &str,
        mode: u32,
        _size: u64,
        mtime_ns: Option<i64>,
        mut data: Box<dyn Read + Send>,
    ) -> BackendResult<String> {
        self.check_writable()?;
        self.puts.fetch_add(1, Ordering::Relaxed);
        let mut buf = Vec::new();
        data.read_to_end(&mut buf)
            .map_err(|e| BackendError::Other(e.to_string()))?;
        let mut items = self.items.lock();
        Self::need_dir(&items, parent_of(path))?;
        let id = content_id(&buf);
        if mtime_ns.is_some_and(|t| t < 0) {
            return Err(BackendError::Invalid(format!("mtime {mtime_ns:?} is before the epoch")));
        }
        // The time given, else the time of the upload, as the server stamps a write.
        let now = mtime_ns.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        });
        match items.get_mut(path) {
            Some(i) if i.is_dir() => return Err(BackendError::IsDir(path.into())),
            // A write through any name of a linked file changes every name.
            Some(
                i @ Item {
                    content: Content::File { .. },
                    ..
                },
            ) => {
                i.content = Content::File { id: id.clone() };
                i.mode = mode;
                i.mtime_ns = now;
            }
            _ => {
                items.remove(path);
                let mut item = Item::new(Content::File { id: id.clone() }, mode);
                item.mtime_ns = now;
                items.insert(path, item);
            }
        }
        self.blobs.lock().insert(id.clone(), buf);
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(self.misack.lock().take().unwrap_or(id))
    }

    fn apply(&self, op: &RemoteOp) -> BackendResult<()> {
        self.check_writable()?;
        let mut items = self.items.lock();
        match op {
            RemoteOp::Mkdir { path } => Self::create(&mut items, path, Item::new(Content::Dir, 0o755))?,
            RemoteOp::Symlink { path, target } => {
                let link = Content::Symlink { target: target.clone() };
                Self::create(&mut items, path, Item::new(link, 0o777))?;
            }
            RemoteOp::Mknod { path, kind, mode, rdev } => {
                if !kind.is_special() {
                    return Err(BackendError::Invalid(format!("mknod of a {}", kind.as_str())));
                }
                let node = Content::Special {
                    kind: *kind,
                    rdev: *rdev,
                };
                Self::create(&mut items, path, Item::new(node, mode & 0o7777))?;
            }
            RemoteOp::Link { from, to } => {
                let node = *items
                    .paths
                    .get(from)
                    .ok_or_else(|| BackendError::NotFound(from.clone()))?;
                if items.nodes.get(&node).is_some_and(Item::is_dir) {
                    return Err(BackendError::Denied(format!("{from} is a directory")));
                }
                Self::need_dir(&items, parent_of(to))?;
                if items.contains_key(to) {
                    return Err(BackendError::Exists(to.clone()));
                }
                items.paths.insert(to.clone(), node);
                if let Some(i) = items.nodes.get_mut(&node) {
                    i.names += 1;
                }
            }
            RemoteOp::Unlink { path } => match items.get(path) {
                Some(i) if i.is_dir() => return Err(BackendError::IsDir(path.clone())),
                Some(_) => items.remove(path),
                None => return Err(BackendError::NotFound(path.clone())),
            },
            RemoteOp::Rmdir { path } => match items.get(path) {
                Some(i) if i.is_dir() && Self::has_children(&items, path) => {
                    return Err(BackendError::NotEmpty(path.clone()));
                }
                Some(i) if i.is_dir() => items.remove(path),
                Some(_) => return Err(BackendError::NotDir(path.clone())),
                None => return Err(BackendError::NotFound(path.clone())),
            },
            RemoteOp::Chmod { path, mode } => match items.get_mut(path) {
                Some(Item {
                    content: Content::Symlink { .. },
                    ..
                }) => {}
                Some(i) => i.mode = *mode,
                None => return Err(BackendError::NotFound(path.clone())),
            },
            RemoteOp::SetTimes { path, mtime_ns } => {
                if *mtime_ns < 0 {
                    return Err(BackendError::Invalid(format!("mtime {mtime_ns} is before the epoch")));
                }
                items
                    .get_mut(path)
                    .ok_or_else(|| BackendError::NotFound(path.clone()))?
                    .mtime_ns = *mtime_ns;
            }
            RemoteOp::Chown { path, uid, gid } => {
                let i = items
                    .get_mut(path)
                    .ok_or_else(|| BackendError::NotFound(path.clone()))?;
                if uid.is_some() {
                    i.uid = *uid;
                }
                if gid.is_some() {
                    i.gid = *gid;
                }
            }
            RemoteOp::Rename { from, to } => {
                let node = *items
                    .paths
                    .get(from)
                    .ok_or_else(|| BackendError::NotFound(from.clone()))?;
                Self::need_dir(&items, parent_of(to))?;
                let is_dir = items.nodes.get(&node).is_some_and(Item::is_dir);
                match items.get(to) {
                    // Two names of one entry: nothing to do (rename(2)).
                    _ if items.paths.get(to) == Some(&node) => return Ok(()),
                    Some(i) if i.is_dir() && !is_dir => return Err(BackendError::IsDir(to.clone())),
                    Some(i) if i.is_dir() && Self::has_children(&items, to) => {
                        return Err(BackendError::NotEmpty(to.clone()));
                    }
                    Some(i) if !i.is_dir() && is_dir => return Err(BackendError::NotDir(to.clone())),
                    _ => {}
                }
                let prefix = format!("{from}/");
                let moved: Vec<(String, u64)> = items
                    .paths
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(&prefix))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                items.remove(to);
                items.paths.remove(from);
                items.paths.insert(to.clone(), node);
                for (k, v) in moved {
                    items.paths.remove(&k);
                    items.paths.insert(format!("{to}/{}", &k[prefix.len()..]), v);
                }
            }
        }
        self.version.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
