//! `import`: the corpus tar into a new session of a fresh engine, against `git init && git add
//! -A -f && git commit` on a (hard-linked) copy of the extracted tree (gc off). Both sides store every file
//! once; the engine also builds the session's trees. The last round's session and repository
//! become the shared corpus the later benchmarks fork and change, and their tree ids are
//! compared: the same content must give the same git tree.

use std::time::Instant;

use aether_core::{Engine, EngineConfig};
use anyhow::Result;

use super::{Bench, ms, rotation};
use crate::ctx::{Ctx, Imported, git_commit_all, import_tar, link_tree};
use crate::fixture::command::{git, run, sync};
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct Import;

/// Rounds on the full corpus: each takes about 40 s a side there.
const HEAVY_ROUNDS: usize = 2;

impl Bench for Import {
    fn name(&self) -> &'static str {
        "import"
    }

    fn about(&self) -> &'static str {
        "tar of the corpus into a new session, vs git init && git add -A && git commit of the tree"
    }

    fn uses_shared_corpus(&self) -> bool {
        true
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let corpus = ctx.corpus()?;
        let rounds = ctx.heavy_rounds(HEAVY_ROUNDS);
        let [mut ours, mut git_times] = std::array::from_fn(|_| Samples::default());
        let mut kept = None;
        for round in 0..rounds {
            let engine_dir = ctx.dir(&format!("import-engine-{round}"))?;
            let checkout = ctx.dir("import-git")?.join(format!("round-{round}"));
            let mut imported = None;
            // The hard-linked copy git adds is made before either sample (untimed); one `sync`
            // before each sample keeps one side's writeback out of the other's time.
            link_tree(&corpus.tree, &checkout)?;
            for which in rotation(round, 2) {
                sync()?;
                if which == 0 {
                    let (engine, session, took) = ctx.rt.block_on(async {
                        let engine = Engine::open(EngineConfig::new(&engine_dir)).await?;
                        let t = Instant::now();
                        let session = import_tar(&engine, &corpus.tar).await?;
                        anyhow::Ok((engine, session, t.elapsed()))
                    })?;
                    ours.push(ms(took));
                    imported = Some((engine, session));
                } else {
                    git_times.push(ms(git_commit_all(&checkout)?));
                }
            }
            let Some((engine, session)) = imported else {
                anyhow::bail!("round {round} took no engine sample");
            };
            let tree = ctx.rt.block_on(engine.current_tree(&session))?.to_string();
            let git_tree = run(git(&checkout).args(["rev-parse", "HEAD^{tree}"]))?;
            let same = if tree == git_tree {
                "the same tree id".to_owned()
            } else {
                format!("DIFFERENT tree ids: ours {tree}, git {git_tree}")
            };
            eprintln!(
                "import: round {} of {rounds}: ours {:.1} s, git {:.1} s; {same}",
                round + 1,
                ours.values.last().copied().unwrap_or(f64::NAN) / 1000.0,
                git_times.values.last().copied().unwrap_or(f64::NAN) / 1000.0,
            );
            // Keep only the last round's session and repository, for the later benchmarks.
            if let Some((old_engine, _, old_dir, old_checkout)) = kept.replace((engine, session, engine_dir, checkout))
            {
                drop(old_engine);
                ctx.discard(&old_dir)?;
                ctx.discard(&old_checkout)?;
            }
        }
        if let Some((engine, session, engine_dir, checkout)) = kept {
            let imported = Imported {
                engine,
                session,
                checkout: checkout.clone(),
            };
            if !ctx.offer_import(imported, &engine_dir)? {
                ctx.discard(&checkout)?;
            }
        }

        let bytes = corpus.summary.bytes;
        let mbps = |s: &Samples| Samples {
            values: s.values.iter().map(|ms| bytes as f64 / (ms / 1000.0) / 1e6).collect(),
        };
        let what = format!("{} files, {:.0} MB", corpus.summary.files, bytes as f64 / 1e6);
        Ok(vec![
            Row::new(
                "import",
                Unit::Millis,
                Series::new(format!("import_tar of the corpus tar ({what})"), ours.clone()),
                Some(Series::new(
                    "git init && git add -A -f && git commit of the extracted tree",
                    git_times.clone(),
                )),
            ),
            Row::new(
                "import",
                Unit::MegabytesPerSec,
                Series::new("import_tar, corpus bytes per second", mbps(&ours)),
                Some(Series::new(
                    "git init + add + commit, corpus bytes per second",
                    mbps(&git_times),
                )),
            ),
        ])
    }
}
