//! `git-clone`: `git clone --no-checkout` (protocol v2, smart HTTP) of the session that holds
//! the imported corpus repository, against the same repository served by `git http-backend`.
//! Both go through a counting TCP proxy, which gives the bytes each server sent (HTTP framing
//! included). The checkout is left out: it is the same local work on both sides. Every clone is
//! checked (`HEAD^{tree}` equals the repository's), and the first of ours is `git fsck`ed. The
//! first clone of the session, which compresses (and keeps) any chunked blob whose pack entry
//! the import did not keep and reads the trees cold, has a row of its own.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, ensure};

use super::{Bench, last, ms, rotation};
use crate::ctx::{Ctx, remove};
use crate::fixture::command::{run, sync};
use crate::git_serving::{git_client, rss_parts};
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct GitClone;

/// Rounds on the full corpus, where a clone takes tens of seconds.
const HEAVY_ROUNDS: usize = 2;
const TIME_TARGET: f64 = 1.0;
const BYTES_TARGET: f64 = 1.3;
const MIB: f64 = 1024.0 * 1024.0;

/// One clone: wall time and bytes the server sent.
fn clone(url: &str, dir: &Path, bytes: impl Fn() -> u64) -> Result<(f64, f64)> {
    let before = bytes();
    let t = Instant::now();
    run(git_client(dir).args(["clone", "-q", "--no-checkout", url, "clone"]))?;
    let took = t.elapsed();
    Ok((ms(took), (bytes() - before) as f64))
}

impl Bench for GitClone {
    fn name(&self) -> &'static str {
        "git-clone"
    }

    fn about(&self) -> &'static str {
        "git clone (v2, smart HTTP) of the corpus repository from a session vs from git http-backend"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let g = ctx.git_serving()?;
        let rounds = ctx.heavy_rounds(HEAVY_ROUNDS);
        let [mut ours_t, mut ours_b, mut ref_t, mut ref_b, mut rss] = std::array::from_fn(|_| Samples::default());
        let want_tree = g.repo.summary.tree.clone();
        // The first clone of a session compresses the chunked blobs whose pack entries the import
        // did not keep, and keeps the streams (as git's repository was gc'd once before): it is
        // timed on its own, not in the rounds.
        let mut first = Samples::default();
        {
            let dir = ctx.dir("git-clone")?;
            sync()?;
            let (t, _) = clone(&g.ours_url(), &dir, || g.ours.down())?;
            first.push(t);
            eprintln!(
                "git-clone: first clone from aetherd (cold; fills its zlib cache if needed): {:.1} s",
                t / 1000.0
            );
            remove(&dir)?;
        }
        for round in 0..rounds {
            for which in rotation(round, 2) {
                let dir = ctx.dir("git-clone")?;
                sync()?;
                if which == 0 {
                    let reset = g.aetherd.reset_peak();
                    let base = g.aetherd.mem()?;
                    let (t, b) = clone(&g.ours_url(), &dir, || g.ours.down())?;
                    let after = g.aetherd.mem()?;
                    let (anon, file) = rss_parts(g.aetherd.pid())?;
                    eprintln!(
                        "git-clone: aetherd after the clone: RSS {:.0} MiB = {:.0} MiB anonymous + {:.0} MiB mapped \
                         files (packs)",
                        after.rss as f64 / MIB,
                        anon as f64 / MIB,
                        file as f64 / MIB
                    );
                    if reset {
                        rss.push(after.peak.saturating_sub(base.rss) as f64);
                    }
                    ours_t.push(t);
                    ours_b.push(b);
                } else {
                    let (t, b) = clone(&g.reference_url(), &dir, || g.reference.down())?;
                    ref_t.push(t);
                    ref_b.push(b);
                }
                let repo = dir.join("clone");
                let tree = run(git_client(&repo).args(["rev-parse", "HEAD^{tree}"]))?;
                ensure!(
                    tree == want_tree,
                    "the clone's tree is {tree}, the repository's {want_tree}"
                );
                if round == 0 && which == 0 {
                    let t = Instant::now();
                    run(git_client(&repo).args(["fsck", "--no-progress", "--no-dangling"]))?;
                    eprintln!(
                        "git-clone: git fsck of ours' clone: clean ({:.1} s)",
                        t.elapsed().as_secs_f64()
                    );
                }
                remove(&dir)?;
            }
            eprintln!(
                "git-clone: round {} of {rounds}: ours {:.1} s, {:.1} MB; git http-backend {:.1} s, {:.1} MB",
                round + 1,
                last(&ours_t) / 1000.0,
                last(&ours_b) / 1e6,
                last(&ref_t) / 1000.0,
                last(&ref_b) / 1e6,
            );
        }
        let time_met = ours_t.median() <= ref_t.median() * TIME_TARGET;
        let bytes_met = ours_b.median() <= ref_b.median() * BYTES_TARGET;
        let ours_label =
            "git clone --no-checkout from aetherd: session imported (POST /v1/sessions) from the corpus repository";
        let ref_label = "git clone --no-checkout of the corpus repository (gc'd, bitmap) from git http-backend";
        let mut rows = vec![
            Row::new(
                "git-clone",
                Unit::Millis,
                Series::new(ours_label, ours_t),
                Some(Series::new(ref_label, ref_t)),
            )
            .with_target(format!("≤ {TIME_TARGET:.1}x git (median)"), time_met),
            Row::new(
                "git-clone",
                Unit::Bytes,
                Series::new("bytes aetherd sent (counted at a TCP proxy)", ours_b),
                Some(Series::new("bytes git http-backend sent (same proxy)", ref_b)),
            )
            .with_target(format!("≤ {BYTES_TARGET:.1}x git (median)"), bytes_met),
        ];
        rows.push(Row::new(
            "git-clone",
            Unit::Millis,
            Series::new(
                "first clone from aetherd after the import (cold; compresses chunked blobs without a kept entry)",
                first,
            ),
            None,
        ));
        if rss.len() > 0 {
            rows.push(Row::new(
                "git-clone",
                Unit::Bytes,
                Series::new(
                    "aetherd peak RSS − RSS before the clone (mapped pack pages included)",
                    rss,
                ),
                None,
            ));
        }
        Ok(rows)
    }
}
