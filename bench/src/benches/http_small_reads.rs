//! `http-small-reads`: requests per second for GETs of 4 KiB files with 64 concurrent keep-alive
//! connections, against aetherd (a child process serving a session that holds the files) and
//! against the same files served from the local filesystem by Debian's `nginx` when it is
//! installed (`crate::nginx`), else by a tiny static file server (a child process of this
//! binary); the row names which one ran. The load generator runs in this process, so it shares the machine's cores with
//! the server under test: the numbers compare the two servers, not their absolute ceilings.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::StatusCode;

use super::{Bench, last, rotation};
use crate::ctx::Ctx;
use crate::fixture::data::XorShift;
use crate::load::{self, Target};
use crate::report::{Row, Series, Unit};
use crate::server::{Server, create_session, fail};
use crate::stats::Samples;

pub struct HttpSmallReads;

const FILES: usize = 1000;
const SIZE: usize = 4096;
const CONNECTIONS: usize = 64;
const WARM_UP: Duration = Duration::from_secs(1);

fn name(i: usize) -> String {
    format!("f{i:04}.bin")
}

impl Bench for HttpSmallReads {
    fn name(&self) -> &'static str {
        "http-small-reads"
    }

    fn about(&self) -> &'static str {
        "4 KiB file GETs with 64 keep-alive connections: requests/s of aetherd vs a static file server"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let root = ctx.dir("http-small-reads/files")?;
        let mut rng = XorShift::new(0x5EAD);
        let mut contents = Vec::with_capacity(FILES);
        for i in 0..FILES {
            let mut data = vec![0u8; SIZE];
            rng.fill(&mut data);
            std::fs::write(root.join(name(i)), &data).context("writing a small file")?;
            contents.push(data);
        }
        let aetherd = Server::aetherd(&ctx.dir("http-small-reads/aetherd")?)?;
        // The reference: Debian's nginx when installed, else the harness's own static server.
        let (reference, reference_label) = match crate::nginx::binary() {
            Some(bin) => (
                crate::nginx::start(&bin, &root, &ctx.dir("http-small-reads/nginx")?)?,
                format!(
                    "Debian {} ({} workers, sendfile, no access log), same files on the local filesystem",
                    crate::nginx::version(&bin),
                    std::thread::available_parallelism().map_or(2, |n| n.get())
                ),
            ),
            None => (
                Server::static_files(&root)?,
                "static file server in the harness (axum + tokio::fs::read); nginx not installed".to_owned(),
            ),
        };
        eprintln!("http-small-reads: reference: {reference_label}");
        let client = crate::server::client()?;
        let session = ctx.rt.block_on(async {
            let id = create_session(&client, &aetherd).await?;
            for (i, data) in contents.into_iter().enumerate() {
                let resp = client
                    .put(aetherd.url(&format!("/v1/sessions/{id}/files/{}", name(i))))
                    .bearer_auth(&aetherd.token)
                    .body(data)
                    .send()
                    .await?;
                if resp.status() != StatusCode::OK {
                    return Err(fail("PUT of a small file", resp).await);
                }
            }
            anyhow::Ok(id)
        })?;
        let ours = Arc::new(Target {
            urls: (0..FILES)
                .map(|i| aetherd.url(&format!("/v1/sessions/{session}/files/{}", name(i))))
                .collect(),
            token: Some(aetherd.token.clone()),
            body_len: SIZE,
        });
        let theirs = Arc::new(Target {
            urls: (0..FILES).map(|i| reference.url(&format!("/{}", name(i)))).collect(),
            token: None,
            body_len: SIZE,
        });
        let secs = Duration::from_secs(ctx.opts.http_secs);
        let [mut ours_rps, mut ref_rps] = std::array::from_fn(|_| Samples::default());
        let rounds = ctx.opts.rounds;
        for round in 0..rounds {
            for which in rotation(round, 2) {
                let (target, out) = if which == 0 {
                    (&ours, &mut ours_rps)
                } else {
                    (&theirs, &mut ref_rps)
                };
                ctx.rt.block_on(async {
                    load::run(target.clone(), CONNECTIONS, WARM_UP).await?;
                    let o = load::run(target.clone(), CONNECTIONS, secs).await?;
                    out.push(o.per_sec());
                    anyhow::Ok(())
                })?;
            }
            eprintln!(
                "http-small-reads: round {} of {rounds}: aetherd {:.0} req/s, reference {:.0} req/s",
                round + 1,
                last(&ours_rps),
                last(&ref_rps)
            );
        }
        drop((aetherd, reference));
        Ok(vec![Row::new(
            "http-small-reads",
            Unit::PerSec,
            Series::new(
                format!("aetherd: GET of {SIZE}-byte session files, {CONNECTIONS} connections, {secs:?} a sample"),
                ours_rps,
            ),
            Some(Series::new(reference_label, ref_rps)),
        )])
    }
}
