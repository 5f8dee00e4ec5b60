//! `mount-checkout`: what a user feels with a git checkout kept in a session (issue 33). The
//! corpus as a git checkout (`fixture/checkout.rs`) becomes a session with `--from-dir`, `.git`
//! included; `git status` in a mount refreshes its index once (the state a user hands over),
//! and a checkpoint is taken of that state. Then:
//!
//! - stability: how many index entries' stat data (as git stored it, 32-bit truncated) differ
//!   from what a mount shows after a remount, in a second concurrent mount, in a mount of a fork,
//!   of a `fork --at` the checkpoint, and after `checkpoint restore` of it;
//! - cold commands (`git status`, `git diff HEAD~1 --stat`, `git grep -q`), each on a fresh
//!   mount after the kernel's caches are dropped, against the same commands on the floor (the
//!   in-memory FUSE file system holding a `cp -a` of the checkout) and on a native ext4 copy,
//!   both with their index refreshed the same way and their caches dropped;
//! - cold `git status` with `aether fsmonitor` as the repository's fsmonitor hook (and git's
//!   untracked cache), in a mount of a fork whose index already holds the hook's token, against
//!   the same cold `git status` on native ext4 without a hook.
//!
//! Not in the default set: on the `linux` corpus it uploads and copies 1.5 GB three times.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::mount_common::{Mount, MountServer, drop_page_cache};
use super::{Bench, last, ms, rotation};
use crate::ctx::{Ctx, remove};
use crate::fixture::checkout::{self, MARKER};
use crate::fixture::command::{git, run};
use crate::floor_fs::FloorMount;
use crate::git_index::{Tally, compare_tree};
use crate::report::{Row, Series, Unit};
use crate::scratch_fs::SideFs;
use crate::stats::Samples;

pub struct MountCheckout;

const BENCH: &str = "mount-checkout";
/// Threads that stat the index's files in the stability rows (git's preload uses up to 20).
const STAT_THREADS: usize = 4;

/// The cold commands: label, git arguments, target as a multiple of the floor.
const COMMANDS: [(&str, &[&str], f64); 3] = [
    ("git status", &["status"], 1.5),
    ("git diff HEAD~1 --stat", &["diff", "HEAD~1", "--stat"], 1.5),
    ("git grep -q", &["grep", "-q", MARKER], 2.0),
];

/// `git ARGS > /dev/null` in `dir`, timed; fails with git's stderr.
fn quiet(dir: &Path, args: &[&str]) -> Result<Duration> {
    let mut cmd = git(dir);
    cmd.args(args);
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

/// `cp -a SRC/. DST`, timed.
fn copy_tree(src: &Path, dst: &Path) -> Result<Duration> {
    std::fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    let t = Instant::now();
    run(Command::new("cp").arg("-a").arg(src.join(".")).arg(dst))?;
    Ok(t.elapsed())
}

/// A string field of `aether --json ...`'s output.
fn json_field(out: &str, field: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(out).with_context(|| format!("parsing {out:?}"))?;
    match &v[field] {
        serde_json::Value::String(s) => Ok(s.clone()),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        _ => bail!("no {field} in {out:?}"),
    }
}

/// The session side: a server on its own file system, the checkout uploaded as a session.
struct Ours {
    // Fields drop in order: the server stops before its file system is unmounted.
    srv: MountServer,
    fs: SideFs,
    session: String,
    mounts: usize,
}

impl Ours {
    fn mount(&mut self, session: &str) -> Result<Mount> {
        self.mounts += 1;
        let n = self.mounts;
        self.srv.mount(
            session,
            &self.fs.path().join(format!("mnt-{n}")),
            &self.fs.path().join(format!("cache-{n}")),
        )
    }

    /// Unmount and remove the mount's content cache (a grep fills it with the whole tree).
    fn done(&self, m: Mount) -> Result<()> {
        let cache = m.cache.clone();
        m.unmount()?;
        remove(&cache)
    }

    fn aether(&self, args: &[&str]) -> Result<String> {
        run(self.srv.aether().arg("--json").args(args))
    }

    /// The stat mismatches a new mount of `session` shows.
    fn stability(&mut self, session: &str, what: &str) -> Result<Tally> {
        let m = self.mount(session)?;
        let t = compare_tree(&m.dir, STAT_THREADS).with_context(|| format!("comparing after {what}"))?;
        self.done(m)?;
        eprintln!("{BENCH}: after {what}: {t}");
        Ok(t)
    }
}

fn count_row(label: String, t: &Tally) -> Row {
    let mut s = Samples::default();
    s.push(t.differ as f64);
    Row::new(BENCH, Unit::Count, Series::new(format!("{label}: {t}"), s), None).with_target("0", t.differ == 0)
}

impl Bench for MountCheckout {
    fn name(&self) -> &'static str {
        BENCH
    }

    fn about(&self) -> &'static str {
        "a git checkout in a session: stat stability across remount/fork/restore, cold status/diff/grep vs floor and ext4"
    }

    fn default_set(&self) -> bool {
        false
    }

    fn run(&self, ctx: &mut Ctx) -> Result<Vec<Row>> {
        let corpus = ctx.corpus()?;
        let co = checkout::prepare(&corpus, &ctx.opts.work_dir)?;
        let can_drop = drop_page_cache();
        if !can_drop {
            eprintln!("{BENCH}: cannot drop the page cache (not root?): the cold rows are warm");
        }

        // The session, its index refreshed in a first mount, and a checkpoint of that.
        let fs = SideFs::new(ctx, "mount-checkout-ours")?;
        let srv = MountServer::start(&fs.path().join("aetherd"))?;
        let mut ours = Ours {
            srv,
            fs,
            session: String::new(),
            mounts: 0,
        };
        let t = Instant::now();
        let dir = co.dir.to_string_lossy().into_owned();
        ours.session = json_field(&ours.aether(&["session", "create", "--from-dir", &dir])?, "id")?;
        eprintln!(
            "{BENCH}: session create --from-dir of {} files: {:.1} s",
            co.files,
            t.elapsed().as_secs_f64()
        );
        let session = ours.session.clone();
        drop_page_cache();
        let m = ours.mount(&session)?;
        let first_mount = quiet(&m.dir, &["status"])
            .with_context(|| format!("the first git status in the mount; its log:\n{}", m.log_tail()))?;
        ours.done(m)?;
        let number = json_field(
            &ours.aether(&["checkpoint", "create", &session, "-m", "index refreshed"])?,
            "number",
        )?;
        let rev = format!("checkpoints/{number}");

        // Stability, before the cold rows' commands can write the index again.
        let remount = ours.stability(&session, "a remount")?;
        let first = ours.mount(&session)?;
        let second = ours.mount(&session)?;
        let concurrent = compare_tree(&second.dir, STAT_THREADS).context("comparing in a second mount")?;
        eprintln!("{BENCH}: in a second concurrent mount: {concurrent}");
        ours.done(second)?;
        ours.done(first)?;
        let fork = json_field(&ours.aether(&["session", "fork", &session])?, "id")?;
        let forked = ours.stability(&fork, "a fork")?;
        let fork_at = json_field(&ours.aether(&["session", "fork", &session, "--at", &rev])?, "id")?;
        let forked_at = ours.stability(&fork_at, &format!("a fork --at {rev}"))?;
        ours.aether(&["checkpoint", "restore", &session, &rev])?;
        let restored = ours.stability(&session, &format!("checkpoint restore {rev}"))?;

        // The references: a copy of the checkout on the floor and on a fresh ext4, each index
        // refreshed once by a first git status.
        let floor_fs = SideFs::new(ctx, "mount-checkout-floor")?;
        let floor = FloorMount::mount(&floor_fs.path().join("mnt"))?;
        let took = copy_tree(&co.dir, &floor.dir)?;
        eprintln!("{BENCH}: cp -a into the floor: {:.1} s", took.as_secs_f64());
        drop_page_cache();
        let first_floor = quiet(&floor.dir, &["status"])?;
        let native = SideFs::new(ctx, "mount-checkout-native")?;
        let native_dir = native.path().join("checkout");
        copy_tree(&co.dir, &native_dir)?;
        drop_page_cache();
        let first_native = quiet(&native_dir, &["status"])?;
        eprintln!(
            "{BENCH}: first git status: mount {:.2} s, floor {:.2} s, native {:.2} s",
            first_mount.as_secs_f64(),
            first_floor.as_secs_f64(),
            first_native.as_secs_f64()
        );

        let mut samples: Vec<[Samples; 3]> = COMMANDS.iter().map(|_| Default::default()).collect();
        for round in 0..ctx.opts.rounds {
            for which in rotation(round, 3) {
                for (c, (label, args, _)) in COMMANDS.iter().enumerate() {
                    drop_page_cache();
                    let took = match which {
                        0 => {
                            let m = ours.mount(&session)?;
                            let took = quiet(&m.dir, args)
                                .with_context(|| format!("{label} in the mount; its log:\n{}", m.log_tail()))?;
                            ours.done(m)?;
                            took
                        }
                        1 => quiet(&floor.dir, args)?,
                        _ => quiet(&native_dir, args)?,
                    };
                    samples[c][which].push(ms(took));
                    eprintln!(
                        "{BENCH}: round {}: {} cold {label}: {:.2} s",
                        round + 1,
                        ["mount ", "floor ", "native"][which],
                        last(&samples[c][which]) / 1000.0
                    );
                }
            }
        }
        drop(floor);
        drop(floor_fs);
        drop(native);

        // With `aether fsmonitor`: a fork whose index holds the hook's token (two statuses: the
        // first scans everything and records the token, the second the untracked cache).
        let watched = json_field(&ours.aether(&["session", "fork", &session])?, "id")?;
        let cli = ours.srv.aether();
        let hook = std::iter::once(cli.get_program())
            .chain(cli.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .chain(["fsmonitor".to_owned()])
            .collect::<Vec<_>>()
            .join(" ");
        let m = ours.mount(&watched)?;
        quiet(&m.dir, &["config", "core.fsmonitor", &hook])?;
        quiet(&m.dir, &["config", "core.untrackedCache", "true"])?;
        for _ in 0..2 {
            quiet(&m.dir, &["status"])?;
            // The hook's answers stop a second short of the newest change (see docs/decisions.md).
            std::thread::sleep(Duration::from_millis(1100));
        }
        ours.done(m)?;
        let mut monitored = Samples::default();
        for round in 0..ctx.opts.rounds {
            drop_page_cache();
            let m = ours.mount(&watched)?;
            let took = quiet(&m.dir, &["status"])
                .with_context(|| format!("git status with aether fsmonitor; the mount's log:\n{}", m.log_tail()))?;
            ours.done(m)?;
            monitored.push(ms(took));
            eprintln!(
                "{BENCH}: round {}: mount cold git status with aether fsmonitor: {:.2} s",
                round + 1,
                took.as_secs_f64()
            );
        }
        let native_status = samples[0][2].clone();

        let files = co.files;
        let mut rows = Vec::new();
        for ((label, _, target), [mount, floor, native]) in COMMANDS.iter().zip(samples) {
            let ratio = mount.median() / floor.median();
            rows.push(
                Row::new(
                    BENCH,
                    Unit::Millis,
                    Series::new(format!("cold {label} on a fresh mount ({files} files)"), mount.clone()),
                    Some(Series::new(format!("{label}, floor (cp -a, caches dropped)"), floor)),
                )
                .with_target(format!("<= {target}x floor"), ratio <= *target),
            );
            rows.push(Row::new(
                BENCH,
                Unit::Millis,
                Series::new(format!("cold {label} on a fresh mount"), mount),
                Some(Series::new(format!("{label}, native ext4 (caches dropped)"), native)),
            ));
        }
        let ratio = monitored.median() / native_status.median();
        rows.push(
            Row::new(
                BENCH,
                Unit::Millis,
                Series::new(
                    "cold git status on a fresh mount, aether fsmonitor + untracked cache",
                    monitored,
                ),
                Some(Series::new("git status, native ext4 (caches dropped)", native_status)),
            )
            .with_target("<= native ext4", ratio <= 1.0),
        );
        let one = |d: Duration| {
            let mut s = Samples::default();
            s.push(ms(d));
            s
        };
        let ratio = first_mount.as_secs_f64() / first_floor.as_secs_f64();
        rows.push(
            Row::new(
                BENCH,
                Unit::Millis,
                Series::new("first git status after session create --from-dir", one(first_mount)),
                Some(Series::new(
                    "first git status on the floor after cp -a",
                    one(first_floor),
                )),
            )
            .with_target("<= 1.5x floor", ratio <= 1.5),
        );
        rows.push(Row::new(
            BENCH,
            Unit::Millis,
            Series::new("first git status after session create --from-dir", one(first_mount)),
            Some(Series::new(
                "first git status on native ext4 after cp -a",
                one(first_native),
            )),
        ));
        rows.push(count_row(
            "index entries with changed stat after a remount".into(),
            &remount,
        ));
        rows.push(count_row("... in a second concurrent mount".into(), &concurrent));
        rows.push(count_row("... in a mount of a fork".into(), &forked));
        rows.push(count_row(format!("... in a mount of a fork --at {rev}"), &forked_at));
        rows.push(count_row(format!("... after checkpoint restore {rev}"), &restored));
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::json_field;

    #[test]
    fn json_fields_of_the_cli_output() {
        let session = r#"{"id": "s-123", "state": "active", "checkpoints": 0}"#;
        assert_eq!(json_field(session, "id").unwrap(), "s-123");
        let checkpoint = r#"{"number": 4, "commit": "abc"}"#;
        assert_eq!(json_field(checkpoint, "number").unwrap(), "4");
        assert!(json_field(session, "number").is_err());
        assert!(json_field("not json", "id").is_err());
    }
}
