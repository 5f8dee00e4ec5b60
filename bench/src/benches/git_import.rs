//! `git-import`: the corpus repository (see `git_corpus.rs`) imported as a session through the
//! real server, `POST /v1/sessions {"source":{"type":"git","url":PATH}}`, against `git clone
//! --bare --no-local` of the same repository, which is what the import runs first. Every round
//! starts a fresh aetherd on a fresh data directory; the last one stays as the session the
//! `git-clone` and `git-fetch-incremental` benchmarks serve.

use anyhow::{Context, Result, ensure};

use super::{Bench, last, ms, rotation};
use crate::ctx::{Ctx, remove};
use crate::fixture::command::{git, sync, timed};
use crate::git_serving::import;
use crate::report::{Row, Series, Unit};
use crate::server::Server;
use crate::stats::Samples;

pub struct GitImport;

/// Rounds on the full corpus, where each side takes close to a minute (budget of a default run).
const HEAVY_ROUNDS: usize = 1;

/// Read every file in `dir` once, so that the first measurement does not pay for the disk.
fn warm(dir: &std::path::Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
        let mut f = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        std::io::copy(&mut f, &mut std::io::sink()).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(())
}

impl Bench for GitImport {
    fn name(&self) -> &'static str {
        "git-import"
    }

    fn about(&self) -> &'static str {
        "the corpus repository imported as a session over HTTP, vs git clone --bare --no-local"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let repo = ctx.corpus_repo()?;
        let rounds = ctx.heavy_rounds(HEAVY_ROUNDS);
        let [mut ours, mut reference] = std::array::from_fn(|_| Samples::default());
        let mut kept = None;
        // Both sides read the repository's packs: have them in the page cache before either.
        warm(&repo.path.join("objects").join("pack"))?;
        for round in 0..rounds {
            for which in rotation(round, 2) {
                sync()?;
                if which == 0 {
                    let data_dir = ctx.dir(&format!("git-import-{round}"))?;
                    let server = Server::aetherd(&data_dir)?;
                    let (session, head, took) = ctx.rt.block_on(import(&server, &repo.path))?;
                    ensure!(
                        head == repo.summary.head,
                        "the imported session is at {head}, the repository at {}",
                        repo.summary.head
                    );
                    ours.push(ms(took));
                    // Keep this round's server for the serving benchmarks, drop the older one.
                    if let Some((old, old_dir, _)) = kept.replace((server, data_dir, session)) {
                        drop(old);
                        remove(&old_dir)?;
                    }
                } else {
                    let dir = ctx.dir("git-import-reference")?;
                    let dst = dir.join("clone.git");
                    reference.push(ms(timed(
                        git(&dir)
                            .args(["clone", "-q", "--bare", "--no-local"])
                            .arg(&repo.path)
                            .arg(&dst),
                    )?));
                    remove(&dir)?;
                }
            }
            eprintln!(
                "git-import: round {} of {rounds}: ours {:.1} s, git clone --bare --no-local {:.1} s",
                round + 1,
                last(&ours) / 1000.0,
                last(&reference) / 1000.0
            );
        }
        if let Some((server, data_dir, session)) = kept {
            if ctx.git.is_none() {
                ctx.keep_git_serving(repo.clone(), server, session)?;
            } else {
                drop(server);
                remove(&data_dir)?;
            }
        }
        let what = format!(
            "{} commits, {:.0} MB of packs",
            repo.summary.commits,
            repo.summary.pack_bytes as f64 / 1e6
        );
        Ok(vec![Row::new(
            "git-import",
            Unit::Millis,
            Series::new(
                format!("POST /v1/sessions with a git source: the corpus repository ({what})"),
                ours,
            ),
            Some(Series::new("git clone --bare --no-local of it", reference)),
        )])
    }
}
