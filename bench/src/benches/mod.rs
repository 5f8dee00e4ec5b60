//! The benchmark registry. A benchmark is a named [`Bench`] that measures ours and a reference
//! in the same run and returns report rows; adding one is a module here plus a line in [`all`].

mod checkpoint;
mod fork;
pub mod http_large;
mod ingest;
mod ingest_parts;
mod small_edit;

use std::time::Duration;

use anyhow::Result;

use crate::ctx::Ctx;
use crate::report::Row;

pub trait Bench {
    /// The name selected on the command line.
    fn name(&self) -> &'static str;
    /// One line for `--list` and `--help`.
    fn about(&self) -> &'static str;
    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>>;
}

/// Every benchmark, in the order a full run takes them.
pub fn all() -> Vec<Box<dyn Bench>> {
    vec![
        Box::new(fork::Fork),
        Box::new(checkpoint::Checkpoint),
        Box::new(ingest::Ingest),
        Box::new(ingest_parts::IngestParts),
        Box::new(small_edit::SmallEdit),
        Box::new(http_large::HttpLarge),
    ]
}

/// References that take tens of seconds a sample (`git worktree add` of the large tree,
/// `git hash-object -w` of 1 GiB) are taken in this many rounds only, to keep a full run short.
pub const SLOW_REFERENCE_ROUNDS: usize = 3;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Throughput in 10^6 bytes per second.
pub fn mb_per_sec(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// The order in which to take `m` alternatives in iteration `n`: each goes first equally often,
/// so warm caches and background writeback do not favour one side.
pub fn rotation(n: usize, m: usize) -> impl Iterator<Item = usize> {
    (0..m).map(move |k| (n + k) % m)
}
