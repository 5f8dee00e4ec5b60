//! `parallel-forks`: many agents at once. N forks of the corpus session (30 by default) run
//! concurrently; each writes 100 new files and checkpoints. The reference does the same with
//! git: N concurrent `git worktree add` of the corpus commit, the same 100 writes in each, then
//! `git add -A && git commit`. Reported: the wall time of the whole batch and each agent's own
//! time from start to its commit.
//!
//! Two git references:
//! - **sparse** (always, N worktrees): `git worktree add --no-checkout`, then `git
//!   sparse-checkout set --cone agent-K` and `git checkout` (git builds the full 78k-entry
//!   index but writes only the agent's directory), writes, add, commit. This is the cheapest way git gives N agents a
//!   branch of the corpus each, so it is the fair comparison that fits a default run.
//! - **full** (`--git-forks M` worktrees; default N on the small corpus, none on linux): every
//!   worktree a full checkout. On the kernel that is 1.3 GB and 78k files per agent: 30 need
//!   about 40 GB of disk and many minutes on 2 cores, so it is opt-in there and checked against
//!   the free space first.
//!
//! Every git agent's commit is checked to add exactly its 100 files and nothing else.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aether_core::{CreateOptions, Engine, SessionId, SessionSource, WriteOptions};
use anyhow::{Context, Result, ensure};

use super::{Bench, ms};
use crate::corpus::CorpusKind;
use crate::ctx::Ctx;
use crate::fixture::command::{git, run, sync};
use crate::fixture::tree::TreeShape;
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct ParallelForks;

const WRITES: usize = 100;
/// Rounds of each git reference on the full corpus (every round on `small`).
const HEAVY_ROUNDS: usize = 1;

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Checkout {
    Full,
    Sparse,
}

/// `git worktree add` retries (over the whole run) after git tripped over another `worktree add`
/// registering itself at the same moment.
static WORKTREE_RETRIES: AtomicUsize = AtomicUsize::new(0);

/// `git worktree add [extra] WORKTREE HEAD`. Concurrent adds race in git itself: one can read
/// another's half-written `.git/worktrees/<name>/` and fail ("failed to read
/// .git/worktrees/wt-3/commondir") before creating anything; such an add is retried, as a user
/// scripting many worktrees would have to, and the retry counts in the agent's time.
fn worktree_add(repo: &Path, worktree: &Path, extra: &[&str]) -> Result<()> {
    let mut attempt = 0;
    loop {
        let r = run(git(repo)
            .args(["worktree", "add", "-q", "--detach"])
            .args(extra)
            .arg(worktree)
            .arg("HEAD"));
        match r {
            Err(e) if attempt < 20 && !worktree.exists() && e.to_string().contains("failed to read") => {
                attempt += 1;
                WORKTREE_RETRIES.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5 * attempt));
            }
            r => return r.map(drop),
        }
    }
}

/// One agent of the reference: worktree, write, add, commit. Returns its own time.
fn git_agent(repo: &Path, worktree: &Path, k: usize, how: Checkout) -> Result<Duration> {
    let t = Instant::now();
    match how {
        Checkout::Full => worktree_add(repo, worktree, &[])?,
        Checkout::Sparse => {
            worktree_add(repo, worktree, &["--no-checkout"])?;
            run(git(worktree).args(["sparse-checkout", "set", "--cone", &format!("agent-{k}")]))?;
            // `--no-checkout` left the index empty: fill it (skip-worktree outside the cone).
            run(git(worktree).args(["checkout", "-q", "--detach", "HEAD"]))?;
        }
    }
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
    let took = t.elapsed();
    // Untimed: the commit must add exactly this agent's files (a sparse index gone wrong would
    // record the whole corpus as deleted).
    let changed = run(git(worktree).args(["diff", "--no-renames", "--name-status", "HEAD~1", "HEAD"]))?;
    let lines: Vec<&str> = changed.lines().collect();
    ensure!(
        lines.len() == WRITES && lines.iter().all(|l| l.starts_with("A\t")),
        "git agent {k}'s commit is not {WRITES} added files: {} lines, first {:?}",
        lines.len(),
        lines.first()
    );
    Ok(took)
}

/// `n` git agents at once in new worktrees under `dir`; their own times, and the batch's wall time.
fn git_batch(ctx: &Ctx, repo: &Path, dir: &Path, n: usize, how: Checkout) -> Result<(Duration, Vec<Duration>)> {
    let repo = Arc::new(repo.to_path_buf());
    let t = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|k| {
            let repo = repo.clone();
            let wt = dir.join(format!("wt-{k}"));
            std::thread::spawn(move || git_agent(&repo, &wt, k, how))
        })
        .collect();
    let mut times = Vec::with_capacity(n);
    let mut failed = None;
    for th in threads {
        match th.join() {
            Ok(Ok(d)) => times.push(d),
            Ok(Err(e)) => failed = Some(e),
            Err(_) => failed = Some(anyhow::anyhow!("a git agent thread panicked")),
        }
    }
    let wall = t.elapsed();
    ctx.discard(dir)?;
    run(git(&repo).args(["worktree", "prune"]))?;
    match failed {
        Some(e) => Err(e),
        None => Ok((wall, times)),
    }
}

/// Bytes free on the file system holding `path` (`df`), if it can be found out.
fn free_bytes(path: &Path) -> Option<u64> {
    let out = run(std::process::Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(path))
    .ok()?;
    out.lines().last()?.trim().parse().ok()
}

impl Bench for ParallelForks {
    fn name(&self) -> &'static str {
        "parallel-forks"
    }

    fn about(&self) -> &'static str {
        "30 concurrent forks of the corpus, each writing 100 files and checkpointing, vs 30 git worktree add + commits"
    }

    fn uses_shared_corpus(&self) -> bool {
        true
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let shared = ctx.shared_corpus()?;
        let n = ctx.opts.forks;
        let rounds = ctx.opts.rounds;
        let git_rounds = ctx.heavy_rounds(HEAVY_ROUNDS);
        let full_n = ctx.opts.git_forks.unwrap_or(match ctx.opts.corpus {
            CorpusKind::Linux => 0,
            CorpusKind::Small => n,
        });
        let corpus_bytes = shared.corpus.summary.bytes;
        if full_n > 0 {
            let need = corpus_bytes.saturating_mul(full_n as u64).saturating_mul(11) / 10;
            let scratch = ctx.dir("parallel-forks")?;
            if let Some(free) = free_bytes(&scratch) {
                ensure!(
                    free > need,
                    "--git-forks {full_n}: {full_n} full checkouts need about {:.1} GB, {:.1} GB are free",
                    need as f64 / 1e9,
                    free as f64 / 1e9
                );
            }
        }
        // Untimed, once: per-worktree configuration, so concurrent `sparse-checkout set` never
        // writes (and locks) the shared repository's config.
        run(git(&shared.checkout).args(["config", "core.repositoryformatversion", "1"]))?;
        run(git(&shared.checkout).args(["config", "extensions.worktreeConfig", "true"]))?;

        let [mut wall, mut each] = std::array::from_fn(|_| Samples::default());
        let [mut sparse_wall, mut sparse_each, mut full_wall, mut full_each] =
            std::array::from_fn(|_| Samples::default());
        for round in 0..rounds {
            let git_round = round < git_rounds;
            // Ours and the git batches in rotating order while git runs.
            let mut order = vec![0usize];
            if git_round {
                order.push(1);
                if full_n > 0 {
                    order.push(2);
                }
                let len = order.len();
                order.rotate_left(round % len);
            }
            for which in order {
                sync()?;
                match which {
                    0 => {
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
                    }
                    1 => {
                        let dir = ctx.dir(&format!("parallel-forks/sparse-{round}"))?;
                        let (w, times) = git_batch(ctx, &shared.checkout, &dir, n, Checkout::Sparse)?;
                        sparse_wall.push(ms(w));
                        times.into_iter().for_each(|d| sparse_each.push(ms(d)));
                    }
                    _ => {
                        let dir = ctx.dir(&format!("parallel-forks/full-{round}"))?;
                        let (w, times) = git_batch(ctx, &shared.checkout, &dir, full_n, Checkout::Full)?;
                        full_wall.push(ms(w));
                        times.into_iter().for_each(|d| full_each.push(ms(d)));
                    }
                }
            }
            let mut git_note = String::new();
            if git_round {
                git_note = format!(
                    ", {n} sparse git worktrees in {:.1} s",
                    super::last(&sparse_wall) / 1000.0
                );
                if full_n > 0 {
                    git_note.push_str(&format!(
                        ", {full_n} full git worktrees in {:.1} s",
                        super::last(&full_wall) / 1000.0
                    ));
                }
            }
            eprintln!(
                "parallel-forks: round {} of {rounds}: {n} forks in {:.0} ms{git_note} \
                 ({} git worktree add retries so far)",
                round + 1,
                super::last(&wall),
                WORKTREE_RETRIES.load(Ordering::Relaxed),
            );
        }
        let files = shared.corpus.summary.files;
        let ours_wall = Series::new(
            format!("{n} concurrent forks of the {files}-file session, {WRITES} writes + checkpoint each: wall time"),
            wall,
        );
        let ours_each = Series::new(
            format!("one fork's time from start to its checkpoint ({n} at once)"),
            each,
        );
        let mut rows = vec![
            Row::new(
                "parallel-forks",
                Unit::Millis,
                ours_wall.clone(),
                Some(Series::new(
                    format!(
                        "{n} concurrent git worktree add --no-checkout + sparse-checkout of the agent's directory \
                         ({files}-entry index, no corpus files written) + {WRITES} writes + add + commit: wall time"
                    ),
                    sparse_wall,
                )),
            ),
            Row::new(
                "parallel-forks",
                Unit::Millis,
                ours_each.clone(),
                Some(Series::new(
                    format!("one sparse worktree's time from add to its commit ({n} at once)"),
                    sparse_each,
                )),
            ),
        ];
        if full_n == 0 {
            let gb = corpus_bytes as f64 * n as f64 / 1e9;
            rows.push(Row::new(
                "parallel-forks",
                Unit::Millis,
                ours_wall,
                Some(Series::new(
                    format!(
                        "{n} full-checkout git worktrees: not run by default on this corpus \
                         ({n} × {:.1} GB = {gb:.0} GB of checkouts); opt in with --git-forks {n}",
                        corpus_bytes as f64 / 1e9
                    ),
                    Samples::default(),
                )),
            ));
        } else {
            let full_label =
                format!("{full_n} concurrent full git worktree add + {WRITES} writes + add + commit: wall time");
            if full_n == n {
                rows.push(Row::new(
                    "parallel-forks",
                    Unit::Millis,
                    ours_wall,
                    Some(Series::new(full_label, full_wall)),
                ));
            } else {
                // Batches of different sizes: no ratio between their wall times.
                rows.push(Row::new(
                    "parallel-forks",
                    Unit::Millis,
                    Series::new(full_label, full_wall),
                    None,
                ));
            }
            rows.push(Row::new(
                "parallel-forks",
                Unit::Millis,
                ours_each,
                Some(Series::new(
                    format!("one full worktree's time from add to its commit ({full_n} at once)"),
                    full_each,
                )),
            ));
        }
        Ok(rows)
    }
}
