//! `usage`: a session's usage figures on the corpus session (issue 28: < 50 ms on a 78k-file
//! session, kept incrementally, never a walk per call), next to `du -sb` of the same tree on
//! the local disk in the same run. Three figures: the first call (a cold memo walks the tree
//! once), a call on a fork after 10 writes spread over the tree (what every later call costs:
//! the changed trees only), and a repeated call with nothing changed.

use std::process::Command;
use std::time::Instant;

use aether_core::{CreateOptions, SessionSource, WriteOptions};
use anyhow::Result;

use super::{Bench, ms, rotation};
use crate::ctx::Ctx;
use crate::fixture::command::timed;
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct Usage;

const ROUNDS: usize = 40;
const CHANGED: usize = 10;
const TARGET_MS: f64 = 50.0;

impl Bench for Usage {
    fn name(&self) -> &'static str {
        "usage"
    }

    fn about(&self) -> &'static str {
        "a session's usage on the corpus session after 10 writes, first call and unchanged; du -sb of the tree"
    }

    fn uses_shared_corpus(&self) -> bool {
        true
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let shared = ctx.shared_corpus()?;
        let engine = &shared.engine;
        let files = &shared.corpus.files;
        let t = Instant::now();
        let first = ctx.rt.block_on(engine.session_usage(&shared.session))?;
        let cold = ms(t.elapsed());
        eprintln!(
            "usage: first call on the corpus session {cold:.1} ms ({} files, {} bytes)",
            first.files, first.bytes
        );
        let fork = ctx.rt.block_on(engine.create_session(
            SessionSource::Session {
                id: shared.session.clone(),
                at: None,
            },
            CreateOptions::default(),
        ))?;
        let [mut after_writes, mut unchanged, mut du] = std::array::from_fn(|_| Samples::default());
        for n in 0..ROUNDS {
            ctx.rt.block_on(async {
                for k in 0..CHANGED {
                    let path = &files[(n * 7919 + k * (files.len() / CHANGED)) % files.len()];
                    let data = format!("// round {n} change {k}\n").into_bytes();
                    engine
                        .write_bytes(&fork.id, path, data, WriteOptions::default())
                        .await?;
                }
                Ok::<_, aether_core::Error>(())
            })?;
            for which in rotation(n, 2) {
                match which {
                    0 => {
                        let t = Instant::now();
                        let u = ctx.rt.block_on(engine.session_usage(&fork.id))?;
                        after_writes.push(ms(t.elapsed()));
                        let t = Instant::now();
                        let again = ctx.rt.block_on(engine.session_usage(&fork.id))?;
                        unchanged.push(ms(t.elapsed()));
                        anyhow::ensure!(u == again && u.files == first.files, "usage moved without a change");
                    }
                    _ => du.push(ms(timed(Command::new("du").arg("-sb").arg(&shared.corpus.tree))?)),
                }
            }
        }
        let last = ctx.rt.block_on(engine.session_usage(&fork.id))?;
        eprintln!(
            "usage: after {CHANGED} writes p50 {:.2} ms, unchanged p50 {:.3} ms, du -sb p50 {:.1} ms; fork holds {} own files",
            after_writes.median(),
            unchanged.median(),
            du.median(),
            last.unique_files
        );
        let count = files.len();
        let mut cold_series = Samples::default();
        cold_series.push(cold);
        Ok(vec![
            Row::new(
                "usage",
                Unit::Millis,
                Series::new(
                    format!("usage of a fork of the {count}-file corpus after {CHANGED} writes"),
                    after_writes.clone(),
                ),
                Some(Series::new(format!("du -sb of the {count}-file tree"), du.clone())),
            )
            .with_target(format!("p50 < {TARGET_MS} ms"), after_writes.median() < TARGET_MS),
            Row::new(
                "usage",
                Unit::Millis,
                Series::new("usage again, nothing changed", unchanged),
                None,
            ),
            Row::new(
                "usage",
                Unit::Millis,
                Series::new(
                    format!("first usage call on the {count}-file session (walks it once)"),
                    cold_series,
                ),
                Some(Series::new(format!("du -sb of the {count}-file tree"), du)),
            ),
        ])
    }
}
