//! Sessions adopted from git history: the engine side of importing a repository.
//!
//! The transport (fetching, indexing and installing packs) lives outside core; it brings the
//! objects into the object database and the chunk store, then hands core a commit and refs.
//! This module owns what needs engine internals: a session id reserved while the import runs
//! (its progress events are readable under that id), large blobs adopted into the chunk store
//! under their known git id, and the session created from a commit with its refs, its base tree
//! converted to the session's spelling of names (`foreign_trees`). A failed import leaves no
//! session row, no refs and no events; objects it brought stay until garbage collection (they
//! are unreachable from every ref).

use std::collections::HashSet;
use std::io::Read;

use gix::ObjectId;

use crate::blocking::blocking;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::ids::SessionId;
use crate::meta::{Mutation, NewEvent, SessionRecord};
use crate::objects::{Ingested, Objects};
use crate::sessions::{CreateOptions, now_ns, ref_prefix};

/// What an import found, ready to become a session. Every object named here must already be
/// in the object database (or, for large blobs, the chunk store).
#[derive(Debug, Clone)]
pub struct ImportedHistory {
    /// The commit the session starts from.
    pub base: ObjectId,
    /// Refs to create under the session's namespace, named relative to it (`heads/main`,
    /// `tags/v1.0`), pointing at what they pointed at in the source (annotated tags at the tag).
    pub refs: Vec<(String, ObjectId)>,
    /// The source branch `base` came from, when it came from one: the session's branch by default.
    pub branch: Option<String>,
    /// Describes the source in the session's `created` event.
    pub source: serde_json::Value,
}

/// An import in progress: a reserved session id under which progress events are recorded.
/// Finish it with [`PendingImport::finish`] or drop it (or [`PendingImport::abort`]) to leave
/// nothing behind.
pub struct PendingImport {
    engine: Engine,
    id: SessionId,
    open: bool,
}

impl Engine {
    /// Reserve a session id for an import. Nothing is visible in session listings until
    /// [`PendingImport::finish`]; the id's events can be read meanwhile.
    pub fn begin_import(&self) -> PendingImport {
        let id = SessionId::generate();
        self.inner.imports.0.lock().insert(id.clone());
        if let Some(tell) = &self.import_id {
            let _ = tell.set(id.clone());
        }
        PendingImport {
            engine: self.clone(),
            id,
            open: true,
        }
    }
}

/// Check labels, tags and branch of a session to be created, before expensive work.
pub fn validate_create_options(opts: &CreateOptions) -> Result<()> {
    crate::sessions::validate_labels(&opts.labels, &opts.tags)?;
    if let Some(b) = &opts.branch {
        crate::sessions::validate_branch(b)?;
    }
    Ok(())
}

impl PendingImport {
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// Record an `import_progress` event for the session being created.
    pub async fn progress(&self, detail: serde_json::Value) -> Result<()> {
        let mut m = Mutation {
            events: vec![NewEvent::new(EventKind::ImportProgress, None).with(detail)],
            ..Default::default()
        };
        self.engine.stamp(&mut m.events);
        self.engine.inner.meta.sessions.apply(&self.id, m).await?;
        self.engine.inner.changes.notify(&self.id);
        Ok(())
    }

    /// Give up: drop the progress events and release the id.
    pub async fn abort(mut self) -> Result<()> {
        self.open = false;
        self.engine.inner.imports.0.lock().remove(&self.id);
        self.engine.inner.meta.events.delete_events(&self.id).await
    }

    /// Create the session at `history.base` with its refs, in one step as far as any reader can
    /// tell: refs are written under the reserved id (invisible without a session row), then the
    /// row is inserted; if that fails the refs are deleted again.
    pub async fn finish(mut self, history: ImportedHistory, opts: CreateOptions) -> Result<SessionRecord> {
        let engine = self.engine.clone();
        let result = self.create(&engine, history, opts).await;
        if result.is_err() {
            let prefix = ref_prefix(&self.id);
            let objects = engine.inner.objects.clone();
            // Best effort: the error that matters is the one being returned.
            let _ = blocking(move || objects.odb.delete_refs(&prefix)).await;
            let _ = engine.inner.meta.events.delete_events(&self.id).await;
        }
        self.open = false;
        engine.inner.imports.0.lock().remove(&self.id);
        result
    }

    async fn create(&self, engine: &Engine, history: ImportedHistory, opts: CreateOptions) -> Result<SessionRecord> {
        let branch = match opts.branch.clone().or_else(|| history.branch.clone()) {
            Some(b) => b,
            None => free_branch(&history.refs, history.base),
        };
        let opts = CreateOptions {
            branch: Some(branch.clone()),
            ..opts
        };
        let base = history.base;
        let mut record = engine.new_record(engine.inner.objects.odb.empty_tree(), Some(base), None, now_ns(), &opts)?;
        record.id = self.id.clone();
        let objects = engine.inner.objects.clone();
        let prefix = ref_prefix(&self.id);
        let refs = history.refs.clone();
        let spelling = engine.clone();
        let tree = blocking(move || {
            match objects.odb.header(&base)? {
                Some((gix::objs::Kind::Commit, _)) => {}
                Some((kind, _)) => {
                    return Err(Error::InvalidArgument(format!("{base} is a {kind}, not a commit")));
                }
                None => return Err(Error::not_found(format!("commit {base} in the object database"))),
            }
            let mut seen = HashSet::new();
            for (name, oid) in &refs {
                let valid = (name.starts_with("heads/") || name.starts_with("tags/"))
                    && gix::refs::FullName::try_from(format!("{prefix}{name}").as_str()).is_ok();
                if !valid || !seen.insert(name.as_str()) {
                    return Err(Error::InvalidArgument(format!(
                        "'{}' cannot be a ref of a session",
                        name.escape_debug()
                    )));
                }
                if !objects.odb.contains(oid) {
                    return Err(Error::not_found(format!("object {oid} of ref {name}")));
                }
                if *name == format!("heads/{branch}") && *oid != base {
                    return Err(Error::Conflict(format!(
                        "the source's branch '{branch}' is at {oid}, not at the imported commit {base}; \
                         name another branch for the session"
                    )));
                }
            }
            // The session reads its base in its own spelling of names: a foreign file named
            // `.git~` must not read as a nested repository (see `foreign_trees`). The refs keep
            // the commits as they came.
            let tree = spelling.session_tree(&base)?;
            for (name, oid) in &refs {
                objects.odb.set_ref(&format!("{prefix}{name}"), *oid, "import")?;
            }
            Ok(tree)
        })
        .await?;
        record.base_tree = tree;
        let mut detail = history.source;
        if let Some(map) = detail.as_object_mut() {
            map.insert("source".into(), "git".into());
            map.insert("commit".into(), base.to_hex().to_string().into());
            map.insert("refs".into(), history.refs.len().into());
        }
        let event = NewEvent::new(EventKind::Created, None).with(detail);
        engine.insert(record, Vec::new(), event).await
    }
}

/// The branch of a session imported at a tag or commit: `main`, unless the source has a `main`
/// elsewhere (commits would land on its tip); then `import`, `import-2`, ...
fn free_branch(refs: &[(String, ObjectId)], base: ObjectId) -> String {
    let free = |name: &str| {
        refs.iter()
            .all(|(n, oid)| n.strip_prefix("heads/") != Some(name) || *oid == base)
    };
    std::iter::once("main".to_owned())
        .chain(std::iter::once("import".to_owned()))
        .chain((2..).map(|n| format!("import-{n}")))
        .find(|b| free(b))
        .unwrap_or_else(|| "main".into())
}

impl Drop for PendingImport {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        self.engine.inner.imports.0.lock().remove(&self.id);
        // Dropped without finish or abort (the import's future was cancelled): remove the
        // progress events in the background when a runtime is there to do it.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let meta = self.engine.inner.meta.clone();
            let id = self.id.clone();
            rt.spawn(async move {
                let _ = meta.events.delete_events(&id).await;
            });
        }
    }
}

impl Objects {
    /// Store a large blob whose git id is already known (it came from a git pack) in the chunk
    /// store. The bytes are hashed while they are chunked; content that does not hash to `oid`
    /// is refused. A blob already chunked is not read again.
    pub fn adopt_large_blob(
        &self,
        oid: &ObjectId,
        reader: &mut dyn Read,
        size: u64,
        max_size: u64,
    ) -> Result<Ingested> {
        if self.manifest(oid)?.is_some() {
            return Ok(Ingested {
                oid: *oid,
                size,
                chunked: true,
            });
        }
        let got = self.ingest(reader, Some(size), max_size)?;
        if got.oid != *oid {
            return Err(Error::Corrupt(format!(
                "blob {oid} arrived with content whose id is {}",
                got.oid
            )));
        }
        Ok(got)
    }
}
