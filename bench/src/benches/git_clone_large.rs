//! `git-clone-large`: a session holding one 2 GiB file (chunked in the chunk store) cloned with
//! `git clone --no-checkout` over smart HTTP, while aetherd's memory is watched: the file is
//! streamed from the chunk store through zlib into the pack, so the server's peak RSS must grow
//! by less than 256 MiB over its RSS before the clone. The clone's blob id must equal the
//! file's. A fresh aetherd and data directory each round.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use reqwest::header::CONTENT_LENGTH;

use super::{Bench, last, mb_per_sec, ms};
use crate::ctx::{Ctx, remove};
use crate::fixture::command::{run, sync};
use crate::fixture::data::write_random_file;
use crate::git_serving::{git_client, rss_parts};
use crate::report::{Row, Series, Unit};
use crate::server::{Server, client, create_session, fail};
use crate::stats::Samples;

pub struct GitCloneLarge;

const SIZE: u64 = 2 << 30;
const ROUNDS: usize = 1;
const TARGET_RSS_GROWTH: f64 = 256.0 * 1024.0 * 1024.0;
const FILE: &str = "big.bin";

struct Round {
    clone_ms: f64,
    growth: u64,
}

fn round(ctx: &Ctx, src: &Path, dir: &Path) -> Result<Round> {
    let data_dir = dir.join("aetherd");
    let server = Server::aetherd(&data_dir)?;
    let http = client()?;
    let (id, oid) = ctx.rt.block_on(async {
        let id = create_session(&http, &server).await?;
        let file = tokio::fs::File::open(src)
            .await
            .with_context(|| format!("opening {}", src.display()))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10));
        let resp = http
            .put(server.url(&format!("/v1/sessions/{id}/files/{FILE}")))
            .bearer_auth(&server.token)
            .header(CONTENT_LENGTH, SIZE)
            .body(body)
            .send()
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(fail("PUT", resp).await);
        }
        let stat: serde_json::Value = resp.json().await?;
        let oid = stat["oid"].as_str().context("no oid in the PUT's answer")?.to_owned();
        let resp = http
            .post(server.url(&format!("/v1/sessions/{id}/commits")))
            .bearer_auth(&server.token)
            .json(&serde_json::json!({"message": "large", "author": {"name": "bench", "email": "bench@localhost"}}))
            .send()
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(fail("committing", resp).await);
        }
        anyhow::Ok((id, oid))
    })?;
    sync()?;
    let url = format!(
        "{}/git/{id}",
        server.base.replace("http://", &format!("http://git:{}@", server.token))
    );
    if !server.reset_peak() {
        eprintln!("git-clone-large: could not reset aetherd's VmHWM; growth is measured from its start");
    }
    let base = server.mem()?;
    let t = Instant::now();
    run(git_client(dir).args(["clone", "-q", "--no-checkout", &url, "clone"]))?;
    let clone_ms = ms(t.elapsed());
    let after = server.mem()?;
    let (anon, file) = rss_parts(server.pid())?;
    eprintln!(
        "git-clone-large: aetherd after the clone: RSS {} MiB = {} MiB anonymous + {} MiB mapped files",
        after.rss >> 20,
        anon >> 20,
        file >> 20
    );
    let repo = dir.join("clone");
    let got = run(git_client(&repo).args(["rev-parse", &format!("HEAD:{FILE}")]))?;
    ensure!(got == oid, "the clone's {FILE} is blob {got}, the session's {oid}");
    let size = run(git_client(&repo).args(["cat-file", "-s", &got]))?;
    ensure!(
        size == SIZE.to_string(),
        "the clone's {FILE} has {size} bytes, want {SIZE}"
    );
    drop(server);
    remove(&data_dir)?;
    remove(&repo)?;
    Ok(Round {
        clone_ms,
        growth: after.peak.saturating_sub(base.rss),
    })
}

impl Bench for GitCloneLarge {
    fn name(&self) -> &'static str {
        "git-clone-large"
    }

    fn about(&self) -> &'static str {
        "git clone of a session holding a 2 GiB chunked file: aetherd's RSS growth while it streams"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let dir = ctx.dir("git-clone-large")?;
        let src = dir.join("source.bin");
        write_random_file(&src, SIZE, 0x6769_7420)?;
        let [mut growth, mut speed, mut times] = std::array::from_fn(|_| Samples::default());
        for n in 0..ROUNDS {
            let r = round(ctx, &src, &dir)?;
            growth.push(r.growth as f64);
            times.push(r.clone_ms);
            speed.push(mb_per_sec(
                SIZE,
                std::time::Duration::from_secs_f64(r.clone_ms / 1000.0),
            ));
            eprintln!(
                "git-clone-large: round {} of {ROUNDS}: clone {:.1} s, aetherd peak RSS growth {:.1} MiB",
                n + 1,
                last(&times) / 1000.0,
                last(&growth) / f64::from(1 << 20)
            );
        }
        remove(&dir)?;
        let met = growth.max() < TARGET_RSS_GROWTH;
        Ok(vec![
            Row::new(
                "git-clone-large",
                Unit::Bytes,
                Series::new(
                    "aetherd peak RSS − RSS before, git clone of a 2 GiB chunked file",
                    growth,
                ),
                None,
            )
            .with_target("< 256 MiB (every round)", met),
            Row::new(
                "git-clone-large",
                Unit::MegabytesPerSec,
                Series::new("git clone --no-checkout of it, file bytes per second", speed),
                None,
            ),
        ])
    }
}
