//! `mount-seq-read`: sequential read of one large file (1 GiB by default, `--large-mib`) through
//! the mount, cold (fresh mount, empty content cache, page cache dropped) then warm (read again),
//! against the same reads of the file on the native filesystem. The file is put through the API
//! first, so the cold read fetches every byte from the server.
//!
//! A third side reads it cold through a mount with content verification turned off
//! (`AETHER_BENCH_UNVERIFIED_READS=1`, benchmark only): what verifying every fetched chunk and
//! every cache block costs, measured in the same run.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use super::mount_common::{MountServer, drop_page_cache};
use super::{Bench, last, mb_per_sec, rotation};
use crate::ctx::Ctx;
use crate::fixture::command::run;
use crate::fixture::data::write_random_file;
use crate::report::{Row, Series, Unit};
use crate::stats::Samples;

pub struct MountSeqRead;

const MAX_ROUNDS: usize = 3;
const TARGET_WARM_MBPS: f64 = 1000.0;
/// Cold reads with verification keep at least this share of the throughput without it.
const TARGET_VERIFIED_SHARE: f64 = 0.95;
/// What the mount reads to turn verification off (see `aether_mount::serve`).
const UNVERIFIED: (&str, &str) = (aether_mount::serve::UNVERIFIED_ENV, "1");

/// Read `path` start to end in 1 MiB reads; returns the time, the length, and the BLAKE3 hash
/// when `hash` (hashing is timed too, so only the untimed check read asks for it).
fn read_file(path: &Path, hash: bool) -> Result<(Duration, u64, Option<blake3::Hash>)> {
    let t = Instant::now();
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    let mut h = hash.then(blake3::Hasher::new);
    loop {
        let got = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if got == 0 {
            break;
        }
        if let Some(h) = &mut h {
            h.update(&buf[..got]);
        }
        n += got as u64;
    }
    Ok((t.elapsed(), n, h.map(|h| h.finalize())))
}

impl Bench for MountSeqRead {
    fn name(&self) -> &'static str {
        "mount-seq-read"
    }

    fn about(&self) -> &'static str {
        "sequential read of a large file through the mount, cold and warm, vs the native file"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let size = ctx.opts.large_mib << 20;
        let rounds = ctx.opts.rounds.min(MAX_ROUNDS);
        let srv = MountServer::start(&ctx.dir("mount-seq-read-aetherd")?)?;
        let src = ctx.dir("mount-seq-read-src")?.join("big.bin");
        write_random_file(&src, size, 11)?;
        let (_, _, want) = read_file(&src, true)?;
        let session = srv.new_session(ctx)?;
        run(srv
            .aether()
            .args(["fs", "put", session.as_str()])
            .arg(&src)
            .arg("big.bin"))?;
        let can_drop = drop_page_cache();
        if !can_drop {
            eprintln!("mount-seq-read: cannot drop the page cache (not root?): cold native reads are warm");
        }
        let [mut cold, mut warm, mut ncold, mut nwarm, mut ucold] = std::array::from_fn(|_| Samples::default());
        for round in 0..rounds {
            for which in rotation(round, 3) {
                if which == 2 {
                    let dir = ctx.dir(&format!("mount-seq-read-unverified-mnt-{round}"))?;
                    let cache = ctx.dir(&format!("mount-seq-read-unverified-cache-{round}"))?;
                    drop_page_cache();
                    let m = srv.mount_with_env(&session, &dir, &cache, &[UNVERIFIED])?;
                    let file = m.dir.join("big.bin");
                    let (t, n, _) = read_file(&file, false)?;
                    ensure!(n == size, "read {n} bytes of {size} through the unverified mount");
                    ucold.push(mb_per_sec(n, t));
                    m.unmount()?;
                    crate::ctx::remove(&cache)?;
                    eprintln!(
                        "mount-seq-read: round {}: mount cold without verification {:.0} MB/s",
                        round + 1,
                        last(&ucold)
                    );
                } else if which == 0 {
                    let dir = ctx.dir(&format!("mount-seq-read-mnt-{round}"))?;
                    let cache = ctx.dir(&format!("mount-seq-read-cache-{round}"))?;
                    drop_page_cache();
                    let m = srv.mount(&session, &dir, &cache)?;
                    let file = m.dir.join("big.bin");
                    let (t, n, _) = read_file(&file, false)?;
                    ensure!(n == size, "read {n} bytes of {size} through the mount");
                    cold.push(mb_per_sec(n, t));
                    let (t, n, _) = read_file(&file, false)?;
                    warm.push(mb_per_sec(n, t));
                    if round == 0 {
                        let (_, _, got) = read_file(&file, true)?;
                        ensure!(got == want, "the mount returned different bytes");
                    }
                    m.unmount()?;
                    crate::ctx::remove(&cache)?;
                    eprintln!(
                        "mount-seq-read: round {}: mount cold {:.0} MB/s, warm {:.0} MB/s",
                        round + 1,
                        last(&cold),
                        last(&warm)
                    );
                } else {
                    drop_page_cache();
                    let (t, n, _) = read_file(&src, false)?;
                    ncold.push(mb_per_sec(n, t));
                    let (t, n, _) = read_file(&src, false)?;
                    nwarm.push(mb_per_sec(n, t));
                    eprintln!(
                        "mount-seq-read: round {}: native cold {:.0} MB/s, warm {:.0} MB/s",
                        round + 1,
                        last(&ncold),
                        last(&nwarm)
                    );
                }
            }
        }
        drop(srv);
        let mib = ctx.opts.large_mib;
        let cold_ref = if can_drop {
            "native read after drop_caches"
        } else {
            "native read (page cache NOT dropped: not allowed here)"
        };
        let warm_met = warm.median() >= TARGET_WARM_MBPS;
        let verified_met = cold.median() >= TARGET_VERIFIED_SHARE * ucold.median();
        let verified_cold = cold.clone();
        Ok(vec![
            Row::new(
                "mount-seq-read",
                Unit::MegabytesPerSec,
                Series::new(
                    format!("cold read of {mib} MiB through a fresh mount (empty cache, page cache dropped)"),
                    cold,
                ),
                Some(Series::new(cold_ref, ncold)),
            ),
            Row::new(
                "mount-seq-read",
                Unit::MegabytesPerSec,
                Series::new(format!("warm read of {mib} MiB through the mount (second read)"), warm),
                Some(Series::new("native read, page cache warm", nwarm)),
            )
            .with_target(format!(">= {TARGET_WARM_MBPS:.0} MB/s"), warm_met),
            Row::new(
                "mount-seq-read",
                Unit::MegabytesPerSec,
                Series::new(
                    format!("cold read of {mib} MiB through a fresh mount, content verified"),
                    verified_cold,
                ),
                Some(Series::new(
                    "the same read without verification (AETHER_BENCH_UNVERIFIED_READS=1)",
                    ucold,
                )),
            )
            .with_target(
                format!("verification costs <= {:.0}%", (1.0 - TARGET_VERIFIED_SHARE) * 100.0),
                verified_met,
            ),
        ])
    }
}
