//! What every benchmark gets: the options, a tokio runtime for the engine, a scratch directory
//! removed at the end, and fixtures that are expensive to build and so built once and shared.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use aether_core::{CreateOptions, Engine, EngineConfig, SessionId, SessionSource};
use anyhow::{Context, Result};
use tempfile::TempDir;
use tokio::runtime::Runtime;

use crate::cli::Options;
use crate::fixture::command::{git, run};
use crate::fixture::tree::TreeShape;

pub struct Ctx {
    pub rt: Runtime,
    pub opts: Options,
    scratch: TempDir,
    shared: Option<Arc<SharedTree>>,
}

/// The large synthetic tree, as an engine session and as a git checkout with one commit, plus a
/// 10-file tree as a session and a directory. The large session is never written to, so a fork
/// of it always starts from a clean overlay.
pub struct SharedTree {
    pub engine: Engine,
    pub shape: TreeShape,
    pub big: SessionId,
    pub small: SessionId,
    /// The large tree on disk; also a git work tree with the tree committed at HEAD.
    pub big_dir: PathBuf,
    pub small_dir: PathBuf,
}

impl Ctx {
    pub fn new(opts: Options) -> Result<Ctx> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting tokio")?;
        let parent = opts.work_dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        let scratch = tempfile::Builder::new()
            .prefix("aether-bench-")
            .tempdir_in(&parent)
            .with_context(|| format!("creating a scratch directory in {}", parent.display()))?;
        eprintln!("scratch directory {}", scratch.path().display());
        Ok(Ctx {
            rt,
            opts,
            scratch,
            shared: None,
        })
    }

    /// A fresh directory `name` in the scratch directory.
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.scratch.path().join(name);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(d)
    }

    pub fn shared_tree(&mut self) -> Result<Arc<SharedTree>> {
        if let Some(s) = &self.shared {
            return Ok(s.clone());
        }
        let shape = TreeShape::new(self.opts.files);
        let big_dir = self.dir("tree-big")?;
        let small_dir = self.dir("tree-small")?;
        let t = Instant::now();
        shape.write(&big_dir)?;
        TreeShape::new(10).write(&small_dir)?;
        eprintln!(
            "setup: wrote {} files in {:.1} s",
            shape.files,
            t.elapsed().as_secs_f64()
        );

        let engine = self
            .rt
            .block_on(Engine::open(EngineConfig::new(self.dir("engine-shared")?)))?;
        let t = Instant::now();
        let import = |dir: &PathBuf| {
            self.rt
                .block_on(engine.create_session(SessionSource::Directory(dir.clone()), CreateOptions::default()))
        };
        let big = import(&big_dir)?.id;
        eprintln!(
            "setup: engine import of {} files took {:.1} s",
            shape.files,
            t.elapsed().as_secs_f64()
        );
        let small = import(&small_dir)?.id;

        let t = Instant::now();
        run(git(&big_dir).args(["init", "-q"]))?;
        run(git(&big_dir).args(["add", "-A"]))?;
        run(git(&big_dir).args(["commit", "-q", "-m", "base"]))?;
        eprintln!(
            "setup: git init + add + commit of {} files took {:.1} s",
            shape.files,
            t.elapsed().as_secs_f64()
        );

        let shared = Arc::new(SharedTree {
            engine,
            shape,
            big,
            small,
            big_dir,
            small_dir,
        });
        self.shared = Some(shared.clone());
        Ok(shared)
    }

    /// Close the engine and remove the scratch directory.
    pub fn cleanup(self) -> Result<()> {
        let Ctx {
            rt, scratch, shared, ..
        } = self;
        drop(shared);
        drop(rt);
        let path = scratch.path().display().to_string();
        scratch.close().with_context(|| format!("removing {path}"))
    }
}
