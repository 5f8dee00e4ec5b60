//! `fork`: how long creating a session from another one's current state takes when the parent
//! holds the corpus, against the same fork of a 10-file session (a fork must not cost the base's
//! size: p99 must not grow with it), `cp -a` of the 10-file tree, and `git worktree add` of the
//! corpus commit.

use std::process::Command;
use std::time::Instant;

use aether_core::{CreateOptions, SessionId, SessionSource};
use anyhow::Result;

use super::{Bench, ms, rotation};
use crate::ctx::Ctx;
use crate::fixture::command::{git, run, sync, timed};
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct Fork;

/// Forks of each kind over the whole run.
const FORKS: usize = 100;
/// Rounds that also take one `git worktree add` of the full corpus (20 to 40 s each, and as
/// long again to remove it and write it back).
const WORKTREE_ROUNDS: usize = 1;
const TARGET_MS: f64 = 1.0;
const TARGET_P99_RATIO: f64 = 2.0;

impl Bench for Fork {
    fn name(&self) -> &'static str {
        "fork"
    }

    fn about(&self) -> &'static str {
        "100 forks of the corpus session vs of a 10-file session; cp -a, git worktree add"
    }

    fn uses_shared_corpus(&self) -> bool {
        true
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let shared = ctx.shared_corpus()?;
        let copies = ctx.dir("fork-copies")?;
        let worktrees = ctx.dir("fork-worktrees")?;
        let fork = |parent: &SessionId| -> Result<f64> {
            let source = SessionSource::Session {
                id: parent.clone(),
                at: None,
            };
            let t = Instant::now();
            ctx.rt
                .block_on(shared.engine.create_session(source, CreateOptions::default()))?;
            Ok(ms(t.elapsed()))
        };
        // Untimed: load both parents and warm the caches.
        fork(&shared.session)?;
        fork(&shared.small)?;

        let [mut big, mut small, mut cp, mut worktree] = std::array::from_fn(|_| Samples::default());
        let rounds = ctx.opts.rounds;
        let per_round = FORKS.div_ceil(rounds);
        let worktree_rounds = ctx.heavy_rounds(WORKTREE_ROUNDS);
        for round in 0..rounds {
            for i in 0..per_round {
                let n = round * per_round + i;
                if n >= FORKS {
                    break;
                }
                for which in rotation(n, 3) {
                    match which {
                        0 => big.push(fork(&shared.session)?),
                        1 => small.push(fork(&shared.small)?),
                        _ => {
                            let dst = copies.join(format!("copy-{n}"));
                            cp.push(ms(timed(
                                Command::new("cp").arg("-a").arg(&shared.small_dir).arg(&dst),
                            )?));
                        }
                    }
                }
            }
            let mut wt_note = String::new();
            if round < worktree_rounds {
                let path = worktrees.join(format!("wt-{round}"));
                sync()?;
                let wt = timed(
                    git(&shared.checkout)
                        .args(["worktree", "add", "-q", "--detach"])
                        .arg(&path)
                        .arg("HEAD"),
                )?;
                worktree.push(ms(wt));
                wt_note = format!(", worktree add {:.0} ms", ms(wt));
                // Removed in the background; prune forgets it once its directory is gone.
                ctx.discard(&path)?;
                run(git(&shared.checkout).args(["worktree", "prune"]))?;
            }
            eprintln!(
                "fork: round {} of {rounds}: corpus fork p50 {:.2} ms, 10-file fork p50 {:.2} ms{wt_note}",
                round + 1,
                big.median(),
                small.median(),
            );
        }

        let files = shared.corpus.summary.files;
        let met_p50 = big.median() < TARGET_MS;
        let met_p99 = big.p99() <= TARGET_P99_RATIO * small.p99();
        let big_series = Series::new(format!("fork of the {files}-file corpus session"), big);
        Ok(vec![
            Row::new(
                "fork",
                Unit::Millis,
                big_series.clone(),
                Some(Series::new("fork of a 10-file session", small.clone())),
            )
            .with_target(format!("p50 < {TARGET_MS} ms"), met_p50),
            Row::new(
                "fork",
                Unit::Millis,
                big_series.clone(),
                Some(Series::new("fork of a 10-file session", small.clone())),
            )
            .with_target(
                format!("p99 not growing with the base: ≤ {TARGET_P99_RATIO}× the 10-file fork's p99"),
                met_p99,
            ),
            Row::new(
                "fork",
                Unit::Millis,
                Series::new("fork of a 10-file session", small),
                Some(Series::new("cp -a of the 10-file tree", cp)),
            ),
            Row::new(
                "fork",
                Unit::Millis,
                big_series,
                Some(Series::new(
                    format!("git worktree add of the {files}-file commit"),
                    worktree,
                )),
            ),
        ])
    }
}
