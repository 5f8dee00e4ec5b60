//! The benchmark registry. A benchmark is a named [`Bench`] that measures ours and a reference
//! in the same run and returns report rows; adding one is a module here plus a line in [`all`].

mod checkpoint;
mod fork;
mod git_clone;
mod git_clone_large;
mod git_fetch_incremental;
mod git_import;
mod http_small_reads;
mod import;
mod ingest_parts;
mod large_file;
mod mount_checkout;
mod mount_common;
mod mount_git;
mod mount_seq_read;
mod mount_untar;
mod packing;
mod parallel_forks;
mod residual;
mod usage;

use std::time::Duration;

use anyhow::Result;

use crate::ctx::Ctx;
use crate::report::Row;

pub trait Bench {
    /// The name selected on the command line.
    fn name(&self) -> &'static str;
    /// One line for `--list` and `--help`.
    fn about(&self) -> &'static str;
    /// Whether a run that names no benchmark includes this one (diagnostics do not).
    fn default_set(&self) -> bool {
        true
    }
    /// Whether it works on the shared corpus session and checkout (`Ctx::shared_corpus`). Once
    /// no benchmark left in a run does, the run removes them in the background.
    fn uses_shared_corpus(&self) -> bool {
        false
    }
    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>>;
}

/// Every benchmark, in the order a run takes them.
pub fn all() -> Vec<Box<dyn Bench>> {
    vec![
        Box::new(import::Import),
        Box::new(fork::Fork),
        Box::new(checkpoint::Checkpoint),
        Box::new(residual::Residual),
        Box::new(usage::Usage),
        Box::new(parallel_forks::ParallelForks),
        Box::new(large_file::LargeFile),
        Box::new(http_small_reads::HttpSmallReads),
        Box::new(ingest_parts::IngestParts),
        Box::new(git_import::GitImport),
        Box::new(git_clone::GitClone),
        Box::new(git_fetch_incremental::GitFetchIncremental),
        Box::new(git_clone_large::GitCloneLarge),
        Box::new(packing::Packing),
        Box::new(mount_untar::MountUntar),
        Box::new(mount_seq_read::MountSeqRead),
        Box::new(mount_git::MountGit),
        Box::new(mount_checkout::MountCheckout),
    ]
}

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

/// The last sample of a series, for progress lines.
pub fn last(s: &crate::stats::Samples) -> f64 {
    s.values.last().copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::rotation;

    #[test]
    fn rotation_puts_each_side_first_equally_often() {
        let firsts: Vec<usize> = (0..6).filter_map(|n| rotation(n, 3).next()).collect();
        assert_eq!(firsts, [0, 1, 2, 0, 1, 2]);
        assert_eq!(rotation(1, 3).collect::<Vec<_>>(), [1, 2, 0]);
    }
}
