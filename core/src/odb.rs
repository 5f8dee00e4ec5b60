//! The shared git object database: one bare repository, opened with gix isolated from the host's
//! git configuration. It holds every tree, commit and small blob of every session and all refs.
//! It knows nothing of sessions or overlays; callers give it paths, trees and ref names.

use std::path::Path;

use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;
use gix::refs::Target;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};

use crate::config::Identity;
use crate::error::{Error, Result};
pub use crate::object_store::{CommitInfo, ObjectStore, Signature, Tree, TreeEdit, TreeEntry};
use crate::store_error::{StoreError, StoreKind};

fn not_found(what: String) -> Error {
    Error::Store(StoreError::not_found(StoreKind::Objects, what))
}

/// Object `oid` of kind `want` (named `what` in errors), with the cause of a failure kept: an
/// object that is absent is not found, one that is present but cannot be read (damaged, an I/O
/// error) is corrupt, a 500 and never a false 404. An object of another kind is not found as
/// a `what` (a blob id where a tree was asked for).
pub(crate) fn find_object<'r>(
    repo: &'r gix::Repository,
    oid: &ObjectId,
    want: Option<gix::objs::Kind>,
    what: &str,
) -> Result<gix::Object<'r>> {
    match repo.find_object(*oid) {
        Ok(obj) => match want {
            Some(kind) if obj.kind != kind => Err(not_found(format!("{what} {oid} (it is a {})", obj.kind))),
            _ => Ok(obj),
        },
        Err(e) if repo.has_object(oid) => Err(Error::Store(StoreError::corrupt(
            StoreKind::Objects,
            format!("{what} {oid} cannot be read: {e}"),
        ))),
        Err(_) => Err(not_found(format!("{what} {oid}"))),
    }
}
use crate::{names, tree_names};

pub struct Odb {
    repo: gix::ThreadSafeRepository,
    committer: Identity,
    /// Where loose objects go, and their zlib level (see [`crate::loose`]).
    objects_dir: std::path::PathBuf,
    loose_level: u32,
    /// Modification time of the pack directory at the last scan for a missing object.
    packs_seen: parking_lot::Mutex<Option<std::time::SystemTime>>,
    /// Object-database handles kept for lookups that come in bulk (a listing asks for every
    /// file's size, a walk for every tree, an export for every file's bytes): taken and given
    /// back, never made per lookup. A handle made and dropped per object (with its 4 MiB object
    /// cache) fragmented the heap: an export of a million files grew by hundreds of MiB.
    /// Each handle sees the packs as they were when it was made (gix keeps a snapshot of the
    /// indexes per handle), so the pool is tagged with a generation that removing packs bumps:
    /// a handle of an older generation is dropped, never pooled again.
    handles: parking_lot::Mutex<(u64, Vec<gix::Repository>)>,
    /// The packs' indexes, to find the pack holding an object a write found stored.
    fresh_packs: parking_lot::Mutex<FreshPacks>,
}

/// Which pack holds an object (see [`FreshPacks::freshen`]).
#[derive(Default)]
struct FreshPacks {
    /// Modification time of the pack directory when `packs` was listed.
    seen: Option<std::time::SystemTime>,
    /// Each pack's path and index.
    packs: Vec<(std::path::PathBuf, gix::odb::pack::index::File)>,
}

impl FreshPacks {
    /// Make the pack holding `oid` as young as if written now (unless it was made so within
    /// the last second): a collection never rewrites a pack younger than its grace period, so
    /// an object a write found there stays however long the writer takes to reference it (git
    /// freshens packs the same way).
    fn freshen(&mut self, pack_dir: &Path, oid: &ObjectId) {
        let mtime = std::fs::metadata(pack_dir).and_then(|m| m.modified()).ok();
        if mtime.is_none() || self.seen != mtime {
            self.seen = mtime;
            self.packs = std::fs::read_dir(pack_dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "idx"))
                .filter_map(|idx| {
                    let index = gix::odb::pack::index::File::at(&idx, gix::hash::Kind::Sha1).ok()?;
                    Some((idx.with_extension("pack"), index))
                })
                .collect();
        }
        let Some((pack, _)) = self.packs.iter().find(|p| p.1.lookup(oid).is_some()) else {
            return;
        };
        let Ok(f) = std::fs::File::open(pack) else { return };
        let now = std::time::SystemTime::now();
        let recent = f.metadata().and_then(|m| m.modified()).is_ok_and(|m| {
            now.duration_since(m)
                .is_ok_and(|age| age < std::time::Duration::from_secs(1))
        });
        if !recent {
            let _ = f.set_modified(now);
        }
    }
}

/// Most idle handles kept (about one per thread that reads at once).
const POOLED_HANDLES: usize = 16;

impl Odb {
    pub fn open_or_init(path: &Path, committer: Identity) -> Result<Self> {
        if !path.join("HEAD").exists() {
            gix::init_bare(path).map_err(Error::odb)?;
        }
        let overrides = [
            "core.logAllRefUpdates=always".to_string(),
            format!("committer.name={}", committer.name),
            format!("committer.email={}", committer.email),
            format!("user.name={}", committer.name),
            format!("user.email={}", committer.email),
        ];
        let opts = gix::open::Options::isolated().config_overrides(overrides);
        let repo = gix::open_opts(path, opts).map_err(Error::odb)?;
        Ok(Odb {
            objects_dir: repo.git_dir().join("objects"),
            repo: repo.into_sync(),
            committer,
            loose_level: 0,
            packs_seen: parking_lot::Mutex::new(None),
            handles: parking_lot::Mutex::new((0, Vec::new())),
            fresh_packs: Default::default(),
        })
    }

    /// Write loose objects at zlib `level` (git's `core.looseCompression`: 0 stores, 1 to 9
    /// compress).
    pub fn with_loose_compression(mut self, level: u32) -> Self {
        self.loose_level = level;
        self
    }

    fn decode_tree(&self, repo: &gix::Repository, oid: &ObjectId) -> Result<Tree> {
        let tree = find_object(repo, oid, Some(gix::objs::Kind::Tree), "tree")?.into_tree();
        let decoded = tree.decode().map_err(Error::odb)?;
        let (mut entries, hidden): (Vec<TreeEntry>, Vec<TreeEntry>) = decoded
            .entries
            .iter()
            .map(|e| TreeEntry {
                name: tree_names::from_tree(&String::from_utf8_lossy(e.filename)).to_owned(),
                kind: e.mode.kind(),
                oid: e.oid.to_owned(),
            })
            .partition(|e| names::name_problem(&e.name).is_none());
        for e in &hidden {
            // Skipped rather than refused: the rest of the repository stays usable.
            tracing::warn!(tree = %oid, name = ?e.name, "a git tree holds an entry no session may name; it is left out");
        }
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        Ok(Tree { entries, hidden })
    }

    /// Run `f` with a pooled handle (see `handles`). Handles have no object cache: they serve
    /// headers, trees (which the engine caches itself) and blobs read once.
    fn with_handle<T>(&self, f: impl FnOnce(&gix::Repository) -> T) -> T {
        let (generation, pooled) = {
            let mut pool = self.handles.lock();
            (pool.0, pool.1.pop())
        };
        let repo = pooled.unwrap_or_else(|| self.repo.to_thread_local());
        let out = f(&repo);
        let mut pool = self.handles.lock();
        if pool.0 == generation && pool.1.len() < POOLED_HANDLES {
            pool.1.push(repo);
        }
        out
    }

    /// A handle that never rescans the pack directory on a miss (see [`Odb::stored`]).
    fn probe(&self) -> gix::Repository {
        let mut repo = self.repo();
        repo.objects.refresh_never();
        repo
    }

    /// Store an object of `kind` with body `data` loose, unless it is stored already; then it is
    /// made as young as if written now, for a collection's grace period (git does the same):
    /// its loose file, or else the pack that holds it.
    /// `probe` is a handle from [`Odb::probe`], made once for a batch of stores.
    fn store(&self, probe: &gix::Repository, kind: gix::objs::Kind, data: &[u8]) -> Result<ObjectId> {
        let oid = gix::objs::compute_hash(gix::hash::Kind::Sha1, kind, data).map_err(Error::odb)?;
        if !self.stored(probe, &oid) {
            crate::loose::write(&self.objects_dir, &oid, kind, data, self.loose_level)?;
        } else if !crate::loose::freshen(&self.objects_dir, &oid) {
            self.fresh_packs.lock().freshen(&self.objects_dir.join("pack"), &oid);
        }
        Ok(oid)
    }

    /// Whether `oid` is stored. gix lists the pack directory again at every miss, which is every
    /// new object a batch writes (11% of the server's CPU during an untar into a mount). So the
    /// packs known from the last scan are asked first, and the directory is listed again only
    /// when its modification time changed since (a pack was added or removed). A pack added
    /// within one timestamp tick of the last look costs at most a duplicate loose copy, which is
    /// why only this write path takes the shortcut: [`Odb::contains`] keeps gix's rescan, since
    /// its callers (imports checking their refs) must not see a false miss.
    fn stored(&self, probe: &gix::Repository, oid: &ObjectId) -> bool {
        if probe.has_object(oid) {
            return true;
        }
        let now = std::fs::metadata(self.objects_dir.join("pack"))
            .and_then(|m| m.modified())
            .ok();
        {
            let mut seen = self.packs_seen.lock();
            if now.is_some() && *seen == now {
                return false;
            }
            *seen = now;
        }
        self.contains(oid)
    }
}

impl ObjectStore for Odb {
    fn repo(&self) -> gix::Repository {
        let mut repo = self.repo.to_thread_local();
        repo.object_cache_size_if_unset(4 << 20);
        repo
    }

    fn git_dir(&self) -> &Path {
        self.repo.git_dir()
    }

    fn write_blob(&self, data: &[u8]) -> Result<ObjectId> {
        self.store(&self.probe(), gix::objs::Kind::Blob, data)
    }

    fn contains(&self, oid: &ObjectId) -> bool {
        self.with_handle(|repo| repo.has_object(oid))
    }

    /// Kind and size of an object, without reading its body, through a pooled handle.
    fn header(&self, oid: &ObjectId) -> Result<Option<(gix::objs::Kind, u64)>> {
        self.with_handle(|repo| {
            let h = repo.try_find_header(*oid).map_err(Error::odb)?;
            Ok(h.map(|h| (h.kind(), h.size())))
        })
    }

    fn read_blob(&self, oid: &ObjectId) -> Result<Vec<u8>> {
        // Loose objects (every small file written to a session) without gix's per-object
        // stat and mmap (see `loose::read`); packed ones through gix.
        if let Some((kind, data)) = crate::loose::read(&self.objects_dir, oid)? {
            if kind != gix::objs::Kind::Blob {
                return Err(not_found(format!("blob {oid}")));
            }
            return Ok(data);
        }
        self.with_handle(|repo| {
            let blob = find_object(repo, oid, Some(gix::objs::Kind::Blob), "blob")?;
            Ok(blob.detach().data)
        })
    }

    fn read_tree(&self, oid: &ObjectId) -> Result<Tree> {
        self.with_handle(|repo| self.decode_tree(repo, oid))
    }

    /// Apply `edits` in order to `base` and write the resulting trees. Directories left empty
    /// disappear, as with git. An edit whose path has a component no session may name (empty,
    /// `.`, `..`, NUL) is refused before anything is written.
    fn edit_tree(&self, base: ObjectId, edits: &[TreeEdit]) -> Result<ObjectId> {
        if edits.is_empty() {
            return Ok(base);
        }
        for edit in edits {
            let (TreeEdit::Upsert { path, .. } | TreeEdit::Remove { path }) = edit;
            if let Some(reason) = path.split('/').find_map(names::name_problem) {
                return Err(Error::InvalidPath {
                    path: path.escape_debug().to_string(),
                    reason,
                });
            }
        }
        let repo = self.repo();
        // The plumbing editor: gix's own would insist every entry already exists in this
        // database, which large files (bytes in the chunk store) never do.
        let mut editor = repo.edit_tree(base).map_err(Error::odb)?.detach();
        let split = |p: &str| {
            p.split('/')
                .map(|c| tree_names::to_tree(c).as_bytes().to_vec())
                .collect::<Vec<_>>()
        };
        for edit in edits {
            match edit {
                TreeEdit::Upsert { path, kind, oid } => {
                    if *kind == EntryKind::Tree && oid.is_empty_tree() {
                        editor
                            .remove(split(path).iter().map(|c| c.as_slice().as_bstr()))
                            .map_err(Error::odb)?;
                    } else {
                        editor
                            .upsert(split(path).iter().map(|c| c.as_slice().as_bstr()), *kind, *oid)
                            .map_err(Error::odb)?;
                    }
                }
                TreeEdit::Remove { path } => {
                    editor
                        .remove(split(path).iter().map(|c| c.as_slice().as_bstr()))
                        .map_err(Error::odb)?;
                }
            }
        }
        let probe = self.probe();
        editor
            .write(|tree| {
                // Stored as blobs are: a tree found stored is freshened, so an import that
                // references its trees only when it ends keeps them through a collection.
                let mut data = Vec::new();
                gix::objs::WriteTo::write_to(tree, &mut data).map_err(Error::odb)?;
                self.store(&probe, gix::objs::Kind::Tree, &data)
            })
            .map_err(Error::odb)
    }

    fn empty_tree(&self) -> ObjectId {
        ObjectId::empty_tree(gix::hash::Kind::Sha1)
    }

    /// Write a commit. `author` defaults to the engine's identity; the committer always is it.
    /// The commit carries [`tree_names::COMMIT_HEADER`]: its tree spells names the session's
    /// way (see [`crate::foreign_trees`]).
    fn write_commit(
        &self,
        tree: ObjectId,
        parents: &[ObjectId],
        message: &str,
        author: Option<&Identity>,
        time_secs: i64,
    ) -> Result<ObjectId> {
        let sig = |who: &Identity| gix::actor::Signature {
            name: who.name.as_str().into(),
            email: who.email.as_str().into(),
            time: gix::date::Time {
                seconds: time_secs,
                offset: 0,
            },
        };
        let committer = sig(&self.committer);
        let author = sig(author.unwrap_or(&self.committer));
        let commit = gix::objs::Commit {
            message: message.into(),
            tree,
            author,
            committer,
            encoding: None,
            parents: parents.iter().copied().collect(),
            extra_headers: vec![(tree_names::COMMIT_HEADER.into(), tree_names::COMMIT_HEADER_VALUE.into())],
        };
        Ok(self.repo().write_object(&commit).map_err(Error::odb)?.detach())
    }

    fn read_commit(&self, oid: &ObjectId) -> Result<CommitInfo> {
        let repo = self.repo();
        let commit = find_object(&repo, oid, Some(gix::objs::Kind::Commit), "commit")?.into_commit();
        let c = commit.decode().map_err(Error::odb)?;
        let sig = |s: gix::actor::SignatureRef<'_>| Signature {
            name: s.name.to_string(),
            email: s.email.to_string(),
            time: s.time().map(|t| t.seconds).unwrap_or(0),
        };
        Ok(CommitInfo {
            id: *oid,
            tree: c.tree(),
            parents: c.parents().collect(),
            author: sig(c.author().map_err(Error::odb)?),
            committer: sig(c.committer().map_err(Error::odb)?),
            message: c.message.to_string(),
        })
    }

    /// A commit's tree, and whether the engine wrote the commit (its tree is in the session's
    /// spelling) rather than git or another tool.
    fn commit_tree_and_spelling(&self, oid: &ObjectId) -> Result<(ObjectId, bool)> {
        let repo = self.repo();
        let commit = find_object(&repo, oid, Some(gix::objs::Kind::Commit), "commit")?.into_commit();
        let c = commit.decode().map_err(Error::odb)?;
        let own = c
            .extra_headers()
            .find(tree_names::COMMIT_HEADER)
            .is_some_and(|v| v == tree_names::COMMIT_HEADER_VALUE.as_bytes());
        Ok((c.tree(), own))
    }

    /// Point `name` at `target` (creating or moving it), with a reflog entry.
    fn set_ref(&self, name: &str, target: ObjectId, log_message: &str) -> Result<()> {
        let full = name
            .try_into()
            .map_err(|_| Error::InvalidArgument(format!("invalid ref name '{name}'")))?;
        let edit = RefEdit {
            change: Change::Update {
                log: LogChange {
                    mode: RefLog::AndReference,
                    force_create_reflog: true,
                    message: log_message.into(),
                },
                expected: PreviousValue::Any,
                new: Target::Object(target),
            },
            name: full,
            deref: false,
        };
        self.repo().edit_reference(edit).map_err(Error::odb)?;
        Ok(())
    }

    fn find_ref(&self, name: &str) -> Result<Option<ObjectId>> {
        let repo = self.repo();
        let Some(mut r) = repo.try_find_reference(name).map_err(Error::odb)? else {
            return Ok(None);
        };
        Ok(Some(r.peel_to_id().map_err(Error::odb)?.detach()))
    }

    /// Every ref under `prefix` (which ends in `/`), with its full name and target.
    fn list_refs(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        let repo = self.repo();
        let platform = repo.references().map_err(Error::odb)?;
        let mut out = Vec::new();
        for r in platform.prefixed(prefix).map_err(Error::odb)? {
            let mut r = r.map_err(Error::odb)?;
            let name = r.name().as_bstr().to_string();
            let id = r.peel_to_id().map_err(Error::odb)?.detach();
            out.push((name, id));
        }
        Ok(out)
    }

    fn delete_ref(&self, name: &str) -> Result<()> {
        if self.find_ref(name)?.is_none() {
            return Ok(());
        }
        self.delete_named(vec![name.to_owned()])
    }

    /// A lookup that misses with refreshing allowed makes gix's shared store compare its
    /// indexes with the pack directory, dropping those of removed packs (there is no public
    /// refresh); the id asked for is one no object has.
    fn packs_removed(&self) {
        let absent = gix::objs::compute_hash(
            gix::hash::Kind::Sha1,
            gix::objs::Kind::Blob,
            format!("aether: no such object {:?}", std::time::SystemTime::now()).as_bytes(),
        );
        if let Ok(absent) = absent {
            let _ = self.repo.to_thread_local().has_object(absent);
        }
        *self.packs_seen.lock() = None;
        let mut pool = self.handles.lock();
        pool.0 += 1;
        pool.1.clear();
    }

    fn delete_refs(&self, prefix: &str) -> Result<()> {
        let names: Vec<String> = self.list_refs(prefix)?.into_iter().map(|(n, _)| n).collect();
        self.delete_named(names)
    }
}

impl Odb {
    fn delete_named(&self, names: Vec<String>) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let repo = self.repo();
        let edits = names
            .into_iter()
            .filter_map(|n| n.as_str().try_into().ok())
            .map(|name| RefEdit {
                change: Change::Delete {
                    expected: PreviousValue::Any,
                    log: RefLog::AndReference,
                },
                name,
                deref: false,
            });
        repo.edit_references(edits).map_err(Error::odb)?;
        Ok(())
    }
}
