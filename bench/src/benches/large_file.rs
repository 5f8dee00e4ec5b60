//! `large-file`: one large file (1 GiB by default) through the real server over loopback HTTP:
//! a streamed `PUT`, a streamed `GET`, then a 1-byte `PATCH` in the middle. Reported: MB/s of
//! each transfer against `cp` and a read of the copy on the native filesystem, `git add` of the
//! same file, the new bytes the edit stored against what `git add` of the edited file stores,
//! and the server's peak RSS growth (it streams: its memory must not follow the file's size).
//!
//! Every round starts a fresh server (a child process) on a fresh data directory and removes it
//! afterwards, so no chunk can be deduplicated against an earlier round.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, RANGE};
use sha1::Digest;

use super::{Bench, last, mb_per_sec, ms, rotation};
use crate::ctx::Ctx;
use crate::fixture::command::{git, run, sync, timed};
use crate::fixture::data::{dir_size, write_random_file};
use crate::report::{Row, Series, Unit};
use crate::server::{Mem, Server, create_session, fail};
use crate::stats::Samples;

pub struct LargeFile;

/// Each round moves several file sizes of data; at most this many rounds.
const MAX_ROUNDS: usize = 3;
/// `git add` of 1 GiB of incompressible bytes takes about 35 s: one round of it.
const GIT_ROUNDS: usize = 1;
const TARGET_MBPS: f64 = 400.0;
const TARGET_RSS_GROWTH: f64 = 256.0 * 1024.0 * 1024.0;
const TARGET_EDIT_BYTES: f64 = 512.0 * 1024.0;
const PIECE: usize = 256 * 1024;
const FILE: &str = "big.bin";

/// What the source must come back as: its git blob id (the server's `oid`) and its BLAKE3.
struct Expected {
    size: u64,
    blob_sha1: String,
    blake3: blake3::Hash,
    /// The byte in the middle that the edit flips.
    middle: u8,
}

fn hash_file(path: &Path) -> Result<Expected> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = f.metadata().context("reading the source's size")?.len();
    let mut sha = sha1::Sha1::new();
    sha.update(format!("blob {size}\0").as_bytes());
    let mut b3 = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).context("reading the source")?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        b3.update(&buf[..n]);
    }
    let mut middle = [0u8; 1];
    f.read_exact_at(&mut middle, size / 2)
        .context("reading the middle byte")?;
    Ok(Expected {
        size,
        blob_sha1: sha.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        blake3: b3.finalize(),
        middle: middle[0],
    })
}

/// Read a response body to the end without keeping it; returns its length and, when asked, BLAKE3.
async fn drain(mut resp: reqwest::Response, hash: bool) -> Result<(u64, Option<blake3::Hash>)> {
    let mut n = 0u64;
    let mut h = hash.then(blake3::Hasher::new);
    while let Some(piece) = resp.chunk().await.context("reading the response body")? {
        n += piece.len() as u64;
        if let Some(h) = &mut h {
            h.update(&piece);
        }
    }
    Ok((n, h.map(|h| h.finalize())))
}

struct OursRound {
    put: Duration,
    get: Duration,
    edit: Duration,
    edit_chunk_bytes: u64,
    edit_disk_bytes: u64,
    base: Mem,
    after_get: Mem,
}

fn ours(ctx: &Ctx, src: &Path, want: &Expected, data_dir: &Path) -> Result<OursRound> {
    let server = Server::aetherd(data_dir)?;
    let client = crate::server::client()?;
    let packs = data_dir.join("chunks").join("packs");
    let round = ctx.rt.block_on(async {
        let id = create_session(&client, &server).await?;
        let file_url = |name: &str| server.url(&format!("/v1/sessions/{id}/files/{name}"));

        // Warm-up: one tiny file in and out, so the baseline has the request path loaded.
        let warm = client
            .put(file_url("warm.txt"))
            .bearer_auth(&server.token)
            .body(vec![b'w'; 4096])
            .send()
            .await?;
        if warm.status() != StatusCode::OK {
            return Err(fail("warm-up PUT", warm).await);
        }
        let warm = client
            .get(file_url("warm.txt"))
            .bearer_auth(&server.token)
            .send()
            .await?;
        ensure!(
            drain(warm, false).await?.0 == 4096,
            "warm-up GET returned the wrong length"
        );
        if !server.reset_peak() {
            eprintln!("large-file: could not reset the server's VmHWM; growth is measured from its VmRSS");
        }
        let base = server.mem()?;

        // PUT: streamed from the file on disk in 256 KiB pieces, length announced.
        let file = tokio::fs::File::open(src)
            .await
            .with_context(|| format!("opening {}", src.display()))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, PIECE));
        let t = Instant::now();
        let resp = client
            .put(file_url(FILE))
            .bearer_auth(&server.token)
            .header(CONTENT_LENGTH, want.size)
            .body(body)
            .send()
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(fail("PUT", resp).await);
        }
        let stat: serde_json::Value = resp.json().await?;
        let put = t.elapsed();
        ensure!(
            stat["size"].as_u64() == Some(want.size) && stat["oid"].as_str() == Some(want.blob_sha1.as_str()),
            "PUT stored something else: {stat} (want size {}, oid {})",
            want.size,
            want.blob_sha1
        );
        sync()?;

        // GET: streamed to nowhere, bytes counted.
        let t = Instant::now();
        let resp = client.get(file_url(FILE)).bearer_auth(&server.token).send().await?;
        if resp.status() != StatusCode::OK {
            return Err(fail("GET", resp).await);
        }
        let (got, _) = drain(resp, false).await?;
        let get = t.elapsed();
        ensure!(got == want.size, "GET returned {got} bytes, want {}", want.size);
        let after_get = server.mem()?;

        // Content check, untimed: a second GET hashed with BLAKE3 against the source.
        let resp = client.get(file_url(FILE)).bearer_auth(&server.token).send().await?;
        let (got, hash) = drain(resp, true).await?;
        ensure!(
            got == want.size && hash == Some(want.blake3),
            "the downloaded bytes differ from the source ({got} bytes, blake3 {hash:?})"
        );

        // The edit: one byte flipped in the middle.
        sync()?;
        let (disk0, packs0) = (dir_size(data_dir)?, dir_size(&packs)?);
        let mid = want.size / 2;
        let t = Instant::now();
        let resp = client
            .patch(format!("{}?offset={mid}", file_url(FILE)))
            .bearer_auth(&server.token)
            .body(vec![want.middle ^ 0xff])
            .send()
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(fail("PATCH", resp).await);
        }
        drain(resp, false).await?;
        let edit = t.elapsed();
        let (disk1, packs1) = (dir_size(data_dir)?, dir_size(&packs)?);
        let resp = client
            .get(file_url(FILE))
            .bearer_auth(&server.token)
            .header(RANGE, format!("bytes={mid}-{mid}"))
            .send()
            .await?;
        let byte = resp.bytes().await?;
        ensure!(
            byte.as_ref() == [want.middle ^ 0xff],
            "the edit did not change the byte at {mid}"
        );
        Ok(OursRound {
            put,
            get,
            edit,
            edit_chunk_bytes: packs1.saturating_sub(packs0),
            edit_disk_bytes: disk1.saturating_sub(disk0),
            base,
            after_get,
        })
    });
    eprintln!("large-file: server pid {} finished its round", server.pid());
    drop(server);
    ctx.discard(data_dir)?;
    round
}

struct RefRound {
    cp: Duration,
    read: Duration,
    /// `git add` of the file, then of the edited file, and the bytes the second one stored.
    git: Option<(Duration, Duration, u64)>,
}

/// `cp` of the source into a fresh git work tree, a streamed read of the copy, and in the first
/// round `git add` of it, a 1-byte edit in the middle and `git add` again.
fn reference(ctx: &Ctx, src: &Path, want: &Expected, repo: &Path, with_git: bool) -> Result<RefRound> {
    std::fs::create_dir_all(repo).with_context(|| format!("creating {}", repo.display()))?;
    let dst = repo.join(FILE);
    let cp = timed(Command::new("cp").arg(src).arg(&dst))?;
    sync()?;
    let t = Instant::now();
    let mut f = std::fs::File::open(&dst).with_context(|| format!("opening {}", dst.display()))?;
    let mut buf = vec![0u8; PIECE];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).context("reading the copy")?;
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    let read = t.elapsed();
    ensure!(n == want.size, "read {n} bytes of the copy, want {}", want.size);
    let mut git_times = None;
    if with_git {
        run(git(repo).args(["init", "-q"]))?;
        let objects = repo.join(".git").join("objects");
        sync()?;
        let add = timed(git(repo).args(["add", FILE]))?;
        run(git(repo).args(["commit", "-q", "-m", "base"]))?;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&dst)
            .context("opening the copy")?;
        f.write_all_at(&[want.middle ^ 0xff], want.size / 2)
            .context("changing the byte")?;
        drop(f);
        sync()?;
        let before = dir_size(&objects)?;
        let add_edit = timed(git(repo).args(["add", FILE]))?;
        let stored = dir_size(&objects)?.saturating_sub(before);
        git_times = Some((add, add_edit, stored));
    }
    ctx.discard(repo)?;
    Ok(RefRound {
        cp,
        read,
        git: git_times,
    })
}

impl Bench for LargeFile {
    fn name(&self) -> &'static str {
        "large-file"
    }

    fn about(&self) -> &'static str {
        "streamed PUT and GET of a 1 GiB file through aetherd, 1-byte PATCH in the middle, vs cp and git add"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let dir = ctx.dir("large-file")?;
        let mib = ctx.opts.large_mib;
        let size = mib << 20;
        let src = dir.join("source.bin");
        let t = Instant::now();
        write_random_file(&src, size, 0x4854_5450)?;
        let want = hash_file(&src)?;
        sync()?;
        eprintln!(
            "large-file: wrote and hashed the {mib} MiB source in {:.1} s",
            t.elapsed().as_secs_f64()
        );

        let rounds = ctx.opts.rounds.min(MAX_ROUNDS);
        let [mut put, mut get, mut edit, mut chunk, mut disk, mut grow] = std::array::from_fn(|_| Samples::default());
        let [mut cp, mut read, mut git_add, mut git_edit, mut git_bytes] = std::array::from_fn(|_| Samples::default());
        for round in 0..rounds {
            for which in rotation(round, 2) {
                if which == 0 {
                    let r = ours(ctx, &src, &want, &dir.join(format!("server-{round}")))?;
                    put.push(mb_per_sec(size, r.put));
                    get.push(mb_per_sec(size, r.get));
                    edit.push(ms(r.edit));
                    chunk.push(r.edit_chunk_bytes as f64);
                    disk.push(r.edit_disk_bytes as f64);
                    grow.push(r.after_get.peak.saturating_sub(r.base.rss) as f64);
                } else {
                    let r = reference(ctx, &src, &want, &dir.join(format!("git-{round}")), round < GIT_ROUNDS)?;
                    cp.push(mb_per_sec(size, r.cp));
                    read.push(mb_per_sec(size, r.read));
                    if let Some((add, add_edit, stored)) = r.git {
                        git_add.push(mb_per_sec(size, add));
                        git_edit.push(ms(add_edit));
                        git_bytes.push(stored as f64);
                    }
                }
                sync()?;
            }
            eprintln!(
                "large-file: round {} of {rounds}: PUT {:.0} MB/s, GET {:.0} MB/s, edit stored {:.1} KiB, \
                 server peak RSS growth {:.1} MiB; cp {:.0} MB/s, read {:.0} MB/s",
                round + 1,
                last(&put),
                last(&get),
                last(&chunk) / 1024.0,
                last(&grow) / f64::from(1 << 20),
                last(&cp),
                last(&read),
            );
        }
        ctx.discard(&dir)?;

        let put_met = put.median() >= TARGET_MBPS;
        let edit_met = chunk.max() < TARGET_EDIT_BYTES;
        let rss_met = grow.max() < TARGET_RSS_GROWTH;
        let put_series = Series::new(format!("PUT of {mib} MiB over HTTP, streamed"), put);
        let git_stored = Series::new("git add of the edited file: new bytes in .git/objects", git_bytes);
        Ok(vec![
            Row::new(
                "large-file",
                Unit::MegabytesPerSec,
                put_series.clone(),
                Some(Series::new("cp of the same file", cp)),
            )
            .with_target(format!("p50 ≥ {TARGET_MBPS} MB/s (ingest)"), put_met),
            Row::new(
                "large-file",
                Unit::MegabytesPerSec,
                put_series,
                Some(Series::new("git add of the same file", git_add)),
            ),
            Row::new(
                "large-file",
                Unit::MegabytesPerSec,
                Series::new(format!("GET of the same {mib} MiB over HTTP, streamed"), get),
                Some(Series::new("read of cp's copy (256 KiB reads)", read)),
            ),
            Row::new(
                "large-file",
                Unit::Bytes,
                Series::new("1-byte PATCH in the middle: new chunk bytes", chunk),
                Some(git_stored.clone()),
            )
            .with_target("< 512 KiB (every round)", edit_met),
            Row::new(
                "large-file",
                Unit::Bytes,
                Series::new("1-byte PATCH: new bytes in the whole data dir", disk),
                Some(git_stored),
            ),
            Row::new(
                "large-file",
                Unit::Millis,
                Series::new("1-byte PATCH in the middle: time", edit),
                Some(Series::new("git add of the edited file: time", git_edit)),
            ),
            Row::new(
                "large-file",
                Unit::Bytes,
                Series::new("server peak RSS − baseline, through PUT and GET", grow),
                None,
            )
            .with_target("< 256 MiB (every round)", rss_met),
        ])
    }
}
