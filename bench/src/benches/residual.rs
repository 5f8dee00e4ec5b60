//! `residual`: fork and checkpoint of a session that wrote 40k files through the API (each keeps
//! its own mtime, so each stays in the residual), against the same fork of a fresh 10-file
//! session; a checkpoint after 10 changes in the big session; and how much `meta.db` grows per
//! such checkpoint (issue 25, item 1). Runs on an engine of its own, so the growth it measures
//! is its own.

use std::path::Path;
use std::time::Instant;

use aether_core::{BatchOp, CreateOptions, Engine, EngineConfig, SessionId, SessionSource, WriteOptions};
use anyhow::Result;

use super::{Bench, ms, rotation};
use crate::ctx::Ctx;
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct Residual;

const WRITTEN: usize = 40_000;
const FORKS: usize = 100;
const CHECKPOINTS: usize = 20;
const CHANGED: usize = 10;
const TARGET_FORK_MS: f64 = 2.0;
const TARGET_FORK_RATIO: f64 = 2.0;
const TARGET_CHECKPOINT_MS: f64 = 20.0;
const TARGET_GROWTH: f64 = 16.0 * 1024.0;

fn put(path: String, data: Vec<u8>) -> BatchOp {
    BatchOp::Put {
        path,
        data,
        mode: None,
        create_parents: true,
        mtime: None,
    }
}

/// The bytes of `meta.db`'s pages in use, write-ahead log included. Free pages do not count:
/// the first freeze of the big session frees its 40k overlay rows' pages, and the file would
/// not grow until later writes used them up, hiding what each checkpoint adds.
fn settled_size(meta: &Path) -> Result<u64> {
    let conn = rusqlite::Connection::open(meta)?;
    let pragma = |p: &str| conn.query_row(&format!("PRAGMA {p}"), [], |r| r.get::<_, i64>(0));
    Ok(((pragma("page_count")? - pragma("freelist_count")?) * pragma("page_size")?) as u64)
}

impl Bench for Residual {
    fn name(&self) -> &'static str {
        "residual"
    }

    fn about(&self) -> &'static str {
        "fork and checkpoint of a session that wrote 40k files via the API vs a 10-file session; meta.db growth"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let dir = ctx.dir("engine-residual")?;
        let engine: Engine = ctx.rt.block_on(Engine::open(EngineConfig::new(&dir)))?;
        let meta = dir.join("meta.db");
        let (big, small) = ctx.rt.block_on(async {
            let big = engine
                .create_session(SessionSource::Empty, CreateOptions::default())
                .await?
                .id;
            let ops: Vec<BatchOp> = (0..WRITTEN)
                .map(|i| {
                    put(
                        format!("src/m{}/f{i}.rs", i / 200),
                        format!("// file {i}\n").into_bytes(),
                    )
                })
                .collect();
            for chunk in ops.chunks(1000) {
                engine.apply_batch(&big, chunk.to_vec()).await?;
            }
            let small = engine
                .create_session(SessionSource::Empty, CreateOptions::default())
                .await?
                .id;
            let ops: Vec<BatchOp> = (0..10).map(|i| put(format!("f{i}"), vec![b'x'; 10])).collect();
            engine.apply_batch(&small, ops).await?;
            Ok::<_, aether_core::Error>((big, small))
        })?;
        let fork = |parent: &SessionId| -> Result<f64> {
            let source = SessionSource::Session {
                id: parent.clone(),
                at: None,
            };
            let t = Instant::now();
            ctx.rt
                .block_on(engine.create_session(source, CreateOptions::default()))?;
            Ok(ms(t.elapsed()))
        };
        // Untimed: the first fork of each freezes what it wrote.
        let t = Instant::now();
        fork(&big)?;
        eprintln!(
            "residual: first fork of the {WRITTEN}-file session (freezes it) {:.0} ms",
            ms(t.elapsed())
        );
        fork(&small)?;

        let [mut big_forks, mut small_forks] = std::array::from_fn(|_| Samples::default());
        for n in 0..FORKS {
            for which in rotation(n, 2) {
                match which {
                    0 => big_forks.push(fork(&big)?),
                    _ => small_forks.push(fork(&small)?),
                }
            }
        }
        eprintln!(
            "residual: fork p50 {:.2} ms ({WRITTEN} files written) vs {:.2} ms (10 files)",
            big_forks.median(),
            small_forks.median()
        );

        // Checkpoints of 10 changes spread over the session, and what meta.db grows by.
        let changed = |n: usize| -> Vec<String> {
            (0..CHANGED)
                .map(|k| {
                    let i = (n * 7919 + k * (WRITTEN / CHANGED)) % WRITTEN;
                    format!("src/m{}/f{i}.rs", i / 200)
                })
                .collect()
        };
        // (checkpoint time, meta.db growth across the checkpoint alone).
        let one = |n: usize| -> Result<(f64, f64)> {
            ctx.rt.block_on(async {
                for path in changed(n) {
                    let data = format!("// changed {n}\n").into_bytes();
                    engine.write_bytes(&big, &path, data, WriteOptions::default()).await?;
                }
                Ok::<_, aether_core::Error>(())
            })?;
            let before = settled_size(&meta)?;
            let t = Instant::now();
            ctx.rt.block_on(engine.checkpoint(&big, None))?;
            let took = ms(t.elapsed());
            Ok((took, settled_size(&meta)?.saturating_sub(before) as f64))
        };
        one(0)?;
        let mut checkpoints = Samples::default();
        let mut growth = Samples::default();
        let mut own_growth = Samples::default();
        let mut node_bytes = Samples::default();
        let start = settled_size(&meta)?;
        for n in 1..=CHECKPOINTS {
            let before = settled_size(&meta)?;
            let nodes_before = ctx.rt.block_on(engine.metadata().residuals.residual_usage())?.1;
            let (took, own) = one(n)?;
            checkpoints.push(took);
            own_growth.push(own);
            let nodes_after = ctx.rt.block_on(engine.metadata().residuals.residual_usage())?.1;
            growth.push(settled_size(&meta)?.saturating_sub(before) as f64);
            node_bytes.push((nodes_after - nodes_before) as f64);
        }
        // Growth comes in whole pages: the mean over every checkpoint is what one costs.
        let mean_growth = settled_size(&meta)?.saturating_sub(start) as f64 / CHECKPOINTS as f64;
        let mean_own = own_growth.values.iter().sum::<f64>() / CHECKPOINTS as f64;
        eprintln!(
            "residual: checkpoint p50 {:.2} ms; meta.db growth per 10 writes + checkpoint {:.0} B on average, across the checkpoint alone {:.0} B; residual nodes {:.0} B",
            checkpoints.median(),
            mean_growth,
            mean_own,
            node_bytes.median()
        );

        let big_label = format!("fork of a session that wrote {WRITTEN} files via the API");
        let small_label = "fork of a fresh 10-file session";
        Ok(vec![
            Row::new(
                "residual",
                Unit::Millis,
                Series::new(big_label.clone(), big_forks.clone()),
                Some(Series::new(small_label, small_forks.clone())),
            )
            .with_target(
                format!("p50 <= {TARGET_FORK_MS} ms and <= {TARGET_FORK_RATIO}x the 10-file fork"),
                big_forks.median() <= TARGET_FORK_MS && big_forks.median() <= TARGET_FORK_RATIO * small_forks.median(),
            ),
            Row::new(
                "residual",
                Unit::Millis,
                Series::new(
                    format!("checkpoint after {CHANGED} changed files ({WRITTEN} files written)"),
                    checkpoints.clone(),
                ),
                None,
            )
            .with_target(
                format!("p50 < {TARGET_CHECKPOINT_MS} ms"),
                checkpoints.median() < TARGET_CHECKPOINT_MS,
            ),
            Row::new(
                "residual",
                Unit::Bytes,
                Series::new(
                    format!("meta.db growth per {CHANGED} writes + checkpoint (pages in use)"),
                    growth,
                ),
                Some(Series::new(
                    "residual node bytes stored by that checkpoint",
                    node_bytes.clone(),
                )),
            )
            .with_target("mean < 16 KiB", mean_growth < TARGET_GROWTH),
            Row::new(
                "residual",
                Unit::Bytes,
                Series::new(
                    format!("meta.db growth across the checkpoint alone ({CHANGED} changes)"),
                    own_growth,
                ),
                Some(Series::new("residual node bytes stored by that checkpoint", node_bytes)),
            )
            .with_target("mean < 16 KiB", mean_own < TARGET_GROWTH),
        ])
    }
}
