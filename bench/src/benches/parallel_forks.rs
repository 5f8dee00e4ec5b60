//! `parallel-forks`: many agents at once. N forks of the corpus session (30 by default) run
//! concurrently; each writes 100 new files and checkpoints. The reference does the same with
//! git: N concurrent `git worktree add` of the corpus commit, the same 100 writes in each, then
//! `git add -A && git commit`. Reported: the wall time of the whole batch and each fork's own
//! time from start to its checkpoint. On the full corpus the git batch is smaller by default
//! (`--git-forks`), and the rows say so.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aether_core::{CreateOptions, Engine, SessionId, SessionSource, WriteOptions};
use anyhow::{Context, Result};

use super::{Bench, ms};
use crate::corpus::CorpusKind;
use crate::ctx::{Ctx, remove};
use crate::fixture::command::{git, run, sync};
use crate::fixture::tree::TreeShape;
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct ParallelForks;

const WRITES: usize = 100;
/// Rounds of the git reference on the full corpus.
const HEAVY_ROUNDS: usize = 1;
/// Concurrent worktrees of the git reference on the full corpus unless `--git-forks` says
/// otherwise: each is a 1.3 GB checkout of 78k files (20 to 40 s alone here), so 30 of them
/// (39 GB, several minutes) do not fit the 15-minute budget of a default run.
const HEAVY_GIT_FORKS: usize = 5;

fn file(k: usize, j: usize) -> (String, Vec<u8>) {
    (format!("agent-{k}/file-{j:03}.c"), TreeShape::content(j, k as u64 + 1))
}

/// One agent of ours: fork, write, checkpoint. Returns its own time.
async fn agent(engine: Engine, parent: SessionId, k: usize) -> Result<Duration> {
    let t = Instant::now();
    let source = SessionSource::Session { id: parent, at: None };
    let id = engine.create_session(source, CreateOptions::default()).await?.id;
    let opts = WriteOptions {
        create_parents: true,
        ..Default::default()
    };
    for j in 0..WRITES {
        let (path, data) = file(k, j);
        engine.write_bytes(&id, &path, data, opts).await?;
    }
    engine.checkpoint(&id, Some(format!("agent {k}"))).await?;
    Ok(t.elapsed())
}

/// One agent of the reference: worktree, write, add, commit. Returns its own time.
fn git_agent(repo: &Path, worktree: &Path, k: usize) -> Result<Duration> {
    let t = Instant::now();
    run(git(repo)
        .args(["worktree", "add", "-q", "--detach"])
        .arg(worktree)
        .arg("HEAD"))?;
    for j in 0..WRITES {
        let (path, data) = file(k, j);
        let path = worktree.join(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    }
    run(git(worktree).args(["add", "-A"]))?;
    run(git(worktree).args(["commit", "-q", "-m", &format!("agent {k}")]))?;
    Ok(t.elapsed())
}

impl Bench for ParallelForks {
    fn name(&self) -> &'static str {
        "parallel-forks"
    }

    fn about(&self) -> &'static str {
        "30 concurrent forks of the corpus, each writing 100 files and checkpointing, vs 30 git worktree add + commits"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let shared = ctx.shared_corpus()?;
        let n = ctx.opts.forks;
        let rounds = ctx.opts.rounds;
        let git_rounds = ctx.heavy_rounds(HEAVY_ROUNDS);
        let git_n = ctx.opts.git_forks.unwrap_or(match ctx.opts.corpus {
            CorpusKind::Linux => HEAVY_GIT_FORKS.min(n),
            CorpusKind::Small => n,
        });
        let [mut wall, mut each, mut git_wall, mut git_each] = std::array::from_fn(|_| Samples::default());
        for round in 0..rounds {
            let git_round = round < git_rounds;
            // Alternate which side goes first while both run.
            let order: &[bool] = if git_round && round % 2 == 1 {
                &[false, true]
            } else {
                &[true, false]
            };
            for &is_ours in order {
                sync()?;
                if is_ours {
                    let t = Instant::now();
                    let times = ctx.rt.block_on(async {
                        let tasks: Vec<_> = (0..n)
                            .map(|k| tokio::spawn(agent(shared.engine.clone(), shared.session.clone(), k)))
                            .collect();
                        let mut times = Vec::with_capacity(n);
                        for task in tasks {
                            times.push(task.await.context("joining a fork task")??);
                        }
                        anyhow::Ok(times)
                    })?;
                    wall.push(ms(t.elapsed()));
                    times.into_iter().for_each(|d| each.push(ms(d)));
                } else if git_round {
                    let dir = ctx.dir(&format!("parallel-forks-{round}"))?;
                    let repo = Arc::new(shared.checkout.clone());
                    let t = Instant::now();
                    let threads: Vec<_> = (0..git_n)
                        .map(|k| {
                            let repo = repo.clone();
                            let wt = dir.join(format!("wt-{k}"));
                            std::thread::spawn(move || git_agent(&repo, &wt, k))
                        })
                        .collect();
                    let mut times = Vec::with_capacity(git_n);
                    for th in threads {
                        let joined = th.join().map_err(|_| anyhow::anyhow!("a git agent thread panicked"))?;
                        times.push(joined?);
                    }
                    git_wall.push(ms(t.elapsed()));
                    times.into_iter().for_each(|d| git_each.push(ms(d)));
                    remove(&dir)?;
                    run(git(&shared.checkout).args(["worktree", "prune"]))?;
                }
            }
            let git_note = if git_round {
                format!(", {git_n} git worktrees in {:.1} s", super::last(&git_wall) / 1000.0)
            } else {
                String::new()
            };
            eprintln!(
                "parallel-forks: round {} of {rounds}: {n} forks in {:.0} ms{git_note}",
                round + 1,
                super::last(&wall),
            );
        }
        let files = shared.corpus.summary.files;
        let ours_wall = Series::new(
            format!("{n} concurrent forks of the {files}-file session, {WRITES} writes + checkpoint each: wall time"),
            wall,
        );
        let git_wall = Series::new(
            format!("{git_n} concurrent git worktree add + {WRITES} writes + add + commit: wall time"),
            git_wall,
        );
        let mut rows = Vec::new();
        if git_n == n {
            rows.push(Row::new("parallel-forks", Unit::Millis, ours_wall, Some(git_wall)));
        } else {
            // Batches of different sizes: no ratio between their wall times.
            rows.push(Row::new("parallel-forks", Unit::Millis, ours_wall, None));
            rows.push(Row::new("parallel-forks", Unit::Millis, git_wall, None));
        }
        rows.push(Row::new(
            "parallel-forks",
            Unit::Millis,
            Series::new(
                format!("one fork's time from start to its checkpoint ({n} at once)"),
                each,
            ),
            Some(Series::new(
                format!("one worktree's time from add to its commit ({git_n} at once)"),
                git_each,
            )),
        ));
        Ok(rows)
    }
}
