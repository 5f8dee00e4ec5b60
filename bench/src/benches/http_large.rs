//! `http-large`: a large file (2 GiB by default) uploaded with one streamed `PUT` and downloaded
//! with one streamed `GET` through the real server over loopback HTTP, against `cp` of the same
//! file and a streamed read of that copy. Also the server's peak resident memory: the server runs
//! in a child process (this binary, re-executed with [`SERVE_ARG`]) so its RSS is its own, and
//! the claim under test is that it streams, i.e. its RSS does not grow with the file.
//!
//! Every round starts a fresh server on a fresh data directory and removes it afterwards, so disk
//! use stays at about two copies of the file and no chunk can be deduplicated against.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use reqwest::StatusCode;
use reqwest::header::CONTENT_LENGTH;
use sha1::Digest;

use super::{Bench, mb_per_sec, rotation};
use crate::ctx::Ctx;
use crate::fixture::command::{sync, timed};
use crate::fixture::data::write_random_file;
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct HttpLarge;

/// The hidden first argument that turns this binary into the server under test.
pub const SERVE_ARG: &str = "__serve";

/// Each round moves 4 file sizes of data (PUT, GET, cp, read), so at most this many rounds.
const MAX_ROUNDS: usize = 3;
const TARGET_RSS_GROWTH: f64 = 256.0 * 1024.0 * 1024.0;
/// Read size for the request body and for the reference read.
const PIECE: usize = 256 * 1024;
const FILE: &str = "big.bin";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The child: the server library in this process on an ephemeral loopback port. Prints
/// `<addr> <admin token>` as one line on stdout, then serves until the parent kills it.
pub fn serve(args: &[String]) -> Result<()> {
    let [data_dir] = args else {
        bail!("usage: aether-bench {SERVE_ARG} <data-dir>");
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    rt.block_on(async {
        let config = aether_server::config::Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: PathBuf::from(data_dir),
            ..Default::default()
        };
        let bound = aether_server::bind(&config).await?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{} {}", bound.addr, bound.admin_token)?;
            out.flush()?;
        }
        bound.serve(std::future::pending()).await
    })
}

/// Resident memory of a process from `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy)]
struct Mem {
    /// VmHWM: the peak since start, or since the last reset through `clear_refs`.
    peak: u64,
    /// VmRSS: resident now.
    rss: u64,
}

/// The server child; killed and reaped when dropped, so an error anywhere cannot leave it behind.
struct Server {
    child: Child,
    base: String,
    token: String,
}

impl Server {
    fn start(data_dir: &Path) -> Result<Server> {
        let exe = std::env::current_exe().context("finding this executable")?;
        let mut child = Command::new(&exe)
            .arg(SERVE_ARG)
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} {SERVE_ARG}", exe.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut server = Server {
            child,
            base: String::new(),
            token: String::new(),
        };
        // Read the first line on a thread, so a server that never answers cannot hang the run.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let got = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(got);
        });
        let line = match rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(got) => got.context("reading the server's address")?,
            Err(_) => bail!("the server did not report its address within {STARTUP_TIMEOUT:?}"),
        };
        let Some((addr, token)) = line.trim().split_once(' ') else {
            let status = server.child.try_wait().ok().flatten();
            bail!("the server printed {line:?} instead of '<addr> <token>' (exit status {status:?})");
        };
        server.base = format!("http://{addr}");
        server.token = token.to_owned();
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn mem(&self) -> Result<Mem> {
        let path = format!("/proc/{}/status", self.pid());
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib = |key: &str| -> Result<u64> {
            let line = text
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .with_context(|| format!("no {key} in {path}"))?;
            let n = line.trim().trim_end_matches("kB").trim();
            Ok(n.parse::<u64>().with_context(|| format!("bad {key} '{n}' in {path}"))? * 1024)
        };
        Ok(Mem {
            peak: kib("VmHWM:")?,
            rss: kib("VmRSS:")?,
        })
    }

    /// Reset the server's VmHWM to its current RSS (`echo 5 > /proc/<pid>/clear_refs`), so the
    /// peak that follows excludes start-up. False when the kernel or permissions do not allow it.
    fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5").is_ok()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the source file must come back as: its git blob id (what the server reports as `oid`)
/// and its BLAKE3.
struct Expected {
    size: u64,
    blob_sha1: String,
    blake3: blake3::Hash,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    Ok(Expected {
        size,
        blob_sha1: hex(&sha.finalize()),
        blake3: b3.finalize(),
    })
}

/// A response's body as text, for error messages.
async fn fail(what: &str, resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    anyhow::anyhow!("{what}: HTTP {status}: {body}")
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

/// One round of ours: server up, warm-up, PUT, GET, with the server's memory after each.
struct OursRound {
    put: Duration,
    get: Duration,
    base: Mem,
    after_put: Mem,
    after_get: Mem,
}

fn ours(ctx: &Ctx, client: &reqwest::Client, src: &Path, want: &Expected, data_dir: &Path) -> Result<OursRound> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let server = Server::start(data_dir)?;
    let round = ctx.rt.block_on(async {
        let created = client
            .post(server.url("/v1/sessions"))
            .bearer_auth(&server.token)
            .json(&serde_json::json!({}))
            .send()
            .await?;
        if created.status() != StatusCode::CREATED {
            return Err(fail("creating a session", created).await);
        }
        let created: serde_json::Value = created.json().await?;
        let id = created["id"].as_str().context("no id in the new session")?.to_owned();
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

        let reset = server.reset_peak();
        let base = server.mem()?;
        if !reset {
            eprintln!("http-large: could not reset the server's VmHWM; growth is measured from its VmRSS");
        }

        // PUT: the body is streamed from the file on disk in 256 KiB pieces, length announced.
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
            stat["size"].as_u64() == Some(want.size)
                && stat["chunked"] == true
                && stat["oid"].as_str() == Some(want.blob_sha1.as_str()),
            "PUT stored something else: {stat} (want size {}, oid {})",
            want.size,
            want.blob_sha1
        );
        let after_put = server.mem()?;
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
        if resp.status() != StatusCode::OK {
            return Err(fail("verifying GET", resp).await);
        }
        let (got, hash) = drain(resp, true).await?;
        ensure!(
            got == want.size && hash == Some(want.blake3),
            "the downloaded bytes differ from the source ({got} bytes, blake3 {hash:?})"
        );
        let after_verify = server.mem()?;
        eprintln!(
            "http-large: server pid {}: VmRSS {} MiB at baseline; VmHWM {} / VmRSS {} MiB after PUT; \
             VmHWM {} / VmRSS {} MiB after GET; VmHWM {} / VmRSS {} MiB after a second (verifying) GET",
            server.pid(),
            base.rss >> 20,
            after_put.peak >> 20,
            after_put.rss >> 20,
            after_get.peak >> 20,
            after_get.rss >> 20,
            after_verify.peak >> 20,
            after_verify.rss >> 20,
        );
        Ok(OursRound {
            put,
            get,
            base,
            after_put,
            after_get,
        })
    });
    drop(server);
    std::fs::remove_dir_all(data_dir).with_context(|| format!("removing {}", data_dir.display()))?;
    round
}

/// The reference: `cp` of the source, then a plain streamed read of the copy. Returns both times.
fn reference(src: &Path, size: u64, dst: &Path) -> Result<(Duration, Duration)> {
    let cp = timed(Command::new("cp").arg(src).arg(dst))?;
    sync()?;
    let t = Instant::now();
    let mut f = std::fs::File::open(dst).with_context(|| format!("opening {}", dst.display()))?;
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
    ensure!(n == size, "read {n} bytes of the copy, want {size}");
    std::fs::remove_file(dst).context("removing the copy")?;
    Ok((cp, read))
}

impl Bench for HttpLarge {
    fn name(&self) -> &'static str {
        "http-large"
    }

    fn about(&self) -> &'static str {
        "streamed PUT and GET of a large file (2 GiB) through aetherd over loopback, and the server's peak RSS, vs cp and a read"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let dir = ctx.dir("http-large")?;
        let mib = ctx.opts.http_mib;
        let size = mib << 20;
        let src = dir.join("source.bin");
        let t = Instant::now();
        write_random_file(&src, size, 0x4854_5450)?;
        let want = hash_file(&src)?;
        sync()?;
        eprintln!(
            "http-large: wrote and hashed the {mib} MiB source in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .context("building the HTTP client")?;

        let rounds = ctx.opts.rounds.min(MAX_ROUNDS);
        let [mut put, mut get, mut cp, mut read] = std::array::from_fn(|_| Samples::default());
        let [mut grow_put, mut grow_all, mut base, mut kept] = std::array::from_fn(|_| Samples::default());
        let last = |s: &Samples| s.values.last().copied().unwrap_or(f64::NAN);
        for round in 0..rounds {
            for which in rotation(round, 2) {
                if which == 0 {
                    let r = ours(ctx, &client, &src, &want, &dir.join(format!("server-{round}")))?;
                    put.push(mb_per_sec(size, r.put));
                    get.push(mb_per_sec(size, r.get));
                    base.push(r.base.rss as f64);
                    grow_put.push(r.after_put.peak.saturating_sub(r.base.rss) as f64);
                    grow_all.push(r.after_get.peak.saturating_sub(r.base.rss) as f64);
                    kept.push(r.after_get.rss.saturating_sub(r.base.rss) as f64);
                } else {
                    let (c, r) = reference(&src, size, &dir.join("copy.bin"))?;
                    cp.push(mb_per_sec(size, c));
                    read.push(mb_per_sec(size, r));
                }
                sync()?;
            }
            eprintln!(
                "http-large: round {} of {rounds}: PUT {:.0} MB/s, GET {:.0} MB/s, server peak RSS growth {:.1} MiB; \
                 cp {:.0} MB/s, read {:.0} MB/s",
                round + 1,
                last(&put),
                last(&get),
                last(&grow_all) / f64::from(1 << 20),
                last(&cp),
                last(&read),
            );
        }
        std::fs::remove_file(&src).context("removing the source file")?;

        let met = grow_all.max() < TARGET_RSS_GROWTH;
        Ok(vec![
            Row::new(
                "http-large",
                Unit::MegabytesPerSec,
                Series::new(format!("PUT of {mib} MiB over HTTP, streamed, Content-Length set"), put),
                Some(Series::new("cp of the same file", cp)),
            ),
            Row::new(
                "http-large",
                Unit::MegabytesPerSec,
                Series::new(format!("GET of the same {mib} MiB over HTTP, streamed"), get),
                Some(Series::new("read of cp's copy (std::fs, 256 KiB reads)", read)),
            ),
            Row::new(
                "http-large",
                Unit::Bytes,
                Series::new("server RSS at baseline (after a warm-up request)", base),
                None,
            ),
            Row::new(
                "http-large",
                Unit::Bytes,
                Series::new("server peak RSS − baseline, through the PUT", grow_put),
                None,
            ),
            Row::new(
                "http-large",
                Unit::Bytes,
                Series::new("server peak RSS − baseline, through PUT and GET", grow_all),
                None,
            )
            .with_target("< 256 MiB (every round)", met),
            Row::new(
                "http-large",
                Unit::Bytes,
                Series::new("server RSS after the GET − baseline (still resident)", kept),
                None,
            ),
        ])
    }
}
