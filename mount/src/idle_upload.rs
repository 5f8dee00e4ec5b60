//! Uploads without `flush`. With the kernel's writeback cache and no `open`, the mount answers
//! the first `flush` with "not implemented", so the kernel stops sending one at every close:
//! a file only read then costs no round trip at all when it is closed.
//!
//! Closing a written file still reaches the mount: before `close` returns, the kernel writes
//! the file's dirty pages and then, if they changed, its times (a `setattr` from the closing
//! process). That `setattr` sends the file at once. The kernel's own writeback (flusher
//! threads, `sync`, memory pressure) sends the same requests while the file may still be
//! growing; its `setattr` comes from a kernel thread, and page writes carry no process at all.
//! Those only mark the file, with a deadline: a marked file still holding unsent bytes is sent
//! once nothing touched it until its deadline. Page writes of a small file get [`SETTLE`]: a
//! close whose times were already current sends pages only, and the file goes right after. That
//! is the usual close of a new file (see `coarse_now`), and of a truncate and a write in the same
//! clock tick. Everything else gets [`IDLE`], so a large file
//! being written is not sent again after every writeback pass. Unmount and `fsync` on a
//! directory send every marked file.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How long a marked file written by the kernel's own writeback must rest before it is sent.
pub const IDLE: Duration = Duration::from_secs(1);
/// How long a small file whose pages were written must rest before it is sent.
pub const SETTLE: Duration = Duration::from_millis(10);
/// The least time between two passes. Files written one after another fall due one after
/// another: without it the thread woke once per file of a checkout (199 passes for 200 files),
/// each wake-up a thread switch on a machine the checkout already keeps busy. A file goes at
/// most this much after its deadline.
const PASS_GAP: Duration = Duration::from_millis(5);

/// Whether a request came from the kernel's writeback (a flusher thread) rather than from a
/// process's own call. Pid 0 is no process (page writes) or a task outside the mount's pid
/// namespace: treated as the kernel's, so its writes wait for their deadline (never lost, only
/// later). The name is all that is read: a request handler must not read more of the
/// requester's `/proc` entry (`stat` blocks on locks the requester may hold). A process that
/// names itself like a flusher only has its files sent later; one that cannot be read counts
/// as a process, since sending early is always safe.
pub fn kernel_thread(pid: u32) -> bool {
    if pid == 0 {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.starts_with("kworker/"))
}

/// Files written since they were last sent, by inode, each with the time it is due.
#[derive(Default)]
pub struct IdleUploads {
    marked: Mutex<Marked>,
    wake: Condvar,
}

#[derive(Default)]
struct Marked {
    due: HashMap<u64, Instant>,
    /// When the thread, waiting, wakes next: a touch due earlier wakes it.
    wakes_at: Option<Instant>,
    stopped: bool,
}

impl IdleUploads {
    /// Mark `ino` due after `rest` from now (a later touch moves the deadline).
    pub fn touch(&self, ino: u64, rest: Duration) {
        self.due_at(ino, Instant::now() + rest);
    }

    fn due_at(&self, ino: u64, due: Instant) {
        let mut m = self.marked.lock();
        m.due.insert(ino, due);
        if m.wakes_at.is_some_and(|w| due < w) {
            self.wake.notify_all();
        }
    }

    /// The files due at `now`, unmarked.
    pub fn take_due(&self, now: Instant) -> Vec<u64> {
        let mut due = Vec::new();
        self.marked.lock().due.retain(|ino, t| {
            let keep = *t > now;
            if !keep {
                due.push(*ino);
            }
            keep
        });
        due
    }

    /// Whether any file is marked.
    pub fn any_marked(&self) -> bool {
        !self.marked.lock().due.is_empty()
    }

    /// Every marked file, unmarked (`fsync` on a directory sends them all).
    pub fn take_all(&self) -> Vec<u64> {
        self.marked.lock().due.drain().map(|(ino, _)| ino).collect()
    }

    pub fn stop(&self) {
        self.marked.lock().stopped = true;
        self.wake.notify_all();
    }

    /// Start the thread that hands due files (often none) to `send` as their deadlines pass,
    /// until [`IdleUploads::stop`] or until `send` answers `false` (the mount is gone).
    pub fn start(self: &Arc<Self>, send: impl Fn(Vec<u64>) -> bool + Send + 'static) {
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("aether-idle-upload".into())
            .spawn(move || {
                let mut last_pass: Option<Instant> = None;
                loop {
                    {
                        let mut m = me.marked.lock();
                        if m.stopped {
                            return;
                        }
                        let now = Instant::now();
                        let next = m.due.values().min().copied();
                        let next = next.map(|t| last_pass.map_or(t, |p| t.max(p + PASS_GAP)));
                        let wait = next.map_or(IDLE, |t| t.saturating_duration_since(now)).min(IDLE);
                        if !wait.is_zero() {
                            m.wakes_at = Some(now + wait);
                            me.wake.wait_for(&mut m, wait);
                            m.wakes_at = None;
                        }
                        if m.stopped {
                            return;
                        }
                    }
                    let now = Instant::now();
                    let due = me.take_due(now);
                    if !due.is_empty() {
                        last_pass = Some(now);
                    }
                    if !send(due) {
                        return;
                    }
                }
            });
        if let Err(e) = spawned {
            // Without the thread, marked files still go at their close, fsync or the unmount.
            tracing::error!(error = %e, "could not start the idle upload thread");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_past_their_deadline_are_due_and_each_once() {
        let u = IdleUploads::default();
        let now = Instant::now();
        u.due_at(1, now + IDLE);
        u.due_at(2, now + IDLE);
        u.touch(3, SETTLE);
        assert!(u.take_due(now).is_empty());
        assert_eq!(u.take_due(Instant::now() + SETTLE), vec![3]);
        u.due_at(2, now + IDLE * 2); // touched again: due later
        let later = now + IDLE + SETTLE;
        assert_eq!(u.take_due(later), vec![1], "2 was touched after 1");
        assert!(u.take_due(later).is_empty(), "1 was unmarked");
        assert_eq!(u.take_all(), vec![2]);
        assert!(u.take_all().is_empty());
    }

    #[test]
    fn the_flusher_is_a_kernel_thread_and_this_process_is_not() {
        assert!(!kernel_thread(std::process::id()));
        assert!(kernel_thread(0));
        assert!(!kernel_thread(u32::MAX), "an unreadable pid counts as a process");
        let kworker = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with("kworker/")))
            .expect("Linux runs kworker threads");
        assert!(kernel_thread(kworker));
    }

    /// A running thread that hands every non-empty pass to the returned receiver.
    fn started() -> (Arc<IdleUploads>, std::sync::mpsc::Receiver<Vec<u64>>) {
        let u = Arc::new(IdleUploads::default());
        let (tx, rx) = std::sync::mpsc::channel();
        u.start(move |due| due.is_empty() || tx.send(due).is_ok());
        (u, rx)
    }

    #[test]
    fn a_burst_of_small_files_is_sent_in_a_few_passes_not_one_per_file() {
        let (u, rx) = started();
        // A checkout's pace: a new file every 100 µs or so, each due a settle after its write.
        let start = Instant::now();
        for ino in 0..200 {
            u.touch(ino, SETTLE);
            std::thread::sleep(Duration::from_micros(100));
        }
        let mut sent = Vec::new();
        let mut passes = 0;
        while sent.len() < 200 {
            sent.extend(rx.recv_timeout(IDLE).expect("every file is sent"));
            passes += 1;
        }
        let took = start.elapsed();
        u.stop();
        sent.sort_unstable();
        assert_eq!(sent, (0..200).collect::<Vec<u64>>());
        // At most a pass every PASS_GAP, however slowly a busy machine ran the burst.
        let bound = (took.as_micros() / PASS_GAP.as_micros()) as usize + 2;
        assert!(passes <= bound, "{passes} passes for 200 files in {took:?}");
    }

    #[test]
    fn the_thread_sends_what_rested_and_stops() {
        let (u, rx) = started();
        let t0 = Instant::now();
        u.touch(7, IDLE);
        u.touch(8, SETTLE);
        assert_eq!(rx.recv_timeout(IDLE).expect("the settled one first"), vec![8]);
        assert!(t0.elapsed() < IDLE, "the thread woke for the nearer deadline");
        assert_eq!(rx.recv_timeout(IDLE * 3).expect("sent after resting"), vec![7]);
        assert!(t0.elapsed() >= IDLE, "not before it rested");
        u.stop();
        u.touch(9, SETTLE);
        assert!(rx.recv_timeout(IDLE * 2).is_err(), "nothing after stop");
    }
}
