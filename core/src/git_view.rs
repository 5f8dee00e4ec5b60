//! A session as a git client sees it: its refs with the session namespace stripped, `HEAD`,
//! `refs/aether/live` (a commit of the current working state, made on demand), and raw access to
//! the objects a pack is built from (whole objects from the object database; large blobs are
//! streamed from the chunk store through [`crate::objects::Objects::reader`]).
//! Knows nothing of git's wire protocol: the git bridge builds on it.

use gix::ObjectId;
use gix::objs::Kind;

use crate::blocking::blocking;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ids::SessionId;
use crate::objects::Objects;
use crate::sessions::ref_prefix;

/// The name under which the current working state is advertised.
pub const LIVE_REF: &str = "refs/aether/live";

/// Message of live commits; their author and committer are the engine's identity.
const LIVE_MESSAGE: &str = "AetherFS live state (uncommitted changes)\n";

/// One ref as a git client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    /// Full name as the client sees it (`HEAD`, `refs/heads/main`, `refs/checkpoints/3`, ...).
    pub name: String,
    /// What the ref points at (a tag object for annotated tags).
    pub target: ObjectId,
    /// The commit an annotated tag peels to.
    pub peeled: Option<ObjectId>,
    /// For `HEAD`: the ref it is a symbolic ref to.
    pub symref_target: Option<String>,
}

/// How a stored object is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// In the object database.
    Odb { kind: Kind, size: u64 },
    /// A large blob whose bytes are in the chunk store.
    Chunked { size: u64 },
}

impl Stored {
    pub fn kind(self) -> Kind {
        match self {
            Stored::Odb { kind, .. } => kind,
            Stored::Chunked { .. } => Kind::Blob,
        }
    }

    pub fn size(self) -> u64 {
        match self {
            Stored::Odb { size, .. } | Stored::Chunked { size } => size,
        }
    }
}

impl Objects {
    /// Where and how an object is stored, or `None` if neither store has it.
    pub fn stored(&self, oid: &ObjectId) -> Result<Option<Stored>> {
        if let Some(m) = self.manifest(oid)? {
            return Ok(Some(Stored::Chunked { size: m.size }));
        }
        Ok(self.odb.header(oid)?.map(|(kind, size)| Stored::Odb { kind, size }))
    }

    /// [`Objects::stored`] for many objects through one object database handle (a handle per
    /// lookup was most of the time a clone of a large tree spent planning its pack).
    pub fn stored_lookup(&self) -> StoredLookup<'_> {
        StoredLookup {
            objects: self,
            repo: self.odb.repo(),
        }
    }

    /// The kind and whole content of an object in the object database (not a chunked blob).
    pub fn raw_object(&self, oid: &ObjectId) -> Result<(Kind, Vec<u8>)> {
        let repo = self.odb.repo();
        let obj = crate::odb::find_object(&repo, oid, None, "object")?;
        let kind = obj.kind;
        Ok((kind, obj.detach().data))
    }

    /// The object an annotated tag points at (one level), or `None` if `oid` is not a tag.
    pub fn tag_target(&self, oid: &ObjectId) -> Result<Option<ObjectId>> {
        let repo = self.odb.repo();
        let obj = crate::odb::find_object(&repo, oid, None, "object")?;
        if obj.kind != Kind::Tag {
            return Ok(None);
        }
        let tag = obj.into_tag();
        Ok(Some(tag.target_id().map_err(Error::odb)?.detach()))
    }

    /// Follow annotated tags until something that is not a tag.
    pub fn peel_tags(&self, oid: &ObjectId) -> Result<ObjectId> {
        let mut cur = *oid;
        for _ in 0..64 {
            match self.tag_target(&cur)? {
                Some(next) => cur = next,
                None => return Ok(cur),
            }
        }
        Err(Error::Corrupt(format!("tag chain from {oid} is too long")))
    }
}

/// Answers [`Objects::stored`] with one object database handle; see [`Objects::stored_lookup`].
pub struct StoredLookup<'a> {
    objects: &'a Objects,
    repo: gix::Repository,
}

impl StoredLookup<'_> {
    /// Where and how an object is stored, or `None` if neither store has it.
    pub fn stored(&self, oid: &ObjectId) -> Result<Option<Stored>> {
        if let Some(m) = self.objects.manifest(oid)? {
            return Ok(Some(Stored::Chunked { size: m.size }));
        }
        let header = self.repo.try_find_header(*oid).map_err(Error::odb)?;
        Ok(header.map(|h| Stored::Odb {
            kind: h.kind(),
            size: h.size(),
        }))
    }
}

/// Every ref of a session in its namespace, stripped to what the client sees (`refs/...`),
/// unpeeled, sorted by name.
fn session_refs(objects: &Objects, id: &SessionId) -> Result<Vec<GitRef>> {
    let prefix = ref_prefix(id);
    let repo = objects.odb.repo();
    let platform = repo.references().map_err(Error::odb)?;
    let mut out = Vec::new();
    for r in platform.prefixed(prefix.as_str()).map_err(Error::odb)? {
        let mut r = r.map_err(Error::odb)?;
        let full = r.name().as_bstr().to_string();
        let Some(rest) = full.strip_prefix(&prefix) else {
            continue;
        };
        let target = match r.target().try_id() {
            Some(id) => id.to_owned(),
            None => r.peel_to_id().map_err(Error::odb)?.detach(),
        };
        let peeled = objects.peel_tags(&target)?;
        out.push(GitRef {
            name: format!("refs/{rest}"),
            target,
            peeled: (peeled != target).then_some(peeled),
            symref_target: None,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

impl Engine {
    /// The refs a git client fetching session `id` sees: `HEAD` first, then every ref of the
    /// session's namespace (`refs/heads/*`, `refs/tags/*`, `refs/checkpoints/*`) and
    /// `refs/aether/live`. `HEAD` is a symref to the session's branch when that branch exists;
    /// otherwise it is the session's head commit (or the live commit when there is no head).
    /// An empty session with nothing committed has no refs at all.
    pub async fn git_refs(&self, id: &SessionId) -> Result<Vec<GitRef>> {
        let record = self.get_session(id).await?;
        let live = self.live_commit(id).await?;
        let objects = self.objects().clone();
        let id = id.clone();
        blocking(move || {
            let mut refs = session_refs(&objects, &id)?;
            let branch = format!("refs/heads/{}", record.branch);
            let head = match refs.iter().find(|r| r.name == branch) {
                Some(b) => Some(GitRef {
                    name: "HEAD".into(),
                    target: b.target,
                    peeled: None,
                    symref_target: Some(branch.clone()),
                }),
                None => record.head.or(live).map(|target| GitRef {
                    name: "HEAD".into(),
                    target,
                    peeled: None,
                    symref_target: None,
                }),
            };
            if let Some(live) = live {
                refs.retain(|r| r.name != LIVE_REF);
                refs.push(GitRef {
                    name: LIVE_REF.into(),
                    target: live,
                    peeled: None,
                    symref_target: None,
                });
                refs.sort_by(|a, b| a.name.cmp(&b.name));
            }
            Ok(head.into_iter().chain(refs).collect())
        })
        .await
    }

    /// A commit of the session's current working state. With nothing changed since the head it
    /// is the head itself; otherwise a commit of the current tree whose parent is the head. Its
    /// timestamp comes from the head (or the session's creation), so the same tree on the same
    /// head always gives the same commit id. `None` for a session with no head and no files.
    pub async fn live_commit(&self, id: &SessionId) -> Result<Option<ObjectId>> {
        let record = self.get_session(id).await?;
        let tree = self.current_tree(id).await?;
        let objects = self.objects().clone();
        let engine = self.clone();
        blocking(move || {
            let (parents, time) = match record.head {
                Some(head) => {
                    let info = objects.odb.read_commit(&head)?;
                    // A foreign head (imported history) is unchanged when the session still
                    // holds its tree in the session's spelling: serve the head itself.
                    if info.tree == tree || engine.session_tree(&head)? == tree {
                        return Ok(Some(head));
                    }
                    (vec![head], info.committer.time)
                }
                None if tree.is_empty_tree() => return Ok(None),
                None => (Vec::new(), record.created_at / 1000),
            };
            Ok(Some(objects.odb.write_commit(
                tree,
                &parents,
                LIVE_MESSAGE,
                None,
                time,
            )?))
        })
        .await
    }
}

/// A packed object's stored bytes, reusable as they are in a pack sent to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackedEntry {
    /// A whole object: kind, size and its zlib stream.
    Whole { kind: Kind, size: u64, compressed: Vec<u8> },
    /// A delta against `base`: the size of the delta data and its zlib stream.
    Delta {
        base: ObjectId,
        size: u64,
        compressed: Vec<u8>,
    },
}
