//! `mount-untar`: `tar -xf` of the corpus into a mounted empty session, then `find` and `cat` of
//! every extracted file, against the same commands on a native directory. Also reported: the time
//! until the server has acknowledged everything the untar wrote (`fsync` through the mount), and
//! `find` + `cat` on a fresh mount with an empty cache (every byte comes from the server).
//!
//! A third side, the floor (`floor_fs.rs`: an in-memory FUSE file system with the mount's kernel
//! options and nothing else), shows what the kernel's FUSE protocol alone costs for the untar on
//! this machine, and how much of the mount's time is its own.
//!
//! On the full linux corpus a subset is used (whole directories up to [`SUBSET_FILES`] files,
//! named in the row labels) so the benchmark fits in a few minutes; `--corpus small` uses all.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};

use super::mount_common::MountServer;
use super::{Bench, ms, rotation};
use crate::ctx::Ctx;
use crate::fixture::command::{run, sync, timed};
use crate::floor_fs::FloorMount;
use crate::report::{Row, Series, Unit};
use crate::scratch_fs::SideFs;
use crate::stats::Samples;

pub struct MountUntar;

/// Files of the linux corpus the untar takes (whole directories, in order, skipping those that
/// would go over).
pub const SUBSET_FILES: usize = 20_000;
/// Rounds on the linux corpus: a round moves the subset through the server twice.
const HEAVY_ROUNDS: usize = 2;

const TARGET_UNTAR: f64 = 1.5;
const TARGET_FIND_CAT: f64 = 2.0;

/// The tar the benchmark extracts: the path, what it holds (for labels), and its file count.
struct Input {
    tar: std::path::PathBuf,
    what: String,
    files: usize,
}

/// Group the corpus's files by directory (below the single top-level directory, if there is
/// one) and take whole groups in order while they fit in `cap` files.
fn subset(files: &[String], cap: usize) -> (Vec<String>, usize) {
    let tops: std::collections::BTreeSet<&str> = files.iter().filter_map(|f| f.split('/').next()).collect();
    let depth = if tops.len() == 1 { 2 } else { 1 };
    let mut groups: Vec<(String, usize)> = Vec::new();
    for f in files {
        let parts: Vec<&str> = f.split('/').collect();
        // A file directly in the top level (or in the single top directory) is its own group.
        let key = parts[..parts.len().min(depth)].join("/");
        match groups.last_mut() {
            Some((k, n)) if *k == key => *n += 1,
            _ => groups.push((key, 1)),
        }
    }
    let mut picked = Vec::new();
    let mut total = 0;
    for (key, n) in groups {
        if total + n <= cap {
            total += n;
            picked.push(key);
        }
    }
    (picked, total)
}

fn input(ctx: &mut Ctx) -> Result<Input> {
    let corpus = ctx.corpus()?;
    if corpus.files.len() <= SUBSET_FILES {
        return Ok(Input {
            tar: corpus.tar.clone(),
            what: format!(
                "the corpus, {} files, {:.0} MB",
                corpus.files.len(),
                corpus.summary.bytes as f64 / 1e6
            ),
            files: corpus.files.len(),
        });
    }
    let (paths, files) = subset(&corpus.files, SUBSET_FILES);
    let tar = ctx.dir("mount-untar-input")?.join("subset.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&corpus.tree)
        .args(&paths))?;
    let bytes = std::fs::metadata(&tar).context("reading the subset tar")?.len();
    let dirs: Vec<&str> = paths
        .iter()
        .filter(|p| corpus.tree.join(p).is_dir())
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .collect();
    Ok(Input {
        tar,
        what: format!(
            "corpus subset, {files} files, {:.0} MB tar: {}",
            bytes as f64 / 1e6,
            dirs.join(" ")
        ),
        files,
    })
}

/// `find DIR -type f`, checking that it sees `files` files.
fn find(dir: &Path, files: usize) -> Result<Duration> {
    let t = std::time::Instant::now();
    let out = run(Command::new("find").arg(dir).arg("-type").arg("f"))?;
    let took = t.elapsed();
    let seen = out.lines().count();
    ensure!(
        seen == files,
        "find saw {seen} files in {}, expected {files}",
        dir.display()
    );
    Ok(took)
}

/// `cat` of every file below `dir` into /dev/null.
fn cat_all(dir: &Path) -> Result<Duration> {
    timed(
        Command::new("sh")
            .arg("-c")
            .arg("find \"$1\" -type f -print0 | xargs -0 cat > /dev/null")
            .arg("sh")
            .arg(dir),
    )
}

#[derive(Default)]
struct Times {
    untar: Samples,
    find: Samples,
    cat: Samples,
    acked: Samples,
    cold_find: Samples,
    cold_cat: Samples,
}

impl Bench for MountUntar {
    fn name(&self) -> &'static str {
        "mount-untar"
    }

    fn about(&self) -> &'static str {
        "tar -xf of the corpus into a mounted session, then find and cat of every file, vs a native dir"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let input = input(ctx)?;
        let rounds = ctx.heavy_rounds(HEAVY_ROUNDS);
        let (mut ours, mut native) = (Times::default(), Times::default());
        let mut floor = Samples::default();
        for round in 0..rounds {
            for which in rotation(round, 3) {
                sync()?;
                if which == 0 {
                    // A new server on a new file system every round, as the native side gets.
                    let fs = SideFs::new(ctx, &format!("mount-untar-ours-{round}"))?;
                    let srv = MountServer::start(&fs.path().join("aetherd"))?;
                    let session = srv.new_session(ctx)?;
                    let dir = fs.path().join("mnt");
                    let m = srv.mount(&session, &dir, &fs.path().join("cache"))?;
                    let untar = timed(Command::new("tar").arg("-xf").arg(&input.tar).arg("-C").arg(&m.dir))
                        .with_context(|| format!("untar into the mount; its log:\n{}", m.log_tail()))?;
                    ours.untar.push(ms(untar));
                    let drain = m.barrier()?;
                    ours.acked.push(ms(untar + drain));
                    ours.find.push(ms(find(&m.dir, input.files)?));
                    ours.cat.push(ms(cat_all(&m.dir)?));
                    m.unmount()?;
                    // The same session on a fresh mount with an empty cache: everything from the server.
                    let cold = srv.mount(&session, &dir, &fs.path().join("cold-cache"))?;
                    ours.cold_find.push(ms(find(&cold.dir, input.files)?));
                    ours.cold_cat.push(ms(cat_all(&cold.dir)?));
                    cold.unmount()?;
                    eprintln!(
                        "mount-untar: round {}: mount untar {:.1} s (acked {:.1} s), find {:.2} s, cat {:.1} s; cold find {:.2} s, cat {:.1} s",
                        round + 1,
                        untar.as_secs_f64(),
                        (untar + drain).as_secs_f64(),
                        super::last(&ours.find) / 1000.0,
                        super::last(&ours.cat) / 1000.0,
                        super::last(&ours.cold_find) / 1000.0,
                        super::last(&ours.cold_cat) / 1000.0,
                    );
                } else if which == 2 {
                    let fs = SideFs::new(ctx, &format!("mount-untar-floor-{round}"))?;
                    let m = FloorMount::mount(&fs.path().join("mnt"))?;
                    let untar = timed(Command::new("tar").arg("-xf").arg(&input.tar).arg("-C").arg(&m.dir))?;
                    floor.push(ms(untar));
                    find(&m.dir, input.files).context("find in the floor file system")?;
                    eprintln!(
                        "mount-untar: round {}: floor untar {:.1} s",
                        round + 1,
                        untar.as_secs_f64()
                    );
                } else {
                    let fs = SideFs::new(ctx, &format!("mount-untar-native-{round}"))?;
                    let dir = fs.path();
                    let untar = timed(Command::new("tar").arg("-xf").arg(&input.tar).arg("-C").arg(dir))?;
                    native.untar.push(ms(untar));
                    let flush = {
                        let t = std::time::Instant::now();
                        sync()?;
                        t.elapsed()
                    };
                    native.acked.push(ms(untar + flush));
                    native.find.push(ms(find(dir, input.files)?));
                    native.cat.push(ms(cat_all(dir)?));
                    eprintln!(
                        "mount-untar: round {}: native untar {:.1} s (+sync {:.1} s), find {:.2} s, cat {:.1} s",
                        round + 1,
                        untar.as_secs_f64(),
                        flush.as_secs_f64(),
                        super::last(&native.find) / 1000.0,
                        super::last(&native.cat) / 1000.0,
                    );
                }
            }
        }
        let what = &input.what;
        let row = |label: String, ours: &Samples, reflabel: &str, reference: &Samples| {
            Row::new(
                "mount-untar",
                Unit::Millis,
                Series::new(label, ours.clone()),
                Some(Series::new(reflabel, reference.clone())),
            )
        };
        let ratio = |a: &Samples, b: &Samples| a.median() / b.median();
        Ok(vec![
            row(
                format!("tar -xf into the mount ({what})"),
                &ours.untar,
                "tar -xf into a native dir",
                &native.untar,
            )
            .with_target(
                format!("<= {TARGET_UNTAR}x"),
                ratio(&ours.untar, &native.untar) <= TARGET_UNTAR,
            ),
            row(
                "tar -xf into the floor: an in-memory FUSE fs, no server (floor_fs.rs)".into(),
                &floor,
                "tar -xf into a native dir",
                &native.untar,
            ),
            row(
                "tar -xf into the mount".into(),
                &ours.untar,
                "tar -xf into the floor",
                &floor,
            ),
            row(
                "tar -xf + fsync through the mount (server acknowledged everything)".into(),
                &ours.acked,
                "tar -xf + sync",
                &native.acked,
            ),
            row(
                "find -type f in the mount after the untar".into(),
                &ours.find,
                "find -type f, native",
                &native.find,
            )
            .with_target(
                format!("<= {TARGET_FIND_CAT}x"),
                ratio(&ours.find, &native.find) <= TARGET_FIND_CAT,
            ),
            row(
                "cat of every file in the mount after the untar".into(),
                &ours.cat,
                "cat of every file, native",
                &native.cat,
            )
            .with_target(
                format!("<= {TARGET_FIND_CAT}x"),
                ratio(&ours.cat, &native.cat) <= TARGET_FIND_CAT,
            ),
            row(
                "find -type f on a fresh mount, empty cache".into(),
                &ours.cold_find,
                "find -type f, native (page cache warm)",
                &native.find,
            ),
            row(
                "cat of every file on a fresh mount, empty cache".into(),
                &ours.cold_cat,
                "cat of every file, native (page cache warm)",
                &native.cat,
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::subset;

    #[test]
    fn subset_takes_whole_directories_below_a_single_top() {
        let files: Vec<String> = ["l/Makefile", "l/a/1", "l/a/2", "l/b/1", "l/b/2", "l/b/3", "l/c/1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (picked, n) = subset(&files, 4);
        assert_eq!(picked, ["l/Makefile", "l/a", "l/c"]);
        assert_eq!(n, 4);
        let flat: Vec<String> = ["a/1", "b/1", "b/2"].iter().map(|s| s.to_string()).collect();
        assert_eq!(subset(&flat, 10), (vec!["a".to_owned(), "b".to_owned()], 3));
    }
}
