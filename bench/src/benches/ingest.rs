//! `ingest`: write one large pseudo-random file from disk into a session with `write_file` (size
//! known), against `cp` of the same file and `git hash-object -w`. Every sample starts from an
//! empty store, so no chunk is already there to deduplicate against.

use std::process::Command;
use std::time::{Duration, Instant};

use aether_core::{CreateOptions, Engine, EngineConfig, SessionSource, WriteOptions};
use anyhow::{Context, Result, ensure};

use super::{Bench, SLOW_REFERENCE_ROUNDS, mb_per_sec, rotation};
use crate::ctx::Ctx;
use crate::fixture::command::{git, run, sync, timed};
use crate::fixture::data::write_random_file;
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct Ingest;

const TARGET_MBPS: f64 = 400.0;

fn engine_ingest(ctx: &Ctx, src: &std::path::Path, data_dir: &std::path::Path, size: u64) -> Result<Duration> {
    let elapsed = ctx.rt.block_on(async {
        let engine = Engine::open(EngineConfig::new(data_dir)).await?;
        let session = engine
            .create_session(SessionSource::Empty, CreateOptions::default())
            .await?
            .id;
        let file = tokio::fs::File::open(src)
            .await
            .with_context(|| format!("opening {}", src.display()))?;
        let opts = WriteOptions {
            size: Some(size),
            ..Default::default()
        };
        let t = Instant::now();
        let stat = engine.write_file(&session, "big.bin", file, opts).await?;
        let elapsed = t.elapsed();
        ensure!(stat.size == size && stat.chunked, "unexpected result {stat:?}");
        Ok(elapsed)
    })?;
    std::fs::remove_dir_all(data_dir).with_context(|| format!("removing {}", data_dir.display()))?;
    Ok(elapsed)
}

impl Bench for Ingest {
    fn name(&self) -> &'static str {
        "ingest"
    }

    fn about(&self) -> &'static str {
        "write_file of a large pseudo-random file (1 GiB), vs cp and git hash-object -w"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let dir = ctx.dir("ingest")?;
        let size = ctx.opts.ingest_mib << 20;
        let src = dir.join("source.bin");
        write_random_file(&src, size, 0x1465_7573)?;
        sync()?;

        let (mut aether, mut cp, mut hash_object) = (Samples::default(), Samples::default(), Samples::default());
        for round in 0..ctx.opts.rounds {
            let kinds = if round < SLOW_REFERENCE_ROUNDS { 3 } else { 2 };
            for which in rotation(round, kinds) {
                match which {
                    0 => aether.push(mb_per_sec(
                        size,
                        engine_ingest(ctx, &src, &dir.join(format!("engine-{round}")), size)?,
                    )),
                    1 => {
                        let dst = dir.join("copy.bin");
                        cp.push(mb_per_sec(size, timed(Command::new("cp").arg(&src).arg(&dst))?));
                        std::fs::remove_file(&dst).context("removing the copy")?;
                    }
                    _ => {
                        let repo = dir.join(format!("git-{round}"));
                        std::fs::create_dir_all(&repo).context("creating a git repository")?;
                        run(git(&repo).args(["init", "-q"]))?;
                        hash_object.push(mb_per_sec(
                            size,
                            timed(git(&repo).args(["hash-object", "-w"]).arg(&src))?,
                        ));
                        std::fs::remove_dir_all(&repo).context("removing a git repository")?;
                    }
                }
                sync()?;
            }
            let last = |s: &Samples| s.values.last().copied().unwrap_or(f64::NAN);
            let git_note = match round < SLOW_REFERENCE_ROUNDS {
                true => format!(", git hash-object -w {:.0} MB/s", last(&hash_object)),
                false => String::new(),
            };
            eprintln!(
                "ingest: round {} of {}: ours {:.0} MB/s, cp {:.0} MB/s{git_note}",
                round + 1,
                ctx.opts.rounds,
                last(&aether),
                last(&cp),
            );
        }
        std::fs::remove_file(&src).context("removing the source file")?;
        let what = format!("write_file of {} MiB, size known", ctx.opts.ingest_mib);
        let met = aether.median() >= TARGET_MBPS;
        let ours = Series::new(what, aether);
        Ok(vec![
            Row::new(
                "ingest",
                Unit::MegabytesPerSec,
                ours.clone(),
                Some(Series::new("cp of the same file", cp)),
            )
            .with_target(format!("p50 ≥ {TARGET_MBPS} MB/s"), met),
            Row::new(
                "ingest",
                Unit::MegabytesPerSec,
                ours,
                Some(Series::new("git hash-object -w of the same file", hash_object)),
            ),
        ])
    }
}
