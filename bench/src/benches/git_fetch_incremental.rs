//! `git-fetch-incremental`: a repository that already has the corpus history fetches one new
//! commit that changes 10 files (a line inserted in the middle of each), from the session and
//! from `git http-backend`. Each round both servers get the same new file contents: written over
//! HTTP and committed (`POST .../commits`) on ours, committed with plumbing in the reference
//! repository. The clients start as copies of the corpus repository (what a clone left), so
//! the fetch negotiates from the same haves on both sides. Wall time of `git fetch` and the
//! bytes each server sent (counted at a TCP proxy); the fetched tree is checked.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, ensure};
use reqwest::StatusCode;

use super::{Bench, last, ms, rotation};
use crate::ctx::{Ctx, remove};
use crate::fixture::command::run;
use crate::git_corpus::{Edit, commit_edits, edits_for};
use crate::git_serving::{GitServing, git_client};
use crate::report::{Row, Series, Unit};
use crate::server::{client, fail};
use crate::stats::Samples;

pub struct GitFetchIncremental;

/// Fetches are short: more rounds than the default, still only seconds in all.
const MIN_ROUNDS: usize = 5;
const TIME_TARGET: f64 = 1.0;
const BYTES_TARGET: f64 = 1.3;
/// The ref a fetch writes in the client.
const FETCHED: &str = "refs/remotes/origin/main";

/// Write `edits` into the session over HTTP and commit them on its branch.
async fn commit_ours(g: &GitServing, edits: &[Edit], message: &str) -> Result<()> {
    let http = client()?;
    let s = &g.aetherd;
    for e in edits {
        let resp = http
            .put(s.url(&format!("/v1/sessions/{}/files/{}", g.session, e.path)))
            .bearer_auth(&s.token)
            .body(e.content.clone())
            .send()
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(fail(&format!("PUT {}", e.path), resp).await);
        }
    }
    let resp = http
        .post(s.url(&format!("/v1/sessions/{}/commits", g.session)))
        .bearer_auth(&s.token)
        .json(&serde_json::json!({
            "message": message,
            "author": {"name": "bench", "email": "bench@localhost"}
        }))
        .send()
        .await?;
    if resp.status() != StatusCode::CREATED {
        return Err(fail("committing", resp).await);
    }
    Ok(())
}

/// `git fetch` of the server's `main` into `client`: wall time and bytes the server sent.
fn fetch(client: &Path, url: &str, bytes: impl Fn() -> u64) -> Result<(f64, f64)> {
    let before = bytes();
    let t = Instant::now();
    run(git_client(client)
        .env("GIT_DIR", client)
        .args(["fetch", "-q", url, &format!("+refs/heads/main:{FETCHED}")]))?;
    let took = t.elapsed();
    Ok((ms(took), (bytes() - before) as f64))
}

impl Bench for GitFetchIncremental {
    fn name(&self) -> &'static str {
        "git-fetch-incremental"
    }

    fn about(&self) -> &'static str {
        "git fetch of a new commit (10 files changed) from a session vs from git http-backend"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let g = ctx.git_serving()?;
        let corpus = ctx.corpus()?;
        let dir = ctx.dir("git-fetch")?;
        let (ours_client, ref_client) = (dir.join("ours.git"), dir.join("reference.git"));
        g.repo.copy(&ours_client)?;
        g.repo.copy(&ref_client)?;
        let rounds = ctx.opts.rounds.max(MIN_ROUNDS);
        let [mut ours_t, mut ours_b, mut ref_t, mut ref_b] = std::array::from_fn(|_| Samples::default());
        for round in 0..rounds {
            // The same change on both servers (untimed).
            let salt = 100 + round as u64;
            let edits = edits_for(&g.reference_repo, &corpus.files, salt)?;
            let message = format!("fetch round {round}");
            let want_tree = commit_edits(&g.reference_repo, &edits, &message, salt as i64)?;
            ctx.rt.block_on(commit_ours(&g, &edits, &message))?;
            for which in rotation(round, 2) {
                let (client, (t, b)) = if which == 0 {
                    let r = fetch(&ours_client, &g.ours_url(), || g.ours.down())?;
                    ours_t.push(r.0);
                    ours_b.push(r.1);
                    (&ours_client, r)
                } else {
                    let r = fetch(&ref_client, &g.reference_url(), || g.reference.down())?;
                    ref_t.push(r.0);
                    ref_b.push(r.1);
                    (&ref_client, r)
                };
                let tree = run(git_client(client)
                    .env("GIT_DIR", client)
                    .args(["rev-parse", &format!("{FETCHED}^{{tree}}")]))?;
                ensure!(
                    tree == want_tree,
                    "round {round}: fetched tree {tree}, want {want_tree} ({} ms, {b} bytes)",
                    t
                );
            }
            eprintln!(
                "git-fetch-incremental: round {} of {rounds}: ours {:.0} ms, {:.1} KB; git http-backend {:.0} ms, {:.1} KB",
                round + 1,
                last(&ours_t),
                last(&ours_b) / 1e3,
                last(&ref_t),
                last(&ref_b) / 1e3,
            );
        }
        remove(&dir)?;
        let time_met = ours_t.median() <= ref_t.median() * TIME_TARGET;
        let bytes_met = ours_b.median() <= ref_b.median() * BYTES_TARGET;
        Ok(vec![
            Row::new(
                "git-fetch-incremental",
                Unit::Millis,
                Series::new(
                    "git fetch of 1 new commit (10 files changed) from the session (written over HTTP, POST commits)",
                    ours_t,
                ),
                Some(Series::new(
                    "git fetch of the same change committed in the repository, from git http-backend",
                    ref_t,
                )),
            )
            .with_target(format!("≤ {TIME_TARGET:.1}x git (median)"), time_met),
            Row::new(
                "git-fetch-incremental",
                Unit::Bytes,
                Series::new("bytes aetherd sent (counted at a TCP proxy)", ours_b),
                Some(Series::new("bytes git http-backend sent (same proxy)", ref_b)),
            )
            .with_target(format!("≤ {BYTES_TARGET:.1}x git (median)"), bytes_met),
        ])
    }
}
