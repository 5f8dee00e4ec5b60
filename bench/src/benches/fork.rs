//! `fork`: how long creating a session from another one's current state takes when the parent
//! holds the large tree, against the same fork of a 10-file session (the issue asks that the two
//! be close: a fork must not cost the base's size), `cp -a` of the 10-file tree, and
//! `git worktree add` of the large tree.

use std::process::Command;
use std::time::Instant;

use aether_core::{CreateOptions, SessionId, SessionSource};
use anyhow::Result;

use super::{Bench, SLOW_REFERENCE_ROUNDS, ms, rotation};
use crate::ctx::Ctx;
use crate::fixture::command::{git, run, sync, timed};
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct Fork;

/// Forks of each kind per round; the first rounds also take one `git worktree add` each.
const PER_ROUND: usize = 20;
const TARGET_MS: f64 = 5.0;
const TARGET_RATIO: f64 = 1.5;

impl Bench for Fork {
    fn name(&self) -> &'static str {
        "fork"
    }

    fn about(&self) -> &'static str {
        "fork latency of a 100k-file session vs a 10-file session, cp -a, git worktree add"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let tree = ctx.shared_tree()?;
        let copies = ctx.dir("fork-copies")?;
        let worktrees = ctx.dir("fork-worktrees")?;
        let fork = |parent: &SessionId| -> Result<f64> {
            let source = SessionSource::Session {
                id: parent.clone(),
                at: None,
            };
            let t = Instant::now();
            ctx.rt
                .block_on(tree.engine.create_session(source, CreateOptions::default()))?;
            Ok(ms(t.elapsed()))
        };
        // Untimed: load both parents and warm the caches.
        fork(&tree.big)?;
        fork(&tree.small)?;

        let (mut big, mut small, mut cp, mut worktree) = (
            Samples::default(),
            Samples::default(),
            Samples::default(),
            Samples::default(),
        );
        for round in 0..ctx.opts.rounds {
            for i in 0..PER_ROUND {
                let n = round * PER_ROUND + i;
                for which in rotation(n, 3) {
                    match which {
                        0 => big.push(fork(&tree.big)?),
                        1 => small.push(fork(&tree.small)?),
                        _ => {
                            let dst = copies.join(format!("copy-{n}"));
                            cp.push(ms(timed(Command::new("cp").arg("-a").arg(&tree.small_dir).arg(&dst))?));
                        }
                    }
                }
            }
            let mut wt_note = String::new();
            if round < SLOW_REFERENCE_ROUNDS {
                let path = worktrees.join(format!("wt-{round}"));
                sync()?;
                let wt = timed(
                    git(&tree.big_dir)
                        .args(["worktree", "add", "-q", "--detach"])
                        .arg(&path)
                        .arg("HEAD"),
                )?;
                worktree.push(ms(wt));
                wt_note = format!(", worktree add {:.0} ms", ms(wt));
                run(git(&tree.big_dir).args(["worktree", "remove", "--force"]).arg(&path))?;
            }
            eprintln!(
                "fork: round {} of {}: large-tree fork p50 {:.2} ms, 10-file fork p50 {:.2} ms{wt_note}",
                round + 1,
                ctx.opts.rounds,
                big.median(),
                small.median(),
            );
        }

        let files = tree.shape.files;
        let met = big.median() < TARGET_MS && big.p99() < TARGET_MS && big.median() <= TARGET_RATIO * small.median();
        let big_series = Series::new(format!("fork of a {files}-file session"), big);
        Ok(vec![
            Row::new(
                "fork",
                Unit::Millis,
                big_series.clone(),
                Some(Series::new("fork of a 10-file session", small.clone())),
            )
            .with_target(
                format!("p50 and p99 < {TARGET_MS} ms; p50 ≤ {TARGET_RATIO}× the 10-file fork"),
                met,
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
