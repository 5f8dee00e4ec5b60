//! `packing` (issue 25): the object database after a million small writes. A scratch session on
//! the git-serving aetherd (which holds the imported corpus repository) gets 1,000,000 small
//! files by `PUT` (32 in flight; 20,000 on the small corpus), each a new loose object, while the
//! server packs in the background as configured by default (a check every 60 s, packing from
//! 16,384 loose objects). Before and after the writes, in the same run: a recursive listing of
//! the corpus session (every entry with its size: the server's "status") and a `git clone
//! --no-checkout` of it, with a clone of the same repository from `git http-backend` as the
//! reference. The rows give the after/before ratio of the listing, ours/git for the clones, and
//! the loose objects and packs the database holds at the end.

use std::time::Instant;

use anyhow::{Result, ensure};
use futures_util::StreamExt;

use super::{Bench, ms};
use crate::ctx::{Ctx, remove};
use crate::fixture::command::{run, sync};
use crate::git_serving::{GitServing, git_client};
use crate::report::{Row, Series, Unit};
use crate::server::{client, create_session, fail};
use crate::stats::Samples;

pub struct Packing;

const WRITES_LINUX: usize = 1_000_000;
const WRITES_SMALL: usize = 20_000;
const IN_FLIGHT: usize = 32;

/// A recursive listing of the corpus session: its time and the entries it named.
fn listing(g: &GitServing, rt: &tokio::runtime::Runtime) -> Result<(f64, usize)> {
    rt.block_on(async {
        let t = Instant::now();
        let resp = client()?
            .get(
                g.aetherd
                    .url(&format!("/v1/sessions/{}/tree?recursive=true", g.session)),
            )
            .bearer_auth(&g.aetherd.token)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(fail("listing the corpus session", resp).await);
        }
        let body = resp.bytes().await?;
        let took = ms(t.elapsed());
        let listed: serde_json::Value = serde_json::from_slice(&body)?;
        let entries = listed["entries"].as_array().map_or(0, Vec::len);
        Ok((took, entries))
    })
}

/// One `git clone --no-checkout` of `url`, checked against the corpus tree; its time.
fn clone(ctx: &Ctx, g: &GitServing, url: &str) -> Result<f64> {
    let dir = ctx.dir("packing-clone")?;
    sync()?;
    let t = Instant::now();
    run(git_client(&dir).args(["clone", "-q", "--no-checkout", url, "clone"]))?;
    let took = ms(t.elapsed());
    let tree = run(git_client(&dir.join("clone")).args(["rev-parse", "HEAD^{tree}"]))?;
    ensure!(tree == g.repo.summary.tree, "the clone's tree is {tree}");
    remove(&dir)?;
    Ok(took)
}

/// Loose object files and packs in the server's object database.
fn object_files(data: &std::path::Path) -> Result<(usize, usize)> {
    let objects = data.join("objects.git/objects");
    let mut loose = 0;
    for fan in std::fs::read_dir(&objects)?.flatten() {
        if fan.file_name().len() == 2 {
            loose += std::fs::read_dir(fan.path())?.count();
        }
    }
    let packs = std::fs::read_dir(objects.join("pack"))
        .map(|d| {
            d.flatten()
                .filter(|f| f.path().extension().is_some_and(|e| e == "idx"))
                .count()
        })
        .unwrap_or(0);
    Ok((loose, packs))
}

impl Bench for Packing {
    fn name(&self) -> &'static str {
        "packing"
    }

    fn about(&self) -> &'static str {
        "listing and git clone of the corpus session before and after 1M small writes (background packing on)"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let g = ctx.git_serving()?;
        let writes = match ctx.opts.corpus {
            crate::corpus::CorpusKind::Linux => WRITES_LINUX,
            crate::corpus::CorpusKind::Small => WRITES_SMALL,
        };
        let [
            mut list_before,
            mut list_after,
            mut ours_before,
            mut ours_after,
            mut git,
        ] = std::array::from_fn(|_| Samples::default());
        let (t, entries) = listing(&g, &ctx.rt)?;
        list_before.push(t);
        // One warm-up clone (the first compresses what the import kept no entry for).
        clone(ctx, &g, &g.ours_url())?;
        ours_before.push(clone(ctx, &g, &g.ours_url())?);
        git.push(clone(ctx, &g, &g.reference_url())?);
        list_before.push(listing(&g, &ctx.rt)?.0);

        let scratch = ctx.rt.block_on(create_session(&client()?, &g.aetherd))?;
        let t = Instant::now();
        ctx.rt.block_on(async {
            let http = client()?;
            let puts = futures_util::stream::iter(0..writes)
                .map(|i| {
                    let (http, g) = (http.clone(), g.clone());
                    let url = g
                        .aetherd
                        .url(&format!("/v1/sessions/{scratch}/files/w{}/f{}.txt", i / 1000, i % 1000));
                    async move {
                        let resp = http
                            .put(url)
                            .bearer_auth(&g.aetherd.token)
                            .body(format!("small write {i}\n"))
                            .send()
                            .await?;
                        if !resp.status().is_success() {
                            return Err(fail("a small write", resp).await);
                        }
                        Ok::<_, anyhow::Error>(())
                    }
                })
                .buffer_unordered(IN_FLIGHT);
            futures_util::pin_mut!(puts);
            let mut done = 0usize;
            while let Some(r) = puts.next().await {
                r?;
                done += 1;
                if done.is_multiple_of(100_000) {
                    eprintln!("packing: {done} writes in {:.0} s", t.elapsed().as_secs_f64());
                }
            }
            Ok::<_, anyhow::Error>(())
        })?;
        let write_time = t.elapsed();
        let (loose, packs) = object_files(&g.aetherd.dir)?;
        eprintln!(
            "packing: {writes} writes in {:.1} s ({:.0}/s); the database holds {loose} loose objects and {packs} packs",
            write_time.as_secs_f64(),
            writes as f64 / write_time.as_secs_f64()
        );

        for _ in 0..2 {
            let (t, n) = listing(&g, &ctx.rt)?;
            ensure!(n == entries, "the listing named {n} entries, before {entries}");
            list_after.push(t);
        }
        ours_after.push(clone(ctx, &g, &g.ours_url())?);
        git.push(clone(ctx, &g, &g.reference_url())?);
        ours_after.push(clone(ctx, &g, &g.ours_url())?);
        eprintln!(
            "packing: listing {:.0} -> {:.0} ms; clone {:.1} -> {:.1} s (git {:.1} s)",
            list_before.median(),
            list_after.median(),
            ours_before.median() / 1000.0,
            ours_after.median() / 1000.0,
            git.median() / 1000.0
        );
        let mut loose_s = Samples::default();
        loose_s.push(loose as f64);
        let mut packs_s = Samples::default();
        packs_s.push(packs as f64);
        let mut rate = Samples::default();
        rate.push(writes as f64 / write_time.as_secs_f64());
        Ok(vec![
            Row::new(
                "packing",
                Unit::Millis,
                Series::new(
                    format!("recursive listing of the {entries}-entry corpus session after {writes} small writes"),
                    list_after,
                ),
                Some(Series::new("the same listing before the writes", list_before)),
            ),
            Row::new(
                "packing",
                Unit::Millis,
                Series::new(
                    format!("git clone --no-checkout of the corpus session after {writes} small writes"),
                    ours_after,
                ),
                Some(Series::new(
                    "git clone --no-checkout of the corpus repository from git http-backend",
                    git.clone(),
                )),
            ),
            Row::new(
                "packing",
                Unit::Millis,
                Series::new("the same clone before the writes", ours_before),
                Some(Series::new(
                    "git clone --no-checkout of the corpus repository from git http-backend",
                    git,
                )),
            ),
            Row::new(
                "packing",
                Unit::PerSec,
                Series::new(format!("{writes} small PUTs, {IN_FLIGHT} in flight"), rate),
                None,
            ),
            Row::new(
                "packing",
                Unit::Count,
                Series::new(format!("loose objects left after {writes} writes"), loose_s),
                None,
            ),
            Row::new(
                "packing",
                Unit::Count,
                Series::new(format!("packs after {writes} writes"), packs_s),
                None,
            ),
        ])
    }
}
