//! `checkpoint`: change 10 files of the large session and freeze it into a commit, against the
//! same 10 changes in a git checkout of the same tree followed by `git add -A && git commit -q`.
//! The engine's checkpoint is meant to cost what changed, git's pays for scanning the index.

use std::time::Instant;

use aether_core::{CreateOptions, SessionSource, WriteOptions};
use anyhow::{Context, Result};

use super::{Bench, ms};
use crate::ctx::{Ctx, SharedTree};
use crate::fixture::command::{git, run};
use crate::fixture::tree::TreeShape;
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct Checkpoint;

const PER_ROUND: usize = 4;
const CHANGED: usize = 10;
const TARGET_MS: f64 = 20.0;

/// The files changed by sample `n`: ten, spread over the whole tree, different for each sample.
fn changed_files(n: usize, files: usize) -> Vec<usize> {
    (0..CHANGED)
        .map(|k| (n * 7919 + k * (files / CHANGED)) % files)
        .collect()
}

/// Time of (the ten writes, the freeze) for one side.
struct Sample {
    writes: f64,
    freeze: f64,
}

fn ours(ctx: &Ctx, tree: &SharedTree, session: &aether_core::SessionId, n: usize) -> Result<Sample> {
    let e = &tree.engine;
    let t0 = Instant::now();
    ctx.rt.block_on(async {
        for i in changed_files(n, tree.shape.files) {
            let data = TreeShape::content(i, n as u64 + 1);
            e.write_bytes(session, &tree.shape.path(i), data, WriteOptions::default())
                .await?;
        }
        Ok::<(), aether_core::Error>(())
    })?;
    let t1 = Instant::now();
    ctx.rt.block_on(e.checkpoint(session, None))?;
    Ok(Sample {
        writes: ms(t1 - t0),
        freeze: ms(t1.elapsed()),
    })
}

fn reference(tree: &SharedTree, n: usize) -> Result<Sample> {
    let t0 = Instant::now();
    for i in changed_files(n, tree.shape.files) {
        let path = tree.big_dir.join(tree.shape.path(i));
        std::fs::write(&path, TreeShape::content(i, n as u64 + 1))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let t1 = Instant::now();
    run(git(&tree.big_dir).args(["add", "-A"]))?;
    run(git(&tree.big_dir).args(["commit", "-q", "-m", &format!("sample {n}")]))?;
    Ok(Sample {
        writes: ms(t1 - t0),
        freeze: ms(t1.elapsed()),
    })
}

impl Bench for Checkpoint {
    fn name(&self) -> &'static str {
        "checkpoint"
    }

    fn about(&self) -> &'static str {
        "10 changed files then checkpoint, vs the same changes then git add -A && git commit"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let tree = ctx.shared_tree()?;
        // A child of the large session, so the session `fork` measures keeps an empty overlay.
        let source = SessionSource::Session {
            id: tree.big.clone(),
            at: None,
        };
        let session = ctx
            .rt
            .block_on(tree.engine.create_session(source, CreateOptions::default()))?
            .id;
        // Sample 0 is an untimed warm-up for both sides.
        ours(ctx, &tree, &session, 0)?;
        reference(&tree, 0)?;

        let (mut freeze, mut total, mut git_freeze, mut git_total) = (
            Samples::default(),
            Samples::default(),
            Samples::default(),
            Samples::default(),
        );
        for round in 0..ctx.opts.rounds {
            for i in 0..PER_ROUND {
                let n = 1 + round * PER_ROUND + i;
                let (a, b) = if n.is_multiple_of(2) {
                    let a = ours(ctx, &tree, &session, n)?;
                    (a, reference(&tree, n)?)
                } else {
                    let b = reference(&tree, n)?;
                    (ours(ctx, &tree, &session, n)?, b)
                };
                freeze.push(a.freeze);
                total.push(a.writes + a.freeze);
                git_freeze.push(b.freeze);
                git_total.push(b.writes + b.freeze);
            }
            eprintln!(
                "checkpoint: round {} of {}: checkpoint p50 {:.2} ms, git add+commit p50 {:.0} ms",
                round + 1,
                ctx.opts.rounds,
                freeze.median(),
                git_freeze.median()
            );
        }
        let files = tree.shape.files;
        let met = freeze.median() < TARGET_MS;
        Ok(vec![
            Row::new(
                "checkpoint",
                Unit::Millis,
                Series::new(
                    format!("checkpoint after {CHANGED} changed files ({files}-file session)"),
                    freeze,
                ),
                Some(Series::new(
                    format!("git add -A && git commit -q ({files}-file checkout)"),
                    git_freeze,
                )),
            )
            .with_target(format!("p50 < {TARGET_MS} ms"), met),
            Row::new(
                "checkpoint",
                Unit::Millis,
                Series::new(format!("{CHANGED} write_bytes + checkpoint"), total),
                Some(Series::new(
                    format!("{CHANGED} file writes + git add -A + git commit"),
                    git_total,
                )),
            ),
        ])
    }
}
