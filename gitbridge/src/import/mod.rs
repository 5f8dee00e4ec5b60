//! Sessions imported from git repositories (absolute local paths, `file://` and `http(s)://`
//! URLs).
//!
//! The steps, all under `<data>/tmp/import-<session id>/` (removed at the end, whatever happens):
//! 1. `git clone --bare --no-local` into a quarantine repository (isolated git, deadline, size
//!    cap, progress into the session's events);
//! 2. resolve the base commit (the requested ref, else the source's HEAD) and the refs;
//! 3. stream blobs at or over the large-file threshold into the chunk store under their ids,
//!    and keep their pack entries for serving (`serve::kept`);
//! 4. install the rest into `objects.git` as one indexed pack;
//! 5. create the session with its refs (core's [`PendingImport::finish`]).
//!
//! A failure at any step leaves no session, no refs and no events; objects already installed
//! (pack files, chunks) stay until garbage collection, unreachable from every ref.

mod clone;
mod error;
mod git;
mod packs;
mod progress;
mod refs;
mod source;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aether_core::{CreateOptions, Engine, ImportedHistory, PendingImport, SessionRecord};

pub use error::{ImportError, Result};

/// Where to import from.
#[derive(Debug, Clone)]
pub struct GitSource {
    pub url: String,
    /// A branch, tag, full ref name or commit id; the source's HEAD when absent.
    pub rev: Option<String>,
}

/// Limits and tools of git imports.
#[derive(Debug, Clone)]
pub struct ImportConfig {
    /// The git binary (looked up in `PATH` when not absolute).
    pub git: PathBuf,
    /// Longest a fetch may take before it is stopped.
    pub fetch_timeout: Duration,
    /// Most bytes a fetch may bring (pack data as received, large files included).
    pub max_bytes: u64,
}

impl Default for ImportConfig {
    fn default() -> Self {
        ImportConfig {
            git: PathBuf::from("git"),
            fetch_timeout: Duration::from_secs(3600),
            max_bytes: 64 << 30,
        }
    }
}

/// Import `source` as a new session.
pub async fn import_git(
    engine: &Engine,
    source: &GitSource,
    opts: CreateOptions,
    cfg: &ImportConfig,
) -> Result<SessionRecord> {
    let url = source::parse(&source.url)?;
    if let Some(rev) = &source.rev {
        source::validate_ref(rev)?;
    }
    aether_core::import_git::validate_create_options(&opts)?;
    let pending = engine.begin_import();
    let work = Workspace::create(&engine.config().data_dir, &pending)?;
    let history = fetch_and_store(engine, &pending, &url, source.rev.as_deref(), cfg, &work).await;
    let result = match history {
        Ok(history) => pending.finish(history, opts).await.map_err(ImportError::from),
        Err(e) => {
            if let Err(cleanup) = pending.abort().await {
                tracing::warn!(error = %cleanup, "could not remove the events of a failed import");
            }
            Err(e)
        }
    };
    drop(work);
    result
}

/// The import's scratch directory; removed on drop.
struct Workspace {
    root: PathBuf,
}

impl Workspace {
    fn create(data_dir: &Path, pending: &PendingImport) -> Result<Self> {
        let root = data_dir.join("tmp").join(format!("import-{}", pending.id()));
        std::fs::create_dir_all(root.join("home")).map_err(ImportError::io(format!("creating {}", root.display())))?;
        Ok(Workspace { root })
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn quarantine(&self) -> PathBuf {
        self.root.join("source.git")
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.root) {
            tracing::warn!(path = %self.root.display(), error = %e, "could not remove an import's scratch directory");
        }
    }
}

pub(crate) async fn report(pending: &PendingImport, detail: serde_json::Value) {
    if let Err(e) = pending.progress(detail).await {
        tracing::warn!(session = %pending.id(), error = %e, "could not record import progress");
    }
}

async fn fetch_and_store(
    engine: &Engine,
    pending: &PendingImport,
    url: &source::SourceUrl,
    rev: Option<&str>,
    cfg: &ImportConfig,
    work: &Workspace,
) -> Result<ImportedHistory> {
    let started = std::time::Instant::now();
    tracing::info!(session = %pending.id(), url = %url.display, "git import started");
    let quarantine = work.quarantine();
    let home = work.home();
    clone::clone_bare(cfg, url, &quarantine, &home, pending).await?;
    let fetched = started.elapsed();

    // Everything below runs git locally and reads files: on the blocking pool, with progress
    // sent back over a channel.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    let git_bin = cfg.git.clone();
    let url_owned = url.clone();
    let rev_owned = rev.map(str::to_owned);
    let objects = engine.objects().clone();
    let threshold = engine.config().large_file_threshold;
    let max_file_size = engine.config().limits.max_file_size;
    let pack_dir = objects.odb.git_dir().join("objects").join("pack");
    let scratch = work.root.clone();
    let local = tokio::task::spawn_blocking(move || -> Result<_> {
        let resolved = refs::resolve(&git_bin, &quarantine, &home, &url_owned, rev_owned.as_deref())?;
        let large = packs::large_blobs(&git_bin, &quarantine, &home, threshold)?;
        if !large.is_empty() {
            let _ = tx.send(serde_json::json!({"phase": "chunking large files", "done": 0, "total": large.len()}));
        }
        packs::chunk_blobs(
            &git_bin,
            &quarantine,
            &home,
            &objects,
            &large,
            max_file_size,
            |done, total| {
                let _ = tx.send(serde_json::json!({"phase": "chunking large files", "done": done, "total": total}));
            },
        )?;
        // Their pack entries (git's compression, and deltas against similar blobs) are kept
        // for serving: clones then carry what the source's own pack would.
        match crate::serve::kept::keep_entries(&objects, &quarantine.join("objects"), &large) {
            Ok(kept) if kept != Default::default() => tracing::debug!(?kept, "kept the large blobs' pack entries"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not keep the pack entries of large blobs; they are served whole")
            }
        }
        let _ = tx.send(serde_json::json!({"phase": "installing objects"}));
        let filter = (!large.is_empty()).then_some(threshold);
        let installed = packs::install(&git_bin, &quarantine, &home, &scratch, &pack_dir, filter)?;
        // The engine's object database finds new packs on a lookup miss; check it sees the
        // imported history before any session points at it.
        for oid in std::iter::once(&resolved.base).chain(resolved.refs.iter().map(|(_, o)| o)) {
            if !objects.odb.contains(oid) {
                return Err(ImportError::git(
                    "index-pack",
                    format!("object {oid} is missing from the object database after installing the pack"),
                ));
            }
        }
        Ok((resolved, large.len(), installed))
    });
    tokio::pin!(local);
    let joined = loop {
        tokio::select! {
            Some(detail) = rx.recv() => report(pending, detail).await,
            joined = &mut local => break joined,
        }
    };
    while let Ok(detail) = rx.try_recv() {
        report(pending, detail).await;
    }
    let (resolved, large, installed) =
        joined.map_err(|e| ImportError::git("import", format!("the import worker failed: {e}")))??;
    tracing::info!(
        session = %pending.id(), url = %url.display, base = %resolved.base, refs = resolved.refs.len(),
        large_files = large, repacked = installed.repacked, fetch_ms = fetched.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64, "git import fetched and stored"
    );
    Ok(ImportedHistory {
        base: resolved.base,
        refs: resolved.refs,
        branch: resolved.branch,
        source: serde_json::json!({
            "url": url.display, "ref": rev, "from_ref": resolved.from_ref, "large_files": large,
            "repacked": installed.repacked,
        }),
    })
}
