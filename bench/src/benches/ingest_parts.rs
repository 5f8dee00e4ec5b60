//! `ingest-parts`: where the time of `ingest` goes. Each stage of the engine's write path
//! (read the source, SHA-1 for the git blob id, content-defined chunking, BLAKE3 per chunk) is
//! timed alone over the same bytes, then the core pipeline without tokio (`Objects::ingest` on a
//! `std::fs::File`). The stages run one after the other on one thread in the engine, so their
//! times add up; this shows which one to speed up or move to another core.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use aether_core::{ChunkingConfig, Engine, EngineConfig};
use anyhow::{Context, Result, ensure};
use sha1::Digest;

use super::{Bench, mb_per_sec};
use crate::ctx::Ctx;
use crate::fixture::command::sync;
use crate::fixture::data::write_random_file;
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct IngestParts;

/// Run `f` on a reader of `src` the way `write_file` reads: a tokio file behind a
/// `SyncIoBridge`, on a blocking thread.
fn bridged<T: Send + 'static>(
    ctx: &Ctx,
    src: &Path,
    f: impl FnOnce(tokio_util::io::SyncIoBridge<tokio::fs::File>) -> Result<T> + Send + 'static,
) -> Result<T> {
    let file = ctx
        .rt
        .block_on(tokio::fs::File::open(src))
        .context("opening the source")?;
    let handle = ctx.rt.handle().clone();
    let join = ctx.rt.spawn_blocking(move || {
        let _enter = handle.enter();
        f(tokio_util::io::SyncIoBridge::new(file))
    });
    ctx.rt.block_on(join).context("joining the reader")?
}

/// Chunk boundaries (offset, length) of everything `r` yields.
fn chunk(r: impl Read, c: ChunkingConfig) -> Result<Vec<(usize, usize)>> {
    let cdc = fastcdc::v2020::StreamCDC::new(r, c.min as usize, c.avg as usize, c.max as usize);
    let mut found = Vec::new();
    for chunk in cdc {
        let chunk = chunk.context("chunking")?;
        found.push((chunk.offset as usize, chunk.length));
    }
    Ok(found)
}

fn drain(mut r: impl Read, buf_len: usize) -> Result<u64> {
    let mut buf = vec![0u8; buf_len];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).context("reading the source")?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

fn time<T>(f: impl FnOnce() -> Result<T>) -> Result<(Duration, T)> {
    let t = Instant::now();
    let out = f()?;
    Ok((t.elapsed(), out))
}

impl Bench for IngestParts {
    fn name(&self) -> &'static str {
        "ingest-parts"
    }

    fn about(&self) -> &'static str {
        "diagnostic: each stage of ingest alone (read, SHA-1, chunking, BLAKE3, core without tokio)"
    }

    fn default_set(&self) -> bool {
        false
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let dir = ctx.dir("ingest-parts")?;
        let size = ctx.opts.large_mib << 20;
        let src = dir.join("source.bin");
        write_random_file(&src, size, 0x1465_7573)?;
        let bytes = std::fs::read(&src).context("reading the source into memory")?;
        let c = ChunkingConfig::default();
        let max = c.max as usize;
        sync()?;

        let names = [
            "read: tokio File + SyncIoBridge, 256 KiB reads (as write_file)",
            "read: std::fs::File, 256 KiB reads",
            "SHA-1 of the whole file (git blob id), in memory",
            "FastCDC StreamCDC chunking, in memory",
            "BLAKE3 of every chunk, in memory",
            "FastCDC StreamCDC over tokio File + SyncIoBridge (read pattern of write_file)",
            "same, with a 2 MiB std::io::BufReader over the bridge (a candidate fix)",
            "Objects::ingest from std::fs::File (core, no tokio)",
        ];
        let mut samples: Vec<Samples> = names.iter().map(|_| Samples::default()).collect();
        let mut cuts = Vec::new();
        for round in 0..ctx.opts.rounds {
            let (d, n) = time(|| bridged(ctx, &src, move |r| drain(r, max)))?;
            ensure!(n == size, "short read");
            samples[0].push(mb_per_sec(size, d));
            let (d, n) = time(|| drain(std::fs::File::open(&src).context("opening the source")?, max))?;
            ensure!(n == size, "short read");
            samples[1].push(mb_per_sec(size, d));
            let (d, _) = time(|| {
                let mut h = sha1::Sha1::new();
                h.update(format!("blob {size}\0").as_bytes());
                h.update(&bytes);
                Ok(h.finalize())
            })?;
            samples[2].push(mb_per_sec(size, d));
            let (d, found) = time(|| chunk(&bytes[..], c))?;
            cuts = found;
            samples[3].push(mb_per_sec(size, d));
            let (d, _) = time(|| {
                Ok(cuts
                    .iter()
                    .map(|&(o, l)| *blake3::hash(&bytes[o..o + l]).as_bytes())
                    .collect::<Vec<_>>())
            })?;
            samples[4].push(mb_per_sec(size, d));
            let (d, found) = time(|| bridged(ctx, &src, move |r| chunk(r, c)))?;
            ensure!(found == cuts, "chunking through the bridge found other boundaries");
            samples[5].push(mb_per_sec(size, d));
            let (d, found) = time(|| {
                bridged(ctx, &src, move |r| {
                    chunk(std::io::BufReader::with_capacity(2 << 20, r), c)
                })
            })?;
            ensure!(
                found == cuts,
                "chunking through the buffered bridge found other boundaries"
            );
            samples[6].push(mb_per_sec(size, d));
            let data_dir = dir.join(format!("engine-{round}"));
            let engine = ctx.rt.block_on(Engine::open(EngineConfig::new(&data_dir)))?;
            let mut file = std::fs::File::open(&src).context("opening the source")?;
            let (d, ingested) = time(|| Ok(engine.objects().ingest(&mut file, Some(size), u64::MAX)?))?;
            ensure!(ingested.size == size && ingested.chunked, "unexpected {ingested:?}");
            samples[7].push(mb_per_sec(size, d));
            drop(engine);
            std::fs::remove_dir_all(&data_dir).context("removing the engine data")?;
            sync()?;
            eprintln!("ingest-parts: round {} of {} done", round + 1, ctx.opts.rounds);
        }
        eprintln!(
            "ingest-parts: {} chunks, mean {} KiB",
            cuts.len(),
            size as usize / cuts.len().max(1) / 1024
        );
        drop(bytes);
        std::fs::remove_dir_all(&dir).context("removing the ingest-parts data")?;
        Ok(names
            .iter()
            .zip(samples)
            .map(|(name, s)| Row::new("ingest-parts", Unit::MegabytesPerSec, Series::new(*name, s), None))
            .collect())
    }
}
