//! Refreshing the kernel's caches after the mount's own changes.
//!
//! With the writeback cache the kernel forgets a file's block count at every close, and a
//! directory's attributes and listing at every entry created, removed or renamed in it. The
//! next `stat` of each then costs a request, and the next listing two (FUSE has no end marker,
//! so an empty second read ends every listing). Measured: `git status` right after a clone of
//! 3,000 files sent 6.4k requests, nearly all of them these.
//!
//! FUSE gives the mount no way to push fresh attributes. One request refreshes many: a
//! READDIRPLUS carries every entry's attributes, and the kernel keeps the listing (without
//! `opendir` it caches directory contents). So once a changed directory has been quiet for
//! [`QUIET`], this thread lists it through the mount itself, deepest first: listing a directory
//! marks that directory's own access time stale, and its parent's listing, which comes later,
//! refreshes it. A directory whose entries did not change is served from the kernel's cache
//! without a request, which would refresh nothing: its files written in place are `stat`ed
//! one by one instead.
//!
//! The thread is never inside a FUSE request and holds no lock while it calls into the mount.
//! It only calls while a pass runs; [`KernelWarm::stop`] waits for the pass to end, because an
//! unmount fails while a call is inside the mount.

use std::cmp::Reverse;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How long a changed directory must rest before it is listed: a tool still writing in it
/// would make the listing stale again at once.
pub const QUIET: Duration = Duration::from_millis(20);

/// Directories with more entries are not listed (a listing costs a request per page of about
/// 25 entries); their written files are still `stat`ed.
pub const LIST_MAX: usize = 1024;

/// The least time between two passes.
const PASS_GAP: Duration = Duration::from_millis(10);

/// How long [`KernelWarm::stop`] waits for a pass in progress.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// Where a marked inode is now, below the mount's root.
pub struct Located {
    pub path: String,
    /// The directory holding it (`None` for the mount's root).
    pub parent: Option<u64>,
    /// For a directory: how many entries it holds.
    pub entries: usize,
}

/// Directories to refresh, each with what changed in it.
#[derive(Default)]
pub struct KernelWarm {
    marks: Mutex<Marks>,
    wake: Condvar,
}

#[derive(Default)]
struct Marks {
    dirs: HashMap<u64, DirMark>,
    /// Marks are only kept once the thread runs.
    running: bool,
    stopped: bool,
    /// A pass is calling into the mount.
    passing: bool,
    /// When the thread, waiting, wakes next: a mark due earlier wakes it.
    wakes_at: Option<Instant>,
}

struct DirMark {
    due: Instant,
    /// An entry was created, removed or renamed: the kernel dropped the listing.
    entries: bool,
    /// Files written in place.
    files: HashSet<u64>,
}

impl KernelWarm {
    /// An entry of `dir` was created, removed or renamed.
    pub fn entries_changed(&self, dir: u64) {
        self.mark(dir, |m| m.entries = true);
    }

    /// `file`, in `dir`, was written or had its attributes set.
    pub fn written(&self, dir: u64, file: u64) {
        self.mark(dir, |m| {
            m.files.insert(file);
        });
    }

    fn mark(&self, dir: u64, change: impl FnOnce(&mut DirMark)) {
        let mut m = self.marks.lock();
        if !m.running {
            return;
        }
        let due = Instant::now() + QUIET;
        let mark = m.dirs.entry(dir).or_insert_with(|| DirMark {
            due,
            entries: false,
            files: HashSet::new(),
        });
        mark.due = due;
        change(mark);
        if m.wakes_at.is_none_or(|w| due < w) {
            self.wake.notify_all();
        }
    }

    /// Nothing is marked and no pass runs.
    #[cfg(test)]
    pub fn idle(&self) -> bool {
        let m = self.marks.lock();
        m.dirs.is_empty() && !m.passing
    }

    /// The directories whose quiet time has passed at `now`, unmarked.
    fn take_due(m: &mut Marks, now: Instant) -> Vec<(u64, DirMark)> {
        let due: Vec<u64> = m
            .dirs
            .iter()
            .filter(|(_, d)| d.due <= now)
            .map(|(ino, _)| *ino)
            .collect();
        due.into_iter()
            .filter_map(|ino| m.dirs.remove(&ino).map(|d| (ino, d)))
            .collect()
    }

    /// Stop the thread; returns once no call of it is inside the mount (or after a bound).
    pub fn stop(&self) {
        let mut m = self.marks.lock();
        m.stopped = true;
        m.running = false;
        m.dirs.clear();
        self.wake.notify_all();
        let deadline = Instant::now() + STOP_WAIT;
        while m.passing {
            if self.wake.wait_until(&mut m, deadline).timed_out() {
                tracing::warn!("the kernel cache refresh is still inside the mount");
                return;
            }
        }
    }

    /// Start refreshing below `root` (the mount point). `worth_it` says whether a refresh pays
    /// now (the kernel keeps what it learns long: the watch stream is connected); `locate`
    /// finds a marked inode, `None` once it is gone.
    pub fn start(
        self: &Arc<Self>,
        root: PathBuf,
        worth_it: impl Fn() -> bool + Send + 'static,
        locate: impl Fn(u64) -> Option<Located> + Send + 'static,
    ) {
        {
            let mut m = self.marks.lock();
            if m.running || m.stopped {
                return;
            }
            m.running = true;
        }
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("aether-warm".into())
            .spawn(move || me.run(&root, &worth_it, &locate));
        if let Err(e) = spawned {
            // Without the thread the kernel asks again on its own, as it would anyway.
            self.marks.lock().running = false;
            tracing::error!(error = %e, "could not start the kernel cache refresh thread");
        }
    }

    fn run(&self, root: &std::path::Path, worth_it: &dyn Fn() -> bool, locate: &dyn Fn(u64) -> Option<Located>) {
        // Passes are at least PASS_GAP apart: directories a tool finishes one after another are
        // refreshed together, not with a wake-up each.
        let mut not_before = Instant::now();
        loop {
            let due = {
                let mut m = self.marks.lock();
                loop {
                    if m.stopped {
                        return;
                    }
                    let now = Instant::now();
                    let Some(next) = m.dirs.values().map(|d| d.due).min() else {
                        m.wakes_at = Some(now + Duration::from_secs(3600));
                        self.wake.wait_for(&mut m, Duration::from_secs(3600));
                        m.wakes_at = None;
                        continue;
                    };
                    let next = next.max(not_before);
                    if next > now {
                        m.wakes_at = Some(next);
                        self.wake.wait_until(&mut m, next);
                        m.wakes_at = None;
                        continue;
                    }
                    break;
                }
                let due = Self::take_due(&mut m, Instant::now());
                m.passing = true;
                due
            };
            if worth_it() {
                self.pass(root, due, locate);
            }
            self.marks.lock().passing = false;
            self.wake.notify_all();
            not_before = Instant::now() + PASS_GAP;
        }
    }

    /// Refresh what `due` names: changed directories listed deepest first, then files written
    /// in place `stat`ed.
    fn pass(&self, root: &std::path::Path, due: Vec<(u64, DirMark)>, locate: &dyn Fn(u64) -> Option<Located>) {
        let mut lists = Vec::new();
        let mut stats = Vec::new();
        for (dir, mark) in due {
            let listable = if mark.entries {
                locate(dir).filter(|d| d.entries <= LIST_MAX)
            } else {
                None
            };
            match listable {
                Some(d) => lists.push((dir, d.path, d.parent)),
                None => stats.extend(mark.files),
            }
        }
        lists.sort_by_key(|(_, p, _)| Reverse(depth(p)));
        for (_, path, _) in &lists {
            if self.marks.lock().stopped {
                return;
            }
            // Reading the entries is the whole point; errors (the directory went away) are fine.
            if let Ok(entries) = std::fs::read_dir(root.join(path)) {
                entries.for_each(drop);
            }
        }
        // A listed directory keeps a stale access time unless its parent is listed after it:
        // in this pass, or in a later one (marked: a tool is still creating entries there).
        let listed: HashSet<u64> = lists.iter().map(|(dir, _, _)| *dir).collect();
        let unrefreshed: Vec<String> = {
            let m = self.marks.lock();
            lists
                .into_iter()
                .filter(|(_, _, up)| {
                    let listed_now = up.is_some_and(|up| listed.contains(&up));
                    let listed_later = up.and_then(|up| m.dirs.get(&up)).is_some_and(|d| d.entries);
                    !listed_now && !listed_later
                })
                .map(|(_, p, _)| p)
                .collect()
        };
        let files = stats.into_iter().filter_map(|f| locate(f).map(|f| f.path));
        for path in unrefreshed.into_iter().chain(files) {
            if self.marks.lock().stopped {
                return;
            }
            let _ = std::fs::symlink_metadata(root.join(path));
        }
    }
}

/// How many directories deep `path` is below the root ("" is the root).
fn depth(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        1 + path.matches('/').count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_wait_for_quiet_and_merge_per_directory() {
        let w = KernelWarm::default();
        w.written(1, 10); // not running: nothing is kept
        assert!(w.marks.lock().dirs.is_empty());
        w.marks.lock().running = true;
        let t0 = Instant::now();
        w.written(1, 10);
        w.written(1, 11);
        w.entries_changed(2);
        let mut m = w.marks.lock();
        assert!(
            KernelWarm::take_due(&mut m, t0).is_empty(),
            "nothing is due before its quiet time"
        );
        let mut due = KernelWarm::take_due(&mut m, Instant::now() + QUIET);
        due.sort_by_key(|(ino, _)| *ino);
        assert_eq!(due.len(), 2);
        assert!(!due[0].1.entries);
        assert_eq!(due[0].1.files, HashSet::from([10, 11]));
        assert!(due[1].1.entries && due[1].1.files.is_empty());
        assert!(m.dirs.is_empty(), "taken once");
    }

    #[test]
    fn deeper_directories_come_first() {
        let mut paths = vec!["", "a", "a/b/c", "a/b", "d"];
        paths.sort_by_key(|p| Reverse(depth(p)));
        assert_eq!(paths, ["a/b/c", "a/b", "a", "d", ""]);
    }

    #[test]
    fn the_thread_lists_changed_directories_and_stats_written_files_then_stops() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a/b")).unwrap();
        std::fs::write(root.path().join("a/f"), b"x").unwrap();
        let located = Arc::new(Mutex::new(Vec::new()));
        let seen = located.clone();
        let w = Arc::new(KernelWarm::default());
        w.start(
            root.path().to_path_buf(),
            || true,
            move |ino| {
                let path = match ino {
                    1 => "a",
                    2 => "a/b",
                    3 => "a/f",
                    _ => return None,
                };
                seen.lock().push(path);
                Some(Located {
                    path: path.into(),
                    parent: None,
                    entries: 1,
                })
            },
        );
        let t0 = Instant::now();
        w.entries_changed(1);
        w.entries_changed(2);
        w.written(1, 3); // listed with its directory: not stat'ed on its own
        w.written(9, 3); // in a directory whose entries did not change
        while located.lock().len() < 3 && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(t0.elapsed() >= QUIET, "not before the quiet time");
        let mut got = located.lock().clone();
        got.sort();
        assert_eq!(got, ["a", "a/b", "a/f"]);
        w.stop();
        assert!(!w.marks.lock().passing);
        w.entries_changed(1);
        assert!(w.marks.lock().dirs.is_empty(), "nothing is marked after stop");
    }
}
