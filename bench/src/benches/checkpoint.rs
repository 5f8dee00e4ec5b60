//! `checkpoint`: change 10 files of the corpus in a session and freeze it into a commit, against
//! the same 10 changes in a git checkout of the corpus followed by `git add -A && git commit -q`.
//! The engine's checkpoint is meant to cost what changed; git's pays for scanning the index.

use std::time::Instant;

use aether_core::{CreateOptions, SessionId, SessionSource, WriteOptions};
use anyhow::Result;

use super::{Bench, ms};
use crate::ctx::{Ctx, SharedCorpus, replace_file};
use crate::fixture::command::{git, run};
use crate::fixture::tree::TreeShape;
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct Checkpoint;

const SAMPLES: usize = 20;
const CHANGED: usize = 10;
/// The earlier issue's target for this row.
const TARGET_MS: f64 = 20.0;

/// The corpus files changed by sample `n`: ten, spread over the whole tree, different each time.
fn changed_files(n: usize, files: &[String]) -> Vec<&str> {
    let len = files.len();
    (0..CHANGED)
        .map(|k| files[(n * 7919 + k * (len / CHANGED).max(1)) % len].as_str())
        .collect()
}

/// Time of (the ten writes, the freeze) for one side.
struct Sample {
    writes: f64,
    freeze: f64,
}

fn ours(ctx: &Ctx, shared: &SharedCorpus, session: &SessionId, n: usize) -> Result<Sample> {
    let e = &shared.engine;
    let t0 = Instant::now();
    ctx.rt.block_on(async {
        for (k, path) in changed_files(n, &shared.corpus.files).into_iter().enumerate() {
            let data = TreeShape::content(k, n as u64 + 1);
            e.write_bytes(session, path, data, WriteOptions::default()).await?;
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

fn reference(shared: &SharedCorpus, n: usize) -> Result<Sample> {
    let t0 = Instant::now();
    for (k, path) in changed_files(n, &shared.corpus.files).into_iter().enumerate() {
        // Replaced, not written into: the checkout's files are hard links to the corpus cache.
        replace_file(&shared.checkout.join(path), &TreeShape::content(k, n as u64 + 1))?;
    }
    let t1 = Instant::now();
    run(git(&shared.checkout).args(["add", "-A"]))?;
    run(git(&shared.checkout).args(["commit", "-q", "-m", &format!("sample {n}")]))?;
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
        "change 10 files of the corpus, then checkpoint, vs the same then git add -A && git commit"
    }

    fn uses_shared_corpus(&self) -> bool {
        true
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let shared = ctx.shared_corpus()?;
        // A child of the corpus session, so the session `fork` measures keeps an empty overlay.
        let source = SessionSource::Session {
            id: shared.session.clone(),
            at: None,
        };
        let session = ctx
            .rt
            .block_on(shared.engine.create_session(source, CreateOptions::default()))?
            .id;
        // Sample 0 is an untimed warm-up for both sides.
        ours(ctx, &shared, &session, 0)?;
        reference(&shared, 0)?;

        let [mut freeze, mut total, mut git_freeze, mut git_total] = std::array::from_fn(|_| Samples::default());
        let rounds = ctx.opts.rounds;
        let per_round = SAMPLES.div_ceil(rounds);
        for round in 0..rounds {
            for i in 0..per_round {
                let n = 1 + round * per_round + i;
                if n > SAMPLES {
                    break;
                }
                let (a, b) = if n.is_multiple_of(2) {
                    let a = ours(ctx, &shared, &session, n)?;
                    (a, reference(&shared, n)?)
                } else {
                    let b = reference(&shared, n)?;
                    (ours(ctx, &shared, &session, n)?, b)
                };
                freeze.push(a.freeze);
                total.push(a.writes + a.freeze);
                git_freeze.push(b.freeze);
                git_total.push(b.writes + b.freeze);
            }
            eprintln!(
                "checkpoint: round {} of {rounds}: checkpoint p50 {:.2} ms, git add+commit p50 {:.0} ms",
                round + 1,
                freeze.median(),
                git_freeze.median()
            );
        }
        let files = shared.corpus.summary.files;
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
