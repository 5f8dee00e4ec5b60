//! `mount-git`: a mixed git workload in a mounted empty session against the same commands in a
//! native directory: clone (file://, so a pack is transferred and indexed) of a repository with
//! thousands of commits, status, log --stat, checkout of an old commit and back, edit 100 files,
//! commit, status, rm -rf. Each step is a row; the total is the row with the 1.2x target.
//! The same workload on the floor (`floor_fs.rs`: an in-memory FUSE file system with the mount's
//! kernel options and nothing else) shows what the kernel's FUSE protocol alone costs each step
//! on this machine.
//!
//! The repository is generated with `git fast-import` from a deterministic stream (the files of
//! [`TreeShape`], a few edited per commit) and cached in the work directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::mount_common::{MountServer, rm_rf};
use super::{Bench, ms, rotation};
use crate::corpus::CorpusKind;
use crate::ctx::Ctx;
use crate::fixture::command::{git, run, sync, timed};
use crate::fixture::data::XorShift;
use crate::fixture::tree::TreeShape;
use crate::floor_fs::FloorMount;
use crate::report::{Row, Series, Unit};
use crate::scratch_fs::SideFs;
use crate::stats::Samples;

pub struct MountGit;

const TARGET_TOTAL: f64 = 1.2;
const TARGET_STEP: f64 = 2.0;
const EDITED: usize = 100;

/// The generated history: `commits` commits over a tree of `files` files.
#[derive(Debug, Clone, Copy)]
struct History {
    files: usize,
    commits: usize,
    /// Files each later commit changes.
    per_commit: usize,
}

impl History {
    fn for_corpus(kind: CorpusKind) -> History {
        match kind {
            CorpusKind::Linux => History {
                files: 3000,
                commits: 3000,
                per_commit: 6,
            },
            CorpusKind::Small => History {
                files: 400,
                commits: 1000,
                per_commit: 4,
            },
        }
    }

    fn key(&self) -> String {
        format!("history-v1-{}f-{}c-{}", self.files, self.commits, self.per_commit)
    }

    /// The `git fast-import` stream of the whole history on `refs/heads/main`.
    fn write_stream(&self, out: &mut impl Write) -> std::io::Result<()> {
        let shape = TreeShape::new(self.files);
        let mut rng = XorShift::new(42);
        let mut generation = vec![0u64; self.files];
        let blob = |out: &mut dyn Write, path: &str, data: &[u8]| -> std::io::Result<()> {
            writeln!(out, "M 100644 inline {path}")?;
            writeln!(out, "data {}", data.len())?;
            out.write_all(data)?;
            writeln!(out)
        };
        for c in 0..self.commits {
            let message = format!("commit {c}\n");
            writeln!(out, "commit refs/heads/main")?;
            writeln!(
                out,
                "committer bench <bench@localhost> {} +0000",
                1_600_000_000 + c * 60
            )?;
            writeln!(out, "data {}", message.len())?;
            out.write_all(message.as_bytes())?;
            if c == 0 {
                for i in 0..self.files {
                    blob(out, &shape.path(i), &TreeShape::content(i, 0))?;
                }
            } else {
                for _ in 0..self.per_commit {
                    let i = (rng.next_u64() % self.files as u64) as usize;
                    generation[i] += 1;
                    blob(out, &shape.path(i), &TreeShape::content(i, generation[i]))?;
                }
            }
            writeln!(out)?;
        }
        Ok(())
    }

    /// The bare repository, from the cache in the work directory or generated there now.
    fn prepare(&self, work_dir: &Path) -> Result<PathBuf> {
        let dir = work_dir.join("fixtures").join(self.key());
        let repo = dir.join("repo.git");
        if dir.join("done").is_file() {
            return Ok(repo);
        }
        let t = Instant::now();
        let partial = dir.with_extension("partial");
        crate::ctx::remove(&partial)?;
        let bare = partial.join("repo.git");
        std::fs::create_dir_all(&bare).with_context(|| format!("creating {}", bare.display()))?;
        run(git(&bare).args(["init", "-q", "--bare", "-b", "main"]))?;
        let mut child = git(&bare)
            .args(["fast-import", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("starting git fast-import")?;
        {
            let stdin = child.stdin.take().context("fast-import's stdin")?;
            let mut w = std::io::BufWriter::new(stdin);
            self.write_stream(&mut w).context("writing the fast-import stream")?;
            w.flush().context("writing the fast-import stream")?;
        }
        let status = child.wait().context("waiting for git fast-import")?;
        ensure!(status.success(), "git fast-import failed ({status})");
        run(git(&bare).args(["repack", "-a", "-d", "-q"]))?;
        std::fs::write(partial.join("done"), b"").context("marking the fixture done")?;
        std::fs::rename(&partial, &dir).with_context(|| format!("renaming {}", partial.display()))?;
        eprintln!(
            "mount-git: generated {} ({} commits, {} files) in {:.1} s",
            repo.display(),
            self.commits,
            self.files,
            t.elapsed().as_secs_f64()
        );
        Ok(repo)
    }
}

const STEPS: [&str; 9] = [
    "clone (file://)",
    "status",
    "log --stat",
    "checkout of an old commit",
    "checkout back",
    "edit 100 files",
    "commit -a",
    "status after the commit",
    "rm -rf",
];

/// `git ... > /dev/null`, timed; fails with git's stderr.
fn quiet(cmd: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    let took = t.elapsed();
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(took)
}

/// The workload in `parent` (a native directory or a mount); one duration per [`STEPS`] entry.
fn workload(parent: &Path, source: &Path, h: &History) -> Result<Vec<Duration>> {
    let url = format!("file://{}", source.display());
    let repo = parent.join("repo");
    let mut t = Vec::new();
    t.push(timed(git(parent).args(["clone", "-q", url.as_str(), "repo"]))?);
    t.push(quiet(git(&repo).args(["status", "--porcelain"]))?);
    t.push(quiet(git(&repo).args(["log", "--stat"]))?);
    let old = format!("main~{}", h.commits * 4 / 5);
    t.push(timed(git(&repo).args(["checkout", "-q", old.as_str()]))?);
    t.push(timed(git(&repo).args(["checkout", "-q", "main"]))?);
    let shape = TreeShape::new(h.files);
    let start = Instant::now();
    for k in 0..EDITED {
        let i = k * h.files / EDITED;
        let path = repo.join(shape.path(i));
        std::fs::write(&path, TreeShape::content(i, 1_000_000))
            .with_context(|| format!("editing {}", path.display()))?;
    }
    t.push(start.elapsed());
    t.push(timed(git(&repo).args(["commit", "-q", "-a", "-m", "edit 100 files"]))?);
    t.push(quiet(git(&repo).args(["status", "--porcelain"]))?);
    let status = run(git(&repo).args(["status", "--porcelain"]))?;
    ensure!(status.is_empty(), "the tree is not clean after the commit: {status}");
    t.push(rm_rf(&repo)?);
    Ok(t)
}

impl Bench for MountGit {
    fn name(&self) -> &'static str {
        "mount-git"
    }

    fn about(&self) -> &'static str {
        "git clone/status/log --stat/checkout/edit/commit/rm -rf in a mounted session, vs a native dir"
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let h = History::for_corpus(ctx.opts.corpus);
        let source = h.prepare(&ctx.opts.work_dir)?;
        let mut ours: Vec<Samples> = vec![Samples::default(); STEPS.len() + 1];
        let mut native: Vec<Samples> = vec![Samples::default(); STEPS.len() + 1];
        let mut floor: Vec<Samples> = vec![Samples::default(); STEPS.len() + 1];
        let rounds = ctx.opts.rounds;
        for round in 0..rounds {
            for which in rotation(round, 3) {
                sync()?;
                let (times, side) = if which == 0 {
                    // A new server on a new file system every round: the same start for both
                    // sides, and no objects left in the server by an earlier round's clone.
                    let fs = SideFs::new(ctx, &format!("mount-git-ours-{round}"))?;
                    let srv = MountServer::start(&fs.path().join("aetherd"))?;
                    let session = srv.new_session(ctx)?;
                    let m = srv.mount(&session, &fs.path().join("mnt"), &fs.path().join("cache"))?;
                    let times = workload(&m.dir, &source, &h)
                        .with_context(|| format!("the git workload in the mount; its log:\n{}", m.log_tail()))?;
                    m.unmount()?;
                    (times, &mut ours)
                } else if which == 2 {
                    let fs = SideFs::new(ctx, &format!("mount-git-floor-{round}"))?;
                    let m = FloorMount::mount(&fs.path().join("mnt"))?;
                    let times = workload(&m.dir, &source, &h).context("the git workload in the floor")?;
                    (times, &mut floor)
                } else {
                    let fs = SideFs::new(ctx, &format!("mount-git-native-{round}"))?;
                    let times = workload(fs.path(), &source, &h)?;
                    (times, &mut native)
                };
                let total: Duration = times.iter().sum();
                for (s, d) in side.iter_mut().zip(times.iter().chain([&total])) {
                    s.push(ms(*d));
                }
                let steps: Vec<String> = times.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect();
                eprintln!(
                    "mount-git: round {}: {} total {:.2} s ({} s)",
                    round + 1,
                    ["mount ", "native", "floor "][which],
                    total.as_secs_f64(),
                    steps.join(" ")
                );
            }
        }
        let mut rows = Vec::new();
        let what = format!("{} commits, {} files", h.commits, h.files);
        for (i, step) in STEPS.iter().chain(["total"].iter()).enumerate() {
            let ratio = ours[i].median() / native[i].median();
            let (label, target, met) = if i == STEPS.len() {
                (
                    format!("git workload in the mount, total ({what})"),
                    format!("<= {TARGET_TOTAL}x"),
                    ratio <= TARGET_TOTAL,
                )
            } else {
                (
                    format!("git {step} in the mount"),
                    format!("<= {TARGET_STEP}x"),
                    ratio <= TARGET_STEP,
                )
            };
            rows.push(
                Row::new(
                    "mount-git",
                    Unit::Millis,
                    Series::new(label, ours[i].clone()),
                    Some(Series::new(format!("{step}, native"), native[i].clone())),
                )
                .with_target(target, met),
            );
        }
        for (i, step) in STEPS.iter().chain(["total"].iter()).enumerate() {
            rows.push(Row::new(
                "mount-git",
                Unit::Millis,
                Series::new(
                    format!("git {step} in the floor (in-memory FUSE fs, no server)"),
                    floor[i].clone(),
                ),
                Some(Series::new(format!("{step}, native"), native[i].clone())),
            ));
        }
        rows.push(Row::new(
            "mount-git",
            Unit::Millis,
            Series::new("git workload in the mount, total", ours[STEPS.len()].clone()),
            Some(Series::new("total in the floor", floor[STEPS.len()].clone())),
        ));
        Ok(rows)
    }
}
