//! What every benchmark gets: the options, a tokio runtime for the engine, a scratch directory
//! removed at the end, the corpus, and the state that is expensive to build and so built once
//! and shared (the corpus as a session and as a git checkout).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_core::{CreateOptions, Engine, EngineConfig, SessionId, SessionSource};
use anyhow::{Context, Result};
use tempfile::TempDir;
use tokio::runtime::Runtime;

use crate::cli::Options;
use crate::corpus::{Corpus, CorpusKind};
use crate::fixture::command::{git, run};
use crate::fixture::tree::TreeShape;
use crate::trash::Trash;

pub struct Ctx {
    pub rt: Runtime,
    pub opts: Options,
    scratch: TempDir,
    corpus: Option<Arc<Corpus>>,
    shared: Option<Arc<SharedCorpus>>,
    /// The git benchmarks' servers (`git_serving.rs`), built by the first that needs them.
    pub git: Option<Arc<crate::git_serving::GitServing>>,
    /// Trees removed in the background while the run goes on ([`Ctx::discard`]).
    trash: Trash,
    /// The shared corpus's engine directory and checkout, removed by [`Ctx::release_shared`].
    shared_dirs: Vec<PathBuf>,
}

/// The corpus as an engine session and as a git checkout with one commit, plus a 10-file tree as
/// a session and a directory. The corpus session is never written to, so a fork of it always
/// starts from a clean overlay; benchmarks that write fork it first.
pub struct SharedCorpus {
    pub engine: Engine,
    pub corpus: Arc<Corpus>,
    pub session: SessionId,
    pub small: SessionId,
    /// A hard-linked copy of the corpus tree ([`link_tree`]), with the tree committed at HEAD.
    pub checkout: PathBuf,
    pub small_dir: PathBuf,
}

/// The corpus session or repository left by one round of `import`, offered for reuse.
pub struct Imported {
    pub engine: Engine,
    pub session: SessionId,
    pub checkout: PathBuf,
}

impl Ctx {
    pub fn new(opts: Options) -> Result<Ctx> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting tokio")?;
        let parent = opts.work_dir.join("runs");
        std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let scratch = tempfile::Builder::new()
            .prefix("run-")
            .tempdir_in(&parent)
            .with_context(|| format!("creating a scratch directory in {}", parent.display()))?;
        eprintln!("scratch directory {}", scratch.path().display());
        let trash_dir = scratch.path().join(".trash");
        Ok(Ctx {
            rt,
            opts,
            scratch,
            corpus: None,
            shared: None,
            git: None,
            trash: Trash::new(trash_dir),
            shared_dirs: Vec::new(),
        })
    }

    /// A fresh directory `name` in the scratch directory.
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.scratch.path().join(name);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(d)
    }

    /// Remove `path` (a tree in the scratch directory) in the background, at low priority; the
    /// run waits for it at the end. Use it for large trees a benchmark is done with.
    pub fn discard(&self, path: &Path) -> Result<()> {
        self.trash.discard(path)
    }

    /// Rounds for a reference that costs many seconds a sample on the full corpus (a checkout or
    /// a `git add` of 1.3 GB): `cap` on the `linux` corpus, every round on `small`.
    pub fn heavy_rounds(&self, cap: usize) -> usize {
        match self.opts.corpus {
            CorpusKind::Linux => self.opts.rounds.min(cap),
            CorpusKind::Small => self.opts.rounds,
        }
    }

    pub fn corpus(&mut self) -> Result<Arc<Corpus>> {
        if let Some(c) = &self.corpus {
            return Ok(c.clone());
        }
        let c = Arc::new(Corpus::prepare(self.opts.corpus, &self.opts.work_dir)?);
        self.corpus = Some(c.clone());
        Ok(c)
    }

    /// Keep `imported` as the shared corpus if there is none yet; otherwise drop it and remove
    /// its files. Returns whether it was kept.
    pub fn offer_import(&mut self, imported: Imported, engine_dir: &Path) -> Result<bool> {
        if self.shared.is_some() {
            drop(imported);
            self.discard(engine_dir)?;
            return Ok(false);
        }
        let Imported {
            engine,
            session,
            checkout,
        } = imported;
        self.shared_dirs = vec![engine_dir.to_path_buf(), checkout.clone()];
        let shared = self.finish_shared(engine, session, checkout)?;
        self.shared = Some(shared);
        Ok(true)
    }

    pub fn shared_corpus(&mut self) -> Result<Arc<SharedCorpus>> {
        if let Some(s) = &self.shared {
            return Ok(s.clone());
        }
        let corpus = self.corpus()?;
        let engine_dir = self.dir("engine-shared")?;
        let engine = self.rt.block_on(Engine::open(EngineConfig::new(&engine_dir)))?;
        let t = Instant::now();
        let session = self.rt.block_on(import_tar(&engine, &corpus.tar))?;
        eprintln!(
            "setup: engine import of the corpus took {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let checkout = self.scratch.path().join("corpus-checkout");
        let t = Instant::now();
        link_tree(&corpus.tree, &checkout)?;
        git_commit_all(&checkout)?;
        eprintln!(
            "setup: linked copy, git init, add and commit of the corpus took {:.1} s",
            t.elapsed().as_secs_f64()
        );
        self.shared_dirs = vec![engine_dir, checkout.clone()];
        let shared = self.finish_shared(engine, session, checkout)?;
        self.shared = Some(shared.clone());
        Ok(shared)
    }

    fn finish_shared(&mut self, engine: Engine, session: SessionId, checkout: PathBuf) -> Result<Arc<SharedCorpus>> {
        let corpus = self.corpus()?;
        let small_dir = self.dir("tree-small")?;
        TreeShape::new(10).write(&small_dir)?;
        let small = self
            .rt
            .block_on(engine.create_session(SessionSource::Directory(small_dir.clone()), CreateOptions::default()))?
            .id;
        Ok(Arc::new(SharedCorpus {
            engine,
            corpus,
            session,
            small,
            checkout,
            small_dir,
        }))
    }

    /// Close the shared corpus's engine and remove its directory and checkout in the background
    /// (when no benchmark left needs them; a later `shared_corpus` would build them again).
    pub fn release_shared(&mut self) -> Result<()> {
        if self.shared.take().is_some() {
            for dir in std::mem::take(&mut self.shared_dirs) {
                self.discard(&dir)?;
            }
        }
        Ok(())
    }

    /// Close the engine, wait for the background removals, and remove the scratch directory
    /// (its top-level trees in parallel). Returns the time spent waiting and removing.
    pub fn cleanup(self) -> Result<Duration> {
        let Ctx {
            rt,
            scratch,
            shared,
            git,
            trash,
            ..
        } = self;
        drop(git);
        drop(shared);
        drop(rt);
        let t = Instant::now();
        let waited = trash.wait()?;
        drop(trash);
        let entries: Vec<PathBuf> = std::fs::read_dir(scratch.path())
            .with_context(|| format!("listing {}", scratch.path().display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("listing {}", scratch.path().display()))?;
        crate::trash::remove_all_parallel(&entries)?;
        let path = scratch.path().display().to_string();
        scratch.close().with_context(|| format!("removing {path}"))?;
        eprintln!(
            "cleanup: {:.1} s waiting for background removals, {:.1} s in all",
            waited.as_secs_f64(),
            t.elapsed().as_secs_f64()
        );
        Ok(t.elapsed())
    }
}

/// A new session from the uncompressed tar at `tar`.
pub async fn import_tar(engine: &Engine, tar: &Path) -> Result<SessionId> {
    let file = tokio::fs::File::open(tar)
        .await
        .with_context(|| format!("opening {}", tar.display()))?;
    Ok(engine.import_tar(file, CreateOptions::default()).await?.id)
}

/// `cp -al SRC DST`: a copy of the cached corpus whose files are hard links to the cache's, made
/// in seconds instead of a minute. git only reads work-tree files; whoever changes a file in such
/// a copy must replace it ([`replace_file`]), never write into it, or the cache would change.
pub fn link_tree(src: &Path, dst: &Path) -> Result<Duration> {
    let t = Instant::now();
    run(std::process::Command::new("cp").arg("-al").arg(src).arg(dst))?;
    Ok(t.elapsed())
}

/// Write `data` to `path` through a new file renamed over it, so a hard link elsewhere keeps
/// the old content.
pub fn replace_file(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension("aether-bench-tmp");
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming over {}", path.display()))
}

/// `git init && git add -A -f && git commit` in `dir`. `-f` because the kernel's top-level
/// `.gitignore` in Debian's tarball ignores everything; the engine imports every file too.
pub fn git_commit_all(dir: &Path) -> Result<Duration> {
    let t = Instant::now();
    run(git(dir).args(["init", "-q"]))?;
    run(git(dir).args(["add", "-A", "-f"]))?;
    run(git(dir).args(["commit", "-q", "-m", "corpus"]))?;
    Ok(t.elapsed())
}

/// Remove a directory tree if it exists.
pub fn remove(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.with_context(|| format!("removing {}", dir.display())),
    }
}
